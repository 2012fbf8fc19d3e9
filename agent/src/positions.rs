//! Positions: how far each file has been acknowledged by the store.
//!
//! *Invariant: a saved position never passes a byte whose line the store
//! has not acknowledged.* The reader never writes positions itself: every
//! change ([`Update`]) travels in the batch that carries the lines it
//! covers, and the sender applies a batch's updates only after the store
//! acknowledged that batch and every batch before it. A crash therefore
//! resends at most the unacknowledged tail, and the store's dedup of
//! identical entries makes that harmless.
//!
//! The file is YAML, versioned, and written atomically: temp file, fsync,
//! rename, fsync of the directory.
//!
//! ```yaml
//! version: 1
//! files:
//! - path: /var/log/pods/shop_cart-1_uid/app/0.log
//!   dev: 2049
//!   ino: 1311
//!   fp: {len: 128, hash: 1234567890}
//!   offset: 4096
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::file_id::Fingerprint;

/// The saved position of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionRecord {
    /// Where the file was when it was opened (informational; files are
    /// matched by `dev`, `ino` and `fp`).
    pub path: PathBuf,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Fingerprint of the first bytes.
    pub fp: Fingerprint,
    /// Bytes acknowledged: reading resumes here.
    pub offset: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionsFile {
    version: u32,
    #[serde(default)]
    files: Vec<PositionRecord>,
}

const VERSION: u32 = 1;

/// Reads the positions file; a missing file means "no positions".
pub fn load(path: &Path) -> Result<Vec<PositionRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: PositionsFile = serde_yaml::from_str(&text).map_err(|e| Error::Positions {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if file.version != VERSION {
        return Err(Error::Positions {
            path: path.to_path_buf(),
            message: format!(
                "unsupported version {} (this agent writes {VERSION})",
                file.version
            ),
        });
    }
    Ok(file.files)
}

/// Writes the positions atomically (temp, fsync, rename, fsync dir).
pub fn save(path: &Path, records: &[PositionRecord]) -> Result<()> {
    let file = PositionsFile {
        version: VERSION,
        files: records.to_vec(),
    };
    let text = serde_yaml::to_string(&file).map_err(|e| Error::Positions {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        // fsync of the directory makes the rename durable; some file
        // systems refuse it on directories, which is harmless.
        let _ = d.sync_all();
    }
    Ok(())
}

/// How far a file has been read and acknowledged, shared between the
/// reader (which stores `read`) and the sender (which stores `acked`), for
/// the lag metric.
#[derive(Debug, Default)]
pub struct Progress {
    /// Offset up to which lines were put into batches.
    pub read: AtomicU64,
    /// Offset acknowledged by the store.
    pub acked: AtomicU64,
}

/// A change to the positions, applied after acknowledgement.
#[derive(Clone, Debug)]
pub enum Update {
    /// A file started being tailed (from `record.offset`).
    Open {
        /// The tailer's key for the file.
        key: u64,
        /// Identity and starting offset.
        record: PositionRecord,
        /// Where the acknowledged offset is published for the lag metric.
        progress: Arc<Progress>,
    },
    /// Everything before `offset` is acknowledged.
    Offset {
        /// The file's key.
        key: u64,
        /// The new position.
        offset: u64,
        /// The file's fingerprint now (it grows with small files).
        fp: Fingerprint,
    },
    /// The file is finished and forgotten.
    Close {
        /// The file's key.
        key: u64,
    },
}

/// Acknowledged positions of the files being tailed.
#[derive(Default)]
pub struct Positions {
    records: BTreeMap<u64, (PositionRecord, Arc<Progress>)>,
    dirty: bool,
}

impl Positions {
    /// Empty positions.
    pub fn new() -> Self {
        Positions::default()
    }

    /// Applies one update (in batch order).
    pub fn apply(&mut self, u: Update) {
        match u {
            Update::Open {
                key,
                record,
                progress,
            } => {
                progress.acked.store(record.offset, Ordering::Relaxed);
                self.records.insert(key, (record, progress));
            }
            Update::Offset { key, offset, fp } => {
                if let Some((r, progress)) = self.records.get_mut(&key) {
                    if r.offset == offset && r.fp == fp {
                        return;
                    }
                    r.offset = offset;
                    r.fp = fp;
                    progress.acked.store(offset, Ordering::Relaxed);
                } else {
                    return;
                }
            }
            Update::Close { key } => {
                if self.records.remove(&key).is_none() {
                    return;
                }
            }
        }
        self.dirty = true;
    }

    /// The records to save, if anything changed since the last call.
    pub fn take_dirty(&mut self) -> Option<Vec<PositionRecord>> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(self.records.values().map(|(r, _)| r.clone()).collect())
    }

    /// Bytes put into batches but not acknowledged yet, over all files.
    pub fn lag(&self) -> u64 {
        self.records
            .values()
            .map(|(_, p)| {
                p.read
                    .load(Ordering::Relaxed)
                    .saturating_sub(p.acked.load(Ordering::Relaxed))
            })
            .sum()
    }

    /// Marks the positions as changed (e.g. after a failed save).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no file is recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ino: u64, offset: u64) -> PositionRecord {
        PositionRecord {
            path: PathBuf::from(format!("/p/{ino}.log")),
            dev: 1,
            ino,
            fp: Fingerprint { len: 3, hash: 42 },
            offset,
        }
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/positions.yaml");
        assert!(load(&p).unwrap().is_empty());
        save(&p, &[rec(1, 10), rec(2, 20)]).unwrap();
        assert_eq!(load(&p).unwrap(), vec![rec(1, 10), rec(2, 20)]);
        save(&p, &[rec(2, 30)]).unwrap();
        assert_eq!(load(&p).unwrap(), vec![rec(2, 30)]);
        assert!(!dir.path().join("sub/positions.yaml.tmp").exists());
    }

    #[test]
    fn corrupt_files_are_errors_that_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("positions.yaml");
        std::fs::write(&p, "version: 1\nfiles: [{path: 3}]\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("move it away"), "{e}");
        std::fs::write(&p, "version: 9\n").unwrap();
        assert!(
            load(&p)
                .unwrap_err()
                .to_string()
                .contains("unsupported version 9")
        );
    }

    #[test]
    fn updates_apply_in_order() {
        let mut pos = Positions::new();
        let progress = Arc::new(Progress::default());
        progress.read.store(80, Ordering::Relaxed);
        pos.apply(Update::Open {
            key: 7,
            record: rec(1, 5),
            progress: progress.clone(),
        });
        assert_eq!(progress.acked.load(Ordering::Relaxed), 5);
        pos.apply(Update::Offset {
            key: 7,
            offset: 50,
            fp: Fingerprint { len: 3, hash: 42 },
        });
        assert_eq!(progress.acked.load(Ordering::Relaxed), 50);
        assert_eq!(pos.lag(), 30);
        let saved = pos.take_dirty().unwrap();
        assert_eq!(saved[0].offset, 50);
        assert!(pos.take_dirty().is_none());
        pos.apply(Update::Offset {
            key: 9,
            offset: 1,
            fp: Fingerprint::default(),
        });
        assert!(pos.take_dirty().is_none(), "unknown keys are ignored");
        pos.apply(Update::Close { key: 7 });
        assert_eq!(pos.take_dirty().unwrap(), vec![]);
    }
}
