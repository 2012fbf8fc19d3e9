//! Helpers: real `larch-store` and `larch-agent` processes on free ports,
//! a pods directory writer, a minimal HTTP client, and reading back what
//! the store kept.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../benches/src/port.rs"]
mod port;
pub use port::free_port;

/// `<target>/debug/larch-store`, built by `cargo build --workspace --bins`.
pub fn store_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/it-<hash> → <target>/debug/larch-store
    let candidates = [
        exe.parent()
            .and_then(|p| p.parent())
            .map(|d| d.join("larch-store")),
        std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("debug/larch-store")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/larch-store")),
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
pub struct Store {
    child: Option<Child>,
    pub http: u16,
    pub grpc: u16,
}

impl Store {
    pub fn start(data: &Path) -> Store {
        Store::start_on(data, free_port(), free_port())
    }

    pub fn start_on(data: &Path, http: u16, grpc: u16) -> Store {
        Store::start_with(data, http, grpc, "")
    }

    /// Starts with extra `limits:` keys (YAML lines indented by 2).
    pub fn start_with(data: &Path, http: u16, grpc: u16, limits: &str) -> Store {
        Store::start_config(data, http, grpc, limits, "")
    }

    /// Starts with extra `limits:` keys and extra top-level keys (YAML
    /// lines, e.g. `auth_enabled: true\n`).
    pub fn start_config(data: &Path, http: u16, grpc: u16, limits: &str, top: &str) -> Store {
        // Loki's query limits (5000 entries, 500 series) are lifted so a
        // test can read everything back in one query; ingestion limits stay
        // at Loki's defaults unless `limits` says otherwise.
        let cfg = data.with_file_name("store.yaml");
        std::fs::write(
            &cfg,
            format!("{top}limits:\n  max_entries_limit_per_query: 1000000\n  max_query_series: 100000\n{limits}"),
        )
        .unwrap();
        let child = Command::new(store_bin())
            .arg("--config")
            .arg(&cfg)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--data-dir")
            .arg(data)
            .env("LARCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Store {
            child: Some(child),
            http,
            grpc,
        };
        wait_for(Duration::from_secs(30), "store ready", || {
            http_get(s.http, "/ready").is_ok_and(|r| r.0 == 200)
        });
        s
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Every entry of `tenant` whose stream has `name="value"`, as
    /// (stream labels, timestamp, line) sorted, read with Loki's
    /// `query_range` API over the last day.
    pub fn query(&self, tenant: &str, (name, value): (&str, &str)) -> Entries {
        let now = now_ns();
        let q = format!("{{{name}=\"{value}\"}}");
        let path = format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&limit=1000000&direction=forward",
            percent(&q),
            now - 86_400_000_000_000,
            now + 3_600_000_000_000
        );
        let (status, body) = http_get_with(self.http, &path, &[("X-Scope-OrgID", tenant)]).unwrap();
        assert_eq!(status, 200, "query_range: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["resultType"], "streams", "{body}");
        let mut out = Entries::new();
        for s in v["data"]["result"].as_array().unwrap() {
            let labels: BTreeMap<String, String> = s["stream"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let text = format!(
                "{{{}}}",
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for pair in s["values"].as_array().unwrap() {
                let ts: i64 = pair[0].as_str().unwrap().parse().unwrap();
                out.push((text.clone(), ts, pair[1].as_str().unwrap().to_string()));
            }
        }
        out.sort();
        out
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

fn terminate(c: &mut Child) {
    let pid = c.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if c.try_wait().unwrap().is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `larch-agent` process.
pub struct Agent {
    child: Option<Child>,
    pub http: u16,
    pub args: Vec<String>,
}

impl Agent {
    /// Starts the agent with fast test settings plus `extra` flags.
    pub fn start(pods: &Path, positions: &Path, store: &str, extra: &[&str]) -> Agent {
        Agent::start_with(pods, positions, store, extra, true)
    }

    /// Like [`Agent::start`]; `wait` for `/ready` or not.
    pub fn start_with(
        pods: &Path,
        positions: &Path,
        store: &str,
        extra: &[&str],
        wait: bool,
    ) -> Agent {
        let http = free_port();
        let mut args: Vec<String> = vec![
            "--pods-dir".into(),
            pods.display().to_string(),
            "--positions".into(),
            positions.display().to_string(),
            "--store".into(),
            store.into(),
            "--node-name".into(),
            "node-1".into(),
            "--http-addr".into(),
            format!("127.0.0.1:{http}"),
            "--batch-wait".into(),
            "100ms".into(),
            "--poll-interval".into(),
            "50ms".into(),
            "--rescan-interval".into(),
            "1s".into(),
            "--positions-sync".into(),
            "100ms".into(),
            "--rotate-wait".into(),
            "500ms".into(),
            "--min-backoff".into(),
            "50ms".into(),
            "--max-backoff".into(),
            "500ms".into(),
            "--log-level".into(),
            "error".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Agent::spawn(http, args, wait)
    }

    fn spawn(http: u16, args: Vec<String>, wait: bool) -> Agent {
        Agent::spawn_in(http, args, wait, None)
    }

    /// Starts the agent with exactly `args` (nothing added), in `cwd`;
    /// `http` is the port its `--http-addr` names.
    pub fn spawn_in(http: u16, args: Vec<String>, wait: bool, cwd: Option<&Path>) -> Agent {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_larch-agent"));
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let child = cmd
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let a = Agent {
            child: Some(child),
            http,
            args,
        };
        if wait {
            wait_for(Duration::from_secs(30), "agent ready", || {
                http_get(a.http, "/ready").is_ok_and(|r| r.0 == 200)
            });
        }
        a
    }

    /// Starts again with the same arguments (after a kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let again = Agent::spawn(self.http, std::mem::take(&mut self.args), true);
        *self = again;
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }

    /// The agent's metrics, `name{labels}` → value.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let Ok((200, text)) = http_get(self.http, "/metrics") else {
            return BTreeMap::new();
        };
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(0.0)
    }

    /// Waits until the store acknowledged `n` entries in total and nothing
    /// is left unread or unacknowledged.
    pub fn wait_sent(&self, n: usize, timeout: Duration) {
        let mut last = 0.0;
        wait_for(timeout, &format!("{n} entries acknowledged"), || {
            let m = self.metrics();
            let sent = m
                .get("larch_agent_sent_entries_total")
                .copied()
                .unwrap_or(0.0);
            last = sent;
            sent >= n as f64
        });
        assert_eq!(last as usize, n, "more entries acknowledged than written");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test's directory: `pods/` (created), positions and store data paths.
pub struct Env {
    pub _dir: tempfile::TempDir,
    pub pods: PathBuf,
    pub positions: PathBuf,
    pub data: PathBuf,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    std::fs::create_dir_all(&pods).unwrap();
    Env {
        positions: dir.path().join("positions.yaml"),
        data: dir.path().join("data"),
        pods,
        _dir: dir,
    }
}

/// `n` distinct lines starting with `prefix`.
pub fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix} line {i:05} {}", "x".repeat(i % 50)))
        .collect()
}

/// Adds the entries `lines` written at `stamps` under `labels` to `out`.
pub fn expect(out: &mut Entries, labels: &str, stamps: &[i64], lines: &[String]) {
    for (t, l) in stamps.iter().zip(lines) {
        out.push((labels.to_string(), *t, l.clone()));
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes (then panics).
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// A GET with `Connection: close`; returns status and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_get_with(port, path, &[])
}

/// A GET with extra headers.
pub fn http_get_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Percent-encodes a query parameter.
pub fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some(nl) = b.find("\r\n") {
        let Ok(n) = usize::from_str_radix(b[..nl].trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
    out
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// RFC 3339 with nanoseconds (UTC).
pub fn rfc3339(ns: i64) -> String {
    larch_agent::time::format_rfc3339(ns)
}

/// A pod's container log directory under a pods dir.
pub struct PodDir {
    pub dir: PathBuf,
}

impl PodDir {
    pub fn new(pods: &Path, ns: &str, pod: &str, uid: &str, container: &str) -> PodDir {
        let dir = pods.join(format!("{ns}_{pod}_{uid}")).join(container);
        std::fs::create_dir_all(&dir).unwrap();
        PodDir { dir }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    /// Appends raw bytes to `0.log`.
    pub fn append(&self, bytes: &[u8]) {
        append(&self.log(), bytes);
    }

    /// Appends complete CRI records for `lines` on `stream`, timestamped
    /// from `ts` on, 1 µs apart; returns the timestamps.
    pub fn cri(&self, stream: &str, ts: i64, lines: &[String]) -> Vec<i64> {
        let mut out = String::new();
        let mut stamps = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let t = ts + i as i64 * 1000;
            stamps.push(t);
            out.push_str(&format!("{} {stream} F {l}\n", rfc3339(t)));
        }
        self.append(out.as_bytes());
        stamps
    }
}

/// Appends to a file (creating it).
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// The labels text a pod's stream has in the store (the store adds
/// `service_name` from `container`, as Loki does).
pub fn labels(ns: &str, pod: &str, container: &str, stream: &str) -> String {
    format!(
        r#"{{container="{container}", namespace="{ns}", node_name="node-1", pod="{pod}", service_name="{container}", stream="{stream}"}}"#
    )
}

/// Waits until the agent's positions file records every file in `files`
/// at its full size: every byte written was acknowledged.
pub fn wait_caught_up(positions: &Path, files: &[PathBuf], timeout: Duration) {
    use std::os::unix::fs::MetadataExt;
    wait_for(timeout, "positions at the end of every file", || {
        let Ok(saved) = larch_agent::positions::load(positions) else {
            return false;
        };
        files.iter().all(|f| {
            let Ok(m) = std::fs::metadata(f) else {
                return false;
            };
            saved
                .iter()
                .any(|r| r.ino == m.ino() && r.offset == m.len())
        })
    });
}

/// Sorted (labels, ts, line) triples.
pub type Entries = Vec<(String, i64, String)>;

/// Asserts two entry lists are equal, reporting the first differences.
pub fn assert_same(got: &Entries, want: &Entries) {
    if got == want {
        return;
    }
    let g: std::collections::BTreeSet<_> = got.iter().collect();
    let w: std::collections::BTreeSet<_> = want.iter().collect();
    let missing: Vec<_> = w.difference(&g).take(5).collect();
    let extra: Vec<_> = g.difference(&w).take(5).collect();
    panic!(
        "store holds {} entries, expected {}; missing (first 5) {missing:?}; unexpected (first 5) {extra:?}",
        got.len(),
        want.len()
    );
}

/// What the [`Gateway`] does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it to the store and relay the store's answer.
    Forward,
    /// Answer this status itself (with a short text body).
    Answer(u16),
}

/// A small HTTP/1.1 gateway in front of the real store, standing in for
/// the reverse proxies and API gateways found in front of log stores in
/// production: `decide` sees each request's body size and says whether
/// to answer it (401 from an expired token, 403, 404 from a wrong route,
/// 413 from a body size limit, 503 during a deploy) or to forward it.
pub struct Gateway {
    pub port: u16,
    /// Requests seen, by status answered (forwarded ones by the store's).
    pub statuses: std::sync::Arc<std::sync::Mutex<BTreeMap<u16, usize>>>,
}

fn read_head(s: &mut impl std::io::BufRead) -> Option<(String, usize)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    Some((head, len))
}

impl Gateway {
    pub fn start(store: u16, decide: impl Fn(usize) -> Verdict + Send + Sync + 'static) -> Gateway {
        use std::io::BufReader;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let statuses = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let decide = std::sync::Arc::new(decide);
        let st = statuses.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let decide = decide.clone();
                let st = st.clone();
                std::thread::spawn(move || {
                    let mut out = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    while let Some((head, len)) = read_head(&mut r) {
                        let mut body = vec![0u8; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        let (status, text) = match decide(len) {
                            Verdict::Answer(code) => {
                                (code, format!("gateway says {code}\n").into_bytes())
                            }
                            Verdict::Forward => forward(store, &head, &body),
                        };
                        *st.lock().unwrap().entry(status).or_default() += 1;
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
                            text.len()
                        );
                        if out.write_all(resp.as_bytes()).is_err() || out.write_all(&text).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Gateway { port, statuses }
    }

    /// How many requests got `status`.
    pub fn count(&self, status: u16) -> usize {
        self.statuses
            .lock()
            .unwrap()
            .get(&status)
            .copied()
            .unwrap_or(0)
    }
}

/// Sends a request to the store on a fresh connection; (status, body).
fn forward(store: u16, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{BufRead, BufReader};
    let mut s = TcpStream::connect(("127.0.0.1", store)).unwrap();
    let mut req = String::new();
    for l in head.lines() {
        if l.is_empty() || l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut line = String::new();
    while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
        line.clear();
    }
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    (status, rest)
}
