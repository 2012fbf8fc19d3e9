//! A `larch-agent` process.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use crate::process::{Process, ProcessBuilder};

/// How to start a `larch-agent`; from [`AgentProcess::builder`].
#[derive(Debug, Default)]
pub struct AgentBuilder {
    http: Option<u16>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
}

impl AgentBuilder {
    /// The port of the agent's HTTP server (`/ready`, `/metrics`; default:
    /// a [`free_port`](crate::free_port)). The builder passes `--http-addr
    /// 127.0.0.1:<port>` unless the arguments already have `--http-addr`
    /// (which must then name this port).
    pub fn http_port(mut self, port: u16) -> AgentBuilder {
        self.http = Some(port);
        self
    }

    /// Adds command-line arguments. The agent gets nothing else but
    /// `--http-addr`: the pods directory, positions file, store and
    /// timings are the test's to choose.
    pub fn args<I, S>(mut self, args: I) -> AgentBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> AgentBuilder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the agent in `dir` (for relative paths in its arguments).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> AgentBuilder {
        self.cwd = Some(dir.into());
        self
    }

    /// Starts the agent and waits until `/ready` answers 200.
    pub fn start(self) -> AgentProcess {
        let http = self.http.unwrap_or_else(crate::free_port);
        let mut b = ProcessBuilder::new("larch-agent", crate::binary("larch-agent"));
        if !self.args.iter().any(|a| a == "--http-addr") {
            b = b.arg("--http-addr").arg(format!("127.0.0.1:{http}"));
        }
        b = b.args(self.args).ready(http, "/ready");
        for (k, v) in self.env {
            b = b.env(k, v);
        }
        if let Some(dir) = self.cwd {
            b = b.current_dir(dir);
        }
        AgentProcess {
            process: b.start(),
            http,
        }
    }
}

/// A running `larch-agent` (a [`Process`]: killed when dropped, its output
/// kept when a test fails).
#[derive(Debug)]
pub struct AgentProcess {
    process: Process,
    /// The port of its HTTP server.
    pub http: u16,
}

impl AgentProcess {
    /// A builder for an agent serving HTTP on a free port.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// The agent's metrics, `name{labels}` → value; empty when it does not
    /// answer.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        crate::metrics::scrape(self.http)
    }

    /// One metric (`name` or `name{labels}` as exposed), 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(0.0)
    }

    /// Waits until the store acknowledged `n` entries in total
    /// (`larch_agent_sent_entries_total`); panics after `timeout`, or if
    /// more were acknowledged.
    pub fn wait_sent(&self, n: usize, timeout: Duration) {
        let mut last = 0.0;
        crate::wait_for(timeout, &format!("{n} entries acknowledged"), || {
            last = self.metric("larch_agent_sent_entries_total");
            last >= n as f64
        });
        assert_eq!(last as usize, n, "more entries acknowledged than written");
    }
}

impl Deref for AgentProcess {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}
