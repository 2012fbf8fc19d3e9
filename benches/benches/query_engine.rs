//! The LogQL engine over real store chunks, against baselines measured in
//! the same run: ripgrep over the raw bytes, and decompress plus
//! `memchr::memmem` over the same stored blocks.
//!
//! Data: the loghub samples (`shared/data/loghub/*.log`, one stream per
//! file, `{app="<file stem>"}`), replayed to 256 MiB (each replay tags its
//! lines so no two blocks are equal), with one unique needle line in the
//! middle of one stream. The lines go through the store's real write path
//! in process (`validate`, `Ingester::push`, then a flush), so the engine
//! reads chunk files with their per-block token filters. The same bytes,
//! one line per entry, are written to a file for ripgrep.
//!
//! First, per chunk codec (`LARCH_BENCH_CODECS`, default
//! `snappy,lz4,zstd,none`), the same lines are written by a store set to
//! that codec and measured in the same run (the codec table):
//! * stored size: raw line bytes / chunk file bytes;
//! * write cost: cutting every block again with the codec (compression
//!   and token filter), raw MB per CPU-second;
//! * the literal full scan `sum(count_over_time({app=~".+"} |= "ERR"
//!   [<all>]))` (too short for the token filter: every block read), raw
//!   MB per CPU-second of the engine on one thread, against (a) the
//!   baseline over the same blocks: decompress the lines and lengths
//!   columns, `memmem` the block, count the lines with a hit; (b)
//!   `rg -c ERR` over the raw file, its user + system CPU time; medians of
//!   alternating runs;
//! * regex scans, the engine against ripgrep with the same pattern.
//!
//! Every comparison asserts that both sides count the same lines, so a
//! speed-up cannot come from a wrong answer. ripgrep is required: the
//! benchmark installs it (Debian's package) when it is missing and fails
//! when it cannot.
//!
//! Then, with snappy (the default), cases (all over the whole data set):
//! * `literal_scan`: `|= "ERR"`, counted with `sum(count_over_time(...))`.
//!   "ERR" is too short for the token filter, so every block is read: the
//!   pure scan rate. Baselines: memmem over every decompressed lines
//!   column (counting lines); `rg -c ERR`.
//! * `literal`: `|= "ERROR"`, the same with token-filter skipping.
//! * `one_stream`: `{app="HDFS_2k"} |= "zqx"` (no match, every block of
//!   one stream read) on one thread and on all cores: the time split;
//!   `one_stream_metric` the same as `sum(count_over_time(... [1m]))`.
//! * `needle`: the log query `{app=~".+"} |= "needle-7f3a9c1e"` (one line
//!   in the set). Baseline: `rg -c needle-7f3a9c1e` over the raw file.
//! * `count_over_time`: `sum by (app) (count_over_time({app=~".+"}[1m]))`
//!   as a range query with a 1m step: timestamps only.
//! * `count_series`: `count_over_time({app=~".+"}[1m])`, one series per
//!   stream and `detected_level`: timestamps and metadata.
//!
//! The engine runs on one thread (per-core comparison with the
//! single-threaded baselines) and on all cores.
//!
//! Run: `cargo bench -p larch-benches --bench query_engine`.
//! `LARCH_LOGHUB` overrides the data directory; `LARCH_BENCH_MIB` the size;
//! `LARCH_BENCH_LEVELS=off` loads the lines without `detected_level`;
//! `LARCH_BENCH_CODECS` the codecs of the table (empty: none);
//! `LARCH_BENCH_ROUNDS` the paired rounds (default 21);
//! `LARCH_BENCH_CASES=off` stops after the codec table;
//! `LARCH_BENCH_REGEXES=off` leaves the regex rows out of it (to profile
//! the literal scan alone);
//! `LARCH_BENCH_ZSTD_LEVEL` the zstd level (default: the store's, 3);
//! `LARCH_BENCH_LZ4_LEVEL` the lz4 level (default: the store's, 0).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use larch_config::HumanDuration;
use larch_query::engine::{QueryRequest, QueryValue, evaluate_with_threads};
use larch_query::{Columns, Direction, LogSource};
use larch_store::chunk::block::{COL_LENS, COL_LINES, column, encode};
use larch_store::chunk::{ChunkIndex, Codec, DecodedBlock, Encoding, codec, read_block};
use larch_store::config::{Config, IngesterConfig, Limits, WalConfig};
use larch_store::encoding::Reader;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;
use larch_store::push::{Push, PushEntry, PushStream, StreamLabels};
use larch_store::tenant::TenantId;
use larch_store::validate::validate;
use memchr::memmem;

const NEEDLE: &str = "needle-7f3a9c1e";
const T0: i64 = 1_700_000_000_000_000_000;
const STEP_NS: i64 = 100_000_000;

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

struct Corpus {
    _dir: tempfile::TempDir,
    ing: Arc<Ingester>,
    raw_file: PathBuf,
    raw_bytes: u64,
    lines: u64,
    end: i64,
}

/// Builds the store (writing blocks with `codec`) and the raw file.
fn corpus(codec: Codec) -> Corpus {
    let target: usize = std::env::var("LARCH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
        << 20;
    let mut sources: Vec<(String, Vec<String>)> = std::fs::read_dir(loghub_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let app = p
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .replace(['.', '-'], "_");
            let text = std::fs::read_to_string(&p).unwrap();
            (app, text.lines().map(str::to_string).collect())
        })
        .collect();
    sources.sort();
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        reject_old_samples: false,
        ingestion_rate_mb: 1e9,
        ingestion_burst_size_mb: 1e9,
        max_streams_per_tenant: 0,
        discover_log_levels: std::env::var("LARCH_BENCH_LEVELS").as_deref() != Ok("off"),
        ..Limits::default()
    };
    let config = Config {
        data_dir: dir.path().join("data"),
        limits: limits.clone(),
        ingester: IngesterConfig {
            max_chunk_age: HumanDuration::from_secs(1000 * 3600),
            chunk_idle_period: HumanDuration::from_secs(1000 * 3600),
            chunk_encoding: codec,
            chunk_zstd_level: zstd_level(),
            chunk_lz4_level: lz4_level(),
            ..IngesterConfig::default()
        },
        wal: WalConfig {
            fsync: false,
            ..WalConfig::default()
        },
        ..Config::default()
    };
    let (ing, _) = Ingester::open(config, Arc::new(Metrics::new())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tenant = TenantId::new("fake").unwrap();
    let raw_file = dir.path().join("raw.log");
    let mut raw = std::io::BufWriter::new(std::fs::File::create(&raw_file).unwrap());
    let mut total = 0usize;
    let mut lines = 0u64;
    let mut round = 0usize;
    let mut seq = vec![0i64; sources.len()];
    let mut needle_done = false;
    while total < target {
        let mut streams = Vec::new();
        for (i, (app, src)) in sources.iter().enumerate() {
            let mut entries = Vec::with_capacity(src.len() + 1);
            for l in src {
                let line = format!("{l} r{round}");
                total += line.len();
                use std::io::Write;
                raw.write_all(line.as_bytes()).unwrap();
                raw.write_all(b"\n").unwrap();
                entries.push(PushEntry {
                    ts: T0 + seq[i] * STEP_NS,
                    line: line.into(),
                    metadata: Vec::new(),
                    omitted: 0,
                });
                seq[i] += 1;
                if !needle_done && i == 0 && total >= target / 2 {
                    let line = format!("request {NEEDLE} seen");
                    raw.write_all(line.as_bytes()).unwrap();
                    raw.write_all(b"\n").unwrap();
                    entries.push(PushEntry {
                        ts: T0 + seq[i] * STEP_NS,
                        line: line.into(),
                        metadata: Vec::new(),
                        omitted: 0,
                    });
                    seq[i] += 1;
                    needle_done = true;
                }
            }
            lines += entries.len() as u64;
            streams.push(PushStream {
                labels: StreamLabels::Text(format!("{{app=\"{app}\"}}")),
                entries,
            });
        }
        let v = validate(
            Push::new(streams),
            &limits,
            T0 + 365 * 86_400 * 1_000_000_000,
            "fake",
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors.first());
        rt.block_on(ing.push(&tenant, v)).unwrap();
        round += 1;
    }
    use std::io::Write;
    raw.flush().unwrap();
    ing.flush_all();
    let end = T0 + seq.iter().max().copied().unwrap_or(0) * STEP_NS + 1;
    Corpus {
        _dir: dir,
        ing,
        raw_file,
        raw_bytes: total as u64,
        lines,
        end,
    }
}

fn chunk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            chunk_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "chunk") {
            out.push(p);
        }
    }
}

/// Reusable buffers of the baseline.
#[derive(Default)]
struct Scratch {
    lens: Vec<u8>,
    lines: Vec<u8>,
    ends: Vec<usize>,
}

/// The baseline of the literal scan: for every stored block, decompress
/// its lines and lengths columns, search the lines with `memmem`, and
/// count the lines holding a hit (one per line, as the engine counts).
fn baseline_memmem(chunks: &[(PathBuf, ChunkIndex)], needle: &str, s: &mut Scratch) -> usize {
    let finder = memmem::Finder::new(needle.as_bytes());
    let mut hits = 0;
    for (path, index) in chunks {
        let file = std::fs::File::open(path).unwrap();
        for meta in &index.blocks {
            let (bytes, rel) = read_block(&file, meta, &[COL_LENS, COL_LINES]).unwrap();
            let n = meta.entries as usize;
            let col = column(&bytes, rel.cols[COL_LENS], "lengths").unwrap();
            codec::decompress(meta.codec, col, &mut s.lens, n * 10 + 10, "lengths").unwrap();
            let col = column(&bytes, rel.cols[COL_LINES], "lines").unwrap();
            let size = meta.lines_size as usize;
            codec::decompress(meta.codec, col, &mut s.lines, size, "lines").unwrap();
            s.ends.clear();
            let mut r = Reader::new(&s.lens);
            let mut end = 0usize;
            for _ in 0..n {
                end += r.uvarint("lengths").unwrap() as usize;
                s.ends.push(end);
            }
            let (mut at, mut line) = (0, 0);
            while let Some(p) = finder.find(&s.lines[at..]) {
                let p = at + p;
                while s.ends[line] <= p {
                    line += 1;
                }
                if p + needle.len() <= s.ends[line] {
                    hits += 1;
                    at = s.ends[line];
                    line += 1;
                } else {
                    at = p + 1;
                }
                if line >= n {
                    break;
                }
            }
        }
    }
    hits
}

/// ripgrep, installed from Debian when missing (as the tests install
/// their servers); a benchmark without it fails rather than skipping the
/// comparison.
fn require_ripgrep() -> String {
    let version = || {
        Command::new("rg")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
    };
    if let Some(v) = version() {
        return v;
    }
    eprintln!("ripgrep is missing: installing Debian's package");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", "ripgrep"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    version().expect(
        "ripgrep (rg) is required by this benchmark: `apt-get install -y ripgrep` \
         or `cargo install ripgrep` (scripts/install-test-deps installs it)",
    )
}

/// `rg -c <pattern>` over `file`: the count of matching lines.
fn ripgrep(pattern: &str, file: &Path) -> u64 {
    let out = Command::new("rg")
        .args(["-c", pattern])
        .arg(file)
        .output()
        .expect("ripgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `rg -c <pattern>` over `file` under the shell's `time`: the count and
/// ripgrep's own CPU time (user + system, in seconds).
fn ripgrep_cpu(pattern: &str, file: &Path) -> (u64, f64) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"TIMEFORMAT='%3U %3S'; time rg -c -- "$0" "$1""#)
        .arg(pattern)
        .arg(file)
        .output()
        .expect("bash runs");
    let n = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let err = String::from_utf8_lossy(&out.stderr);
    let cpu: f64 = err
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    (n, cpu)
}

fn request(query: &str, c: &Corpus, instant: bool) -> QueryRequest {
    QueryRequest {
        tenant: "fake".into(),
        query: query.into(),
        start: T0,
        end: c.end,
        step: 60_000_000_000,
        limit: 100,
        direction: Direction::Backward,
        instant,
        ..QueryRequest::default()
    }
}

fn run(src: &dyn LogSource, req: &QueryRequest, threads: usize) -> (f64, u64) {
    let (v, stats) = evaluate_with_threads(src, req, threads).unwrap();
    let n = match v {
        QueryValue::Vector(v) => v.iter().map(|s| s.value).sum(),
        QueryValue::Matrix(m) => m.iter().map(|s| s.points.len() as f64).sum(),
        QueryValue::Streams(s) => s.iter().map(|s| s.entries.len() as f64).sum(),
        QueryValue::Scalar { value, .. } => value,
    };
    (n, stats.scan.blocks_skipped)
}

/// CPU time this thread has run, in seconds: the thread's CPU clock
/// (`CLOCK_THREAD_CPUTIME_ID`), exact to the nanosecond. (The run time in
/// `/proc/thread-self/schedstat` is only brought up to date at scheduler
/// ticks while the thread runs, 4 ms apart on this machine: too coarse
/// for scans of some 50 ms.) `None` where unavailable.
fn thread_cpu() -> Option<f64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    Some(t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

/// Runs `a` and `b` alternately `rounds` times and prints the medians of
/// their wall time and of their CPU time on this thread, and the ratios
/// `a / b`. On a shared machine, alternating exposes both sides to the
/// same background load, which criterion's groups (run one after the
/// other) do not; CPU time also leaves out time spent waiting for a core.
/// Only meaningful when both sides run on the calling thread.
fn paired(name: &str, rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> Medians {
    let mut wall = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    let mut cpu = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for _ in 0..rounds {
        for side in 0..2 {
            let (t, c) = (std::time::Instant::now(), thread_cpu());
            if side == 0 {
                a();
            } else {
                b();
            }
            wall[side].push(t.elapsed().as_secs_f64());
            if let (Some(c0), Some(c1)) = (c, thread_cpu()) {
                cpu[side].push(c1 - c0);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let [mut wa, mut wb] = wall;
    let [mut ca, mut cb] = cpu;
    let (wa, wb, ca, cb) = (
        median(&mut wa),
        median(&mut wb),
        median(&mut ca),
        median(&mut cb),
    );
    eprintln!(
        "paired {name}: wall {:.2} ms vs {:.2} ms (ratio {:.2}); cpu {:.2} ms vs {:.2} ms (ratio {:.2})",
        wa * 1e3,
        wb * 1e3,
        wa / wb,
        ca * 1e3,
        cb * 1e3,
        ca / cb
    );
    Medians {
        wall: (wa, wb),
        cpu: (ca, cb),
    }
}

/// Medians of a paired run, `(a, b)`, in seconds.
#[allow(dead_code)]
struct Medians {
    wall: (f64, f64),
    cpu: (f64, f64),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `LARCH_BENCH_ZSTD_LEVEL`, else the store's default.
fn zstd_level() -> i32 {
    std::env::var("LARCH_BENCH_ZSTD_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IngesterConfig::default().chunk_zstd_level)
}

/// `LARCH_BENCH_LZ4_LEVEL`, else the store's default (the fast matcher).
fn lz4_level() -> i32 {
    std::env::var("LARCH_BENCH_LZ4_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IngesterConfig::default().chunk_lz4_level)
}

fn rounds() -> usize {
    std::env::var("LARCH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21)
}

fn chunks_of(corpus: &Corpus) -> Vec<(PathBuf, ChunkIndex)> {
    let mut paths = Vec::new();
    chunk_files(&corpus._dir.path().join("data/chunks"), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let i = ChunkIndex::read(&p).unwrap();
            (p, i)
        })
        .collect()
}

/// Regex scans of the codec table: (LogQL regex, the same for ripgrep).
const REGEXES: [&str; 2] = [r"ERR[A-Z]+ ", r"[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+:[0-9]+"];

/// One row of the codec table (module docs), printed as it is measured.
fn codec_row(codec: Codec) {
    let corpus = corpus(codec);
    let chunks = chunks_of(&corpus);
    let stored: u64 = chunks.iter().map(|c| c.1.size).sum();
    let blocks: usize = chunks.iter().map(|c| c.1.blocks.len()).sum();
    let mib = corpus.raw_bytes as f64 / 1e6;
    let rounds = rounds();
    // What a chunk holds: stored bytes per column, as shares of the files.
    let mut cols = [0u64; 5];
    for (_, index) in &chunks {
        for meta in &index.blocks {
            for (i, c) in meta.cols.iter().enumerate() {
                cols[i] += c.len;
            }
        }
    }
    let rest = stored - cols.iter().sum::<u64>();
    let share = |b: u64| 100.0 * b as f64 / stored as f64;
    eprintln!(
        "CODEC {codec}: stored {:.1} MB: timestamps {:.1}%, lengths {:.1}%, lines {:.1}%, \
         metadata {:.1}%, token filters {:.1}%, heads and indexes {:.1}%",
        stored as f64 / 1e6,
        share(cols[0]),
        share(cols[1]),
        share(cols[2]),
        share(cols[3]),
        share(cols[4]),
        share(rest)
    );

    // Write cost: every block cut again with the codec.
    let mut d = DecodedBlock::default();
    let mut cut = Vec::new();
    for _ in 0..3 {
        let mut cpu = 0.0;
        for (path, index) in &chunks {
            let file = std::fs::File::open(path).unwrap();
            for meta in &index.blocks {
                let (bytes, rel) = read_block(&file, meta, &[0, 1, 2, 3]).unwrap();
                d.decode(&bytes, &rel, Columns::ALL).unwrap();
                let t = thread_cpu().unwrap();
                let enc = Encoding {
                    codec,
                    zstd_level: zstd_level() as i8,
                    lz4_level: lz4_level() as i8,
                };
                black_box(encode(&d.view(Columns::ALL), enc));
                cpu += thread_cpu().unwrap() - t;
            }
        }
        cut.push(cpu);
    }
    let cut = median(cut);

    // The literal full scan: engine against the baseline, counts equal.
    let src: &dyn LogSource = &*corpus.ing;
    let whole = format!("{}s", (corpus.end - T0) / 1_000_000_000 + 1);
    let mut q = request(
        &format!(r#"sum(count_over_time({{app=~".+"}} |= "ERR" [{whole}]))"#),
        &corpus,
        true,
    );
    q.start = corpus.end;
    let mut scratch = Scratch::default();
    let base = baseline_memmem(&chunks, "ERR", &mut scratch);
    let (ours, skipped) = run(src, &q, 1);
    assert_eq!(skipped, 0, "the full scan reads every block");
    assert_eq!(
        ours as usize, base,
        "{codec}: engine and baseline count other lines"
    );
    let m = paired(
        &format!("codec {codec}: literal_scan (baseline vs engine, 1 thread)"),
        rounds,
        || {
            black_box(baseline_memmem(&chunks, "ERR", &mut scratch));
        },
        || {
            black_box(run(src, &q, 1));
        },
    );
    let (base_cpu, engine_cpu) = m.cpu;
    let mut rg_cpu = Vec::new();
    for _ in 0..rounds {
        let (n, cpu) = ripgrep_cpu("ERR", &corpus.raw_file);
        assert_eq!(n, ours as u64, "{codec}: ripgrep counts other lines");
        rg_cpu.push(cpu);
    }
    let rg_cpu = median(rg_cpu);
    eprintln!(
        "CODEC {codec} (zstd level {}, lz4 level {}): ratio {:.2} ({} MB stored, {blocks} blocks); write {:.0} MB/s; \
         scan engine {:.0} MB/s, baseline {:.0} MB/s, rg {:.0} MB/s (per CPU-second); \
         engine/baseline {:.2}, engine/rg {:.2}; {} lines",
        zstd_level(),
        lz4_level(),
        corpus.raw_bytes as f64 / stored as f64,
        stored / 1_000_000,
        mib / cut,
        mib / engine_cpu,
        mib / base_cpu,
        mib / rg_cpu,
        base_cpu / engine_cpu,
        rg_cpu / engine_cpu,
        ours
    );

    // Regex scans against ripgrep with the same pattern.
    let regexes: &[&str] = if std::env::var("LARCH_BENCH_REGEXES").as_deref() == Ok("off") {
        &[]
    } else {
        &REGEXES
    };
    for re in regexes {
        let mut q = request(
            &format!(r#"sum(count_over_time({{app=~".+"}} |~ "{re}" [{whole}]))"#),
            &corpus,
            true,
        );
        q.start = corpus.end;
        let rg_pattern = re.replace(r"\\", r"\");
        let (ours, _) = run(src, &q, 1);
        let (mut e, mut r) = (Vec::new(), Vec::new());
        for _ in 0..rounds.div_ceil(2) {
            let t = thread_cpu().unwrap();
            black_box(run(src, &q, 1));
            e.push(thread_cpu().unwrap() - t);
            let (n, cpu) = ripgrep_cpu(&rg_pattern, &corpus.raw_file);
            assert_eq!(n, ours as u64, "{codec} {re}: ripgrep counts other lines");
            r.push(cpu);
        }
        let (e, r) = (median(e), median(r));
        eprintln!(
            "CODEC {codec}: regex {rg_pattern:?}: engine {:.0} MB/s, rg {:.0} MB/s (per CPU-second); \
             engine/rg {:.2}; {} lines",
            mib / e,
            mib / r,
            r / e,
            ours
        );
    }
    corpus.ing.shutdown();
}

fn bench(c: &mut Criterion) {
    let rg_version = require_ripgrep();
    let codecs =
        std::env::var("LARCH_BENCH_CODECS").unwrap_or_else(|_| "snappy,lz4,zstd,none".into());
    for name in codecs.split(',').filter(|n| !n.is_empty()) {
        codec_row(name.parse().expect("LARCH_BENCH_CODECS names codecs"));
    }
    if std::env::var("LARCH_BENCH_CASES").as_deref() == Ok("off") {
        return;
    }
    let corpus = corpus(Codec::Snappy);
    let chunks = chunks_of(&corpus);
    let blocks: usize = chunks.iter().map(|c| c.1.blocks.len()).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "corpus: {} MiB raw, {} lines, {} chunks, {} blocks; {rg_version}; {cores} cores",
        corpus.raw_bytes >> 20,
        corpus.lines,
        chunks.len(),
        blocks
    );
    let src: &dyn LogSource = &*corpus.ing;
    let whole = format!("{}s", (corpus.end - T0) / 1_000_000_000 + 1);
    let at_end = |q: String| {
        let mut r = request(&q, &corpus, true);
        r.start = corpus.end;
        r
    };
    let mut buf = Scratch::default();
    let mut g = c.benchmark_group("query_engine");
    g.throughput(Throughput::Bytes(corpus.raw_bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.warm_up_time(Duration::from_secs(1));

    for (case, lit) in [("literal_scan", "ERR"), ("literal", "ERROR")] {
        let q = at_end(format!(
            r#"sum(count_over_time({{app=~".+"}} |= "{lit}" [{whole}]))"#
        ));
        let base = baseline_memmem(&chunks, lit, &mut buf);
        let (ours, skipped) = run(src, &q, 1);
        eprintln!("{case}: memmem lines {base}, engine count {ours}, blocks skipped {skipped}");
        assert_eq!(ours as usize, base, "engine and baseline count other lines");
        paired(
            &format!("{case} (snappy+memmem vs engine, 1 thread)"),
            rounds(),
            || {
                black_box(baseline_memmem(&chunks, lit, &mut buf));
            },
            || {
                black_box(run(src, &q, 1));
            },
        );
        g.bench_function(format!("{case}/baseline_snappy_memmem"), |b| {
            b.iter(|| black_box(baseline_memmem(&chunks, lit, &mut buf)))
        });
        let n = ripgrep(lit, &corpus.raw_file);
        eprintln!("{case}: rg lines {n}");
        assert_eq!(n, ours as u64, "engine and ripgrep count other lines");
        g.bench_function(format!("{case}/ripgrep"), |b| {
            b.iter(|| black_box(ripgrep(lit, &corpus.raw_file)))
        });
        g.bench_function(format!("{case}/engine_1_thread"), |b| {
            b.iter(|| black_box(run(src, &q, 1)))
        });
        g.bench_function(format!("{case}/engine_{cores}_threads"), |b| {
            b.iter(|| black_box(run(src, &q, cores)))
        });
    }

    let needle = request(&format!(r#"{{app=~".+"}} |= "{NEEDLE}""#), &corpus, false);
    let (found, skipped) = run(src, &needle, 1);
    eprintln!("needle: engine entries {found}, blocks skipped {skipped} of {blocks}");
    let n = ripgrep(NEEDLE, &corpus.raw_file);
    eprintln!("needle: rg lines {n}");
    assert_eq!((n, found), (1, 1.0), "one needle line");
    paired(
        "needle (ripgrep vs engine, 1 thread)",
        rounds(),
        || {
            black_box(ripgrep(NEEDLE, &corpus.raw_file));
        },
        || {
            black_box(run(src, &needle, 1));
        },
    );
    g.bench_function("needle/ripgrep", |b| {
        b.iter(|| black_box(ripgrep(NEEDLE, &corpus.raw_file)))
    });
    g.bench_function("needle/engine_1_thread", |b| {
        b.iter(|| black_box(run(src, &needle, 1)))
    });
    g.bench_function(format!("needle/engine_{cores}_threads"), |b| {
        b.iter(|| black_box(run(src, &needle, cores)))
    });

    // One stream, a literal too short for the token filter that no line
    // holds: every block of the stream is read. With fewer streams than
    // threads the log query's range is split into spans scanned at once.
    let one = request(r#"{app="HDFS_2k"} |= "zqx""#, &corpus, false);
    let (found, _) = run(src, &one, 1);
    eprintln!("one_stream: engine entries {}", found as u64);
    g.throughput(Throughput::Bytes(corpus.raw_bytes / 12));
    if cores > 1 {
        paired(
            &format!("one_stream (engine 1 thread vs {cores} threads)"),
            rounds(),
            || {
                black_box(run(src, &one, 1));
            },
            || {
                black_box(run(src, &one, cores));
            },
        );
    }
    g.bench_function("one_stream/engine_1_thread", |b| {
        b.iter(|| black_box(run(src, &one, 1)))
    });
    g.bench_function(format!("one_stream/engine_{cores}_threads"), |b| {
        b.iter(|| black_box(run(src, &one, cores)))
    });
    // The same stream as a metric query: the split applies too.
    let one_metric = request(
        r#"sum(count_over_time({app="HDFS_2k"} |~ "zq[x]" [1m]))"#,
        &corpus,
        false,
    );
    if cores > 1 {
        paired(
            &format!("one_stream_metric (engine 1 thread vs {cores} threads)"),
            rounds(),
            || {
                black_box(run(src, &one_metric, 1));
            },
            || {
                black_box(run(src, &one_metric, cores));
            },
        );
    }
    g.bench_function("one_stream_metric/engine_1_thread", |b| {
        b.iter(|| black_box(run(src, &one_metric, 1)))
    });
    g.bench_function(format!("one_stream_metric/engine_{cores}_threads"), |b| {
        b.iter(|| black_box(run(src, &one_metric, cores)))
    });

    let count = request(
        r#"sum by (app) (count_over_time({app=~".+"}[1m]))"#,
        &corpus,
        false,
    );
    let (points, _) = run(src, &count, 1);
    eprintln!("count_over_time: {points} points");
    g.throughput(Throughput::Elements(corpus.lines));
    g.bench_function("count_over_time/engine_1_thread", |b| {
        b.iter(|| black_box(run(src, &count, 1)))
    });
    g.bench_function(format!("count_over_time/engine_{cores}_threads"), |b| {
        b.iter(|| black_box(run(src, &count, cores)))
    });

    let series = request(r#"count_over_time({app=~".+"}[1m])"#, &corpus, false);
    let (points, _) = run(src, &series, 1);
    eprintln!("count_series: {points} points");
    g.bench_function("count_series/engine_1_thread", |b| {
        b.iter(|| black_box(run(src, &series, 1)))
    });
    g.bench_function(format!("count_series/engine_{cores}_threads"), |b| {
        b.iter(|| black_box(run(src, &series, cores)))
    });
    g.finish();
    corpus.ing.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
