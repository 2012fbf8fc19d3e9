//! What a bucket holds, read from its directory (the filesystem backend's
//! root, or the directory `s3s-fs` keeps a bucket in) with the store's own
//! decoders: the chunks a tenant's live segments name and the entries in
//! them, and every line of every chunk object, whatever the read path
//! (which merges overlapping blocks and drops identical entries) would
//! make of them.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use larch_query::Columns;
use larch_store::chunk::{ChunkFile, DecodedBlock};
use larch_store::index::IndexRecord;
use larch_store::objstore::{layout, segment};
use larch_store::tenant::TenantId;

/// Every entry of a chunk file (timestamp, line), in its order.
pub fn entries_of_chunk(path: &Path) -> Vec<(i64, String)> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("reading chunk {}: {e}", path.display()));
    let f = ChunkFile::parse(bytes)
        .unwrap_or_else(|e| panic!("chunk {} does not parse: {e}", path.display()));
    let mut out = Vec::new();
    for meta in &f.blocks {
        let mut b = DecodedBlock::default();
        b.decode(&f.bytes, meta, Columns::ALL)
            .unwrap_or_else(|e| panic!("chunk {}: {e}", path.display()));
        let v = b.view(Columns::ALL);
        for i in 0..v.len() {
            out.push((
                v.timestamps[i],
                String::from_utf8_lossy(v.line(i)).into_owned(),
            ));
        }
    }
    out
}

/// Every line of a chunk file, in its order.
pub fn lines_of_chunk(path: &Path) -> Vec<String> {
    entries_of_chunk(path).into_iter().map(|(_, l)| l).collect()
}

/// Every line of every chunk file under `dir` (what is stored, whatever
/// any index says).
pub fn chunk_file_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "chunk") {
                out.extend(lines_of_chunk(&p));
            }
        }
    }
    out
}

/// A chunk object a live segment names, with its entries.
#[derive(Debug)]
pub struct LiveChunk {
    /// Its key in the bucket.
    pub key: String,
    /// Its lines.
    pub lines: Vec<String>,
    /// Its entries' timestamps, in the order of `lines`.
    pub timestamps: Vec<i64>,
}

/// The chunks named by the live segments of `tenant` in the bucket rooted
/// at `root` (per day, the listed segments less those another listed
/// segment of the day supersedes, as a reader's view), each chunk once
/// however many days name it. Panics on a damaged segment or a named
/// chunk that is not there.
pub fn live_chunks(root: &Path, tenant: &str) -> Vec<LiveChunk> {
    let t = TenantId::new(tenant).unwrap();
    let prefix = root.join(layout::segment_prefix(&t));
    let mut named: BTreeSet<(u64, String)> = BTreeSet::new();
    let Ok(days) = std::fs::read_dir(&prefix) else {
        return Vec::new();
    };
    for day in days {
        let day = day.unwrap().path();
        let mut segs = Vec::new();
        for f in std::fs::read_dir(&day).unwrap() {
            let p = f.unwrap().path();
            let Some(name) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".seg"))
            else {
                continue;
            };
            let s = segment::decode(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("segment {}: {e}", p.display()));
            assert!(!s.damaged, "segment {} is damaged", p.display());
            segs.push((name.to_string(), s));
        }
        let superseded: HashSet<&str> = segs
            .iter()
            .flat_map(|(_, s)| s.supersedes.iter().map(String::as_str))
            .collect();
        for (_, s) in segs
            .iter()
            .filter(|(n, _)| !superseded.contains(n.as_str()))
        {
            for r in &s.records {
                if let IndexRecord::Chunk { fp, chunk } = r {
                    named.insert((*fp, chunk.id.clone()));
                }
            }
        }
    }
    named
        .into_iter()
        .map(|(fp, id)| {
            let key = layout::chunk_key(&t, fp, &id);
            let path = root.join(&key);
            assert!(
                path.exists(),
                "chunk {key}, named by a live segment, is not in the bucket"
            );
            let (timestamps, lines) = entries_of_chunk(&path).into_iter().unzip();
            LiveChunk {
                lines,
                timestamps,
                key,
            }
        })
        .collect()
}

/// Every entry stored in the chunk objects that the live segments of
/// every tenant in the bucket rooted at `root` name, one per stored copy
/// (a query's merge would hide an entry stored twice; this does not),
/// sorted. A chunk named by several segments (two days, or a segment
/// published twice) is one object and counted once.
pub fn live_entries(root: &Path) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let Ok(tenants) = std::fs::read_dir(root.join(layout::SEGMENTS)) else {
        return out;
    };
    for t in tenants {
        let t = t.unwrap().file_name();
        let t = t.to_str().expect("a tenant directory's name");
        for c in live_chunks(root, t) {
            out.extend(c.timestamps.into_iter().zip(c.lines));
        }
    }
    out.sort();
    out
}
