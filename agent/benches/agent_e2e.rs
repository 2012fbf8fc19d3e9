//! End-to-end benchmark of the agent: CRI files on disk to acknowledged
//! pushes, in MB/s per core of the agent process, and the agent's memory
//! tailing 500 idle files.
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
//!   read the files, split lines with memchr and snappy-compress the bytes
//!   — the least any agent that pushes snappy-compressed lines must do.

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

/// Writes CRI files that look like application logs (logfmt and JSON,
/// request ids, durations; 80 to 400 bytes per line, a few split lines).
fn generate(pods: &Path, files: usize, bytes_per_file: usize) -> (u64, u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
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
    let t0 = larch_agent::time::now_nanos() - 3_600_000_000_000;
    let (mut total_bytes, mut total_lines) = (0u64, 0u64);
    for f in 0..files {
        let dir = pods.join(format!("bench_pod-{f:02}_uid-{f}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("0.log")).unwrap());
        let mut written = 0usize;
        let mut ts = t0 + f as i64;
        let mut line = String::new();
        while written < bytes_per_file {
            ts += 1000 + (rng.next() % 100_000) as i64;
            line.clear();
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
                line.push_str(&format!("{stamp} {stream} P {a}\n{stamp} {stream} F {b}\n"));
            } else {
                line.push_str(&format!("{stamp} {stream} F {body}\n"));
            }
            out.write_all(line.as_bytes()).unwrap();
            written += line.len();
            total_lines += 1;
        }
        out.flush().unwrap();
        total_bytes += written as u64;
    }
    (total_bytes, total_lines)
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

/// Read, split into lines and snappy-compress, one thread; returns its CPU
/// seconds.
fn baseline(files: &[(PathBuf, u64)], tck: f64) -> f64 {
    use std::io::Read;
    let t = thread_cpu(tck);
    let mut enc = snap::raw::Encoder::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut batch: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut out = vec![0u8; snap::raw::max_compress_len(2 << 20)];
    let mut lines = 0usize;
    let mut sink = 0usize;
    for (p, _) in files {
        let mut f = std::fs::File::open(p).unwrap();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for line in buf[..n].split(|b| *b == b'\n') {
                lines += 1;
                batch.extend_from_slice(line);
                if batch.len() >= 1 << 20 {
                    sink += enc.compress(&batch, &mut out).unwrap();
                    batch.clear();
                }
            }
        }
    }
    sink += enc.compress(&batch, &mut out).unwrap();
    std::hint::black_box((lines, sink));
    thread_cpu(tck) - t
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
    let work = tempfile::tempdir().unwrap();
    let pods = work.path().join("pods");
    let (bytes, lines) = generate(&pods, FILES, FILE_BYTES);
    let files: Vec<(PathBuf, u64)> = (0..FILES)
        .map(|f| {
            let p = pods.join(format!("bench_pod-{f:02}_uid-{f}/app/0.log"));
            let size = std::fs::metadata(&p).unwrap().len();
            (p, size)
        })
        .collect();
    let mb = bytes as f64 / 1e6;
    println!(
        "data: {FILES} CRI files, {mb:.1} MB, {lines} lines (avg {} B/line)",
        bytes / lines
    );

    let base: Vec<f64> = (0..RUNS).map(|_| baseline(&files, tck)).collect();
    let base = median(base);
    println!(
        "baseline (read + memchr split + snappy, 1 thread): CPU {:.3} s = {:.0} MB/s per core",
        base,
        mb / base
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

    // Memory with 500 idle files.
    let idle = tempfile::tempdir().unwrap();
    let idle_pods = idle.path().join("pods");
    let t0 = larch_agent::time::now_nanos() - 60_000_000_000;
    let mut idle_files = Vec::new();
    for i in 0..500 {
        let dir = idle_pods.join(format!("idle_pod-{i:03}_uid-{i}/app"));
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
        idle_files.push((p, s.len() as u64));
    }
    let positions = idle.path().join("positions.yaml");
    let agent = start_agent(
        &idle_pods,
        &positions,
        &format!("http://{}", sink.addr),
        &[],
    );
    wait_acked(&positions, &idle_files, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(5));
    let rss = procfs::status_kib(agent.pid(), "VmRSS");
    let hwm = procfs::status_kib(agent.pid(), "VmHWM");
    let cpu0 = cpu_seconds(agent.pid(), tck);
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = (cpu_seconds(agent.pid(), tck) - cpu0) / 10.0 * 100.0;
    agent.kill9();
    println!(
        "500 idle files: RSS {:.1} MiB (peak {:.1} MiB), idle CPU {:.2}% of a core",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        idle_cpu
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
