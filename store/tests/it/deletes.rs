//! Loki's delete API with real processes: requests made, listed and
//! cancelled; deleted lines gone from log and metric queries at once, after
//! a kill -9, after the compactor rewrote the chunks (in `all` mode on the
//! journal, and by a `backend` over a bucket, seen through `read` nodes,
//! on the filesystem and on a real S3-compatible server).

use std::path::Path;
use std::time::{Duration, Instant};

use larch_testkit::http::{Response, percent, request};
use larch_testkit::push::protobuf_lines;
use larch_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use larch_testkit::{StoreProcess, now_ns};

use super::bucket_objects::{chunk_file_lines, live_chunks};

const SEC: i64 = 1_000_000_000;

fn call(p: &StoreProcess, method: &str, path: &str) -> Response {
    request(p.http, method, path, &[], b"").unwrap()
}

/// Pushes `n` lines `keep <app> <i>` and `n` lines `secret <app> <i>` to
/// `{app="<app>"}`, from `t0`, one per nanosecond.
fn push(p: &StoreProcess, app: &str, n: usize, t0: i64) {
    push_from(p, app, 0, n, t0);
}

/// [`push`] with `i` from `first` to `first + n - 1`.
fn push_from(p: &StoreProcess, app: &str, first: usize, n: usize, t0: i64) {
    let lines: Vec<String> = (first..first + n)
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

/// What [`push_from`] pushed for `i` in `range`, sorted: the `keep` lines,
/// and the `secret` ones too with `secrets_too`.
fn pushed(app: &str, range: std::ops::Range<usize>, secrets_too: bool) -> Vec<String> {
    let mut out: Vec<String> = range
        .flat_map(|i| {
            let keep = format!("keep {app} {i}");
            let secret = secrets_too.then(|| format!("secret {app} {i}"));
            std::iter::once(keep).chain(secret)
        })
        .collect();
    out.sort();
    out
}

/// The lines `{app="<app>"}` returns over the last two hours, sorted.
fn lines(p: &StoreProcess, app: &str) -> Vec<String> {
    try_lines(p, app).unwrap_or_else(|e| panic!("{e}"))
}

/// [`lines`], or the status and text of an answer other than 200.
fn try_lines(p: &StoreProcess, app: &str) -> Result<Vec<String>, String> {
    let q = percent(&format!("{{app=\"{app}\"}}"));
    let (start, end) = (now_ns() - 7200 * SEC, now_ns() + SEC);
    let r = call(
        p,
        "GET",
        &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000"),
    );
    if r.status != 200 {
        return Err(format!("{}: {}", r.status, r.text()));
    }
    let v = r.json();
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push(e[1].as_str().unwrap().to_string());
        }
    }
    out.sort();
    Ok(out)
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
    let on_disk = chunk_file_lines(&data.join("chunks"));
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
    let on_disk = chunk_file_lines(&data.join("chunks"));
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
    /// The directory the bucket's objects are files of.
    fn root(&self) -> std::path::PathBuf {
        match self {
            Bucket::S3(s) => s.root.join("larch"),
            Bucket::Dir(d) => d.path().to_path_buf(),
        }
    }

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

/// The sum of the series of `name` in `/metrics` (0 when absent).
fn metric(p: &StoreProcess, name: &str) -> f64 {
    larch_testkit::metrics::scrape(p.http)
        .iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .sum()
}

/// Runs the backend until the delete request `id` is processed and the
/// objects it replaced are past their grace period and deleted: one run
/// once the cancel period (2 s) has passed since `made`, then two more,
/// each past the grace period (1 s) of the one before.
fn rewrite(b: &StoreProcess, r: &StoreProcess, id: &str, made: Instant) {
    let due = made + Duration::from_millis(2200);
    std::thread::sleep(due.saturating_duration_since(Instant::now()));
    flush(b);
    flush(r);
    assert_eq!(status_of(r, id).as_deref(), Some("processed"));
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1200));
        flush(b);
    }
}

/// What the bucket holds after the rewrite, decoded object by object
/// (the read path would hide a doubled or a deleted line; this does not):
/// the chunks the live segments name hold every `keep del` line of
/// `0..n` once and no `secret del` line, and every line of `other` once;
/// no chunk object left in the bucket holds a `secret del` line.
fn bucket_holds_no_deleted_line(bucket: &Bucket, n: usize) {
    let live = live_chunks(&bucket.root(), "fake");
    let with_secret: Vec<&str> = live
        .iter()
        .filter(|c| c.lines.iter().any(|l| l.starts_with("secret del")))
        .map(|c| c.key.as_str())
        .collect();
    assert!(
        with_secret.is_empty(),
        "live chunks holding deleted lines: {with_secret:?}"
    );
    let mut stored: Vec<String> = live.iter().flat_map(|c| c.lines.clone()).collect();
    stored.sort();
    let mut want = pushed("del", 0..n, false);
    want.extend(pushed("other", 0..5, true));
    want.sort();
    assert_eq!(stored, want, "the live chunks' lines, each once");
    let everything = chunk_file_lines(&bucket.root().join("chunks"));
    assert_eq!(
        everything
            .iter()
            .filter(|l| l.starts_with("secret del"))
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "a deleted line left in a chunk object of the bucket"
    );
    assert_eq!(secrets(&everything), 5, "only the other stream's secrets");
}

/// The role-mode delete: a request made on a read node filters at once
/// and a second read node sees it; the backend's rewrite runs while a
/// reader loops, and every answer is exact: from the moment the request
/// is acknowledged no query begun after it shows a deleted line (before
/// it, all of them or none), and no kept line is ever missing or doubled,
/// while the write node publishes the lines it still held, the backend
/// rewrites the chunks, supersedes the segments and deletes the originals.
fn through_read_nodes(bucket: Bucket) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 600 * SEC;
    push(&w, "del", 30, t0);
    push(&w, "other", 5, t0);
    flush(&w);
    // And some still in the write node's memory.
    push_from(&w, "del", 30, 10, t0 + 100 * 1_000_000);
    let (all, kept) = (pushed("del", 0..40, true), pushed("del", 0..40, false));
    let other = pushed("other", 0..5, true);
    // A read node answers once its first view of the bucket is loaded.
    let r = reader(&bucket, &w);
    wait_until("the reader's view", Duration::from_secs(20), || {
        lines(&r, "del") == all
    });

    let acked: Mutex<Option<Instant>> = Mutex::new(None);
    let rewriting = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (after, during_rewrite) = (AtomicUsize::new(0), AtomicUsize::new(0));
    /// Stops the reader's loop when dropped, also when the test panics
    /// (the scope would otherwise wait for the loop for ever).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    std::thread::scope(|sc| {
        let _stop_on_drop = StopOnDrop(&stop);
        let looper = sc.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                let began = Instant::now();
                let in_rewrite = rewriting.load(Ordering::Acquire);
                let got = lines(&r, "del");
                let n = count(&r, "del");
                assert_eq!(lines(&r, "other"), other, "the other stream");
                let filtered = acked.lock().unwrap().is_some_and(|a| began >= a);
                if filtered {
                    assert_eq!(got, kept, "a query begun after the delete's 204");
                    assert_eq!(n, 40, "a count begun after the delete's 204");
                    after.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert!(got == all || got == kept, "before the 204: {got:?}");
                }
                if in_rewrite && rewriting.load(Ordering::Acquire) {
                    during_rewrite.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Made on the read node while it answers queries.
        std::thread::sleep(Duration::from_millis(300));
        let id = delete(&r, r#"{app="del"} |= "secret""#, (t0 - SEC) / SEC);
        let made = Instant::now();
        *acked.lock().unwrap() = Some(made);
        assert_eq!(lines(&r, "del"), kept);
        assert_eq!(count(&r, "del"), 40);
        // The write node publishes what it held: the reader now finds
        // those lines in the bucket rather than in the write node.
        flush(&w);
        // A second read node, started now, sees the request too.
        let r2 = reader(&bucket, &w);
        wait_until("the second reader's view", Duration::from_secs(20), || {
            lines(&r2, "del") == kept
        });
        assert_eq!(status_of(&r2, &id).as_deref(), Some("received"));
        // The backend rewrites the chunks once the cancel period has
        // passed, then deletes the replaced objects, while `r` answers.
        let b = node(&bucket, "backend", "");
        rewriting.store(true, Ordering::Release);
        rewrite(&b, &r, &id, made);
        rewriting.store(false, Ordering::Release);
        stop.store(true, Ordering::Release);
        if let Err(e) = looper.join() {
            std::panic::resume_unwind(e);
        }
        assert_eq!(metric(&b, "larch_compactor_deleted_lines_total"), 40.0);
        assert!(
            metric(&b, "larch_compactor_deleted_objects_total") > 0.0,
            "the replaced objects were deleted"
        );
        assert_eq!(lines(&r2, "del"), kept);
    });
    let (after, during_rewrite) = (after.into_inner(), during_rewrite.into_inner());
    assert!(
        after > 3 && during_rewrite > 3,
        "the reader ran: {after} queries after the 204, {during_rewrite} within the rewrite"
    );
    // A fresh read node: the lines stay gone, the others all there.
    let r3 = reader(&bucket, &w);
    wait_until("a fresh reader's view", Duration::from_secs(20), || {
        !lines(&r3, "del").is_empty()
    });
    assert_eq!(lines(&r3, "del"), kept);
    assert_eq!(lines(&r3, "other"), other);
    assert_eq!(count(&r3, "del"), 40);
    bucket_holds_no_deleted_line(&bucket, 40);
}

#[test]
fn through_read_nodes_filesystem() {
    through_read_nodes(Bucket::Dir(tempfile::tempdir().unwrap()));
}

#[test]
fn through_read_nodes_s3() {
    through_read_nodes(Bucket::S3(Box::new(S3Server::start("larch"))));
}

/// A delete request made while the lines are still only in a write
/// node's memory and WAL: after a kill -9 and a restart (the WAL
/// replayed: the kept lines of the second half come back from it alone)
/// every read node still hides them; once the write node has
/// published them and the backend has rewritten the chunks, no chunk
/// object holds a deleted line and the live chunks hold every kept line
/// once; a second kill -9 after the rewrite brings nothing back.
fn through_a_write_node_kill(bucket: Bucket) {
    let w = node(&bucket, "write", "");
    let t0 = now_ns() - 600 * SEC;
    push(&w, "del", 20, t0);
    push(&w, "other", 5, t0);
    flush(&w);
    push_from(&w, "del", 20, 20, t0 + 100 * 1_000_000);
    let kept = pushed("del", 0..40, false);
    let other = pushed("other", 0..5, true);
    let r = reader(&bucket, &w);
    wait_until("the reader's view", Duration::from_secs(20), || {
        lines(&r, "del").len() == 80
    });
    // The second half is in no chunk object yet.
    let stored: Vec<String> = live_chunks(&bucket.root(), "fake")
        .into_iter()
        .flat_map(|c| c.lines)
        .collect();
    assert!(
        !stored.is_empty() && !stored.iter().any(|l| l == "secret del 20"),
        "{stored:?}"
    );
    let id = delete(&r, r#"{app="del"} |= "secret""#, (t0 - SEC) / SEC);
    let made = Instant::now();
    assert_eq!(lines(&r, "del"), kept);

    w.kill9();
    w.restart();
    let answers = |p: &StoreProcess| {
        wait_until(
            "an answer through the write node",
            Duration::from_secs(20),
            || try_lines(p, "del").is_ok(),
        );
    };
    answers(&r);
    assert_eq!(lines(&r, "del"), kept, "after the write node's WAL replay");
    assert_eq!(count(&r, "del"), 40);
    assert_eq!(lines(&r, "other"), other);
    let r2 = reader(&bucket, &w);
    answers(&r2);
    assert_eq!(lines(&r2, "del"), kept, "a reader started after the replay");
    assert_eq!(status_of(&r2, &id).as_deref(), Some("received"));

    // Published after the restart, rewritten by the backend.
    flush(&w);
    assert_eq!(lines(&r, "del"), kept);
    let b = node(&bucket, "backend", "");
    rewrite(&b, &r, &id, made);
    assert_eq!(metric(&b, "larch_compactor_deleted_lines_total"), 40.0);
    assert_eq!(lines(&r, "del"), kept);
    bucket_holds_no_deleted_line(&bucket, 40);

    // Everything the write node held is published and its WAL trimmed:
    // a kill -9 and a restart now (a replay of what is left, and a
    // publication of any journal record after the last `published` one)
    // bring none of the deleted lines back.
    w.kill9();
    w.restart();
    answers(&r);
    flush(&w);
    flush(&b);
    assert_eq!(lines(&r, "del"), kept, "after a kill -9 past the rewrite");
    let r3 = reader(&bucket, &w);
    wait_until("a fresh reader's view", Duration::from_secs(20), || {
        try_lines(&r3, "del").is_ok_and(|l| !l.is_empty())
    });
    assert_eq!(lines(&r3, "del"), kept);
    assert_eq!(lines(&r3, "other"), other);
    bucket_holds_no_deleted_line(&bucket, 40);
}

#[test]
fn deleted_lines_stay_hidden_through_a_write_node_kill_s3() {
    through_a_write_node_kill(Bucket::S3(Box::new(S3Server::start("larch"))));
}

#[test]
fn deleted_lines_stay_hidden_through_a_write_node_kill_filesystem() {
    through_a_write_node_kill(Bucket::Dir(tempfile::tempdir().unwrap()));
}
