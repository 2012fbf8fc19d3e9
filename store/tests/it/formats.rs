//! Golden files of every chunk format version: each committed file must
//! still read back to the same entries, and a store must adopt an old
//! chunk file as it adopts a new one. Likewise a WAL segment of an older
//! record kind must replay.
//!
//! `LARCH_WRITE_FIXTURES=1 cargo test -p larch-store --test it formats::`
//! writes the current version's files, one per codec (older versions are
//! frozen: they were written by the encoders of their time).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use larch_query::{Columns, LabelSet};
use larch_store::chunk::block::{COL_FILTER, column};
use larch_store::chunk::filter;
use larch_store::chunk::{
    ChunkFile, ChunkHeader, ChunkIndex, Codec, DecodedBlock, EncodedBlock, Encoding, HeadBlock,
    check, encode_chunk, read_block, salvage,
};
use larch_store::encoding::put_bytes;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;

use super::faults::{config, read_all, read_all_with_metadata, workload};

const T0: i64 = 1_700_000_000_000_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn labels() -> LabelSet {
    LabelSet::from_pairs([("app", "golden"), ("env", "test")])
}

/// The entries of the golden chunks, per block: (timestamp, line, encoded
/// metadata), in the order the blocks were appended.
fn golden_blocks() -> Vec<Vec<(i64, String, Vec<u8>)>> {
    let first = (0..20i64)
        .map(|i| {
            let mut meta = Vec::new();
            if i % 5 == 0 {
                put_bytes(&mut meta, b"trace_id");
                put_bytes(&mut meta, format!("t{i}").as_bytes());
            }
            (T0 + i * 1000, format!("golden line {i} level=info"), meta)
        })
        .collect();
    // Appended newest first: the block is sorted when cut.
    let second = (0..10i64)
        .map(|i| {
            (
                T0 + 100_000 - i * 10,
                format!("second block {i}"),
                Vec::new(),
            )
        })
        .collect();
    vec![first, second]
}

fn encoded_blocks(codec: Codec) -> Vec<EncodedBlock> {
    let mut h = HeadBlock::with_encoding(Encoding::new(codec));
    golden_blocks()
        .into_iter()
        .map(|entries| {
            for (ts, line, meta) in entries {
                h.append(ts, line.as_bytes(), &meta);
            }
            h.cut()
        })
        .collect()
}

/// Every (timestamp, line, metadata) a chunk file holds.
fn entries_of(f: &ChunkFile) -> Vec<(i64, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut d = DecodedBlock::default();
    for meta in &f.blocks {
        d.decode(&f.bytes, meta, Columns::ALL).unwrap();
        let v = d.view(Columns::ALL);
        for i in 0..v.len() {
            out.push((
                v.timestamps[i],
                String::from_utf8(v.line(i).to_vec()).unwrap(),
                v.metadata(i).to_vec(),
            ));
        }
    }
    out
}

fn want() -> Vec<(i64, String, Vec<u8>)> {
    let mut all: Vec<_> = golden_blocks().into_iter().flatten().collect();
    all.sort_by_key(|e| e.0);
    all
}

fn golden_header() -> ChunkHeader {
    ChunkHeader {
        labels: labels().to_string(),
        fingerprint: labels().fingerprint(),
        min_seq: 3,
        max_seq: 7,
        replaces: vec!["0000000000000002-0badc0de".into()],
    }
}

/// Every way the store reads a chunk file finds the same blocks, all of
/// `codec`, and the same entries: the whole file parsed, the index read
/// from disk with each block's columns read by range, the footer-first
/// reader object storage uses, and the block heads.
fn reads_back_every_way(path: &Path, codec: Codec, version: u8) {
    let bytes = std::fs::read(path).unwrap();
    let f = ChunkFile::parse(bytes.clone()).unwrap();
    assert_eq!(f.version, version);
    assert!(f.blocks.iter().all(|b| b.codec == codec), "{codec}");
    assert_eq!(entries_of(&f), want(), "{codec}");
    assert!(check(&bytes).is_intact());
    let idx = ChunkIndex::read(path).unwrap();
    assert_eq!(idx.blocks, f.blocks);
    let file = std::fs::File::open(path).unwrap();
    let mut d = DecodedBlock::default();
    let mut n = 0;
    for meta in &idx.blocks {
        let (buf, rel) = read_block(&file, meta, &[0, 1, 2, 3]).unwrap();
        d.decode(&buf, &rel, Columns::ALL).unwrap();
        n += d.ts.len();
    }
    assert_eq!(n, want().len());
    // Object storage: the footer and index from the object's tail.
    let size = bytes.len() as u64;
    for start in [0, size - 30] {
        let tail = &bytes[start as usize..];
        let remote = match ChunkIndex::from_tail(tail, start, size).unwrap() {
            Ok(i) => i,
            Err(at) => {
                let index = &bytes[at.offset as usize..(at.offset + at.len) as usize];
                ChunkIndex::from_index_bytes(index, &at, size).unwrap()
            }
        };
        assert_eq!(remote.blocks, f.blocks);
    }
    if version >= 2 {
        assert_eq!(salvage(&bytes), f.blocks, "the block heads agree");
    }
}

/// The current version, one golden file per codec: the encoder must still
/// write it byte for byte (zstd's output depends on the library's version,
/// so for zstd the committed file must read back and a fresh encoding must
/// decode to the same entries).
#[test]
fn chunk_v3_golden_files() {
    for codec in Codec::ALL {
        let path = fixture(&format!("chunk-v3-{codec}.chunk"));
        let blocks = encoded_blocks(codec);
        let refs: Vec<&EncodedBlock> = blocks.iter().collect();
        let bytes = encode_chunk(&golden_header(), &refs);
        // The zstd file keeps its version 4 token filters, as written
        // before zstd blocks stored them compressed (the file below).
        if std::env::var_os("LARCH_WRITE_FIXTURES").is_some() && codec != Codec::Zstd {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap();
        if codec == Codec::Zstd {
            let fresh = ChunkFile::parse(bytes).unwrap();
            assert_eq!(entries_of(&fresh), want());
        } else {
            assert!(
                committed == bytes,
                "the version 3 encoder changed ({codec}); a format change needs a new version (and new golden files)"
            );
        }
        reads_back_every_way(&path, codec, 3);
        let f = ChunkFile::parse(committed).unwrap();
        assert_eq!(f.header, golden_header());
        assert_eq!(
            ChunkIndex::read(&path).unwrap().header,
            Some(golden_header())
        );
    }
}

/// The token filter of a stored block, as opened for a query, and the
/// first byte (the filter's version) of the column as stored.
fn filters(f: &ChunkFile) -> Vec<(u8, Vec<u8>)> {
    f.blocks
        .iter()
        .map(|m| {
            let stored = column(&f.bytes, m.cols[COL_FILTER], "filter").unwrap();
            let mut scratch = Vec::new();
            (stored[0], filter::open(stored, &mut scratch).to_vec())
        })
        .collect()
}

/// zstd blocks store their token filter compressed (filter version 5):
/// the golden file written so reads back every way, and its filters open
/// to the very filters of the lines, as the version 4 filters of the
/// older zstd file do.
#[test]
fn chunk_v3_zstd_compressed_filter_golden_file() {
    let path = fixture("chunk-v3-zstd-filter5.chunk");
    let blocks = encoded_blocks(Codec::Zstd);
    let refs: Vec<&EncodedBlock> = blocks.iter().collect();
    let bytes = encode_chunk(&golden_header(), &refs);
    if std::env::var_os("LARCH_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    reads_back_every_way(&path, Codec::Zstd, 3);
    let want_filters: Vec<Vec<u8>> = golden_blocks()
        .iter()
        .map(|b| {
            let mut sorted: Vec<&(i64, String, Vec<u8>)> = b.iter().collect();
            sorted.sort_by_key(|e| e.0);
            let lines: Vec<u8> = sorted.iter().flat_map(|e| e.1.bytes()).collect();
            filter::build(&lines)
        })
        .collect();
    for (name, version) in [
        ("chunk-v3-zstd-filter5.chunk", 5),
        ("chunk-v3-zstd.chunk", 4),
    ] {
        let f = ChunkFile::parse(std::fs::read(fixture(name)).unwrap()).unwrap();
        let got = filters(&f);
        assert!(got.iter().all(|(v, _)| *v == version), "{name}");
        let opened: Vec<Vec<u8>> = got.into_iter().map(|(_, f)| f).collect();
        assert_eq!(opened, want_filters, "{name}");
    }
    // A fresh encoding stores compressed filters too.
    let fresh = ChunkFile::parse(bytes).unwrap();
    assert!(filters(&fresh).iter().all(|(v, _)| *v == 5));
}

/// Version 2 (every block snappy, no codec bytes), written by the encoder
/// of its time: still read every way.
#[test]
fn chunk_v2_golden_file() {
    let path = fixture("chunk-v2.chunk");
    reads_back_every_way(&path, Codec::Snappy, 2);
    let f = ChunkFile::parse(std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(f.header, golden_header());
    assert_eq!(
        ChunkIndex::read(&path).unwrap().header,
        Some(golden_header())
    );
}

#[test]
fn chunk_v1_golden_file() {
    let path = fixture("chunk-v1.chunk");
    let bytes = std::fs::read(&path).unwrap();
    let f = ChunkFile::parse(bytes.clone()).unwrap();
    assert_eq!(f.version, 1);
    assert_eq!(f.header.labels, labels().to_string());
    assert_eq!(f.header.fingerprint, labels().fingerprint());
    assert_eq!(entries_of(&f), want());
    let c = check(&bytes);
    assert_eq!(c.version, 1);
    assert_eq!(c.good, f.blocks);
    assert!(c.is_intact());
    let idx = ChunkIndex::read(&path).unwrap();
    assert_eq!(idx.blocks, f.blocks);
}

/// A version 1 chunk no index names (an index lost, or written before
/// version 2 existed) is adopted: its stream from its header, its
/// sequence number from its name.
#[test]
fn old_chunks_are_adopted_into_a_missing_index() {
    let dir = tempfile::tempdir().unwrap();
    for (name, fixture_name, tenant) in [
        ("0000000000000007-00000001", "chunk-v1.chunk", "old"),
        ("0000000000000009-00000002", "chunk-v2.chunk", "new"),
        ("0000000000000009-00000003", "chunk-v3-lz4.chunk", "lz4"),
        ("0000000000000009-00000004", "chunk-v3-zstd.chunk", "zstd"),
    ] {
        let to = dir
            .path()
            .join("chunks")
            .join(tenant)
            .join(format!("{:016x}", labels().fingerprint()));
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(fixture(fixture_name), to.join(format!("{name}.chunk"))).unwrap();
    }
    let (ing, report) =
        Ingester::open(config(dir.path(), false), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.recovery.adopted, 4, "{report:?}");
    let got = read_all(&ing);
    for tenant in ["old", "new", "lz4", "zstd"] {
        let lines: Vec<(i64, String)> = got
            .iter()
            .filter(|l| l.0 == tenant)
            .map(|l| (l.2, l.3.clone()))
            .collect();
        let want: Vec<(i64, String)> = want().into_iter().map(|(t, l, _)| (t, l)).collect();
        assert_eq!(lines, want, "tenant {tenant}");
    }
    let old = ing
        .existing_tenant(&larch_store::tenant::TenantId::new("old").unwrap())
        .unwrap();
    let s = old.get(labels().fingerprint()).unwrap();
    assert_eq!(s.state.lock().flushed_max_seq, 7, "from the file name");
    ing.halt();
    // Recorded for good: the next start adopts nothing.
    let (ing, report) =
        Ingester::open(config(dir.path(), false), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.recovery.adopted, 0);
    assert_eq!(read_all(&ing), got);
    ing.halt();
}

/// The codecs of every block of every chunk file under `dir`, with
/// whether the file is a compaction's output (it names what it replaced).
fn chunk_codecs(dir: &Path, out: &mut Vec<(Codec, bool)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            chunk_codecs(&p, out);
        } else if p.extension().is_some_and(|x| x == "chunk") {
            let f = ChunkFile::parse(std::fs::read(&p).unwrap()).unwrap();
            let compacted = !f.header.replaces.is_empty();
            out.extend(f.blocks.iter().map(|b| (b.codec, compacted)));
        }
    }
}

/// A store writes the configured codec; chunks of every codec side by side
/// (the setting changed between restarts) all read back, through restarts
/// and through a compaction that merges them into the codec now set.
#[test]
fn a_store_writes_every_codec_and_reads_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    for (round, codec) in Codec::ALL.into_iter().enumerate() {
        let mut c = config(dir.path(), false);
        c.ingester.chunk_encoding = codec;
        c.ingester.chunk_zstd_level = 7;
        // lz4 blocks from the reference library's high-compression
        // matcher, compacted below into blocks of the fast one.
        c.ingester.chunk_lz4_level = 9;
        let (ing, _) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
        acked.extend(workload(&ing, round as u64 + 1, 30, 3, &[29]));
        acked.sort();
        assert_eq!(read_all(&ing), acked, "{codec}");
        ing.halt();
    }
    let mut codecs = Vec::new();
    chunk_codecs(&dir.path().join("chunks"), &mut codecs);
    for codec in Codec::ALL {
        assert!(codecs.contains(&(codec, false)), "no {codec} block written");
    }

    let mut c = config(dir.path(), false);
    c.ingester.chunk_encoding = Codec::Lz4;
    c.ingester.chunk_target_size = larch_config::ByteSize(1 << 20);
    let (ing, _) = Ingester::open(c.clone(), Arc::new(Metrics::new())).unwrap();
    assert_eq!(read_all(&ing), acked, "after a restart");
    larch_store::ingester::compact::compact_all(&ing);
    assert_eq!(read_all(&ing), acked, "after compaction");
    ing.halt();
    let mut codecs = Vec::new();
    chunk_codecs(&dir.path().join("chunks"), &mut codecs);
    let merged: Vec<Codec> = codecs.iter().filter(|c| c.1).map(|c| c.0).collect();
    assert!(!merged.is_empty(), "nothing was compacted");
    assert!(merged.iter().all(|c| *c == Codec::Lz4), "{merged:?}");
    let (ing, _) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    assert_eq!(read_all(&ing), acked, "after compaction and a restart");
    ing.halt();
}

/// A WAL segment written by a store of 2026-12-05 (record kind 1: whole
/// timestamps, metadata as it is), killed before any flush: a JSON push of
/// two streams with discovered levels and one entry with a pair of its
/// own. The store of today replays it whole, undamaged, and once flushed
/// and restarted holds the same.
#[test]
fn a_wal_of_kind_1_records_replays() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::copy(fixture("wal-v1.wal"), wal.join("00000000000000000001.wal")).unwrap();
    let (ing, report) =
        Ingester::open(config(dir.path(), false), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.replay.records, 1, "{report:?}");
    assert_eq!(report.replay.corruptions, 0, "{report:?}");
    assert!(!report.replay.torn_tail, "{report:?}");
    assert_eq!(report.replay.quarantined, 0, "{report:?}");
    assert_eq!(report.replayed_entries, 6);
    let level = |l: &str| vec![("detected_level".to_string(), l.to_string())];
    let api = r#"{app="api", namespace="prod", service_name="api"}"#;
    let web = r#"{app="web", namespace="prod", service_name="web"}"#;
    let t = |ns: i64| 1_764_900_000_000_000_000 + ns;
    let row = |labels: &str, ts: i64, line: &str, meta: Vec<(String, String)>| {
        (
            "tenant-a".to_string(),
            labels.to_string(),
            ts,
            line.to_string(),
            meta,
        )
    };
    let want = vec![
        row(api, t(0), "level=info msg=\"started\"", level("info")),
        row(api, t(100), "ERROR failed to connect to db", level("error")),
        row(api, t(200), "plain line without a level", level("unknown")),
        row(
            api,
            t(300),
            "trace line",
            vec![
                ("trace_id".to_string(), "7f3a9c1e".to_string()),
                ("detected_level".to_string(), "trace".to_string()),
            ],
        ),
        row(
            web,
            t(500_000_000),
            r#"{"level":"debug","msg":"cache hit"}"#,
            level("debug"),
        ),
        row(
            web,
            t(1_000_000_000),
            "WARN slow request took=1200ms",
            level("warn"),
        ),
    ];
    assert_eq!(read_all_with_metadata(&ing), want);
    ing.flush_all();
    ing.halt();
    let (ing, report) =
        Ingester::open(config(dir.path(), false), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.replayed_entries, 0, "in chunks now: {report:?}");
    assert_eq!(read_all_with_metadata(&ing), want);
    ing.halt();
}
