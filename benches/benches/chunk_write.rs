//! The CPU the store spends per block when it cuts a head block: the token
//! filter over the block's lines, against snappy compression of the same
//! bytes (which every block pays anyway) as the baseline of the same run.
//!
//! `cargo bench -p larch-benches --bench chunk_write`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use larch_benches::data::{Replay, load_samples, loghub_dir};
use larch_store::chunk::filter;

/// 256 KiB blocks of replayed loghub lines (the store's default block
/// size), each of one source's lines, as a stream's blocks are: lines of
/// one application repeat their shapes, which a branch predictor learns,
/// and a block of every source interleaved would not show that.
fn blocks() -> Vec<Vec<u8>> {
    let samples = load_samples(&loghub_dir()).unwrap_or_default();
    assert!(
        !samples.is_empty(),
        "no loghub samples in {}",
        loghub_dir().display()
    );
    let sources = samples.len();
    let mut replay = Replay::new(samples);
    let mut out = Vec::new();
    let mut cur = vec![Vec::with_capacity(1 << 18); sources];
    while out.len() < 32 {
        let Some((src, line)) = replay.next() else {
            break;
        };
        cur[src].extend_from_slice(line.as_bytes());
        if cur[src].len() >= 1 << 18 {
            out.push(std::mem::replace(
                &mut cur[src],
                Vec::with_capacity(1 << 18),
            ));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let blocks = blocks();
    let bytes: usize = blocks.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("block_cut");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(BenchmarkId::new("snappy_compress", "baseline"), |b| {
        let mut enc = snap::raw::Encoder::new();
        let mut out = vec![0u8; snap::raw::max_compress_len(1 << 19)];
        b.iter(|| {
            let mut n = 0;
            for blk in &blocks {
                n += enc.compress(blk, &mut out).unwrap_or(0);
            }
            n
        })
    });
    g.bench_function(BenchmarkId::new("token_filter", "build"), |b| {
        b.iter(|| {
            blocks
                .iter()
                .map(|blk| filter::build(blk).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
