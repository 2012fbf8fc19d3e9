//! Pod metadata from the Kubernetes API. No API server can run here, so a
//! small HTTP server in this test stands in for it: it answers the pod list
//! and watch requests with the JSON shapes the real API server sends, and
//! checks the token and the node field selector. The agent and the store
//! are the real binaries.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::support::*;

fn pod(name: &str, uid: &str, labels: &str, owner: Option<(&str, &str)>, rv: u32) -> String {
    let owners = owner
        .map(|(k, n)| format!(r#","ownerReferences":[{{"apiVersion":"apps/v1","kind":"{k}","name":"{n}","uid":"x","controller":true}}]"#))
        .unwrap_or_default();
    format!(
        r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{name}","namespace":"shop","uid":"{uid}","resourceVersion":"{rv}","labels":{{{labels}}}{owners}}},"spec":{{"nodeName":"node-1","containers":[{{"name":"app"}}]}},"status":{{"phase":"Running"}}}}"#
    )
}

/// Serves `GET /api/v1/pods` (list, then watch) until the test ends.
fn fake_api_server(watch_events: Vec<String>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let watches = Arc::new(AtomicUsize::new(0));
    let w = watches.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let events = watch_events.clone();
            let w = w.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                    if h.to_ascii_lowercase().starts_with("authorization:") {
                        auth = h["authorization:".len()..].trim().to_string();
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                if auth != "Bearer s3cret" {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                if !path.starts_with("/api/v1/pods?")
                    || !path.contains("fieldSelector=spec.nodeName%3Dnode-1")
                {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                if !path.contains("watch=true") {
                    let body = format!(
                        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"100"}},"items":[{}]}}"#,
                        pod(
                            "cart-7d9f8c6b5-abcde",
                            "uid-a",
                            r#""app.kubernetes.io/name":"cart","app.kubernetes.io/instance":"cart-prod""#,
                            Some(("ReplicaSet", "cart-7d9f8c6b5")),
                            90
                        )
                    );
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                let n = w.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                );
                if n == 0 {
                    // The first watch delivers the events, slowly.
                    for ev in &events {
                        std::thread::sleep(Duration::from_millis(300));
                        let _ = writeln!(conn, "{ev}");
                        let _ = conn.flush();
                    }
                }
                std::thread::sleep(Duration::from_secs(2));
            });
        }
    });
    (port, watches)
}

#[test]
fn pod_labels_come_from_the_watched_cache() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let events = vec![
        format!(
            r#"{{"type":"BOOKMARK","object":{{"kind":"Pod","metadata":{{"resourceVersion":"101"}}}}}}"#
        ),
        format!(
            r#"{{"type":"ADDED","object":{}}}"#,
            pod(
                "web-0",
                "uid-b",
                r#""app":"web","component":"frontend""#,
                Some(("StatefulSet", "web")),
                102
            )
        ),
    ];
    let (api, watches) = fake_api_server(events);
    let cfg = dir.path().join("agent.yaml");
    std::fs::write(
        &cfg,
        format!("kubernetes:\n  mode: on\n  api_server: http://127.0.0.1:{api}\n  token_file: {}\n  metadata_wait: 3s\n", token.display()),
    )
    .unwrap();
    let store = start_store(&dir.path().join("data"));
    let t = now_ns() - 10_000_000_000;
    let a = PodDir::new(&pods, "shop", "cart-7d9f8c6b5-abcde", "uid-a", "app");
    a.cri("stdout", t, &["from a".to_string()]);
    // Pod b's file exists before its watch event arrives: the agent waits
    // for the metadata instead of tailing it with path labels only.
    let b = PodDir::new(&pods, "shop", "web-0", "uid-b", "app");
    b.cri("stdout", t + 1000, &["from b".to_string()]);
    // Pod c is never announced: tailed with path labels after the wait.
    let c = PodDir::new(&pods, "shop", "lonely", "uid-c", "app");
    c.cri("stdout", t + 2000, &["from c".to_string()]);
    let agent = start_agent(
        &pods,
        &dir.path().join("positions.yaml"),
        &format!("http://127.0.0.1:{}", store.http),
        &["--config", cfg.to_str().unwrap()],
    );
    agent.wait_sent(3, Duration::from_secs(30));
    assert!(watches.load(Ordering::SeqCst) >= 1);
    assert!(agent.metric("larch_agent_kubernetes_watch_events_total") >= 2.0);
    agent.terminate();
    let got = store.query("fake", ("namespace", "shop"));
    let want = vec![
        (
            r#"{app="cart", container="app", instance="cart-prod", job="shop/cart", namespace="shop", node_name="node-1", pod="cart-7d9f8c6b5-abcde", service_name="cart", stream="stdout"}"#.to_string(),
            t,
            "from a".to_string(),
        ),
        (
            r#"{app="web", component="frontend", container="app", job="shop/web", namespace="shop", node_name="node-1", pod="web-0", service_name="web", stream="stdout"}"#.to_string(),
            t + 1000,
            "from b".to_string(),
        ),
        (labels("shop", "lonely", "app", "stdout"), t + 2000, "from c".to_string()),
    ];
    let mut want = want;
    want.sort();
    assert_same(&got, &want);
}
