//! Reloading files when they change: the tokens file, certificates and
//! keys.
//!
//! A thread polls the files' metadata (modification time, size, inode,
//! following symbolic links, so a Kubernetes Secret's atomic swap of its
//! `..data` link counts) every interval. A change is acted on once the
//! files have looked the same for one more short pause (a writer may not
//! be done), and a reload that fails keeps what was loaded before: the
//! failure is logged once per version of the files and counted by the
//! owner. The thread ends when its owner is dropped.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

/// What is reloaded when its files change.
pub trait Reload: Send + Sync + 'static {
    /// Loads the files again. `Ok` carries a summary for the log line;
    /// `Err` the reason, and what was loaded before stays in use.
    fn reload(&self) -> Result<String, String>;
}

/// How the files look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp(Vec<Option<(Option<SystemTime>, u64, u64)>>);

/// The stamp of `paths` now.
pub fn stamp(paths: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(
        paths
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().ok(), m.len(), m.ino()))
            })
            .collect(),
    )
}

/// Pause between seeing a change and acting on it.
const SETTLE: Duration = Duration::from_millis(100);

/// Watches `paths` every `interval` for `what` (a name for the logs,
/// `tokens file`, `TLS certificate`) and calls `target.reload()` on
/// change, until `target` is dropped.
pub fn spawn<T: Reload>(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
    target: Weak<T>,
) -> std::io::Result<()> {
    let mut applied = stamp(&paths);
    std::thread::Builder::new()
        .name(format!("larch-watch-{}", what.replace(' ', "-")))
        .spawn(move || {
            let mut failed: Option<Stamp> = None;
            loop {
                std::thread::sleep(interval);
                let Some(target) = target.upgrade() else {
                    return;
                };
                let now = stamp(&paths);
                if now == applied || failed.as_ref() == Some(&now) {
                    continue;
                }
                std::thread::sleep(SETTLE);
                if stamp(&paths) != now {
                    continue;
                }
                match target.reload() {
                    Ok(summary) => {
                        tracing::info!(what, summary = %summary, "Reloaded after a change.");
                        applied = now;
                        failed = None;
                    }
                    Err(e) => {
                        tracing::error!(what, error = %e, "Reloading after a change failed; keeping the last good version.");
                        failed = Some(now);
                    }
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter {
        path: PathBuf,
        loads: AtomicUsize,
        last: parking_lot::Mutex<String>,
    }

    impl Reload for Counter {
        fn reload(&self) -> Result<String, String> {
            let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
            if text.contains("bad") {
                return Err("bad".into());
            }
            self.loads.fetch_add(1, Ordering::SeqCst);
            *self.last.lock() = text;
            Ok("ok".into())
        }
    }

    #[test]
    fn reloads_on_change_and_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let c = Arc::new(Counter {
            path: path.clone(),
            loads: AtomicUsize::new(0),
            last: parking_lot::Mutex::new(String::new()),
        });
        spawn(
            "test",
            vec![path.clone()],
            Duration::from_millis(20),
            Arc::downgrade(&c),
        )
        .unwrap();
        let wait = |f: &dyn Fn() -> bool| {
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while !f() {
                assert!(std::time::Instant::now() < end, "timed out");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.loads.load(Ordering::SeqCst), 0, "no change, no reload");
        std::fs::write(&path, "two, longer").unwrap();
        wait(&|| *c.last.lock() == "two, longer");
        std::fs::write(&path, "bad").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(*c.last.lock(), "two, longer");
        // A replacement through rename (a Secret's swap) is seen.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, "three").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        wait(&|| *c.last.lock() == "three");
    }
}
