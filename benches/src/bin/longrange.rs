//! Thirty-day benchmark: a real `larch-store` holding 30 days of logs of a
//! few hundred Kubernetes-like streams (20 GiB of raw lines by default),
//! pushed as fast as it takes them, then queried over the whole range:
//! `count_over_time` and `bytes_over_time` by namespace at a 1 h step, the
//! same counts as one 30-day instant, a common literal filter (the newest
//! 1000 lines, and the count of all of them) and a needle.
//!
//! For every query: wall time (median of `--runs`), what the scans read
//! (the answer's statistics and the store's `larch_querier_*` counters:
//! compressed bytes, line bytes decompressed, blocks counted from their
//! index entry, decoded or skipped) and the store's resident memory while
//! the query runs, each query kind in a fresh process (so its `VmHWM`
//! starts at the idle store's). Every answer is checked against the counts
//! the generator kept while it made the data: lines and bytes per
//! namespace and hour, lines with the literal, the newest of them, the
//! needle's lines.
//!
//! The data directory (`--dir`, default `/work/tmp/longrange`) is deleted
//! at the end unless `--keep`; with `--queries-only` a kept directory is
//! queried again (its `expected.json` holds the generator's counts).
//!
//! `cargo run --release -p larch-benches --bin longrange -- --help`

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use larch_benches::data::{load_samples, loghub_dir, vary};
use larch_benches::disk::dir_size;
use larch_proto::logproto;
use larch_testkit::http::{Connection, percent};
use larch_testkit::{StoreProcess, now_ns};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;
/// The `cluster` label of every stream.
const CLUSTER: &str = "larch-bench";
/// The needle: a token no sample line holds.
const NEEDLE: &str = "larch-needle-7c1e94";
/// `limit` of the log queries.
const LIMIT: usize = 1000;

#[derive(Parser, Debug)]
struct Args {
    /// GiB of raw line bytes to generate (0.2 for a quick check).
    #[arg(long, default_value_t = 20.0)]
    gib: f64,
    /// Streams, spread over the namespaces.
    #[arg(long, default_value_t = 300)]
    streams: usize,
    /// Namespaces.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Days the data spans, ending now.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Concurrent clients pushing, each owning its share of the streams.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Raw line KiB per push request.
    #[arg(long, default_value_t = 1024)]
    batch_kib: usize,
    /// Lines holding the needle, spread evenly over the range.
    #[arg(long, default_value_t = 50)]
    needles: u64,
    /// The literal of the line-filter queries (`|= "..."`).
    #[arg(long, default_value = "error")]
    literal: String,
    /// Calls of each query; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Working directory: the store's data directory is `<dir>/data`.
    #[arg(long, default_value = "/work/tmp/longrange")]
    dir: PathBuf,
    /// Keep the working directory at the end.
    #[arg(long)]
    keep: bool,
    /// Query the data a `--keep` run left in `--dir` instead of generating.
    #[arg(long)]
    queries_only: bool,
    /// Generate and push the data, flush it, keep it and stop (for
    /// `--queries-only` runs later).
    #[arg(long, conflicts_with = "queries_only")]
    ingest_only: bool,
    /// The `larch-store` binary to run (default: the workspace's, built
    /// for this profile).
    #[arg(long)]
    store_bin: Option<PathBuf>,
}

/// Where every line goes: line `i` (0-based, in time order over all
/// streams) is line `k = i / streams` of stream `s = i % streams`, at
/// `t0 + (i + 1) * span / lines`, so the data lies in `(t0, t0 + span]`.
#[derive(Clone, Debug, PartialEq)]
struct Plan {
    streams: usize,
    namespaces: usize,
    /// Lines per stream.
    per_stream: u64,
    t0: i64,
    span: i64,
    /// Line `i` holds the needle when `i % needle_every == needle_every / 2`.
    needle_every: u64,
    literal: String,
    /// Start of the range queries (an hour boundary at or before `t0`).
    qstart: i64,
    /// Points of the range queries at a 1 h step: `qstart + j h`.
    points: usize,
}

impl Plan {
    /// About `raw` bytes of lines of `avg_len` bytes, ending at `t1`.
    fn new(args: &Args, raw: f64, avg_len: f64, t1: i64) -> Plan {
        let streams = args.streams.max(1);
        let per_stream = ((raw / avg_len.max(1.0)) / streams as f64).ceil().max(1.0) as u64;
        let lines = per_stream * streams as u64;
        let span = args.days.max(1) * DAY;
        let t0 = t1 - span;
        let qstart = t0.div_euclid(HOUR) * HOUR;
        let mut plan = Plan {
            streams,
            namespaces: args.namespaces.clamp(1, streams),
            per_stream,
            t0,
            span,
            needle_every: (lines / args.needles.max(1)).max(1),
            literal: args.literal.clone(),
            qstart,
            points: 0,
        };
        plan.points = plan.window(t1) + 1;
        plan
    }

    fn lines(&self) -> u64 {
        self.per_stream * self.streams as u64
    }

    fn t1(&self) -> i64 {
        self.t0 + self.span
    }

    /// End of the range queries: the last point, at or after `t1`.
    fn qend(&self) -> i64 {
        self.qstart + (self.points as i64 - 1) * HOUR
    }

    fn ts(&self, i: u64) -> i64 {
        let off = (i128::from(i) + 1) * i128::from(self.span) / i128::from(self.lines().max(1));
        self.t0 + off as i64
    }

    /// The point `j` whose window `(qstart + (j-1) h, qstart + j h]`
    /// holds `ts`.
    fn window(&self, ts: i64) -> usize {
        ((ts - self.qstart + HOUR - 1) / HOUR) as usize
    }

    fn needle(&self, i: u64) -> bool {
        i % self.needle_every == self.needle_every / 2
    }

    fn namespace(&self, s: usize) -> usize {
        s % self.namespaces
    }

    fn to_json(&self) -> Value {
        json!({
            "streams": self.streams, "namespaces": self.namespaces,
            "per_stream": self.per_stream, "t0": self.t0, "span": self.span,
            "needle_every": self.needle_every, "literal": self.literal,
            "qstart": self.qstart, "points": self.points,
        })
    }

    fn from_json(v: &Value) -> anyhow::Result<Plan> {
        let n = |k: &str| v[k].as_i64().with_context(|| format!("plan: no {k}"));
        Ok(Plan {
            streams: n("streams")? as usize,
            namespaces: n("namespaces")? as usize,
            per_stream: n("per_stream")? as u64,
            t0: n("t0")?,
            span: n("span")?,
            needle_every: n("needle_every")? as u64,
            literal: v["literal"].as_str().context("plan: no literal")?.into(),
            qstart: n("qstart")?,
            points: n("points")? as usize,
        })
    }
}

/// The namespace names, Kubernetes-like.
fn namespace_name(i: usize) -> String {
    const TEAMS: &[&str] = &[
        "payments",
        "checkout",
        "search",
        "catalog",
        "identity",
        "billing",
        "ml",
        "data",
        "platform",
        "monitoring",
    ];
    format!("{}-{i:02}", TEAMS[i % TEAMS.len()])
}

/// The lines of the streams: stream `s` replays the loghub sample
/// `s % sources` from its own offset, its digits shifted on every pass.
struct Text {
    samples: Vec<(String, Vec<String>)>,
}

impl Text {
    fn labels(&self, plan: &Plan, s: usize) -> String {
        let app = &self.samples[s % self.samples.len()].0;
        let ns = namespace_name(plan.namespace(s));
        let hash = (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        format!(
            r#"{{cluster="{CLUSTER}", namespace="{ns}", app="{app}", pod="{app}-{hash:06x}-{s:03}", container="{app}", node="ip-10-0-{}-{}.eu-west-1.compute.internal", stream="{}"}}"#,
            s % 4,
            s % 16,
            if s % 5 == 4 { "stderr" } else { "stdout" }
        )
    }

    /// Line `k` of stream `s`.
    fn line(&self, s: usize, k: u64) -> String {
        let n = self.samples.len();
        let lines = &self.samples[s % n].1;
        let pos = k as usize + s.wrapping_mul(7919);
        vary(&lines[pos % lines.len()], pos / lines.len() + s / n)
    }
}

/// What the queries must answer, kept while generating.
#[derive(Clone, Debug, Default, PartialEq)]
struct Expected {
    lines: u64,
    bytes: u64,
    /// Lines per namespace and point of the 1 h range queries.
    ns_lines: Vec<Vec<u64>>,
    /// Line bytes per namespace and point.
    ns_bytes: Vec<Vec<u64>>,
    /// Lines holding the literal, per namespace.
    literal: Vec<u64>,
    /// Timestamps of the newest `LIMIT` lines holding the literal,
    /// ascending.
    newest_literal: VecDeque<i64>,
    /// Timestamps of the needle's lines, ascending.
    needles: Vec<i64>,
}

impl Expected {
    fn new(plan: &Plan) -> Expected {
        Expected {
            ns_lines: vec![vec![0; plan.points]; plan.namespaces],
            ns_bytes: vec![vec![0; plan.points]; plan.namespaces],
            literal: vec![0; plan.namespaces],
            ..Expected::default()
        }
    }

    /// Counts one line; lines come in time order.
    fn record(&mut self, plan: &Plan, ns: usize, ts: i64, line: &str, needle: bool) {
        let j = plan.window(ts);
        let len = line.len() as u64;
        self.lines += 1;
        self.bytes += len;
        self.ns_lines[ns][j] += 1;
        self.ns_bytes[ns][j] += len;
        if line.contains(&plan.literal) {
            self.literal[ns] += 1;
            self.newest_literal.push_back(ts);
            if self.newest_literal.len() > LIMIT {
                self.newest_literal.pop_front();
            }
        }
        if needle {
            self.needles.push(ts);
        }
    }

    fn merge(&mut self, o: Expected) {
        self.lines += o.lines;
        self.bytes += o.bytes;
        for (a, b) in self.ns_lines.iter_mut().zip(&o.ns_lines) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        for (a, b) in self.ns_bytes.iter_mut().zip(&o.ns_bytes) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.literal
            .iter_mut()
            .zip(&o.literal)
            .for_each(|(x, y)| *x += y);
        let mut newest: Vec<i64> = self
            .newest_literal
            .drain(..)
            .chain(o.newest_literal)
            .collect();
        newest.sort_unstable();
        let cut = newest.len().saturating_sub(LIMIT);
        self.newest_literal = newest[cut..].iter().copied().collect();
        self.needles.extend(o.needles);
        self.needles.sort_unstable();
    }

    fn to_json(&self) -> Value {
        json!({
            "lines": self.lines, "bytes": self.bytes,
            "ns_lines": self.ns_lines, "ns_bytes": self.ns_bytes,
            "literal": self.literal, "newest_literal": self.newest_literal,
            "needles": self.needles,
        })
    }

    fn from_json(v: &Value) -> anyhow::Result<Expected> {
        let u64s = |v: &Value| -> anyhow::Result<Vec<u64>> {
            v.as_array()
                .context("expected: not an array")?
                .iter()
                .map(|x| x.as_u64().context("expected: not a number"))
                .collect()
        };
        let i64s = |v: &Value| -> anyhow::Result<Vec<i64>> {
            v.as_array()
                .context("expected: not an array")?
                .iter()
                .map(|x| x.as_i64().context("expected: not a number"))
                .collect()
        };
        let table = |v: &Value| -> anyhow::Result<Vec<Vec<u64>>> {
            v.as_array()
                .context("expected: not an array")?
                .iter()
                .map(u64s)
                .collect()
        };
        Ok(Expected {
            lines: v["lines"].as_u64().context("expected: lines")?,
            bytes: v["bytes"].as_u64().context("expected: bytes")?,
            ns_lines: table(&v["ns_lines"])?,
            ns_bytes: table(&v["ns_bytes"])?,
            literal: u64s(&v["literal"])?,
            newest_literal: i64s(&v["newest_literal"])?.into(),
            needles: i64s(&v["needles"])?,
        })
    }
}

/// Generates the lines of client `c` (the streams `s % clients == c`)
/// and hands each batch of about `batch` raw bytes to `send`, in time
/// order (so each stream's entries arrive oldest first).
fn generate(
    plan: &Plan,
    text: &Text,
    c: usize,
    clients: usize,
    batch: usize,
    mut send: impl FnMut(logproto::PushRequest, u64) -> anyhow::Result<()>,
) -> anyhow::Result<Expected> {
    let owned: Vec<usize> = (c..plan.streams).step_by(clients.max(1)).collect();
    let labels: Vec<String> = owned.iter().map(|&s| text.labels(plan, s)).collect();
    let mut exp = Expected::new(plan);
    let mut pending: Vec<Vec<logproto::Entry>> = vec![Vec::new(); owned.len()];
    let mut pending_bytes = 0u64;
    let mut flush = |pending: &mut Vec<Vec<logproto::Entry>>, bytes: u64| {
        let req = logproto::PushRequest {
            streams: pending
                .iter_mut()
                .zip(&labels)
                .filter(|(e, _)| !e.is_empty())
                .map(|(e, l)| logproto::Stream {
                    labels: l.clone(),
                    entries: std::mem::take(e),
                    hash: 0,
                })
                .collect(),
            format: String::new(),
        };
        send(req, bytes)
    };
    for k in 0..plan.per_stream {
        for (j, &s) in owned.iter().enumerate() {
            let i = k * plan.streams as u64 + s as u64;
            let ts = plan.ts(i);
            let needle = plan.needle(i);
            let mut line = text.line(s, k);
            if needle {
                line.push(' ');
                line.push_str(NEEDLE);
            }
            exp.record(plan, plan.namespace(s), ts, &line, needle);
            pending_bytes += line.len() as u64;
            pending[j].push(larch_testkit::push::entry(ts, line));
            if pending_bytes >= batch as u64 {
                flush(&mut pending, pending_bytes)?;
                pending_bytes = 0;
            }
        }
    }
    if pending_bytes > 0 {
        flush(&mut pending, pending_bytes)?;
    }
    Ok(exp)
}

/// Posts one push, retrying while the store asks to (429, 503) or the
/// connection drops.
fn post(conn: &mut Connection, port: u16, body: &[u8]) -> anyhow::Result<()> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match conn.request(
            "POST",
            "/loki/api/v1/push",
            &[larch_testkit::push::PROTOBUF],
            body,
        ) {
            Ok(r) if r.status == 204 => return Ok(()),
            Ok(r) if (r.status == 429 || r.status == 503) && attempt < 600 => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(r) => anyhow::bail!("push answered {}: {}", r.status, r.text()),
            Err(e) if attempt < 10 => {
                eprintln!("push failed ({e}); reconnecting");
                std::thread::sleep(Duration::from_millis(200));
                *conn = Connection::connect_with_timeout(port, Duration::from_secs(600))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A `kB` field of `/proc/<pid>/status`, if the process is still there.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// A store process of the binary `--store-bin` names, or the workspace's.
fn store_builder(args: &Args) -> larch_testkit::StoreBuilder {
    match &args.store_bin {
        Some(bin) => StoreProcess::builder().bin(bin),
        None => StoreProcess::builder(),
    }
}

/// The store's configuration: no rate limits, old samples accepted, every
/// chunk flushed on SIGTERM, queries given an hour.
fn config() -> String {
    "limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_streams_per_tenant: 0\n  reject_old_samples: false\ningester:\n  flush_on_shutdown: true\nquery:\n  timeout: 1h\nshutdown_timeout: 1h\n".to_string()
}

/// Deletes the working directory when dropped, unless it is to be kept.
struct Cleanup {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.keep {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => println!("deleted {}", self.dir.display()),
                Err(e) => eprintln!("could not delete {}: {e}", self.dir.display()),
            }
        }
    }
}

/// SIGTERM (every chunk is flushed), then waits for the exit.
fn stop(store: &StoreProcess) -> anyhow::Result<f64> {
    let t = Instant::now();
    store.signal("TERM");
    let status = store
        .wait_timeout(Duration::from_secs(3600))
        .context("the store did not exit within an hour of SIGTERM")?;
    // It exited: this only takes the status, so that it can be restarted.
    store.terminate();
    anyhow::ensure!(status.success(), "the store exited with {status}");
    Ok(t.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let samples_dir = loghub_dir();
    let samples =
        load_samples(&samples_dir).with_context(|| format!("reading {}", samples_dir.display()))?;
    anyhow::ensure!(
        !samples.is_empty(),
        "no *.log samples in {}",
        samples_dir.display()
    );
    let text = Arc::new(Text { samples });
    let data = args.dir.join("data");
    let expected_path = args.dir.join("expected.json");
    if !args.queries_only && args.dir.exists() {
        anyhow::ensure!(
            expected_path.exists() || std::fs::read_dir(&args.dir)?.next().is_none(),
            "{} exists and is not a directory this benchmark made; remove it or give another --dir",
            args.dir.display()
        );
    }
    anyhow::ensure!(
        !args.queries_only || expected_path.exists(),
        "{} has no expected.json: not a directory a --keep run left",
        args.dir.display()
    );
    // From here on the directory is the benchmark's: deleted at the end
    // (also after a failure) unless kept.
    let _cleanup = Cleanup {
        dir: args.dir.clone(),
        keep: args.keep || args.ingest_only,
    };
    let (plan, expected, store) = if args.queries_only {
        let v: Value = serde_json::from_slice(
            &std::fs::read(&expected_path)
                .with_context(|| format!("reading {}", expected_path.display()))?,
        )?;
        let plan = Plan::from_json(&v["plan"])?;
        let expected = Expected::from_json(&v["expected"])?;
        let store = store_builder(&args)
            .data_dir(&data)
            .config(config())
            .start();
        (plan, expected, store)
    } else {
        if args.dir.exists() {
            std::fs::remove_dir_all(&args.dir)?;
        }
        std::fs::create_dir_all(&args.dir)?;
        let (plan, expected, store) = ingest(&args, &text, &data)?;
        std::fs::write(
            &expected_path,
            serde_json::to_vec(&json!({"plan": plan.to_json(), "expected": expected.to_json()}))?,
        )?;
        (plan, expected, store)
    };
    if args.ingest_only {
        stop(&store)?;
        println!("kept {}", args.dir.display());
        return Ok(());
    }
    let rows = queries(&args, &plan, &expected, &store)?;
    stop(&store)?;
    println!();
    println!(
        "| query | answer | wall (median) | runs | compressed read | lines decompressed | blocks index / decoded / skipped | idle RSS | peak RSS (sampled) | VmHWM |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| `{}` | {} | {:.2} s | {} | {:.1} MiB | {:.1} MiB | {} / {} / {} | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
            r.name,
            r.answer,
            r.median,
            r.walls
                .iter()
                .map(|w| format!("{w:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            mib(r.compressed),
            mib(r.decompressed),
            r.blocks[0],
            r.blocks[1],
            r.blocks[2],
            r.idle_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0,
            r.hwm_kib as f64 / 1024.0,
        );
    }
    Ok(())
}

/// Generates and pushes the data, then stops the store (flushing every
/// chunk) and starts it again; the plan, the expected answers and the
/// running store.
fn ingest(
    args: &Args,
    text: &Arc<Text>,
    data: &Path,
) -> anyhow::Result<(Plan, Expected, StoreProcess)> {
    let lines: u64 = text.samples.iter().map(|(_, l)| l.len() as u64).sum();
    let bytes: u64 = text
        .samples
        .iter()
        .flat_map(|(_, l)| l.iter().map(|x| x.len() as u64))
        .sum();
    let raw = args.gib * (1u64 << 30) as f64;
    let t1 = now_ns() / 1_000_000_000 * 1_000_000_000 - 60_000_000_000;
    let plan = Arc::new(Plan::new(args, raw, bytes as f64 / lines.max(1) as f64, t1));
    println!(
        "plan: {} streams x {} lines = {} lines over {} days ({:.2} lines/s), {} namespaces, needle every {} lines",
        plan.streams,
        plan.per_stream,
        plan.lines(),
        args.days,
        plan.lines() as f64 / (plan.span as f64 / 1e9),
        plan.namespaces,
        plan.needle_every
    );
    let store = store_builder(args).data_dir(data).config(config()).start();
    let port = store.http;
    let pid = store.pid();
    let pushed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let monitor = {
        let (pushed, done, data) = (pushed.clone(), done.clone(), data.to_path_buf());
        let total = raw;
        std::thread::spawn(move || {
            let (mut max_wal, mut max_rss) = (0u64, 0u64);
            let mut last = Instant::now();
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_secs(2));
                let wal = dir_size(&data.join("wal"));
                max_wal = max_wal.max(wal);
                max_rss = max_rss.max(status_kib(pid, "VmRSS").unwrap_or(0));
                if last.elapsed() >= Duration::from_secs(30) {
                    last = Instant::now();
                    let p = pushed.load(Ordering::Relaxed);
                    let secs = start.elapsed().as_secs_f64();
                    println!(
                        "  {:.0}s: {:.2} GiB pushed ({:.0}%, {:.1} MB/s); WAL {:.2} GiB, chunks {:.2} GiB, store RSS {:.0} MiB",
                        secs,
                        gib(p),
                        100.0 * p as f64 / total,
                        p as f64 / secs / 1e6,
                        gib(wal),
                        gib(dir_size(&data.join("chunks"))),
                        status_kib(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0
                    );
                }
            }
            (max_wal, max_rss)
        })
    };
    let clients = args.clients.max(1);
    let batch = args.batch_kib.max(1) << 10;
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (plan, text, pushed) = (plan.clone(), text.clone(), pushed.clone());
            std::thread::spawn(move || -> anyhow::Result<Expected> {
                let mut conn = Connection::connect_with_timeout(port, Duration::from_secs(600))?;
                generate(&plan, &text, c, clients, batch, |req, bytes| {
                    post(&mut conn, port, &larch_testkit::push::encode(&req))?;
                    pushed.fetch_add(bytes, Ordering::Relaxed);
                    Ok(())
                })
            })
        })
        .collect();
    let mut expected = Expected::new(&plan);
    let mut failure = None;
    for w in workers {
        match w.join() {
            Ok(Ok(e)) => expected.merge(e),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a client thread panicked")),
        }
    }
    let push_wall = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    let (max_wal, max_rss) = monitor
        .join()
        .map_err(|_| anyhow::anyhow!("the monitor thread panicked"))?;
    if let Some(e) = failure {
        return Err(e);
    }
    anyhow::ensure!(
        expected.lines == plan.lines(),
        "generated {} lines, planned {}",
        expected.lines,
        plan.lines()
    );
    println!(
        "ingest: {} lines, {:.2} GiB raw in {push_wall:.0}s: {:.1} MB/s, {:.0} lines/s; largest WAL seen {:.2} GiB, largest store RSS {:.0} MiB",
        expected.lines,
        gib(expected.bytes),
        expected.bytes as f64 / push_wall / 1e6,
        expected.lines as f64 / push_wall,
        gib(max_wal),
        max_rss as f64 / 1024.0
    );
    println!(
        "literal {:?}: {} lines; needle: {} lines",
        plan.literal,
        expected.literal.iter().sum::<u64>(),
        expected.needles.len()
    );
    let wal_before = dir_size(&data.join("wal"));
    let flush_wall = stop(&store)?;
    let (wal, chunks, index) = (
        dir_size(&data.join("wal")),
        dir_size(&data.join("chunks")),
        dir_size(&data.join("index")),
    );
    println!(
        "SIGTERM (flush every chunk) to exit: {flush_wall:.1}s; WAL {:.2} GiB before, {:.1} MiB after; chunks {:.2} GiB ({:.1}x smaller than the raw lines), index {:.1} MiB; data dir {:.2} GiB",
        gib(wal_before),
        mib(wal),
        gib(chunks),
        expected.bytes as f64 / chunks.max(1) as f64,
        mib(index),
        gib(dir_size(data))
    );
    let t = Instant::now();
    store.restart();
    println!("restart to ready: {:.2}s", t.elapsed().as_secs_f64());
    let plan = Arc::try_unwrap(plan).unwrap_or_else(|p| (*p).clone());
    Ok((plan, expected, store))
}

/// The queries, and how their answers are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `sum by (namespace) (count_over_time(sel[1h]))`, step 1 h.
    CountRange,
    /// `sum by (namespace) (bytes_over_time(sel[1h]))`, step 1 h.
    BytesRange,
    /// `sum by (namespace) (count_over_time(sel[30d]))` at the end.
    CountInstant,
    /// `sel |= literal`, newest `LIMIT` lines.
    LiteralLogs,
    /// `sum by (namespace) (count_over_time(sel |= literal [30d]))`.
    LiteralCount,
    /// `sel |= needle`, newest `LIMIT` lines (all of them).
    NeedleLogs,
    /// `sum(count_over_time(sel |= needle [30d]))`.
    NeedleCount,
}

const KINDS: &[Kind] = &[
    Kind::CountRange,
    Kind::BytesRange,
    Kind::CountInstant,
    Kind::LiteralLogs,
    Kind::LiteralCount,
    Kind::NeedleLogs,
    Kind::NeedleCount,
];

impl Kind {
    /// The LogQL text.
    fn query(self, plan: &Plan) -> String {
        let sel = format!(r#"{{cluster="{CLUSTER}"}}"#);
        let days = plan.span / DAY;
        let lit = quoted(&plan.literal);
        let needle = quoted(NEEDLE);
        match self {
            Kind::CountRange => format!("sum by (namespace) (count_over_time({sel}[1h]))"),
            Kind::BytesRange => format!("sum by (namespace) (bytes_over_time({sel}[1h]))"),
            Kind::CountInstant => format!("sum by (namespace) (count_over_time({sel}[{days}d]))"),
            Kind::LiteralLogs => format!("{sel} |= {lit}"),
            Kind::LiteralCount => {
                format!("sum by (namespace) (count_over_time({sel} |= {lit} [{days}d]))")
            }
            Kind::NeedleLogs => format!("{sel} |= {needle}"),
            Kind::NeedleCount => format!("sum(count_over_time({sel} |= {needle} [{days}d]))"),
        }
    }

    /// The request path.
    fn path(self, plan: &Plan) -> String {
        let q = percent(&self.query(plan));
        match self {
            Kind::CountRange | Kind::BytesRange => format!(
                "/loki/api/v1/query_range?query={q}&start={}&end={}&step=1h",
                plan.qstart,
                plan.qend()
            ),
            Kind::CountInstant | Kind::LiteralCount | Kind::NeedleCount => {
                format!("/loki/api/v1/query?query={q}&time={}", plan.t1())
            }
            Kind::LiteralLogs | Kind::NeedleLogs => format!(
                "/loki/api/v1/query_range?query={q}&start={}&end={}&limit={LIMIT}&direction=backward",
                plan.t0,
                plan.t1() + 1
            ),
        }
    }

    /// Checks an answer against the generator's counts; a short summary.
    fn check(self, v: &Value, plan: &Plan, exp: &Expected) -> anyhow::Result<String> {
        let result = v["data"]["result"]
            .as_array()
            .with_context(|| format!("no data.result in {}", short(v)))?;
        let ns_index: BTreeMap<String, usize> = (0..plan.namespaces)
            .map(|i| (namespace_name(i), i))
            .collect();
        let ns_of = |series: &Value| -> anyhow::Result<usize> {
            let name = series["metric"]["namespace"]
                .as_str()
                .with_context(|| format!("a series without namespace: {}", short(series)))?;
            ns_index
                .get(name)
                .copied()
                .with_context(|| format!("unknown namespace {name}"))
        };
        let num = |x: &Value| -> anyhow::Result<f64> {
            x.as_str()
                .context("a value that is not a string")?
                .parse::<f64>()
                .context("a value that is not a number")
        };
        match self {
            Kind::CountRange | Kind::BytesRange => {
                let table = if self == Kind::CountRange {
                    &exp.ns_lines
                } else {
                    &exp.ns_bytes
                };
                let mut got = vec![vec![0u64; plan.points]; plan.namespaces];
                for series in result {
                    let ns = ns_of(series)?;
                    for p in series["values"].as_array().context("no values")? {
                        let t = p[0].as_f64().context("a point without time")?;
                        let j = ((t * 1e9 - plan.qstart as f64) / HOUR as f64).round();
                        anyhow::ensure!(
                            j >= 0.0 && (j as usize) < plan.points,
                            "a point outside the range: {t}"
                        );
                        got[ns][j as usize] = num(&p[1])? as u64;
                    }
                }
                for ns in 0..plan.namespaces {
                    for j in 0..plan.points {
                        anyhow::ensure!(
                            got[ns][j] == table[ns][j],
                            "{} at point {j}: answered {}, expected {}",
                            namespace_name(ns),
                            got[ns][j],
                            table[ns][j]
                        );
                    }
                }
                let total: u64 = got.iter().flatten().sum();
                Ok(format!(
                    "{} series, {} points, sum {total}",
                    result.len(),
                    got.iter().flatten().filter(|&&x| x > 0).count()
                ))
            }
            Kind::CountInstant | Kind::LiteralCount => {
                let want: Vec<u64> = if self == Kind::CountInstant {
                    exp.ns_lines.iter().map(|r| r.iter().sum()).collect()
                } else {
                    exp.literal.clone()
                };
                let mut got = vec![0u64; plan.namespaces];
                for series in result {
                    got[ns_of(series)?] = num(&series["value"][1])? as u64;
                }
                anyhow::ensure!(got == want, "answered {got:?}, expected {want:?}");
                Ok(format!(
                    "{} series, sum {}",
                    result.len(),
                    got.iter().sum::<u64>()
                ))
            }
            Kind::NeedleCount => {
                let got = match result.first() {
                    Some(s) => num(&s["value"][1])? as u64,
                    None => 0,
                };
                anyhow::ensure!(
                    result.len() <= 1 && got == exp.needles.len() as u64,
                    "answered {got} in {} series, expected {}",
                    result.len(),
                    exp.needles.len()
                );
                Ok(format!("{got}"))
            }
            Kind::LiteralLogs | Kind::NeedleLogs => {
                let token = if self == Kind::LiteralLogs {
                    plan.literal.as_str()
                } else {
                    NEEDLE
                };
                let mut ts = Vec::new();
                for stream in result {
                    for e in stream["values"].as_array().context("no values")? {
                        let t: i64 = e[0]
                            .as_str()
                            .context("an entry without time")?
                            .parse()
                            .context("a time that is not a number")?;
                        let line = e[1].as_str().context("an entry without line")?;
                        anyhow::ensure!(line.contains(token), "a line without {token:?}: {line}");
                        ts.push(t);
                    }
                }
                ts.sort_unstable();
                let want: Vec<i64> = if self == Kind::LiteralLogs {
                    exp.newest_literal.iter().copied().collect()
                } else {
                    let cut = exp.needles.len().saturating_sub(LIMIT);
                    exp.needles[cut..].to_vec()
                };
                anyhow::ensure!(
                    ts == want,
                    "answered {} lines (newest {:?}), expected {} (newest {:?})",
                    ts.len(),
                    ts.last(),
                    want.len(),
                    want.last()
                );
                Ok(format!("{} lines", ts.len()))
            }
        }
    }
}

/// A LogQL string literal (the literals here need no escapes).
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

/// One query kind's figures.
struct Row {
    name: String,
    answer: String,
    median: f64,
    walls: Vec<f64>,
    /// Per call, from the answer's statistics.
    compressed: u64,
    decompressed: u64,
    /// Per call, from `larch_querier_blocks_total`: index, decoded,
    /// skipped.
    blocks: [u64; 3],
    idle_kib: u64,
    peak_kib: u64,
    hwm_kib: u64,
}

/// Runs every query kind in a fresh store process.
fn queries(
    args: &Args,
    plan: &Plan,
    exp: &Expected,
    store: &StoreProcess,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (n, &kind) in KINDS.iter().enumerate() {
        if n > 0 {
            stop(store)?;
            store.restart();
        }
        let pid = store.pid();
        std::thread::sleep(Duration::from_millis(500));
        let idle_kib = status_kib(pid, "VmRSS").unwrap_or(0);
        let before = larch_testkit::metrics::scrape(store.http);
        let path = kind.path(plan);
        let peak = Arc::new(AtomicU64::new(idle_kib));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if let Some(rss) = status_kib(pid, "VmRSS") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let mut walls = Vec::new();
        let mut answer = String::new();
        let mut last = Value::Null;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let mut c = Connection::connect_with_timeout(store.http, Duration::from_secs(3600))?;
            let r = c.request("GET", &path, &[], b"")?;
            walls.push(t.elapsed().as_secs_f64());
            anyhow::ensure!(
                r.status == 200,
                "{} answered {}: {}",
                kind.query(plan),
                r.status,
                r.text().chars().take(500).collect::<String>()
            );
            let v: Value = serde_json::from_slice(&r.body).context("an answer that is not JSON")?;
            answer = kind
                .check(&v, plan, exp)
                .with_context(|| format!("wrong answer to {}", kind.query(plan)))?;
            last = v;
        }
        done.store(true, Ordering::Release);
        sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?;
        let hwm_kib = status_kib(pid, "VmHWM").unwrap_or(0);
        let after = larch_testkit::metrics::scrape(store.http);
        let runs = walls.len() as u64;
        let delta = |k: &str| -> u64 {
            let d = after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
            d.max(0.0) as u64 / runs
        };
        let blocks = [
            delta(r#"larch_querier_blocks_total{read="index"}"#),
            delta(r#"larch_querier_blocks_total{read="decoded"}"#),
            delta(r#"larch_querier_blocks_total{read="skipped"}"#),
        ];
        let chunk = &last["data"]["stats"]["querier"]["store"]["chunk"];
        let compressed = chunk["compressedBytes"].as_u64().unwrap_or(0);
        let decompressed = chunk["decompressedBytes"].as_u64().unwrap_or(0);
        // The issue's claim: a metric query that needs no line content
        // decompresses no line.
        if matches!(
            kind,
            Kind::CountRange | Kind::BytesRange | Kind::CountInstant
        ) {
            anyhow::ensure!(
                decompressed == 0,
                "{} decompressed {decompressed} line bytes",
                kind.query(plan)
            );
        }
        if compressed != delta("larch_querier_compressed_bytes_total") {
            println!(
                "note: the answer's compressedBytes {compressed} and /metrics' {} differ",
                delta("larch_querier_compressed_bytes_total")
            );
        }
        let mut sorted = walls.clone();
        sorted.sort_by(f64::total_cmp);
        let row = Row {
            name: kind.query(plan),
            answer,
            median: sorted[sorted.len() / 2],
            walls,
            compressed,
            decompressed,
            blocks,
            idle_kib,
            peak_kib: peak.load(Ordering::Relaxed),
            hwm_kib,
        };
        println!(
            "{}: {}; median {:.2}s of {:?}; compressed read {:.1} MiB, lines decompressed {:.1} MiB; blocks index {} decoded {} skipped {}; RSS idle {:.0} MiB, peak {:.0} MiB, VmHWM {:.0} MiB",
            row.name,
            row.answer,
            row.median,
            row.walls,
            mib(row.compressed),
            mib(row.decompressed),
            blocks[0],
            blocks[1],
            blocks[2],
            row.idle_kib as f64 / 1024.0,
            row.peak_kib as f64 / 1024.0,
            row.hwm_kib as f64 / 1024.0
        );
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(gib: f64) -> Args {
        Args::parse_from([
            "longrange",
            "--gib",
            &gib.to_string(),
            "--streams",
            "7",
            "--namespaces",
            "3",
            "--days",
            "2",
            "--needles",
            "5",
            "--literal",
            "b",
        ])
    }

    fn text() -> Text {
        Text {
            samples: vec![
                ("a".into(), vec!["a1 b".into(), "a2".into(), "a3 b".into()]),
                ("c".into(), vec!["c1".into(), "c2 b".into()]),
            ],
        }
    }

    #[test]
    fn plan_spreads_lines_over_the_range() {
        let t1 = 1_700_000_000_000_000_000;
        let plan = Plan::new(&args(0.0001), 0.0001 * (1u64 << 30) as f64, 100.0, t1);
        assert_eq!(plan.t1(), t1);
        assert_eq!(plan.ts(plan.lines() - 1), t1);
        assert!(plan.ts(0) > plan.t0);
        assert!((1..plan.lines()).all(|i| plan.ts(i) > plan.ts(i - 1)));
        assert_eq!(plan.qstart % HOUR, 0);
        assert!(plan.qstart <= plan.t0 && plan.qend() >= t1 && plan.qend() - HOUR < t1);
        // Every line's point is one of the range query's.
        assert!(plan.window(t1) < plan.points);
        assert_eq!(plan.window(plan.qstart + HOUR), 1);
        assert_eq!(plan.window(plan.qstart + HOUR + 1), 2);
        let needles = (0..plan.lines()).filter(|&i| plan.needle(i)).count();
        assert_eq!(needles, 5);
    }

    #[test]
    fn generated_counts_match_the_batches() {
        let t1 = 1_700_000_000_000_000_000;
        let plan = Plan::new(&args(0.0), 3000.0, 3.0, t1);
        let text = text();
        let mut all = Expected::new(&plan);
        // What the batches hold, counted independently of `Expected`.
        let mut seen: Vec<(String, i64, String)> = Vec::new();
        for c in 0..3 {
            let e = generate(&plan, &text, c, 3, 64, |req, bytes| {
                let raw: usize = req
                    .streams
                    .iter()
                    .flat_map(|s| s.entries.iter().map(|e| e.line.len()))
                    .sum();
                assert_eq!(raw as u64, bytes);
                for s in req.streams {
                    for e in s.entries {
                        let ts = e
                            .timestamp
                            .map_or(0, |t| t.seconds * 1_000_000_000 + i64::from(t.nanos));
                        seen.push((s.labels.clone(), ts, e.line));
                    }
                }
                Ok(())
            })
            .unwrap();
            all.merge(e);
        }
        assert_eq!(all.lines, plan.lines());
        assert_eq!(seen.len() as u64, plan.lines());
        // Each stream's entries come oldest first.
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for (l, ts, _) in &seen {
            let prev = last.insert(l, *ts);
            assert!(prev.is_none_or(|p| p < *ts), "{l} went back in time");
        }
        assert_eq!(last.len(), plan.streams);
        let bytes: u64 = seen.iter().map(|(_, _, l)| l.len() as u64).sum();
        assert_eq!(all.bytes, bytes);
        assert_eq!(all.ns_lines.iter().flatten().sum::<u64>(), all.lines);
        assert_eq!(all.ns_bytes.iter().flatten().sum::<u64>(), bytes);
        let with_lit: Vec<i64> = {
            let mut v: Vec<i64> = seen
                .iter()
                .filter(|(_, _, l)| l.contains('b'))
                .map(|(_, t, _)| *t)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(all.literal.iter().sum::<u64>(), with_lit.len() as u64);
        let cut = with_lit.len().saturating_sub(LIMIT);
        assert_eq!(
            all.newest_literal.iter().copied().collect::<Vec<_>>(),
            with_lit[cut..]
        );
        let mut needles: Vec<i64> = seen
            .iter()
            .filter(|(_, _, l)| l.ends_with(NEEDLE))
            .map(|(_, t, _)| *t)
            .collect();
        needles.sort_unstable();
        assert_eq!(all.needles, needles);
        assert_eq!(needles.len(), 5);
        // Per namespace and hour, recounted from the labels.
        for (l, ts, _) in &seen {
            let ns = (0..plan.namespaces)
                .find(|&n| l.contains(&format!("namespace=\"{}\"", namespace_name(n))))
                .unwrap();
            assert!(all.ns_lines[ns][plan.window(*ts)] > 0);
        }
        // The JSON form reads back.
        assert_eq!(Expected::from_json(&all.to_json()).unwrap(), all);
        assert_eq!(Plan::from_json(&plan.to_json()).unwrap(), plan);
    }

    #[test]
    fn checks_reject_a_wrong_count() {
        let t1 = 1_700_000_000_000_000_000;
        let plan = Plan::new(&args(0.0), 3000.0, 3.0, t1);
        let mut exp = Expected::new(&plan);
        let ts = plan.ts(0);
        exp.record(&plan, 1, ts, "x b", false);
        let answer = |v: &str| {
            json!({"data": {"result": [
                {"metric": {"namespace": namespace_name(1)}, "value": [t1 as f64 / 1e9, v]}
            ]}})
        };
        assert!(Kind::CountInstant.check(&answer("1"), &plan, &exp).is_ok());
        assert!(Kind::CountInstant.check(&answer("2"), &plan, &exp).is_err());
        assert!(Kind::LiteralCount.check(&answer("1"), &plan, &exp).is_ok());
        let t = (plan.qstart + plan.window(ts) as i64 * HOUR) as f64 / 1e9;
        let matrix = |v: &str| {
            json!({"data": {"result": [
                {"metric": {"namespace": namespace_name(1)}, "values": [[t, v]]}
            ]}})
        };
        assert!(Kind::CountRange.check(&matrix("1"), &plan, &exp).is_ok());
        assert!(Kind::CountRange.check(&matrix("0"), &plan, &exp).is_err());
        assert!(Kind::BytesRange.check(&matrix("3"), &plan, &exp).is_ok());
        let logs = |line: &str| {
            json!({"data": {"result": [
                {"stream": {}, "values": [[ts.to_string(), line]]}
            ]}})
        };
        assert!(Kind::LiteralLogs.check(&logs("x b"), &plan, &exp).is_ok());
        assert!(Kind::LiteralLogs.check(&logs("x"), &plan, &exp).is_err());
        assert!(Kind::NeedleLogs.check(&logs("x b"), &plan, &exp).is_err());
    }
}
