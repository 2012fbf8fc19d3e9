//! Object storage read benchmark: a `write` node flushes loghub-like logs
//! to a real S3-compatible server (`s3s-fs` on 127.0.0.1); a `backend`
//! node compacts the bucket (one segment and one term index per day);
//! `read` nodes started with empty data directories then answer a needle
//! query (one line in the whole data set) and full-scan metric queries,
//! first with a cold cache, then warm: one node with the term index, one
//! with `read.term_index: false` (the block filters alone, for the
//! needle). Reported per query: wall time and the bytes the read node
//! downloaded from the bucket (`larch_objstore_bytes_total`), against the
//! bytes stored.
//!
//! `cargo run --release -p larch-benches --bin objstore -- --help`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use larch_benches::data::{Replay, load_samples, loghub_dir};
use larch_benches::disk::dir_size;
use larch_proto::logproto;
use larch_testkit::http::{Connection, percent};
use larch_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use larch_testkit::{ProcessBuilder, free_port, now_ns};
use prost::Message;

#[derive(Parser, Debug)]
struct Args {
    /// The store binary (default: the workspace's, built for this
    /// binary's profile by the test kit).
    #[arg(long)]
    store_bin: Option<PathBuf>,
    /// MiB of raw log lines in the bucket.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Streams the lines are spread over.
    #[arg(long, default_value_t = 32)]
    streams: usize,
}

/// The one line the needle query finds.
const NEEDLE: &str = "trace_id=7f3a9c2e51d04b86 payment declined";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store_bin = args
        .store_bin
        .clone()
        .unwrap_or_else(|| larch_testkit::binary("larch-store"));
    let s3 = S3Server::start("larch");
    let config_dir = tempfile::tempdir()?;
    // (process, HTTP port, gRPC port).
    let node = |name: &str,
                target: &str,
                extra: &str|
     -> anyhow::Result<(larch_testkit::Process, u16, u16)> {
        let http = free_port();
        let grpc = free_port();
        let data = config_dir.path().join(format!("{name}-data"));
        let config = config_dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "target: {target}\n{}limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_streams_per_tenant: 0\n  max_query_series: 100000\ningester:\n  chunk_idle_period: 1h\n{extra}",
                s3.storage_yaml("larch")
            ),
        )?;
        let p = ProcessBuilder::new("larch-store", &store_bin)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("LARCH_LOG", "warn")
            .ready(http, "/ready")
            .start();
        Ok((p, http, grpc))
    };

    // Write and flush.
    let (writer, writer_http, writer_grpc) = node("write", "write", "")?;
    let t0 = now_ns() - 3_600_000_000_000;
    let (raw, lines) = push_workload(writer_http, &args, t0)?;
    let started = Instant::now();
    let r = larch_testkit::http::request(writer_http, "POST", "/flush", &[], b"")?;
    if r.status != 204 {
        bail!("flush: {} {}", r.status, r.text());
    }
    let flushed = dir_size(&s3.root.join("larch"));
    println!(
        "bucket: {lines} lines, {:.1} MiB raw, {:.1} MiB stored ({:.1}x); flushed in {:.1}s",
        raw as f64 / 1048576.0,
        flushed as f64 / 1048576.0,
        raw as f64 / flushed.max(1) as f64,
        started.elapsed().as_secs_f64()
    );

    // Compaction: one segment per day, and its term index.
    let (backend, backend_http, _) = node(
        "backend",
        "backend",
        "compactor:\n  interval: 24h\n  deletion_delay: 24h\n",
    )?;
    let started = Instant::now();
    let r = larch_testkit::http::request(backend_http, "POST", "/flush", &[], b"")?;
    if r.status != 204 {
        bail!("compaction: {} {}", r.status, r.text());
    }
    let m = larch_testkit::metrics::scrape(backend_http);
    let index_bytes = m
        .get("larch_compactor_term_index_bytes_total")
        .copied()
        .unwrap_or(0.0);
    if m.get("larch_compactor_term_indexes_total")
        .copied()
        .unwrap_or(0.0)
        < 1.0
    {
        bail!("the compactor wrote no term index");
    }
    drop(backend);
    let stored = dir_size(&s3.root.join("larch"));
    println!(
        "compacted in {:.1}s: term index {:.2} MiB ({:.2}% of the chunks and segments); {:.1} MiB stored in all",
        started.elapsed().as_secs_f64(),
        index_bytes / 1048576.0,
        100.0 * index_bytes / flushed.max(1) as f64,
        stored as f64 / 1048576.0,
    );

    // Read nodes with an empty disk: without the term index, then with it.
    let read_yaml =
        |extra: &str| format!("read:\n  write_nodes: [\"127.0.0.1:{writer_grpc}\"]\n{extra}");
    let (old_reader, old_http, _) =
        node("read-filters", "read", &read_yaml("  term_index: false\n"))?;
    let (reader, reader_http, _) = node("read", "read", &read_yaml(""))?;
    let end = now_ns() + 1_000_000_000;
    let needle = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={end}&limit=100",
        percent(&format!("{{app=\"bench\"}} |= \"{NEEDLE}\"")),
        t0 - 1_000_000_000
    );
    let scan = format!(
        "/loki/api/v1/query?query={}&time={end}",
        percent("sum(count_over_time({app=\"bench\"}[2h]))")
    );
    // A regex no token filter can rule out: every line is read.
    let grep = format!(
        "/loki/api/v1/query?query={}&time={end}",
        percent("sum(count_over_time({app=\"bench\"} |~ \"(?i)exception\" [2h]))")
    );
    for (name, port, path, check) in [
        (
            "needle, block filters only",
            old_http,
            &needle,
            Check::Needle,
        ),
        ("needle, term index", reader_http, &needle, Check::Needle),
        (
            "count (timestamps only)",
            reader_http,
            &scan,
            Check::Count(lines),
        ),
        (
            "full scan (case-insensitive regex)",
            reader_http,
            &grep,
            Check::Answered,
        ),
    ] {
        for cache in ["cold", "warm"] {
            let before = downloaded(port);
            let started = Instant::now();
            // A cold query over a big bucket may take minutes.
            let r = Connection::connect_with_timeout(port, Duration::from_secs(1800))?.request(
                "GET",
                path,
                &[],
                b"",
            )?;
            let took = started.elapsed();
            if r.status != 200 {
                bail!("{name}: {} {}", r.status, r.text());
            }
            check.verify(&r.json())?;
            let fetched = downloaded(port) - before;
            println!(
                "{name}, {cache} cache: {:.1} ms, {:.2} MiB fetched ({:.3}% of stored)",
                took.as_secs_f64() * 1e3,
                fetched / 1048576.0,
                100.0 * fetched / stored.max(1) as f64
            );
        }
    }
    drop(reader);
    drop(old_reader);
    drop(writer);
    Ok(())
}

enum Check {
    Needle,
    Count(u64),
    Answered,
}

impl Check {
    fn verify(&self, v: &serde_json::Value) -> anyhow::Result<()> {
        match self {
            Check::Needle => {
                let n: usize = v["data"]["result"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|s| s["values"].as_array().map_or(0, Vec::len))
                            .sum()
                    })
                    .unwrap_or(0);
                if n != 1 {
                    bail!("the needle query found {n} lines, not 1");
                }
            }
            Check::Answered => {
                if v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
                    bail!("no result: {v}");
                }
            }
            Check::Count(want) => {
                let got: f64 = v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1.0);
                if got != *want as f64 {
                    bail!("the full scan counted {got} lines, not {want}");
                }
            }
        }
        Ok(())
    }
}

/// Bytes the node has downloaded from the bucket so far.
fn downloaded(port: u16) -> f64 {
    larch_testkit::metrics::scrape(port)
        .iter()
        .filter(|(k, _)| k.starts_with("larch_objstore_bytes_total") && k.contains("download"))
        .map(|(_, v)| v)
        .sum()
}

/// Pushes `args.mib` MiB of replayed loghub lines over `args.streams`
/// streams, 1 µs apart, with the needle once in the middle; (raw bytes,
/// lines).
fn push_workload(port: u16, args: &Args, t0: i64) -> anyhow::Result<(u64, u64)> {
    let samples = load_samples(&loghub_dir()).context("reading the loghub samples")?;
    let names: Vec<String> = samples.iter().map(|(n, _)| n.clone()).collect();
    let mut replay = Replay::new(samples);
    let target = (args.mib as u64) << 20;
    let mut conn = Connection::connect(port)?;
    let (mut raw, mut lines, mut ts) = (0u64, 0u64, t0);
    let mut needle_done = false;
    while raw < target {
        let mut streams: Vec<logproto::Stream> = (0..args.streams)
            .map(|s| logproto::Stream {
                labels: format!(
                    "{{app=\"bench\", source=\"{}\", pod=\"pod-{s}\"}}",
                    names[s % names.len()]
                ),
                entries: Vec::new(),
                hash: 0,
            })
            .collect();
        let mut batch = 0u64;
        while batch < 1 << 20 {
            let Some((src, mut line)) = replay.next() else {
                bail!("no loghub samples in {}", loghub_dir().display());
            };
            if !needle_done && raw + batch >= target / 2 {
                line = NEEDLE.to_string();
                needle_done = true;
            }
            let s = (src + lines as usize) % args.streams;
            batch += line.len() as u64;
            lines += 1;
            ts += 1_000;
            streams[s].entries.push(logproto::Entry {
                timestamp: Some(logproto::Timestamp {
                    seconds: ts.div_euclid(1_000_000_000),
                    nanos: ts.rem_euclid(1_000_000_000) as i32,
                }),
                line,
                structured_metadata: Vec::new(),
                parsed: Vec::new(),
            });
        }
        raw += batch;
        let body = snap::raw::Encoder::new().compress_vec(
            &logproto::PushRequest {
                streams,
                format: String::new(),
            }
            .encode_to_vec(),
        )?;
        let r = conn.request(
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )?;
        if r.status != 204 {
            bail!("push: {} {}", r.status, r.text());
        }
    }
    // Let the pushes settle into heads before the flush.
    std::thread::sleep(Duration::from_millis(100));
    Ok((raw, lines))
}
