//! Explore's "Live" mode: the browser opens a WebSocket through the data
//! source proxy to `<url>/loki/api/v1/tail?query=<expr>`
//! (`datasource.ts` `createLiveTarget`, `LiveStreams.ts`), sending only
//! `query` plus the data source's custom headers. A real WebSocket client
//! (tokio-tungstenite) plays the browser here.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::support::*;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(
    port: u16,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Ws, WsError> {
    let mut req = format!(
        "ws://127.0.0.1:{port}/loki/api/v1/tail{}",
        query_string(params)
    )
    .into_client_request()
    .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The next text frame as JSON, or the close frame's (code, reason).
async fn next(ws: &mut Ws, within: Duration) -> Result<serde_json::Value, (u16, String)> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no frame within {within:?}"));
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(Some(f)))) => {
                return Err((u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(Message::Close(None))) | None => return Err((1005, String::new())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err((1006, e.to_string())),
        }
    }
}

/// Every (ts, line, stream) of a frame, checking the frame's shape.
fn entries(frame: &serde_json::Value, categorized: bool) -> Vec<(i64, String, serde_json::Value)> {
    let obj = frame.as_object().unwrap();
    for k in obj.keys() {
        assert!(
            ["streams", "dropped_entries", "encodingFlags"].contains(&k.as_str()),
            "unexpected key {k}"
        );
    }
    if categorized {
        assert_eq!(
            frame["encodingFlags"],
            serde_json::json!(["categorize-labels"])
        );
    } else {
        assert!(frame.get("encodingFlags").is_none());
    }
    let mut out = Vec::new();
    for s in frame["streams"].as_array().unwrap() {
        for v in s["values"].as_array().unwrap() {
            let v = v.as_array().unwrap();
            assert_eq!(v.len(), if categorized { 3 } else { 2 }, "{v:?}");
            out.push((
                v[0].as_str().unwrap().parse().unwrap(),
                v[1].as_str().unwrap().to_string(),
                s["stream"].clone(),
            ));
        }
    }
    out
}

async fn push_line(
    port: u16,
    labels: &'static str,
    line: String,
    tenant: Option<&'static str>,
) -> i64 {
    tokio::task::spawn_blocking(move || {
        let ts = now_ns();
        let body = serde_json::json!({"streams": [{"stream": serde_json::from_str::<serde_json::Value>(labels).unwrap(), "values": [[ts.to_string(), line]]}]});
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let r = request(port, "POST", "/loki/api/v1/push", &headers, body.to_string().as_bytes()).unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
        ts
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_history_then_new_lines_within_a_second() {
    let _serial = timing().await;
    let store = tokio::task::spawn_blocking(start_store).await.unwrap();
    let port = store.http;
    let d = tokio::task::spawn_blocking(move || push_data(port))
        .await
        .unwrap();

    // Grafana sends only `query`: history is the last hour, limit 100.
    let mut ws = connect(port, &[("query", r#"{app="checkout"}"#)], &[])
        .await
        .unwrap();
    let mut history = Vec::new();
    while history.len() < 60 {
        let f = next(&mut ws, Duration::from_secs(10)).await.unwrap();
        assert!(f.get("dropped_entries").is_none_or(|d| d.is_null()));
        history.extend(entries(&f, false));
    }
    assert_eq!(history.len(), 60);
    let got: Vec<(i64, String)> = history.iter().map(|(t, l, _)| (*t, l.clone())).collect();
    assert_eq!(got, d.checkout, "oldest first, all of them");
    // Without categorize-labels, metadata is part of the labels.
    assert!(
        history
            .iter()
            .all(|(_, _, s)| s["trace_id"].is_string() && s["app"] == "checkout")
    );

    // A line pushed now reaches the client within a second of the ack.
    for n in 0..3 {
        let line = format!("level=info msg=\"live line {n}\"");
        let ts = push_line(
            port,
            r#"{"app":"checkout","env":"prod","namespace":"shop","pod":"checkout-7d9f"}"#,
            line.clone(),
            None,
        )
        .await;
        let acked = Instant::now();
        let f = next(&mut ws, Duration::from_secs(1)).await.unwrap();
        let elapsed = acked.elapsed();
        let e = entries(&f, false);
        assert_eq!(e.len(), 1, "{f}");
        assert_eq!((e[0].0, e[0].1.as_str()), (ts, line.as_str()));
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
    // Other streams do not match the selector.
    push_line(
        port,
        r#"{"app":"frontend"}"#,
        "not for this tail".into(),
        None,
    )
    .await;
    let marker = push_line(port, r#"{"app":"checkout"}"#, "marker".into(), None).await;
    let f = next(&mut ws, Duration::from_secs(1)).await.unwrap();
    let e = entries(&f, false);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, marker);
    ws.close(None).await.unwrap();
}

/// The query's pipeline runs on live entries; with the flags header the
/// frames carry `encodingFlags` and 3-tuples; tenants are apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_pipeline_categorized_and_tenants() {
    let store = tokio::task::spawn_blocking(start_store).await.unwrap();
    let port = store.http;
    let headers = [
        ("X-Loki-Response-Encoding-Flags", "categorize-labels"),
        ("X-Scope-OrgID", "team-a"),
    ];
    let mut ws = connect(
        port,
        &[("query", r#"{app="api"} |= "GET" | logfmt | status >= 500"#)],
        &headers,
    )
    .await
    .unwrap();
    // No history: nothing is sent until a line matches. Give the feed a
    // moment to subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;
    push_line(
        port,
        r#"{"app":"api"}"#,
        "method=GET status=200".into(),
        Some("team-a"),
    )
    .await;
    push_line(
        port,
        r#"{"app":"api"}"#,
        "method=POST status=503".into(),
        Some("team-a"),
    )
    .await;
    push_line(
        port,
        r#"{"app":"api"}"#,
        "method=GET status=503 tenant=b".into(),
        Some("team-b"),
    )
    .await;
    let ts = push_line(
        port,
        r#"{"app":"api"}"#,
        "method=GET status=502".into(),
        Some("team-a"),
    )
    .await;
    let f = next(&mut ws, Duration::from_secs(2)).await.unwrap();
    let e = entries(&f, true);
    assert_eq!(e.len(), 1, "{f}");
    assert_eq!(e[0].0, ts);
    assert_eq!(
        e[0].2,
        serde_json::json!({"app": "api", "service_name": "api"})
    );
    let v = &f["streams"][0]["values"][0][2];
    assert_eq!(
        v["parsed"],
        serde_json::json!({"method": "GET", "status": "502"})
    );
    // The level the store found when the line was pushed.
    assert_eq!(
        v["structuredMetadata"],
        serde_json::json!({"detected_level": "unknown"})
    );
    ws.close(None).await.unwrap();

    // The legacy path sends legacy frames.
    let mut req = format!(
        "ws://127.0.0.1:{port}/api/prom/tail{}",
        query_string(&[("query", r#"{app="api"}"#)])
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("X-Scope-OrgID", "team-a".parse().unwrap());
    let (mut legacy, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let f = next(&mut legacy, Duration::from_secs(5)).await.unwrap();
    let s = &f["streams"][0];
    // Uncategorised, metadata is part of the labels, as in Loki.
    assert_eq!(
        s["labels"],
        r#"{app="api", detected_level="unknown", service_name="api"}"#
    );
    assert_eq!(s["entries"].as_array().unwrap().len(), 3);
    assert!(s["entries"][0]["ts"].as_str().unwrap().ends_with('Z'));
    assert!(f["dropped_entries"].is_null());
}

/// Parameter errors are 400s before the upgrade; the eleventh tail of a
/// tenant is closed with 1011 and Loki's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_parameter_errors_and_concurrency_limit() {
    let store = tokio::task::spawn_blocking(start_store).await.unwrap();
    let port = store.http;
    for (params, text) in [
        (
            vec![("query", r#"{app="a"}"#), ("delay_for", "6")],
            "delay_for can't be greater than 5",
        ),
        (
            vec![("query", r#"{app="a"}"#), ("limit", "0")],
            "limit must be a positive value",
        ),
        (
            vec![("query", r#"sum(rate({app="a"}[1m]))"#)],
            "only log queries",
        ),
        (vec![("query", r#"{app="a""#)], "parse error"),
    ] {
        match connect(port, &params, &[]).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 400);
                let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains(text), "{params:?}: {body}");
            }
            other => panic!("{params:?}: expected a 400, got {:?}", other.map(|_| ())),
        }
    }
    // A plain GET (no upgrade) with valid parameters is an error too.
    let r = tokio::task::spawn_blocking(move || {
        get(
            port,
            &format!(
                "/loki/api/v1/tail{}",
                query_string(&[("query", r#"{app="a"}"#)])
            ),
            &[],
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert!(r.status >= 400 && r.status < 500, "{r:?}");

    let q = [("query", r#"{app="a"}"#), ("delay_for", "1")];
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(connect(port, &q, &[]).await.unwrap());
    }
    // Let every tail register before the next one arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut eleventh = connect(port, &q, &[]).await.unwrap();
    let (code, reason) = next(&mut eleventh, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(code, 1011);
    assert_eq!(
        reason,
        "max concurrent tail requests limit exceeded, count > limit (11 > 10)"
    );
    // Another tenant has its own allowance.
    let mut other = connect(port, &q, &[("X-Scope-OrgID", "other")])
        .await
        .unwrap();
    // Closing one makes room; the new tail then works (delay_for=1 holds
    // the line for a second).
    open.pop().unwrap().close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect(port, &q, &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ts = push_line(port, r#"{"app":"a"}"#, "after".into(), None).await;
    let f = next(&mut again, Duration::from_secs(3)).await.unwrap();
    assert_eq!(entries(&f, false)[0].0, ts);
    other.close(None).await.unwrap();
}

/// A client that stops reading gets `dropped_entries` (timestamp and
/// labels of what it missed) once it reads again; the store does not
/// buffer without bound and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_gets_dropped_entries() {
    let _serial = timing().await;
    let store = tokio::task::spawn_blocking(start_store).await.unwrap();
    let port = store.http;
    // A small receive window so that the socket fills quickly.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let req = format!(
        "ws://127.0.0.1:{port}/loki/api/v1/tail{}",
        query_string(&[("query", r#"{app="flood"}"#)])
    )
    .into_client_request()
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 120 pushes of one 200 KB line each: far more than the frame queue
    // and the socket buffers hold.
    const N: usize = 120;
    let pushed: Vec<i64> = tokio::task::spawn_blocking(move || {
        (0..N)
            .map(|i| {
                let ts = now_ns();
                let line = format!("{i:04} {}", "x".repeat(200 * 1024));
                let body = serde_json::json!({"streams": [{"stream": {"app": "flood"}, "values": [[ts.to_string(), line]]}]});
                let r = request(port, "POST", "/loki/api/v1/push", &[("Content-Type", "application/json")], body.to_string().as_bytes()).unwrap();
                assert_eq!(r.status, 204, "{}", r.text());
                ts
            })
            .collect()
    })
    .await
    .unwrap();
    // Wait until the store has handled every line (queued for the client
    // or dropped), so the test does not depend on how fast it does so.
    let counted = |metrics: &str, name: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped_total = loop {
        let m = tokio::task::spawn_blocking(move || get(port, "/metrics", &[]).unwrap().text())
            .await
            .unwrap();
        let sent = counted(&m, "larch_tail_sent_entries_total");
        let dropped = counted(&m, "larch_tail_dropped_entries_total");
        if sent + dropped >= N as u64 {
            break dropped;
        }
        assert!(
            Instant::now() < deadline,
            "store handled {sent} + {dropped} of {N}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Now read everything: delivered + reported dropped = pushed.
    let mut delivered = Vec::new();
    let mut dropped = Vec::new();
    while delivered.len() + dropped.len() < N {
        let f = next(&mut ws, Duration::from_secs(20)).await.unwrap();
        delivered.extend(entries(&f, false).into_iter().map(|e| e.0));
        if let Some(d) = f.get("dropped_entries").and_then(|d| d.as_array()) {
            for e in d {
                assert_eq!(
                    e["labels"],
                    serde_json::json!({"app": "flood", "detected_level": "unknown", "service_name": "flood"})
                );
                dropped.push(e["timestamp"].as_str().unwrap().parse::<i64>().unwrap());
            }
        }
    }
    assert!(
        !dropped.is_empty(),
        "a client that did not read lost nothing"
    );
    assert!(!delivered.is_empty());
    let mut all: Vec<i64> = delivered.iter().chain(&dropped).copied().collect();
    all.sort();
    assert_eq!(all, pushed);
    // The store's own account of it.
    assert_eq!(dropped_total, dropped.len() as u64);
}

/// SIGTERM closes open tails with 1001 before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_close_cleanly_on_shutdown() {
    let store = tokio::task::spawn_blocking(start_store).await.unwrap();
    let mut ws = connect(store.http, &[("query", r#"{app="a"}"#)], &[])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::task::spawn_blocking(move || {
        store.terminate();
        store
    });
    let (code, reason) = next(&mut ws, Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(code, 1001, "{reason}");
    assert_eq!(reason, "the store is shutting down");
    stopping.await.unwrap();
}
