//! Reading files line by line through rotation, truncation and deletion.
//!
//! The tailer is synchronous code driven by one reader thread (like
//! Vector's file server): [`Tailer::sync`] reconciles the tailed files with
//! a directory scan, [`Tailer::poll`] reads what each file gained since the
//! last poll and hands complete lines to a [`LineConsumer`].
//!
//! * One shared read buffer serves every file; a file keeps only the bytes
//!   of an unfinished last line, so hundreds of idle files cost a file
//!   descriptor and a few hundred bytes each.
//! * A file is read with `pread` at its own offset, one `fstat` per poll
//!   detects growth and truncation, and a fingerprint of its first bytes
//!   (see [`crate::file_id`]) detects a truncate-and-rewrite that the size
//!   alone cannot show.
//! * Rename rotation: when the path's inode changes, the old file (still
//!   open) becomes *draining*: it is read to its end, and closed once it has
//!   been quiet for `rotate_wait`; the new file at the path is read from its
//!   start. Deleted files (deleted pods) drain the same way.
//! * Copytruncate: the size drops below the offset, or the first bytes
//!   change; reading restarts at 0.
//! * Over-long lines: at `max_line_bytes` without a newline the line is cut,
//!   handed over marked truncated, and the rest up to the newline skipped.
//! * Back-pressure: a consumer whose output is full says so
//!   ([`LineConsumer::paused`]); the poll stops before the next line and
//!   rewinds the file's offset to it, so nothing is held in memory and
//!   the lines are read again later. [`UnreadBytes`] reports the backlog
//!   from `fstat` at any moment, paused or not.
//! * Files are opened with [`crate::discovery::open_log`], which refuses a
//!   file that is not what the scan checked (see the discovery module).
//!
//! On start, files are matched with saved positions by device, inode and
//! fingerprint; a rotated file that was still being read when the agent
//! stopped is drained from its saved offset.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::discovery::{Confinement, FileKind, Found, OpenError, PodFile, open_log};
use crate::file_id::{Fingerprint, dev_ino};
use crate::positions::PositionRecord;

/// Settings of the tailer.
#[derive(Clone, Debug)]
pub struct TailerConfig {
    /// Most bytes read from one file per poll, so one busy file cannot
    /// starve the others.
    pub read_budget: usize,
    /// Longest line kept whole (CRI/docker envelope included).
    pub max_line_bytes: usize,
    /// A renamed or deleted file is closed after being quiet this long.
    pub rotate_wait: Duration,
    /// Directories files must resolve into (checked again on the open
    /// descriptor); `None` reads whatever the scan found.
    pub confinement: Option<Arc<Confinement>>,
}

/// The bytes not read yet of the files a [`Tailer`] has open, computed
/// when asked (`fstat` of each open file against its read offset), so the
/// figure is right even while the reader waits for the sender.
#[derive(Clone, Debug, Default)]
pub struct UnreadBytes(Arc<Mutex<OpenFiles>>);

/// Open files by key, with their published read offsets.
type OpenFiles = HashMap<u64, (Arc<File>, Arc<AtomicU64>)>;

impl UnreadBytes {
    fn lock(&self) -> std::sync::MutexGuard<'_, OpenFiles> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sum over the open files of `size - read offset`.
    pub fn total(&self) -> u64 {
        self.lock()
            .values()
            .map(|(f, off)| {
                f.metadata()
                    .map(|m| m.len().saturating_sub(off.load(Ordering::Relaxed)))
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// A file being tailed, as consumers see it.
#[derive(Clone, Debug)]
pub struct FileInfo {
    /// Identifies the file for positions while the agent runs.
    pub key: u64,
    /// The path the file was opened at.
    pub path: Arc<PathBuf>,
    /// Namespace, pod and container from the path.
    pub pod: Arc<PodFile>,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Fingerprint of the first bytes (grows with the file).
    pub fp: Fingerprint,
}

/// A consumer's answer when a file is found.
pub enum Opened<S> {
    /// Tail it, with this per-file state.
    Tail(S),
    /// Never tail it (e.g. dropped by relabeling).
    Skip,
    /// Ask again later (e.g. waiting for pod metadata).
    Later,
}

/// Receives the lines of the tailed files.
pub trait LineConsumer {
    /// Per-file state (decoder, pipeline state, labels).
    type State;
    /// A file is about to be tailed from byte `start`.
    fn open(&mut self, info: &FileInfo, start: u64) -> Opened<Self::State>;
    /// A complete line without its `\n`, occupying bytes `start..end` of
    /// the file (`end` is just after the newline). `truncated` marks a line
    /// cut at the length limit.
    fn line(
        &mut self,
        state: &mut Self::State,
        info: &FileInfo,
        line: &[u8],
        start: u64,
        end: u64,
        truncated: bool,
    );
    /// The file was truncated (or rewritten); reading restarts at 0.
    fn truncated(&mut self, state: &mut Self::State, info: &FileInfo);
    /// The file is finished (drained after rotation or deletion); `end` is
    /// the offset of its last byte read.
    fn close(&mut self, state: Self::State, info: &FileInfo, end: u64);
    /// True while the consumer takes no more lines (its output is full):
    /// a poll stops before the next line, leaving it (and the rest of the
    /// file) to be read again at a later poll.
    fn paused(&self) -> bool {
        false
    }
}

struct Tailed<S> {
    info: FileInfo,
    file: Arc<File>,
    offset: u64,
    /// `offset`, published for [`UnreadBytes`].
    read_to: Arc<AtomicU64>,
    size_seen: u64,
    /// Modification time at the last poll: a file truncated and rewritten
    /// to exactly its old size is noticed by its mtime.
    mtime_seen: Option<std::time::SystemTime>,
    /// Bytes of an unfinished last line, starting at `offset - remainder.len()`.
    remainder: Vec<u8>,
    skipping: bool,
    draining: bool,
    last_data: Instant,
    state: S,
}

/// Publishes a file's read offset for [`UnreadBytes`].
fn publish<S>(f: &Tailed<S>) {
    f.read_to.store(f.offset, Ordering::Relaxed);
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Bytes read from files.
    pub bytes: u64,
    /// Lines handed to the consumer.
    pub lines: u64,
    /// Lines cut at the length limit.
    pub truncated_lines: u64,
    /// Truncations (copytruncate) detected.
    pub truncations: u64,
    /// Files closed after draining.
    pub closed: u64,
}

/// The set of tailed files.
pub struct Tailer<S> {
    cfg: TailerConfig,
    files: Vec<Tailed<S>>,
    /// Active path → index key of the file currently at that path.
    active: HashMap<Arc<PathBuf>, u64>,
    /// (path, inode) the consumer declined for good.
    skipped: HashSet<(PathBuf, u64)>,
    /// Saved positions not yet matched (only until the first sync).
    resume: Option<HashMap<(u64, u64), PositionRecord>>,
    next_key: u64,
    /// Open files and their read offsets, for the unread-bytes figure.
    unread: UnreadBytes,
    /// Rotated files to read although no saved position names them (the
    /// positions were damaged, so they may hold unacknowledged lines), by
    /// inode; `None` when the positions were intact.
    recover_rotated: Option<HashSet<u64>>,
    /// True until the first sync.
    first_sync: bool,
}

impl<S> Tailer<S> {
    /// A tailer that resumes from `positions` at its first sync.
    pub fn new(cfg: TailerConfig, positions: Vec<PositionRecord>) -> Self {
        let resume = positions.into_iter().map(|r| ((r.dev, r.ino), r)).collect();
        Tailer {
            cfg,
            files: Vec::new(),
            active: HashMap::new(),
            skipped: HashSet::new(),
            resume: Some(resume),
            next_key: 1,
            unread: UnreadBytes::default(),
            recover_rotated: None,
            first_sync: true,
        }
    }

    /// Like [`Tailer::new`] for positions that were damaged: besides the
    /// files `positions` names, the rotated (uncompressed) files present at
    /// the first sync are read from their start, since some of them may
    /// hold lines never acknowledged. Lines the store already has are sent
    /// again and dropped there as duplicates; none is skipped.
    pub fn recovering(cfg: TailerConfig, positions: Vec<PositionRecord>) -> Self {
        let mut t = Tailer::new(cfg, positions);
        t.recover_rotated = Some(HashSet::new());
        t
    }

    /// A handle computing the bytes not read yet, usable from any thread.
    pub fn unread(&self) -> UnreadBytes {
        self.unread.clone()
    }

    /// Number of files open (active and draining).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file is open.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Sum over files of bytes not yet read (`size - offset`, as of the
    /// last poll).
    pub fn unread_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.size_seen.saturating_sub(f.offset))
            .sum()
    }

    /// The per-file states, with their infos and read offsets.
    pub fn states_mut(&mut self) -> impl Iterator<Item = (&FileInfo, u64, &mut S)> {
        self.files
            .iter_mut()
            .map(|f| (&f.info, f.offset, &mut f.state))
    }

    /// The state of the file with `key`.
    pub fn state_mut(&mut self, key: u64) -> Option<(&FileInfo, &mut S)> {
        self.files
            .iter_mut()
            .find(|f| f.info.key == key)
            .map(|f| (&f.info, &mut f.state))
    }

    /// Reconciles the tailed files with a scan of the pods directory.
    pub fn sync<C: LineConsumer<State = S>>(&mut self, found: &[Found], consumer: &mut C) {
        let now = Instant::now();
        // Active paths whose inode changed or that vanished: drain them.
        let current: HashMap<&PathBuf, u64> = found
            .iter()
            .filter(|f| f.kind == FileKind::Active)
            .map(|f| (&f.path, f.ino))
            .collect();
        let mut rotated = Vec::new();
        for (path, key) in &self.active {
            let Some(f) = self.files.iter_mut().find(|f| f.info.key == *key) else {
                continue;
            };
            if current.get(path.as_ref()) != Some(&f.info.ino) {
                tracing::debug!(path = %path.display(), "File renamed or deleted; draining it.");
                f.draining = true;
                f.last_data = now;
                rotated.push(path.clone());
            }
        }
        for p in rotated {
            self.active.remove(&p);
        }

        let mut resume = self.resume.take().unwrap_or_default();
        if let Some(recover) = &mut self.recover_rotated {
            if std::mem::take(&mut self.first_sync) {
                recover.extend(
                    found
                        .iter()
                        .filter(|f| f.kind == FileKind::Rotated)
                        .map(|f| f.ino),
                );
                if !recover.is_empty() {
                    tracing::warn!(
                        files = recover.len(),
                        "Positions were damaged: reading rotated files from their start (lines the store already has are dropped there as duplicates)."
                    );
                }
            } else {
                let present: HashSet<u64> = found.iter().map(|f| f.ino).collect();
                recover.retain(|i| present.contains(i));
            }
        }
        self.first_sync = false;
        for f in found {
            match f.kind {
                FileKind::Active => {
                    if self.active.contains_key(&f.path) {
                        continue;
                    }
                    if self.skipped.contains(&(f.path.clone(), f.ino)) {
                        continue;
                    }
                    // A file we already drain (renamed back?) is not opened twice.
                    if self
                        .files
                        .iter()
                        .any(|t| t.info.ino == f.ino && t.info.path.as_ref() == &f.path)
                    {
                        continue;
                    }
                    self.open(f, &mut resume, false, consumer, now);
                }
                FileKind::Rotated => {
                    // Only a rotated file with a saved position is read: it
                    // was being read when the agent stopped (or, after
                    // damaged positions, may have been).
                    let recover = self
                        .recover_rotated
                        .as_ref()
                        .is_some_and(|r| r.contains(&f.ino));
                    if (recover || resume.values().any(|r| r.ino == f.ino))
                        && !self.files.iter().any(|t| t.info.ino == f.ino)
                    {
                        self.open(f, &mut resume, true, consumer, now);
                    }
                }
            }
        }
        // Forget declined files that are gone, so pod churn does not grow
        // the set.
        self.skipped.retain(|(p, ino)| current.get(p) == Some(ino));
        for r in resume.values() {
            tracing::info!(path = %r.path.display(), offset = r.offset, "Saved position of a file that no longer exists; forgetting it.");
        }
    }

    fn open<C: LineConsumer<State = S>>(
        &mut self,
        found: &Found,
        resume: &mut HashMap<(u64, u64), PositionRecord>,
        rotated: bool,
        consumer: &mut C,
        now: Instant,
    ) {
        let file = match open_log(found, self.cfg.confinement.as_deref()) {
            Ok(f) => f,
            Err(OpenError::Io(e)) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %found.path.display(), error = %e, "Cannot open log file.");
                }
                return;
            }
            Err(OpenError::Refused(why, detail)) => {
                if let Some(c) = &self.cfg.confinement {
                    c.refuse(&found.path, why, &detail);
                }
                return;
            }
        };
        let (dev, ino, size) = match dev_ino(&file) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(path = %found.path.display(), error = %e, "Cannot stat log file.");
                return;
            }
        };
        let mut start = 0;
        let saved = resume.get(&(dev, ino)).cloned();
        let fp = match Fingerprint::of(&file, size) {
            Ok(fp) => fp,
            Err(e) => {
                tracing::warn!(path = %found.path.display(), error = %e, "Cannot read log file.");
                return;
            }
        };
        // A saved position for this inode means the agent was reading it:
        // resume if it still starts with the same bytes, else (truncated
        // and rewritten, or the inode was reused) everything in it is new.
        let known = saved.is_some();
        if let Some(rec) = saved {
            match rec.fp.matches(&file) {
                Ok(true) if rec.offset <= size => start = rec.offset,
                Ok(true) => {
                    tracing::info!(path = %found.path.display(), saved = rec.offset, size, "File is shorter than its saved position (truncated while stopped); reading it from the start.");
                }
                _ => {
                    tracing::info!(path = %found.path.display(), "File changed while stopped (rewritten, or its inode reused); reading it from the start.");
                }
            }
        }
        let recover = self
            .recover_rotated
            .as_ref()
            .is_some_and(|r| r.contains(&ino));
        if rotated && !known && !recover {
            return;
        }
        let path = Arc::new(found.path.clone());
        let info = FileInfo {
            key: self.next_key,
            path: path.clone(),
            pod: found.pod.clone(),
            dev,
            ino,
            fp,
        };
        let mtime = file.metadata().and_then(|m| m.modified()).ok();
        match consumer.open(&info, start) {
            Opened::Tail(state) => {
                resume.remove(&(dev, ino));
                if let Some(r) = &mut self.recover_rotated {
                    r.remove(&ino);
                }
                let file = Arc::new(file);
                let read_to = Arc::new(AtomicU64::new(start));
                self.unread
                    .lock()
                    .insert(self.next_key, (file.clone(), read_to.clone()));
                self.next_key += 1;
                if !rotated {
                    self.active.insert(path, info.key);
                }
                tracing::debug!(path = %info.path.display(), start, rotated, "Tailing file.");
                self.files.push(Tailed {
                    info,
                    file,
                    offset: start,
                    read_to,
                    size_seen: size,
                    mtime_seen: mtime,
                    remainder: Vec::new(),
                    skipping: false,
                    draining: rotated,
                    last_data: now,
                    state,
                });
            }
            Opened::Skip => {
                if let Some(r) = &mut self.recover_rotated {
                    r.remove(&ino);
                }
                self.skipped.insert((found.path.clone(), ino));
            }
            Opened::Later => {
                // Keep the saved position for the next attempt.
                if let Some(rec) = resume.remove(&(dev, ino)) {
                    self.resume
                        .get_or_insert_with(HashMap::new)
                        .insert((dev, ino), rec);
                }
            }
        }
    }

    /// Reads every file once (up to the per-file budget) and hands complete
    /// lines to `consumer`; closes drained files. `buf` is the shared read
    /// buffer (its capacity is reused across calls).
    pub fn poll<C: LineConsumer<State = S>>(
        &mut self,
        consumer: &mut C,
        buf: &mut Vec<u8>,
    ) -> PollStats {
        let mut stats = PollStats::default();
        let now = Instant::now();
        let mut i = 0;
        while i < self.files.len() {
            if consumer.paused() {
                break;
            }
            let done = self.poll_one(i, consumer, buf, now, &mut stats);
            publish(&self.files[i]);
            if done {
                let f = self.files.remove(i);
                self.unread.lock().remove(&f.info.key);
                let end = f.offset;
                tracing::debug!(path = %f.info.path.display(), end, "Finished draining file.");
                consumer.close(f.state, &f.info, end);
                stats.closed += 1;
            } else {
                i += 1;
            }
        }
        stats
    }

    fn poll_one<C: LineConsumer<State = S>>(
        &mut self,
        i: usize,
        consumer: &mut C,
        buf: &mut Vec<u8>,
        now: Instant,
        stats: &mut PollStats,
    ) -> bool {
        let max_line = self.cfg.max_line_bytes;
        let budget = self.cfg.read_budget;
        let rotate_wait = self.cfg.rotate_wait;
        let f = &mut self.files[i];
        let (size, mtime) = match f.file.metadata() {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(e) => {
                tracing::warn!(path = %f.info.path.display(), error = %e, "Cannot stat open log file; closing it.");
                return true;
            }
        };
        if size != f.size_seen || size < f.offset || mtime != f.mtime_seen {
            f.mtime_seen = mtime;
            let rewritten = if size < f.offset {
                true
            } else if f.info.fp.is_full() && size > f.size_seen && f.offset >= f.info.fp.len as u64
            {
                // Cheap check for the common case: a growing file whose
                // first bytes we have fully fingerprinted.
                !f.info.fp.matches(&f.file).unwrap_or(false)
            } else {
                match f.info.fp.recheck(&f.file, size) {
                    Ok(Some(fp)) => {
                        f.info.fp = fp;
                        false
                    }
                    Ok(None) => true,
                    Err(_) => false,
                }
            };
            if rewritten {
                tracing::info!(path = %f.info.path.display(), offset = f.offset, size, "File truncated; reading it from the start.");
                stats.truncations += 1;
                f.offset = 0;
                f.remainder.clear();
                f.skipping = false;
                f.info.fp = Fingerprint::of(&f.file, size).unwrap_or_default();
                consumer.truncated(&mut f.state, &f.info);
            }
            f.size_seen = size;
        }
        if size <= f.offset {
            if !f.draining || now.duration_since(f.last_data) < rotate_wait {
                return false;
            }
            // The last line of a finished file is complete even without a
            // newline.
            if !f.remainder.is_empty() && !f.skipping {
                let start = f.offset - f.remainder.len() as u64;
                let line = std::mem::take(&mut f.remainder);
                consumer.line(&mut f.state, &f.info, &line, start, f.offset, false);
                stats.lines += 1;
            }
            return true;
        }
        let want = ((size - f.offset) as usize).min(budget);
        let base = f.offset - f.remainder.len() as u64;
        let head = f.remainder.len();
        // The buffer only grows (zero-filled once), so reads do not pay a
        // memset; `data_len` marks the valid bytes.
        if buf.len() < head + want {
            buf.resize(head + want, 0);
        }
        buf[..head].copy_from_slice(&f.remainder);
        let mut got = 0;
        while got < want {
            match f
                .file
                .read_at(&mut buf[head + got..head + want], f.offset + got as u64)
            {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(path = %f.info.path.display(), error = %e, "Read failed; will retry.");
                    break;
                }
            }
        }
        if got == 0 {
            return false;
        }
        let data_len = head + got;
        let buf = &buf[..data_len];
        f.offset += got as u64;
        f.last_data = now;
        // Before handing lines over: the consumer may block (back-pressure)
        // and the unread figure must show the backlog meanwhile.
        publish(f);
        // (A consumer that pauses midway gives the rest back below.)
        stats.bytes += got as u64;

        // Split complete lines; only the new bytes need searching.
        let mut line_start = 0usize;
        let mut search_from = head;
        while let Some(nl) = memchr::memchr(b'\n', &buf[search_from..]) {
            if !f.skipping && consumer.paused() {
                // The consumer is full: the lines not handed over go back
                // to the file, to be read again when it takes more. The
                // unfinished line kept from the last poll has no newline,
                // so `line_start` is 0 (keep it) or past it.
                let keep = if line_start == 0 { head } else { line_start };
                let offset = base + keep as u64;
                stats.bytes = stats.bytes.saturating_sub(f.offset - offset);
                if line_start != 0 {
                    f.remainder.clear();
                }
                f.offset = offset;
                return false;
            }
            let nl = search_from + nl;
            let start = base + line_start as u64;
            let end = base + nl as u64 + 1;
            if f.skipping {
                f.skipping = false;
            } else {
                let mut line = &buf[line_start..nl];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let truncated = line.len() > max_line;
                if truncated {
                    line = &line[..max_line];
                    stats.truncated_lines += 1;
                }
                consumer.line(&mut f.state, &f.info, line, start, end, truncated);
                stats.lines += 1;
            }
            line_start = nl + 1;
            search_from = line_start;
        }
        let rest = &buf[line_start..];
        f.remainder.clear();
        if f.skipping {
            // Still inside an over-long line: drop what we have.
        } else if rest.len() > max_line {
            let start = base + line_start as u64;
            let end = base + data_len as u64;
            consumer.line(&mut f.state, &f.info, &rest[..max_line], start, end, true);
            stats.lines += 1;
            stats.truncated_lines += 1;
            f.skipping = true;
        } else {
            f.remainder.extend_from_slice(rest);
        }
        if f.remainder.capacity() > 64 * 1024 && f.remainder.len() < 4096 {
            f.remainder.shrink_to(4096);
        }
        false
    }
}
