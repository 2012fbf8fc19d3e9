//! Finding the log files of the pods on this node, and only those.
//!
//! The kubelet lays pod logs out as
//! `<pods_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`, and
//! rotates `0.log` by renaming it to `0.log.<YYYYMMDD-hhmmss>` (later
//! gzipped). A scan walks the three levels and classifies every file as
//! active (`*.log`), rotated (`*.log.<suffix>`, uncompressed) or ignored
//! (compressed rotated files, anything else). The inode comes from the
//! directory entry, so a scan costs one `readdir` per directory and no
//! `stat` per regular file; the tailer compares it with the inode it has
//! open to notice a rotation.
//!
//! # Confinement
//!
//! A log file may be a symbolic link: with Docker (dockershim or
//! cri-dockerd) the kubelet links `0.log` to the container's json-file log
//! under `/var/lib/docker/containers`. Anyone who can write under the pods
//! directory could also link `0.log` to the service account token or a
//! host secret, and the agent would ship it under labels of their choosing.
//! So a file is read only if it *resolves* inside the pods directory or one
//! of `allowed_log_dirs` ([`Confinement`]): every candidate reached through
//! a link (of the file, its container directory or its pod directory) is
//! resolved with `realpath` and checked, and [`open_log`] checks again what
//! it actually opened (the path of the open descriptor, from
//! `/proc/self/fd`), so a link swapped in between the scan and the open is
//! refused too. Refused files are counted
//! (`larch_agent_refused_files_total{reason}`) and logged once each. The
//! labels still come from the path under the pods directory.
//!
//! # Watching
//!
//! [`Scanner`] watches every directory it lists (inotify through `notify`,
//! one non-recursive watch per directory) *before* listing it, so a file
//! created in a new directory is either seen by the listing or announced by
//! an event: a directory event makes the reader scan again at once, which
//! watches and lists the new directory and whatever it already holds. A
//! pods directory that does not exist yet is waited for by watching its
//! nearest existing ancestor (and checking every poll interval). The reader
//! also rescans every `rescan_interval` in case events were lost (inotify
//! queue overflow, network file systems, the watch limit).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::metrics::{CounterVec, Registry};

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
    /// Path under the pods directory (labels and positions refer to it).
    pub path: PathBuf,
    /// What to open: `path` itself, or where its links resolve (already
    /// checked against the allowed directories).
    pub target: PathBuf,
    /// Active or rotated.
    pub kind: FileKind,
    /// Inode number of the file (of the link's target for a link).
    pub ino: u64,
    /// Namespace, pod, uid and container from the path.
    pub pod: Arc<PodFile>,
}

/// Why a log file was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It resolves outside the pods directory and `allowed_log_dirs`.
    OutsideAllowedDirs,
    /// It is (or resolves to) something other than a regular file.
    NotRegularFile,
    /// What was opened is not what the scan checked (a link swapped in).
    ChangedAfterDiscovery,
}

impl Refusal {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::OutsideAllowedDirs => "outside_allowed_dirs",
            Refusal::NotRegularFile => "not_a_regular_file",
            Refusal::ChangedAfterDiscovery => "changed_after_discovery",
        }
    }
}

/// The directories log files may resolve into, and the record of files
/// refused (each logged and counted once while it exists).
#[derive(Debug)]
pub struct Confinement {
    pods_dir: PathBuf,
    allowed: Vec<PathBuf>,
    /// Resolved forms of `pods_dir` and `allowed` (refreshed at every
    /// scan, since a directory may appear after the start).
    roots: Mutex<Vec<PathBuf>>,
    refused: Mutex<HashSet<PathBuf>>,
    counter: Option<CounterVec>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The resolved form of `dir`: `realpath` when it exists, else the
/// absolute path (nothing can resolve into a directory that does not
/// exist, so this only keeps the list complete).
fn resolve_root(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

impl Confinement {
    /// Files must resolve inside `pods_dir` or one of `allowed`.
    pub fn new(pods_dir: &Path, allowed: &[PathBuf]) -> Confinement {
        let c = Confinement {
            pods_dir: pods_dir.to_path_buf(),
            allowed: allowed.to_vec(),
            roots: Mutex::new(Vec::new()),
            refused: Mutex::new(HashSet::new()),
            counter: None,
        };
        c.refresh();
        c
    }

    /// Like [`Confinement::new`], counting refusals in `registry`.
    pub fn with_metrics(pods_dir: &Path, allowed: &[PathBuf], registry: &Registry) -> Self {
        let mut c = Confinement::new(pods_dir, allowed);
        c.counter = Some(refused_counter(registry));
        c
    }

    /// Resolves the directories again.
    pub fn refresh(&self) {
        let mut roots = vec![resolve_root(&self.pods_dir)];
        roots.extend(self.allowed.iter().map(|d| resolve_root(d)));
        *lock(&self.roots) = roots;
    }

    /// True if the resolved path `p` lies inside an allowed directory.
    pub fn allows(&self, p: &Path) -> bool {
        lock(&self.roots).iter().any(|r| p.starts_with(r))
    }

    /// Records a refusal of `path`: logged and counted the first time.
    pub fn refuse(&self, path: &Path, why: Refusal, detail: &str) {
        if !lock(&self.refused).insert(path.to_path_buf()) {
            return;
        }
        if let Some(c) = &self.counter {
            c.with(&[why.as_str()]).inc();
        }
        tracing::warn!(path = %path.display(), reason = why.as_str(), detail, "Refusing to read a log file: only files inside the pods directory or allowed_log_dirs are read.");
    }

    /// Forgets refused paths that no longer exist, so a path refused once
    /// and created again later is reported again.
    fn prune(&self) {
        lock(&self.refused).retain(|p| p.symlink_metadata().is_ok());
    }

    /// Number of refused paths remembered (for tests).
    pub fn refused_len(&self) -> usize {
        lock(&self.refused).len()
    }
}

/// The refusal counter family.
pub fn refused_counter(registry: &Registry) -> CounterVec {
    registry.counter_vec(
        "larch_agent_refused_files_total",
        "Log files not read because they resolve outside the pods directory and allowed_log_dirs, are not regular files, or changed between discovery and open.",
        &["reason"],
    )
}

/// The path of an open descriptor, as the kernel knows it.
fn fd_path(file: &File) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let p = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    // A file deleted since it was opened reads "<path> (deleted)".
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    Ok(match b.strip_suffix(b" (deleted)") {
        Some(s) => PathBuf::from(std::ffi::OsStr::from_bytes(s)),
        None => p,
    })
}

/// Why [`open_log`] failed.
#[derive(Debug)]
pub enum OpenError {
    /// The file could not be opened or examined.
    Io(std::io::Error),
    /// The file was refused.
    Refused(Refusal, String),
}

/// Opens a file found by a scan for reading: without following a link in
/// its last component, without blocking (a FIFO swapped in cannot hang the
/// reader), and only if what was opened is a regular file inside the
/// confinement (checked on the open descriptor itself).
pub fn open_log(found: &Found, confinement: Option<&Confinement>) -> Result<File, OpenError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&found.target)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                OpenError::Refused(
                    Refusal::ChangedAfterDiscovery,
                    format!("{} became a symbolic link", found.target.display()),
                )
            } else {
                OpenError::Io(e)
            }
        })?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::Refused(
            Refusal::NotRegularFile,
            "not a regular file".into(),
        ));
    }
    let Some(c) = confinement else {
        return Ok(file);
    };
    match fd_path(&file) {
        Ok(real) if c.allows(&real) => Ok(file),
        Ok(real) => Err(OpenError::Refused(
            Refusal::ChangedAfterDiscovery,
            format!("opened {}", real.display()),
        )),
        Err(_) => {
            // No /proc: resolve the path and check that it names the file
            // that was opened.
            let real = std::fs::canonicalize(&found.target).map_err(OpenError::Io)?;
            let again = std::fs::metadata(&real).map_err(OpenError::Io)?;
            if c.allows(&real) && again.dev() == meta.dev() && again.ino() == meta.ino() {
                Ok(file)
            } else {
                Err(OpenError::Refused(
                    Refusal::ChangedAfterDiscovery,
                    format!("resolves to {}", real.display()),
                ))
            }
        }
    }
}

/// Lists every log file under `pods_dir` that resolves inside it.
/// Unreadable directories are skipped: a pod directory may vanish while it
/// is being listed.
pub fn scan(pods_dir: &Path) -> std::io::Result<Vec<Found>> {
    let c = Confinement::new(pods_dir, &[]);
    walk(pods_dir, &c, &mut |_| {})
}

/// Lists every log file under `pods_dir` that `confinement` allows,
/// calling `visit` on each directory before listing it (to watch it).
pub fn scan_with(
    pods_dir: &Path,
    confinement: &Confinement,
    visit: &mut dyn FnMut(&Path),
) -> std::io::Result<Vec<Found>> {
    walk(pods_dir, confinement, visit)
}

/// A directory entry that may be a link to a directory: `Some(linked)` if
/// it is a directory to descend into (after checking a link's target).
fn descend(entry: &std::fs::DirEntry, c: &Confinement) -> Option<bool> {
    let ft = entry.file_type().ok()?;
    if ft.is_dir() {
        return Some(false);
    }
    if !ft.is_symlink() {
        return None;
    }
    let real = std::fs::canonicalize(entry.path()).ok()?;
    if !real.is_dir() {
        return None;
    }
    if !c.allows(&real) {
        c.refuse(
            &entry.path(),
            Refusal::OutsideAllowedDirs,
            &format!("directory link resolves to {}", real.display()),
        );
        return None;
    }
    Some(true)
}

fn walk(
    pods_dir: &Path,
    c: &Confinement,
    visit: &mut dyn FnMut(&Path),
) -> std::io::Result<Vec<Found>> {
    use std::os::unix::fs::{DirEntryExt, MetadataExt};
    let mut out = Vec::new();
    visit(pods_dir);
    for pod_entry in std::fs::read_dir(pods_dir)? {
        let Ok(pod_entry) = pod_entry else { continue };
        let pod_name = pod_entry.file_name();
        let Some(pod_name) = pod_name.to_str() else {
            continue;
        };
        let Some(pod_linked) = descend(&pod_entry, c) else {
            continue;
        };
        let pod_path = pod_entry.path();
        visit(&pod_path);
        let Ok(containers) = std::fs::read_dir(&pod_path) else {
            continue;
        };
        for ce in containers {
            let Ok(ce) = ce else { continue };
            let c_name = ce.file_name();
            let Some(c_name) = c_name.to_str() else {
                continue;
            };
            let Some(pod) = PodFile::parse(pod_name, c_name) else {
                continue;
            };
            let Some(c_linked) = descend(&ce, c) else {
                continue;
            };
            let c_path = ce.path();
            visit(&c_path);
            let Ok(files) = std::fs::read_dir(&c_path) else {
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
                let path = f.path();
                let linked = pod_linked || c_linked || ft.is_symlink();
                if !linked {
                    if !ft.is_file() {
                        if !ft.is_dir() {
                            c.refuse(&path, Refusal::NotRegularFile, "not a regular file");
                        }
                        continue;
                    }
                    out.push(Found {
                        target: path.clone(),
                        path,
                        kind,
                        ino: f.ino(),
                        pod: pod.clone(),
                    });
                    continue;
                }
                // Reached through a link: read it only if it resolves
                // inside an allowed directory. Dangling links (a removed
                // container's log) are skipped silently.
                let Ok(real) = std::fs::canonicalize(&path) else {
                    continue;
                };
                if !c.allows(&real) {
                    c.refuse(
                        &path,
                        Refusal::OutsideAllowedDirs,
                        &format!("resolves to {}", real.display()),
                    );
                    continue;
                }
                let Ok(m) = std::fs::metadata(&real) else {
                    continue;
                };
                if !m.is_file() {
                    c.refuse(&path, Refusal::NotRegularFile, "not a regular file");
                    continue;
                }
                out.push(Found {
                    path,
                    target: real,
                    kind,
                    ino: m.ino(),
                    pod: pod.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// File-system events turned into wake-ups for the reader, with one
/// non-recursive watch per directory the scanner lists.
pub struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    rescan: Arc<AtomicBool>,
    watched: HashSet<PathBuf>,
    warned: bool,
}

impl Watcher {
    /// A watcher with no watches yet. Directory changes set the rescan
    /// flag; any event but a read sends a wake-up on `wake` (at most one
    /// pending). If events are unavailable (no inotify) the agent relies on
    /// periodic rescans and says so.
    pub fn new(wake: mpsc::SyncSender<()>) -> Watcher {
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
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "File-system events unavailable; relying on periodic rescans.");
                None
            }
        };
        Watcher {
            inner,
            rescan,
            watched: HashSet::new(),
            warned: false,
        }
    }

    /// Watches `dir` (once).
    fn add(&mut self, dir: &Path) {
        let Some(w) = &mut self.inner else { return };
        if self.watched.contains(dir) {
            return;
        }
        match w.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf());
            }
            Err(e) => {
                // A directory that vanished meanwhile is no news; anything
                // else (the watch limit) is said once.
                if dir.exists() && !self.warned {
                    self.warned = true;
                    tracing::warn!(error = %e, path = %dir.display(), "Cannot watch a directory; new files there are found by the periodic rescan.");
                }
            }
        }
    }

    /// Drops the watches of directories not in `keep`.
    fn retain(&mut self, keep: &HashSet<PathBuf>) {
        let gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|p| !keep.contains(*p))
            .cloned()
            .collect();
        for p in gone {
            self.watched.remove(&p);
            if let Some(w) = &mut self.inner {
                // Fails for a deleted directory, whose watch is gone already.
                let _ = w.unwatch(&p);
            }
        }
    }

    /// True (once) if a directory changed since the last call.
    pub fn take_rescan(&self) -> bool {
        self.rescan.swap(false, Ordering::AcqRel)
    }

    /// True if events are being delivered.
    pub fn is_watching(&self) -> bool {
        self.inner.is_some()
    }

    /// Number of directories watched.
    pub fn watches(&self) -> usize {
        self.watched.len()
    }
}

/// Scans the pods directory, keeping a watch on every directory it lists
/// (or, while the pods directory does not exist, on its nearest existing
/// ancestor).
pub struct Scanner {
    pods_dir: PathBuf,
    confinement: Arc<Confinement>,
    watcher: Watcher,
    missing: bool,
}

impl Scanner {
    /// A scanner of `pods_dir`; events wake the reader through `wake`.
    pub fn new(
        pods_dir: &Path,
        confinement: Arc<Confinement>,
        wake: mpsc::SyncSender<()>,
    ) -> Scanner {
        Scanner {
            pods_dir: pods_dir.to_path_buf(),
            confinement,
            watcher: Watcher::new(wake),
            missing: false,
        }
    }

    /// True (once) if an event asked for a rescan.
    pub fn take_rescan(&self) -> bool {
        self.watcher.take_rescan()
    }

    /// True while the pods directory does not exist.
    pub fn is_missing(&self) -> bool {
        self.missing
    }

    /// The watcher (for its state).
    pub fn watcher(&self) -> &Watcher {
        &self.watcher
    }

    /// Lists the log files, watching each directory before listing it.
    /// `Err(NotFound)` while the pods directory does not exist; its nearest
    /// existing ancestor is watched meanwhile.
    pub fn scan(&mut self) -> std::io::Result<Vec<Found>> {
        let mut visited: HashSet<PathBuf> = HashSet::new();
        if !self.pods_dir.is_dir() {
            self.missing = true;
            let abs = std::path::absolute(&self.pods_dir).unwrap_or_else(|_| self.pods_dir.clone());
            if let Some(a) = abs.ancestors().skip(1).find(|a| a.is_dir()) {
                self.watcher.add(a);
                visited.insert(a.to_path_buf());
            }
            self.watcher.retain(&visited);
            // The directory may have appeared while the watch was added.
            if !self.pods_dir.is_dir() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the pods directory does not exist",
                ));
            }
            visited.clear();
        }
        self.missing = false;
        self.confinement.refresh();
        let watcher = &mut self.watcher;
        let found = walk(&self.pods_dir, &self.confinement, &mut |d| {
            watcher.add(d);
            visited.insert(d.to_path_buf());
        });
        self.watcher.retain(&visited);
        self.confinement.prune();
        found
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
        assert_eq!(found[0].target, found[0].path);
        assert!(found[0].ino != 0);
    }

    /// A pods directory with one link of each kind; returns (root, pods).
    fn linked_tree() -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let containers = root.join("containers");
        std::fs::create_dir_all(&containers).unwrap();
        std::fs::write(containers.join("abc-json.log"), "docker\n").unwrap();
        let secrets = root.join("secrets");
        std::fs::create_dir_all(secrets.join("app")).unwrap();
        std::fs::write(secrets.join("token"), "secret\n").unwrap();
        std::fs::write(secrets.join("app/0.log"), "secret\n").unwrap();
        let pods = root.join("pods");
        let c = pods.join("ns_docker_u1/app");
        std::fs::create_dir_all(&c).unwrap();
        symlink(containers.join("abc-json.log"), c.join("0.log")).unwrap();
        symlink(root.join("missing"), c.join("1.log")).unwrap();
        let c = pods.join("kube-system_evil_u2/app");
        std::fs::create_dir_all(&c).unwrap();
        symlink(secrets.join("token"), c.join("0.log")).unwrap();
        // A relative link climbing out of the pods directory.
        symlink("../../../secrets/token", c.join("2.log")).unwrap();
        // A link to another file inside the pods directory is allowed.
        std::fs::write(pods.join("ns_docker_u1/app/3.log"), "inside\n").unwrap();
        symlink(pods.join("ns_docker_u1/app/3.log"), c.join("3.log")).unwrap();
        // A linked pod directory outside.
        symlink(&secrets, pods.join("default_linked_u3")).unwrap();
        (dir, pods)
    }

    #[test]
    fn links_are_followed_only_into_allowed_directories() {
        use std::os::unix::fs::MetadataExt;
        let (dir, pods) = linked_tree();
        let c = Confinement::new(&pods, &[dir.path().join("containers")]);
        let found = walk(&pods, &c, &mut |_| {}).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|f| f.path.strip_prefix(&pods).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "kube-system_evil_u2/app/3.log",
                "ns_docker_u1/app/0.log",
                "ns_docker_u1/app/3.log"
            ]
        );
        let docker = &found[1];
        let target = dir.path().join("containers/abc-json.log");
        assert_eq!(docker.target, std::fs::canonicalize(&target).unwrap());
        assert_eq!(docker.ino, std::fs::metadata(&target).unwrap().ino());
        // The token (twice) and the linked pod directory; dangling links
        // are not refusals.
        assert_eq!(c.refused_len(), 3);
        // Without the docker directory allowed, its link is refused too.
        let strict = Confinement::new(&pods, &[]);
        let found = walk(&pods, &strict, &mut |_| {}).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(strict.refused_len(), 4);
    }

    #[test]
    fn open_checks_the_descriptor() {
        use std::os::unix::fs::symlink;
        let (dir, pods) = linked_tree();
        let c = Confinement::new(&pods, &[]);
        let good = walk(&pods, &c, &mut |_| {}).unwrap();
        let f = good
            .iter()
            .find(|f| f.path.ends_with("ns_docker_u1/app/3.log"));
        let f = f.unwrap().clone();
        assert!(open_log(&f, Some(&c)).is_ok());
        // The file is replaced by a link after the scan.
        std::fs::remove_file(&f.target).unwrap();
        symlink(dir.path().join("secrets/token"), &f.target).unwrap();
        match open_log(&f, Some(&c)) {
            Err(OpenError::Refused(Refusal::ChangedAfterDiscovery, _)) => {}
            other => panic!("{other:?}"),
        }
        // The container directory is replaced by a link to a directory
        // outside that holds a file of the same name.
        let cdir = pods.join("ns_docker_u1/app");
        std::fs::rename(&cdir, pods.join("moved")).unwrap();
        symlink(dir.path().join("secrets/app"), &cdir).unwrap();
        let swapped = Found {
            target: cdir.join("0.log"),
            ..f.clone()
        };
        match open_log(&swapped, Some(&c)) {
            Err(OpenError::Refused(Refusal::ChangedAfterDiscovery, d)) => {
                assert!(d.contains("secrets"), "{d}")
            }
            other => panic!("{other:?}"),
        }
        // A FIFO does not block the open.
        let fifo = pods.join("fifo.log");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let ff = Found {
            target: fifo.clone(),
            path: fifo,
            ..f
        };
        match open_log(&ff, Some(&c)) {
            Err(OpenError::Refused(Refusal::NotRegularFile, _)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scanner_watches_new_nested_directories_and_a_missing_pods_dir() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("a/pods");
        let (tx, rx) = mpsc::sync_channel(1);
        let c = Arc::new(Confinement::new(&pods, &[]));
        let mut s = Scanner::new(&pods, c, tx);
        assert!(s.take_rescan(), "the first scan is always due");
        assert!(!s.take_rescan());
        assert_eq!(s.scan().unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert!(s.is_missing());
        assert_eq!(s.watcher().watches(), 1, "the nearest ancestor");
        std::fs::create_dir_all(pods.join("ns_p_u")).unwrap();
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert!(s.take_rescan());
        // The ancestor's watch saw `a`: the next scan goes one level down
        // (or finds pods already).
        let mut found = loop {
            match s.scan() {
                Ok(f) => break f,
                Err(_) => {
                    rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
                }
            }
        };
        assert!(found.is_empty());
        assert_eq!(s.watcher().watches(), 2, "pods and the pod directory");
        // A nested directory and its file, created right after: the pod
        // directory's watch reports the container directory.
        let c = pods.join("ns_p_u/c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("0.log"), "x\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while found.is_empty() {
            assert!(std::time::Instant::now() < deadline);
            let _ = rx.recv_timeout(std::time::Duration::from_millis(100));
            if s.take_rescan() {
                found = s.scan().unwrap();
            }
        }
        assert_eq!(found[0].path, c.join("0.log"));
        assert_eq!(s.watcher().watches(), 3);
        std::fs::remove_dir_all(pods.join("ns_p_u")).unwrap();
        assert!(s.scan().unwrap().is_empty());
        assert_eq!(s.watcher().watches(), 1);
    }
}
