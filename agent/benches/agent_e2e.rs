//! End-to-end benchmark of the agent: CRI files on disk to acknowledged
//! pushes, in MB/s per core of the agent process, and the agent's memory
//! tailing 500 files, idle and then while they are appended to at a steady
//! rate.
//!
//! Run: `cargo bench -p larch-agent --bench agent_e2e` (the release
//! binaries are built by the test kit, `larch-testkit`).
//!
//! A custom harness rather than criterion: the thing measured is another
//! process (the release `larch-agent` binary) whose CPU time is read from
//! `/proc/<pid>/stat`, which criterion's in-process timing loop cannot do.
//! Each case runs three times and the median is reported.
//!
//! * sink: the agent pushes to a minimal acknowledging HTTP server in this
//!   process (it decompresses and decodes every request to count the
//!   entries, then answers 204), so the figure is the agent's own cost.
//! * store: the agent pushes to a real `larch-store` (release build), whose
//!   WAL fsyncs and indexing run on the same two cores.
//! * baseline, measured in the same run on the same files by one thread:
//!   read the files in 1 MiB reads, split them into lines with memchr (a
//!   line cut by a read carried into the next) and snappy-compress the
//!   bytes — the least any agent that pushes snappy-compressed lines must
//!   do. Its count of lines must be the generator's.
//! * memory: the agent tailing 500 files, idle, then while each of them
//!   is appended to at a steady rate ([`LOAD_LINES_PER_FILE_PER_SEC`]);
//!   every appended line must be acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use larch_testkit::{AgentProcess, StoreProcess, procfs};
use prost::Message;

const FILES: usize = 16;
const FILE_BYTES: usize = 16 << 20;
const RUNS: usize = 3;
/// Files of the memory cases (one pod each).
const MEMORY_FILES: usize = 500;
/// Lines appended to each file per second under load.
const LOAD_LINES_PER_FILE_PER_SEC: u64 = 20;
/// How long the files are appended to.
const LOAD_SECONDS: u64 = 12;
/// How often the load is written and the agent's RSS sampled.
const LOAD_TICK: Duration = Duration::from_millis(100);

/// Deterministic xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// Application log lines (logfmt and JSON, request ids, durations; 80
/// to 400 bytes), as a container runtime writes them: CRI records, a few
/// long lines split into a `P` and an `F` record.
struct LineMaker {
    rng: Rng,
}

impl LineMaker {
    fn new() -> LineMaker {
        LineMaker {
            rng: Rng(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Appends the records of one line stamped `ts` to `out`; returns how
    /// many records (1, or 2 for a split line).
    fn line(&mut self, ts: i64, out: &mut String) -> u64 {
        let rng = &mut self.rng;
        let levels = ["info", "info", "info", "debug", "warn", "error"];
        let paths = [
            "/api/v1/orders",
            "/api/v1/cart",
            "/healthz",
            "/api/v2/users/search",
            "/static/app.js",
        ];
        let msgs = [
            "request completed",
            "cache miss, loading from database",
            "retrying upstream call after timeout",
            "user session refreshed",
            "payment authorized",
        ];
        let stamp = larch_agent::time::format_rfc3339(ts);
        let stream = if rng.next().is_multiple_of(10) {
            "stderr"
        } else {
            "stdout"
        };
        let body = if rng.next().is_multiple_of(2) {
            format!(
                "level={} ts={} caller=handler.go:{} msg=\"{}\" path={} status={} duration={}ms request_id={:016x} user_id={}",
                rng.pick(&levels),
                stamp,
                rng.next() % 500,
                rng.pick(&msgs),
                rng.pick(&paths),
                [200, 200, 201, 404, 500][(rng.next() % 5) as usize],
                rng.next() % 2000,
                rng.next(),
                rng.next() % 100_000,
            )
        } else {
            format!(
                r#"{{"level":"{}","time":"{}","msg":"{}","http":{{"method":"GET","path":"{}","status":{}}},"trace_id":"{:016x}{:016x}","pad":"{}"}}"#,
                rng.pick(&levels),
                stamp,
                rng.pick(&msgs),
                rng.pick(&paths),
                200 + rng.next() % 300,
                rng.next(),
                rng.next(),
                "x".repeat((rng.next() % 200) as usize),
            )
        };
        if rng.next().is_multiple_of(200) && body.len() > 60 {
            // containerd splits long lines into P records.
            let (a, b) = body.split_at(40);
            out.push_str(&format!("{stamp} {stream} P {a}\n{stamp} {stream} F {b}\n"));
            2
        } else {
            out.push_str(&format!("{stamp} {stream} F {body}\n"));
            1
        }
    }
}

/// What [`generate`] wrote.
struct Data {
    bytes: u64,
    /// Log lines (what the agent pushes: a split line is one).
    lines: u64,
    /// Newline-terminated CRI records (a split line is two).
    records: u64,
}

/// Writes `files` CRI files of about `bytes_per_file` bytes each.
fn generate(pods: &Path, files: usize, bytes_per_file: usize) -> Data {
    let mut maker = LineMaker::new();
    let t0 = larch_agent::time::now_nanos() - 3_600_000_000_000;
    let mut data = Data {
        bytes: 0,
        lines: 0,
        records: 0,
    };
    let mut line = String::new();
    for f in 0..files {
        let dir = pods.join(format!("bench_pod-{f:02}_uid-{f}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("0.log")).unwrap());
        let mut written = 0usize;
        let mut ts = t0 + f as i64;
        while written < bytes_per_file {
            ts += 1000 + (maker.rng.next() % 100_000) as i64;
            line.clear();
            data.records += maker.line(ts, &mut line);
            out.write_all(line.as_bytes()).unwrap();
            written += line.len();
            data.lines += 1;
        }
        out.flush().unwrap();
        data.bytes += written as u64;
    }
    data
}

/// A minimal acknowledging push endpoint; counts decoded entries.
struct Sink {
    addr: SocketAddr,
    entries: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

fn start_sink() -> Sink {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let entries = Arc::new(AtomicU64::new(0));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let count = entries.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let count = count.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                            let push =
                                larch_proto::logproto::PushRequest::decode(raw.as_slice()).unwrap();
                            let n: usize = push.streams.iter().map(|s| s.entries.len()).sum();
                            count.fetch_add(n as u64, Ordering::Relaxed);
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Sink {
        addr,
        entries,
        _rt: rt,
    }
}

fn clk_tck() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32, tck: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f[11].parse().unwrap(), f[12].parse().unwrap());
    (utime + stime) / tck
}

fn start_agent(pods: &Path, positions: &Path, store: &str, extra: &[&str]) -> AgentProcess {
    AgentProcess::builder()
        .args(extra)
        .args(["--pods-dir", pods.to_str().unwrap()])
        .args(["--positions", positions.to_str().unwrap()])
        .args(["--store", store])
        .args(["--node-name", "bench"])
        .args(["--log-level", "error"])
        .start()
}

/// Waits until the positions file says every file is acknowledged to its
/// end.
fn wait_acked(positions: &Path, files: &[(PathBuf, u64)], timeout: Duration) {
    use std::os::unix::fs::MetadataExt;
    let deadline = Instant::now() + timeout;
    let inodes: Vec<(u64, u64)> = files
        .iter()
        .map(|(p, size)| (std::fs::metadata(p).unwrap().ino(), *size))
        .collect();
    loop {
        if let Ok(saved) = larch_agent::positions::load(positions)
            && inodes
                .iter()
                .all(|(ino, size)| saved.iter().any(|r| r.ino == *ino && r.offset == *size))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent did not finish within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Run {
    wall: f64,
    cpu: f64,
    hwm_kib: u64,
}

/// Runs the agent until `done` (or, without it, until its positions say
/// every file is acknowledged).
fn run_agent(
    pods: &Path,
    files: &[(PathBuf, u64)],
    store: &str,
    tck: f64,
    extra: &[&str],
    done: Option<&dyn Fn() -> bool>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("positions.yaml");
    let t = Instant::now();
    let agent = start_agent(pods, &positions, store, extra);
    match done {
        Some(done) => {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !done() {
                assert!(Instant::now() < deadline, "agent did not finish");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        None => wait_acked(&positions, files, Duration::from_secs(600)),
    }
    let wall = t.elapsed().as_secs_f64();
    wait_acked(&positions, files, Duration::from_secs(60));
    let cpu = cpu_seconds(agent.pid(), tck);
    let hwm_kib = procfs::status_kib(agent.pid(), "VmHWM");
    agent.kill9();
    Run { wall, cpu, hwm_kib }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// CPU seconds used so far by the calling thread.
fn thread_cpu(tck: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tck
}

/// Snappy-compresses lines in batches of 1 MiB.
struct Compressor {
    enc: snap::raw::Encoder,
    batch: Vec<u8>,
    out: Vec<u8>,
    compressed: usize,
}

impl Compressor {
    const BATCH: usize = 1 << 20;

    fn new() -> Compressor {
        Compressor {
            enc: snap::raw::Encoder::new(),
            batch: Vec::with_capacity(2 * Self::BATCH),
            out: vec![0u8; snap::raw::max_compress_len(2 * Self::BATCH)],
            compressed: 0,
        }
    }

    fn line(&mut self, line: &[u8]) {
        self.batch.extend_from_slice(line);
        if self.batch.len() >= Self::BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.out.len() < snap::raw::max_compress_len(self.batch.len()) {
            self.out
                .resize(snap::raw::max_compress_len(self.batch.len()), 0);
        }
        self.compressed += self.enc.compress(&self.batch, &mut self.out).unwrap();
        self.batch.clear();
    }
}

/// Read in 1 MiB reads, split into lines with memchr and snappy-compress,
/// one thread; returns its CPU seconds and the lines (newline-terminated
/// records) it found. A line cut by a read is carried to the front of the
/// buffer and completed by the next read.
fn baseline(files: &[(PathBuf, u64)], tck: f64) -> (f64, u64) {
    use std::io::Read;
    let t = thread_cpu(tck);
    let mut snappy = Compressor::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    for (p, _) in files {
        let mut f = std::fs::File::open(p).unwrap();
        // Bytes of a line the previous read cut, at the front of `buf`.
        let mut carried = 0usize;
        loop {
            if carried == buf.len() {
                // A line longer than the buffer.
                buf.resize(2 * buf.len(), 0);
            }
            let n = f.read(&mut buf[carried..]).unwrap();
            if n == 0 {
                if carried > 0 {
                    // The last line has no newline.
                    lines += 1;
                    snappy.line(&buf[..carried]);
                }
                break;
            }
            let end = carried + n;
            let mut start = 0usize;
            // Only the new bytes can hold the carried line's newline.
            for nl in memchr::memchr_iter(b'\n', &buf[carried..end]) {
                let nl = carried + nl;
                lines += 1;
                snappy.line(&buf[start..nl]);
                start = nl + 1;
            }
            buf.copy_within(start..end, 0);
            carried = end - start;
        }
    }
    snappy.flush();
    std::hint::black_box(snappy.compressed);
    (thread_cpu(tck) - t, lines)
}

fn start_store(data: &Path) -> StoreProcess {
    // Loki's default tenant limit (4 MB/s, 6 MB burst) would make this a
    // benchmark of the rate limiter; lift it.
    StoreProcess::builder()
        .data_dir(data)
        .config("limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n")
        .env("LARCH_LOG", "error")
        .start()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("agent_e2e: bench");
        return;
    }
    let tck = clk_tck();
    // Build the binaries now, not inside the first timed run.
    larch_testkit::binary("larch-agent");
    larch_testkit::binary("larch-store");
    let work = tempfile::tempdir().unwrap();
    let pods = work.path().join("pods");
    let data = generate(&pods, FILES, FILE_BYTES);
    let (bytes, lines) = (data.bytes, data.lines);
    let files: Vec<(PathBuf, u64)> = (0..FILES)
        .map(|f| {
            let p = pods.join(format!("bench_pod-{f:02}_uid-{f}/app/0.log"));
            let size = std::fs::metadata(&p).unwrap().len();
            (p, size)
        })
        .collect();
    let mb = bytes as f64 / 1e6;
    println!(
        "data: {FILES} CRI files, {mb:.1} MB, {lines} lines in {} CRI records (avg {} B/line)",
        data.records,
        bytes / lines
    );

    let mut base = Vec::new();
    for _ in 0..RUNS {
        let (cpu, split) = baseline(&files, tck);
        assert_eq!(
            split, data.records,
            "the baseline finds every line the generator wrote, once"
        );
        base.push(cpu);
    }
    let base = median(base);
    println!(
        "baseline (read + memchr split + snappy, 1 thread): CPU {:.3} s = {:.0} MB/s per core, {} lines",
        base,
        mb / base,
        data.records
    );

    let sink = start_sink();
    let me = std::process::id();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let before = sink.entries.load(Ordering::Relaxed);
        let cpu0 = cpu_seconds(me, tck);
        let done = || sink.entries.load(Ordering::Relaxed) - before >= lines;
        runs.push(run_agent(
            &pods,
            &files,
            &format!("http://{}", sink.addr),
            tck,
            &[],
            Some(&done),
        ));
        let got = sink.entries.load(Ordering::Relaxed) - before;
        assert_eq!(got, lines, "the sink counts every line once");
        println!(
            "  run: wall {:.2} s, agent cpu {:.2} s, sink cpu {:.2} s",
            runs.last().unwrap().wall,
            runs.last().unwrap().cpu,
            cpu_seconds(me, tck) - cpu0
        );
    }
    report("agent -> sink", mb, &runs, base);

    for in_flight in ["2", "8"] {
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let data = tempfile::tempdir().unwrap();
            let store = start_store(&data.path().join("data"));
            // Positions written every 50 ms so the end is seen promptly.
            let r = run_agent(
                &pods,
                &files,
                &store.addr(),
                tck,
                &["--max-in-flight", in_flight, "--positions-sync", "50ms"],
                None,
            );
            let store_cpu = cpu_seconds(store.pid(), tck);
            println!(
                "  run: wall {:.2} s, agent cpu {:.2} s, store cpu {:.2} s",
                r.wall, r.cpu, store_cpu
            );
            store.kill9();
            runs.push(r);
        }
        report(
            &format!("agent -> larch-store (max_in_flight {in_flight})"),
            mb,
            &runs,
            base,
        );
    }

    memory(&sink, tck);
}

/// The agent tailing [`MEMORY_FILES`] files: its memory idle, then while
/// every file is appended to at a steady rate, sampled every
/// [`LOAD_TICK`].
fn memory(sink: &Sink, tck: f64) {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let t0 = larch_agent::time::now_nanos() - 60_000_000_000;
    let mut files = Vec::new();
    for i in 0..MEMORY_FILES {
        let dir = pods.join(format!("idle_pod-{i:03}_uid-{i}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = String::new();
        for j in 0..10 {
            s.push_str(&format!(
                "{} stdout F idle pod {i} line {j}\n",
                larch_agent::time::format_rfc3339(t0 + j)
            ));
        }
        let p = dir.join("0.log");
        std::fs::write(&p, &s).unwrap();
        files.push((p, s.len() as u64));
    }
    let positions = dir.path().join("positions.yaml");
    let agent = start_agent(&pods, &positions, &format!("http://{}", sink.addr), &[]);
    wait_acked(&positions, &files, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(5));
    let rss = procfs::status_kib(agent.pid(), "VmRSS");
    let hwm = procfs::status_kib(agent.pid(), "VmHWM");
    let cpu0 = cpu_seconds(agent.pid(), tck);
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = (cpu_seconds(agent.pid(), tck) - cpu0) / 10.0 * 100.0;
    println!(
        "{MEMORY_FILES} idle files: RSS {:.1} MiB (peak {:.1} MiB), idle CPU {:.2}% of a core",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        idle_cpu
    );

    // The same agent while every file grows: each tick appends the lines
    // due (spread evenly over the second) to every file, one write per
    // file as a container runtime does, then samples the agent's RSS.
    let mut writers: Vec<std::fs::File> = files
        .iter()
        .map(|(p, _)| std::fs::OpenOptions::new().append(true).open(p).unwrap())
        .collect();
    let mut maker = LineMaker::new();
    let before = sink.entries.load(Ordering::Relaxed);
    let cpu0 = cpu_seconds(agent.pid(), tck);
    let ticks_per_sec = (Duration::from_secs(1).as_millis() / LOAD_TICK.as_millis()) as u64;
    let ticks = LOAD_SECONDS * ticks_per_sec;
    let (mut appended, mut bytes) = (0u64, 0u64);
    let mut samples_kib = Vec::new();
    let mut text = String::new();
    let start = Instant::now();
    for tick in 0..ticks {
        // Lines due by the end of this tick, less those written.
        let due = |t: u64| LOAD_LINES_PER_FILE_PER_SEC * t / ticks_per_sec;
        let n = due(tick + 1) - due(tick);
        let now = larch_agent::time::now_nanos();
        for w in &mut writers {
            text.clear();
            for k in 0..n {
                maker.line(now + k as i64, &mut text);
            }
            w.write_all(text.as_bytes()).unwrap();
            appended += n;
            bytes += text.len() as u64;
        }
        samples_kib.push(procfs::status_kib(agent.pid(), "VmRSS"));
        let next = start + LOAD_TICK * (tick as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let wall = start.elapsed().as_secs_f64();
    let load_cpu = (cpu_seconds(agent.pid(), tck) - cpu0) / wall * 100.0;
    let written = Instant::now();
    let deadline = written + Duration::from_secs(120);
    while sink.entries.load(Ordering::Relaxed) - before < appended {
        assert!(
            Instant::now() < deadline,
            "{} of {appended} appended lines acknowledged",
            sink.entries.load(Ordering::Relaxed) - before
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let drain = written.elapsed().as_secs_f64();
    let grown: Vec<(PathBuf, u64)> = files
        .iter()
        .map(|(p, _)| (p.clone(), std::fs::metadata(p).unwrap().len()))
        .collect();
    wait_acked(&positions, &grown, Duration::from_secs(60));
    assert_eq!(
        sink.entries.load(Ordering::Relaxed) - before,
        appended,
        "every appended line acknowledged once"
    );
    let hwm = procfs::status_kib(agent.pid(), "VmHWM");
    agent.kill9();
    let peak = samples_kib.iter().copied().max().unwrap_or(0);
    let median_kib = median(samples_kib.iter().map(|k| *k as f64).collect());
    println!(
        "{MEMORY_FILES} files appended to for {wall:.1} s ({} lines/s, {:.2} MB/s; {appended} lines, all acknowledged {:.2} s after the last write): RSS median {:.1} MiB, peak {:.1} MiB over {} samples (VmHWM {:.1} MiB), agent CPU {load_cpu:.1}% of a core",
        MEMORY_FILES as u64 * LOAD_LINES_PER_FILE_PER_SEC,
        bytes as f64 / 1e6 / wall,
        drain,
        median_kib / 1024.0,
        peak as f64 / 1024.0,
        samples_kib.len(),
        hwm as f64 / 1024.0,
    );
}

fn report(name: &str, mb: f64, runs: &[Run], base: f64) {
    let cpu = median(runs.iter().map(|r| r.cpu).collect());
    let wall = median(runs.iter().map(|r| r.wall).collect());
    let hwm = runs.iter().map(|r| r.hwm_kib).max().unwrap_or(0);
    println!(
        "{name}: median wall {wall:.2} s ({:.0} MB/s), agent CPU {cpu:.2} s = {:.0} MB/s per core ({:.2}x the baseline's per-core cost), peak RSS {:.1} MiB",
        mb / wall,
        mb / cpu,
        cpu / base,
        hwm as f64 / 1024.0
    );
}
