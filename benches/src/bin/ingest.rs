//! End-to-end ingest benchmark: snappy protobuf pushes over HTTP into a
//! real `larch-store` process, until acknowledged, plus the flush of
//! everything to chunks on SIGTERM; throughput is raw line bytes per
//! second of wall time and per CPU-second the store consumed.
//!
//! Baseline, measured in the same run with the same requests: a minimal
//! sink that only decodes each push (snappy + protobuf) and acknowledges
//! it. The ratio store/sink shows what durability, indexing and chunking
//! cost on top of merely receiving the data.
//!
//! Every figure is given in MB/s and in lines/s per store CPU-second, and
//! every run checks that the store holds exactly the lines pushed. The
//! share of the store's CPU spent in the kernel is given beside it: on a
//! virtual machine whose host takes back the guest's free memory, writing
//! the WAL and the chunks into fresh page-cache pages costs several times
//! what it does on reused ones, and that share moves from run to run.
//! `--matrix` runs the workloads that look like ordinary traffic (short
//! lines, many small pushes; see `Args::matrix`). `--against BIN` measures
//! a second store binary in every run beside the first, the two taking
//! turns at going first, and prints each run's ratio of the two: on a
//! machine whose speed drifts by a tenth within minutes, a change of a few
//! percent shows only in such pairs. `--warmup-mib N` pushes N MiB of the
//! same workload first and starts the clock (wall and CPU) after them: the
//! figure of a store that is already running, past its start and its first
//! growth of memory; the final flush, of the warm-up's lines as well, is
//! still counted. With `--warmup-streams N` the warm-up goes to N streams
//! of its own, which stay idle during the measured pushes.
//!
//! `cargo run --release -p larch-benches --bin ingest -- --help`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use larch_benches::data::{Replay, load_samples, loghub_dir};
use larch_benches::disk::dir_size;
use larch_benches::push::{PerClient, push_all};
use larch_proto::logproto;
use larch_testkit::procfs::children_cpu_split;
use larch_testkit::{ProcessBuilder, free_port, now_ns};
use prost::Message;

#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// The store binary (default: the workspace's, built for this
    /// binary's profile by the test kit).
    #[arg(long)]
    store_bin: Option<PathBuf>,
    /// A second store binary (the baseline: the build before a change)
    /// measured in every run beside `--store-bin`, the two alternating
    /// which goes first; prints its medians too and the median of the
    /// runs' ratios (`--store-bin` over this, per core of all CPU).
    #[arg(long)]
    against: Option<PathBuf>,
    /// MiB of raw log lines to push per run.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// MiB of raw log lines pushed in each run before the clock starts
    /// (the same workload, older timestamps): the store's CPU time up to
    /// then is not counted, so the figures are those of a store already
    /// past its start, its first growth of memory and its first chunk
    /// flushes. The final flush of everything held (the warm-up's lines
    /// too) is counted. 0 (the default): measured from the process start.
    #[arg(long, default_value_t = 0)]
    warmup_mib: usize,
    /// Spreads the warm-up's lines over this many streams of their own
    /// (`namespace="warmup"`, timestamps an hour before the measured
    /// ones), which then sit idle while the measured pushes run: the cost
    /// of a store's many idle streams to its busy ones. The clock then
    /// stops when the measured pushes are acknowledged, and the store does
    /// not flush at its exit (`flush_on_shutdown: false`; a flush would be
    /// every idle stream's). Default: the warm-up is the measured
    /// workload's own streams.
    #[arg(long)]
    warmup_streams: Option<usize>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Streams the lines are spread over.
    #[arg(long, default_value_t = 96)]
    streams: usize,
    /// Raw line KiB per push request (Promtail's default batch is 1 MiB).
    #[arg(long, visible_alias = "push-kib", default_value_t = 1024)]
    batch_kib: usize,
    /// How a client's lines are grouped into pushes: `mixed` (every
    /// stream the client owns, 96 streams over the clients), `wide`
    /// (256 streams per client, so hundreds of streams per push) or
    /// `narrow` (one stream per push).
    #[arg(long, value_enum, default_value_t = Shape::Mixed)]
    shape: Shape,
    /// Only lines of this many bytes (`MIN-MAX`, e.g. `100-200`) from the
    /// loghub samples; all lines when not given.
    #[arg(long)]
    line_bytes: Option<String>,
    /// Runs the set of workloads that match ordinary traffic (100-200 byte
    /// lines; 75 KiB, 300 KiB and 1 MiB pushes from 4 clients; 300 KiB
    /// from 16 clients; 300 KiB wide and narrow) and prints one table;
    /// `--mib`, `--runs`, `--levels` and `--store-bin` apply.
    #[arg(long)]
    matrix: bool,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only push the workload to an already running server on this port
    /// (for profiling it), then exit.
    #[arg(long)]
    push_to: Option<u16>,
    /// The store's `discover_log_levels`: `on` (the default, as
    /// configured out of the box), `off`, or `both` (each run measures the
    /// store with and then without, for a comparison in one invocation).
    #[arg(long, value_enum, default_value_t = Levels::On)]
    levels: Levels,
    /// Write nodes (`target: write` with `cluster:` over one filesystem
    /// bucket) to push through instead of one single-binary store; the
    /// clients are spread over them. Figures are per CPU-second of all of
    /// them together.
    #[arg(long, default_value_t = 0)]
    write_nodes: usize,
    /// `cluster.replication_factor` with `--write-nodes`.
    #[arg(long, default_value_t = 3)]
    rf: usize,
    /// The single store's `ingester.chunk_encoding` (default: the
    /// store's, snappy).
    #[arg(long)]
    chunk_encoding: Option<String>,
    /// The single store's `ingester.chunk_lz4_level` (default: the
    /// store's, 0).
    #[arg(long)]
    chunk_lz4_level: Option<u8>,
}

/// Which `discover_log_levels` settings a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Levels {
    On,
    Off,
    Both,
}

/// How lines are grouped into pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Shape {
    /// Every stream the client owns (`--streams` over the clients).
    Mixed,
    /// 256 streams per client: hundreds of streams per push.
    Wide,
    /// One stream per push.
    Narrow,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Mixed => "mixed",
            Shape::Wide => "wide",
            Shape::Narrow => "narrow",
        }
    }
}

/// One workload: how the lines are cut into pushes and sent.
#[derive(Clone, Copy, Debug)]
struct Workload {
    push_kib: usize,
    clients: usize,
    shape: Shape,
    /// Streams in all.
    streams: usize,
}

impl Workload {
    fn name(&self) -> String {
        format!(
            "{} KiB pushes, {} clients, {} ({} streams)",
            self.push_kib,
            self.clients,
            self.shape.name(),
            self.streams
        )
    }
}

/// The pushes of one workload.
struct Requests {
    /// Pushed before the clock starts (`--warmup-mib`; no bodies without).
    warm: Arc<PerClient>,
    /// Raw bytes and lines of `warm`.
    warm_raw: u64,
    warm_lines: u64,
    /// Streams of the warm-up's own (`--warmup-streams`), 0 when it is
    /// the measured workload's.
    idle_streams: usize,
    /// The measured pushes, and their raw bytes and lines.
    bodies: Arc<PerClient>,
    raw: u64,
    lines: u64,
    /// Oldest timestamp pushed (ns).
    first_ts: i64,
}

/// Medians of one workload and setting.
struct Summary {
    name: String,
    levels: bool,
    store_mb_core: f64,
    store_lines_core: f64,
    store_wall: f64,
    sink_mb_core: f64,
    sink_lines_core: f64,
    runs: Vec<f64>,
}

#[derive(clap::Subcommand, Debug)]
enum Mode {
    /// The baseline sink (used internally).
    Sink {
        #[arg(long)]
        port: u16,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Mode::Sink { port }) = args.mode {
        return sink(port);
    }
    let line_bytes = match &args.line_bytes {
        Some(r) => Some(parse_range(r)?),
        None if args.matrix => Some((100, 200)),
        None => None,
    };
    let workloads: Vec<Workload> = if args.matrix {
        let w = |push_kib, clients, shape| Workload {
            push_kib,
            clients,
            shape,
            streams: streams_for(shape, clients, args.streams),
        };
        vec![
            w(75, 4, Shape::Mixed),
            w(300, 4, Shape::Mixed),
            w(1024, 4, Shape::Mixed),
            w(300, 16, Shape::Mixed),
            w(300, 4, Shape::Wide),
            w(300, 4, Shape::Narrow),
        ]
    } else {
        vec![Workload {
            push_kib: args.batch_kib,
            clients: args.clients.max(1),
            shape: args.shape,
            streams: streams_for(args.shape, args.clients.max(1), args.streams),
        }]
    };
    if let Some(port) = args.push_to {
        let req = build_requests(&args, &workloads[0], line_bytes)?;
        println!(
            "workload: {} requests, {} lines, {}",
            req.bodies.iter().map(Vec::len).sum::<usize>(),
            req.lines,
            workloads[0].name()
        );
        push_all(&[port], &req.warm, None)?;
        let start = Instant::now();
        push_all(&[port], &req.bodies, None)?;
        println!(
            "pushed {} lines in {:.2}s",
            req.lines,
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    // Before the build below, which may replace this very binary with one
    // built along with the whole workspace (the same code).
    let exe = std::env::current_exe()?;
    let store_bin = args
        .store_bin
        .clone()
        .unwrap_or_else(|| larch_testkit::binary("larch-store"));
    if args.write_nodes > 0 {
        anyhow::ensure!(
            args.against.is_none(),
            "--against compares single stores; it does not apply to --write-nodes"
        );
        let req = build_requests(&args, &workloads[0], line_bytes)?;
        return cluster_runs(&args, &store_bin, &req);
    }
    let mut summaries = Vec::new();
    for w in &workloads {
        let req = build_requests(&args, w, line_bytes)?;
        summaries.extend(run_workload(&args, &exe, &store_bin, w, &req)?);
    }
    println!();
    println!(
        "| workload | levels | store MB/s per core | store M lines/s per core | sink MB/s per core | sink M lines/s per core | store MB/s wall | runs (M lines/s per core) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for s in &summaries {
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.0} | {:.2} | {:.0} | {} |",
            s.name,
            if s.levels { "on" } else { "off" },
            s.store_mb_core / 1e6,
            s.store_lines_core / 1e6,
            s.sink_mb_core / 1e6,
            s.sink_lines_core / 1e6,
            s.store_wall / 1e6,
            s.runs
                .iter()
                .map(|r| format!("{:.3}", r / 1e6))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Streams of a workload: `--streams` (mixed, narrow) or 256 per client
/// (wide).
fn streams_for(shape: Shape, clients: usize, streams: usize) -> usize {
    match shape {
        Shape::Wide => 256 * clients,
        Shape::Mixed | Shape::Narrow => streams.max(clients),
    }
}

/// `MIN-MAX` in bytes.
fn parse_range(text: &str) -> anyhow::Result<(usize, usize)> {
    let (lo, hi) = text
        .split_once('-')
        .with_context(|| format!("--line-bytes {text}: expected MIN-MAX"))?;
    Ok((lo.trim().parse()?, hi.trim().parse()?))
}

/// Runs one workload `--runs` times (sink, then the store with each
/// `--levels` setting) and prints every run; returns the medians.
fn run_workload(
    args: &Args,
    exe: &std::path::Path,
    store_bin: &std::path::Path,
    w: &Workload,
    req: &Requests,
) -> anyhow::Result<Vec<Summary>> {
    let (raw_bytes, lines) = (req.raw, req.lines);
    let requests: usize = req.bodies.iter().map(Vec::len).sum();
    println!(
        "workload {}: {requests} requests, {lines} lines ({:.0} B/line), {:.1} MiB raw, {:.0} lines/request{}",
        w.name(),
        raw_bytes as f64 / lines.max(1) as f64,
        raw_bytes as f64 / 1048576.0,
        lines as f64 / requests.max(1) as f64,
        if args.warmup_mib > 0 {
            format!(
                "; measured after a warm-up of {} MiB ({} lines{})",
                args.warmup_mib,
                req.warm_lines,
                args.warmup_streams
                    .map(|n| format!(" on {n} streams of its own"))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
    let settings: &[bool] = match args.levels {
        Levels::On => &[true],
        Levels::Off => &[false],
        Levels::Both => &[true, false],
    };
    // What each run measures: every `--levels` setting with the store, and
    // with the `--against` store after it.
    let mut variants: Vec<(bool, &std::path::Path, &str)> = Vec::new();
    for &levels in settings {
        variants.push((levels, store_bin, ""));
        if let Some(base) = &args.against {
            variants.push((levels, base.as_path(), ", against"));
        }
    }
    // Per variant: (wall, per core, kernel share, chunk bytes) of every run.
    let mut store_runs: Vec<Vec<(f64, f64, f64, u64)>> = vec![Vec::new(); variants.len()];
    let mut sink_runs = Vec::new();
    for run in 0..args.runs {
        let port = free_port();
        let sink = ProcessBuilder::new("sink", exe)
            .args(["sink", "--port", &port.to_string()])
            .ready(port, "/ready");
        sink_runs.push(measure(vec![sink], &[port], req, 0, false)?);

        // With `--against`, odd runs take the variants the other way round,
        // so neither store always goes first.
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if args.against.is_some() && run % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let (levels, bin, label) = variants[k];
            let dir = tempfile::tempdir()?;
            let port = free_port();
            let store = ProcessBuilder::new("larch-store", bin)
                .arg("--http-addr")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--grpc-addr")
                .arg(format!("127.0.0.1:{}", free_port()))
                .arg("--data-dir")
                .arg(dir.path())
                .arg("--config")
                .arg(write_config(dir.path(), levels, args)?)
                .env("LARCH_LOG", "warn")
                .ready(port, "/ready");
            let r = measure(vec![store], &[port], req, 0, true)
                .with_context(|| format!("running {}", bin.display()))?;
            // The chunks hold the warm-up's lines too.
            let stored = dir_size(&dir.path().join("chunks"));
            let (all_raw, all_lines) = (raw_bytes + req.warm_raw, lines + req.warm_lines);
            let per_line = lines as f64 / raw_bytes.max(1) as f64;
            println!(
                "run {run}, levels {}{label}: store {:.0} MB/s wall, {:.0} MB/s and {:.3} M lines/s per core ({:.2} CPU-s: {:.2} user, {:.2} kernel); sink {:.0} MB/s per core; chunks {:.1} MiB ({:.1}x, {:.2} B/entry)",
                if levels { "on" } else { "off" },
                r.0 / 1e6,
                r.1 / 1e6,
                r.1 * per_line / 1e6,
                r.2,
                r.2 * (1.0 - r.3),
                r.2 * r.3,
                sink_runs[run].1 / 1e6,
                stored as f64 / 1048576.0,
                all_raw as f64 / stored.max(1) as f64,
                stored as f64 / all_lines.max(1) as f64
            );
            store_runs[k].push((r.0, r.1, r.3, stored));
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per_line = lines as f64 / raw_bytes.max(1) as f64;
    let sink_core = med(&mut sink_runs.iter().map(|r| r.1).collect());
    let mut out = Vec::new();
    for (k, &(levels, _, label)) in variants.iter().enumerate() {
        let runs = &store_runs[k];
        let store_wall = med(&mut runs.iter().map(|r| r.0).collect());
        let store_core = med(&mut runs.iter().map(|r| r.1).collect());
        let stored = med(&mut runs.iter().map(|r| r.3 as f64).collect());
        let kernel = med(&mut runs.iter().map(|r| r.2).collect());
        let user_core = med(&mut runs.iter().map(|r| r.1 / (1.0 - r.2).max(0.01)).collect());
        println!(
            "median of {}, levels {}{label}: store {:.0} MB/s wall, {:.0} MB/s and {:.3} M lines/s per core ({:.0}% in the kernel; {:.0} MB/s per core of user time); baseline sink {:.0} MB/s per core; store/sink {:.2}; chunks {:.2} B/entry",
            args.runs,
            if levels { "on" } else { "off" },
            store_wall / 1e6,
            store_core / 1e6,
            store_core * per_line / 1e6,
            kernel * 100.0,
            user_core / 1e6,
            sink_core / 1e6,
            store_core / sink_core,
            stored / (lines + req.warm_lines).max(1) as f64
        );
        if !label.is_empty() {
            // The `--against` store: its ratio to the store measured just
            // before it in `variants`, run by run.
            let ratios: Vec<f64> = store_runs[k - 1]
                .iter()
                .zip(runs)
                .map(|(a, b)| a.1 / b.1)
                .collect();
            println!(
                "ratio per core, levels {}, store-bin / against: median {:.3}; runs {}",
                if levels { "on" } else { "off" },
                med(&mut ratios.clone()),
                ratios
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            continue;
        }
        out.push(Summary {
            name: w.name(),
            levels,
            store_mb_core: store_core,
            store_lines_core: store_core * per_line,
            store_wall,
            sink_mb_core: sink_core,
            sink_lines_core: sink_core * per_line,
            runs: runs.iter().map(|r| r.1 * per_line).collect(),
        });
    }
    Ok(out)
}

/// Limits generous enough that the benchmark measures throughput, not
/// rate limiting; SIGTERM flushes everything (not the default), so the run
/// includes writing every chunk. `levels` is `discover_log_levels`.
fn write_config(
    dir: &std::path::Path,
    levels: bool,
    args: &Args,
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("bench.yaml");
    // With idle warm-up streams the exit is not measured, and flushing
    // each of them would make it long: what is open stays in the WAL.
    let mut ingester = format!("  flush_on_shutdown: {}\n", args.warmup_streams.is_none());
    if let Some(codec) = &args.chunk_encoding {
        ingester.push_str(&format!("  chunk_encoding: {codec}\n"));
    }
    if let Some(level) = args.chunk_lz4_level {
        ingester.push_str(&format!("  chunk_lz4_level: {level}\n"));
    }
    std::fs::write(
        &path,
        format!(
            "limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_streams_per_tenant: 0\n  discover_log_levels: {levels}\ningester:\n{ingester}shutdown_timeout: 1h\n"
        ),
    )?;
    Ok(path)
}

/// Starts the servers (panics if one does not get ready), pushes the
/// warm-up bodies and then the measured ones (client `i` to
/// `ports[i % n]`), stops them; returns (bytes/s wall, bytes/s per
/// CPU-second of all the servers, CPU-seconds, the share of them spent in
/// the kernel), counted from the end of the warm-up (from before the
/// start without one) to the servers' exit. With `members` above 0, waits
/// until every server sees that many cluster members before pushing. With
/// `check`, checks before stopping it that the (one) server holds exactly
/// the lines pushed (`/loki/api/v1/index/stats`), so a figure never comes
/// from lines lost or doubled.
fn measure(
    servers: Vec<ProcessBuilder>,
    ports: &[u16],
    req: &Requests,
    members: usize,
    check: bool,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let mut cpu0 = children_cpu_split();
    let servers: Vec<_> = servers.into_iter().map(ProcessBuilder::start).collect();
    if members > 0 {
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        for &port in ports {
            while larch_testkit::metrics::scrape(port).get("larch_cluster_members")
                != Some(&(members as f64))
            {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the write nodes never saw each other"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    // The servers' CPU time so far, from `/proc`.
    let used = |servers: &[larch_testkit::Process]| {
        servers.iter().fold((0.0, 0.0), |(u, s), server| {
            let (user, system) = larch_testkit::procfs::cpu_split(server.pid());
            (u + user, s + system)
        })
    };
    let mut warmed = (0.0, 0.0);
    if req.warm_lines > 0 {
        push_all(ports, &req.warm, None)?;
        // What the servers used up to now is not counted: it is added to
        // the base the children's totals are taken from at the end.
        warmed = used(&servers);
        cpu0 = (cpu0.0 + warmed.0, cpu0.1 + warmed.1);
    }
    let start = Instant::now();
    push_all(ports, &req.bodies, None)?;
    if check {
        let lines = req.warm_lines + req.lines;
        let held = held_entries(ports[0], req.first_ts)?;
        anyhow::ensure!(
            held == lines,
            "the store holds {held} entries after {lines} lines were pushed and acknowledged"
        );
    }
    // With warm-up streams of their own the clock stops here: the exit's
    // flush would be that of every idle stream, not of what was measured.
    let before_exit = (req.idle_streams > 0).then(|| (start.elapsed(), used(&servers)));
    for server in &servers {
        let status = server.terminate();
        anyhow::ensure!(status.success(), "server exited with {status}");
    }
    let (wall, (user, system)) = match before_exit {
        Some((wall, cpu1)) => (wall.as_secs_f64(), (cpu1.0 - warmed.0, cpu1.1 - warmed.1)),
        None => {
            let cpu1 = children_cpu_split();
            (
                start.elapsed().as_secs_f64(),
                (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1),
            )
        }
    };
    let cpu = user + system;
    let raw = req.raw as f64;
    Ok((raw / wall, raw / cpu.max(0.01), cpu, system / cpu.max(0.01)))
}

/// Entries the store on `port` holds from `first_ts` on (every stream of
/// the workload and of its warm-up has `namespace="prod"` or
/// `namespace="warmup"`).
fn held_entries(port: u16, first_ts: i64) -> anyhow::Result<u64> {
    let path = format!(
        "/loki/api/v1/index/stats?query=%7Bnamespace%3D~%22prod%7Cwarmup%22%7D&start={}&end={}",
        first_ts - 1_000_000_000,
        now_ns() + 3_600_000_000_000
    );
    let r = larch_testkit::http::get(port, &path, &[])?;
    anyhow::ensure!(
        r.status == 200,
        "index/stats answered {}: {}",
        r.status,
        r.text()
    );
    r.json()["entries"]
        .as_u64()
        .with_context(|| format!("index/stats answered {}", r.text()))
}

/// `--write-nodes N`: each run pushes the workload through one write node
/// with `cluster.replication_factor: 1` (the baseline) and then through
/// N write nodes with `--rf`, every node flushing everything on SIGTERM.
fn cluster_runs(args: &Args, store_bin: &std::path::Path, req: &Requests) -> anyhow::Result<()> {
    // The chunks hold the warm-up's lines too.
    let lines = req.lines + req.warm_lines;
    let mut one = Vec::new();
    let mut many = Vec::new();
    for run in 0..args.runs {
        for (nodes, rf) in [(1, 1), (args.write_nodes, args.rf)] {
            let bucket = tempfile::tempdir()?;
            let grpc: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
            let http: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
            let members: Vec<String> = grpc.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
            let mut dirs = Vec::new();
            let mut servers = Vec::new();
            for i in 0..nodes {
                let dir = tempfile::tempdir()?;
                let config = dir.path().join("bench.yaml");
                // No reader runs here, so a leaving node need not keep
                // answering queries (`cluster.leave_linger`): the wall
                // clock stops when the last node has flushed, not after
                // a linger that only readers would need.
                std::fs::write(
                    &config,
                    format!(
                        "target: write\nstorage:\n  filesystem:\n    dir: {}\nlimits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_streams_per_tenant: 0\ningester:\n  flush_on_shutdown: true\nshutdown_timeout: 1h\ncluster:\n  members: [{}]\n  self: \"127.0.0.1:{}\"\n  replication_factor: {rf}\n  leave_linger: 0s\n",
                        bucket.path().display(),
                        members.join(", "),
                        grpc[i]
                    ),
                )?;
                servers.push(
                    ProcessBuilder::new("larch-store", store_bin)
                        .arg("--http-addr")
                        .arg(format!("127.0.0.1:{}", http[i]))
                        .arg("--grpc-addr")
                        .arg(format!("127.0.0.1:{}", grpc[i]))
                        .arg("--data-dir")
                        .arg(dir.path())
                        .arg("--config")
                        .arg(&config)
                        .env("LARCH_LOG", "warn")
                        .ready(http[i], "/ready"),
                );
                dirs.push(dir);
            }
            let r = measure(servers, &http, req, nodes, false)
                .with_context(|| format!("running {}", store_bin.display()))?;
            let stored = dir_size(&bucket.path().join("chunks"));
            println!(
                "run {run}, {nodes} write node(s), RF={rf}: {:.0} MB/s wall, {:.0} MB/s per core ({:.2} CPU-s); chunks {:.1} MiB ({:.2} B/entry)",
                r.0 / 1e6,
                r.1 / 1e6,
                r.2,
                stored as f64 / 1048576.0,
                stored as f64 / lines.max(1) as f64
            );
            if nodes == 1 {
                one.push(r);
            } else {
                many.push(r);
            }
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let one_core = med(&mut one.iter().map(|r| r.1).collect());
    let many_core = med(&mut many.iter().map(|r| r.1).collect());
    println!(
        "median of {}: 1 node {:.0} MB/s wall, {:.0} MB/s per core; {} nodes RF={} {:.0} MB/s wall, {:.0} MB/s per core; CPU per byte {:.2}x",
        args.runs,
        med(&mut one.iter().map(|r| r.0).collect()) / 1e6,
        one_core / 1e6,
        args.write_nodes,
        args.rf,
        med(&mut many.iter().map(|r| r.0).collect()) / 1e6,
        many_core / 1e6,
        one_core / many_core.max(1.0)
    );
    Ok(())
}

/// The workload: for each client, its requests in order. Each client owns
/// a disjoint set of streams (as each node's agent owns its pods), so a
/// stream's entries arrive in order. `line_bytes` keeps only the sample
/// lines of that length (inclusive).
fn build_requests(
    args: &Args,
    w: &Workload,
    line_bytes: Option<(usize, usize)>,
) -> anyhow::Result<Requests> {
    let Some(streams) = args.warmup_streams else {
        return generate(w, line_bytes, args.mib, args.warmup_mib, "prod", 1);
    };
    // The warm-up on streams of its own, an hour older, then the measured
    // pushes without one.
    let idle = Workload { streams, ..*w };
    let warm = generate(&idle, line_bytes, args.warmup_mib, 0, "warmup", 2)?;
    let measured = generate(w, line_bytes, args.mib, 0, "prod", 1)?;
    Ok(Requests {
        warm: warm.bodies,
        warm_raw: warm.raw,
        warm_lines: warm.lines,
        idle_streams: streams,
        first_ts: warm.first_ts,
        ..measured
    })
}

/// `mib` MiB of the workload `w` in namespace `namespace`, from
/// `hours_ago` hours ago on, the first `warmup_mib` of them (when above 0)
/// as the warm-up, on the same streams.
fn generate(
    w: &Workload,
    line_bytes: Option<(usize, usize)>,
    mib: usize,
    warmup_mib: usize,
    namespace: &str,
    hours_ago: i64,
) -> anyhow::Result<Requests> {
    let dir = loghub_dir();
    let mut samples = load_samples(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if let Some((lo, hi)) = line_bytes {
        for (_, lines) in &mut samples {
            lines.retain(|l| (lo..=hi).contains(&l.len()));
        }
        samples.retain(|(_, lines)| !lines.is_empty());
    }
    anyhow::ensure!(!samples.is_empty(), "no *.log samples in {}", dir.display());
    let names: Vec<String> = samples.iter().map(|(n, _)| n.clone()).collect();
    let mut replay = Replay::new(samples);
    let warm_target = (warmup_mib as u64) << 20;
    let target = ((mib + warmup_mib) as u64) << 20;
    let batch = (w.push_kib as u64) << 10;
    let first_ts = now_ns() - hours_ago * 3_600_000_000_000;
    let mut ts = first_ts;
    let clients = w.clients.max(1);
    let streams = w.streams.max(clients);
    let mut bodies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients];
    let (mut raw, mut lines) = (0u64, 0u64);
    // Per client: pending entries of every stream (only its own are used).
    let mut pending: Vec<Vec<Vec<logproto::Entry>>> = vec![vec![Vec::new(); streams]; clients];
    // Pending raw bytes per client (per stream when narrow).
    let mut pending_bytes = vec![0u64; clients];
    let mut stream_bytes = vec![0u64; streams];
    let labels: Vec<String> = (0..streams)
        .map(|s| {
            let app = &names[s % names.len()];
            format!(r#"{{namespace="{namespace}", app="{app}", pod="{app}-{s}", container="main", node_name="node-{}"}}"#, s % 7)
        })
        .collect();
    let flush = |pending: &mut [Vec<logproto::Entry>], only: Option<usize>| {
        let req = logproto::PushRequest {
            streams: pending
                .iter_mut()
                .enumerate()
                .filter(|(i, e)| !e.is_empty() && only.is_none_or(|o| o == *i))
                .map(|(i, e)| logproto::Stream {
                    labels: labels[i].clone(),
                    entries: std::mem::take(e),
                    hash: 0,
                })
                .collect(),
            format: String::new(),
        };
        let raw = req.encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw)
    };
    let mut counter = 0usize;
    // The warm-up's bodies, raw bytes and lines, once it is complete.
    let mut warm: Option<(PerClient, u64, u64)> = None;
    while raw < target {
        if warm.is_none() && warm_target > 0 && raw >= warm_target {
            // Every pending line goes into the warm-up, so the measured
            // pushes start with the lines that follow.
            for c in 0..clients {
                for s in 0..streams {
                    if !pending[c][s].is_empty() {
                        let only = (w.shape == Shape::Narrow).then_some(s);
                        bodies[c].push(flush(&mut pending[c], only)?);
                    }
                }
            }
            pending_bytes.fill(0);
            stream_bytes.fill(0);
            let taken = std::mem::replace(&mut bodies, vec![Vec::new(); clients]);
            warm = Some((taken, raw, lines));
        }
        let Some((src, line)) = replay.next() else {
            break;
        };
        ts += 1_000;
        counter += 1;
        // Streams of one source are that app's pods.
        let per_src = (streams / names.len()).max(1);
        let stream = (src + names.len() * (counter % per_src)) % streams;
        let client = stream % clients;
        let len = line.len() as u64;
        raw += len;
        lines += 1;
        pending[client][stream].push(larch_testkit::push::entry(ts, line));
        if w.shape == Shape::Narrow {
            stream_bytes[stream] += len;
            if stream_bytes[stream] >= batch {
                bodies[client].push(flush(&mut pending[client], Some(stream))?);
                stream_bytes[stream] = 0;
            }
        } else {
            pending_bytes[client] += len;
            if pending_bytes[client] >= batch {
                bodies[client].push(flush(&mut pending[client], None)?);
                pending_bytes[client] = 0;
            }
        }
    }
    for c in 0..clients {
        if w.shape == Shape::Narrow {
            for s in 0..streams {
                if !pending[c][s].is_empty() {
                    bodies[c].push(flush(&mut pending[c], Some(s))?);
                }
            }
        } else if pending_bytes[c] > 0 {
            bodies[c].push(flush(&mut pending[c], None)?);
        }
    }
    let (warm, warm_raw, warm_lines) = warm.unwrap_or_else(|| (vec![Vec::new(); clients], 0, 0));
    Ok(Requests {
        warm: Arc::new(warm),
        warm_raw,
        warm_lines,
        idle_streams: 0,
        bodies: Arc::new(bodies),
        raw: raw - warm_raw,
        lines: lines - warm_lines,
        first_ts,
    })
}

/// The baseline: decode and acknowledge, nothing else.
fn sink(port: u16) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            let (conn, _) = tokio::select! {
                c = listener.accept() => c?,
                _ = term.recv() => return Ok(()),
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let ready = req.uri().path() == "/ready";
                    let body = req.into_body().collect().await?.to_bytes();
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        match snap::raw::Decoder::new().decompress_vec(&body) {
                            Ok(raw) => match logproto::PushRequest::decode(raw.as_slice()) {
                                Ok(p) if !p.streams.is_empty() => StatusCode::NO_CONTENT,
                                _ => StatusCode::BAD_REQUEST,
                            },
                            Err(_) => StatusCode::BAD_REQUEST,
                        }
                    };
                    let mut resp = Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                    *resp.status_mut() = status;
                    Ok::<_, hyper::Error>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
                    .await;
            });
        }
    })
}
