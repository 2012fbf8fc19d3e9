//! Prometheus and Alertmanager from Debian's packages, started on free
//! ports of 127.0.0.1 for the ruler's and the deployment's end-to-end
//! tests, and the packages installed when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::process::{Process, ProcessBuilder};

/// Whether `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Installs Debian's `prometheus` and `prometheus-alertmanager` packages
/// unless `prometheus`, `promtool` and `prometheus-alertmanager` are on
/// `PATH` (about 20 s; `scripts/install-test-deps` does it ahead of the
/// tests). Panics if they cannot be installed: a test that needs them
/// fails rather than skips.
pub fn require_prometheus() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let binaries = ["prometheus", "promtool", "prometheus-alertmanager"];
    if binaries.iter().all(|b| on_path(b)) {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        let out = c.output().expect("running apt-get");
        assert!(
            out.status.success(),
            "apt-get {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apt(&["update", "-qq"]);
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
        "prometheus-alertmanager",
    ]);
    for b in binaries {
        assert!(
            on_path(b),
            "{b} is still missing after installing the packages"
        );
    }
}

/// A Prometheus server (remote write receiver on) on 127.0.0.1.
#[derive(Debug)]
pub struct PrometheusProcess {
    process: Process,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
}

impl PrometheusProcess {
    /// Starts Prometheus with `config` (YAML or JSON text) and waits until
    /// it is ready. `config` may name files in [`PrometheusProcess::dir`]
    /// through the `{dir}` placeholder.
    pub fn start(config: &str) -> PrometheusProcess {
        require_prometheus();
        let port = crate::free_port();
        let b = ProcessBuilder::new("prometheus", "prometheus");
        let dir = b.dir().to_path_buf();
        let path = dir.join("prometheus.yml");
        std::fs::write(&path, config.replace("{dir}", &dir.to_string_lossy()))
            .expect("writing prometheus.yml");
        let process = b
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--web.enable-lifecycle")
            .ready(port, "/-/ready")
            .start();
        PrometheusProcess { process, port, dir }
    }

    /// The directory of its files (configuration, data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An instant query (`/api/v1/query`); the whole JSON answer.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let path = format!(
            "/api/v1/query{}",
            crate::http::query_string(&[("query", promql)])
        );
        crate::http::get(self.port, &path, &[])
            .expect("querying Prometheus")
            .json()
    }

    /// The value of a query's single sample, if it has exactly one.
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        let body = self.query(promql);
        let result = body["data"]["result"].as_array()?;
        if result.len() != 1 {
            return None;
        }
        result[0]["value"][1].as_str()?.parse().ok()
    }
}

impl std::ops::Deref for PrometheusProcess {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

/// An Alertmanager on 127.0.0.1 (clustering off).
#[derive(Debug)]
pub struct AlertmanagerProcess {
    process: Process,
    /// Its port.
    pub port: u16,
}

impl AlertmanagerProcess {
    /// Starts Alertmanager with `config` (YAML) and waits until it is
    /// ready.
    pub fn start(config: &str) -> AlertmanagerProcess {
        require_prometheus();
        let port = crate::free_port();
        let b = ProcessBuilder::new("alertmanager", "prometheus-alertmanager");
        let path = b.dir().join("alertmanager.yml");
        std::fs::write(&path, config).expect("writing alertmanager.yml");
        let data = b.dir().join("data");
        let process = b
            .arg(format!("--config.file={}", path.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .ready(port, "/-/ready")
            .start();
        AlertmanagerProcess { process, port }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v2/alerts` (active, silenced, inhibited and unprocessed
    /// alerts, as the API's defaults).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let r = crate::http::get(self.port, "/api/v2/alerts", &[]).expect("asking Alertmanager");
        match r.ok_json() {
            serde_json::Value::Array(a) => a,
            other => panic!("not a list of alerts: {other}"),
        }
    }
}

impl std::ops::Deref for AlertmanagerProcess {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}
