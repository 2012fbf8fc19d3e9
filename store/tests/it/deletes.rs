//! Loki's delete API with real processes: requests made, listed and
//! cancelled; deleted lines gone from log and metric queries at once, after
//! a kill -9, after the compactor rewrote the chunks (in `all` mode on the
//! journal, and by a `backend` over a bucket, seen through `read` nodes,
//! on the filesystem and on a real S3-compatible server).

use std::path::Path;
use std::time::{Duration, Instant};

use larch_query::Columns;
use larch_store::chunk::{ChunkFile, DecodedBlock};
use larch_testkit::http::{Response, percent, request};
use larch_testkit::push::protobuf_lines;
use larch_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use larch_testkit::{StoreProcess, now_ns};

const SEC: i64 = 1_000_000_000;

fn call(p: &StoreProcess, method: &str, path: &str) -> Response {
    request(p.http, method, path, &[], b"").unwrap()
}

/// Pushes `n` lines `keep <i>` and `n` lines `secret <i>` to
/// `{app="<app>"}`, from `t0`, one per nanosecond.
fn push(p: &StoreProcess, app: &str, n: usize, t0: i64) {
    let lines: Vec<String> = (0..n)
        .flat_map(|i| [format!("keep {app} {i}"), format!("secret {app} {i}")])
        .collect();
    let body = protobuf_lines(&format!("{{app=\"{app}\"}}"), t0, &lines);
    let r = request(
        p.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The lines `{app="<app>"}` returns over the last two hours.
fn lines(p: &StoreProcess, app: &str) -> Vec<String> {
    let q = percent(&format!("{{app=\"{app}\"}}"));
    let (start, end) = (now_ns() - 7200 * SEC, now_ns() + SEC);
    let r = call(
        p,
        "GET",
        &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push(e[1].as_str().unwrap().to_string());
        }
    }
    out.sort();
    out
}

/// `sum(count_over_time({app="<app>"}[2h]))` now (0 when empty).
fn count(p: &StoreProcess, app: &str) -> u64 {
    let q = percent(&format!("sum(count_over_time({{app=\"{app}\"}}[2h]))"));
    let r = call(
        p,
        "GET",
        &format!("/loki/api/v1/query?query={q}&time={}", now_ns()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0, |s| s.parse().unwrap())
}

fn secrets(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("secret")).count()
}

/// Makes a delete request; returns its id.
fn delete(p: &StoreProcess, query: &str, start_s: i64) -> String {
    let r = call(
        p,
        "POST",
        &format!(
            "/loki/api/v1/delete?query={}&start={start_s}",
            percent(query)
        ),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    r.header("X-Delete-Request-ID").unwrap().to_string()
}

fn list(p: &StoreProcess) -> serde_json::Value {
    let r = call(p, "GET", "/loki/api/v1/delete");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn status_of(p: &StoreProcess, id: &str) -> Option<String> {
    list(p)
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == id)
        .map(|r| r["status"].as_str().unwrap().to_string())
}

fn flush(p: &StoreProcess) {
    let r = call(p, "POST", "/flush");
    assert_eq!(r.status, 204, "{}", r.text());
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every line of every chunk file under `dir`, decoded (what is on disk,
/// whatever the index says).
fn chunk_lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "chunk") {
                let f = ChunkFile::parse(std::fs::read(&p).unwrap()).unwrap();
                for meta in &f.blocks {
                    let mut b = DecodedBlock::default();
                    b.decode(&f.bytes, meta, Columns::ALL).unwrap();
                    let v = b.view(Columns::ALL);
                    for i in 0..v.len() {
                        out.push(String::from_utf8_lossy(v.line(i)).into_owned());
                    }
                }
            }
        }
    }
    out
}

/// Stops a store cleanly (SIGTERM, waits for its exit).
fn stop(p: &StoreProcess) {
    p.signal("TERM");
    wait_until("the store to exit", Duration::from_secs(30), || {
        p.try_wait().is_some()
    });
}

fn all_in_one(dir: &Path, extra: &str) -> StoreProcess {
    StoreProcess::builder()
        .data_dir(dir)
        .config(format!(
            "ingester:\n  flush_check_period: 100ms\n  chunk_idle_period: 1h\n{extra}"
        ))
        .start()
}

#[test]
fn requests_filter_at_once_cancel_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = all_in_one(&data, "compactor:\n  delete_request_cancel_period: 1h\n");
    let t0 = now_ns() - 600 * SEC;
    push(&s, "del", 50, t0);
    push(&s, "other", 10, t0);
    // Half in chunks, half in memory.
    flush(&s);
    push(&s, "del", 50, t0 + 100 * 1_000_000);
    assert_eq!(secrets(&lines(&s, "del")), 100);

    // Loki's errors.
    for (q, want) in [
        ("", "query not set"),
        ("query=%7Bapp%3D", "invalid query expression"),
        ("query=%7Bapp%3D%22del%22%7D", "start time not set"),
        (
            "query=%7Bapp%3D%22del%22%7D&start=soon",
            "invalid start time: require unix seconds or RFC3339 format",
        ),
        (
            "query=%7Bapp%3D%22del%22%7D&start=1700000000&end=nope",
            "invalid end time: require unix seconds or RFC3339 format",
        ),
        (
            "query=%7Bapp%3D%22del%22%7D&start=1700000000&end=4000000000",
            "deletes in the future are not allowed",
        ),
        (
            "query=%7Bapp%3D%22del%22%7D&start=1700000000&end=1700000000",
            "start time can't be greater than or equal to end time",
        ),
    ] {
        let r = call(&s, "POST", &format!("/loki/api/v1/delete?{q}"));
        assert_eq!((r.status, r.text().trim()), (400, want), "{q}");
    }
    let r = call(
        &s,
        "DELETE",
        "/loki/api/v1/delete?request_id=0123456789abcdef",
    );
    assert_eq!(
        (r.status, r.text().trim()),
        (404, "could not find delete request with given id")
    );
    assert_eq!(list(&s), serde_json::json!([]));

    let start_s = (t0 - SEC) / SEC;
    let id = delete(&s, r#"{app="del"} |= "secret""#, start_s);
    let l = list(&s);
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l[0]["request_id"], id.as_str());
    assert_eq!(l[0]["status"], "received");
    assert_eq!(l[0]["query"], r#"{app="del"} |= "secret""#);
    assert_eq!(l[0]["start_time"], start_s);
    assert_eq!(l[0]["user_id"], "");
    assert!(l[0]["end_time"].as_f64().unwrap() > l[0]["start_time"].as_f64().unwrap());

    // Gone at once from log and metric queries, in chunks and in memory;
    // the other lines and the other stream stay.
    let del = lines(&s, "del");
    assert_eq!((del.len(), secrets(&del)), (100, 0));
    assert_eq!(count(&s, "del"), 100);
    assert_eq!(secrets(&lines(&s, "other")), 10);
    assert_eq!(count(&s, "other"), 20);

    // Cancelled within the period: the lines are back, the list is empty.
    let r = call(
        &s,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}"),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(list(&s), serde_json::json!([]));
    assert_eq!(secrets(&lines(&s, "del")), 100);
    assert_eq!(count(&s, "del"), 200);

    // A request survives kill -9 (the request object is durable before
    // the 204), and a clean restart.
    let id = delete(&s, r#"{app="del"} |~ "secret del (1|2)""#, start_s);
    let hidden = lines(&s, "del");
    assert!(secrets(&hidden) > 0 && secrets(&hidden) < 100);
    drop(s);
    let s = all_in_one(&data, "compactor:\n  delete_request_cancel_period: 1h\n");
    assert_eq!(lines(&s, "del"), hidden);
    assert_eq!(status_of(&s, &id).as_deref(), Some("received"));
    stop(&s);
    let s = all_in_one(&data, "compactor:\n  delete_request_cancel_period: 1h\n");
    assert_eq!(lines(&s, "del"), hidden);
    assert_eq!(
        larch_testkit::metrics::scrape(s.http)
            .iter()
            .find(
                |(k, _)| k.starts_with("larch_compactor_delete_requests") && k.contains("received")
            )
            .map(|(_, v)| *v),
        Some(1.0)
    );
}

#[test]
fn compactor_rewrites_chunks_in_all_mode() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = "compactor:\n  delete_request_cancel_period: 1s\n";
    let s = all_in_one(&data, cfg);
    let t0 = now_ns() - 600 * SEC;
    push(&s, "del", 40, t0);
    flush(&s);
    push(&s, "del", 40, t0 + 100 * 1_000_000);
    let id = delete(&s, r#"{app="del"} |= "secret""#, (t0 - SEC) / SEC);
    assert_eq!(secrets(&lines(&s, "del")), 0);
    // Past the cancel period: cancelling needs force; the compactor
    // (run by /flush) rewrites the chunks and marks the request processed.
    std::thread::sleep(Duration::from_millis(1200));
    let r = call(
        &s,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}"),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("Cancellation of partially completed delete request or delete request past the deadline of 1s since its creation is not allowed."), "{}", r.text());
    flush(&s);
    assert_eq!(status_of(&s, &id).as_deref(), Some("processed"));
    let r = call(
        &s,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}&force=true"),
    );
    assert_eq!(
        (r.status, r.text().trim()),
        (
            400,
            "deletion of request which is in process or already processed is not allowed"
        )
    );
    let m = larch_testkit::metrics::scrape(s.http);
    assert_eq!(
        m.iter()
            .find(|(k, _)| k.starts_with("larch_compactor_deleted_lines_total"))
            .map(|(_, v)| *v),
        Some(80.0),
        "{m:?}"
    );
    let del = lines(&s, "del");
    assert_eq!((del.len(), secrets(&del)), (80, 0));
    // A clean stop deletes the replaced chunk files: what is on disk no
    // longer holds a deleted line.
    stop(&s);
    let on_disk = chunk_lines(&data.join("chunks"));
    assert_eq!((on_disk.len(), secrets(&on_disk)), (80, 0), "{on_disk:?}");
    // And after a restart (kill -9 this time) nothing comes back.
    let s = all_in_one(&data, cfg);
    assert_eq!(lines(&s, "del"), del);
    assert_eq!(count(&s, "del"), 80);
    assert_eq!(status_of(&s, &id).as_deref(), Some("processed"));
    drop(s);
    let s = all_in_one(&data, cfg);
    assert_eq!(lines(&s, "del"), del);
}

#[test]
fn deletion_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let off = all_in_one(
        &dir.path().join("off"),
        "limits:\n  deletion_mode: disabled\n",
    );
    for (method, q) in [
        ("POST", "query=%7Ba%3D%22b%22%7D&start=1700000000"),
        ("GET", ""),
        ("DELETE", "request_id=0123456789abcdef"),
    ] {
        let r = call(&off, method, &format!("/loki/api/v1/delete?{q}"));
        assert_eq!(
            (r.status, r.text().trim()),
            (403, "deletion is not available for this tenant"),
            "{method}"
        );
    }
    drop(off);
    let s = all_in_one(
        &data,
        "compactor:\n  delete_request_cancel_period: 1s\nlimits:\n  deletion_mode: filter-only\n",
    );
    let t0 = now_ns() - 600 * SEC;
    push(&s, "del", 20, t0);
    flush(&s);
    let id = delete(&s, r#"{app="del"} |= "secret""#, (t0 - SEC) / SEC);
    std::thread::sleep(Duration::from_millis(1200));
    flush(&s);
    // filter-only: hidden from queries, never rewritten, never processed.
    assert_eq!(status_of(&s, &id).as_deref(), Some("received"));
    assert_eq!(secrets(&lines(&s, "del")), 0);
    let on_disk = chunk_lines(&data.join("chunks"));
    assert_eq!(secrets(&on_disk), 20);
    // Past the period a cancel needs force.
    let r = call(
        &s,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = call(
        &s,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}&force=true"),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(secrets(&lines(&s, "del")), 20);
}

/// Where a cluster's bucket is.
enum Bucket {
    S3(Box<S3Server>),
    Dir(tempfile::TempDir),
}

impl Bucket {
    fn yaml(&self) -> String {
        match self {
            Bucket::S3(s) => s.storage_yaml("larch"),
            Bucket::Dir(d) => format!(
                "storage:\n  backend: filesystem\n  filesystem:\n    dir: {}\n",
                d.path().display()
            ),
        }
    }
}

fn node(bucket: &Bucket, target: &str, extra: &str) -> StoreProcess {
    StoreProcess::builder()
        .config(format!(
            "target: {target}\n{}ingester:\n  flush_check_period: 100ms\n  chunk_idle_period: 1h\ncompactor:\n  interval: 1h\n  deletion_delay: 1s\n  delete_request_cancel_period: 2s\n{extra}",
            bucket.yaml()
        ))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .start()
}

fn reader(bucket: &Bucket, w: &StoreProcess) -> StoreProcess {
    node(
        bucket,
        "read",
        &format!(
            "read:\n  write_nodes: [\"127.0.0.1:{}\"]\n  index_refresh_period: 100ms\n",
            w.grpc
        ),
    )
}

fn through_read_nodes(bucket: Bucket) {
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 600 * SEC;
    push(&w, "del", 30, t0);
    push(&w, "other", 5, t0);
    flush(&w);
    // A read node answers once its first view of the bucket is loaded.
    let r = reader(&bucket, &w);
    wait_until("the reader's view", Duration::from_secs(20), || {
        lines(&r, "del").len() == 60
    });
    assert_eq!(secrets(&lines(&r, "del")), 30);
    // Made on a read node: it filters at once.
    let id = delete(&r, r#"{app="del"} |= "secret""#, (t0 - SEC) / SEC);
    assert_eq!(secrets(&lines(&r, "del")), 0);
    assert_eq!(count(&r, "del"), 30);
    // A second read node, started now, sees it too.
    let r2 = reader(&bucket, &w);
    wait_until("the second reader's view", Duration::from_secs(20), || {
        lines(&r2, "del").len() == 30
    });
    assert_eq!(lines(&r2, "del"), lines(&r, "del"));
    assert_eq!(status_of(&r2, &id).as_deref(), Some("received"));
    // The backend rewrites the chunks once the cancel period has passed.
    let b = node(&bucket, "backend", "");
    std::thread::sleep(Duration::from_millis(2200));
    flush(&b);
    flush(&r);
    assert_eq!(status_of(&r, &id).as_deref(), Some("processed"));
    // Past the grace period the replaced objects are deleted.
    std::thread::sleep(Duration::from_millis(1200));
    flush(&b);
    let m = larch_testkit::metrics::scrape(b.http);
    assert_eq!(
        m.iter()
            .find(|(k, _)| k.starts_with("larch_compactor_deleted_lines_total"))
            .map(|(_, v)| *v),
        Some(30.0),
        "{m:?}"
    );
    // A fresh read node: the lines stay gone, the others all there.
    let r3 = reader(&bucket, &w);
    wait_until("a fresh reader's view", Duration::from_secs(20), || {
        !lines(&r3, "del").is_empty()
    });
    let del = lines(&r3, "del");
    assert_eq!((del.len(), secrets(&del)), (30, 0));
    assert_eq!(secrets(&lines(&r3, "other")), 5);
    assert_eq!(del, lines(&r, "del"));
    if let Bucket::Dir(d) = &bucket {
        let on_disk = chunk_lines(&d.path().join("chunks"));
        assert_eq!(secrets(&on_disk), 5, "only the other stream's secrets");
    }
}

#[test]
fn through_read_nodes_filesystem() {
    through_read_nodes(Bucket::Dir(tempfile::tempdir().unwrap()));
}

#[test]
fn through_read_nodes_s3() {
    through_read_nodes(Bucket::S3(Box::new(S3Server::start("larch"))));
}
