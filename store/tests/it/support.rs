//! Helpers: a store process on free ports, a minimal HTTP/1.1 client, and
//! reading a data directory back in process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larch_proto::logproto;
use larch_query::{Columns, Direction, LogSource, MatchOp, Matcher, ScanRequest};
use larch_store::config::Config;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;

#[path = "../../../benches/src/port.rs"]
mod port;
pub use port::free_port;

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

/// A `larch-store` process.
pub struct StoreProcess {
    pub child: Child,
    pub http: u16,
    #[allow(dead_code)] // used by the gRPC client tests
    pub grpc: u16,
}

impl StoreProcess {
    pub fn start(data: &Path, extra: &[&str]) -> StoreProcess {
        let http = free_port();
        let grpc = free_port();
        let child = Command::new(store_bin())
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("LARCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let p = StoreProcess { child, http, grpc };
        p.wait_ready();
        p
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http(self.http, "GET", "/ready", &[], b"")
                && r.status == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("store on port {} never became ready", self.http);
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "store did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
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
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse { status, body })
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

/// A protobuf push of `lines` on one stream, snappy-compressed.
pub fn proto_push(labels: &str, first_ts: i64, lines: &[String]) -> Vec<u8> {
    let req = logproto::PushRequest {
        streams: vec![logproto::Stream {
            labels: labels.to_string(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let ts = first_ts + i as i64;
                    logproto::Entry {
                        timestamp: Some(logproto::Timestamp {
                            seconds: ts.div_euclid(1_000_000_000),
                            nanos: ts.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: l.clone(),
                        structured_metadata: vec![],
                        parsed: vec![],
                    }
                })
                .collect(),
            hash: 0,
        }],
        format: String::new(),
    };
    larch_store::push::protobuf::encode_http(&req)
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Every (timestamp, line) of `tenant`'s streams matching `name=value`,
/// read by opening the data directory in process.
pub fn read_back(ing: &Ingester, tenant: &str, name: &str, value: &str) -> Vec<(i64, String)> {
    let m = [Matcher::new(name, MatchOp::Eq, value).unwrap()];
    let mut out = Vec::new();
    for s in ing.streams(tenant, &m, i64::MIN, i64::MAX).unwrap() {
        let req = ScanRequest {
            start: i64::MIN,
            end: i64::MAX,
            direction: Direction::Forward,
            columns: Columns::ALL,
            must_contain: vec![],
        };
        ing.scan(tenant, &s, &req, &mut |b| {
            for i in 0..b.len() {
                out.push((
                    b.timestamps[i],
                    String::from_utf8(b.line(i).to_vec()).unwrap(),
                ));
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    out.sort();
    out
}

/// Opens a data directory in process (replaying its WAL).
pub fn open_dir(data: &Path) -> Arc<Ingester> {
    let config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    Ingester::open(config, Arc::new(Metrics::new())).unwrap().0
}
