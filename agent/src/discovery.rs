//! Finding the log files of the pods on this node.
//!
//! The kubelet lays pod logs out as
//! `<pods_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`, and
//! rotates `0.log` by renaming it to `0.log.<YYYYMMDD-hhmmss>` (later
//! gzipped). [`scan`] walks the three levels and classifies every file as
//! active (`*.log`), rotated (`*.log.<suffix>`, uncompressed) or ignored
//! (compressed rotated files, anything else). The inode comes from the
//! directory entry, so a scan costs one `readdir` per directory and no
//! `stat` per file; the tailer compares it with the inode it has open to
//! notice a rotation.
//!
//! A log file may be a symbolic link (Docker's json-file logs live under
//! `/var/lib/docker/containers` and are linked from the pod directory); its
//! target is what is read, and the target's inode is what identifies it.
//!
//! [`Watcher`] turns file-system events (inotify through `notify`) into a
//! "rescan now" signal, so new pods are found within a poll interval; the
//! reader also rescans every `rescan_interval` in case events were missed
//! (inotify queue overflow, network file systems).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use notify::{EventKind, RecursiveMode, Watcher as _};

/// What a pod's directory and a container's log file name say.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodFile {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID (or, for static pods, the config hash).
    pub uid: String,
    /// The container's name.
    pub container: String,
}

impl PodFile {
    /// Parses `<namespace>_<pod>_<uid>` and the container directory name.
    /// Namespaces and pod names are DNS names, so they hold no `_`.
    pub fn parse(pod_dir: &str, container: &str) -> Option<PodFile> {
        let mut parts = pod_dir.splitn(3, '_');
        let namespace = parts.next()?;
        let pod = parts.next()?;
        let uid = parts.next()?;
        if namespace.is_empty() || pod.is_empty() || uid.is_empty() || container.is_empty() {
            return None;
        }
        Some(PodFile {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            uid: uid.to_string(),
            container: container.to_string(),
        })
    }
}

/// How a file found by a scan is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `<n>.log`: the file the runtime writes to.
    Active,
    /// `<n>.log.<suffix>`, not compressed: a file renamed by rotation.
    Rotated,
}

/// Classifies a file name; `None` for files the agent never reads.
pub fn classify(name: &str) -> Option<FileKind> {
    if let Some(stem) = name.strip_suffix(".log") {
        return (!stem.is_empty()).then_some(FileKind::Active);
    }
    let (_, suffix) = name.split_once(".log.")?;
    const COMPRESSED: [&str; 6] = [".gz", ".bz2", ".zip", ".xz", ".zst", ".tmp"];
    if suffix.is_empty() || COMPRESSED.iter().any(|c| suffix.ends_with(c)) {
        return None;
    }
    Some(FileKind::Rotated)
}

/// One file found by a scan.
#[derive(Clone, Debug)]
pub struct Found {
    /// Full path.
    pub path: PathBuf,
    /// Active or rotated.
    pub kind: FileKind,
    /// Inode number from the directory entry.
    pub ino: u64,
    /// Namespace, pod, uid and container from the path.
    pub pod: Arc<PodFile>,
}

/// Lists every log file under `pods_dir`. Unreadable directories are
/// skipped (and logged once per scan at debug level): a pod directory may
/// vanish while it is being listed.
pub fn scan(pods_dir: &Path) -> std::io::Result<Vec<Found>> {
    use std::os::unix::fs::DirEntryExt;
    let mut out = Vec::new();
    for pod_entry in std::fs::read_dir(pods_dir)? {
        let Ok(pod_entry) = pod_entry else { continue };
        let pod_name = pod_entry.file_name();
        let Some(pod_name) = pod_name.to_str() else {
            continue;
        };
        let Ok(containers) = std::fs::read_dir(pod_entry.path()) else {
            continue;
        };
        for c in containers {
            let Ok(c) = c else { continue };
            let c_name = c.file_name();
            let Some(c_name) = c_name.to_str() else {
                continue;
            };
            let Some(pod) = PodFile::parse(pod_name, c_name) else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(c.path()) else {
                continue;
            };
            let pod = Arc::new(pod);
            for f in files {
                let Ok(f) = f else { continue };
                let name = f.file_name();
                let Some(kind) = name.to_str().and_then(classify) else {
                    continue;
                };
                let Ok(ft) = f.file_type() else { continue };
                let ino = if ft.is_file() {
                    f.ino()
                } else if ft.is_symlink() {
                    // Docker's json-file logs are linked from the pod
                    // directory; the inode that matters is the target's.
                    use std::os::unix::fs::MetadataExt;
                    match std::fs::metadata(f.path()) {
                        Ok(m) if m.is_file() => m.ino(),
                        _ => continue,
                    }
                } else {
                    continue;
                };
                out.push(Found {
                    path: f.path(),
                    kind,
                    ino,
                    pod: pod.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// File-system events turned into wake-ups for the reader.
pub struct Watcher {
    _watcher: Option<notify::RecommendedWatcher>,
    rescan: Arc<AtomicBool>,
}

impl Watcher {
    /// Watches `pods_dir` recursively. Directory changes set the rescan
    /// flag; any event sends a wake-up on `wake` (at most one pending).
    /// If watching fails (no inotify, too many watches), the agent falls
    /// back to periodic rescans and says so.
    pub fn new(pods_dir: &Path, wake: mpsc::SyncSender<()>) -> Watcher {
        let rescan = Arc::new(AtomicBool::new(true));
        let flag = rescan.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else {
                // Overflow or a watch error: a full rescan finds whatever
                // the lost events would have told.
                flag.store(true, Ordering::Release);
                let _ = wake.try_send(());
                return;
            };
            match ev.kind {
                EventKind::Access(_) => return,
                EventKind::Modify(notify::event::ModifyKind::Data(_)) => {}
                EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => return,
                _ => flag.store(true, Ordering::Release),
            }
            let _ = wake.try_send(());
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(mut w) => match w.watch(pods_dir, RecursiveMode::Recursive) {
                Ok(()) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, path = %pods_dir.display(), "Cannot watch the pods directory; relying on periodic rescans.");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "File-system events unavailable; relying on periodic rescans.");
                None
            }
        };
        Watcher {
            _watcher: watcher,
            rescan,
        }
    }

    /// True (once) if a directory changed since the last call.
    pub fn take_rescan(&self) -> bool {
        self.rescan.swap(false, Ordering::AcqRel)
    }

    /// True if events are being delivered.
    pub fn is_watching(&self) -> bool {
        self._watcher.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pod_paths() {
        let p = PodFile::parse("shop_cart-7d9f_0c1d-22", "app").unwrap();
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.pod, "cart-7d9f");
        assert_eq!(p.uid, "0c1d-22");
        assert_eq!(p.container, "app");
        assert!(PodFile::parse("no-underscores", "app").is_none());
        assert!(PodFile::parse("a_b", "app").is_none());
        assert!(PodFile::parse("a__c", "app").is_none());
    }

    #[test]
    fn classifies_file_names() {
        assert_eq!(classify("0.log"), Some(FileKind::Active));
        assert_eq!(classify("12.log"), Some(FileKind::Active));
        assert_eq!(classify("0.log.20240101-120000"), Some(FileKind::Rotated));
        assert_eq!(classify("0.log.20240101-120000.gz"), None);
        assert_eq!(classify(".log"), None);
        assert_eq!(classify("0.txt"), None);
        assert_eq!(classify("0.log."), None);
    }

    #[test]
    fn scans_three_levels() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("ns_pod_uid1/app");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("0.log"), "x\n").unwrap();
        std::fs::write(c.join("0.log.20240101-000000"), "y\n").unwrap();
        std::fs::write(c.join("0.log.20230101-000000.gz"), "z").unwrap();
        std::fs::create_dir_all(dir.path().join("garbage/app")).unwrap();
        std::fs::write(dir.path().join("garbage/app/0.log"), "").unwrap();
        let found = scan(dir.path()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, FileKind::Active);
        assert_eq!(found[1].kind, FileKind::Rotated);
        assert_eq!(found[0].pod.pod, "pod");
        assert!(found[0].ino != 0);
    }

    #[test]
    fn symlinked_files_carry_their_targets_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("containers/abc-json.log");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, "x\n").unwrap();
        let c = dir.path().join("pods/ns_pod_uid/app");
        std::fs::create_dir_all(&c).unwrap();
        std::os::unix::fs::symlink(&target, c.join("0.log")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("missing"), c.join("1.log")).unwrap();
        let found = scan(&dir.path().join("pods")).unwrap();
        assert_eq!(found.len(), 1, "dangling links are skipped");
        assert_eq!(found[0].ino, std::fs::metadata(&target).unwrap().ino());
    }

    #[test]
    fn watcher_signals_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::sync_channel(1);
        let w = Watcher::new(dir.path(), tx);
        assert!(w.take_rescan(), "the first scan is always due");
        assert!(!w.take_rescan());
        std::fs::create_dir_all(dir.path().join("ns_p_u/c")).unwrap();
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert!(w.take_rescan());
    }
}
