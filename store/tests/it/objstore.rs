//! Object storage and roles with real processes: a `write` node flushing
//! to a bucket, `read` nodes started with empty data directories, a
//! `backend` compacting, against a real S3-compatible server (`s3s-fs`)
//! and against the filesystem backend (the same tests).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use larch_testkit::http::{percent, request};
use larch_testkit::push::protobuf_lines;
use larch_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use larch_testkit::{StoreProcess, now_ns};

const SEC: i64 = 1_000_000_000;

/// Where the cluster's flushed data lives.
enum Bucket {
    S3(Box<S3Server>),
    Dir(tempfile::TempDir),
    /// A directory the test owns (on a small tmpfs).
    Path(std::path::PathBuf),
}

impl Bucket {
    fn s3() -> Bucket {
        Bucket::S3(Box::new(S3Server::start("larch")))
    }

    fn dir() -> Bucket {
        Bucket::Dir(tempfile::tempdir().unwrap())
    }

    fn yaml(&self) -> String {
        match self {
            Bucket::S3(s) => s.storage_yaml("larch"),
            Bucket::Dir(d) => format!(
                "storage:\n  backend: filesystem\n  filesystem:\n    dir: {}\n",
                d.path().display()
            ),
            Bucket::Path(p) => format!(
                "storage:\n  backend: filesystem\n  filesystem:\n    dir: {}\n",
                p.display()
            ),
        }
    }
}

fn node(bucket: &Bucket, target: &str, extra: &str) -> StoreProcess {
    let config = format!(
        "target: {target}\n{}ingester:\n  flush_check_period: 100ms\n  chunk_idle_period: 1h\n{extra}",
        bucket.yaml()
    );
    StoreProcess::builder()
        .config(config)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .start()
}

fn reader(bucket: &Bucket, writer: &StoreProcess) -> StoreProcess {
    reader_with(bucket, writer, "")
}

fn reader_with(bucket: &Bucket, writer: &StoreProcess, extra: &str) -> StoreProcess {
    node(
        bucket,
        "read",
        &format!(
            "read:\n  write_nodes: [\"127.0.0.1:{}\"]\n  index_refresh_period: 100ms\n{extra}",
            writer.grpc
        ),
    )
}

/// Pushes `n` lines to each of `streams` streams, starting at `t0`;
/// returns them as (labels, ts, line).
fn push(
    p: &StoreProcess,
    tag: &str,
    streams: usize,
    n: usize,
    t0: i64,
) -> Vec<(String, i64, String)> {
    let mut all = Vec::new();
    for s in 0..streams {
        // Lines far in the past go to streams of their own (a stream
        // accepts only so much disorder).
        let name = if tag == "old" { "old" } else { "s" };
        let labels = format!(r#"{{app="objstore", stream="{name}{s}"}}"#);
        let lines: Vec<String> = (0..n)
            .map(|i| format!("{tag} stream {s} line {i} needle{}", i % 7))
            .collect();
        let body = protobuf_lines(&labels, t0 + s as i64, &lines);
        let r = request(
            p.http,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
        for (i, l) in lines.into_iter().enumerate() {
            all.push((labels.clone(), t0 + s as i64 + i as i64, l));
        }
    }
    all
}

fn flush(p: &StoreProcess) {
    let r = request(p.http, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

fn get_json(p: &StoreProcess, path: &str) -> serde_json::Value {
    let r = request(p.http, "GET", path, &[], b"").unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Every line `{app="objstore"}` returns over `[start, end)`, sorted.
fn lines(p: &StoreProcess, start: i64, end: i64) -> Vec<(i64, String)> {
    let q = percent(r#"{app="objstore"}"#);
    let v = get_json(
        p,
        &format!(
            "/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000&direction=forward"
        ),
    );
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push((
                e[0].as_str().unwrap().parse::<i64>().unwrap(),
                e[1].as_str().unwrap().to_string(),
            ));
        }
    }
    out.sort();
    out
}

/// What a node answers to every kind of request the checks compare.
fn answers(p: &StoreProcess, start: i64, end: i64) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("lines", format!("{:?}", lines(p, start, end)));
    m.insert(
        "labels",
        get_json(p, &format!("/loki/api/v1/labels?start={start}&end={end}"))["data"].to_string(),
    );
    m.insert(
        "values",
        get_json(
            p,
            &format!("/loki/api/v1/label/stream/values?start={start}&end={end}"),
        )["data"]
            .to_string(),
    );
    let sel = percent(r#"{app="objstore"}"#);
    let mut series = get_json(
        p,
        &format!("/loki/api/v1/series?match[]={sel}&start={start}&end={end}"),
    )["data"]
        .as_array()
        .unwrap()
        .clone();
    series.sort_by_key(|v| v.to_string());
    m.insert("series", format!("{series:?}"));
    let q = percent(r#"sum(count_over_time({app="objstore"}[1h]))"#);
    let v = get_json(p, &format!("/loki/api/v1/query?query={q}&time={end}"));
    m.insert("count", v["data"]["result"][0]["value"][1].to_string());
    m
}

fn expected(pushed: &[(String, i64, String)]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = pushed.iter().map(|(_, t, l)| (*t, l.clone())).collect();
    v.sort();
    v
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_then_read(bucket: Bucket) {
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 600 * SEC;
    let mut pushed = push(&w, "flushed", 4, 300, t0);
    flush(&w);
    // The bucket holds segments now; more lines stay unflushed.
    pushed.extend(push(&w, "unflushed", 4, 50, t0 + 120 * SEC));
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let want = expected(&pushed);

    let r1 = reader(&bucket, &w);
    // The read node started empty and keeps no chunk of its own.
    let own = r1.data_dir().join("chunks");
    assert!(std::fs::read_dir(&own).map_or(true, |mut d| d.next().is_none()));
    wait_until("the reader's view", Duration::from_secs(20), || {
        lines(&r1, start, end).len() == want.len()
    });
    assert_eq!(lines(&r1, start, end), want, "every line exactly once");
    let a1 = answers(&r1, start, end);
    assert_eq!(a1["count"], format!("\"{}\"", want.len()), "{a1:?}");
    assert!(a1["values"].contains("s3"), "{a1:?}");
    let r2 = reader(&bucket, &w);
    wait_until("the second reader", Duration::from_secs(20), || {
        lines(&r2, start, end).len() == want.len()
    });
    assert_eq!(
        answers(&r2, start, end),
        a1,
        "a second read node answers the same"
    );
    // Once everything is flushed, the readers answer from the bucket alone
    // and still see every line once.
    flush(&w);
    flush(&r1);
    assert_eq!(answers(&r1, start, end), a1);
}

#[test]
fn write_then_read_nodes_s3() {
    write_then_read(Bucket::s3());
}

#[test]
fn write_then_read_nodes_filesystem() {
    write_then_read(Bucket::dir());
}

fn metric(p: &StoreProcess, name: &str) -> f64 {
    larch_testkit::metrics::scrape(p.http)
        .get(name)
        .copied()
        .unwrap_or(0.0)
}

/// The bucket goes away while pushes continue: pushes are acknowledged,
/// `/ready` stays up, and when it returns every line is flushed once.
/// The WAL bound then refuses pushes with 503 while it is down again.
#[test]
fn bucket_outage_loses_and_doubles_nothing() {
    let bucket = Bucket::s3();
    let Bucket::S3(s3) = &bucket else {
        unreachable!()
    };
    let w = node(
        &bucket,
        "write",
        "wal:\n  segment_size: 1MiB\n  max_size: 3MiB\nlimits:\n  ingestion_rate_mb: 100\n  ingestion_burst_size_mb: 100\n",
    );
    let t0 = now_ns() - 600 * SEC;
    let mut pushed = push(&w, "before", 2, 100, t0);
    flush(&w);
    s3.kill();
    pushed.extend(push(&w, "during", 2, 100, t0 + 60 * SEC));
    flush(&w);
    assert_eq!(
        request(w.http, "GET", "/ready", &[], b"").unwrap().status,
        200
    );
    assert!(metric(&w, "larch_objstore_flush_backlog_chunks") > 0.0);
    assert!(
        larch_testkit::metrics::scrape(w.http)
            .iter()
            .any(|(k, v)| k.starts_with("larch_objstore_requests_total")
                && k.contains("error")
                && *v > 0.0),
        "failed requests are counted"
    );
    s3.restart();
    wait_until("the backlog to drain", Duration::from_secs(60), || {
        flush(&w);
        metric(&w, "larch_objstore_flush_backlog_chunks") == 0.0
    });
    let r = reader(&bucket, &w);
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let want = expected(&pushed);
    wait_until("the reader", Duration::from_secs(20), || {
        lines(&r, start, end).len() == want.len()
    });
    assert_eq!(lines(&r, start, end), want);
    drop(r);

    // The WAL bound: with the bucket down, pushes fill the WAL up to
    // wal.max_size, then get 503 with a message saying so.
    s3.kill();
    let big = "x".repeat(4000);
    let mut refused = None;
    for i in 0..2000 {
        let lines: Vec<String> = (0..50).map(|j| format!("{i} {j} {big}")).collect();
        let body = protobuf_lines(r#"{app="bound"}"#, t0 + i as i64 * SEC, &lines);
        let r = request(
            w.http,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
        .unwrap();
        if r.status != 204 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the WAL bound refused a push");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("wal.max_size"), "{}", r.text());
    assert_eq!(
        request(w.http, "GET", "/ready", &[], b"").unwrap().status,
        200
    );
}

/// Wrong credentials stop the start with a message naming the bucket.
#[test]
fn wrong_credentials_are_refused_at_start() {
    let s3 = S3Server::start("larch");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("store.yaml");
    // The file takes its credentials from the environment.
    std::fs::write(&config, s3.storage_yaml("larch")).unwrap();
    let out = std::process::Command::new(larch_testkit::binary("larch-store"))
        .args([
            "--target",
            "write",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot use s3 bucket larch"), "{err}");
    assert!(err.contains("credentials"), "{err}");
}

fn compaction(bucket: Bucket) {
    let retention = "limits:\n  retention_period: 48h\n";
    let w = node(&bucket, "write", retention);
    let t0 = now_ns() - 600 * SEC;
    let mut pushed = Vec::new();
    // Several flushes: several segments of the same day.
    for round in 0..4 {
        pushed.extend(push(
            &w,
            &format!("round{round}"),
            2,
            40,
            t0 + round * 10 * SEC,
        ));
        flush(&w);
    }
    // Old lines, past the retention the backend applies.
    let old = now_ns() - 100 * 3600 * SEC;
    let expired = push(&w, "old", 1, 20, old);
    flush(&w);
    let old_q = (old - SEC, old + 3600 * SEC);
    // With retention_enabled off (Loki's switch) the compactor merges but
    // keeps every chunk, whatever the retention_period.
    let keeper = node(
        &bucket,
        "backend",
        &format!("compactor:\n  retention_enabled: false\n  interval: 1h\n{retention}"),
    );
    flush(&keeper);
    assert_eq!(metric(&keeper, "larch_compactor_expired_chunks_total"), 0.0);
    drop(keeper);
    let everything = reader_with(&bucket, &w, "");
    wait_until("the old lines", Duration::from_secs(20), || {
        lines(&everything, old_q.0, old_q.1).len() == expired.len()
    });
    drop(everything);
    let backend = node(
        &bucket,
        "backend",
        &format!("compactor:\n  interval: 1h\n  deletion_delay: 1s\n{retention}"),
    );
    let r = reader_with(&bucket, &w, retention);
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let want = expected(&pushed);
    wait_until("the reader", Duration::from_secs(20), || {
        lines(&r, start, end).len() == want.len()
    });
    // Compactions run while the reader answers: never a missing or a
    // doubled line.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for _ in 0..6 {
                flush(&backend);
                std::thread::sleep(Duration::from_millis(700));
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
        });
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            assert_eq!(lines(&r, start, end), want, "a reader saw a partial state");
            n += 1;
        }
        assert!(n > 3, "the reader ran during compaction ({n} queries)");
    });
    let m = larch_testkit::metrics::scrape(backend.http);
    assert!(
        m.iter().any(
            |(k, v)| k.starts_with("larch_compactor_deleted_objects_total")
                && k.contains("segment")
                && *v > 0.0
        ),
        "superseded segments were deleted: {m:?}"
    );
    // Retention: the old lines were in the bucket, and are gone now, their
    // chunk objects too.
    assert_eq!(expired.len(), 20);
    assert!(metric(&backend, "larch_compactor_expired_chunks_total") > 0.0);
    assert!(
        m.iter().any(
            |(k, v)| k.starts_with("larch_compactor_deleted_objects_total")
                && k.contains("chunk")
                && *v > 0.0
        ),
        "expired chunks were deleted: {m:?}"
    );
    let fresh = reader_with(&bucket, &w, "");
    wait_until("a fresh reader", Duration::from_secs(20), || {
        lines(&fresh, start, end).len() == want.len()
    });
    assert_eq!(
        lines(&fresh, old_q.0, old_q.1),
        vec![],
        "expired lines are not served"
    );
    assert_eq!(lines(&fresh, start, end), want);
}

#[test]
fn compactor_merges_and_never_shows_a_partial_state_s3() {
    compaction(Bucket::s3());
}

#[test]
fn compactor_merges_and_never_shows_a_partial_state_filesystem() {
    compaction(Bucket::dir());
}

/// A write node guarding its routes with tokens answers a read node only
/// with an administrator's token (`read.write_node_token_file`); without
/// one, the read node's queries fail rather than miss the unflushed lines.
#[test]
fn read_nodes_send_their_token_to_write_nodes() {
    let bucket = Bucket::dir();
    let dir = tempfile::tempdir().unwrap();
    let (admin, e1) = super::security::new_token("nodes", "fake", "admin");
    let (writer, e2) = super::security::new_token("writer", "fake", "write");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("tokens:\n{e1}{e2}")).unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{admin}\n")).unwrap();
    let w = node(
        &bucket,
        "write",
        &format!("auth:\n  tokens_file: {}\n", tokens.display()),
    );
    let t0 = now_ns() - 60 * SEC;
    let pushed = vec!["unflushed behind a token".to_string()];
    let r = request(
        w.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Authorization", &format!("Bearer {writer}")),
        ],
        &protobuf_lines(r#"{app="objstore"}"#, t0, &pushed),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let q = format!(
        "/loki/api/v1/query_range?query={}&start={start}&end={end}",
        percent(r#"{app="objstore"}"#)
    );

    let without = reader(&bucket, &w);
    let r = request(without.http, "GET", &q, &[], b"").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("write node"), "{}", r.text());

    let with = reader_with(
        &bucket,
        &w,
        &format!("  write_node_token_file: {}\n", token_file.display()),
    );
    assert_eq!(lines(&with, start, end), vec![(t0, pushed[0].clone())]);
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Object writes that fail (a filesystem bucket on a full tmpfs: every
/// chunk and segment write gets ENOSPC) leave nothing half-visible and
/// lose nothing: pushes are still acknowledged; the bucket holds no
/// partial object and a reader of the bucket alone sees exactly what was
/// published before; the lines stay in the write node's WAL until their
/// segment is written (a kill -9 while the bucket is full loses none);
/// once there is space again every line reaches the bucket once.
#[test]
fn failed_object_writes_leave_nothing_half_visible() {
    let fs = super::recovery::Tmpfs::mount("4m").expect("a tmpfs for the bucket");
    let dir = fs.mnt.join("bucket");
    std::fs::create_dir(&dir).unwrap();
    let bucket = Bucket::Path(dir.clone());
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 600 * SEC;
    let before = push(&w, "before", 2, 100, t0);
    flush(&w);
    let published = tree(&dir);
    assert!(
        published.iter().any(|f| f.starts_with("segments/")),
        "{published:?}"
    );

    let ballast = fs.fill(0);
    let mut all = before.clone();
    all.extend(push(&w, "during", 2, 100, t0 + 60 * SEC));
    flush(&w);
    assert!(metric(&w, "larch_objstore_flush_backlog_chunks") > 0.0);
    // Nothing new is visible in the bucket: no partial chunk, no staging
    // file, no segment.
    let mut now = tree(&dir);
    now.retain(|f| f != "ballast");
    assert_eq!(now, published, "a failed write left something behind");
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let alone = node(&bucket, "read", "read:\n  index_refresh_period: 100ms\n");
    wait_until("the bucket-only reader", Duration::from_secs(20), || {
        lines(&alone, start, end).len() == before.len()
    });
    assert_eq!(lines(&alone, start, end), expected(&before));

    // The unpublished lines are still the write node's: kill -9 and a
    // restart with the bucket still full replays them from its WAL.
    w.kill9();
    w.restart();
    let r = reader(&bucket, &w);
    wait_until("the reader", Duration::from_secs(20), || {
        lines(&r, start, end).len() == all.len()
    });
    assert_eq!(lines(&r, start, end), expected(&all));

    // Space again: everything is flushed and published once.
    std::fs::remove_file(&ballast).unwrap();
    wait_until("the backlog to drain", Duration::from_secs(90), || {
        flush(&w);
        metric(&w, "larch_objstore_flush_backlog_chunks") == 0.0
    });
    wait_until("the bucket-only reader", Duration::from_secs(20), || {
        lines(&alone, start, end).len() == all.len()
    });
    assert_eq!(lines(&alone, start, end), expected(&all));
}

/// The single-node store (`target: all`) with its chunks in S3: flushed
/// chunks are objects of the bucket (none on the local disk), and after a
/// kill -9 and a restart every line is served once.
#[test]
fn all_in_one_on_s3_keeps_its_chunks_in_the_bucket() {
    let bucket = Bucket::s3();
    let Bucket::S3(s3) = &bucket else {
        unreachable!()
    };
    let p = node(&bucket, "all", "");
    let t0 = now_ns() - 600 * SEC;
    let mut pushed = push(&p, "flushed", 2, 100, t0);
    flush(&p);
    pushed.extend(push(&p, "unflushed", 2, 20, t0 + 60 * SEC));
    let objects = tree(&s3.root.join("larch"));
    assert!(
        objects.iter().any(|f| f.starts_with("chunks/")),
        "{objects:?}"
    );
    let local = p.data_dir().join("chunks");
    assert!(
        !local.exists() || tree(&local).is_empty(),
        "chunks on the local disk: {:?}",
        tree(&local)
    );
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let want = expected(&pushed);
    assert_eq!(lines(&p, start, end), want);
    p.kill9();
    p.restart();
    assert_eq!(lines(&p, start, end), want, "after kill -9 and a restart");
}
