//! The quarantine folder (`<data>/quarantine`): files and bytes the store
//! will not use any more but must not destroy.
//!
//! Recovery never deletes data on a guess. A chunk file no index record
//! names and that cannot be adopted, the temporary file of a chunk write
//! a crash cut short, a damaged index log before it is
//! rewritten, a damaged WAL segment, and the bytes cut off a torn WAL or
//! index tail are moved or copied here, under the same relative path they
//! had in the data directory (with `.1`, `.2`, ... appended when a name is
//! taken). Nothing reads this folder; an operator inspects it and removes
//! what is not needed (`larch_store_quarantined_files_total` counts what
//! arrives).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Most suffixes tried for a free name.
const MAX_SUFFIX: u32 = 10_000;

/// The quarantine folder of one data directory.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

impl Quarantine {
    /// The quarantine folder of the data directory `data_dir` (created on
    /// first use).
    pub fn new(data_dir: &Path) -> Quarantine {
        Quarantine {
            dir: data_dir.join("quarantine"),
        }
    }

    /// A quarantine folder at `dir` itself (tests, scratch directories).
    pub fn at(dir: &Path) -> Quarantine {
        Quarantine {
            dir: dir.to_path_buf(),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A free path for `rel` inside the folder, its directory created and
    /// made durable.
    fn free_path(&self, rel: &Path) -> io::Result<PathBuf> {
        let want = self.dir.join(rel);
        let parent = want
            .parent()
            .ok_or_else(|| io::Error::other("quarantine path has no parent"))?
            .to_path_buf();
        create_dirs_durably(&parent)?;
        if !want.exists() {
            return Ok(want);
        }
        let name = want
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for i in 1..=MAX_SUFFIX {
            let p = parent.join(format!("{name}.{i}"));
            if !p.exists() {
                return Ok(p);
            }
        }
        Err(io::Error::other(format!(
            "no free name for {} in the quarantine folder",
            rel.display()
        )))
    }

    /// Moves `path` into the folder as `rel` (renaming; the data directory
    /// and the folder are on one file system) and makes both directories
    /// durable. Returns where it went.
    pub fn move_file(&self, path: &Path, rel: &Path) -> io::Result<PathBuf> {
        let to = self.free_path(rel)?;
        fs::rename(path, &to)?;
        if let Some(dir) = to.parent() {
            crate::wal::sync_dir(dir)?;
        }
        if let Some(dir) = path.parent() {
            crate::wal::sync_dir(dir)?;
        }
        Ok(to)
    }

    /// Writes `bytes` into the folder as `rel`, durably. Returns where.
    pub fn save(&self, rel: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
        let to = self.free_path(rel)?;
        {
            let mut f = File::create(&to)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        if let Some(dir) = to.parent() {
            crate::wal::sync_dir(dir)?;
        }
        Ok(to)
    }

    /// Whether the folder already holds `rel` (without a suffix).
    pub fn holds(&self, rel: &Path) -> bool {
        self.dir.join(rel).exists()
    }
}

/// `create_dir_all` that also fsyncs the parent of every directory it
/// creates, so the new directories survive a crash.
pub fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dirs_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        crate::wal::sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_saves_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::new(dir.path());
        let a = dir.path().join("a.chunk");
        fs::write(&a, b"one").unwrap();
        let to = q.move_file(&a, Path::new("chunks/t/a.chunk")).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read(&to).unwrap(), b"one");
        fs::write(&a, b"two").unwrap();
        let again = q.move_file(&a, Path::new("chunks/t/a.chunk")).unwrap();
        assert_ne!(to, again);
        assert_eq!(fs::read(&to).unwrap(), b"one");
        assert_eq!(fs::read(&again).unwrap(), b"two");
        let saved = q.save(Path::new("wal/x.torn"), b"tail").unwrap();
        assert_eq!(fs::read(saved).unwrap(), b"tail");
        assert!(q.holds(Path::new("wal/x.torn")));
    }
}
