//! Helpers: the test kit's `larch-store` and `larch-agent` processes with
//! the suite's settings, a pods directory writer, and reading back what
//! the store kept.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use larch_testkit::http::{percent, request};
pub use larch_testkit::{AgentProcess, StoreProcess, free_port, now_ns, wait_for};

/// Starts a store on `data` on free ports.
pub fn start_store(data: &Path) -> StoreProcess {
    start_store_on(data, free_port(), free_port())
}

/// Starts a store on `data` on the given ports (to start one again where
/// the agent expects it).
pub fn start_store_on(data: &Path, http: u16, grpc: u16) -> StoreProcess {
    start_store_with(data, http, grpc, "")
}

/// Starts with extra `limits:` keys (YAML lines indented by 2).
pub fn start_store_with(data: &Path, http: u16, grpc: u16, limits: &str) -> StoreProcess {
    start_store_config(data, http, grpc, limits, "")
}

/// Starts with extra `limits:` keys and extra top-level keys (YAML
/// lines, e.g. `auth_enabled: true\n`).
pub fn start_store_config(
    data: &Path,
    http: u16,
    grpc: u16,
    limits: &str,
    top: &str,
) -> StoreProcess {
    // Loki's query limits (5000 entries, 500 series) are lifted so a
    // test can read everything back in one query; ingestion limits stay
    // at Loki's defaults unless `limits` says otherwise. Level discovery
    // is off so that entries read back carry exactly what the agent sent.
    StoreProcess::builder()
        .data_dir(data)
        .http_port(http)
        .grpc_port(grpc)
        .config(format!(
            "{top}limits:\n  max_entries_limit_per_query: 1000000\n  max_query_series: 100000\n  discover_log_levels: false\n{limits}"
        ))
        .start()
}

/// Reading back what a store kept.
pub trait Query {
    /// Every entry of `tenant` whose stream has `name="value"`, as
    /// (stream labels, timestamp, line) sorted, read with Loki's
    /// `query_range` API over the last day.
    fn query(&self, tenant: &str, selector: (&str, &str)) -> Entries {
        self.query_with(tenant, selector, &[])
    }

    /// [`Query::query`] with extra request headers (a token).
    fn query_with(&self, tenant: &str, selector: (&str, &str), headers: &[(&str, &str)])
    -> Entries;
}

impl Query for StoreProcess {
    fn query_with(
        &self,
        tenant: &str,
        (name, value): (&str, &str),
        headers: &[(&str, &str)],
    ) -> Entries {
        let now = now_ns();
        let q = format!("{{{name}=\"{value}\"}}");
        let path = format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&limit=1000000&direction=forward",
            percent(&q),
            now - 86_400_000_000_000,
            now + 3_600_000_000_000
        );
        let mut h = vec![("X-Scope-OrgID", tenant)];
        h.extend_from_slice(headers);
        let r = self.request("GET", &path, &h, b"").unwrap();
        assert_eq!(r.status, 200, "query_range: {}", r.text());
        let v = r.json();
        assert_eq!(v["data"]["resultType"], "streams", "{v}");
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

/// Starts the agent with fast test settings plus `extra` flags, reading
/// `pods`, keeping `positions`, pushing to `store` (a URL).
pub fn start_agent(pods: &Path, positions: &Path, store: &str, extra: &[&str]) -> AgentProcess {
    AgentProcess::builder()
        .args([OsStr::new("--pods-dir"), pods.as_os_str()])
        .args([OsStr::new("--positions"), positions.as_os_str()])
        .args(["--store", store, "--node-name", "node-1"])
        .args(["--batch-wait", "100ms", "--poll-interval", "50ms"])
        .args(["--rescan-interval", "1s", "--positions-sync", "100ms"])
        .args(["--rotate-wait", "500ms", "--min-backoff", "50ms"])
        .args(["--max-backoff", "500ms", "--log-level", "error"])
        .args(extra)
        .start()
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

/// Sends a request (its head as received, and body) to the store;
/// (status, body).
fn forward(store: u16, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    // The client sets its own Host, Connection and Content-Length.
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, _)| {
            !["host", "connection", "content-length"]
                .iter()
                .any(|h| k.eq_ignore_ascii_case(h))
        })
        .collect();
    let r = request(store, method, path, &headers, body).unwrap();
    (r.status, r.body)
}
