//! Helpers: the test kit's `larch-store` process, pushing known lines to
//! it over HTTP, and running the `larch` binary as a process.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use larch_testkit::push::JsonStream;
pub use larch_testkit::{SEC, StoreProcess, free_port, now_ns};

/// Starts a store with default settings.
pub fn start_store() -> StoreProcess {
    start_store_with("")
}

/// Starts a store with `yaml` as its configuration file.
pub fn start_store_with(yaml: &str) -> StoreProcess {
    start_store_on(free_port(), yaml)
}

/// Starts a store on `port` with `yaml` as its configuration file (whose
/// `limits`, if any, start the file). Level discovery is turned off: the
/// store's own tests cover it, and here the `detected_level` it adds to
/// every line would only be one more label in every expected output.
pub fn start_store_on(port: u16, yaml: &str) -> StoreProcess {
    let no_levels = "limits:\n  discover_log_levels: false\n";
    let yaml = match yaml.strip_prefix("limits:\n") {
        Some(rest) => format!("{no_levels}{rest}"),
        None => format!("{no_levels}{yaml}"),
    };
    StoreProcess::builder().http_port(port).config(yaml).start()
}

/// What the tests do with a store besides running `larch` against it.
pub trait StoreExt {
    /// Pushes `(labels, [(ts ns, line)])` streams as Loki JSON for
    /// `tenant` (None: no header) and expects 204.
    fn push(&self, tenant: Option<&str>, streams: &[JsonStream<'_>]);

    /// A GET on the store's API, for checks the CLI does not make.
    fn get(&self, path_and_query: &str) -> (u16, String);
}

impl StoreExt for StoreProcess {
    fn push(&self, tenant: Option<&str>, streams: &[JsonStream<'_>]) {
        let body = larch_testkit::push::json(streams);
        let mut headers = vec![larch_testkit::push::JSON];
        if let Some(t) = tenant {
            headers.push(("X-Scope-OrgID", t));
        }
        let r = larch_testkit::http::request(
            self.http,
            "POST",
            "/loki/api/v1/push",
            &headers,
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 204, "push failed: {}", r.text());
    }

    fn get(&self, path_and_query: &str) -> (u16, String) {
        let r = larch_testkit::http::get(self.http, path_and_query, &[]).unwrap();
        (r.status, r.text())
    }
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
    let mut cmd = Command::new(larch_testkit::binary("larch"));
    cmd.args(args);
    for v in [
        "LARCH_ADDR",
        "LOKI_ADDR",
        "LARCH_ORG_ID",
        "LOKI_ORG_ID",
        "NO_COLOR",
        "LOKI_USERNAME",
        "LOKI_PASSWORD",
        "LOKI_BEARER_TOKEN",
        "LOKI_BEARER_TOKEN_FILE",
        "LOKI_CA_CERT_PATH",
        "LOKI_CLIENT_CERT_PATH",
        "LOKI_CLIENT_KEY_PATH",
        "LOKI_TLS_SKIP_VERIFY",
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

/// A whole second some minutes ago: recent enough for the store to
/// accept, old enough that pushes at `base + a few seconds` are in the
/// past.
pub fn base_time() -> i64 {
    (now_ns() / SEC - 20 * 60) * SEC
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
