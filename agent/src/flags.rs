//! Command-line flags: every top-level scalar key of the YAML
//! configuration, spelled with dashes (`pods_dir` → `--pods-dir`). A flag
//! overrides the file; the file overrides the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{AgentConfig, Format};
use crate::error::{Error, Result};
use larch_config::{ByteSize, HumanDuration};

/// `larch-agent`: tails Kubernetes pod logs and pushes them to a Larch (or
/// Loki) store, every line exactly once.
#[derive(Parser, Debug, Default)]
#[command(name = "larch-agent", version, about, args_override_self = true)]
pub struct Flags {
    /// YAML configuration file; its keys are the flags' names with `_`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Expand `${VAR}` and `${VAR:-default}` in the configuration file from
    /// the environment (`$${` is a literal `${`; `${1}` is left to regex
    /// replacements). [default: true]
    #[arg(long = "config.expand-env", action = clap::ArgAction::Set)]
    pub config_expand_env: Option<bool>,
    /// Validate the configuration, print the result and exit (0 valid, 1 not).
    #[arg(long)]
    pub check_config: bool,
    /// Print the effective configuration as YAML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Directory of pod logs. [default: /var/log/pods]
    #[arg(long)]
    pub pods_dir: Option<PathBuf>,
    /// Store URL: http(s)://host:3100 (push API) or grpc://host:9095. [default: http://127.0.0.1:3100]
    #[arg(long)]
    pub store: Option<String>,
    /// Tenant sent as X-Scope-OrgID (empty: none).
    #[arg(long, alias = "tenant")]
    pub tenant_id: Option<String>,
    /// Positions file. [default: /var/lib/larch-agent/positions.yaml]
    #[arg(long)]
    pub positions: Option<PathBuf>,
    /// Value of the node_name label. [default: $NODE_NAME, else the host name]
    #[arg(long)]
    pub node_name: Option<String>,
    /// Listen address for /metrics and /ready. [default: 0.0.0.0:3101]
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Line format: auto, cri, docker or plain. [default: auto]
    #[arg(long)]
    pub format: Option<Format>,
    /// Send a batch at this many bytes of lines. [default: 1MiB]
    #[arg(long)]
    pub batch_size: Option<ByteSize>,
    /// Send a batch at the latest this long after its first line. [default: 1s]
    #[arg(long)]
    pub batch_wait: Option<HumanDuration>,
    /// Batches pushed concurrently. [default: 2]
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Timeout of one push. [default: 10s]
    #[arg(long)]
    pub timeout: Option<HumanDuration>,
    /// First retry delay. [default: 500ms]
    #[arg(long)]
    pub min_backoff: Option<HumanDuration>,
    /// Longest retry delay. [default: 5m]
    #[arg(long)]
    pub max_backoff: Option<HumanDuration>,
    /// Retries before a batch is dropped; 0 retries forever. [default: 0]
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Longest entry; longer ones are cut. [default: 256KB]
    #[arg(long)]
    pub max_line_size: Option<ByteSize>,
    /// Poll interval of idle files. [default: 250ms]
    #[arg(long)]
    pub poll_interval: Option<HumanDuration>,
    /// Full rescan interval of the pods directory. [default: 10s]
    #[arg(long)]
    pub rescan_interval: Option<HumanDuration>,
    /// How often positions are written. [default: 1s]
    #[arg(long)]
    pub positions_sync: Option<HumanDuration>,
    /// Quiet time after which a rotated or deleted file is closed. [default: 5s]
    #[arg(long)]
    pub rotate_wait: Option<HumanDuration>,
    /// Longest wait for the last batches at shutdown. [default: 30s]
    #[arg(long)]
    pub shutdown_timeout: Option<HumanDuration>,
    /// PEM CA bundle for an https:// or grpcs:// store. [default: system roots]
    #[arg(long)]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a store that verifies clients.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
    /// Name the store's certificate must carry, if not the URL's host.
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// File holding the store's token (Authorization: Bearer), read before every push.
    #[arg(long)]
    pub bearer_token_file: Option<PathBuf>,
    /// Log filter, e.g. info or larch_agent=debug. [default: info]
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format: text (coloured only on a terminal), logfmt or json.
    /// [default: text]
    #[arg(long)]
    pub log_format: Option<String>,
}

macro_rules! apply {
    ($flags:ident, $cfg:ident, $($field:ident),*) => {
        $( if let Some(v) = $flags.$field.clone() { $cfg.$field = v; } )*
    };
}

impl Flags {
    /// Loads the file (if any) and applies the flags over it.
    pub fn load(&self) -> Result<AgentConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                AgentConfig::from_yaml_file_with(path, self.config_expand_env.unwrap_or(true))?
            }
            None => AgentConfig::default(),
        };
        apply!(
            self,
            cfg,
            pods_dir,
            store,
            tenant_id,
            positions,
            node_name,
            http_addr,
            format,
            batch_size,
            batch_wait,
            max_in_flight,
            timeout,
            min_backoff,
            max_backoff,
            max_retries,
            max_line_size,
            poll_interval,
            rescan_interval,
            positions_sync,
            rotate_wait,
            shutdown_timeout,
            log_level,
            log_format
        );
        if let Some(p) = &self.tls_ca_file {
            cfg.tls_ca_file = Some(p.clone());
        }
        if let Some(p) = &self.tls_cert_file {
            cfg.tls_cert_file = Some(p.clone());
        }
        if let Some(p) = &self.tls_key_file {
            cfg.tls_key_file = Some(p.clone());
        }
        if let Some(n) = &self.tls_server_name {
            cfg.tls_server_name = Some(n.clone());
        }
        if let Some(p) = &self.bearer_token_file {
            cfg.bearer_token_file = Some(p.clone());
        }
        Ok(cfg)
    }

    /// Loads and validates; the error names the file or key at fault.
    pub fn load_valid(&self) -> Result<AgentConfig> {
        let cfg = self.load()?;
        cfg.validate().map_err(|e| match (&self.config, e) {
            (Some(path), Error::Config(m)) => Error::ConfigFile {
                path: path.clone(),
                message: m,
            },
            (Some(path), e @ (Error::Stage { .. } | Error::Io { .. })) => Error::ConfigFile {
                path: path.clone(),
                message: e.to_string(),
            },
            (_, e) => e,
        })?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("agent.yaml");
        std::fs::write(&f, "store: http://a:3100\nbatch_wait: 2s\ntenant: t1\n").unwrap();
        let flags = Flags::parse_from([
            "larch-agent",
            "--config",
            f.to_str().unwrap(),
            "--batch-wait",
            "250ms",
            "--pods-dir",
            "/x",
        ]);
        let cfg = flags.load_valid().unwrap();
        assert_eq!(cfg.store, "http://a:3100");
        assert_eq!(cfg.tenant_id, "t1");
        assert_eq!(cfg.batch_wait, HumanDuration::from_millis(250));
        assert_eq!(cfg.pods_dir, PathBuf::from("/x"));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("agent.yaml");
        std::fs::write(&f, "max_in_flight: 0\n").unwrap();
        let flags = Flags::parse_from(["larch-agent", "--config", f.to_str().unwrap()]);
        let e = flags.load_valid().unwrap_err().to_string();
        assert!(
            e.contains("agent.yaml") && e.contains("max_in_flight"),
            "{e}"
        );
        assert!(Flags::try_parse_from(["larch-agent", "--batch-wait", "soon"]).is_err());
        assert!(Flags::try_parse_from(["larch-agent", "--format", "xml"]).is_err());
    }
}
