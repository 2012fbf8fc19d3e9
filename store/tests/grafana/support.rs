//! The suite's harness: a `larch-store` process on free ports, an
//! HTTP/1.1 client that sends exactly what Grafana's backend sends, and
//! the data set every module pushes through the real push API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use larch_proto::logproto;

#[path = "../../../benches/src/port.rs"]
mod port;
use port::free_port;

/// `<target>/debug/larch-store`: the binary is in the `larch-server`
/// package, so `cargo build --workspace --bins` (or `-p larch-server`)
/// builds it before these tests run.
pub fn store_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/<test>-<hash> → <target>/debug/larch-store
    let candidates = [
        exe.parent()
            .and_then(|deps| deps.parent())
            .map(|d| d.join("larch-store")),
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|t| std::path::PathBuf::from(t).join("debug/larch-store")),
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/larch-store")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "larch-store binary not found next to the test binary; run `cargo build --workspace --bins` first"
    );
}

/// A store process with its own data directory.
pub struct Store {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Store {
    /// Starts a store with ingestion limits high enough for the suite and
    /// without fsync (the suite is about the query API).
    pub fn start() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "limits:\n  ingestion_rate_mb: 1000\n  ingestion_burst_size_mb: 1000\nwal:\n  fsync: false\n",
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(store_bin())
            .arg("--config")
            .arg(&config)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("LARCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let store = Store {
            child: Some(child),
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if get(port, "/ready", &[]).is_ok_and(|r| r.status == 200) {
                return store;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("larch-store on port {port} never became ready");
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "store ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Asserts 200 and returns the JSON body.
    pub fn ok(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.json()
    }
}

/// One request, `Connection: close`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
    out
}

/// `GET path` with headers.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    request(port, "GET", path, headers, b"")
}

/// The headers Grafana's backend puts on every data query
/// (`pkg/tsdb/loki/api.go`, `makeDataRequest`).
pub const GRAFANA_DATA_HEADERS: &[(&str, &str)] = &[
    ("X-Loki-Response-Encoding-Flags", "categorize-labels"),
    ("User-Agent", "Grafana/12.0.0"),
];

/// Percent-encodes a query-string value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Builds `?k=v&...` with encoded values.
pub fn qs(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("?");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&enc(k));
        out.push('=');
        out.push_str(&enc(v));
    }
    out
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// RFC3339 with milliseconds, as Logs Drilldown sends times.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap()
    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    .to_string()
}

/// A JSON v1 push (`/loki/api/v1/push`); values may carry structured
/// metadata as a third element.
pub fn push_json(port: u16, body: &serde_json::Value) {
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
}

/// A snappy protobuf push of `(ts, line)` entries on one stream.
pub fn push_proto(port: u16, labels: &str, entries: &[(i64, String)]) {
    let req = logproto::PushRequest {
        streams: vec![logproto::Stream {
            labels: labels.to_string(),
            entries: entries
                .iter()
                .map(|(ts, l)| logproto::Entry {
                    timestamp: Some(logproto::Timestamp {
                        seconds: ts.div_euclid(1_000_000_000),
                        nanos: ts.rem_euclid(1_000_000_000) as i32,
                    }),
                    line: l.clone(),
                    structured_metadata: vec![],
                    parsed: vec![],
                })
                .collect(),
            hash: 0,
        }],
        format: String::new(),
    };
    let body = larch_store::push::protobuf::encode_http(&req);
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.body);
}

/// The data set: four services, lines with and without level fields.
///
/// | stream | lines | format | levels |
/// |---|---|---|---|
/// | `{app="checkout", env="prod", namespace="shop", pod="checkout-7d9f"}` | 60, every 2 s | logfmt, `trace_id` metadata | 48 info, 12 error (in the line) |
/// | `{app="payments", env="prod", namespace="shop", level="error"}` | 10 | text | `level` label |
/// | `{app="frontend", env="prod", namespace="web"}` | 30 | JSON (protobuf push) | 20 info, 10 warn |
/// | `{app="batch", namespace="jobs"}` | 20 | plain text | 2 with "ERROR", 18 none |
pub struct Data {
    /// First entry's time.
    pub t0: i64,
    /// One past the last entry's time.
    pub t_end: i64,
    /// The checkout lines (ts, line), oldest first.
    pub checkout: Vec<(i64, String)>,
}

pub const SEC: i64 = 1_000_000_000;

/// Held by tests that measure latency or flood the store, so that they
/// do not run at the same time (the suite's tests run in parallel on
/// machines with few cores).
pub static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes [`TIMING`] (a failed test does not poison it for the others).
pub async fn timing() -> tokio::sync::MutexGuard<'static, ()> {
    TIMING.lock().await
}

pub fn push_data(port: u16) -> Data {
    let t0 = now_ns() - 5 * 60 * SEC;
    let checkout: Vec<(i64, String)> = (0..60)
        .map(|i| {
            let line = if i % 5 == 4 {
                format!(
                    "level=error msg=\"payment declined\" order_id={} duration={}ms status=402",
                    1000 + i,
                    10 + i % 7
                )
            } else {
                format!(
                    "level=info msg=\"order placed\" order_id={} duration={}ms status=200",
                    1000 + i,
                    10 + i % 7
                )
            };
            (t0 + i * 2 * SEC, line)
        })
        .collect();
    let values: Vec<serde_json::Value> = checkout
        .iter()
        .enumerate()
        .map(|(i, (ts, l))| serde_json::json!([ts.to_string(), l, {"trace_id": format!("trace-{}", i % 3)}]))
        .collect();
    push_json(
        port,
        &serde_json::json!({"streams": [{
            "stream": {"app": "checkout", "env": "prod", "namespace": "shop", "pod": "checkout-7d9f"},
            "values": values,
        }]}),
    );
    let payments: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!([
                (t0 + SEC / 2 + i * 10 * SEC).to_string(),
                format!("card rejected code=51 amount={i}.50")
            ])
        })
        .collect();
    push_json(
        port,
        &serde_json::json!({"streams": [{
            "stream": {"app": "payments", "env": "prod", "namespace": "shop", "level": "error"},
            "values": payments,
        }]}),
    );
    let frontend: Vec<(i64, String)> = (0..30)
        .map(|i| {
            let level = if i % 3 == 0 { "warn" } else { "info" };
            let path = if i % 2 == 0 { "/cart" } else { "/checkout" };
            let status = if i % 5 == 0 { 503 } else { 200 };
            (
                t0 + SEC / 4 + i * 4 * SEC,
                format!(
                    r#"{{"level":"{level}","msg":"request served","req":{{"path":"{path}","status":{status},"took":"{}ms"}},"user-agent":"Mozilla/5.0"}}"#,
                    100 + i
                ),
            )
        })
        .collect();
    push_proto(
        port,
        r#"{app="frontend", env="prod", namespace="web"}"#,
        &frontend,
    );
    let batch: Vec<(i64, String)> = (0..20)
        .map(|i| {
            let line = if i % 10 == 9 {
                format!("job {i} failed: ERROR timeout after 30s")
            } else {
                format!("processed {} records in {}s", 100 + i, 3 + i % 4)
            };
            (t0 + SEC / 8 + i * 6 * SEC, line)
        })
        .collect();
    push_proto(port, r#"{app="batch", namespace="jobs"}"#, &batch);
    Data {
        t0,
        t_end: t0 + 120 * SEC + SEC,
        checkout,
    }
}
