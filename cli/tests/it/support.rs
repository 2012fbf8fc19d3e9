//! Helpers: a real `larch-store` process on free ports, pushing known
//! lines to it over HTTP, and running the `larch` binary as a process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../benches/src/port.rs"]
mod port;
pub use port::free_port;

/// `<target>/debug/larch-store`, built by `cargo build --workspace --bins`.
fn store_bin() -> PathBuf {
    let larch = PathBuf::from(env!("CARGO_BIN_EXE_larch"));
    let candidates = [
        larch.parent().map(|d| d.join("larch-store")),
        std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("debug/larch-store")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/larch-store")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "larch-store binary not found next to larch; run `cargo build --workspace --bins` first"
    );
}

/// A stream to push: its labels and `(timestamp ns, line)` values.
pub type PushStream<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, &'a str)]);

/// A `larch-store` process with its own data directory; killed on drop.
pub struct Store {
    child: Child,
    pub port: u16,
    _data: tempfile::TempDir,
}

impl Store {
    /// Starts a store with default settings.
    pub fn start() -> Store {
        Store::start_with("")
    }

    /// Starts a store with `yaml` as its configuration file.
    pub fn start_with(yaml: &str) -> Store {
        Store::start_on(free_port(), yaml)
    }

    /// Starts a store on `port` with `yaml` as its configuration file.
    pub fn start_on(port: u16, yaml: &str) -> Store {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("store.yaml");
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(store_bin())
            .arg("--config")
            .arg(&config)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .env("LARCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let store = Store {
            child,
            port,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http(port, "GET", "/ready", &[], b"").is_ok_and(|(s, _)| s == 200) {
                return store;
            }
            assert!(Instant::now() < deadline, "the store never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Pushes `(labels, [(ts ns, line)])` streams as Loki JSON for
    /// `tenant` (None: no header) and expects 204.
    pub fn push(&self, tenant: Option<&str>, streams: &[PushStream<'_>]) {
        let body = serde_json::json!({
            "streams": streams.iter().map(|(labels, values)| {
                serde_json::json!({
                    "stream": labels.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                        .collect::<serde_json::Map<_, _>>(),
                    "values": values.iter().map(|(ts, l)| serde_json::json!([ts.to_string(), l]))
                        .collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>()
        });
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let (status, text) = http(
            self.port,
            "POST",
            "/loki/api/v1/push",
            &headers,
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 204, "push failed: {text}");
    }

    /// A GET on the store's API, for checks the CLI does not make.
    pub fn get(&self, path_and_query: &str) -> (u16, String) {
        http(self.port, "GET", path_and_query, &[], b"").unwrap()
    }
}

impl Store {
    /// Stops the store with SIGTERM (it closes live tails and flushes) and
    /// waits for it.
    pub fn terminate(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the store did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request; returns status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
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
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// What a `larch` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A `larch` command line, run with a clean environment (no `LARCH_*`
/// or `LOKI_*` variables unless given) and `TZ=UTC`.
pub struct Larch {
    cmd: Command,
    stdin: Vec<u8>,
}

pub fn larch(args: &[&str]) -> Larch {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larch"));
    cmd.args(args);
    for v in [
        "LARCH_ADDR",
        "LOKI_ADDR",
        "LARCH_ORG_ID",
        "LOKI_ORG_ID",
        "NO_COLOR",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("TZ", "UTC");
    Larch {
        cmd,
        stdin: Vec::new(),
    }
}

impl Larch {
    pub fn env(mut self, k: &str, v: &str) -> Larch {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(self, input: &str) -> Larch {
        self.stdin_bytes(input.as_bytes())
    }

    pub fn stdin_bytes(mut self, input: &[u8]) -> Larch {
        self.stdin = input.to_vec();
        self
    }

    /// Runs to completion (60 s at most).
    pub fn run(mut self) -> Run {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = std::mem::take(&mut self.stdin);
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = wait_with_timeout(child, Duration::from_secs(60));
        writer.join().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts without waiting, stdin and stdout piped.
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.cmd.spawn().unwrap()
    }
}

fn wait_with_timeout(child: Child, limit: Duration) -> Output {
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("larch did not finish within {limit:?}");
        }
    }
}

/// Nanoseconds in a second.
pub const SEC: i64 = 1_000_000_000;

/// A whole second some minutes ago: recent enough for the store to
/// accept, old enough that pushes at `base + a few seconds` are in the
/// past.
pub fn base_time() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now - 20 * 60) * SEC
}

/// `ns` as `--output-timestamp-format rfc3339` prints it in UTC.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `ns` as Unix seconds text, for `--from`/`--to`.
pub fn secs(ns: i64) -> String {
    (ns / SEC).to_string()
}
