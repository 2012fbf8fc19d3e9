//! Object storage and roles with real processes: a `write` node flushing
//! to a bucket, `read` nodes started with empty data directories, a
//! `backend` compacting, against a real S3-compatible server (`s3s-fs`)
//! and against the filesystem backend (the same tests); writing, reading
//! and compacting also against Azure Blob Storage's emulator (Azurite).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use larch_testkit::azurite::AzuriteServer;
use larch_testkit::http::{percent, request};
use larch_testkit::push::protobuf_lines;
use larch_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use larch_testkit::{StoreProcess, now_ns};

use super::bucket_objects::live_entries;

const SEC: i64 = 1_000_000_000;

/// Where the cluster's flushed data lives.
enum Bucket {
    S3(Box<S3Server>),
    Azure(Box<AzuriteServer>),
    Dir(tempfile::TempDir),
    /// A directory the test owns (on a small tmpfs).
    Path(std::path::PathBuf),
}

impl Bucket {
    fn s3() -> Bucket {
        Bucket::S3(Box::new(S3Server::start("larch")))
    }

    fn azure() -> Bucket {
        Bucket::Azure(Box::new(AzuriteServer::start("larch")))
    }

    fn dir() -> Bucket {
        Bucket::Dir(tempfile::tempdir().unwrap())
    }

    fn yaml(&self) -> String {
        match self {
            Bucket::S3(s) => s.storage_yaml("larch"),
            Bucket::Azure(a) => a.storage_yaml("larch"),
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

/// Where the bucket's objects are files: the filesystem bucket's
/// directory, or the one s3s-fs keeps the bucket `larch` in.
fn bucket_root(bucket: &Bucket) -> std::path::PathBuf {
    match bucket {
        Bucket::S3(s) => s.root.join("larch"),
        Bucket::Azure(_) => {
            panic!("Azurite keeps its blobs in a database of its own, not as files")
        }
        Bucket::Dir(d) => d.path().to_path_buf(),
        Bucket::Path(p) => p.clone(),
    }
}

/// The chunk objects in the bucket: (count, total bytes, largest).
fn chunk_objects(root: &std::path::Path) -> (usize, u64, u64) {
    let sizes: Vec<u64> = files_under(root, "chunks/")
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    (
        sizes.len(),
        sizes.iter().sum(),
        sizes.iter().copied().max().unwrap_or(0),
    )
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
    // Chunks read from the bucket by their tail alone (the head is never
    // fetched) are not taken for damaged ones.
    for r in [&r1, &r2] {
        let damaged: f64 = larch_testkit::metrics::scrape(r.http)
            .iter()
            .filter(|(k, _)| k.starts_with("larch_chunk_corruptions"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(damaged, 0.0, "no chunk reported damaged");
    }
}

#[test]
fn write_then_read_nodes_s3() {
    write_then_read(Bucket::s3());
}

#[test]
fn write_then_read_nodes_filesystem() {
    write_then_read(Bucket::dir());
}

#[test]
fn write_then_read_nodes_azure() {
    write_then_read(Bucket::azure());
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
    // Once in the objects too, where the read path's merge hides nothing.
    assert_eq!(live_entries(&s3.root.join("larch")), want);
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

    // A read node started while the bucket is down is not ready (it
    // would answer as if the bucket were empty) until its first listing.
    let r = StoreProcess::builder()
        .config(format!(
            "target: read\n{}read:\n  write_nodes: [\"127.0.0.1:{}\"]\n  index_refresh_period: 100ms\n",
            bucket.yaml(),
            w.grpc
        ))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .spawn();
    let mut first = None;
    wait_until("the read node to answer", Duration::from_secs(30), || {
        first = request(r.http, "GET", "/ready", &[], b"").ok();
        first.is_some()
    });
    let first = first.expect("an answer");
    assert_eq!(first.status, 503, "{}", first.text());
    assert!(first.text().contains("not been listed"), "{}", first.text());
    s3.restart();
    wait_until("the read node to be ready", Duration::from_secs(60), || {
        request(r.http, "GET", "/ready", &[], b"")
            .map(|a| a.status == 200)
            .unwrap_or(false)
    });
    assert_eq!(lines(&r, start, end), want);
}

/// Runs `larch-store --target write` with `storage` and `env` until it
/// exits (it must: the bucket check fails), giving its stderr.
fn refused_at_start(storage: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("store.yaml");
    std::fs::write(&config, storage).unwrap();
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
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_wrong_azure_key_or_container_is_refused_at_start() {
    let azure = AzuriteServer::start("larch");
    // Another key, of the right form.
    let wrong_key = azure.storage_yaml("larch").replace(
        larch_testkit::azurite::ACCESS_KEY,
        "bm90LXRoZS1rZXktbm90LXRoZS1rZXktbm90LXRoZS1rZXktbm90LXRoZS1rZXk=",
    );
    let err = refused_at_start(&wrong_key, &[]);
    assert!(
        err.contains("cannot use azure container devstoreaccount1/larch"),
        "{err}"
    );
    assert!(err.contains("the credentials were refused"), "{err}");
    let err = refused_at_start(&azure.storage_yaml("absent"), &[]);
    assert!(
        err.contains("cannot use azure container devstoreaccount1/absent"),
        "{err}"
    );
    assert!(err.contains("the bucket does not exist"), "{err}");
    // Every cause is said once.
    assert_eq!(err.matches("cannot use").count(), 1, "{err}");
}

/// Wrong credentials stop the start with a message naming the bucket.
#[test]
fn wrong_credentials_are_refused_at_start() {
    let s3 = S3Server::start("larch");
    // The file takes its credentials from the environment.
    let err = refused_at_start(
        &s3.storage_yaml("larch"),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ],
    );
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

/// The compactor's listing, merging, retention and deletes over Azure Blob
/// Storage (Azurite): the test reads the bucket only through the store's
/// answers and metrics, which is all Azurite allows (it keeps its blobs in
/// a database of its own).
#[test]
fn compactor_merges_and_never_shows_a_partial_state_azure() {
    compaction(Bucket::azure());
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

/// A write node serving TLS and requiring a client certificate answers a
/// read node that presents one (`read.write_node_tls`, the keys of
/// `cluster.tls`); a read node with the CA but no certificate gets a query
/// error naming the write node and the refusal rather than an answer
/// without the unflushed lines; files that do not load stop the read node
/// at start.
#[test]
fn read_nodes_reach_tls_write_nodes_with_a_client_certificate() {
    use larch_testkit::http::Tls;
    use larch_testkit::pki::Pki;
    let bucket = Bucket::dir();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki"));
    let w = StoreProcess::builder()
        .config(format!(
            "target: write\n{}ingester:\n  flush_check_period: 100ms\n  chunk_idle_period: 1h\n\
             tls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
            bucket.yaml(),
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display(),
        ))
        .tls(Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key))
        .start();
    let t0 = now_ns() - 60 * SEC;
    let pushed = vec!["unflushed behind mtls".to_string()];
    let r = w
        .request(
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &protobuf_lines(r#"{app="objstore"}"#, t0, &pushed),
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let (start, end) = (t0 - SEC, now_ns() + SEC);

    let with = reader_with(
        &bucket,
        &w,
        &format!(
            "  write_node_tls:\n    tls_enabled: true\n    tls_ca_path: {}\n    tls_cert_path: {}\n    tls_key_path: {}\n",
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display(),
        ),
    );
    assert_eq!(lines(&with, start, end), vec![(t0, pushed[0].clone())]);

    let q = format!(
        "/loki/api/v1/query_range?query={}&start={start}&end={end}",
        percent(r#"{app="objstore"}"#)
    );
    let without = reader_with(
        &bucket,
        &w,
        &format!(
            "  write_node_tls:\n    tls_enabled: true\n    tls_ca_path: {}\n",
            pki.ca.display()
        ),
    );
    let r = request(without.http, "GET", &q, &[], b"").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains(&format!("write node 127.0.0.1:{} did not answer", w.grpc)),
        "{text}"
    );
    eprintln!("refusal: {text}");

    // Files that do not load, or TLS without a CA, stop the start.
    for (tls, want) in [
        (
            format!(
                "    tls_enabled: true\n    tls_ca_path: {}\n",
                dir.path().join("missing-ca.pem").display()
            ),
            "read.write_node_tls.tls_ca_path",
        ),
        (
            format!(
                "    tls_enabled: true\n    tls_ca_path: {}\n    tls_cert_path: {}\n    tls_key_path: {}\n",
                pki.ca.display(),
                pki.client_cert.display(),
                dir.path().join("missing-key.pem").display()
            ),
            "read.write_node_tls.tls_cert_path",
        ),
        (
            "    tls_enabled: true\n".to_string(),
            "read.write_node_tls.tls_ca_path: is required",
        ),
        (
            format!("    tls_ca_path: {}\n", pki.ca.display()),
            "read.write_node_tls.tls_enabled",
        ),
    ] {
        let config = dir.path().join("reader.yaml");
        std::fs::write(
            &config,
            format!(
                "target: read\n{}read:\n  write_nodes: [\"127.0.0.1:{}\"]\n  write_node_tls:\n{tls}",
                bucket.yaml(),
                w.grpc
            ),
        )
        .unwrap();
        let out = std::process::Command::new(larch_testkit::binary("larch-store"))
            .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("reader-data"))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tls}: started");
        assert!(err.contains(want), "{tls}: {err}");
    }
}

/// Every file under `dir`, relative, sorted.
/// Many small flushes of several streams leave one small chunk object per
/// stream and flush; the backend merges each stream's run of them into
/// one chunk while a reader answers in a loop, exactly, every time; after
/// the grace period the inputs are gone from the bucket, and the chunks
/// the live segments name hold every line exactly once (counted in the
/// objects, not through the read path's merge).
fn small_chunks(bucket: Bucket) {
    const STREAMS: usize = 3;
    const FLUSHES: i64 = 10;
    let root = bucket_root(&bucket);
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 900 * SEC;
    let mut pushed = Vec::new();
    for round in 0..FLUSHES {
        pushed.extend(push(
            &w,
            &format!("small{round}"),
            STREAMS,
            30,
            t0 + round * 20 * SEC,
        ));
        flush(&w);
    }
    let want = expected(&pushed);
    let before = chunk_objects(&root);
    assert_eq!(before.0, STREAMS * FLUSHES as usize, "{:?}", tree(&root));
    assert_eq!(live_entries(&root), want);

    let backend = node(
        &bucket,
        "backend",
        "compactor:\n  interval: 1h\n  deletion_delay: 1s\n",
    );
    let r = reader(&bucket, &w);
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    wait_until("the reader", Duration::from_secs(20), || {
        lines(&r, start, end).len() == want.len()
    });
    // Compactions (the merge, then the deletes of its inputs once the
    // grace period has passed) run while the reader answers.
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
    // One chunk per stream and day is left (the pushes may straddle
    // midnight), each holding what its inputs held.
    let days: std::collections::HashSet<i64> = pushed
        .iter()
        .map(|(_, t, _)| t.div_euclid(86_400 * SEC))
        .collect();
    wait_until(
        "the merged inputs to be deleted",
        Duration::from_secs(30),
        || {
            flush(&backend);
            chunk_objects(&root).0 == STREAMS * days.len()
        },
    );
    let after = chunk_objects(&root);
    eprintln!(
        "chunk objects before compaction: {} ({} bytes, largest {}); after: {} ({} bytes, largest {})",
        before.0, before.1, before.2, after.0, after.1, after.2
    );
    assert!(after.2 > before.2, "the merged chunks are larger");
    assert_eq!(live_entries(&root), want, "every line stored exactly once");
    assert!(
        larch_testkit::metrics::scrape(backend.http)
            .iter()
            .any(
                |(k, v)| k.starts_with("larch_compactor_deleted_objects_total")
                    && k.contains("chunk")
                    && *v >= (before.0 - after.0) as f64
            ),
        "the inputs were deleted by the compactor"
    );
    assert_eq!(lines(&r, start, end), want);
    let fresh = reader(&bucket, &w);
    wait_until("a fresh reader", Duration::from_secs(20), || {
        lines(&fresh, start, end).len() == want.len()
    });
    assert_eq!(lines(&fresh, start, end), want);
}

#[test]
fn compactor_merges_small_chunks_s3() {
    small_chunks(Bucket::s3());
}

#[test]
fn compactor_merges_small_chunks_filesystem() {
    small_chunks(Bucket::dir());
}

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
/// once there is space again every line reaches the bucket once. While
/// writes fail the node stays ready, and past `wal.max_size` pushes get
/// 503 naming it.
#[test]
fn failed_object_writes_leave_nothing_half_visible() {
    let fs = super::recovery::Tmpfs::mount("4m").expect("a tmpfs for the bucket");
    let dir = fs.mnt.join("bucket");
    std::fs::create_dir(&dir).unwrap();
    let bucket = Bucket::Path(dir.clone());
    let w = node(
        &bucket,
        "write",
        "wal:\n  segment_size: 1MiB\n  max_size: 3MiB\nlimits:\n  ingestion_rate_mb: 100\n  ingestion_burst_size_mb: 100\n",
    );
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
    assert_eq!(
        request(w.http, "GET", "/ready", &[], b"").unwrap().status,
        200,
        "a write node whose object writes fail stays ready"
    );
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
    // Once, in the objects too (the read path would hide a double).
    assert_eq!(live_entries(&dir), expected(&all));

    // The WAL bound: with writes failing again, pushes fill the WAL up to
    // wal.max_size, then get 503 with a message saying so; the node stays
    // ready.
    let _ballast = fs.fill(0);
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

/// An all-in-one node starts while its bucket is down: it takes pushes
/// into its WAL, refuses queries (it has not read the delete requests)
/// with a 503 in words, and answers them once the bucket is back.
#[test]
fn all_in_one_starts_while_the_bucket_is_down() {
    let bucket = Bucket::s3();
    let Bucket::S3(s3) = &bucket else {
        unreachable!()
    };
    s3.kill();
    let p = node(&bucket, "all", "");
    let t0 = now_ns() - 600 * SEC;
    let pushed = push(&p, "down", 2, 50, t0);
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let q = percent(r#"{app="objstore"}"#);
    let r = request(
        p.http,
        "GET",
        &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("delete requests"), "{}", r.text());
    s3.restart();
    let want = expected(&pushed);
    wait_until("queries to be answered", Duration::from_secs(60), || {
        request(
            p.http,
            "GET",
            &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000"),
            &[],
            b"",
        )
        .map(|a| a.status == 200)
        .unwrap_or(false)
    });
    assert_eq!(lines(&p, start, end), want);
}

/// Bytes a node has downloaded from the bucket so far.
fn downloaded(p: &StoreProcess) -> f64 {
    larch_testkit::metrics::scrape(p.http)
        .iter()
        .filter(|(k, _)| k.starts_with("larch_objstore_bytes_total") && k.contains("download"))
        .map(|(_, v)| v)
        .sum()
}

/// The lines a needle query returns, and the bytes it downloaded.
fn needle(p: &StoreProcess, needle: &str, start: i64, end: i64) -> (Vec<(i64, String)>, f64) {
    let q = percent(&format!(r#"{{app="terms"}} |= "{needle}""#));
    let before = downloaded(p);
    let v = get_json(
        p,
        &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=1000"),
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
    (out, downloaded(p) - before)
}

/// Pushes `n` varied lines to each of `streams` streams in rounds, one
/// flush per round (several chunks per stream), with `needle` in one line
/// of the middle; returns the needle's (ts, line).
fn push_haystack(
    w: &StoreProcess,
    streams: usize,
    n: usize,
    t0: i64,
    needle: &str,
) -> (i64, String) {
    let mut found = None;
    for round in 0..3 {
        for s in 0..streams {
            let labels = format!(r#"{{app="terms", stream="s{s}"}}"#);
            let base = t0 + (round * n * streams + s * n) as i64 * 1000;
            let lines: Vec<String> = (0..n)
                .map(|i| {
                    let k = (round * streams + s) * n + i;
                    if round == 1 && s == streams / 2 && i == n / 2 {
                        format!("request {k} failed: {needle}")
                    } else {
                        format!(
                            "request {k} user=u{:x} path=/api/v{}/items/{} status={} took={}ms",
                            k.wrapping_mul(2_654_435_761) % 100_000,
                            k % 3,
                            k % 977,
                            [200, 404, 500][k % 3],
                            k % 250
                        )
                    }
                })
                .collect();
            if round == 1 && s == streams / 2 {
                found = Some((base + (n / 2) as i64 * 1000, lines[n / 2].clone()));
            }
            let mut body_lines = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                body_lines.push((base + i as i64 * 1000, l.clone()));
            }
            let body = larch_testkit::push::protobuf([(labels.as_str(), body_lines)]);
            let r = request(
                w.http,
                "POST",
                "/loki/api/v1/push",
                &[("Content-Type", "application/x-protobuf")],
                &body,
            )
            .unwrap();
            assert_eq!(r.status, 204, "{}", r.text());
        }
        flush(w);
    }
    found.unwrap()
}

/// Every file under `dir` whose relative path starts with `prefix`.
fn files_under(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|f| f.starts_with(prefix))
        .map(|f| dir.join(f))
        .collect()
}

/// A needle query through a compacted bucket answers the same lines with
/// the term index as without it, and downloads fewer bytes; a damaged term
/// index is reported and the query falls back to the block filters.
#[test]
fn term_index_needle_fetches_fewer_bytes() {
    let bucket = Bucket::s3();
    let Bucket::S3(s3) = &bucket else {
        unreachable!()
    };
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 1200 * SEC;
    let token = "trace=5ca1ab1e0ddba11 declined";
    let found = push_haystack(&w, 4, 1500, t0, token);
    let backend = node(&bucket, "backend", "compactor:\n  interval: 1h\n");
    flush(&backend);
    let root = s3.root.join("larch");
    let indexes = files_under(&root, "terms/");
    assert_eq!(
        indexes.len(),
        1,
        "one term index for the day: {:?}",
        tree(&root)
    );
    assert!(metric(&backend, "larch_compactor_term_indexes_total") >= 1.0);
    let (start, end) = (t0 - SEC, now_ns() + SEC);

    let old = reader_with(&bucket, &w, "  term_index: false\n");
    let new = reader(&bucket, &w);
    let (old_lines, old_bytes) = needle(&old, token, start, end);
    let (new_lines, new_bytes) = needle(&new, token, start, end);
    assert_eq!(old_lines, vec![found.clone()]);
    assert_eq!(new_lines, old_lines);
    assert!(
        new_bytes > 0.0 && new_bytes < old_bytes,
        "with the term index {new_bytes} bytes, without {old_bytes}"
    );
    // Case-insensitive and absent needles agree too.
    let upper = token.to_uppercase();
    let q = |p: &StoreProcess, text: &str| {
        let q = percent(&format!(r#"{{app="terms"}} |~ "(?i){text}""#));
        get_json(
            p,
            &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=1000"),
        )["data"]["result"]
            .to_string()
    };
    assert_eq!(q(&new, &upper), q(&old, &upper));
    assert!(q(&new, &upper).contains("5ca1ab1e0ddba11"));
    assert_eq!(needle(&new, "nowhere-to-be-found", start, end).0, vec![]);
    let (common, _) = needle(&new, "status=404", start, end);
    assert_eq!(common, needle(&old, "status=404", start, end).0);
    assert!(common.len() > 100);

    // Damage every page of the index (everything after its head): a new
    // reader reports it and answers from the block filters.
    let mut bytes = std::fs::read(&indexes[0]).unwrap();
    let head_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    for b in &mut bytes[16 + head_len..] {
        *b ^= 0x5a;
    }
    std::fs::write(&indexes[0], &bytes).unwrap();
    let damaged = reader(&bucket, &w);
    assert_eq!(needle(&damaged, token, start, end).0, vec![found]);
    assert!(
        damaged.stderr().contains("term index is damaged")
            || damaged.stdout().contains("term index is damaged"),
        "the damage is reported"
    );
}

/// The compactor's write of a term index fails (a filesystem bucket on a
/// full tmpfs): no index, staging file or segment appears, readers answer
/// as before; once there is space the index is written and used.
#[test]
fn failed_term_index_write_leaves_the_bucket_as_it_was() {
    let fs = super::recovery::Tmpfs::mount("8m").expect("a tmpfs for the bucket");
    let dir = fs.mnt.join("bucket");
    std::fs::create_dir(&dir).unwrap();
    let bucket = Bucket::Path(dir.clone());
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 1200 * SEC;
    let token = "trace=0b5e55ed declined";
    let found = push_haystack(&w, 2, 300, t0, token);
    let published = tree(&dir);
    let ballast = fs.fill(0);
    let backend = node(&bucket, "backend", "compactor:\n  interval: 1h\n");
    flush(&backend);
    assert!(
        larch_testkit::metrics::scrape(backend.http)
            .iter()
            .any(|(k, v)| k.starts_with("larch_compactor_runs_total")
                && k.contains("error")
                && *v > 0.0),
        "the run failed"
    );
    let mut now = tree(&dir);
    now.retain(|f| f != "ballast");
    assert_eq!(now, published, "a failed write left something behind");
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let r = reader(&bucket, &w);
    assert_eq!(needle(&r, token, start, end).0, vec![found.clone()]);

    std::fs::remove_file(&ballast).unwrap();
    flush(&backend);
    assert_eq!(files_under(&dir, "terms/").len(), 1, "{:?}", tree(&dir));
    let fresh = reader(&bucket, &w);
    assert_eq!(needle(&fresh, token, start, end).0, vec![found]);
}

/// An answer from a write node over `read.write_node_max_message_size`
/// fails the query with a message naming the key; the node stays up.
#[test]
fn oversize_write_node_answers_are_a_clear_error() {
    let bucket = Bucket::dir();
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 60 * SEC;
    push(&w, "unflushed", 1, 400, t0);
    let small = reader_with(&bucket, &w, "  write_node_max_message_size: 1KiB\n");
    let q = percent(r#"{app="objstore"}"#);
    let (start, end) = (t0 - SEC, now_ns() + SEC);
    let path = format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000");
    let r = request(small.http, "GET", &path, &[], b"").unwrap();
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    assert!(
        r.text().contains("read.write_node_max_message_size"),
        "{}",
        r.text()
    );
    let ready = request(small.http, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(ready.status, 200);
    // The default bound takes the same answer.
    let big = reader(&bucket, &w);
    assert_eq!(lines(&big, start, end).len(), 400);
}
