//! The write-ahead log: numbered segment files of checksummed records.
//!
//! One writer (see `crate::ingester::writer`) appends records and calls
//! [`Wal::sync`] once per group of requests before acknowledging them.
//! Segments are closed at `segment_size` and deleted once every entry in
//! them is in a durable chunk ([`Wal::remove_segments_before`]).
//!
//! Replay ([`replay`]) reads every segment in order and takes every frame
//! whose length fits and whose checksum matches. A frame that does not
//! starts a bad region; replay resynchronises by trying every later offset
//! until a frame checks out, so a damaged record costs that record only
//! and the records after it are replayed. A bad region that runs to the
//! end of the newest segment is the remains of a crash in the middle of a
//! write (never acknowledged): its bytes are saved in the quarantine
//! folder and the segment is cut there, so the next start does not see it
//! again. Anything else (a bad region followed by valid records, a bad
//! region at the end of an older segment, a damaged segment header) is
//! corruption: it is counted (`larch_wal_corruptions_total`,
//! `larch_wal_corrupt_bytes_total`), logged at error with the segment and
//! offsets, and the damaged segment is copied to the quarantine folder
//! once; the segment itself stays until trimmed like any other.
//!
//! An append that fails leaves the segment as it was (cut back to its
//! last good length); only a failure to cut back, or a failed sync, makes
//! the WAL refuse every further append ([`Wal::failure`]).
//!
//! Nothing reads a segment while the store runs (replay reads them at
//! start), so once a sync has made a segment's bytes durable the kernel is
//! told to drop their pages from its cache (`posix_fadvise`,
//! `POSIX_FADV_DONTNEED`), whole pages below the synced length only: the
//! page the next append writes into stays. Replay drops the pages of each
//! segment it has read in the same way. The WAL then holds no more of
//! the page cache than one group of records, and the pages given back are
//! the ones the next appends are written into, while they are still warm
//! (BENCHMARKS.md, "Seventh round").

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use record::{FRAME_HEADER, KIND_PUSH, KIND_PUSH_BODY, KIND_PUSH_V1, MAX_RECORD, PushRecordRef};

use crate::quarantine::Quarantine;

const SEGMENT_MAGIC: &[u8; 8] = b"LRCHWAL\x01";

/// An open WAL.
pub struct Wal {
    dir: PathBuf,
    file: Arc<File>,
    index: u64,
    size: u64,
    segment_size: u64,
    fsync: bool,
    /// Closed segments: (index, last sequence number written to it).
    closed: Vec<(u64, u64)>,
    /// Last sequence number written to the current segment.
    current_last_seq: u64,
    /// Bytes of the closed segments.
    closed_bytes: u64,
    /// Why appends are refused, after a failure that left the WAL in a
    /// state it cannot vouch for.
    failed: Option<String>,
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments read.
    pub segments: usize,
    /// Records decoded.
    pub records: u64,
    /// Corrupt regions skipped (not counting a torn tail).
    pub corruptions: u64,
    /// Bytes in those regions.
    pub corrupt_bytes: u64,
    /// Whether the newest segment ended in a torn record.
    pub torn_tail: bool,
    /// Bytes cut off the newest segment.
    pub torn_bytes: u64,
    /// Highest sequence number seen.
    pub last_seq: u64,
    /// Files written to the quarantine folder (torn ends, copies of
    /// damaged segments).
    pub quarantined: u64,
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:020}.wal"))
}

/// Segment indexes present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    match fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                let name = e?.file_name();
                let name = name.to_string_lossy();
                if let Some(n) = name.strip_suffix(".wal").and_then(|s| s.parse().ok()) {
                    out.push(n);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort_unstable();
    Ok(out)
}

impl Wal {
    /// Opens the WAL in `dir` for appending: a new segment after the
    /// existing ones (which replay has read). `existing` lists the existing
    /// segments with their last sequence numbers, so they can be deleted
    /// when their data is flushed.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        fsync: bool,
        existing: Vec<(u64, u64)>,
    ) -> io::Result<Wal> {
        crate::quarantine::create_dirs_durably(dir)?;
        let next = existing
            .iter()
            .map(|(i, _)| i + 1)
            .max()
            .unwrap_or(1)
            .max(list_segments(dir)?.last().map_or(1, |i| i + 1));
        let file = create_segment(dir, next)?;
        if let Err(e) = sync_dir(dir) {
            let _ = fs::remove_file(segment_path(dir, next));
            return Err(e);
        }
        let closed_bytes = existing
            .iter()
            .filter_map(|(i, _)| fs::metadata(segment_path(dir, *i)).ok())
            .map(|m| m.len())
            .sum();
        Ok(Wal {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            index: next,
            size: SEGMENT_MAGIC.len() as u64,
            segment_size,
            fsync,
            closed: existing,
            current_last_seq: 0,
            closed_bytes,
            failed: None,
        })
    }

    /// Appends a finished frame (see [`record::finish_frame`]) with
    /// sequence number `seq`. Not durable until [`Wal::sync`]. On failure
    /// the segment is cut back to what it held before; if that fails too,
    /// the WAL refuses every further append ([`Wal::failure`]).
    pub fn append(&mut self, frame: &[u8], seq: u64) -> io::Result<()> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!(
                "the write-ahead log failed earlier ({why}); restart the store"
            )));
        }
        if self.size > SEGMENT_MAGIC.len() as u64
            && self.size + frame.len() as u64 > self.segment_size
        {
            self.rotate()?;
        }
        if let Err(e) = (&*self.file).write_all(frame) {
            if let Err(cut) = self.file.set_len(self.size) {
                self.failed = Some(format!("append: {e}; cutting back: {cut}"));
            }
            return Err(e);
        }
        self.size += frame.len() as u64;
        self.current_last_seq = seq;
        Ok(())
    }

    /// Why appends are refused, if they are: an append whose partial
    /// record could not be cut off, or a failed sync (after which the
    /// kernel may have dropped the unsynced pages: nothing written since
    /// the last good sync can be vouched for).
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Makes everything appended durable (`fdatasync`, if configured).
    pub fn sync(&mut self) -> io::Result<()> {
        self.sync_handle().sync()
    }

    /// A handle that makes everything appended so far durable when
    /// synced, usable without holding the WAL (earlier segments were
    /// synced when they were closed). Lets the writer go on appending
    /// while another thread waits for the disk.
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            file: self.fsync.then(|| self.file.clone()),
            len: self.size,
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Err(e) = self.file.sync_data() {
            // Records of the group being written may be in this segment:
            // they cannot be acknowledged, nor anything after them.
            self.failed = Some(format!("syncing a full segment: {e}"));
            return Err(e);
        }
        drop_synced_pages(&self.file, None);
        let next = self.index + 1;
        let file = create_segment(&self.dir, next)?;
        if let Err(e) = sync_dir(&self.dir) {
            let _ = fs::remove_file(segment_path(&self.dir, next));
            return Err(e);
        }
        self.closed.push((self.index, self.current_last_seq));
        self.closed_bytes += self.size;
        self.file = Arc::new(file);
        self.index = next;
        self.size = SEGMENT_MAGIC.len() as u64;
        self.current_last_seq = 0;
        Ok(())
    }

    /// Deletes closed segments whose records all have sequence numbers
    /// below `min_unflushed_seq` (the oldest entry not yet in a durable
    /// chunk; `u64::MAX` when everything is flushed). Returns how many.
    pub fn remove_segments_before(&mut self, min_unflushed_seq: u64) -> io::Result<usize> {
        let mut removed = 0;
        while let Some(&(index, last)) = self.closed.first() {
            if last >= min_unflushed_seq {
                break;
            }
            let path = segment_path(&self.dir, index);
            let len = fs::metadata(&path).map_or(0, |m| m.len());
            match fs::remove_file(&path) {
                Ok(()) => self.closed_bytes = self.closed_bytes.saturating_sub(len),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.closed.remove(0);
            removed += 1;
        }
        Ok(removed)
    }

    /// Number of segment files on disk (closed + current).
    pub fn segment_count(&self) -> usize {
        self.closed.len() + 1
    }

    /// Bytes in the current segment.
    pub fn current_size(&self) -> u64 {
        self.size
    }

    /// Bytes of every segment on disk (what `wal.max_size` bounds).
    pub fn disk_size(&self) -> u64 {
        self.closed_bytes + self.size
    }
}

/// See [`Wal::sync_handle`].
pub struct SyncHandle {
    file: Option<Arc<File>>,
    /// Bytes of the segment appended when the handle was made.
    len: u64,
}

impl SyncHandle {
    /// `fdatasync`s the segment (a no-op when fsync is disabled), then
    /// drops the cached pages of what it made durable.
    pub fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => {
                f.sync_data()?;
                drop_synced_pages(f, Some(self.len));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Bytes of the pages [`drop_synced_pages`] works in.
const PAGE: u64 = 4096;

/// Asks the kernel to drop the cached pages of the first `synced` bytes of
/// a segment (of all of it, for `None`), whole pages only: the partly
/// written page at the end is still appended to, and dropping it would make
/// the next append read it back from the disk. Advice only: the kernel may
/// keep a page (one still under writeback, say), and nothing the WAL relies
/// on depends on it, so a failure is not reported.
fn drop_synced_pages(file: &File, synced: Option<u64>) {
    // `posix_fadvise` reads a length of 0 as "to the end of the file".
    let len = match synced {
        None => 0,
        Some(n) if n < PAGE => return,
        Some(n) => n - n % PAGE,
    };
    let Ok(len) = i64::try_from(len) else {
        return;
    };
    let _ = nix::fcntl::posix_fadvise(
        file,
        0,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// Creates segment `index` with its header; on failure no file is left.
fn create_segment(dir: &Path, index: u64) -> io::Result<File> {
    let path = segment_path(dir, index);
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    if let Err(e) = f.write_all(SEGMENT_MAGIC) {
        drop(f);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(f)
}

/// Fsyncs a directory so that created and renamed entries survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The record whose frame starts at `pos`, if it checks out, and the bytes
/// it takes; a kind 3 record's lines borrow `body`, where its body is
/// decompressed.
fn frame_at<'a>(
    bytes: &'a [u8],
    pos: usize,
    body: &'a mut Vec<u8>,
) -> Option<(PushRecordRef<'a>, usize)> {
    let head = bytes.get(pos..pos.checked_add(FRAME_HEADER)?)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(pos + FRAME_HEADER..pos + FRAME_HEADER + len)?;
    // Cheap tests before the checksum: the kind, and a tenant id of the
    // right length (every payload starts kind | seq | str tenant).
    if !matches!(payload[0], KIND_PUSH | KIND_PUSH_V1 | KIND_PUSH_BODY)
        || payload.len() < 10
        || payload[9] == 0
    {
        return None;
    }
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let rec = record::decode_push_ref(payload, body).ok()?;
    Some((rec, FRAME_HEADER + len))
}

/// The first offset after `from` where a frame checks out.
fn resync(bytes: &[u8], from: usize, body: &mut Vec<u8>) -> Option<usize> {
    (from..bytes.len()).find(|&q| frame_at(bytes, q, body).is_some())
}

/// The sequence number of the oldest record in `dir`, if any: where the
/// WAL's coverage starts. Reads the first frame of each segment in order
/// (the whole segment only when that frame is damaged).
pub fn first_seq(dir: &Path) -> io::Result<Option<u64>> {
    let mut body = Vec::new();
    for index in list_segments(dir)? {
        let path = segment_path(dir, index);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut head = [0u8; 16];
        if f.read_exact(&mut head).is_ok() && &head[..8] == SEGMENT_MAGIC {
            let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
            if (1..=MAX_RECORD).contains(&len) {
                let mut frame = head[8..].to_vec();
                frame.resize(FRAME_HEADER + len, 0);
                if f.read_exact(&mut frame[FRAME_HEADER..]).is_ok()
                    && let Some((rec, _)) = frame_at(&frame, 0, &mut body)
                {
                    return Ok(Some(rec.seq));
                }
            }
        }
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        if let Some(q) = resync(&bytes, SEGMENT_MAGIC.len(), &mut body)
            && let Some((rec, _)) = frame_at(&bytes, q, &mut body)
        {
            return Ok(Some(rec.seq));
        }
    }
    Ok(None)
}

/// Reads every segment of `dir` in order, calling `apply` with each
/// record, and repairs what a crash left (see the module docs); damaged
/// bytes are saved in `quarantine`. Returns the segments with their last
/// sequence numbers (for [`Wal::open`]) and statistics.
pub fn replay(
    dir: &Path,
    quarantine: &Quarantine,
    mut apply: impl FnMut(PushRecordRef<'_>),
) -> io::Result<(Vec<(u64, u64)>, ReplayStats)> {
    let segments = list_segments(dir)?;
    let mut stats = ReplayStats::default();
    // Kind 3 records' bodies, decompressed one at a time.
    let mut body = Vec::new();
    let mut out = Vec::with_capacity(segments.len());
    for (i, &index) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        let path = segment_path(dir, index);
        let name = format!("{index:020}.wal");
        let mut bytes = Vec::new();
        let mut file = File::open(&path)?;
        file.read_to_end(&mut bytes)?;
        // Read once: the store appends to a new segment, so these pages
        // are of no further use (see the module docs).
        drop_synced_pages(&file, None);
        drop(file);
        stats.segments += 1;
        if bytes.len() < SEGMENT_MAGIC.len() && SEGMENT_MAGIC.starts_with(&bytes) {
            // Shorter than its header: it holds no record. The newest was
            // being created when the store crashed; an older one was cut
            // short, and what it held is lost.
            if newest {
                tracing::warn!(path = %path.display(), "WAL segment without a complete header (a crash while creating it); removing it.");
                stats.torn_tail = true;
                stats.torn_bytes += bytes.len() as u64;
            } else {
                tracing::error!(path = %path.display(), bytes = bytes.len(), "A WAL segment that is not the newest was cut short of its header; what it held is lost. Removing it.");
                stats.corruptions += 1;
                stats.corrupt_bytes += bytes.len() as u64;
            }
            fs::remove_file(&path)?;
            sync_dir(dir)?;
            continue;
        }
        let header_ok = bytes.get(..SEGMENT_MAGIC.len()) == Some(&SEGMENT_MAGIC[..]);
        let mut damaged = !header_ok;
        if !header_ok {
            tracing::error!(path = %path.display(), "WAL segment header is damaged; reading its records anyway.");
            stats.corruptions += 1;
            stats.corrupt_bytes += SEGMENT_MAGIC.len() as u64;
        }
        let mut last_seq = 0;
        let mut pos = SEGMENT_MAGIC.len();
        let mut bad_start: Option<usize> = None;
        while pos < bytes.len() {
            if let Some((rec, used)) = frame_at(&bytes, pos, &mut body) {
                if let Some(start) = bad_start.take() {
                    tracing::error!(path = %path.display(), offset = start, bytes = pos - start, "Corrupt WAL records in the middle of a segment; replaying the records after them.");
                    stats.corruptions += 1;
                    stats.corrupt_bytes += (pos - start) as u64;
                    damaged = true;
                }
                last_seq = last_seq.max(rec.seq);
                stats.last_seq = stats.last_seq.max(rec.seq);
                stats.records += 1;
                apply(rec);
                pos += used;
                continue;
            }
            bad_start.get_or_insert(pos);
            match resync(&bytes, pos + 1, &mut body) {
                Some(q) => pos = q,
                None => break,
            }
        }
        if let Some(start) = bad_start {
            let tail = (bytes.len() - start) as u64;
            if newest && header_ok {
                tracing::warn!(path = %path.display(), offset = start, bytes = tail, "WAL ends in a partly written record (a crash during a write; it was never acknowledged); cutting it off.");
                stats.torn_tail = true;
                stats.torn_bytes += tail;
                let rel = Path::new("wal").join(format!("{name}.{start}.torn"));
                match quarantine.save(&rel, &bytes[start..]) {
                    Ok(_) => {
                        stats.quarantined += 1;
                        let f = OpenOptions::new().write(true).open(&path)?;
                        f.set_len(start as u64)?;
                        f.sync_all()?;
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "Cannot save the torn end of the WAL in the quarantine folder; leaving it in place.");
                    }
                }
            } else {
                tracing::error!(path = %path.display(), offset = start, bytes = tail, "Corrupt WAL records at the end of a segment that is not the newest; they are lost.");
                stats.corruptions += 1;
                stats.corrupt_bytes += tail;
                damaged = true;
            }
        }
        if damaged {
            let rel = Path::new("wal").join(&name);
            if !quarantine.holds(&rel) {
                match quarantine.save(&rel, &bytes) {
                    Ok(_) => stats.quarantined += 1,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "Cannot copy a damaged WAL segment to the quarantine folder.");
                    }
                }
            }
        }
        out.push((index, last_seq));
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::record::{WalEntry, encode_push, finish_frame};
    use super::*;
    use larch_query::LabelSet;
    use proptest::prelude::*;

    fn frame(seq: u64, line: &str) -> Vec<u8> {
        let labels = LabelSet::from_pairs([("app", "a")]);
        let entries = vec![WalEntry {
            ts: seq as i64,
            line: line.into(),
            meta: bytes::Bytes::new(),
        }];
        let mut f = encode_push("fake", std::iter::once((&labels, entries.as_slice())));
        finish_frame(&mut f, seq);
        f
    }

    fn quarantine(dir: &Path) -> Quarantine {
        Quarantine::at(&dir.with_extension("quarantine"))
    }

    fn lines(dir: &Path) -> (Vec<String>, ReplayStats) {
        let mut got = Vec::new();
        let (_, stats) = replay(dir, &quarantine(dir), |r| {
            for s in r.streams {
                got.extend(s.entries.into_iter().map(|e| e.line.to_string()));
            }
        })
        .unwrap();
        (got, stats)
    }

    #[test]
    fn append_rotate_replay_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 200, true, vec![]).unwrap();
        for seq in 1..=10 {
            wal.append(&frame(seq, &format!("line-{seq}")), seq)
                .unwrap();
        }
        wal.sync().unwrap();
        assert!(wal.segment_count() > 2);
        let (got, stats) = lines(dir.path());
        assert_eq!(got.len(), 10);
        assert_eq!(got[9], "line-10");
        assert_eq!(stats.last_seq, 10);
        assert!(!stats.torn_tail);
        assert_eq!(first_seq(dir.path()).unwrap(), Some(1));

        let before = wal.segment_count();
        let removed = wal.remove_segments_before(5).unwrap();
        assert!(removed > 0 && wal.segment_count() == before - removed);
        let (got, _) = lines(dir.path());
        assert!(got.contains(&"line-5".to_string()) && !got.contains(&"line-1".to_string()));
        assert!(first_seq(dir.path()).unwrap() > Some(1));
    }

    #[test]
    fn torn_tail_is_cut_off_once_and_corruption_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, vec![]).unwrap();
        wal.append(&frame(1, "kept"), 1).unwrap();
        let f2 = frame(2, "torn");
        wal.append(&f2[..f2.len() - 3], 2).unwrap();
        drop(wal);
        let (got, stats) = lines(dir.path());
        assert_eq!(got, vec!["kept"]);
        assert!(stats.torn_tail);
        assert_eq!(stats.torn_bytes as usize, f2.len() - 3);
        assert_eq!(stats.corruptions, 0);
        // Cut for good: the next replay finds a clean segment.
        let (got, stats) = lines(dir.path());
        assert_eq!(got, vec!["kept"]);
        assert!(!stats.torn_tail);
        let saved = quarantine(dir.path()).dir().join("wal");
        assert_eq!(std::fs::read_dir(saved).unwrap().count(), 1);

        // Damage in an older segment is corruption.
        let (segs, _) = replay(dir.path(), &quarantine(dir.path()), |_| {}).unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, segs).unwrap();
        wal.append(&frame(3, "later"), 3).unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let (got, stats) = lines(dir.path());
        assert_eq!(got, vec!["later"]);
        assert_eq!(stats.corruptions, 1);
        assert!(!stats.torn_tail);
    }

    #[test]
    fn corruption_in_the_middle_replays_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, vec![]).unwrap();
        let mut offsets = vec![];
        for s in 1..=10 {
            offsets.push(wal.current_size() as usize);
            wal.append(&frame(s, &format!("line {s}")), s).unwrap();
        }
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offsets[4] + 12] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (got, stats) = lines(dir.path());
        let want: Vec<String> = (1..=10)
            .filter(|&s| s != 5)
            .map(|s| format!("line {s}"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(stats.corruptions, 1);
        assert!(!stats.torn_tail, "valid records follow: not a torn tail");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the segment is left as it is"
        );
        assert!(quarantine(dir.path()).holds(Path::new("wal/00000000000000000001.wal")));
    }

    #[test]
    fn a_failed_append_leaves_the_segment_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, vec![]).unwrap();
        wal.append(&frame(1, "one"), 1).unwrap();
        // A read-only handle makes the write fail and the cut-back fail
        // too: the WAL refuses appends from then on.
        let ro = File::open(segment_path(dir.path(), 1)).unwrap();
        let good = wal.file.clone();
        wal.file = Arc::new(ro);
        assert!(wal.append(&frame(2, "two"), 2).is_err());
        assert!(wal.failure().is_some());
        wal.file = good;
        assert!(wal.append(&frame(3, "three"), 3).is_err());
        drop(wal);
        assert_eq!(lines(dir.path()).0, vec!["one"]);
    }

    #[test]
    fn short_segments_never_panic() {
        for bytes in [&b""[..], b"LRCH", b"xyz", b"LRCHWAL\x01"] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(segment_path(dir.path(), 1), bytes).unwrap();
            let (got, stats) = lines(dir.path());
            assert!(got.is_empty());
            assert_eq!(stats.corruptions, u64::from(bytes == b"xyz"), "{bytes:?}");
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, vec![]).unwrap();
        for s in 1..=3 {
            wal.append(&frame(s, "x"), s).unwrap();
        }
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xa5;
            fs::write(&path, &bad).unwrap();
            let (got, _) = lines(dir.path());
            assert!(got.len() >= 2 && got.len() <= 3, "flip at {i}: {got:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every record whose frame is intact is replayed, whatever bytes
        /// are flipped in the segments, in order, once.
        #[test]
        fn intact_records_are_replayed(
            n in 2u64..30,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path(), 300, false, vec![]).unwrap();
            let mut frames = Vec::new(); // (segment, start, end, seq)
            for s in 1..=n {
                let f = frame(s, &format!("line {s}"));
                wal.append(&f, s).unwrap();
                let end = wal.current_size() as usize;
                frames.push((wal.index, end - f.len(), end, s));
            }
            drop(wal);
            let segs = list_segments(dir.path()).unwrap();
            let sizes: Vec<usize> = segs.iter().map(|&i| fs::metadata(segment_path(dir.path(), i)).unwrap().len() as usize).collect();
            let total: usize = sizes.iter().sum();
            let mut hit = std::collections::HashSet::new();
            for (i, x) in &flips {
                let mut at = i.index(total);
                let mut k = 0;
                while at >= sizes[k] { at -= sizes[k]; k += 1; }
                let path = segment_path(dir.path(), segs[k]);
                let mut b = fs::read(&path).unwrap();
                b[at] ^= x;
                fs::write(&path, &b).unwrap();
                for &(seg, a, e, s) in &frames {
                    if seg == segs[k] && (a..e).contains(&at) {
                        hit.insert(s);
                    }
                }
            }
            let mut seqs = Vec::new();
            let q = quarantine(dir.path());
            replay(dir.path(), &q, |r| seqs.push(r.seq)).unwrap();
            let want: Vec<u64> = (1..=n).filter(|s| !hit.contains(s)).collect();
            prop_assert_eq!(&seqs, &want);
            // A second replay finds the same (a torn tail was cut, nothing more).
            let mut again = Vec::new();
            let (_, stats) = replay(dir.path(), &q, |r| again.push(r.seq)).unwrap();
            prop_assert_eq!(&again, &want);
            prop_assert!(!stats.torn_tail);
        }
    }
}
