//! Several write nodes sharing streams (`cluster:`), as real processes on
//! 127.0.0.1 over one bucket (a real S3-compatible server for the first
//! test, a directory for the others): replication factor 3 with a read
//! and a backend node, a kill -9 under load, a node joining and one
//! leaving, a frozen owner, the replicas' storage cost, mTLS with tokens between nodes,
//! `/ingester/shutdown`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larch_testkit::http::{percent, request};
use larch_testkit::push::protobuf_lines;
use larch_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use larch_testkit::{StoreProcess, free_port, now_ns};

const SEC: i64 = 1_000_000_000;

/// A bucket directory and the gRPC ports of the write nodes.
struct Topology {
    bucket: tempfile::TempDir,
    grpc: Vec<u16>,
    rf: usize,
    deletion_delay: &'static str,
    /// A real S3-compatible server instead of the directory.
    s3: Option<S3Server>,
    /// `compactor.retention_enabled` (the delete API needs it).
    retention: bool,
    /// More `ingester:` keys, each line indented by two spaces.
    ingester: &'static str,
    /// `read.index_refresh_period` (read nodes and write nodes' query
    /// sides list the bucket that often).
    index_refresh: &'static str,
}

impl Topology {
    fn new(writers: usize, rf: usize) -> Topology {
        Topology {
            bucket: tempfile::tempdir().unwrap(),
            grpc: (0..writers).map(|_| free_port()).collect(),
            rf,
            deletion_delay: "1h",
            s3: None,
            retention: false,
            ingester: "",
            index_refresh: "100ms",
        }
    }

    /// The same over a real S3-compatible server (`s3s-fs`).
    fn s3(writers: usize, rf: usize) -> Topology {
        Topology {
            s3: Some(S3Server::start("larch")),
            ..Topology::new(writers, rf)
        }
    }

    fn storage(&self) -> String {
        match &self.s3 {
            Some(s3) => s3.storage_yaml("larch"),
            None => format!(
                "storage:\n  backend: filesystem\n  filesystem:\n    dir: {}\n",
                self.bucket.path().display()
            ),
        }
    }

    /// Where the bucket's objects are on disk: the S3 server's directory
    /// for the bucket, or the bucket directory itself.
    fn bucket_root(&self) -> std::path::PathBuf {
        match &self.s3 {
            Some(s3) => s3.root.join("larch"),
            None => self.bucket.path().to_path_buf(),
        }
    }

    fn members(&self) -> String {
        let m: Vec<String> = self
            .grpc
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", m.join(", "))
    }

    fn config(&self, target: &str, me: Option<u16>, extra: &str) -> String {
        let me = me.map_or(String::new(), |p| format!("  self: \"127.0.0.1:{p}\"\n"));
        format!(
            "target: {target}\n{}\
             ingester:\n  flush_check_period: 100ms\n  chunk_idle_period: 1h\n{}\
             read:\n  index_refresh_period: {}\n  write_node_timeout: 5s\n\
             compactor:\n  interval: 1h\n  deletion_delay: {}\n  retention_enabled: {}\n\
             shutdown_timeout: 10s\n\
             cluster:\n  members: {}\n{me}  replication_factor: {}\n  refresh_period: 200ms\n  forward_timeout: 3s\n{extra}",
            self.storage(),
            self.ingester,
            self.index_refresh,
            self.deletion_delay,
            self.retention,
            self.members(),
            self.rf,
        )
    }

    fn writer(&self, i: usize) -> StoreProcess {
        StoreProcess::builder()
            .grpc_port(self.grpc[i])
            .http_port(free_port())
            .config(self.config("write", Some(self.grpc[i]), ""))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .start()
    }

    /// Waits until every one of `nodes` sees `n` members.
    fn settled(&self, nodes: &[&StoreProcess], n: usize) {
        for p in nodes {
            wait_for_metric(p, "larch_cluster_members", |v| v == n as f64);
        }
    }

    fn node(&self, target: &str) -> StoreProcess {
        StoreProcess::builder()
            .config(self.config(target, None, ""))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .start()
    }
}

/// One push of `lines` to `labels`; the status and text.
fn push_to(p: u16, labels: &str, t0: i64, lines: &[String]) -> Result<(), String> {
    let body = protobuf_lines(labels, t0, lines);
    match request(
        p,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    ) {
        Ok(r) if r.status == 204 => Ok(()),
        Ok(r) => Err(format!("{} {}", r.status, r.text())),
        Err(e) => Err(e.to_string()),
    }
}

/// Every line `selector` returns over `[start, end)` on `port`, with how
/// often each came back.
fn counts(
    port: u16,
    selector: &str,
    start: i64,
    end: i64,
) -> Result<BTreeMap<String, usize>, String> {
    let q = percent(selector);
    let r = request(
        port,
        "GET",
        &format!(
            "/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000&direction=forward"
        ),
        &[],
        b"",
    )
    .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("{} {}", r.status, r.text()));
    }
    let v = r.json();
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            *out.entry(e[1].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// Waits until `port` returns exactly `want`, each line once; panics
/// with the last difference.
fn assert_each_once(port: u16, what: &str, selector: &str, want: &[String], start: i64, end: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted: std::collections::BTreeSet<&String> = want.iter().collect();
    loop {
        let got = counts(port, selector, start, end);
        let problem = match &got {
            Err(e) => Some(e.clone()),
            Ok(c) => {
                let doubled: Vec<_> = c.iter().filter(|(_, n)| **n != 1).take(3).collect();
                let missing: Vec<_> = want
                    .iter()
                    .filter(|l| !c.contains_key(*l))
                    .take(3)
                    .collect();
                let unexpected: Vec<_> = c.keys().filter(|k| !wanted.contains(k)).take(3).collect();
                if !doubled.is_empty() || !missing.is_empty() || !unexpected.is_empty() {
                    Some(format!(
                        "{} lines, {} wanted; doubled {doubled:?}; missing {missing:?}; unexpected {unexpected:?}",
                        c.len(),
                        want.len()
                    ))
                } else {
                    None
                }
            }
        };
        match problem {
            None => return,
            Some(p) if Instant::now() > deadline => panic!("{what}: {p}"),
            Some(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn flush(p: &StoreProcess) {
    let r = request(p.http, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// Waits until the metric (refreshed by the store every few hundred
/// milliseconds) satisfies `ok`; returns its value.
fn wait_for_metric(p: &StoreProcess, prefix: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric(p, prefix);
        if ok(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{prefix} is {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(p: &StoreProcess, prefix: &str) -> f64 {
    larch_testkit::metrics::scrape(p.http)
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
        .sum()
}

/// Three write nodes with replication factor 3, a read node and a
/// backend over a real S3-compatible server: pushes through any write node; every line comes back exactly
/// once from the read node and from each write node, before and after the
/// flush to the bucket and the compaction.
#[test]
fn three_writers_rf3_every_line_once() {
    let topo = Topology::s3(3, 3);
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    let backend = topo.node("backend");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 300 * SEC;
    let mut want = Vec::new();
    for s in 0..24 {
        let labels = format!(r#"{{app="rep", stream="s{s}"}}"#);
        let lines: Vec<String> = (0..20).map(|i| format!("stream {s} line {i}")).collect();
        // Each stream through another write node.
        let w = &writers[s % 3];
        push_to(w.http, &labels, t0 + s as i64 * SEC, &lines).unwrap();
        want.extend(lines);
    }
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="rep"}"#;
    // With RF=3 on three nodes every node holds every stream.
    for w in &writers {
        wait_for_metric(w, "larch_ingester_active_streams", |v| v == 24.0);
    }
    assert_each_once(reader.http, "read node", sel, &want, start, end);
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(w.http, &format!("write node {i}"), sel, &want, start, end);
    }
    // Three copies of every chunk in the bucket, from three writers: still
    // once each, and once more after the backend merged the segments.
    for w in &writers {
        flush(w);
    }
    flush(&reader);
    assert_each_once(
        reader.http,
        "read node after the flush",
        sel,
        &want,
        start,
        end,
    );
    flush(&backend);
    flush(&reader);
    assert_each_once(
        reader.http,
        "read node after compaction",
        sel,
        &want,
        start,
        end,
    );
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(
            w.http,
            &format!("write node {i} after the flush"),
            sel,
            &want,
            start,
            end,
        );
    }
}

/// A delete request made on one write node hides its lines on every node
/// that answers queries: the read node and each write node (write nodes
/// read the requests from the bucket too, refreshed every
/// `read.index_refresh_period`), before and after the flush to the bucket.
#[test]
fn deleted_lines_are_hidden_whichever_node_answers() {
    let mut topo = Topology::new(3, 3);
    topo.retention = true;
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 120 * SEC;
    let mut all = Vec::new();
    for s in 0..6 {
        let labels = format!(r#"{{app="del", stream="s{s}"}}"#);
        let lines: Vec<String> = (0..10)
            .flat_map(|i| [format!("keep {s} {i}"), format!("secret {s} {i}")])
            .collect();
        push_to(writers[s % 3].http, &labels, t0 + s as i64 * SEC, &lines).unwrap();
        all.extend(lines);
    }
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="del"}"#;
    let nodes: Vec<(String, u16)> = std::iter::once(("read node".to_string(), reader.http))
        .chain(
            writers
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("write node {i}"), w.http)),
        )
        .collect();
    for (what, port) in &nodes {
        assert_each_once(*port, what, sel, &all, start, end);
    }
    // Made on write node 1; the others see it at their next refresh.
    let r = request(
        writers[1].http,
        "POST",
        &format!(
            "/loki/api/v1/delete?query={}&start={}",
            percent(r#"{app="del"} |= "secret""#),
            (t0 - SEC) / SEC
        ),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let kept: Vec<String> = all
        .iter()
        .filter(|l| l.starts_with("keep"))
        .cloned()
        .collect();
    for (what, port) in &nodes {
        assert_each_once(
            *port,
            &format!("{what} after the delete request"),
            sel,
            &kept,
            start,
            end,
        );
    }
    // Flushed to the bucket (three writers' chunks): still hidden.
    for w in &writers {
        flush(w);
    }
    flush(&reader);
    for (what, port) in &nodes {
        assert_each_once(
            *port,
            &format!("{what} after the flush"),
            sel,
            &kept,
            start,
            end,
        );
    }
}

/// What `index/stats` (`streams, chunks, bytes, entries`) and
/// `index/volume` (`(labels, bytes)` rows) answer.
type Figures = ((u64, u64, u64, u64), Vec<(String, String)>);

/// `index/stats` and `index/volume` of `sel` over `[start, end)` on
/// `port`.
fn stats_and_volume(port: u16, sel: &str, start: i64, end: i64) -> Figures {
    let q = percent(sel);
    let r = request(
        port,
        "GET",
        &format!("/loki/api/v1/index/stats?query={q}&start={start}&end={end}"),
        &[],
        b"",
    )
    .unwrap();
    let v = r.ok_json();
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let stats = (n("streams"), n("chunks"), n("bytes"), n("entries"));
    let r = request(
        port,
        "GET",
        &format!("/loki/api/v1/index/volume?query={q}&start={start}&end={end}&limit=1000"),
        &[],
        b"",
    )
    .unwrap();
    let v = r.ok_json();
    let mut rows: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["metric"].to_string(), e["value"][1].to_string()))
        .collect();
    rows.sort();
    (stats, rows)
}

/// The same lines through three write nodes with replication factor
/// `rf` and a read node: the statistics each node (the read node first)
/// answers while the lines are in the writers' memory, then once they are
/// flushed to the bucket.
fn statistics(rf: usize, t0: i64) -> Vec<Figures> {
    let topo = Topology::new(3, rf);
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let mut want = Vec::new();
    for s in 0..9 {
        let labels = format!(r#"{{app="stats", team="t{}", stream="s{s}"}}"#, s % 2);
        let lines: Vec<String> = (0..(20 + s))
            .map(|i| format!("stream {s} line {i} {}", "x".repeat(i)))
            .collect();
        push_to(writers[s % 3].http, &labels, t0 + s as i64 * SEC, &lines).unwrap();
        want.extend(lines);
    }
    let (start, end) = (t0 - SEC, t0 + 60 * SEC);
    let sel = r#"{app="stats"}"#;
    let ports: Vec<u16> = std::iter::once(reader.http)
        .chain(writers.iter().map(|w| w.http))
        .collect();
    for p in &ports {
        assert_each_once(*p, "before the statistics", sel, &want, start, end);
    }
    let mut out: Vec<_> = ports
        .iter()
        .map(|p| stats_and_volume(*p, sel, start, end))
        .collect();
    for w in &writers {
        flush(w);
    }
    flush(&reader);
    out.extend(ports.iter().map(|p| stats_and_volume(*p, sel, start, end)));
    out
}

/// With replication factor 3 every line is in three writers' memory and
/// then in three writers' chunks; `index/stats` and `index/volume` still
/// give the figures of replication factor 1, on the read node and on
/// every write node, before and after the flush.
#[test]
fn stats_and_volume_count_replicas_once() {
    let t0 = now_ns() - 300 * SEC;
    let one = statistics(1, t0);
    let three = statistics(3, t0);
    let lines: u64 = (0..9).map(|s| 20 + s).sum();
    for (i, (a, b)) in one.iter().zip(&three).enumerate() {
        assert_eq!(a.0.3, lines, "RF=1, answer {i}: {a:?}");
        assert_eq!(a.0.0, 9, "RF=1 streams, answer {i}: {a:?}");
        assert_eq!(
            a, b,
            "answer {i} (read node, then each writer; before, then after the flush)"
        );
    }
}

/// A client that pushes batches like an agent: a batch that fails is sent
/// again (to the next write node) until it is acknowledged. Batches go to
/// `streams` streams of `app` in turn; returns every acknowledged line
/// with when it was acknowledged, and the longest a batch was refused.
fn pushing_client(
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    t0: i64,
    app: &'static str,
    streams: usize,
) -> std::thread::JoinHandle<(Vec<(Instant, String)>, Duration)> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut longest_outage = Duration::ZERO;
        let mut n = 0usize;
        let mut node = 0usize;
        while !stop.load(Ordering::Acquire) {
            let s = n % streams;
            let labels = format!(r#"{{app="{app}", stream="s{s}"}}"#);
            let lines: Vec<String> = (0..10).map(|i| format!("batch {n} line {i}")).collect();
            let ts = t0 + n as i64 * 1000;
            let failing_since = Instant::now();
            loop {
                match push_to(ports[node % ports.len()], &labels, ts, &lines) {
                    Ok(()) => break,
                    Err(_) => {
                        node += 1;
                        assert!(
                            failing_since.elapsed() < Duration::from_secs(20),
                            "a batch was refused for 20 s"
                        );
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            longest_outage = longest_outage.max(failing_since.elapsed());
            let at = Instant::now();
            acked.extend(lines.into_iter().map(|l| (at, l)));
            n += 1;
            node += 1;
        }
        (acked, longest_outage)
    })
}

/// kill -9 of a write node during a steady push load: pushes keep being
/// acknowledged by the other two (a quorum), every acknowledged line is
/// returned exactly once, and after the node restarts and replays its WAL
/// nothing is doubled.
#[test]
fn kill9_of_a_write_node_under_load_loses_and_doubles_nothing() {
    let topo = Topology::s3(3, 3);
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 100 * SEC;
    let stop = Arc::new(AtomicBool::new(false));
    let client = pushing_client(
        writers.iter().map(|w| w.http).collect(),
        stop.clone(),
        t0,
        "load",
        8,
    );
    std::thread::sleep(Duration::from_millis(800));
    writers[1].kill9();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    let (acked, outage) = client.join().unwrap();
    let acked: Vec<String> = acked.into_iter().map(|(_, l)| l).collect();
    assert!(acked.len() > 100, "{} lines acknowledged", acked.len());
    assert!(
        outage < Duration::from_secs(10),
        "pushes failed for {outage:?}"
    );
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="load"}"#;
    assert_each_once(
        reader.http,
        "read node, one writer down",
        sel,
        &acked,
        start,
        end,
    );
    writers[1].restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(larch_testkit::http::get(writers[1].http, "/ready", &[]), Ok(r) if r.status == 200)
    {
        assert!(
            Instant::now() < deadline,
            "the restarted node never got ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_each_once(
        reader.http,
        "read node after the restart",
        sel,
        &acked,
        start,
        end,
    );
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(w.http, &format!("write node {i}"), sel, &acked, start, end);
    }
}

/// With replication factor 1, kill -9 of the node owning the most
/// streams during a steady push load: its streams move to their next
/// candidates (the survivors then hold every stream), pushes are refused
/// no longer than the membership refresh, the lines acknowledged after
/// the kill are all returned while the owner is down, and once it has
/// replayed its WAL every acknowledged line comes back exactly once
/// (its old chunks merged with the next candidates' new ones), from the
/// read node and each write node, before and after the flush.
#[test]
fn kill9_of_an_only_owner_under_load_moves_its_streams_and_doubles_nothing() {
    let topo = Topology::s3(3, 1);
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 100 * SEC;
    let streams = 12;
    let stop = Arc::new(AtomicBool::new(false));
    let client = pushing_client(
        writers.iter().map(|w| w.http).collect(),
        stop.clone(),
        t0,
        "solo",
        streams,
    );
    let held = |w: &StoreProcess| metric(w, "larch_ingester_active_streams");
    let deadline = Instant::now() + Duration::from_secs(10);
    while writers.iter().map(held).sum::<f64>() < streams as f64 {
        assert!(Instant::now() < deadline, "not every stream was pushed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let victim = (0..3)
        .max_by(|a, b| held(&writers[*a]).total_cmp(&held(&writers[*b])))
        .unwrap();
    let owned = held(&writers[victim]);
    assert!(owned > 0.0);
    let survivors: Vec<&StoreProcess> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| &writers[i])
        .collect();
    writers[victim].kill9();
    let killed_at = Instant::now();
    // The victim's streams now go to their next candidates.
    let deadline = Instant::now() + Duration::from_secs(10);
    while survivors.iter().map(|w| held(w)).sum::<f64>() < streams as f64 {
        assert!(
            Instant::now() < deadline,
            "the survivors hold {:?} streams",
            survivors.iter().map(|w| held(w)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Release);
    let (acked, outage) = client.join().unwrap();
    let after_kill: Vec<String> = acked
        .iter()
        .filter(|(at, _)| *at > killed_at)
        .map(|(_, l)| l.clone())
        .collect();
    let acked: Vec<String> = acked.into_iter().map(|(_, l)| l).collect();
    eprintln!(
        "node {victim} owned {owned} of {streams} streams; {} lines acknowledged, {} after the kill; longest refusal {outage:?}",
        acked.len(),
        after_kill.len()
    );
    assert!(
        after_kill.len() >= 100,
        "{} lines after the kill",
        after_kill.len()
    );
    assert!(
        outage < Duration::from_secs(10),
        "pushes failed for {outage:?}"
    );
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="solo"}"#;
    // With the only owner down, what it alone held is unavailable; what
    // the next candidates took is there, and nothing is doubled.
    // Once the read node no longer counts the dead owner a member, it
    // answers from the survivors.
    topo.settled(
        &survivors
            .iter()
            .copied()
            .chain([&reader])
            .collect::<Vec<_>>(),
        2,
    );
    let got = counts(reader.http, sel, start, end);
    eprintln!(
        "read node with the owner down: {:?}",
        got.as_ref()
            .map(|c| format!("{} of {} lines", c.len(), acked.len()))
    );
    {
        let c = got
            .as_ref()
            .expect("the read node answers with the owner down");
        let doubled: Vec<_> = c.iter().filter(|(_, n)| **n != 1).take(3).collect();
        assert!(
            doubled.is_empty(),
            "doubled with the owner down: {doubled:?}"
        );
        let missing: Vec<_> = after_kill
            .iter()
            .filter(|l| !c.contains_key(*l))
            .take(3)
            .collect();
        assert!(
            missing.is_empty(),
            "lines acknowledged by the next candidates are missing: {missing:?}"
        );
    }
    writers[victim].restart();
    topo.settled(&writers.iter().chain([&reader]).collect::<Vec<_>>(), 3);
    assert_each_once(
        reader.http,
        "read node after the restart",
        sel,
        &acked,
        start,
        end,
    );
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(w.http, &format!("write node {i}"), sel, &acked, start, end);
    }
    // Both sets of chunks in the bucket, merged on reading.
    for w in &writers {
        flush(w);
    }
    flush(&reader);
    assert_each_once(
        reader.http,
        "read node after the flush",
        sel,
        &acked,
        start,
        end,
    );
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(
            w.http,
            &format!("write node {i} after the flush"),
            sel,
            &acked,
            start,
            end,
        );
    }
}

/// A frozen write node (SIGSTOP: its sockets accept, nothing answers)
/// does not hold pushes up: with replication factor 3 each push is
/// acknowledged once two owners have it, well inside
/// `cluster.forward_timeout` (3 s here), and after the node thaws its
/// late copies leave every line there exactly once.
#[test]
fn a_frozen_owner_does_not_hold_pushes_up() {
    let topo = Topology::new(3, 3);
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 100 * SEC;
    let mut acked = Vec::new();
    writers[2].signal("STOP");
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let labels = format!(r#"{{app="frozen", stream="s{}"}}"#, n % 4);
        let lines: Vec<String> = (0..10).map(|i| format!("push {n} line {i}")).collect();
        let started = Instant::now();
        let r = push_to(writers[n % 2].http, &labels, t0 + n as i64 * 1000, &lines);
        slowest = slowest.max(started.elapsed());
        if let Err(e) = r {
            writers[2].signal("CONT");
            panic!("push {n} with one owner frozen: {e}");
        }
        acked.extend(lines);
    }
    writers[2].signal("CONT");
    assert!(
        slowest < Duration::from_millis(1500),
        "the slowest push with one owner frozen took {slowest:?}"
    );
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="frozen"}"#;
    assert_each_once(reader.http, "read node", sel, &acked, start, end);
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(w.http, &format!("write node {i}"), sel, &acked, start, end);
    }
}

/// The fingerprint of every stream `sel` names over `[start, end)`, from
/// its labels as `port` lists them (with the `service_name` the store
/// adds): what the store hashes to choose a stream's owners.
fn stream_fingerprints(port: u16, sel: &str, start: i64, end: i64) -> Vec<u64> {
    let r = request(
        port,
        "GET",
        &format!(
            "/loki/api/v1/series?match%5B%5D={}&start={start}&end={end}",
            percent(sel)
        ),
        &[],
        b"",
    )
    .unwrap();
    let v = r.ok_json();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let pairs = m
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()));
            larch_query::LabelSet::from_pairs(pairs).fingerprint()
        })
        .collect()
}

/// The identity owning the stream `fp` of the default tenant among
/// `members` with replication factor 1, by the store's own ring.
fn owner(members: &[String], fp: u64) -> &str {
    &members[larch_store::cluster::ring::owners(members, "fake", fp, 1)[0]]
}

/// Queries `port` for `sel` over and over until `stop`, each answer
/// checked against the lines acknowledged before the query began (none
/// missing, none doubled; lines acknowledged while it ran may or may not
/// be there). Returns when each checked query began and what was wrong
/// with the answers (an error counts as wrong).
fn watching_queries(
    port: u16,
    sel: &'static str,
    start: i64,
    end: i64,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Instant>, Vec<String>)> {
    std::thread::spawn(move || {
        let began = Instant::now();
        let mut checked = Vec::new();
        let mut problems = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let want = acked.lock().unwrap().clone();
            checked.push(Instant::now());
            let at = began.elapsed();
            match counts(port, sel, start, end) {
                Err(e) => problems.push(format!("at {at:?}: {e}")),
                Ok(c) => {
                    let missing = want.iter().filter(|l| !c.contains_key(*l)).count();
                    let doubled: Vec<_> = c.iter().filter(|(_, n)| **n != 1).take(3).collect();
                    if missing > 0 || !doubled.is_empty() {
                        let first = want.iter().find(|l| !c.contains_key(*l));
                        problems.push(format!(
                            "at {at:?}: {missing} of {} acknowledged lines missing (first {first:?}); doubled {doubled:?}",
                            want.len()
                        ));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (checked, problems)
    })
}

/// Replication factor 1 over four configured members, the fourth started
/// late: its arrival moves about a quarter of the streams to it; a SIGTERM
/// on another hands that one's streams over (flushed, then owned by the
/// next candidates). Which streams move is computed with the store's ring
/// from the member identities and checked against what the nodes hold;
/// clients querying the read node all through the join and the leave, and
/// a remaining write node's query API all through the leave, get every
/// line acknowledged before their query exactly once, without an error:
/// the leaver answers queries for what it flushed until the readers'
/// views of the bucket list it (`cluster.leave_linger`), and after it
/// exited its silence is not an error (ARCHITECTURE "Several write
/// nodes", Leaving).
#[test]
fn a_node_joins_and_one_leaves() {
    let topo = Topology::s3(4, 1);
    let mut writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 200 * SEC;
    let streams = 200;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let push_round = |round: usize, writers: &[StoreProcess]| {
        for s in 0..streams {
            let labels = format!(r#"{{app="move", stream="s{s}"}}"#);
            let lines: Vec<String> = (0..3)
                .map(|i| format!("round {round} stream {s} line {i}"))
                .collect();
            let w = &writers[s % writers.len()];
            push_to(
                w.http,
                &labels,
                t0 + round as i64 * 10 * SEC + s as i64 * 1000,
                &lines,
            )
            .unwrap();
            acked.lock().unwrap().extend(lines);
        }
    };
    push_round(0, &writers);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before: Vec<f64> = writers
            .iter()
            .map(|w| metric(w, "larch_ingester_active_streams"))
            .collect();
        if before.iter().sum::<f64>() == streams as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "{before:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (start, end) = (t0 - SEC, now_ns() + 60 * SEC);
    let sel = r#"{app="move"}"#;
    // Who owns what among the first three, all four, and the three left
    // after node 0 leaves.
    let ids: Vec<String> = topo.grpc.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let fps = stream_fingerprints(reader.http, sel, start, end);
    assert_eq!(fps.len(), streams);
    let (first, all, rest) = (&ids[..3], &ids[..], &ids[1..]);
    let joined = fps
        .iter()
        .filter(|fp| owner(first, **fp) != owner(all, **fp))
        .count();
    let left = fps
        .iter()
        .filter(|fp| owner(all, **fp) != owner(rest, **fp))
        .count();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watching_queries(reader.http, sel, start, end, acked.clone(), stop.clone());
    let join_began = Instant::now();
    writers.push(topo.writer(3));
    // Every member sees the newcomer after its next refresh.
    topo.settled(&writers.iter().chain([&reader]).collect::<Vec<_>>(), 4);
    push_round(1, &writers);
    // The newcomer holds exactly the streams the ring moved to it.
    wait_for_metric(&writers[3], "larch_ingester_active_streams", |v| {
        v == joined as f64
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let join_ended = Instant::now();
    let (checked, problems) = watcher.join().unwrap();
    let on_join = checked
        .iter()
        .filter(|at| (join_began..join_ended).contains(*at))
        .count();
    // Node 0 leaves while the read node and write node 1 are queried: it
    // stops taking streams, flushes, answers queries a while longer and
    // exits.
    let stop = Arc::new(AtomicBool::new(false));
    let leave_watchers = [
        ("read node", reader.http),
        ("write node 1", writers[1].http),
    ]
    .map(|(name, port)| {
        (
            name,
            watching_queries(port, sel, start, end, acked.clone(), stop.clone()),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let leave_began = Instant::now();
    let status = writers[0].terminate();
    let exited = Instant::now();
    assert!(status.success(), "{status:?}");
    let others: Vec<StoreProcess> = writers.drain(1..).collect();
    topo.settled(&others.iter().chain([&reader]).collect::<Vec<_>>(), 3);
    push_round(2, &others);
    // The newcomer now also holds the leaver's streams the ring gives it.
    let held = fps
        .iter()
        .filter(|fp| owner(all, **fp) == ids[3] || owner(rest, **fp) == ids[3])
        .count();
    wait_for_metric(&others[2], "larch_ingester_active_streams", |v| {
        v == held as f64
    });
    // A moment past the readers' next membership refresh after the exit.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    let leave_ended = Instant::now();
    eprintln!(
        "{joined} of {streams} streams moved on the join, {left} on the leave; {on_join} answers checked during the join; the leaver exited {:?} after its SIGTERM",
        exited - leave_began
    );
    for p in &problems {
        eprintln!("wrong answer {p}");
    }
    assert!(
        problems.is_empty(),
        "{} of {} answers during the join were wrong: {:?}",
        problems.len(),
        checked.len(),
        &problems[..problems.len().min(5)]
    );
    // Queries take a few hundred milliseconds here (four nodes flushing on
    // two cores): at least one per client while the leaver lingers, three
    // in all, and a few more around its exit.
    let mut lingered = 0;
    for (name, w) in leave_watchers {
        let (checked, problems) = w.join().unwrap();
        let lingering = checked
            .iter()
            .filter(|at| (leave_began..exited).contains(*at))
            .count();
        let on_leave = checked
            .iter()
            .filter(|at| (leave_began..leave_ended).contains(*at))
            .count();
        eprintln!(
            "{name}: {on_leave} answers checked during the leave, {lingering} of them before the leaver exited"
        );
        for p in &problems {
            eprintln!("{name}: wrong answer {p}");
        }
        assert!(
            problems.is_empty(),
            "{name}: {} of {} answers during the leave were wrong: {:?}",
            problems.len(),
            checked.len(),
            &problems[..problems.len().min(5)]
        );
        assert!(
            lingering >= 1 && on_leave >= 4,
            "{name}: only {on_leave} queries during the leave, {lingering} before the exit"
        );
        lingered += lingering;
    }
    assert!(
        lingered >= 3,
        "only {lingered} queries while the leaver lingered"
    );
    for (what, n) in [("join", joined), ("leave", left)] {
        let share = n as f64 / streams as f64;
        assert!(
            (0.1..=0.4).contains(&share),
            "{n} of {streams} streams moved on the {what}"
        );
    }
    assert!(on_join >= 2, "only {on_join} queries during the join");
    let want = acked.lock().unwrap().clone();
    assert_each_once(reader.http, "after the leave", sel, &want, start, end);
    eprintln!(
        "every line back on the read node {:?} after the SIGTERM",
        leave_began.elapsed()
    );
    drop(others);
}

/// A write node's own query API gives the read node's answer after a
/// member with replication factor 1 left: the leaver flushed its streams
/// to the bucket and exited, and its lines are still returned once by
/// the read node and by each remaining write node.
#[test]
fn write_nodes_answer_like_the_read_node_after_an_owner_left() {
    let topo = Topology::s3(3, 1);
    let mut writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 100 * SEC;
    let mut want = Vec::new();
    for s in 0..30 {
        let labels = format!(r#"{{app="left", stream="s{s}"}}"#);
        let lines: Vec<String> = (0..5).map(|i| format!("stream {s} line {i}")).collect();
        push_to(writers[s % 3].http, &labels, t0 + s as i64 * SEC, &lines).unwrap();
        want.extend(lines);
    }
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="left"}"#;
    assert_each_once(reader.http, "read node", sel, &want, start, end);
    let status = writers[0].terminate();
    assert!(status.success(), "{status:?}");
    let others: Vec<StoreProcess> = writers.drain(1..).collect();
    topo.settled(&others.iter().chain([&reader]).collect::<Vec<_>>(), 2);
    assert_each_once(
        reader.http,
        "read node after the leave",
        sel,
        &want,
        start,
        end,
    );
    for (i, w) in others.iter().enumerate() {
        assert_each_once(
            w.http,
            &format!("write node {} after the leave", i + 1),
            sel,
            &want,
            start,
            end,
        );
    }
}

/// A write node's own query API gives the read node's answer after the
/// backend merged the replicas' chunks and deleted the originals
/// (`compactor.deletion_delay: 1s`): every line once from each node.
#[test]
fn write_nodes_answer_like_the_read_node_after_compaction_deleted_replica_chunks() {
    let mut topo = Topology::s3(3, 3);
    topo.deletion_delay = "1s";
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let reader = topo.node("read");
    let backend = topo.node("backend");
    topo.settled(&[&writers[0], &writers[1], &writers[2], &reader], 3);
    let t0 = now_ns() - 100 * SEC;
    let mut want = Vec::new();
    for s in 0..12 {
        let labels = format!(r#"{{app="merged", stream="s{s}"}}"#);
        let lines: Vec<String> = (0..20).map(|i| format!("stream {s} line {i}")).collect();
        push_to(writers[s % 3].http, &labels, t0 + s as i64 * SEC, &lines).unwrap();
        want.extend(lines);
    }
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let sel = r#"{app="merged"}"#;
    for w in &writers {
        flush(w);
    }
    flush(&backend);
    std::thread::sleep(Duration::from_millis(1500));
    // The second run deletes the chunks the first one merged.
    flush(&backend);
    flush(&reader);
    assert_each_once(
        reader.http,
        "read node after compaction",
        sel,
        &want,
        start,
        end,
    );
    for (i, w) in writers.iter().enumerate() {
        assert_each_once(
            w.http,
            &format!("write node {i} after compaction"),
            sel,
            &want,
            start,
            end,
        );
    }
}

/// A write node that comes back under another address (a pod's new IP)
/// with the same identity (`cluster.self`) keeps its streams: ownership is
/// computed from identities, so after its WAL is replayed and the same
/// streams are pushed again every node holds what it held before.
#[test]
fn a_node_back_under_another_address_keeps_its_streams() {
    // Four addresses for three nodes: node 1 starts on the second and
    // comes back on the fourth.
    let topo = Topology::new(4, 1);
    let start = |node: usize, port: usize, data: Option<&std::path::Path>| {
        let mut b = StoreProcess::builder()
            .grpc_port(topo.grpc[port])
            .http_port(free_port())
            .config(topo.config("write", None, &format!("  self: \"node-{node}\"\n")));
        if let Some(d) = data {
            b = b.data_dir(d);
        }
        b.start()
    };
    let mut writers = vec![start(0, 0, None), start(1, 1, None), start(2, 2, None)];
    topo.settled(&writers.iter().collect::<Vec<_>>(), 3);
    let t0 = now_ns() - 100 * SEC;
    let streams = 60;
    let push_round = |round: usize, via: &StoreProcess| {
        for s in 0..streams {
            let labels = format!(r#"{{app="moved", stream="s{s}"}}"#);
            push_to(
                via.http,
                &labels,
                t0 + round as i64 * 10 * SEC + s as i64 * 1000,
                &[format!("round {round} stream {s}")],
            )
            .unwrap();
        }
    };
    let held = |writers: &[StoreProcess]| -> Vec<f64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v: Vec<f64> = writers
                .iter()
                .map(|w| metric(w, "larch_ingester_active_streams"))
                .collect();
            if v.iter().sum::<f64>() == streams as f64 {
                return v;
            }
            assert!(Instant::now() < deadline, "{v:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    push_round(0, &writers[0]);
    let before = held(&writers);
    assert!(before.iter().all(|n| *n > 0.0), "{before:?}");
    writers[1].kill9();
    topo.settled(&[&writers[0], &writers[2]], 2);
    let data = writers[1].data_dir().to_path_buf();
    let back = start(1, 3, Some(&data));
    let gone = std::mem::replace(&mut writers[1], back);
    topo.settled(&writers.iter().collect::<Vec<_>>(), 3);
    push_round(1, &writers[2]);
    // A stream that moved would be held by two nodes now.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(held(&writers), before, "streams moved with the new address");
    drop(gone);
}

/// Bytes of the files under `dir`.
/// How many files are under `dir`.
fn file_count(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => file_count(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A start time for `span` nanoseconds of lines that ends in the past and
/// stays within one UTC day (a chunk spanning midnight is left alone by
/// the compactor's replica merge, on purpose).
fn t0_within_a_day(span: i64) -> i64 {
    const DAY: i64 = 86_400 * SEC;
    loop {
        let now = now_ns();
        let t0 = now - span - 60 * SEC;
        if t0.div_euclid(DAY) == (t0 + span).div_euclid(DAY) {
            return t0;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Streams, lines per stream and lines per push of the storage test.
const COST_STREAMS: usize = 12;
const COST_LINES: usize = 3000;
const COST_BATCH: usize = 100;

/// Line `i` of stream `s` of the storage test, 1 ms apart.
fn cost_line(s: usize, i: usize) -> String {
    format!(
        "level=info stream={s} request_id={:08x} took={}ms path=/api/v1/item/{} user=u{}",
        i * 7919 + s,
        i % 97,
        i % 13,
        (i * 31) % 1009
    )
}

/// The same lines pushed with replication factor `rf` over three write
/// nodes on the S3 server, compacted and the superseded objects deleted:
/// the bucket's chunk and segment bytes, as the S3 server stores them.
/// Small blocks and chunks (16 KiB, 32 KiB compressed) and a flush of a
/// different writer after each sixth of the pushes make every replica of
/// a stream cut several chunks, each writer at other moments.
fn bucket_bytes_after_compaction(rf: usize, t0: i64) -> u64 {
    let mut topo = Topology::s3(3, rf);
    topo.deletion_delay = "1s";
    topo.ingester = "  block_size: 16KiB\n  chunk_target_size: 32KiB\n";
    // Nothing here waits on a fresh view but the last reading.
    topo.index_refresh = "1s";
    let writers: Vec<StoreProcess> = (0..3).map(|i| topo.writer(i)).collect();
    let backend = topo.node("backend");
    topo.settled(&writers.iter().collect::<Vec<_>>(), 3);
    let batches = COST_LINES / COST_BATCH;
    for b in 0..batches {
        for s in 0..COST_STREAMS {
            let labels = format!(r#"{{app="cost", stream="s{s}"}}"#);
            let first = b * COST_BATCH;
            let lines: Vec<String> = (first..first + COST_BATCH)
                .map(|i| cost_line(s, i))
                .collect();
            let ts = t0 + s as i64 * SEC + first as i64 * 1_000_000;
            push_to(writers[(s + b) % 3].http, &labels, ts, &lines).unwrap();
        }
        if (b + 1) % (batches / 6) == 0 {
            flush(&writers[(b + 1) / (batches / 6) % 3]);
        }
    }
    for w in &writers {
        flush(w);
    }
    flush(&backend);
    std::thread::sleep(Duration::from_millis(1500));
    // The second run deletes what the first superseded.
    flush(&backend);
    let reader = topo.node("read");
    let want: Vec<String> = (0..COST_STREAMS)
        .flat_map(|s| (0..COST_LINES).map(move |i| cost_line(s, i)))
        .collect();
    // Writers gone: the reader answers from the compacted bucket alone.
    drop(writers);
    for s in 0..COST_STREAMS {
        let start = t0 + s as i64 * SEC;
        assert_each_once(
            reader.http,
            &format!("RF={rf} after compaction, stream {s}"),
            &format!(r#"{{app="cost", stream="s{s}"}}"#),
            &want[s * COST_LINES..(s + 1) * COST_LINES],
            start,
            start + COST_LINES as i64 * 1_000_000,
        );
    }
    let root = topo.bucket_root();
    let chunks = file_count(&root.join("chunks"));
    eprintln!(
        "RF={rf}: {} bytes of chunks, {} of segments ({chunks} chunk objects)",
        dir_bytes(&root.join("chunks")),
        dir_bytes(&root.join("segments"))
    );
    dir_bytes(&root.join("chunks")) + dir_bytes(&root.join("segments"))
}

/// RF=3 stores three copies of every chunk, cut by each replica at its
/// own moments; once the backend merged the replicas' chunks the bucket
/// holds at most 1.2 times what RF=1 holds.
#[test]
fn rf3_bucket_bytes_after_compaction_within_1_2x_of_rf1() {
    let t0 = t0_within_a_day(COST_STREAMS as i64 * SEC + COST_LINES as i64 * 1_000_000);
    let one = bucket_bytes_after_compaction(1, t0);
    let three = bucket_bytes_after_compaction(3, t0);
    eprintln!(
        "bucket bytes after compaction: RF=1 {one}, RF=3 {three} ({:.3}x)",
        three as f64 / one as f64
    );
    assert!(one > 0);
    assert!(
        (three as f64) <= 1.2 * one as f64,
        "RF=3 {three} bytes against RF=1 {one}"
    );
}

/// Node-to-node gRPC under mTLS and tokens: three write nodes serving TLS
/// with `RequireAndVerifyClientCert` and `auth.tokens_file` forward pushes
/// with their client certificate (`cluster.tls`) and the administrator's
/// token (`cluster.token_file`); every node then answers every line once.
#[test]
fn members_speak_mtls_with_tokens() {
    use larch_testkit::http::Tls;
    use larch_testkit::pki::Pki;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki"));
    let (admin, e1) = larch_testkit::tokens::new_token("nodes", "fake", "admin");
    let (writer, e2) = larch_testkit::tokens::new_token("agent", "fake", "write");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("tokens:\n{e1}{e2}")).unwrap();
    let admin_file = dir.path().join("admin.token");
    std::fs::write(&admin_file, &admin).unwrap();
    let topo = Topology::new(3, 3);
    let client = Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key);
    let writers: Vec<StoreProcess> = (0..3)
        .map(|i| {
            let extra = format!(
                "  token_file: {}\n  tls:\n    tls_ca_path: {}\n    tls_cert_path: {}\n    tls_key_path: {}\n\
                 auth:\n  tokens_file: {}\n\
                 tls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
                admin_file.display(),
                pki.ca.display(),
                pki.client_cert.display(),
                pki.client_key.display(),
                tokens.display(),
                pki.server_cert.display(),
                pki.server_key.display(),
                pki.ca.display(),
            );
            StoreProcess::builder()
                .grpc_port(topo.grpc[i])
                .config(topo.config("write", Some(topo.grpc[i]), &extra))
                .tls(client.clone())
                .start()
        })
        .collect();
    let members = |p: &StoreProcess| -> f64 {
        let r = p
            .request(
                "GET",
                "/metrics",
                &[("Authorization", &format!("Bearer {admin}"))],
                b"",
            )
            .unwrap();
        larch_testkit::metrics::parse(&r.text())
            .get("larch_cluster_members")
            .copied()
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while writers.iter().any(|w| members(w) != 3.0) {
        assert!(
            Instant::now() < deadline,
            "the members never saw each other over TLS"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = now_ns() - 60 * SEC;
    let mut want = Vec::new();
    for s in 0..6 {
        let labels = format!(r#"{{app="tls", stream="s{s}"}}"#);
        let lines: Vec<String> = (0..5).map(|i| format!("tls stream {s} line {i}")).collect();
        let r = writers[s % 3]
            .request(
                "POST",
                "/loki/api/v1/push",
                &[
                    ("Content-Type", "application/x-protobuf"),
                    ("Authorization", &format!("Bearer {writer}")),
                ],
                &protobuf_lines(&labels, t0 + s as i64 * SEC, &lines),
            )
            .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
        want.extend(lines);
    }
    let q = percent(r#"{app="tls"}"#);
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    for (i, w) in writers.iter().enumerate() {
        let r = w
            .request(
                "GET",
                &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=1000"),
                &[("Authorization", &format!("Bearer {admin}"))],
                b"",
            )
            .unwrap();
        let v = r.ok_json();
        let mut got: Vec<String> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().iter())
            .map(|e| e[1].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut w2 = want.clone();
        w2.sort();
        assert_eq!(got, w2, "write node {i}");
        // Every node holds every stream (RF=3): the forwards arrived.
        let m = w
            .request(
                "GET",
                "/metrics",
                &[("Authorization", &format!("Bearer {admin}"))],
                b"",
            )
            .unwrap()
            .text();
        assert!(
            m.contains("larch_cluster_forwarded_pushes_total{result=\"ok\"}"),
            "{m}"
        );
        assert!(
            !m.contains("larch_cluster_forwarded_pushes_total{result=\"failed\"}"),
            "{m}"
        );
    }
}

/// Loki's `/ingester/shutdown?terminate=false`: the node leaves the
/// member set (the others stop sending it streams), flushes, keeps
/// running; a second call gets Loki's 503.
#[test]
fn ingester_shutdown_leaves_and_flushes() {
    let topo = Topology::new(2, 1);
    let writers: Vec<StoreProcess> = (0..2).map(|i| topo.writer(i)).collect();
    topo.settled(&[&writers[0], &writers[1]], 2);
    let t0 = now_ns() - 60 * SEC;
    for s in 0..10 {
        let labels = format!(r#"{{app="bye", stream="s{s}"}}"#);
        push_to(writers[0].http, &labels, t0, &[format!("before {s}")]).unwrap();
    }
    let r = request(
        writers[1].http,
        "POST",
        "/ingester/shutdown?terminate=false&flush=true",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let r = request(
        writers[1].http,
        "POST",
        "/ingester/shutdown?terminate=false",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.text().trim(), "Ingester is stopping or already stopped.");
    let r = request(
        writers[0].http,
        "GET",
        "/ingester/shutdown?flush=maybe",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // The leaver flushed its streams to the bucket.
    assert!(dir_bytes(&topo.bucket.path().join("chunks")) > 0);
    wait_for_metric(&writers[0], "larch_cluster_members", |v| v == 1.0);
    // New streams all go to the node that stays, through either node;
    // the leaver still runs.
    let forwarded =
        |p: &StoreProcess| metric(p, "larch_cluster_forwarded_pushes_total{result=\"ok\"}");
    let before = forwarded(&writers[0]);
    for s in 10..20 {
        let labels = format!(r#"{{app="bye", stream="s{s}"}}"#);
        push_to(writers[s % 2].http, &labels, t0, &[format!("after {s}")]).unwrap();
    }
    assert!(
        writers[1].try_wait().is_none(),
        "terminate=false keeps the process"
    );
    assert_eq!(
        forwarded(&writers[0]),
        before,
        "nothing goes to the leaver any more"
    );
    assert!(
        forwarded(&writers[1]) >= 5.0,
        "the leaver forwards what it receives"
    );
}
