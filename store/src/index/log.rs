//! The index log: one append-only file per tenant recording which streams
//! exist and which chunk files hold their data.
//!
//! ```text
//! file    "LRCHIDX\x01" frame*
//! frame   u32le len | u32le crc32(payload) | payload
//! payload u8 kind
//!         1 stream  u64le fp | uvarint npairs { str name | str value }*
//!         2 chunk   u64le fp | str id | varint mint | varint maxt
//!                   | uvarint entries | uvarint bytes | uvarint max_seq
//!                   | uvarint raw bytes
//!         3 delete  u64le fp | str id
//!         4 published u64le 0 | str segment name
//! ```
//! A write node (`target: write`) uses the log as its journal of what it
//! flushed to the bucket: a `published` record says that every chunk
//! record before it is named by an index segment in the bucket (see
//! ARCHITECTURE.md, "The writer's journal").
//! A chunk record is appended (and fsynced) only after its chunk file is
//! durable, so the log never names a chunk that was not on disk.
//!
//! Reading ([`scan`]) takes every frame whose length fits and whose
//! checksum matches. A frame that does not is the start of a bad region;
//! the reader then resynchronises, trying every later offset until a frame
//! checks out, so that one damaged record costs that record only. A bad
//! region that runs to the end of the file is a torn write (a crash during
//! an append, or a flip in the very last record, which cannot be told
//! apart): it is cut off, its bytes saved in the quarantine folder. A bad
//! region followed by valid records, or a damaged header, is corruption:
//! the damaged file is copied to the quarantine folder and replaced by a
//! clean log of the recovered records (temp file, fsync, rename), so the
//! next start reads a clean log and does not report the damage twice.
//! What the lost records named is found again from the chunk files (see
//! `ingester::recover`).
//!
//! Appends that fail leave the file as it was: the file is cut back to its
//! last good length; if even that fails the log refuses every further
//! append until the store restarts (and the data stays in memory and in
//! the WAL). The file is created on the first append, not when a tenant
//! first pushes, and kept open only while in a bounded set of recently
//! used handles ([`Handles`]), so any number of tenants fits in a few file
//! descriptors.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use larch_query::LabelSet;
use parking_lot::Mutex;

use crate::encoding::{Malformed, Reader, put_bytes, put_uvarint, put_varint};
use crate::quarantine::Quarantine;

/// The file header.
pub const MAGIC: &[u8; 8] = b"LRCHIDX\x01";
/// Frame header size.
const FRAME: usize = 8;
/// Largest payload accepted when reading: records are a few hundred bytes
/// (a stream's labels are bounded by validation), so a larger length is
/// damage and must not make the reader checksum megabytes per offset.
pub const MAX_RECORD: usize = 1 << 20;
/// Longest chunk id accepted.
const MAX_ID: usize = 64;

/// A chunk as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// File name stem under the stream's directory.
    pub id: String,
    /// Smallest timestamp.
    pub mint: i64,
    /// Largest timestamp.
    pub maxt: i64,
    /// Entries.
    pub entries: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Uncompressed size of its lines.
    pub raw_bytes: u64,
    /// Highest WAL sequence number whose entries it holds.
    pub max_seq: u64,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexRecord {
    /// A stream's labels.
    Stream {
        /// Fingerprint.
        fp: u64,
        /// Labels.
        labels: LabelSet,
    },
    /// A chunk of a stream.
    Chunk {
        /// Stream fingerprint.
        fp: u64,
        /// The chunk.
        chunk: ChunkRef,
    },
    /// A chunk deleted (retention or compaction).
    Delete {
        /// Stream fingerprint.
        fp: u64,
        /// Chunk id.
        id: String,
    },
    /// Every chunk record before this one is named by a published index
    /// segment (a write node's journal).
    Published {
        /// The last segment written.
        id: String,
    },
}

/// Whether `id` can name a chunk file: what the flusher writes
/// (`<max_seq:016x>-<crc:08x>`) and other short names of ASCII letters,
/// digits, `-` and `_`, never a path.
pub fn valid_chunk_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl IndexRecord {
    /// Appends the record's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME]);
        match self {
            IndexRecord::Stream { fp, labels } => {
                out.push(1);
                out.extend_from_slice(&fp.to_le_bytes());
                put_uvarint(out, labels.len() as u64);
                for l in labels {
                    put_bytes(out, l.name.as_bytes());
                    put_bytes(out, l.value.as_bytes());
                }
            }
            IndexRecord::Chunk { fp, chunk } => {
                out.push(2);
                out.extend_from_slice(&fp.to_le_bytes());
                put_bytes(out, chunk.id.as_bytes());
                put_varint(out, chunk.mint);
                put_varint(out, chunk.maxt);
                put_uvarint(out, chunk.entries);
                put_uvarint(out, chunk.bytes);
                put_uvarint(out, chunk.max_seq);
                put_uvarint(out, chunk.raw_bytes);
            }
            IndexRecord::Delete { fp, id } => {
                out.push(3);
                out.extend_from_slice(&fp.to_le_bytes());
                put_bytes(out, id.as_bytes());
            }
            IndexRecord::Published { id } => {
                out.push(4);
                out.extend_from_slice(&0u64.to_le_bytes());
                put_bytes(out, id.as_bytes());
            }
        }
        let len = (out.len() - start - FRAME) as u32;
        let crc = crc32fast::hash(&out[start + FRAME..]);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    fn decode(payload: &[u8]) -> Result<IndexRecord, Malformed> {
        let mut r = Reader::new(payload);
        let kind = r.take(1, "index record kind")?[0];
        let fp = r.u64le("fingerprint")?;
        let id = |r: &mut Reader<'_>| -> Result<String, Malformed> {
            let at = r.pos();
            let id = r.str("chunk id")?;
            if !valid_chunk_id(id) {
                return Err(Malformed {
                    what: "chunk id",
                    offset: at,
                });
            }
            Ok(id.to_string())
        };
        let rec = match kind {
            1 => {
                let n = r.len("label count", payload.len())?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((
                        r.str("label name")?.to_string(),
                        r.str("label value")?.to_string(),
                    ));
                }
                let labels = LabelSet::from_unique_pairs(pairs).map_err(|_| Malformed {
                    what: "labels",
                    offset: r.pos(),
                })?;
                IndexRecord::Stream { fp, labels }
            }
            2 => IndexRecord::Chunk {
                fp,
                chunk: ChunkRef {
                    id: id(&mut r)?,
                    mint: r.varint("mint")?,
                    maxt: r.varint("maxt")?,
                    entries: r.uvarint("entries")?,
                    bytes: r.uvarint("bytes")?,
                    max_seq: r.uvarint("max seq")?,
                    raw_bytes: r.uvarint("raw bytes")?,
                },
            },
            3 => IndexRecord::Delete {
                fp,
                id: id(&mut r)?,
            },
            4 => IndexRecord::Published { id: id(&mut r)? },
            _ => {
                return Err(Malformed {
                    what: "index record kind",
                    offset: 0,
                });
            }
        };
        if !r.is_empty() {
            return Err(Malformed {
                what: "trailing bytes",
                offset: r.pos(),
            });
        }
        Ok(rec)
    }
}

/// The valid record at `pos`, if any, and the bytes it takes.
fn frame_at(bytes: &[u8], pos: usize) -> Option<(IndexRecord, usize)> {
    let head = bytes.get(pos..pos.checked_add(FRAME)?)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(pos + FRAME..pos + FRAME + len)?;
    // A cheap test before the checksum: the kinds that exist.
    if !(1..=4).contains(&payload[0]) {
        return None;
    }
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let rec = IndexRecord::decode(payload).ok()?;
    Some((rec, FRAME + len))
}

/// What [`scan`] found in a log's bytes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scan {
    /// Every valid record, in file order.
    pub records: Vec<IndexRecord>,
    /// Whether the file starts with the header.
    pub header_ok: bool,
    /// Bad regions followed by a valid record: `(start, end)` offsets.
    pub corrupt: Vec<(usize, usize)>,
    /// Start of a bad region that runs to the end of the file.
    pub torn_at: Option<usize>,
}

impl Scan {
    /// Whether the log is clean (nothing to repair).
    pub fn is_clean(&self) -> bool {
        self.header_ok && self.corrupt.is_empty() && self.torn_at.is_none()
    }
}

/// Reads every valid record of a log's bytes, resynchronising after bad
/// regions (see the module docs). Never fails: what is not a record is
/// reported as a region.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut s = Scan {
        header_ok: bytes.len() >= MAGIC.len() && &bytes[..MAGIC.len()] == MAGIC,
        ..Scan::default()
    };
    let mut pos = MAGIC.len();
    let mut bad_start: Option<usize> = None;
    while pos < bytes.len() {
        if let Some((rec, used)) = frame_at(bytes, pos) {
            if let Some(start) = bad_start.take() {
                s.corrupt.push((start, pos));
            }
            s.records.push(rec);
            pos += used;
            continue;
        }
        bad_start.get_or_insert(pos);
        match (pos + 1..bytes.len()).find(|&q| frame_at(bytes, q).is_some()) {
            Some(q) => pos = q,
            None => {
                s.torn_at = bad_start.take();
                break;
            }
        }
    }
    s
}

/// What opening a log found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogDamage {
    /// The header was damaged (the records after it were recovered).
    pub bad_header: bool,
    /// Bad regions followed by valid records.
    pub corrupt_regions: u64,
    /// Bytes in those regions.
    pub corrupt_bytes: u64,
    /// Bytes cut off the end (a torn write).
    pub torn_bytes: u64,
    /// Where the damaged original (or the torn tail) was saved.
    pub saved_to: Option<PathBuf>,
}

impl LogDamage {
    /// Whether nothing was wrong.
    pub fn is_clean(&self) -> bool {
        !self.is_corrupt() && self.torn_bytes == 0
    }

    /// Whether records other than a torn tail may have been lost: the log
    /// then no longer tells the whole story (what it deleted, what it
    /// named), and recovery trusts the chunk files instead.
    pub fn is_corrupt(&self) -> bool {
        self.bad_header || self.corrupt_regions > 0
    }
}

/// An opened log: the log, its records, and what was repaired.
pub struct OpenedLog {
    /// The log, ready for appends.
    pub log: IndexLog,
    /// Every record recovered, in file order.
    pub records: Vec<IndexRecord>,
    /// Damage found and repaired.
    pub damage: LogDamage,
}

/// A bounded set of open index log files, least recently used closed
/// first. A log holds no descriptor of its own; it borrows one from here
/// for each append.
pub struct Handles {
    capacity: usize,
    inner: Mutex<HandleMap>,
}

#[derive(Default)]
struct HandleMap {
    tick: u64,
    files: HashMap<PathBuf, (Arc<File>, u64)>,
}

impl Handles {
    /// At most `capacity` files open at once (at least one).
    pub fn new(capacity: usize) -> Arc<Handles> {
        Arc::new(Handles {
            capacity: capacity.max(1),
            inner: Mutex::new(HandleMap::default()),
        })
    }

    /// An open handle (for writing) to the existing file at `path`.
    fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        let mut m = self.inner.lock();
        m.tick += 1;
        let tick = m.tick;
        if let Some((f, t)) = m.files.get_mut(path) {
            *t = tick;
            return Ok(f.clone());
        }
        let f = Arc::new(OpenOptions::new().write(true).open(path)?);
        if m.files.len() >= self.capacity
            && let Some(oldest) = m
                .files
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(p, _)| p.clone())
        {
            m.files.remove(&oldest);
        }
        m.files.insert(path.to_path_buf(), (f.clone(), tick));
        Ok(f)
    }

    fn forget(&self, path: &Path) {
        self.inner.lock().files.remove(path);
    }

    /// Files held open now.
    pub fn open_count(&self) -> usize {
        self.inner.lock().files.len()
    }
}

/// An index log.
pub struct IndexLog {
    path: PathBuf,
    handles: Arc<Handles>,
    /// Length of the file's good contents; 0 when the file does not exist
    /// yet (or holds less than its header).
    len: u64,
    /// Why appends are refused, after an append failed and the file could
    /// not be cut back.
    failed: Option<String>,
    buf: Vec<u8>,
}

impl IndexLog {
    /// A log at `path` that does not exist yet: created on first append.
    pub fn new(path: &Path, handles: Arc<Handles>) -> IndexLog {
        IndexLog {
            path: path.to_path_buf(),
            handles,
            len: 0,
            failed: None,
            buf: Vec::new(),
        }
    }

    /// Reads the log at `path` (a missing file is an empty log) and
    /// repairs it (see the module docs): a torn tail is cut off, a
    /// corrupt log is rewritten from its recovered records, the damaged
    /// bytes saved in `quarantine` first. Fails with
    /// [`io::ErrorKind::InvalidData`] when the file is not an index log
    /// at all (wrong header and no valid record).
    pub fn open(
        path: &Path,
        handles: Arc<Handles>,
        quarantine: &Quarantine,
    ) -> io::Result<OpenedLog> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut log = IndexLog::new(path, handles);
        let mut damage = LogDamage::default();
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            // Absent, or created and never given its header: empty. The
            // first append writes the file from scratch.
            return Ok(OpenedLog {
                log,
                records: Vec::new(),
                damage,
            });
        }
        let s = scan(&bytes);
        if !s.header_ok && s.records.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a Larch index log", path.display()),
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "index.idx".into());
        damage.bad_header = !s.header_ok;
        damage.corrupt_regions = s.corrupt.len() as u64;
        damage.corrupt_bytes = s.corrupt.iter().map(|(a, b)| (b - a) as u64).sum();
        let good_end = s.torn_at.unwrap_or(bytes.len());
        damage.torn_bytes = (bytes.len() - good_end) as u64;
        // Repairs destroy bytes, so they wait until the damaged bytes are
        // saved; if they cannot be (a full disk), the log is left as it
        // is and appended to after the damage (the next start finds the
        // same records, and tries again).
        let saved = if damage.is_corrupt() {
            quarantine.save(&Path::new("index").join(&name), &bytes)
        } else if damage.torn_bytes > 0 {
            let rel = Path::new("index").join(format!("{name}.{good_end}.torn"));
            quarantine.save(&rel, &bytes[good_end..])
        } else {
            Err(io::Error::other("nothing to save"))
        };
        match saved {
            Ok(to) if damage.is_corrupt() => {
                damage.saved_to = Some(to);
                log.write_whole(&s.records)?;
            }
            Ok(to) => {
                damage.saved_to = Some(to);
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(good_end as u64)?;
                f.sync_all()?;
                log.len = good_end as u64;
            }
            Err(e) => {
                if !damage.is_clean() {
                    tracing::error!(path = %path.display(), error = %e, "Cannot save a damaged index log in the quarantine folder; leaving it as it is.");
                }
                log.len = bytes.len() as u64;
            }
        }
        Ok(OpenedLog {
            log,
            records: s.records,
            damage,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file's good contents (0 before the first append).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file has not been created yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Why appends are refused, if they are.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Appends records and makes them durable. On failure the file is
    /// left as it was (or, if it cannot be cut back, the log refuses
    /// every further append).
    pub fn append(&mut self, records: &[IndexRecord]) -> io::Result<()> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!(
                "the index log {} cannot be written since an earlier failure ({why}); restart the store",
                self.path.display()
            )));
        }
        if records.is_empty() {
            return Ok(());
        }
        if self.len == 0 {
            return self.create(records);
        }
        self.buf.clear();
        for r in records {
            r.encode(&mut self.buf);
        }
        let f = self.handles.get(&self.path)?;
        let written = f
            .write_all_at(&self.buf, self.len)
            .and_then(|()| f.sync_data());
        match written {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut back whatever part reached the file, so that a later
                // append does not land after a partial record.
                if let Err(cut) = f.set_len(self.len).and_then(|()| f.sync_data()) {
                    self.failed = Some(format!("append: {e}; cutting back: {cut}"));
                    self.handles.forget(&self.path);
                    tracing::error!(path = %self.path.display(), error = %e, cut_error = %cut, "An index append failed and the log could not be cut back to its last good length; it refuses further appends until restart.");
                }
                Err(e)
            }
        }
    }

    /// Creates the file with its header and `records`.
    fn create(&mut self, records: &[IndexRecord]) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(MAGIC);
        for r in records {
            r.encode(&mut self.buf);
        }
        if let Some(dir) = self.path.parent() {
            crate::quarantine::create_dirs_durably(dir)?;
        }
        self.handles.forget(&self.path);
        let res = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&self.path)?;
            f.write_all(&self.buf)?;
            f.sync_all()?;
            if let Some(dir) = self.path.parent() {
                crate::wal::sync_dir(dir)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                self.len = self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The file held nothing before: leave none.
                let _ = fs::remove_file(&self.path);
                Err(e)
            }
        }
    }

    /// Replaces the log with exactly `records` (temp file, fsync, rename,
    /// fsync of the directory).
    pub fn rewrite(&mut self, records: &[IndexRecord]) -> io::Result<()> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!(
                "the index log {} cannot be written since an earlier failure ({why}); restart the store",
                self.path.display()
            )));
        }
        self.write_whole(records)
    }

    fn write_whole(&mut self, records: &[IndexRecord]) -> io::Result<()> {
        let tmp = self.path.with_extension("idx.tmp");
        let mut buf = MAGIC.to_vec();
        for r in records {
            r.encode(&mut buf);
        }
        if let Some(dir) = self.path.parent() {
            crate::quarantine::create_dirs_durably(dir)?;
        }
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                crate::wal::sync_dir(dir)?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The handle (if any) points at the replaced file.
        self.handles.forget(&self.path);
        self.len = buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(id: &str) -> ChunkRef {
        ChunkRef {
            id: id.into(),
            mint: -1,
            maxt: 9,
            entries: 3,
            bytes: 100,
            max_seq: 7,
            raw_bytes: 300,
        }
    }

    fn open(path: &Path) -> io::Result<OpenedLog> {
        let q = Quarantine::at(&path.with_extension("quarantine"));
        IndexLog::open(path, Handles::new(4), &q)
    }

    fn records(n: usize) -> Vec<IndexRecord> {
        let labels = LabelSet::from_pairs([("app", "a")]);
        let mut v = vec![IndexRecord::Stream { fp: 1, labels }];
        for i in 0..n {
            v.push(IndexRecord::Chunk {
                fp: 1,
                chunk: chunk(&format!("c{i}")),
            });
        }
        v
    }

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.idx");
        let o = open(&path).unwrap();
        assert!(o.records.is_empty() && o.damage.is_clean());
        assert!(!path.exists(), "the file is created on the first append");
        let mut log = o.log;
        let labels = LabelSet::from_pairs([("app", "a")]);
        let written = vec![
            IndexRecord::Stream { fp: 1, labels },
            IndexRecord::Chunk {
                fp: 1,
                chunk: chunk("c1"),
            },
            IndexRecord::Delete {
                fp: 1,
                id: "c1".into(),
            },
        ];
        log.append(&written).unwrap();
        drop(log);
        let o = open(&path).unwrap();
        assert_eq!(o.records, written);
        assert!(o.damage.is_clean());

        // Tear the last record.
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let o = open(&path).unwrap();
        assert_eq!(
            o.damage.torn_bytes as usize,
            bytes.len() - 2 - o.log.len() as usize
        );
        assert!(!o.damage.is_corrupt());
        assert_eq!(o.records, written[..2].to_vec());
        let saved = o.damage.saved_to.clone().unwrap();
        assert_eq!(fs::read(saved).unwrap().len() as u64, o.damage.torn_bytes);
        let mut log = o.log;
        log.append(&[IndexRecord::Chunk {
            fp: 2,
            chunk: chunk("c2"),
        }])
        .unwrap();
        drop(log);
        let o = open(&path).unwrap();
        assert!(o.damage.is_clean());
        assert_eq!(o.records.len(), 3);
        let mut log = o.log;
        log.rewrite(&o.records[..1]).unwrap();
        log.append(&o.records[1..2]).unwrap();
        drop(log);
        assert_eq!(open(&path).unwrap().records, o.records[..2].to_vec());
    }

    #[test]
    fn a_bad_record_in_the_middle_costs_only_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.idx");
        let mut log = open(&path).unwrap().log;
        let recs = records(10);
        log.append(&recs).unwrap();
        drop(log);
        let good = fs::read(&path).unwrap();
        // Flip a byte inside the fourth record.
        let mut at = MAGIC.len();
        let mut frames = Vec::new();
        while at < good.len() {
            let len = u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
            frames.push((at, at + 8 + len));
            at += 8 + len;
        }
        let mut bad = good.clone();
        bad[frames[3].0 + 10] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        let o = open(&path).unwrap();
        assert_eq!(o.damage.corrupt_regions, 1);
        let mut want = recs.clone();
        want.remove(3);
        assert_eq!(o.records, want);
        // The original is kept and the log is clean again.
        assert_eq!(fs::read(o.damage.saved_to.unwrap()).unwrap(), bad);
        let again = open(&path).unwrap();
        assert!(again.damage.is_clean());
        assert_eq!(again.records, want);
    }

    #[test]
    fn a_damaged_header_keeps_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.idx");
        let mut log = open(&path).unwrap().log;
        log.append(&records(3)).unwrap();
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        bytes[2] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let o = open(&path).unwrap();
        assert!(o.damage.bad_header);
        assert_eq!(o.records, records(3));
        assert!(open(&path).unwrap().damage.is_clean());
    }

    #[test]
    fn foreign_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        fs::write(&path, b"hello world, not an index").unwrap();
        let e = open(&path).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn handles_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let handles = Handles::new(3);
        let mut logs: Vec<IndexLog> = (0..10)
            .map(|i| IndexLog::new(&dir.path().join(format!("t{i}.idx")), handles.clone()))
            .collect();
        for round in 0..3 {
            for log in &mut logs {
                log.append(&records(1)[round.min(1)..]).unwrap();
                assert!(handles.open_count() <= 3);
            }
        }
        for i in 0..10 {
            let o = open(&dir.path().join(format!("t{i}.idx"))).unwrap();
            assert!(o.damage.is_clean());
            assert_eq!(o.records.len(), 4);
        }
    }

    #[test]
    fn a_failed_log_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.idx");
        let mut log = open(&path).unwrap().log;
        log.append(&records(1)).unwrap();
        log.failed = Some("test".into());
        let e = log.append(&records(1)).unwrap_err();
        assert!(e.to_string().contains("restart the store"), "{e}");
    }

    #[test]
    fn ids_that_are_paths_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            let rec = IndexRecord::Delete {
                fp: 1,
                id: bad.to_string(),
            };
            let mut buf = MAGIC.to_vec();
            rec.encode(&mut buf);
            let s = scan(&buf);
            assert!(s.records.is_empty(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever bytes are flipped, every record whose frame is intact
        /// is recovered, in order, unless it lies in a bad region that
        /// reaches the end of the file (a torn tail).
        #[test]
        fn intact_records_survive_flips(
            n in 1usize..20,
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let recs = records(n);
            let mut good = MAGIC.to_vec();
            let mut frames = Vec::new();
            for r in &recs {
                let start = good.len();
                r.encode(&mut good);
                frames.push((start, good.len()));
            }
            let mut bad = good.clone();
            let mut hit = vec![false; frames.len()];
            for (i, x) in &flips {
                let at = i.index(bad.len());
                bad[at] ^= x;
                for (k, (a, b)) in frames.iter().enumerate() {
                    if (*a..*b).contains(&at) {
                        hit[k] = true;
                    }
                }
            }
            let s = scan(&bad);
            let last_hit = hit.iter().rposition(|&h| h);
            for (k, r) in recs.iter().enumerate() {
                if !hit[k] {
                    prop_assert!(s.records.contains(r), "record {} lost", k);
                }
            }
            // Nothing is invented: every record found was written.
            for r in &s.records {
                prop_assert!(recs.contains(r));
            }
            if let Some(last) = last_hit {
                if last + 1 == frames.len() {
                    prop_assert!(s.torn_at.is_some());
                } else {
                    prop_assert!(!s.corrupt.is_empty());
                }
            }
        }
    }
}
