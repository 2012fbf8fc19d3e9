//! Bounded shutdown (issue 10): SIGTERM with 100k active streams did not
//! finish within Kubernetes' 30 s grace period. Now the store exits within
//! `shutdown_timeout` whatever the stream count, leaving what it did not
//! flush in the WAL, and the next start returns every line exactly once.

use std::path::Path;
use std::time::{Duration, Instant};

use larch_proto::logproto;
use larch_testkit::push;

use super::support::*;

const STREAMS: usize = 100_000;
const LINES_PER_STREAM: usize = 3;
const STREAMS_PER_PUSH: usize = 10_000;

/// One snappy protobuf push of streams `first..first + count`, each with
/// `LINES_PER_STREAM` lines.
fn big_push(first: usize, count: usize, ts0: i64) -> Vec<u8> {
    let streams = (first..first + count)
        .map(|s| logproto::Stream {
            labels: format!(r#"{{job="big", s="{s:06}"}}"#),
            entries: (0..LINES_PER_STREAM)
                .map(|j| {
                    let ts = ts0 + j as i64 * 1_000_000;
                    push::entry(ts, format!("stream {s:06} line {j}"))
                })
                .collect(),
            hash: 0,
        })
        .collect();
    push::encode(&logproto::PushRequest {
        streams,
        format: String::new(),
    })
}

fn expected(ts0: i64) -> Vec<(i64, String)> {
    let mut want: Vec<(i64, String)> = (0..STREAMS)
        .flat_map(|s| {
            (0..LINES_PER_STREAM).map(move |j| {
                (
                    ts0 + j as i64 * 1_000_000,
                    format!("stream {s:06} line {j}"),
                )
            })
        })
        .collect();
    want.sort();
    want
}

/// SIGTERM and the time until the process is gone.
fn terminate_timed(store: StoreProcess) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    let status = store.terminate();
    (status, started.elapsed())
}

fn chunk_files(data: &Path) -> usize {
    fn walk(p: &Path) -> usize {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                usize::from(e.path().extension().is_some_and(|x| x == "chunk"))
            }
        })
        .sum()
    }
    walk(&data.join("chunks"))
}

/// The instant-query total of `{job="big"}` lines.
fn count_lines(port: u16, now_s: i64) -> f64 {
    let q = "sum(count_over_time(%7Bjob%3D%22big%22%7D%5B3h%5D))";
    let r = request(
        port,
        "GET",
        &format!("/loki/api/v1/query?query={q}&time={now_s}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn sigterm_with_100k_streams_exits_in_time_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let limits = "limits:\n  max_streams_per_tenant: 0\n  ingestion_rate_mb: 1000\n  ingestion_burst_size_mb: 1000\n";
    // First run: flush on shutdown, with a budget far too small for 100k
    // chunks: the store writes what fits and leaves the rest in the WAL.
    // (About 200 chunk files a second here on a quiet debug build; the
    // forced flush first seals every open chunk, which on a loaded machine
    // took the whole of a 2 s budget, so the budget is 4 s.)
    let flushing = dir.path().join("flushing.yaml");
    std::fs::write(
        &flushing,
        format!("{limits}shutdown_timeout: 4s\ningester:\n  flush_on_shutdown: true\n"),
    )
    .unwrap();
    // Second run: the defaults (no flush on shutdown).
    let default = dir.path().join("default.yaml");
    std::fs::write(&default, limits).unwrap();

    let ts0 = now_ns() - 3_600_000_000_000;
    let store = StoreProcess::start(&data, &["--config", flushing.to_str().unwrap()]);
    let started = Instant::now();
    for first in (0..STREAMS).step_by(STREAMS_PER_PUSH) {
        let r = request(
            store.http,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &big_push(first, STREAMS_PER_PUSH, ts0),
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let pushed_in = started.elapsed();
    let (status, flush_stop) = terminate_timed(store);
    assert!(status.success(), "{status:?}");
    let chunks_after_flush = chunk_files(&data);

    // Restart: replay restores what the flush did not write.
    let started = Instant::now();
    let store = StoreProcess::start(&data, &["--config", default.to_str().unwrap()]);
    let replay = started.elapsed();
    let now_s = now_ns() / 1_000_000_000;
    assert_eq!(
        count_lines(store.http, now_s),
        (STREAMS * LINES_PER_STREAM) as f64
    );
    // 100k streams in memory again, stopped with the defaults.
    let (status, default_stop) = terminate_timed(store);
    assert!(status.success(), "{status:?}");
    eprintln!(
        "{STREAMS} streams x {LINES_PER_STREAM} lines pushed in {pushed_in:?}; \
         SIGTERM with flush_on_shutdown (4s budget): exit after {flush_stop:?}, {chunks_after_flush} chunk files; \
         restart (WAL replay) ready after {replay:?}; \
         SIGTERM with the defaults: exit after {default_stop:?}, {} chunk files",
        chunk_files(&data)
    );
    assert!(
        flush_stop < Duration::from_secs(10),
        "flushing shutdown took {flush_stop:?}"
    );
    assert!(
        default_stop < Duration::from_secs(10),
        "default shutdown took {default_stop:?}"
    );
    assert!(chunks_after_flush > 0, "the flush wrote something");
    assert!(
        chunks_after_flush < STREAMS,
        "a 4s budget cannot have written every chunk"
    );

    // Every line exactly once, whether it came from a chunk or the WAL.
    let ing = open_dir(&data);
    assert_eq!(read_back(&ing, "fake", "job", "big"), expected(ts0));
}

/// A client that never finishes its request cannot hold the shutdown past
/// `shutdown_timeout`; the pushes acknowledged before stay.
#[test]
fn a_stalled_request_does_not_hold_the_shutdown() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("store.yaml");
    std::fs::write(&cfg, "shutdown_timeout: 1s\n").unwrap();
    let data = dir.path().join("data");
    let store = StoreProcess::start(&data, &["--config", cfg.to_str().unwrap()]);
    let ts = now_ns();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(r#"{app="stall"}"#, ts, &["acknowledged".to_string()]),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    // Headers and part of a body, then nothing.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", store.http)).unwrap();
    stalled
        .write_all(b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"streams\": [")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = terminate_timed(store);
    assert!(status.success(), "{status:?}");
    // The 1s budget, plus the ingester's stop.
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    drop(stalled);
    let ing = open_dir(&data);
    assert_eq!(
        read_back(&ing, "fake", "app", "stall"),
        vec![(ts, "acknowledged".to_string())]
    );
}

/// A second SIGTERM (or Ctrl-C) ends a shutdown that is waiting, at once;
/// the WAL still has every acknowledged push.
#[test]
fn a_second_signal_exits_at_once() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("store.yaml");
    std::fs::write(&cfg, "shutdown_timeout: 60s\n").unwrap();
    let data = dir.path().join("data");
    let store = StoreProcess::start(&data, &["--config", cfg.to_str().unwrap()]);
    let ts = now_ns();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(r#"{app="twice"}"#, ts, &["acknowledged".to_string()]),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    // A stalled request keeps the first shutdown waiting for 60s.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", store.http)).unwrap();
    stalled
        .write_all(b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    store.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(store.try_wait().is_none(), "still draining");
    store.signal("TERM");
    let status = loop {
        if let Some(s) = store.try_wait() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    drop(stalled);
    drop(store);
    let ing = open_dir(&data);
    assert_eq!(
        read_back(&ing, "fake", "app", "twice"),
        vec![(ts, "acknowledged".to_string())]
    );
}
