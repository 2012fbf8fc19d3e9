//! The `larch-store` binary as a process: kill -9 durability, malformed
//! input, SIGTERM.

use super::support::*;

#[test]
fn acknowledged_pushes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let t0 = now_ns() - 10_000_000_000;
    let mut acked = Vec::new();
    // Concurrent writers, so group commits hold several requests.
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let port = store.http;
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for b in 0..25 {
                    let lines: Vec<String> = (0..20)
                        .map(|i| format!("writer {w} batch {b} line {i}"))
                        .collect();
                    let ts = t0 + ((w * 1000 + b * 20) as i64) * 1_000_000;
                    let body =
                        protobuf_lines(&format!("{{app=\"k9\", writer=\"{w}\"}}"), ts, &lines);
                    let r = request(
                        port,
                        "POST",
                        "/loki/api/v1/push",
                        &[("Content-Type", "application/x-protobuf")],
                        &body,
                    )
                    .unwrap();
                    assert_eq!(r.status, 204, "{}", r.text());
                    mine.extend(
                        lines
                            .into_iter()
                            .enumerate()
                            .map(|(i, l)| (ts + i as i64, l)),
                    );
                }
                mine
            })
        })
        .collect();
    for t in threads {
        acked.extend(t.join().unwrap());
    }
    store.kill9();
    acked.sort();
    let ing = open_dir(dir.path());
    assert_eq!(read_back(&ing, "fake", "app", "k9"), acked);
}

/// An HTTP protobuf push is logged as its snappy body and where each
/// accepted line lies in it (WAL records of kind 3). Lines of several
/// streams, a stream sent twice in one push (so its lines are not in
/// body order), an empty line, a line cut to `max_line_size`, and a push
/// whose first entry the writer drops as a duplicate of a stored one (its
/// record is written again without it) all come back exactly after kill
/// -9, and every record in the WAL is of that kind.
#[test]
fn http_pushes_are_logged_as_their_bodies_and_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path())
        .config("limits:\n  max_line_size: 120\n  max_line_size_truncate: true\n")
        .start();
    let t0 = now_ns() - 10_000_000_000;
    let line = |i: i64| {
        format!(
            "GET /api/v1/items/{i} 200 in {}ms from 10.1.{}.7 user=u{}",
            i * 7 % 90,
            i % 250,
            i % 13
        )
    };
    let long: String = (0..12).map(line).collect::<Vec<_>>().join(" | ");
    let a = r#"{app="body", part="a"}"#;
    let b = r#"{app="body", part="b"}"#;
    // (ts, line) of stream a's first part, b, a's second part, and the
    // second push (a again, starting with a duplicate of a stored entry).
    let lines = |from: i64, to: i64| (from..to).map(|i| (t0 + i, line(i))).collect::<Vec<_>>();
    let mut a1 = lines(0, 30);
    a1.push((t0 + 30, String::new()));
    a1.push((t0 + 31, long.clone()));
    let b1 = lines(0, 30);
    let a2 = lines(32, 60);
    let mut a3 = vec![a2[a2.len() - 1].clone()];
    a3.extend(lines(60, 90));
    let body = |streams: Vec<(&str, &Vec<(i64, String)>)>| {
        protobuf(
            streams
                .into_iter()
                .map(|(l, es)| (l, es.iter().map(|(ts, s)| (*ts, s.clone())))),
        )
    };
    let pushes = [
        body(vec![(a, &a1), (b, &b1), (a, &a2)]),
        body(vec![(a, &a3)]),
    ];
    for body in &pushes {
        let r = store
            .request("POST", "/loki/api/v1/push", &[PROTOBUF], body)
            .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    store.kill9();

    let mut kinds = Vec::new();
    for f in std::fs::read_dir(dir.path().join("wal")).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        // The segment's magic, then `u32le len | u32le crc | kind ...`.
        let mut pos = 8;
        while pos + 9 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            kinds.push(bytes[pos + 8]);
            pos += 8 + len;
        }
        assert_eq!(pos, bytes.len(), "the frames fill the segment");
    }
    assert_eq!(kinds, vec![3, 3], "one body record per push");

    let ing = open_dir(dir.path());
    let mut want: Vec<(i64, String)> = a1
        .iter()
        .chain(&b1)
        .chain(&a2)
        .chain(&a3[1..])
        .map(|(ts, l)| (*ts, l.chars().take(120).collect()))
        .collect();
    want.sort();
    assert_eq!(read_back(&ing, "fake", "app", "body"), want);
}

#[test]
fn malformed_input_gets_400_and_the_store_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let p = store.http;
    let pb = [("Content-Type", "application/x-protobuf")];
    let json = [("Content-Type", "application/json")];
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "bad snappy",
            pb.to_vec(),
            b"\xff\xff\xff\xff".to_vec(),
            400,
            "snappy",
        ),
        (
            "truncated protobuf",
            pb.to_vec(),
            {
                let full = protobuf_lines(r#"{app="x"}"#, now_ns(), &["hello".to_string()]);
                let raw = snap::raw::Decoder::new().decompress_vec(&full).unwrap();
                snap::raw::Encoder::new()
                    .compress_vec(&raw[..raw.len() - 2])
                    .unwrap()
            },
            400,
            "protobuf",
        ),
        (
            "bad label string",
            pb.to_vec(),
            protobuf_lines(r#"{a="b}"#, now_ns(), &["x".to_string()]),
            400,
            "error parsing labels '{a=\"b}'",
        ),
        (
            "invalid label name",
            json.to_vec(),
            format!(
                r#"{{"streams":[{{"stream":{{"a-b":"c"}},"values":[["{}","x"]]}}]}}"#,
                now_ns()
            )
            .into_bytes(),
            400,
            "invalid label name",
        ),
        (
            "non-numeric timestamp",
            json.to_vec(),
            br#"{"streams":[{"stream":{"a":"b"},"values":[["soon","x"]]}]}"#.to_vec(),
            400,
            "invalid timestamp",
        ),
        (
            "numeric timestamp",
            json.to_vec(),
            br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#.to_vec(),
            400,
            "failed to parse push request JSON",
        ),
        ("not json", json.to_vec(), b"{{{".to_vec(), 400, "JSON"),
        (
            "no content type",
            vec![],
            b"x".to_vec(),
            400,
            "mime: no media type",
        ),
        (
            "bad gzip",
            vec![
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            b"nope".to_vec(),
            400,
            "gzip",
        ),
        (
            "unknown encoding",
            vec![
                ("Content-Type", "application/json"),
                ("Content-Encoding", "br"),
            ],
            b"{}".to_vec(),
            400,
            "not supported",
        ),
        (
            "bad tenant",
            vec![
                ("Content-Type", "application/json"),
                ("X-Scope-OrgID", "../etc"),
            ],
            b"{}".to_vec(),
            401,
            "unsupported character",
        ),
    ];
    for (name, headers, body, status, needle) in cases {
        let r = request(p, "POST", "/loki/api/v1/push", &headers, &body).unwrap();
        assert_eq!(r.status, status, "{name}: {}", r.text());
        assert!(
            r.text().contains(needle),
            "{name}: {:?} lacks {needle:?}",
            r.text()
        );
    }
    // A partially valid request stores the valid entries and reports the rest.
    let now = now_ns();
    let body = format!(
        r#"{{"streams":[{{"stream":{{"app":"part"}},"values":[["{now}","good"],["{}","too old"]]}}]}}"#,
        now - 30 * 86_400_000_000_000
    );
    let r = request(p, "POST", "/loki/api/v1/push", &json, body.as_bytes()).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("has timestamp too old"), "{}", r.text());
    assert_eq!(request(p, "GET", "/ready", &[], b"").unwrap().status, 200);
    let metrics = request(p, "GET", "/metrics", &[], b"").unwrap().text();
    assert!(
        metrics.contains(
            r#"larch_discarded_entries_total{tenant="fake",reason="greater_than_max_sample_age"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "larch_request_duration_seconds_count{route=\"loki_api_v1_push\",status_code=\"400\"}"
    ));
    let status = store.terminate();
    assert!(status.success());
    let ing = open_dir(dir.path());
    assert_eq!(
        read_back(&ing, "fake", "app", "part"),
        vec![(now, "good".to_string())]
    );
}

#[test]
fn sigterm_with_flush_on_shutdown_writes_everything_to_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("flush.yaml");
    std::fs::write(&cfg, "ingester:\n  flush_on_shutdown: true\n").unwrap();
    let data = dir.path().join("data");
    let store = StoreProcess::start(&data, &["--config", cfg.to_str().unwrap()]);
    let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let ts = now_ns();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(r#"{app="term"}"#, ts, &lines),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert!(store.terminate().success());
    // Everything is in chunk files; the WAL holds nothing to replay.
    let (ing, report) = larch_store::ingester::Ingester::open(
        larch_store::config::Config {
            data_dir: data.clone(),
            ..Default::default()
        },
        std::sync::Arc::new(larch_store::metrics::Metrics::new()),
    )
    .unwrap();
    assert_eq!(report.replayed_entries, 0);
    assert_eq!(read_back(&ing, "fake", "app", "term").len(), 100);
    let chunks = std::fs::read_dir(data.join("chunks/fake")).unwrap().count();
    assert_eq!(chunks, 1);
}

#[test]
fn sigterm_by_default_leaves_open_chunks_in_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    let ts = now_ns();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(r#"{app="term"}"#, ts, &lines),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert!(store.terminate().success());
    // No chunk was written: the WAL holds the lines, and replay brings
    // them back once.
    assert!(!dir.path().join("chunks/fake").exists());
    let (ing, report) = larch_store::ingester::Ingester::open(
        larch_store::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        },
        std::sync::Arc::new(larch_store::metrics::Metrics::new()),
    )
    .unwrap();
    assert_eq!(report.replayed_entries, 100);
    let want: Vec<(i64, String)> = lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| (ts + i as i64, l))
        .collect();
    assert_eq!(read_back(&ing, "fake", "app", "term"), want);
}

#[test]
fn all_in_one_store_with_embedded_agent() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let agent_port = free_port();
    let cfg = dir.path().join("larch.yaml");
    std::fs::write(
        &cfg,
        format!(
            "agent:\n  pods_dir: {}\n  positions: {}\n  http_addr: 127.0.0.1:{agent_port}\n  batch_wait: 100ms\n  kubernetes:\n    mode: \"off\"\n",
            pods.display(),
            dir.path().join("positions.yaml").display()
        ),
    )
    .unwrap();
    let store = StoreProcess::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    // A pod's container log in CRI format, as the kubelet writes it.
    let log_dir = pods.join("shop_checkout-7d4b_0f1e2d3c/app");
    std::fs::create_dir_all(&log_dir).unwrap();
    let now = chrono_like_rfc3339(now_ns());
    std::fs::write(
        log_dir.join("0.log"),
        format!("{now} stdout F first line\n{now} stdout P joined \n{now} stdout F line\n"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let query = "%7Bnamespace%3D%22shop%22%7D";
    loop {
        let r = request(
            store.http,
            "GET",
            &format!("/loki/api/v1/query_range?query={query}&direction=forward"),
            &[],
            b"",
        )
        .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let result = &j["data"]["result"];
        if result.as_array().is_some_and(|a| !a.is_empty()) {
            let labels = &result[0]["stream"];
            assert_eq!(labels["pod"], "checkout-7d4b");
            assert_eq!(labels["container"], "app");
            let lines: Vec<&str> = result[0]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[1].as_str().unwrap())
                .collect();
            if lines.len() == 2 {
                assert_eq!(lines, vec!["first line", "joined line"]);
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent's lines never arrived: {}",
            r.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(store.terminate().success());
}

/// Unix ns as RFC3339 with nanoseconds, as CRI writes timestamps.
fn chrono_like_rfc3339(ns: i64) -> String {
    larch_store::validate::rfc3339(ns)
}

#[test]
fn ingestion_rate_limit_answers_429_or_413_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("limits.yaml");
    // 1 KiB/s sustained, 2 KiB burst.
    std::fs::write(
        &cfg,
        "limits:\n  ingestion_rate_mb: 0.0009765625\n  ingestion_burst_size_mb: 0.001953125\n",
    )
    .unwrap();
    let store = StoreProcess::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let pb = [("Content-Type", "application/x-protobuf")];
    let small: Vec<String> = (0..10).map(|i| format!("small {i}")).collect();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &pb,
        &protobuf_lines(r#"{app="rl"}"#, now_ns(), &small),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    // 1900 bytes fit the burst once; right after, the bucket is nearly
    // empty: 429, retry later.
    let big: Vec<String> = (0..19).map(|i| format!("{i:0>100}")).collect();
    let push_big = || {
        request(
            store.http,
            "POST",
            "/loki/api/v1/push",
            &pb,
            &protobuf_lines(r#"{app="rl"}"#, now_ns(), &big),
        )
        .unwrap()
    };
    let r = push_big();
    assert_eq!(r.status, 204, "{}", r.text());
    let r = push_big();
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.text().starts_with("ingestion rate limit exceeded for user fake (limit: 1024 bytes/sec) while attempting to ingest '19' lines totaling '1900' bytes"),
        "{}",
        r.text()
    );
    // More than the burst can never pass: 413, not a 429 to retry forever.
    let huge: Vec<String> = (0..100).map(|i| format!("{i:0>100}")).collect();
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &pb,
        &protobuf_lines(r#"{app="rl"}"#, now_ns(), &huge),
    )
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text().starts_with("ingestion burst size limit exceeded for user fake (limit: 2048 bytes) while attempting to ingest '100' lines totaling '10000' bytes in one request"),
        "{}",
        r.text()
    );
    // Another tenant has its own bucket.
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Scope-OrgID", "other"),
        ],
        &protobuf_lines(r#"{app="rl"}"#, now_ns(), &small),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert!(store.terminate().success());
    let ing = open_dir(&dir.path().join("data"));
    assert_eq!(
        read_back(&ing, "fake", "app", "rl").len(),
        10 + 19,
        "the refused requests wrote nothing"
    );
}

/// Issue 11: configuration errors name the key path and the line and
/// column of the value at fault, also deep inside the embedded agent's
/// pipeline stages.
#[test]
fn issue_11_check_config_gives_the_line_of_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "http_addr: 127.0.0.1:3100\nretention_perod: 24h\n",
            "retention_perod: unknown field `retention_perod`",
            "at line 2 column 1",
        ),
        (
            "http_addr: 127.0.0.1:3100\nmax_tenants: -1\n",
            "max_tenants: ",
            "at line 2 column 14",
        ),
        (
            "limits:\n  max_line_size: 1MB\noverrides:\n  team-a:\n    retention_period: 10 years\n",
            "overrides.team-a.retention_period: ",
            "at line 5 column 23",
        ),
        (
            "agent:\n  store: http://127.0.0.1:3100\n  pipeline_stages:\n  - cri: {}\n  - drop:\n      older_than: 10\n",
            "agent.pipeline_stages[1].drop.older_than: ",
            "at line 6 column 19",
        ),
    ];
    for (i, (text, key, at)) in cases.into_iter().enumerate() {
        let f = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new(larch_testkit::binary("larch-store"))
            .args(["--check-config", "--config", f.to_str().unwrap()])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(key) && first.ends_with(at),
            "{text:?}: {err}"
        );
    }
}
