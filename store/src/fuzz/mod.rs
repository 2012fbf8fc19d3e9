//! The properties the store's fuzz targets (`store/fuzz`) check, shared with
//! the tests that replay their committed corpora, so that every input the
//! fuzzer once found interesting stays covered by `cargo test`.
//!
//! One function per decoder of outside input. Each takes arbitrary bytes,
//! never fails, and panics only when a property is broken; decoders must
//! answer every input with a value or an error, never a panic, a hang or an
//! allocation the input does not justify. The first input byte selects a
//! variant, so one target covers related paths:
//!
//! | target | first byte | rest |
//! |---|---|---|
//! | [`push`] | low nibble: format (% 6), bits 4-5: `Content-Encoding` | request body |
//! | [`chunk`] | bit 0: repair checksums | chunk file |
//! | [`wal`] | bit 0: repair checksums; bit 1: two segments | record payload and segment file |
//! | [`index_log`] | bit 0: repair checksums | index log file |
//! | [`filter`] | bit 0: build from lines, else raw filter bytes | see [`filter`] |
//!
//! Checksums: a fuzzer rarely guesses a CRC-32, so most mutations of a
//! file would stop at its first checksum. With the repair bit set the
//! harness recomputes every checksum it can locate before decoding, so the
//! structure behind the checksums gets explored too; without it the
//! checksum checks themselves are exercised.
//!
//! Beyond "no panic", each harness checks properties that tie decoders to
//! their encoders and to the rest of the store:
//! * push: a decode holds no more memory than its meter allowed, and the
//!   decoded push no more than was charged for it; validation's messages
//!   stay within their bound; whatever validation accepts has valid label
//!   names and survives the WAL encoding unchanged;
//! * chunk: decoded blocks are consistent (n timestamps, n + 1 ascending
//!   offsets ending at the data's length); the on-disk read path
//!   ([`ChunkIndex::read`] plus [`read_block`]) sees exactly what
//!   [`ChunkFile::parse`] sees; a filter built from a block's lines admits
//!   every one of them; the recovery paths ([`check`], [`salvage`]) answer
//!   any input, find blocks inside the file only, agree with the index on
//!   an intact chunk, every block [`check`] calls good decodes or fails
//!   cleanly, and [`check`] calls good exactly the blocks the reader
//!   (its index, else the block heads) finds with intact columns;
//! * WAL: a decoded record re-encodes to itself; two copies of a segment
//!   replay to the same records twice (the same damage is corruption in
//!   the older copy and a torn tail in the newest); replay repairs for
//!   good (a second replay finds the same records and no torn tail); after
//!   a restart (open, append) replay returns the old records plus the new
//!   one, whatever the damage;
//! * index log: opening repairs the file for good (reopening finds the same
//!   records, undamaged), every record of a bad region's surroundings is
//!   kept (the records found are those [`scan`] finds), appended and
//!   rewritten records read back;
//! * token filter: no false negatives for any substring of the lines it
//!   was built from, in any ASCII case.

pub mod seeds;

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use larch_query::{Columns, decode_metadata};

use crate::chunk::block::{COL_FILTER, COL_LENS, COL_LINES, COL_META, COL_TS, column};
use crate::chunk::file::block_readable;
use crate::chunk::{
    BlockMeta, ChunkFile, ChunkIndex, DecodedBlock, ReadError, check, filter, read_block, salvage,
};
use crate::config::Limits;
use crate::index::log::scan;
use crate::index::{ChunkRef, Handles, IndexLog, IndexRecord};
use crate::push::meter::{LineLimit, Meter};
use crate::push::{body, json, otlp, protobuf};
use crate::quarantine::Quarantine;
use crate::validate;
use crate::wal::{self, Wal, record};

/// What a harness made of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Refused with an error before reaching the end of the path.
    Rejected,
    /// Accepted all the way (decoded, validated, replayed, ...).
    Accepted,
}

/// The fixed "now" for validation (2026-01-01T00:00:00Z), so that a replayed
/// input behaves the same whenever it runs. Seeds are stamped just before.
pub const NOW: i64 = 1_767_225_600_000_000_000;

/// The memory a push decode may hold in the harness.
pub const FUZZ_DECODE_MEMORY: usize = 64 << 20;

/// The push formats, in selector order.
pub const PUSH_FORMATS: [&str; 6] = [
    "protobuf (HTTP, snappy)",
    "JSON v1",
    "JSON v0",
    "OTLP protobuf",
    "OTLP JSON",
    "protobuf (gRPC, plain)",
];

/// Decodes a push body as the HTTP and gRPC handlers do (content encoding,
/// then the format's decoder), then validates it with the default limits.
pub fn push(data: &[u8]) -> Outcome {
    let Some((&sel, data)) = data.split_first() else {
        return Outcome::Rejected;
    };
    let encoding = [None, Some("gzip"), Some("deflate"), Some("snappy")][usize::from(sel >> 4) & 3];
    let limits = Limits::default();
    // As the server meters a request, with smaller caps: whatever the
    // input, a decode holds at most what it was allowed.
    let mut meter = Meter::standalone(
        FUZZ_DECODE_MEMORY,
        FUZZ_DECODE_MEMORY / 4,
        LineLimit {
            max: limits.max_line_size.0 as usize,
            truncate: limits.max_line_size_truncate,
        },
    );
    let Ok(raw) = body::decode_content_encoding(encoding, data, &mut meter) else {
        return Outcome::Rejected;
    };
    let decoded = match (sel & 0x0f) % 6 {
        // As the HTTP handler: the body, charged as received, kept for
        // the WAL record.
        0 => match meter.charge(raw.len()) {
            Ok(()) => protobuf::decode_http_kept(&bytes::Bytes::copy_from_slice(&raw), &mut meter),
            Err(e) => Err(e),
        },
        1 => json::decode_v1(&raw, &mut meter),
        2 => json::decode_v0(&raw, &mut meter),
        3 => otlp::decode_protobuf(&raw, &mut meter),
        4 => otlp::decode_json(&raw, &mut meter),
        // As gRPC: the message, charged as received, is the buffer the
        // lines are slices of.
        _ => match raw {
            std::borrow::Cow::Owned(v) => protobuf::decode_plain(&v.into(), &mut meter),
            std::borrow::Cow::Borrowed(b) => match meter.charge(b.len()) {
                Ok(()) => protobuf::decode_plain(&bytes::Bytes::copy_from_slice(b), &mut meter),
                Err(e) => Err(e),
            },
        },
    };
    let Ok(push) = decoded else {
        return Outcome::Rejected;
    };
    assert!(
        meter.held() <= FUZZ_DECODE_MEMORY,
        "a decode held more than it was allowed"
    );
    assert!(
        push.heap_size() <= meter.held(),
        "the push holds {} bytes, but only {} were charged",
        push.heap_size(),
        meter.held()
    );
    let total = push.entry_count() as u64;
    let v = validate::validate(push, &limits, NOW, "fuzz");
    assert!(
        v.error_bytes <= validate::MAX_ERROR_BYTES + 4 * validate::MAX_QUOTED + 512,
        "{} bytes of messages",
        v.error_bytes
    );
    assert!(
        v.accepted_entries() <= total,
        "more entries accepted than sent"
    );
    for s in &v.streams {
        assert_eq!(s.fp, s.labels.fingerprint(), "stale fingerprint");
        for l in s.labels.iter() {
            assert!(
                larch_go::labels::is_valid_label_name(&l.name),
                "validation accepted the label name {:?}",
                l.name
            );
        }
        // What validation accepts is what the WAL stores: it must come
        // back unchanged (a kind 3 record when the push kept its body).
        let mut frame = record::encode_push_into(
            Vec::new(),
            "fuzz",
            v.source.as_ref(),
            std::iter::once((&*s.labels, s.entries.as_slice())),
        );
        record::finish_frame(&mut frame, 7);
        match record::decode_push(&frame[record::FRAME_HEADER..]) {
            Ok(rec) => {
                assert_eq!(rec.seq, 7);
                assert_eq!(rec.streams, vec![((*s.labels).clone(), s.entries.clone())]);
            }
            Err(e) => panic!("an accepted stream does not survive the WAL encoding: {e}"),
        }
    }
    if v.streams.is_empty() {
        Outcome::Rejected
    } else {
        Outcome::Accepted
    }
}

/// Reads a chunk file both ways the store does (whole file in memory, and
/// index plus column ranges from disk) and decodes every block.
pub fn chunk(data: &[u8]) -> Outcome {
    let Some((&flags, data)) = data.split_first() else {
        return Outcome::Rejected;
    };
    let mut bytes = data.to_vec();
    if flags & 1 != 0 {
        repair_chunk(&mut bytes);
    }
    let path = scratch("chunk", "c.chunk");
    write(&path, &bytes);
    let on_disk = ChunkIndex::read(&path);
    check_recovery(&bytes, &path);
    let file = match ChunkFile::parse(bytes) {
        Ok(f) => f,
        Err(_) => return Outcome::Rejected,
    };
    let disk = match on_disk {
        Ok(idx) => {
            assert_eq!(idx.blocks, file.blocks, "the two index readers disagree");
            assert_eq!(idx.size, file.bytes.len() as u64);
            assert_eq!(idx.version, file.version);
            // Only a header over 64 KiB (version 1) is beyond the disk
            // reader's header.
            if let Some(h) = &idx.header {
                assert_eq!(h, &file.header, "the two header readers disagree");
            }
            fs::File::open(&path).ok()
        }
        Err(e) => panic!("the disk reader fails on a chunk that parses: {e}"),
    };
    let ts_only = Columns::NONE;
    let (mut full, mut part, mut from_disk) = Default::default();
    let mut all = true;
    for meta in &file.blocks {
        let res = DecodedBlock::decode(&mut full, &file.bytes, meta, Columns::ALL);
        if res.is_ok() {
            check_block(&full, meta);
        }
        all &= res.is_ok();
        match DecodedBlock::decode(&mut part, &file.bytes, meta, ts_only) {
            Ok(()) if res.is_ok() => assert_eq!(part.ts, full.ts),
            Ok(()) => {}
            Err(e) => assert!(
                res.is_err(),
                "timestamps fail alone but not with lines: {e}"
            ),
        }
        // Lengths without lines: the same offsets as the full decode.
        let lengths = Columns {
            lines: false,
            lengths: true,
            metadata: false,
        };
        match DecodedBlock::decode(&mut part, &file.bytes, meta, lengths) {
            Ok(()) if res.is_ok() => {
                assert_eq!(part.ts, full.ts);
                assert_eq!(part.offsets, full.offsets);
                assert!(part.lines.is_empty());
            }
            Ok(()) => {}
            Err(e) => assert!(res.is_err(), "lengths fail alone but not with lines: {e}"),
        }
        if let Some(f) = &disk {
            let want = [COL_TS, COL_LENS, COL_LINES, COL_META];
            match read_block(f, meta, &want) {
                Ok((buf, rel)) => {
                    let r = DecodedBlock::decode(&mut from_disk, &buf, &rel, Columns::ALL);
                    match (&res, &r) {
                        (Ok(()), Ok(())) => same_block(&full, &from_disk),
                        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                        _ => panic!("memory and disk decoding disagree: {res:?} vs {r:?}"),
                    }
                }
                Err(e) => panic!("a block inside the checked index cannot be read: {e}"),
            }
        }
        if let Ok(stored) = column(&file.bytes, meta.cols[COL_FILTER], "filter column") {
            let mut scratch = Vec::new();
            let f = filter::open(stored, &mut scratch);
            let _ = filter::may_contain(f, b"error");
            let _ = filter::may_contain(f, b"level=warn caller");
            if res.is_ok() && f == filter::build(&full.lines).as_slice() {
                let view = full.view(Columns::ALL);
                for i in 0..view.len() {
                    assert!(
                        filter::may_contain(f, view.line(i)),
                        "the block's filter rejects its own line {i}"
                    );
                }
            }
        }
    }
    if all {
        Outcome::Accepted
    } else {
        Outcome::Rejected
    }
}

/// The recovery readers on any bytes: they answer, an intact chunk's good
/// blocks are its index's, every block found lies inside the file, and
/// what they call good decodes (or fails cleanly).
fn check_recovery(bytes: &[u8], path: &Path) {
    let c = check(bytes);
    let found = salvage(bytes);
    if c.is_intact()
        && let Ok(f) = ChunkFile::parse(bytes.to_vec())
    {
        assert_eq!(c.good, f.blocks, "an intact chunk's blocks are its index's");
    }
    for b in found.iter().chain(&c.good) {
        for col in b.cols.iter().filter(|col| col.len > 0) {
            assert!(
                col.offset
                    .checked_add(col.len)
                    .is_some_and(|e| e <= bytes.len() as u64),
                "a block found outside the file"
            );
        }
    }
    let mut d = DecodedBlock::default();
    for meta in &c.good {
        // Every data column passed its checksum; the structure inside may
        // still be wrong when the harness repaired the checksums, but
        // decoding must answer, not panic.
        if d.decode(bytes, meta, Columns::ALL).is_ok() {
            check_block(&d, meta);
        }
    }
    if let Ok(idx) = ChunkIndex::salvage(path) {
        assert!(idx.salvaged);
        assert_eq!(idx.size, bytes.len() as u64);
    }
    // Recovery decides from `check` what the WAL must replay; a query is
    // served what the reader finds (its index, else the block heads).
    // They must be the same blocks, or lines would be lost in between.
    let served = match ChunkIndex::read(path) {
        Ok(idx) => Some(idx),
        Err(ReadError::Chunk { .. }) => ChunkIndex::salvage(path).ok(),
        Err(e) => panic!("reading a chunk file failed: {e}"),
    };
    let served: Vec<BlockMeta> = served
        .map(|idx| idx.blocks)
        .unwrap_or_default()
        .into_iter()
        .filter(|b| block_readable(bytes, b))
        .collect();
    assert_eq!(
        served, c.good,
        "the reader serves other blocks than recovery checked"
    );
}

/// Invariants the engine relies on for a decoded block.
fn check_block(d: &DecodedBlock, meta: &BlockMeta) {
    let n = meta.entries as usize;
    assert_eq!(d.ts.len(), n, "timestamps");
    check_offsets(&d.offsets, n, d.lines.len(), "line");
    assert_eq!(d.lines.len() as u64, meta.lines_size);
    if !d.meta_offsets.is_empty() {
        check_offsets(&d.meta_offsets, n, d.meta.len(), "metadata");
    }
    let view = d.view(Columns::ALL);
    for i in 0..n {
        let _ = view.line(i);
        let _ = decode_metadata(view.metadata(i)).count();
    }
}

fn check_offsets(offsets: &[u32], n: usize, len: usize, what: &str) {
    assert_eq!(offsets.len(), n + 1, "{what} offsets");
    assert_eq!(offsets.first().copied(), Some(0), "{what} offsets start");
    assert!(
        offsets.windows(2).all(|w| w[0] <= w[1]),
        "{what} offsets go back"
    );
    assert_eq!(
        offsets.last().map(|&e| e as usize),
        Some(len),
        "{what} offsets end"
    );
}

fn same_block(a: &DecodedBlock, b: &DecodedBlock) {
    assert_eq!(a.ts, b.ts);
    assert_eq!(a.offsets, b.offsets);
    assert_eq!(a.lines, b.lines);
    assert_eq!(a.meta_offsets, b.meta_offsets);
    assert_eq!(a.meta, b.meta);
}

/// Recomputes the index checksum in the footer, every column checksum
/// the index points at, and (version 2) the header's and every block
/// head's checksum (see the formats in `chunk::file`, `chunk::block`).
fn repair_chunk(bytes: &mut [u8]) {
    let n = bytes.len();
    if n < 32 {
        return;
    }
    // Version 2 and 3 header: magic | u32 len | u32 crc | body.
    if bytes[7] == 2 || bytes[7] == 3 {
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if let Some(end) = 16usize.checked_add(len).filter(|&e| e <= n) {
            let crc = crc32fast::hash(&bytes[16..end]);
            bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        }
        // Block heads: "LRBK" (version 2) or "LRBC" (version 3) | u32 len
        // | u32 crc | body.
        let mut pos = 16;
        while let Some(i) = bytes[pos..]
            .windows(4)
            .position(|w| w == b"LRBK" || w == b"LRBC")
        {
            let at = pos + i;
            if at + 12 > n {
                break;
            }
            let len =
                u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
                    as usize;
            if let Some(end) = (at + 12).checked_add(len).filter(|&e| e <= n && len <= 200) {
                let crc = crc32fast::hash(&bytes[at + 12..end]);
                bytes[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
            }
            pos = at + 4;
        }
    }
    let foot = n - 24;
    let word = |at: usize, len: usize| -> u64 {
        bytes[at..at + len]
            .iter()
            .rev()
            .fold(0, |v, &b| (v << 8) | u64::from(b))
    };
    let (offset, len) = (word(foot, 8), word(foot + 8, 4));
    if let Some(end) = offset.checked_add(len).filter(|&e| e <= foot as u64) {
        let crc = crc32fast::hash(&bytes[offset as usize..end as usize]);
        bytes[foot + 12..foot + 16].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(file) = ChunkFile::parse(bytes.to_vec()) {
        for c in file.blocks.iter().flat_map(|b| b.cols.iter()) {
            if c.len >= 4 {
                // Parsing checked that the column lies before the index.
                let (start, end) = (c.offset as usize, (c.offset + c.len) as usize);
                let crc = crc32fast::hash(&bytes[start..end - 4]);
                bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
            }
        }
    }
}

/// Decodes the input as one WAL record payload, then replays it as a
/// segment file, restarts on it, and replays again.
pub fn wal(data: &[u8]) -> Outcome {
    let Some((&flags, data)) = data.split_first() else {
        return Outcome::Rejected;
    };
    let direct = record::decode_push(data);
    if let Ok(rec) = &direct {
        check_record(rec);
    }

    let mut seg = data.to_vec();
    if flags & 1 != 0 {
        repair_frames(&mut seg, 8);
    }
    let two = flags & 2 != 0;
    let dir = scratch("wal", "segments");
    let _ = fs::remove_dir_all(&dir);
    mkdir(&dir);
    write(&dir.join(format!("{:020}.wal", 1)), &seg);
    if two {
        write(&dir.join(format!("{:020}.wal", 2)), &seg);
    }
    let (segments, recs) = replay_all(&dir);
    for r in &recs {
        check_record(r);
    }
    // Replay repaired what a crash leaves for good.
    let (again_segments, again) = replay_all(&dir);
    assert_eq!(again, recs, "a second replay found other records");
    assert_eq!(
        again_segments, segments,
        "a second replay found other segments"
    );
    if two {
        let (a, b) = recs.split_at(recs.len() / 2);
        assert_eq!(
            a, b,
            "the same segment replayed differently as older and newest"
        );
    }

    // Restart: the store opens a new segment after the replayed ones and
    // goes on appending. Nothing replayed before may be lost.
    let labels = larch_query::LabelSet::from_pairs([("app", "restart")]);
    let entries = [record::WalEntry {
        ts: 1,
        line: "after restart".into(),
        meta: bytes::Bytes::new(),
    }];
    let mut frame = record::encode_push("fuzz", std::iter::once((&labels, &entries[..])));
    let seq = recs
        .iter()
        .map(|r| r.seq)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    record::finish_frame(&mut frame, seq);
    match Wal::open(&dir, 1 << 20, false, segments) {
        Ok(mut w) => {
            if let Err(e) = w.append(&frame, seq) {
                panic!("appending to the scratch WAL failed: {e}");
            }
        }
        Err(e) => panic!("opening the scratch WAL failed: {e}"),
    }
    let (_, again) = replay_all(&dir);
    assert_eq!(again.len(), recs.len() + 1, "records lost after a restart");
    assert_eq!(
        &again[..recs.len()],
        &recs[..],
        "records changed after a restart"
    );

    if direct.is_ok() || !recs.is_empty() {
        Outcome::Accepted
    } else {
        Outcome::Rejected
    }
}

fn replay_all(dir: &Path) -> (Vec<(u64, u64)>, Vec<record::PushRecord>) {
    let mut recs = Vec::new();
    let quarantine = Quarantine::at(&dir.with_extension("quarantine"));
    match wal::replay(dir, &quarantine, |r| recs.push(r.to_owned_record())) {
        Ok((segments, stats)) => {
            assert_eq!(stats.records, recs.len() as u64);
            assert_eq!(
                stats.last_seq,
                recs.iter().map(|r| r.seq).max().unwrap_or(0)
            );
            (segments, recs)
        }
        Err(e) => panic!("replaying the scratch WAL failed: {e}"),
    }
}

/// A decoded record re-encodes to the same record.
fn check_record(rec: &record::PushRecord) {
    let mut frame = record::encode_push(
        &rec.tenant,
        rec.streams.iter().map(|(l, e)| (l, e.as_slice())),
    );
    record::finish_frame(&mut frame, rec.seq);
    match record::decode_push(&frame[record::FRAME_HEADER..]) {
        Ok(again) => assert_eq!(&again, rec, "a record changed through re-encoding"),
        Err(e) => panic!("a decoded record does not decode after re-encoding: {e}"),
    }
}

/// Fixes the length-and-CRC frames (`u32le len | u32le crc | payload`)
/// found from `start` on, as far as their lengths fit.
fn repair_frames(bytes: &mut [u8], start: usize) {
    let mut pos = start;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let Some(end) = (pos + 8).checked_add(len).filter(|&e| e <= bytes.len()) else {
            return;
        };
        let crc = crc32fast::hash(&bytes[pos + 8..end]);
        bytes[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// Opens an index log holding the input, then checks that the open left a
/// sound log behind: reopening, appending and rewriting keep every record.
pub fn index_log(data: &[u8]) -> Outcome {
    let Some((&flags, data)) = data.split_first() else {
        return Outcome::Rejected;
    };
    let mut bytes = data.to_vec();
    if flags & 1 != 0 {
        repair_frames(&mut bytes, 8);
    }
    let dir = scratch("index", "tenant");
    let _ = fs::remove_dir_all(&dir);
    mkdir(&dir);
    let path = dir.join("index.log");
    write(&path, &bytes);
    let quarantine = Quarantine::at(&dir.join("quarantine"));
    let handles = Handles::new(2);
    let records = match IndexLog::open(&path, handles.clone(), &quarantine) {
        Ok(o) => {
            // Every valid frame around bad regions is kept.
            assert_eq!(o.records, scan(&bytes).records, "open and scan disagree");
            o.records
        }
        Err(e) => {
            assert!(
                !bytes.is_empty() && e.kind() == std::io::ErrorKind::InvalidData,
                "unexpected error opening an index log: {e}"
            );
            return Outcome::Rejected;
        }
    };
    let mut log = match IndexLog::open(&path, handles.clone(), &quarantine) {
        Ok(o) => {
            assert_eq!(o.records, records, "reopening changed the records");
            assert!(
                o.damage.is_clean(),
                "opening did not repair the log: {:?}",
                o.damage
            );
            o.log
        }
        Err(e) => panic!("a log that opened once does not open again: {e}"),
    };
    let extra = IndexRecord::Chunk {
        fp: 1,
        chunk: ChunkRef {
            id: "fuzz".into(),
            mint: -1,
            maxt: i64::MAX,
            entries: 3,
            bytes: 4,
            raw_bytes: 5,
            max_seq: u64::MAX,
        },
    };
    if let Err(e) = log.append(std::slice::from_ref(&extra)) {
        panic!("appending to the scratch index log failed: {e}");
    }
    let mut want = records.clone();
    want.push(extra);
    let mut log = reopen_expecting(&path, &handles, &quarantine, &want);
    if let Err(e) = log.rewrite(&records) {
        panic!("rewriting the scratch index log failed: {e}");
    }
    drop(log);
    reopen_expecting(&path, &handles, &quarantine, &records);
    if records.is_empty() {
        Outcome::Rejected
    } else {
        Outcome::Accepted
    }
}

fn reopen_expecting(
    path: &Path,
    handles: &std::sync::Arc<Handles>,
    quarantine: &Quarantine,
    want: &[IndexRecord],
) -> IndexLog {
    match IndexLog::open(path, handles.clone(), quarantine) {
        Ok(o) => {
            assert_eq!(o.records, want, "records changed through the log");
            assert!(
                o.damage.is_clean(),
                "a log the store wrote reads as damaged"
            );
            o.log
        }
        Err(e) => panic!("the scratch index log does not reopen: {e}"),
    }
}

/// The token filter. With bit 0 of the first byte clear: the second byte
/// (modulo what is left) is the needle's length, the needle follows, and
/// the rest is taken as filter bytes. With bit 0 set: the last two bytes
/// choose a needle (start, length) inside the lines that make up the rest;
/// a filter built from the lines must admit that needle in any ASCII case.
pub fn filter(data: &[u8]) -> Outcome {
    let Some((&mode, data)) = data.split_first() else {
        return Outcome::Rejected;
    };
    if mode & 1 == 0 {
        let Some((&k, data)) = data.split_first() else {
            return Outcome::Rejected;
        };
        let (needle, bits) = data.split_at(usize::from(k) % (data.len() + 1));
        let checkable = filter::is_checkable(needle);
        let found = filter::may_contain(bits, needle);
        if checkable && found {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        }
    } else {
        if data.len() < 2 {
            return Outcome::Rejected;
        }
        let (lines, pick) = data.split_at(data.len() - 2);
        let start = usize::from(pick[0]) % (lines.len() + 1);
        let len = usize::from(pick[1]) % (lines.len() - start + 1);
        let needle = &lines[start..start + len];
        let f = filter::build(lines);
        assert!(
            filter::may_contain(&f, needle),
            "false negative for {:?}",
            String::from_utf8_lossy(needle)
        );
        let flipped: Vec<u8> = needle
            .iter()
            .map(|&b| if b.is_ascii_alphabetic() { b ^ 0x20 } else { b })
            .collect();
        assert!(
            filter::may_contain(&f, &flipped),
            "false negative for {:?} in another case",
            String::from_utf8_lossy(&flipped)
        );
        if filter::is_checkable(needle) {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        }
    }
}

/// A harness.
pub type Harness = fn(&[u8]) -> Outcome;

/// Every target by name, for the replay tests.
pub const TARGETS: [(&str, Harness); 5] = [
    ("push", push),
    ("chunk", chunk),
    ("wal", wal),
    ("index_log", index_log),
    ("filter", filter),
];

/// A per-thread scratch directory under the system's temporary directory
/// (`TMPDIR`), removed when the thread ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// `<scratch>/<sub>/<name>`, with `<scratch>/<sub>` created.
fn scratch(sub: &str, name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = SCRATCH.with(|s| {
        s.borrow_mut()
            .get_or_insert_with(|| {
                Scratch(std::env::temp_dir().join(format!(
                    "larch-fuzz-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                )))
            })
            .0
            .clone()
    });
    let dir = base.join(sub);
    mkdir(&dir);
    dir.join(name)
}

fn mkdir(dir: &Path) {
    if let Err(e) = fs::create_dir_all(dir) {
        panic!("cannot create the scratch directory {}: {e}", dir.display());
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = fs::write(path, bytes) {
        panic!("cannot write the scratch file {}: {e}", path.display());
    }
}
