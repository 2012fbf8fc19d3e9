//! The write-ahead log: numbered segment files of checksummed records.
//!
//! One writer (see `crate::ingester::writer`) appends records and calls
//! [`Wal::sync`] once per group of requests before acknowledging them.
//! Segments are closed at `segment_size` and deleted once every entry in
//! them is in a durable chunk ([`Wal::remove_segments_before`]).
//!
//! Replay ([`replay`]) reads every segment in order. A record that is cut
//! short or fails its checksum at the end of the newest segment is the
//! remains of a crash in the middle of a write (never acknowledged): replay
//! stops there. The same in an older segment is corruption: it is counted,
//! and the rest of that segment is skipped.

pub mod record;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use record::{FRAME_HEADER, MAX_RECORD, PushRecord};

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
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments read.
    pub segments: usize,
    /// Records decoded.
    pub records: u64,
    /// Corrupt records or segments skipped (not counting a torn tail).
    pub corruptions: u64,
    /// Whether the newest segment ended in a torn record.
    pub torn_tail: bool,
    /// Highest sequence number seen.
    pub last_seq: u64,
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
        fs::create_dir_all(dir)?;
        let next = existing.last().map_or(1, |(i, _)| i + 1);
        let file = create_segment(dir, next)?;
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            index: next,
            size: SEGMENT_MAGIC.len() as u64,
            segment_size,
            fsync,
            closed: existing,
            current_last_seq: 0,
        })
    }

    /// Appends a finished frame (see [`record::finish_frame`]) with
    /// sequence number `seq`. Not durable until [`Wal::sync`].
    pub fn append(&mut self, frame: &[u8], seq: u64) -> io::Result<()> {
        if self.size > SEGMENT_MAGIC.len() as u64
            && self.size + frame.len() as u64 > self.segment_size
        {
            self.rotate()?;
        }
        (&*self.file).write_all(frame)?;
        self.size += frame.len() as u64;
        self.current_last_seq = seq;
        Ok(())
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
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        let next = self.index + 1;
        let file = create_segment(&self.dir, next)?;
        sync_dir(&self.dir)?;
        self.closed.push((self.index, self.current_last_seq));
        self.file = Arc::new(file);
        self.index = next;
        self.size = SEGMENT_MAGIC.len() as u64;
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
            match fs::remove_file(segment_path(&self.dir, index)) {
                Ok(()) => {}
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
}

/// See [`Wal::sync_handle`].
pub struct SyncHandle {
    file: Option<Arc<File>>,
}

impl SyncHandle {
    /// `fdatasync`s the segment (a no-op when fsync is disabled).
    pub fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

fn create_segment(dir: &Path, index: u64) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, index))?;
    f.write_all(SEGMENT_MAGIC)?;
    Ok(f)
}

/// Fsyncs a directory so that created and renamed entries survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads every segment of `dir` in order, calling `apply` with each
/// record. Returns the segments with their last sequence numbers (for
/// [`Wal::open`]) and statistics.
pub fn replay(
    dir: &Path,
    mut apply: impl FnMut(PushRecord),
) -> io::Result<(Vec<(u64, u64)>, ReplayStats)> {
    let segments = list_segments(dir)?;
    let mut stats = ReplayStats::default();
    let mut out = Vec::with_capacity(segments.len());
    for (i, &index) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        let path = segment_path(dir, index);
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        stats.segments += 1;
        let mut last_seq = 0;
        if bytes.len() < SEGMENT_MAGIC.len() || &bytes[..8] != SEGMENT_MAGIC {
            if newest && SEGMENT_MAGIC.starts_with(&bytes) {
                // Created but the magic never fully written: a torn tail.
                stats.torn_tail = true;
            } else {
                tracing::error!(path = %path.display(), "WAL segment has no valid header; skipping it.");
                stats.corruptions += 1;
            }
            out.push((index, last_seq));
            continue;
        }
        let mut pos = SEGMENT_MAGIC.len();
        while pos < bytes.len() {
            match next_record(&bytes[pos..]) {
                Ok((payload, used)) => match record::decode_push(payload) {
                    Ok(rec) => {
                        last_seq = last_seq.max(rec.seq);
                        stats.last_seq = stats.last_seq.max(rec.seq);
                        stats.records += 1;
                        apply(rec);
                        pos += used;
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), offset = pos, error = %e, "Undecodable WAL record; skipping the rest of the segment.");
                        stats.corruptions += 1;
                        break;
                    }
                },
                Err(()) => {
                    if newest {
                        tracing::warn!(path = %path.display(), offset = pos, "WAL ends in a partly written record (a crash during a write); it was never acknowledged.");
                        stats.torn_tail = true;
                    } else {
                        tracing::error!(path = %path.display(), offset = pos, "Corrupt WAL record; skipping the rest of the segment.");
                        stats.corruptions += 1;
                    }
                    break;
                }
            }
        }
        out.push((index, last_seq));
    }
    Ok((out, stats))
}

/// Splits off the next frame: `(payload, bytes used)`, or `Err` when the
/// frame is short or its checksum fails.
fn next_record(buf: &[u8]) -> Result<(&[u8], usize), ()> {
    if buf.len() < FRAME_HEADER {
        return Err(());
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_RECORD || buf.len() - FRAME_HEADER < len {
        return Err(());
    }
    let payload = &buf[FRAME_HEADER..FRAME_HEADER + len];
    if crc32fast::hash(payload) != crc {
        return Err(());
    }
    Ok((payload, FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::record::{WalEntry, encode_push, finish_frame};
    use super::*;
    use larch_query::LabelSet;

    fn frame(seq: u64, line: &str) -> Vec<u8> {
        let labels = LabelSet::from_pairs([("app", "a")]);
        let entries = vec![WalEntry {
            ts: seq as i64,
            line: line.to_string(),
            meta: vec![],
        }];
        let mut f = encode_push("fake", std::iter::once((&labels, entries.as_slice())));
        finish_frame(&mut f, seq);
        f
    }

    fn lines(dir: &Path) -> (Vec<String>, ReplayStats) {
        let mut got = Vec::new();
        let (_, stats) = replay(dir, |r| {
            for (_, es) in r.streams {
                got.extend(es.into_iter().map(|e| e.line));
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

        let before = wal.segment_count();
        let removed = wal.remove_segments_before(5).unwrap();
        assert!(removed > 0 && wal.segment_count() == before - removed);
        let (got, _) = lines(dir.path());
        assert!(got.contains(&"line-5".to_string()) && !got.contains(&"line-1".to_string()));
    }

    #[test]
    fn torn_tail_is_tolerated_and_corruption_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, vec![]).unwrap();
        wal.append(&frame(1, "kept"), 1).unwrap();
        let f2 = frame(2, "torn");
        wal.append(&f2[..f2.len() - 3], 2).unwrap();
        drop(wal);
        let (got, stats) = lines(dir.path());
        assert_eq!(got, vec!["kept"]);
        assert!(stats.torn_tail);
        assert_eq!(stats.corruptions, 0);

        // The same damage in an older segment is corruption.
        let (segs, _) = replay(dir.path(), |_| {}).unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 20, false, segs).unwrap();
        wal.append(&frame(3, "later"), 3).unwrap();
        drop(wal);
        let (got, stats) = lines(dir.path());
        assert_eq!(got, vec!["kept", "later"]);
        assert_eq!(stats.corruptions, 1);
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
            assert!(got.len() <= 3);
        }
    }
}
