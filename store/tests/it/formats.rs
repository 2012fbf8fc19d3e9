//! Golden files of every chunk format version: each committed file must
//! still read back to the same entries, and a store must adopt an old
//! chunk file as it adopts a new one.
//!
//! `LARCH_WRITE_FIXTURES=1 cargo test -p larch-store --test it formats::`
//! writes the current version's file (older versions are frozen: they
//! were written by the encoders of their time).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use larch_query::{Columns, LabelSet};
use larch_store::chunk::{
    ChunkFile, ChunkHeader, ChunkIndex, DecodedBlock, EncodedBlock, HeadBlock, check, encode_chunk,
};
use larch_store::encoding::put_bytes;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;

use super::faults::{config, read_all};

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

fn encoded_blocks() -> Vec<EncodedBlock> {
    let mut h = HeadBlock::new();
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

#[test]
fn chunk_v2_golden_file() {
    let path = fixture("chunk-v2.chunk");
    let blocks = encoded_blocks();
    let refs: Vec<&EncodedBlock> = blocks.iter().collect();
    let header = ChunkHeader {
        labels: labels().to_string(),
        fingerprint: labels().fingerprint(),
        min_seq: 3,
        max_seq: 7,
        replaces: vec!["0000000000000002-0badc0de".into()],
    };
    let bytes = encode_chunk(&header, &refs);
    if std::env::var_os("LARCH_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let committed = std::fs::read(&path).unwrap();
    assert!(
        committed == bytes,
        "the version 2 encoder changed; a format change needs a new version (and a new golden file)"
    );
    let f = ChunkFile::parse(committed.clone()).unwrap();
    assert_eq!(f.version, 2);
    assert_eq!(f.header, header);
    assert_eq!(entries_of(&f), want());
    assert!(check(&committed).is_intact());
    let idx = ChunkIndex::read(&path).unwrap();
    assert_eq!(idx.blocks, f.blocks);
    assert_eq!(idx.header, Some(header));
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
    for (name, fixture_name) in [
        ("0000000000000007-00000001", "chunk-v1.chunk"),
        ("0000000000000009-00000002", "chunk-v2.chunk"),
    ] {
        let tenant = if name.ends_with('1') { "old" } else { "new" };
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
    assert_eq!(report.recovery.adopted, 2, "{report:?}");
    let got = read_all(&ing);
    for tenant in ["old", "new"] {
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
