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
//! The file is YAML, versioned, one record per line, each record carrying
//! a checksum of itself, and a last line with the number of records. It is
//! written atomically: temp file, fsync, rename, fsync of the directory; a
//! failed write leaves the previous file as it was.
//!
//! ```yaml
//! version: 2
//! files:
//! - {"path":"/var/log/pods/shop_cart-1_uid/app/0.log","dev":2049,"ino":1311,"fp":{"len":128,"hash":1234567890},"offset":4096,"check":"9a3c0e1f2b4d5a6c"}
//! end: 1
//! ```
//!
//! `check` is the xxh3-64 of the record's JSON without it. [`recover`]
//! reads what it can of a damaged file (a flipped byte, a torn or truncated
//! write): a record is used only if its checksum holds, so no damaged
//! offset is ever believed; everything else is reported as a [`Problem`].
//! The agent then reads every file without a usable record from its start,
//! rotated files included (see [`crate::tailer::Tailer::recovering`]): lines
//! the store already has are sent again and dropped there as duplicates,
//! and none is skipped. Version 1 files (plain YAML, no checksums) are still
//! read.

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
struct PositionsFileV1 {
    version: u32,
    #[serde(default)]
    files: Vec<PositionRecord>,
}

/// A record as written on its line, without its checksum.
#[derive(Serialize)]
struct LineOut<'a> {
    path: &'a str,
    dev: u64,
    ino: u64,
    fp: Fingerprint,
    offset: u64,
}

/// A record line as read back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    path: String,
    dev: u64,
    ino: u64,
    fp: Fingerprint,
    offset: u64,
    check: String,
}

const VERSION: u32 = 2;

/// The JSON of a record without its checksum, and the checksum.
fn record_json(
    path: &str,
    dev: u64,
    ino: u64,
    fp: Fingerprint,
    offset: u64,
) -> Option<(String, String)> {
    let json = serde_json::to_string(&LineOut {
        path,
        dev,
        ino,
        fp,
        offset,
    })
    .ok()?;
    let check = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(json.as_bytes()));
    Some((json, check))
}

/// Something wrong with a positions file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// A metric label value: `unreadable`, `unsupported_version`,
    /// `corrupt_header`, `corrupt_record`, `truncated`.
    pub reason: &'static str,
    /// What exactly, for the log.
    pub detail: String,
}

/// What [`recover`] could use of a positions file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The records whose checksums hold (all records of a version 1 file).
    pub records: Vec<PositionRecord>,
    /// Everything that could not be used; empty for an intact (or absent)
    /// file.
    pub problems: Vec<Problem>,
}

impl Loaded {
    fn problem(&mut self, reason: &'static str, detail: impl Into<String>) {
        self.problems.push(Problem {
            reason,
            detail: detail.into(),
        });
    }
}

/// Reads the positions file, keeping every record that can be trusted and
/// reporting the rest; never fails. A missing file means "no positions".
pub fn recover(path: &Path) -> Loaded {
    let mut out = Loaded::default();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.problem("unreadable", e.to_string());
            return out;
        }
    };
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        // The agent never writes an empty file (writes are atomic): it was
        // cut.
        out.problem("truncated", "the file is empty");
        return out;
    }
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    if first == b"version: 1" {
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                larch_config::yaml::from_str::<PositionsFileV1>(t).map_err(|e| e.to_string())
            });
        match parsed {
            Ok(f) if f.version == 1 => out.records = f.files,
            Ok(f) => out.problem("corrupt_header", format!("version {}", f.version)),
            Err(e) => out.problem("corrupt_record", e),
        }
        return out;
    }
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    match lines.next() {
        Some((_, b"version: 2")) => {}
        Some((_, l)) => match std::str::from_utf8(l)
            .ok()
            .and_then(|l| l.strip_prefix("version: "))
        {
            Some(v) if v.parse::<u32>().is_ok() => {
                out.problem(
                    "unsupported_version",
                    format!("version {v} (this agent reads 1 and 2)"),
                );
            }
            _ => out.problem("corrupt_header", "line 1 is not a version"),
        },
        None => {}
    }
    let mut records = 0u64;
    let mut end: Option<u64> = None;
    for (i, line) in lines {
        let n = i + 1;
        if line.is_empty() {
            // Record lines are counted by the end line, so a missing one
            // shows there.
            continue;
        }
        if end.is_some() {
            out.problem("corrupt_record", format!("line {n} follows the end line"));
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            records += u64::from(line.starts_with(b"- "));
            out.problem("corrupt_record", format!("line {n} is not UTF-8"));
            continue;
        };
        if text == "files:" && n == 2 {
            continue;
        }
        if let Some(count) = text.strip_prefix("end: ") {
            match count.parse::<u64>() {
                Ok(c) => end = Some(c),
                Err(_) => out.problem("corrupt_record", format!("line {n}: bad end line")),
            }
            continue;
        }
        let Some(json) = text.strip_prefix("- ") else {
            out.problem("corrupt_record", format!("line {n} is not a record"));
            continue;
        };
        records += 1;
        let Ok(r) = serde_json::from_str::<LineIn>(json) else {
            out.problem("corrupt_record", format!("line {n} does not parse"));
            continue;
        };
        let Some((_, check)) = record_json(&r.path, r.dev, r.ino, r.fp, r.offset) else {
            out.problem("corrupt_record", format!("line {n} does not encode"));
            continue;
        };
        if check != r.check {
            out.problem("corrupt_record", format!("line {n}: checksum mismatch"));
            continue;
        }
        out.records.push(PositionRecord {
            path: PathBuf::from(r.path),
            dev: r.dev,
            ino: r.ino,
            fp: r.fp,
            offset: r.offset,
        });
    }
    match end {
        None => out.problem("truncated", "no end line"),
        Some(c) if c != records => {
            out.problem(
                "truncated",
                format!("{records} record lines, the end line says {c}"),
            );
        }
        Some(_) => {}
    }
    out
}

/// Reads the positions file, failing on any damage (see [`recover`] for
/// the forgiving reader the agent uses). A missing file means "no
/// positions".
pub fn load(path: &Path) -> Result<Vec<PositionRecord>> {
    let loaded = recover(path);
    if let Some(p) = loaded.problems.first() {
        return Err(Error::Positions {
            path: path.to_path_buf(),
            message: format!("{}: {}", p.reason, p.detail),
        });
    }
    Ok(loaded.records)
}

/// The text of a positions file holding `records`.
pub fn encode(records: &[PositionRecord]) -> String {
    let mut text = format!("version: {VERSION}\nfiles:\n");
    let mut n = 0;
    for r in records {
        let path = r.path.to_string_lossy();
        // Encoding plain numbers and a string cannot fail.
        let Some((json, check)) = record_json(&path, r.dev, r.ino, r.fp, r.offset) else {
            continue;
        };
        text.push_str("- ");
        text.push_str(&json[..json.len() - 1]);
        text.push_str(",\"check\":\"");
        text.push_str(&check);
        text.push_str("\"}\n");
        n += 1;
    }
    text.push_str(&format!("end: {n}\n"));
    text
}

/// Writes the positions atomically (temp, fsync, rename, fsync dir). On
/// failure the previous file is left as it was.
pub fn save(path: &Path, records: &[PositionRecord]) -> Result<()> {
    let text = encode(records);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A temp file left by a crash is replaced, never written through (it
    // could be a link planted there).
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &tmp, e)),
    }
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
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
        assert_eq!(recover(&p), Loaded::default());
        save(&p, &[]).unwrap();
        assert_eq!(recover(&p), Loaded::default());
        save(&p, &[rec(1, 10), rec(2, 20)]).unwrap();
        assert_eq!(load(&p).unwrap(), vec![rec(1, 10), rec(2, 20)]);
        save(&p, &[rec(2, 30)]).unwrap();
        assert_eq!(load(&p).unwrap(), vec![rec(2, 30)]);
        assert!(!dir.path().join("sub/positions.yaml.tmp").exists());
    }

    #[test]
    fn damaged_files_are_reported_and_intact_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("positions.yaml");
        save(&p, &[rec(1, 10), rec(2, 20), rec(3, 30)]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        // An offset changed by one digit: that record is not believed.
        let bad = text.replacen("\"offset\":20", "\"offset\":29", 1);
        std::fs::write(&p, &bad).unwrap();
        let l = recover(&p);
        assert_eq!(l.records, vec![rec(1, 10), rec(3, 30)]);
        assert_eq!(l.problems.len(), 1);
        assert_eq!(l.problems[0].reason, "corrupt_record");
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        // Cut after the second record.
        let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        std::fs::write(&p, cut).unwrap();
        let l = recover(&p);
        assert_eq!(l.records, vec![rec(1, 10), rec(2, 20)]);
        assert_eq!(l.problems[0].reason, "truncated");
        std::fs::write(&p, "").unwrap();
        assert_eq!(recover(&p).problems[0].reason, "truncated");
        std::fs::write(&p, "version: 9\n").unwrap();
        assert_eq!(recover(&p).problems[0].reason, "unsupported_version");
        // Version 1 files are still read.
        std::fs::write(
            &p,
            "version: 1\nfiles:\n- path: /p/1.log\n  dev: 1\n  ino: 1\n  fp: {len: 3, hash: 42}\n  offset: 10\n",
        )
        .unwrap();
        assert_eq!(load(&p).unwrap(), vec![rec(1, 10)]);
        // Unreadable (a directory).
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        assert_eq!(recover(&d).problems[0].reason, "unreadable");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("positions.yaml");
        save(&p, &[rec(1, 10)]).unwrap();
        let before = std::fs::read(&p).unwrap();
        // Something that cannot be replaced sits where the temp file goes.
        let tmp = dir.path().join("positions.yaml.tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::write(tmp.join("x"), "").unwrap();
        assert!(save(&p, &[rec(1, 99)]).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), before);
        // A stale temp file (a crash between write and rename) is replaced.
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::write(&tmp, "garbage").unwrap();
        save(&p, &[rec(1, 99)]).unwrap();
        assert_eq!(load(&p).unwrap(), vec![rec(1, 99)]);
        assert!(!tmp.exists());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, .. Default::default() })]

        /// Any flipped bytes or cut: every record returned is one that was
        /// written, and if any is missing the damage is reported.
        #[test]
        fn damage_never_yields_a_wrong_record(
            n in 0usize..6,
            offsets in proptest::collection::vec(0u64..1_000_000_000, 6),
            flips in proptest::collection::vec((0usize..4096, 1u8..=255), 0..4),
            cut in proptest::option::of(0usize..4096),
        ) {
            let written: Vec<PositionRecord> = (0..n).map(|i| rec(i as u64 + 1, offsets[i])).collect();
            let mut bytes = encode(&written).into_bytes();
            for (at, x) in &flips {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] ^= x;
                }
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("positions.yaml");
            std::fs::write(&p, &bytes).unwrap();
            let l = recover(&p);
            for r in &l.records {
                proptest::prop_assert!(written.contains(r), "invented {r:?}");
            }
            if l.records.len() != written.len() {
                proptest::prop_assert!(!l.problems.is_empty());
            }
        }
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
