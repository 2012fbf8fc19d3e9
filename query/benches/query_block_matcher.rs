//! The block line matcher against the floor of any scan over stored
//! blocks: snappy-decompress the block, then `memchr::memmem` over it.
//!
//! Data: the loghub samples (`shared/data/loghub/*.log`), replayed to about
//! 128 MiB (each replay numbers its lines so no two blocks are equal) with
//! one unique needle line in the middle, cut into 256 KiB blocks of
//! contiguous line bytes plus offsets, each snappy-compressed as the store
//! does. Every measurement decompresses every block into one reused
//! buffer; the baseline then counts literal hits with `memmem`, ours runs
//! the compiled filter chain and collects matching entry indices.
//!
//! Run: `cargo bench -p larch-query --bench query_block_matcher`.
//! `LARCH_LOGHUB` overrides the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use larch_query::pipeline::{BlockMatcher, LineFilterOp, LineFilterSpec};
use memchr::memmem;

const TARGET: usize = 128 << 20;
const BLOCK: usize = 256 << 10;
const NEEDLE: &str = "needle-7f3a9c1e";

struct Block {
    compressed: Vec<u8>,
    raw_len: usize,
    offsets: Vec<u32>,
}

fn loghub_dir() -> PathBuf {
    if let Ok(d) = std::env::var("LARCH_LOGHUB") {
        return PathBuf::from(d);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let cand = dir.join("shared/data/loghub");
        if cand.is_dir() {
            return cand;
        }
        if !dir.pop() {
            panic!("shared/data/loghub not found above the crate; set LARCH_LOGHUB");
        }
    }
}

fn corpus() -> (Vec<Block>, usize) {
    let mut lines: Vec<String> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(loghub_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    let mut blocks = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut offsets = vec![0u32];
    let mut total = 0;
    let mut round = 0;
    let mut enc = snap::raw::Encoder::new();
    let mut flush = |buf: &mut Vec<u8>, offsets: &mut Vec<u32>, blocks: &mut Vec<Block>| {
        blocks.push(Block {
            compressed: enc.compress_vec(buf).unwrap(),
            raw_len: buf.len(),
            offsets: std::mem::replace(offsets, vec![0]),
        });
        buf.clear();
    };
    let mut needle_done = false;
    while total < TARGET {
        for l in &lines {
            let line = format!("{l} r{round}");
            if buf.len() + line.len() > BLOCK {
                flush(&mut buf, &mut offsets, &mut blocks);
            }
            buf.extend_from_slice(line.as_bytes());
            offsets.push(buf.len() as u32);
            total += line.len();
            if !needle_done && total >= TARGET / 2 {
                buf.extend_from_slice(format!("request {NEEDLE} seen").as_bytes());
                offsets.push(buf.len() as u32);
                needle_done = true;
            }
        }
        round += 1;
    }
    flush(&mut buf, &mut offsets, &mut blocks);
    (blocks, total)
}

fn bench(c: &mut Criterion) {
    let (blocks, total) = corpus();
    let mut g = c.benchmark_group("query_block_matcher");
    g.throughput(Throughput::Bytes(total as u64));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.warm_up_time(std::time::Duration::from_secs(1));
    let mut dec = snap::raw::Decoder::new();
    let mut raw = vec![0u8; BLOCK + 4096];
    let cases: [(&str, &str, LineFilterSpec); 4] = [
        (
            "literal",
            "ERROR",
            LineFilterSpec::new(LineFilterOp::Contains, "ERROR"),
        ),
        (
            "case_insensitive",
            "error",
            LineFilterSpec::new(LineFilterOp::Regex, "(?i)error"),
        ),
        (
            "regex_literals",
            "Failed",
            LineFilterSpec::new(LineFilterOp::Regex, r"Failed \w+ for"),
        ),
        (
            "needle",
            NEEDLE,
            LineFilterSpec::new(LineFilterOp::Contains, NEEDLE),
        ),
    ];
    for (name, base_needle, spec) in cases {
        let finder = memmem::Finder::new(base_needle.as_bytes());
        g.bench_function(format!("{name}/baseline_snappy_memmem"), |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for blk in &blocks {
                    let n = dec.decompress(&blk.compressed, &mut raw).unwrap();
                    hits += finder.find_iter(&raw[..n]).count();
                }
                black_box(hits)
            })
        });
        let m = BlockMatcher::new(std::slice::from_ref(&spec)).unwrap();
        let mut out: Vec<u32> = Vec::with_capacity(4096);
        g.bench_function(format!("{name}/block_matcher"), |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for blk in &blocks {
                    let n = dec.decompress(&blk.compressed, &mut raw).unwrap();
                    debug_assert_eq!(n, blk.raw_len);
                    out.clear();
                    m.matching_in(&raw[..n], &blk.offsets, 0..blk.offsets.len() - 1, &mut out);
                    hits += out.len();
                }
                black_box(hits)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
