//! The CPU the store spends decoding a protobuf push (snappy, then the
//! `PushRequest` message, lines kept as slices of the decompressed body),
//! against decompressing the same bodies and decoding them with prost into
//! owned messages, the baseline of the same run. Both sides count the lines
//! and their bytes, and the counts are asserted equal before timing.
//!
//! `cargo bench -p larch-benches --bench push_decode`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use larch_benches::data::{Replay, load_samples, loghub_dir};
use larch_proto::logproto;
use larch_store::push::meter::Meter;
use larch_store::push::protobuf;
use larch_testkit::push;
use prost::Message;

/// Snappy-compressed pushes of about 1 MiB of replayed loghub lines each,
/// over 24 streams with Kubernetes-like labels (one client's share of the
/// ingest benchmark's workload).
fn bodies() -> Vec<Vec<u8>> {
    let samples = load_samples(&loghub_dir()).unwrap_or_default();
    assert!(
        !samples.is_empty(),
        "no loghub samples in {}",
        loghub_dir().display()
    );
    let mut replay = Replay::new(samples);
    let streams = 24usize;
    let labels: Vec<String> = (0..streams)
        .map(|s| {
            format!(
                r#"{{namespace="prod", app="app-{}", pod="app-{s}", container="main", node_name="node-{}"}}"#,
                s % 12,
                s % 7
            )
        })
        .collect();
    let mut ts: i64 = 1_764_000_000_000_000_000;
    let mut out = Vec::new();
    while out.len() < 8 {
        let mut pending: Vec<Vec<logproto::Entry>> = vec![Vec::new(); streams];
        let mut bytes = 0usize;
        let mut n = 0usize;
        while bytes < 1 << 20 {
            let Some((src, line)) = replay.next() else {
                break;
            };
            ts += 1_000;
            n += 1;
            bytes += line.len();
            pending[(src + n) % streams].push(push::entry(ts, line));
        }
        let req = logproto::PushRequest {
            streams: pending
                .into_iter()
                .enumerate()
                .filter(|(_, e)| !e.is_empty())
                .map(|(i, entries)| logproto::Stream {
                    labels: labels[i].clone(),
                    entries,
                    hash: 0,
                })
                .collect(),
            format: String::new(),
        };
        out.push(push::encode(&req));
    }
    out
}

/// Lines and line bytes of the pushes, as the store decodes them.
fn store_decode(bodies: &[Vec<u8>]) -> (usize, usize) {
    let (mut lines, mut bytes) = (0, 0);
    for body in bodies {
        let mut meter = Meter::unlimited();
        let push = protobuf::decode_http(body, &mut meter).unwrap_or_else(|e| panic!("{e}"));
        for s in &push.streams {
            lines += s.entries.len();
            bytes += s.entries.iter().map(|e| e.line.len()).sum::<usize>();
        }
    }
    (lines, bytes)
}

/// The same, decompressed with snap and decoded with prost.
fn prost_decode(bodies: &[Vec<u8>]) -> (usize, usize) {
    let mut dec = snap::raw::Decoder::new();
    let (mut lines, mut bytes) = (0, 0);
    for body in bodies {
        let raw = dec.decompress_vec(body).unwrap_or_default();
        let req = logproto::PushRequest::decode(raw.as_slice()).unwrap_or_default();
        for s in &req.streams {
            lines += s.entries.len();
            bytes += s.entries.iter().map(|e| e.line.len()).sum::<usize>();
        }
    }
    (lines, bytes)
}

fn bench(c: &mut Criterion) {
    let bodies = bodies();
    let want = prost_decode(&bodies);
    assert!(want.0 > 0, "no lines decoded");
    assert_eq!(store_decode(&bodies), want, "the decoders disagree");
    let mut g = c.benchmark_group("push_decode");
    g.throughput(Throughput::Bytes(want.1 as u64));
    g.bench_function(BenchmarkId::new("prost", "baseline"), |b| {
        b.iter(|| prost_decode(&bodies))
    });
    g.bench_function(BenchmarkId::new("store", "decode_http"), |b| {
        b.iter(|| store_decode(&bodies))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
