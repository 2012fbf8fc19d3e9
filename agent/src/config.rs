//! The agent's configuration: one serde struct loaded from YAML
//! (`--config FILE`) and overridden by command-line flags of the same names.
//!
//! Every top-level scalar key has a flag: key `pods_dir` is flag
//! `--pods-dir`, `batch_wait` is `--batch-wait`, and so on (see
//! [`crate::flags`]). Nested keys (`labels`, `kubernetes`, `relabel_configs`,
//! `pipeline_stages`, `external_labels`) are YAML only. Unknown keys are
//! errors, so a typo never silently falls back to a default.
//!
//! Defaults follow Promtail where it has an equivalent (batch 1 MiB / 1 s,
//! backoff 500 ms to 5 min, timeout 10 s) and are justified beside each
//! `default_*` function otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::relabel::RelabelConfig;
use crate::stages::StageConfig;
use larch_config::{ByteSize, HumanDuration};

/// How a file's lines are decoded before the pipeline stages run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Decide per file from its first line: CRI, docker json-file or plain.
    #[default]
    Auto,
    /// `<RFC3339Nano> <stdout|stderr> <P|F> <message>` (containerd, CRI-O).
    Cri,
    /// `{"log":"…","stream":"stdout","time":"…"}` (docker json-file).
    Docker,
    /// Each line is an entry, timestamped when read.
    Plain,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Format::Auto),
            "cri" => Ok(Format::Cri),
            "docker" => Ok(Format::Docker),
            "plain" => Ok(Format::Plain),
            other => Err(format!(
                "unknown format {other:?} (use auto, cri, docker or plain)"
            )),
        }
    }
}

/// Which optional labels the agent attaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsConfig {
    /// Add `stream="stdout|stderr"` from the CRI or docker record.
    /// Default true, as Promtail's `cri` stage does.
    pub stream: bool,
    /// Add `filename="<path>"`. Default false: the path holds the pod uid,
    /// which makes a new stream per pod instance and adds nothing the pod
    /// and container labels do not already say.
    pub filename: bool,
}

impl Default for LabelsConfig {
    fn default() -> Self {
        LabelsConfig {
            stream: true,
            filename: false,
        }
    }
}

/// Whether pod metadata is read from the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KubeMode {
    /// On when running in a cluster (`KUBERNETES_SERVICE_HOST` set and a
    /// service account token mounted), off otherwise.
    #[default]
    Auto,
    /// Always on; startup fails if the API cannot be configured.
    On,
    /// Never ask the API; labels come from the path only.
    Off,
}

/// Access to the Kubernetes API for pod metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeConfig {
    /// `auto`, `on` or `off`.
    pub mode: KubeMode,
    /// The API server's base URL. Default: in-cluster
    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    pub api_server: Option<String>,
    /// Bearer token file. Default: the mounted service account token.
    pub token_file: Option<PathBuf>,
    /// CA bundle (PEM) for the API server. Default: the service account's.
    pub ca_file: Option<PathBuf>,
    /// How long a newly found file waits for its pod's metadata before it
    /// is tailed with path labels only. Default 5s: the kubelet creates the
    /// log file after the pod is bound, so the watch has usually delivered
    /// the pod already; waiting longer delays logs when the API is slow.
    pub metadata_wait: HumanDuration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            mode: KubeMode::Auto,
            api_server: None,
            token_file: None,
            ca_file: None,
            metadata_wait: HumanDuration::from_secs(5),
        }
    }
}

/// `basic_auth:` of the store client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// File holding the password, read again before every push.
    pub password_file: PathBuf,
}

/// The whole configuration of `larch-agent`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Directory of pod logs, laid out
    /// `<namespace>_<pod>_<uid>/<container>/<n>.log`. Default `/var/log/pods`.
    pub pods_dir: PathBuf,
    /// Directories outside `pods_dir` that log files may resolve into
    /// through symbolic links; a file that resolves anywhere else is not
    /// read (counted in `larch_agent_refused_files_total`). Default the
    /// container runtimes' log directories: `/var/log/containers`,
    /// `/var/lib/docker/containers` (Docker's json-file logs, which the
    /// kubelet links from the pod directory with dockershim or
    /// cri-dockerd; add Docker's `data-root` here if it is elsewhere) and
    /// `/var/log/pods`. containerd and CRI-O write regular files in the pod
    /// directory and need none of these.
    pub allowed_log_dirs: Vec<PathBuf>,
    /// The store: `http://host:3100`, `https://…` (push API) or
    /// `grpc://host:9095` (gRPC `logproto.Pusher/Push`).
    /// Default `http://127.0.0.1:3100`, the all-in-one store.
    pub store: String,
    /// Tenant sent as `X-Scope-OrgID`; empty sends none (single tenant,
    /// or the tenant a store token implies). Promtail's name; `tenant` is
    /// read as well.
    #[serde(alias = "tenant")]
    pub tenant_id: String,
    /// The positions file. Default `/var/lib/larch-agent/positions.yaml`
    /// (a hostPath in the DaemonSet so positions survive pod restarts).
    pub positions: PathBuf,
    /// Value of the `node_name` label. Default `$NODE_NAME`, else the host
    /// name.
    pub node_name: String,
    /// Listen address for `/metrics` and `/ready`. Default `0.0.0.0:3101`
    /// (Promtail's port in its Helm chart).
    pub http_addr: SocketAddr,
    /// Per-file decoding; `auto` detects CRI, docker json-file or plain.
    pub format: Format,
    /// Largest batch, in bytes of lines and structured metadata (what the
    /// store counts against a tenant's ingestion rate); a batch is sent
    /// when the next entry would not fit, and is larger only if one entry
    /// alone is. Default 1MiB, Promtail's: well below the store's (and
    /// Loki's) default `ingestion_burst_size_mb` of 6, which a request must
    /// fit in. A store or proxy that accepts less answers 413, and the
    /// agent splits the batch (`larch_agent_batch_splits_total`); keep
    /// `batch_size` below the smallest such limit to avoid the round trips.
    pub batch_size: ByteSize,
    /// Send a batch at the latest this long after its first line. Default 1s.
    pub batch_wait: HumanDuration,
    /// Batches pushed concurrently. Default 2: one in flight while the next
    /// is being filled keeps the store busy; more only adds memory.
    pub max_in_flight: usize,
    /// Timeout of one push request. Default 10s.
    pub timeout: HumanDuration,
    /// First retry delay after a failed push. Default 500ms.
    pub min_backoff: HumanDuration,
    /// Longest retry delay. Default 5m.
    pub max_backoff: HumanDuration,
    /// Give up a batch after this many retries and count its entries as
    /// dropped; 0 retries forever. Default 0: the files are the buffer, so
    /// waiting costs nothing and giving up loses lines.
    pub max_retries: u32,
    /// Longest entry (after CRI partial joining) in bytes; longer entries
    /// are cut to this size and counted as truncated. Default 256KB
    /// (256000 bytes), the store's default `max_line_size`, so no line is
    /// rejected for its length.
    pub max_line_size: ByteSize,
    /// How often idle files are polled for new data. Default 250ms.
    pub poll_interval: HumanDuration,
    /// Full directory rescan interval, the fallback for missed file-system
    /// events. Default 10s (Promtail's sync period).
    pub rescan_interval: HumanDuration,
    /// How often acknowledged positions are written. Default 1s: lines
    /// acknowledged but not yet recorded are resent after a crash, and the
    /// store drops the duplicates.
    pub positions_sync: HumanDuration,
    /// A file renamed away or deleted is read for this long after its last
    /// data before it is closed. Default 5s: the runtime may write to the
    /// old file briefly after the kubelet renamed it.
    pub rotate_wait: HumanDuration,
    /// On shutdown, how long to wait for the last batches to be
    /// acknowledged. Default 30s, the default pod termination grace period.
    pub shutdown_timeout: HumanDuration,
    /// PEM CA bundle for an `https://` or `grpcs://` store; default the
    /// system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM chain) presented to the store, for stores
    /// that verify clients (mTLS); with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Name the store's certificate must carry, when it is not the URL's
    /// host (a store reached by IP address or through a tunnel).
    pub tls_server_name: Option<String>,
    /// File holding the store's token, sent as `Authorization: Bearer`. It
    /// is read again before every push, so a rotated Kubernetes Secret is
    /// used without a restart.
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth (the store takes its token as the password).
    pub basic_auth: Option<BasicAuth>,
    /// Log level filter (`info`, `debug`, `larch_agent=debug,warn`).
    pub log_level: String,
    /// `text` (coloured only on a terminal), `logfmt` or `json` logs on
    /// stderr.
    pub log_format: String,
    /// Optional labels.
    pub labels: LabelsConfig,
    /// Labels added to every stream.
    pub external_labels: BTreeMap<String, String>,
    /// Pod metadata from the Kubernetes API.
    pub kubernetes: KubeConfig,
    /// Relabel rules applied to each file's labels (Promtail's
    /// `relabel_configs`).
    pub relabel_configs: Vec<RelabelConfig>,
    /// Pipeline stages applied to each entry (Promtail's `pipeline_stages`),
    /// each a single-key map such as `- cri: {}`.
    pub pipeline_stages: Vec<StageConfig>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            pods_dir: PathBuf::from("/var/log/pods"),
            allowed_log_dirs: default_allowed_log_dirs(),
            store: "http://127.0.0.1:3100".into(),
            tenant_id: String::new(),
            positions: PathBuf::from("/var/lib/larch-agent/positions.yaml"),
            node_name: default_node_name(),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 3101)),
            format: Format::Auto,
            batch_size: ByteSize(1 << 20),
            batch_wait: HumanDuration::from_secs(1),
            max_in_flight: 2,
            timeout: HumanDuration::from_secs(10),
            min_backoff: HumanDuration::from_millis(500),
            max_backoff: HumanDuration::from_secs(300),
            max_retries: 0,
            max_line_size: ByteSize(256_000),
            poll_interval: HumanDuration::from_millis(250),
            rescan_interval: HumanDuration::from_secs(10),
            positions_sync: HumanDuration::from_secs(1),
            rotate_wait: HumanDuration::from_secs(5),
            shutdown_timeout: HumanDuration::from_secs(30),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_server_name: None,
            bearer_token_file: None,
            basic_auth: None,
            log_level: "info".into(),
            log_format: "text".into(),
            labels: LabelsConfig::default(),
            external_labels: BTreeMap::new(),
            kubernetes: KubeConfig::default(),
            relabel_configs: Vec::new(),
            pipeline_stages: Vec::new(),
        }
    }
}

/// The container runtimes' log directories.
fn default_allowed_log_dirs() -> Vec<PathBuf> {
    [
        "/var/log/containers",
        "/var/lib/docker/containers",
        "/var/log/pods",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// `$NODE_NAME`, else the host name, else `unknown`.
fn default_node_name() -> String {
    if let Ok(n) = std::env::var("NODE_NAME")
        && !n.is_empty()
    {
        return n;
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return h.to_string();
        }
    }
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.is_empty()
    {
        return h;
    }
    "unknown".into()
}

/// The store's protocol, from the scheme of `store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// `http(s)://…/loki/api/v1/push`; the field is the full push URL.
    Http(String),
    /// `grpc://host:port` (plain HTTP/2; the field is `http://host:port`)
    /// or `grpcs://host:port` (over TLS; the field is `https://host:port`).
    Grpc(String),
}

impl AgentConfig {
    /// Reads a YAML file; unknown keys and bad values are errors naming the
    /// key. `${VAR}` references are expanded from the environment first
    /// (see [`larch_config::expand`]).
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        Self::from_yaml_file_with(path, true)
    }

    /// [`AgentConfig::from_yaml_file`], expanding `${VAR}` references only
    /// with `expand_env` (`--config.expand-env`).
    pub fn from_yaml_file_with(path: &Path, expand_env: bool) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let text = if expand_env {
            larch_config::expand_env(&text).map_err(|e| Error::ConfigFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        } else {
            text
        };
        Self::from_yaml_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: match e {
                Error::Config(m) => m,
                other => other.to_string(),
            },
        })
    }

    /// Parses YAML text (an empty document is the default configuration).
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(AgentConfig::default());
        }
        larch_config::yaml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// The configuration as a YAML file of the same keys
    /// (`--print-config`).
    pub fn to_yaml(&self) -> Result<String> {
        larch_config::yaml::to_string(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// The store URL classified by protocol.
    pub fn store_url(&self) -> Result<StoreUrl> {
        let s = self.store.trim().trim_end_matches('/');
        for (prefix, scheme) in [("grpc://", "http"), ("grpcs://", "https")] {
            if let Some(rest) = s.strip_prefix(prefix) {
                if rest.is_empty() || rest.contains('/') {
                    return Err(Error::Config(format!(
                        "store: {:?} must be {prefix}host:port",
                        self.store
                    )));
                }
                return Ok(StoreUrl::Grpc(format!("{scheme}://{rest}")));
            }
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let url = if s.ends_with("/loki/api/v1/push") {
                s.to_string()
            } else {
                format!("{s}/loki/api/v1/push")
            };
            url.parse::<hyper::Uri>().map_err(|e| {
                Error::Config(format!("store: {:?} is not a valid URL: {e}", self.store))
            })?;
            return Ok(StoreUrl::Http(url));
        }
        Err(Error::Config(format!(
            "store: {:?} must start with http://, https://, grpc:// or grpcs://",
            self.store
        )))
    }

    /// Checks everything that can be checked without touching the network:
    /// values in range, URLs, regexes and stage settings (by compiling the
    /// pipeline and relabel rules).
    pub fn validate(&self) -> Result<()> {
        self.store_url()?;
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(Error::Config(
                "tls_cert_file and tls_key_file must be set together".into(),
            ));
        }
        if self.bearer_token_file.is_some() && self.basic_auth.is_some() {
            return Err(Error::Config(
                "bearer_token_file and basic_auth cannot both be set".into(),
            ));
        }
        if self
            .tls_server_name
            .as_deref()
            .is_some_and(|n| rustls::pki_types::ServerName::try_from(n.to_string()).is_err())
        {
            return Err(Error::Config(format!(
                "tls_server_name {:?} is not a valid DNS name or IP address",
                self.tls_server_name.as_deref().unwrap_or_default()
            )));
        }
        if self.batch_size.0 == 0 {
            return Err(Error::Config("batch_size must be greater than 0".into()));
        }
        if self.batch_size.0 > 64 << 20 {
            return Err(Error::Config(
                "batch_size must be at most 64MiB (the store rejects larger requests)".into(),
            ));
        }
        for d in &self.allowed_log_dirs {
            if !d.is_absolute() {
                return Err(Error::Config(format!(
                    "allowed_log_dirs: {} must be an absolute path",
                    d.display()
                )));
            }
            if d.parent().is_none() {
                return Err(Error::Config(
                    "allowed_log_dirs: / would let links reach every file on the node".into(),
                ));
            }
        }
        if self.batch_wait.0.is_zero() {
            return Err(Error::Config("batch_wait must be greater than 0".into()));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            return Err(Error::Config(
                "max_in_flight must be between 1 and 64".into(),
            ));
        }
        if self.max_line_size.0 < 64 {
            return Err(Error::Config("max_line_size must be at least 64B".into()));
        }
        if self.min_backoff.0 > self.max_backoff.0 {
            return Err(Error::Config(format!(
                "min_backoff ({}) must not exceed max_backoff ({})",
                self.min_backoff, self.max_backoff
            )));
        }
        if self.timeout.0.is_zero() {
            return Err(Error::Config("timeout must be greater than 0".into()));
        }
        for (name, d) in [
            ("poll_interval", self.poll_interval),
            ("rescan_interval", self.rescan_interval),
            ("positions_sync", self.positions_sync),
        ] {
            if d.0.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than 0")));
            }
        }
        if self.node_name.is_empty() {
            return Err(Error::Config("node_name must not be empty".into()));
        }
        if self.tenant_id.len() > 150
            || !self
                .tenant_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b))
            || self.tenant_id == "."
            || self.tenant_id == ".."
        {
            return Err(Error::Config(format!(
                "tenant_id {:?} is not a valid tenant id (at most 150 characters from A-Z a-z 0-9 ! - _ . * ' ( ))",
                self.tenant_id
            )));
        }
        if !["text", "logfmt", "json"].contains(&self.log_format.as_str()) {
            return Err(Error::Config(format!(
                "log_format must be text, logfmt or json, not {:?}",
                self.log_format
            )));
        }
        for name in self.external_labels.keys() {
            if !larch_go::labels::is_valid_label_name(name) {
                return Err(Error::Config(format!(
                    "external_labels: {name:?} is not a valid label name"
                )));
            }
        }
        crate::relabel::Relabeler::new(&self.relabel_configs)?;
        crate::stages::Pipeline::new(&self.pipeline_stages, &crate::metrics::Registry::new())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `${VAR}` in the file comes from the environment (here `PATH`, set
    /// in every test process), unless turned off; `${1}` is left alone.
    #[test]
    fn file_values_expand_from_the_environment() {
        let path = std::env::var("PATH").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        std::fs::write(&file, "node_name: \"${PATH}\"\ntenant_id: \"x${1}\"\n").unwrap();
        let c = AgentConfig::from_yaml_file(&file).unwrap();
        assert_eq!(c.node_name, path);
        assert_eq!(c.tenant_id, "x${1}");
        let c = AgentConfig::from_yaml_file_with(&file, false).unwrap();
        assert_eq!(c.node_name, "${PATH}");
        std::fs::write(&file, "node_name: ${PATH\n").unwrap();
        let e = AgentConfig::from_yaml_file(&file).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn empty_yaml_is_the_default() {
        let c = AgentConfig::from_yaml_str("").unwrap();
        assert_eq!(c, AgentConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn keys_parse_and_unknown_keys_fail() {
        let c = AgentConfig::from_yaml_str(
            "pods_dir: /tmp/pods\nstore: grpc://127.0.0.1:9095\nbatch_size: 512KiB\nbatch_wait: 200ms\n",
        )
        .unwrap();
        assert_eq!(c.pods_dir, PathBuf::from("/tmp/pods"));
        assert_eq!(c.batch_size, ByteSize(512 * 1024));
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Grpc("http://127.0.0.1:9095".into())
        );
        let err = AgentConfig::from_yaml_str("pods_dirr: /x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `pods_dirr`"), "{err}");
        let err = AgentConfig::from_yaml_str("batch_wait: 10\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing unit") && err.contains("line 1"),
            "{err}"
        );
        let c = AgentConfig::from_yaml_str("pipeline_stages:\n- cri: {}\n- match:\n    selector: '{a=\"b\"}'\n    stages:\n    - static_labels: {x: y}\n").unwrap();
        assert_eq!(c.pipeline_stages.len(), 2);
        c.validate().unwrap();
        let back = larch_config::yaml::to_string(&c).unwrap();
        assert_eq!(AgentConfig::from_yaml_str(&back).unwrap(), c, "{back}");
    }

    #[test]
    fn store_urls() {
        let mut c = AgentConfig {
            store: "http://store:3100".into(),
            ..AgentConfig::default()
        };
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Http("http://store:3100/loki/api/v1/push".into())
        );
        c.store = "https://store/loki/api/v1/push".into();
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Http("https://store/loki/api/v1/push".into())
        );
        c.store = "ftp://x".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("must start with")
        );
    }

    #[test]
    fn validation_names_the_key() {
        let c = AgentConfig {
            max_in_flight: 0,
            ..AgentConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("max_in_flight")
        );
        let c = AgentConfig {
            tenant_id: "a/b".into(),
            ..AgentConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("tenant_id"));
        let c = AgentConfig::from_yaml_str(
            "store: grpcs://s:9095\ntenant: t\ntls_cert_file: /c\nbasic_auth:\n  username: u\n  password_file: /p\n",
        )
        .unwrap();
        assert_eq!(c.tenant_id, "t");
        assert_eq!(
            c.store_url().unwrap(),
            StoreUrl::Grpc("https://s:9095".into())
        );
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("tls_key_file")
        );
        let c = AgentConfig {
            bearer_token_file: Some("/t".into()),
            basic_auth: c.basic_auth,
            ..AgentConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("cannot both")
        );
    }
}
