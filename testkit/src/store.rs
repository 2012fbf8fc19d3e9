//! A `larch-store` process.

use std::ffi::OsString;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::process::{Process, ProcessBuilder};

/// How to start a `larch-store`; from [`StoreProcess::builder`].
#[derive(Debug, Default)]
pub struct StoreBuilder {
    data_dir: Option<PathBuf>,
    config: Option<String>,
    http: Option<u16>,
    grpc: Option<u16>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    max_open_files: Option<u32>,
    tls: Option<crate::http::Tls>,
    bin: Option<PathBuf>,
}

impl StoreBuilder {
    /// The store serves TLS (its configuration must say so): the ready
    /// check, [`StoreProcess::request`] and [`StoreProcess::addr`] use it.
    pub fn tls(mut self, tls: crate::http::Tls) -> StoreBuilder {
        self.tls = Some(tls);
        self
    }

    /// The data directory (default: `data/` in the process' own
    /// directory, deleted with it).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> StoreBuilder {
        self.data_dir = Some(dir.into());
        self
    }

    /// The configuration file's text (YAML), passed with `--config`.
    pub fn config(mut self, yaml: impl Into<String>) -> StoreBuilder {
        self.config = Some(yaml.into());
        self
    }

    /// The HTTP port (default: a [`free_port`](crate::free_port)).
    pub fn http_port(mut self, port: u16) -> StoreBuilder {
        self.http = Some(port);
        self
    }

    /// The gRPC port (default: a [`free_port`](crate::free_port)).
    pub fn grpc_port(mut self, port: u16) -> StoreBuilder {
        self.grpc = Some(port);
        self
    }

    /// Adds command-line arguments (after the addresses, data directory
    /// and configuration file the builder passes).
    pub fn args<I, S>(mut self, args: I) -> StoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (`LARCH_LOG` is `warn` unless set
    /// here).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> StoreBuilder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the store with at most `n` open file descriptors.
    pub fn max_open_files(mut self, n: u32) -> StoreBuilder {
        self.max_open_files = Some(n);
        self
    }

    /// Starts the store on 127.0.0.1 and waits until `/ready` answers 200.
    pub fn start(self) -> StoreProcess {
        self.launch(true)
    }

    /// Runs this `larch-store` binary instead of the workspace's (a
    /// benchmark comparing two builds).
    pub fn bin(mut self, path: impl Into<PathBuf>) -> StoreBuilder {
        self.bin = Some(path.into());
        self
    }

    /// Starts the store on 127.0.0.1 without waiting for `/ready`, for
    /// tests of what it answers before it is ready.
    pub fn spawn(self) -> StoreProcess {
        self.launch(false)
    }

    fn launch(self, wait: bool) -> StoreProcess {
        let http = self.http.unwrap_or_else(crate::free_port);
        let grpc = self.grpc.unwrap_or_else(crate::free_port);
        let mut b = ProcessBuilder::new(
            "larch-store",
            self.bin.unwrap_or_else(|| crate::binary("larch-store")),
        );
        let data_dir = self.data_dir.unwrap_or_else(|| b.dir().join("data"));
        b = b
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .env("LARCH_LOG", "warn");
        if let Some(yaml) = &self.config {
            let path = b.dir().join("store.yaml");
            std::fs::write(&path, yaml).expect("writing the store's configuration");
            b = b.arg("--config").arg(path);
        }
        b = b.args(self.args);
        if wait {
            b = b.ready(http, "/ready");
        }
        if let Some(tls) = &self.tls {
            b = b.ready_tls(tls.clone());
        }
        for (k, v) in self.env {
            b = b.env(k, v);
        }
        if let Some(n) = self.max_open_files {
            b = b.max_open_files(n);
        }
        StoreProcess {
            process: b.start(),
            http,
            grpc,
            data_dir,
            tls: self.tls,
        }
    }
}

/// A running `larch-store` on 127.0.0.1 (a [`Process`]: killed when
/// dropped, its output kept when a test fails).
#[derive(Debug)]
pub struct StoreProcess {
    process: Process,
    /// The HTTP port.
    pub http: u16,
    /// The gRPC port.
    pub grpc: u16,
    data_dir: PathBuf,
    tls: Option<crate::http::Tls>,
}

impl StoreProcess {
    /// A builder for a store with its own data directory, free ports and
    /// Larch's defaults.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Starts a store on `data` with extra command-line `args`.
    pub fn start(data: &Path, args: &[&str]) -> StoreProcess {
        StoreProcess::builder().data_dir(data).args(args).start()
    }

    /// `http://127.0.0.1:<http port>` (`https://` with TLS).
    pub fn addr(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.http)
    }

    /// One request to the HTTP port on a new connection, over TLS when
    /// the store was started with [`StoreBuilder::tls`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<crate::http::Response> {
        match &self.tls {
            Some(tls) => crate::http::request_tls(self.http, tls, method, path, headers, body),
            None => crate::http::request(self.http, method, path, headers, body),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Deref for StoreProcess {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}
