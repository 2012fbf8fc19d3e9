//! Cardinality benchmark: a real `larch-store` holding many active streams
//! with realistic Kubernetes label sets (a unique pod per stream), and what
//! that costs: resident memory, the label and series endpoints, SIGTERM,
//! and the WAL replay of that state at the next start.
//!
//! Every figure is checked against the answer it measures: the pod values
//! counted are the streams pushed, the series of the selective matcher are
//! the streams the generator gave those labels, and after the replay the
//! store holds every line pushed.
//!
//! `cargo run --release -p larch-benches --bin cardinality -- --help`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use larch_benches::disk::dir_size;
use larch_benches::push::{PerClient, push_all};
use larch_proto::logproto;
use larch_testkit::http::{Connection, percent};
use larch_testkit::procfs::status_kib;
use larch_testkit::{Process, ProcessBuilder, free_port, now_ns};

#[derive(Parser, Debug)]
struct Args {
    /// The store binary (default: the workspace's, built for this
    /// binary's profile by the test kit).
    #[arg(long)]
    store_bin: Option<PathBuf>,
    /// Active streams, each with its own pod.
    #[arg(long, default_value_t = 1_000_000)]
    streams: usize,
    /// Lines per stream; each is sent in its own pass over every stream,
    /// as a stream's lines arrive over time.
    #[arg(long, default_value_t = 3)]
    lines: usize,
    /// Concurrent clients, each owning a quarter of the streams (as the
    /// agents of different nodes do).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Streams per push request.
    #[arg(long, default_value_t = 1000)]
    streams_per_push: usize,
    /// Calls of each read endpoint; medians are reported.
    #[arg(long, default_value_t = 5)]
    calls: usize,
    /// Namespaces; each has `--apps` apps.
    #[arg(long, default_value_t = 200)]
    namespaces: usize,
    /// Apps per namespace.
    #[arg(long, default_value_t = 25)]
    apps: usize,
    /// Nodes the pods are spread over.
    #[arg(long, default_value_t = 4000)]
    nodes: usize,
    /// Extra configuration appended to the benchmark's own (YAML, e.g.
    /// `ingester:\n  flush_on_shutdown: true`).
    #[arg(long)]
    extra_config: Option<String>,
}

/// The alphabet of the random parts of Kubernetes pod names.
const POD_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Stream `s`'s place in the cluster.
struct Place {
    namespace: usize,
    app: usize,
    node: usize,
    stderr: bool,
}

/// The labels of the streams: namespace, app, a unique pod, container,
/// node, stream and job.
struct Cluster {
    namespaces: usize,
    apps: usize,
    nodes: usize,
}

impl Cluster {
    fn place(&self, s: usize) -> Place {
        Place {
            namespace: s % self.namespaces,
            app: (s / self.namespaces) % self.apps,
            node: (s.wrapping_mul(2_654_435_761)) % self.nodes,
            stderr: s % 5 == 4,
        }
    }

    fn namespace(i: usize) -> String {
        const TEAMS: &[&str] = &[
            "payments", "checkout", "search", "catalog", "identity", "billing", "ml", "data",
        ];
        format!("{}-{i:03}", TEAMS[i % TEAMS.len()])
    }

    fn app(i: usize) -> String {
        const APPS: &[&str] = &[
            "api",
            "worker",
            "frontend",
            "gateway",
            "scheduler",
            "indexer",
            "cache",
            "consumer",
        ];
        format!("{}-{i:02}", APPS[i % APPS.len()])
    }

    /// `app-<replica set hash>-<5 characters unique to the stream>`.
    fn pod(app: &str, namespace: usize, app_i: usize, s: usize) -> String {
        let mut rs = String::new();
        let mut h = (namespace * 131 + app_i).wrapping_mul(0x9E37_79B9) as u64 | 1 << 40;
        for _ in 0..9 {
            rs.push(POD_ALPHABET[(h % 27) as usize] as char);
            h /= 27;
        }
        // A bijection on 0..27^5 (the multiplier is prime to 27), so
        // every stream below 14,348,907 gets its own suffix.
        let mut x = (s as u64).wrapping_mul(7_368_787) % 14_348_907;
        let mut suffix = String::new();
        for _ in 0..5 {
            suffix.push(POD_ALPHABET[(x % 27) as usize] as char);
            x /= 27;
        }
        format!("{app}-{rs}-{suffix}")
    }

    /// The labels text of stream `s`.
    fn labels(&self, s: usize) -> String {
        let p = self.place(s);
        let ns = Cluster::namespace(p.namespace);
        let app = Cluster::app(p.app);
        let pod = Cluster::pod(&app, p.namespace, p.app, s);
        let n = p.node;
        format!(
            r#"{{namespace="{ns}", app="{app}", pod="{pod}", container="{app}", node="ip-10-{}-{}-{}.eu-west-1.compute.internal", stream="{}", job="{ns}/{app}"}}"#,
            n / 65536 % 256,
            n / 256 % 256,
            n % 256,
            if p.stderr { "stderr" } else { "stdout" }
        )
    }
}

/// Line `k` of stream `s`: logfmt, JSON or plain text, 90 to 160 bytes.
fn line(s: usize, k: usize, ts: i64) -> String {
    let id = (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k as u64;
    match (s + k) % 4 {
        0 => format!(
            "ts={} level=info msg=\"request served\" method=GET path=/api/v1/items/{} status=200 duration_ms={}",
            ts / 1_000_000,
            id % 100_000,
            id % 900
        ),
        1 => format!(
            "{{\"time\":{},\"level\":\"debug\",\"msg\":\"cache lookup\",\"key\":\"user:{:x}\",\"hit\":{}}}",
            ts / 1_000_000,
            id,
            id.is_multiple_of(3)
        ),
        2 => format!(
            "I1204 12:{:02}:{:02}.{:06} 1 controller.go:{}] Reconciled object {:x} in {}ms",
            k % 60,
            s % 60,
            id % 1_000_000,
            id % 400,
            id >> 16,
            id % 77
        ),
        _ => format!(
            "WARN retrying upstream call attempt={} upstream=10.{}.{}.{}:8080 error=\"connection reset by peer\"",
            k + 1,
            id % 256,
            (id >> 8) % 256,
            (id >> 16) % 256
        ),
    }
}

/// The pushes: pass `k` sends line `k` of every stream; client `c` owns the
/// streams `s` with `s % clients == c`, `--streams-per-push` to a request.
/// Returns the bodies, the lines and the raw bytes.
fn build(args: &Args, cluster: &Cluster, base: i64) -> (PerClient, u64, u64) {
    let clients = args.clients.max(1);
    let per_push = args.streams_per_push.max(1);
    let labels: Vec<String> = (0..args.streams).map(|s| cluster.labels(s)).collect();
    let mut bodies: PerClient = vec![Vec::new(); clients];
    let (mut lines, mut raw) = (0u64, 0u64);
    for k in 0..args.lines {
        for (c, out) in bodies.iter_mut().enumerate() {
            let owned: Vec<usize> = (c..args.streams).step_by(clients).collect();
            for group in owned.chunks(per_push) {
                let streams = group
                    .iter()
                    .map(|&s| {
                        let ts = base + k as i64 * 1_000_000_000 + s as i64 * 1_000;
                        let text = line(s, k, ts);
                        lines += 1;
                        raw += text.len() as u64;
                        logproto::Stream {
                            labels: labels[s].clone(),
                            entries: vec![larch_testkit::push::entry(ts, text)],
                            hash: 0,
                        }
                    })
                    .collect();
                let req = logproto::PushRequest {
                    streams,
                    format: String::new(),
                };
                out.push(larch_testkit::push::encode(&req));
            }
        }
    }
    (bodies, lines, raw)
}

/// Waits until `/ready` answers 200 (or the process exits, or `patience`
/// passes).
fn wait_ready(p: &Process, port: u16, patience: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        if larch_testkit::http::get(port, "/ready", &[]).is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        if let Some(status) = p.try_wait() {
            anyhow::bail!(
                "the store exited before it was ready ({status}): {}",
                p.stderr()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the store was not ready after {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` on its own connection; the body as JSON, with the wall time.
fn get_json(port: u16, path: &str) -> anyhow::Result<(serde_json::Value, f64)> {
    let start = Instant::now();
    let mut c = Connection::connect_with_timeout(port, Duration::from_secs(600))?;
    let r = c.request("GET", path, &[], b"")?;
    let wall = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        r.status == 200,
        "{path} answered {}: {}",
        r.status,
        r.text().chars().take(500).collect::<String>()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).with_context(|| format!("{path}: not JSON"))?;
    Ok((v, wall))
}

/// Calls `path` `calls` times; the answer of the first call and the median
/// wall time.
fn median_call(port: u16, path: &str, calls: usize) -> anyhow::Result<(serde_json::Value, f64)> {
    let mut walls = Vec::new();
    let mut first = None;
    for _ in 0..calls.max(1) {
        let (v, wall) = get_json(port, path)?;
        walls.push(wall);
        first.get_or_insert(v);
    }
    walls.sort_by(f64::total_cmp);
    Ok((first.context("at least one call")?, walls[walls.len() / 2]))
}

/// Length of the `data` array of an answer.
fn data_len(v: &serde_json::Value) -> anyhow::Result<usize> {
    v["data"].as_array().map(Vec::len).with_context(|| {
        format!(
            "no data array in {}",
            v.to_string().chars().take(300).collect::<String>()
        )
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `(entries, streams)` the store holds in `[start, end)` over every
/// stream the benchmark pushed.
fn held(port: u16, start: i64, end: i64) -> anyhow::Result<(u64, u64)> {
    let (v, _) = get_json(
        port,
        &format!(
            "/loki/api/v1/index/stats?query={}&start={start}&end={end}",
            percent(r#"{stream=~"stdout|stderr"}"#)
        ),
    )?;
    Ok((
        v["entries"].as_u64().context("index/stats: entries")?,
        v["streams"].as_u64().context("index/stats: streams")?,
    ))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store_bin = args
        .store_bin
        .clone()
        .unwrap_or_else(|| larch_testkit::binary("larch-store"));
    let cluster = Cluster {
        namespaces: args.namespaces.max(1),
        apps: args.apps.max(1),
        nodes: args.nodes.max(1),
    };
    let base = now_ns() - 600_000_000_000;
    let built = Instant::now();
    let (bodies, lines, raw) = build(&args, &cluster, base);
    let requests: usize = bodies.iter().map(Vec::len).sum();
    let body_bytes: usize = bodies.iter().flatten().map(Vec::len).sum();
    println!(
        "workload: {} streams x {} lines = {lines} lines ({:.0} B/line), {requests} requests of {} streams ({:.1} MiB of snappy protobuf), built in {:.1}s",
        args.streams,
        args.lines,
        raw as f64 / lines.max(1) as f64,
        args.streams_per_push,
        body_bytes as f64 / 1048576.0,
        built.elapsed().as_secs_f64()
    );
    let bodies = Arc::new(bodies);

    // What the selective queries must answer, from the generator.
    let (sel_ns, sel_app) = (7 % cluster.namespaces, 3 % cluster.apps);
    let in_ns = (0..args.streams)
        .filter(|&s| cluster.place(s).namespace == sel_ns)
        .count();
    let in_ns_app = (0..args.streams)
        .filter(|&s| {
            let p = cluster.place(s);
            p.namespace == sel_ns && p.app == sel_app
        })
        .count();
    let ns_sel = format!(r#"{{namespace="{}"}}"#, Cluster::namespace(sel_ns));
    let series_sel = format!(
        r#"{{namespace="{}", app="{}"}}"#,
        Cluster::namespace(sel_ns),
        Cluster::app(sel_app)
    );

    let port = free_port();
    let builder = ProcessBuilder::new("larch-store", &store_bin);
    let data = builder.dir().join("data");
    let config = builder.dir().join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_streams_per_tenant: 0\n{}",
            args.extra_config.as_deref().unwrap_or("")
        ),
    )?;
    let store = builder
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--grpc-addr")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env("LARCH_LOG", "warn")
        .start();
    wait_ready(&store, port, Duration::from_secs(60))?;
    let pid = store.pid();
    let rss0 = status_kib(pid, "VmRSS");

    let start = Instant::now();
    push_all(&[port], &bodies, Some(Duration::from_secs(300)))?;
    let push_wall = start.elapsed().as_secs_f64();
    drop(bodies);
    let (rss, hwm) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    println!(
        "ingest: {lines} lines in {push_wall:.1}s ({:.0} lines/s)",
        lines as f64 / push_wall
    );
    println!(
        "memory after ingest: VmRSS {:.0} MiB, VmHWM {:.0} MiB (empty store: {:.0} MiB); {:.0} bytes of RSS per stream above the empty store",
        mib(rss),
        mib(hwm),
        mib(rss0),
        (rss.saturating_sub(rss0) * 1024) as f64 / args.streams.max(1) as f64
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "memory 2 s later: VmRSS {:.0} MiB",
        mib(status_kib(pid, "VmRSS"))
    );

    let (qs, qe) = (base - 60_000_000_000, now_ns() + 3_600_000_000_000);
    let range = format!("start={qs}&end={qe}");
    let (v, labels_wall) = median_call(port, &format!("/loki/api/v1/labels?{range}"), args.calls)?;
    let names = data_len(&v)?;
    anyhow::ensure!(
        names >= 7,
        "labels answered {names} names, expected the 7 pushed (and service_name)"
    );
    let (v, values_wall) = median_call(
        port,
        &format!("/loki/api/v1/label/pod/values?{range}"),
        args.calls,
    )?;
    let pods = data_len(&v)?;
    anyhow::ensure!(
        pods == args.streams,
        "label/pod/values answered {pods} values for {} streams",
        args.streams
    );
    let (v, values_q_wall) = median_call(
        port,
        &format!(
            "/loki/api/v1/label/pod/values?{range}&query={}",
            percent(&ns_sel)
        ),
        args.calls,
    )?;
    let pods_q = data_len(&v)?;
    anyhow::ensure!(
        pods_q == in_ns,
        "label/pod/values with {ns_sel} answered {pods_q} values, expected {in_ns}"
    );
    let (v, series_wall) = median_call(
        port,
        &format!(
            "/loki/api/v1/series?{range}&match[]={}",
            percent(&series_sel)
        ),
        args.calls,
    )?;
    let series = data_len(&v)?;
    anyhow::ensure!(
        series == in_ns_app,
        "series {series_sel} answered {series} series, expected {in_ns_app}"
    );
    println!("labels: {names} names, median {:.3}s", labels_wall);
    println!(
        "label/pod/values: {pods} values, median {:.3}s",
        values_wall
    );
    println!(
        "label/pod/values?query={ns_sel}: {pods_q} values, median {:.3}s",
        values_q_wall
    );
    println!(
        "series?match[]={series_sel}: {series} series, median {:.3}s",
        series_wall
    );
    let (rss_q, hwm_q) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    println!(
        "memory after the queries: VmRSS {:.0} MiB, VmHWM {:.0} MiB",
        mib(rss_q),
        mib(hwm_q)
    );

    let t = Instant::now();
    store.signal("TERM");
    let status = store
        .wait_timeout(Duration::from_secs(600))
        .context("the store did not exit within 600 s of SIGTERM")?;
    let term_wall = t.elapsed().as_secs_f64();
    // It exited: this only takes the status, so that it can be restarted.
    store.terminate();
    anyhow::ensure!(status.success(), "the store exited with {status}");
    println!("SIGTERM to exit: {term_wall:.2}s ({status})");
    let wal_bytes = dir_size(&data.join("wal"));
    let chunk_bytes = dir_size(&data.join("chunks"));
    println!(
        "data dir after exit: WAL {:.1} MiB, chunks {:.1} MiB",
        wal_bytes as f64 / 1048576.0,
        chunk_bytes as f64 / 1048576.0
    );

    let t = Instant::now();
    store.restart();
    wait_ready(&store, port, Duration::from_secs(600))?;
    let replay_wall = t.elapsed().as_secs_f64();
    let pid = store.pid();
    let (rss_r, hwm_r) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    println!(
        "restart (WAL replay) to ready: {replay_wall:.2}s; VmRSS {:.0} MiB, VmHWM {:.0} MiB",
        mib(rss_r),
        mib(hwm_r)
    );
    let (entries, streams) = held(port, qs, qe)?;
    anyhow::ensure!(
        entries == lines && streams == args.streams as u64,
        "after the replay the store holds {entries} entries of {streams} streams; {lines} lines of {} streams were pushed",
        args.streams
    );
    println!("after the replay: {entries} entries of {streams} streams, as pushed");
    let t = Instant::now();
    store.signal("TERM");
    store
        .wait_timeout(Duration::from_secs(600))
        .context("the store did not exit within 600 s of the second SIGTERM")?;
    println!("second SIGTERM to exit: {:.2}s", t.elapsed().as_secs_f64());
    println!();
    println!(
        "| streams | lines | VmRSS after ingest | VmHWM | labels | pod values | pod values, query | series | SIGTERM | replay to ready | VmRSS after replay |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {lines} | {:.0} MiB | {:.0} MiB | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.2} s | {:.2} s | {:.0} MiB |",
        args.streams,
        mib(rss),
        mib(hwm),
        labels_wall,
        values_wall,
        values_q_wall,
        series_wall,
        term_wall,
        replay_wall,
        mib(rss_r)
    );
    Ok(())
}
