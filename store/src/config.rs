//! The store's configuration: one serde struct, loaded from a YAML file
//! (`--config`) and overridden by command-line flags of the same names.
//!
//! Every field has a default chosen to match Loki's where Loki has one, so
//! clients see the limits they are used to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, HumanDuration};

/// Top-level configuration of `larch-store`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP API (Loki's push and query APIs, /metrics,
    /// /ready). Default `0.0.0.0:3100`, Loki's port.
    pub http_addr: String,
    /// Address of the gRPC push service `logproto.Pusher`. Default
    /// `0.0.0.0:9095`, Loki's gRPC port.
    pub grpc_addr: String,
    /// Directory for the WAL, chunks and index. Default `./data`.
    pub data_dir: PathBuf,
    /// Require `X-Scope-OrgID` on every request (401 `no org id` without
    /// it). Default false: requests without the header belong to tenant
    /// `fake`, as with Loki's `auth_enabled: false`.
    pub auth_enabled: bool,
    /// Ingestion and query limits applied to every tenant.
    pub limits: Limits,
    /// Per-tenant replacements of `limits` (whole `Limits` structs).
    pub overrides: BTreeMap<String, Limits>,
    /// Head blocks and chunk cutting.
    pub ingester: IngesterConfig,
    /// Write-ahead log.
    pub wal: WalConfig,
    /// Query execution.
    pub query: QueryConfig,
    /// Decoding pushes.
    pub push: PushConfig,
    /// An agent run inside the store process (the all-in-one mode); none
    /// by default. Same keys as `larch-agent`'s configuration file; its
    /// `store` defaults to this store's HTTP address.
    pub agent: Option<larch_agent::AgentConfig>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            http_addr: "0.0.0.0:3100".to_string(),
            grpc_addr: "0.0.0.0:9095".to_string(),
            data_dir: PathBuf::from("./data"),
            auth_enabled: false,
            limits: Limits::default(),
            overrides: BTreeMap::new(),
            ingester: IngesterConfig::default(),
            wal: WalConfig::default(),
            query: QueryConfig::default(),
            push: PushConfig::default(),
            agent: None,
        }
    }
}

/// Limits, with Loki's names and defaults (`limits_config`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Sustained ingestion rate per tenant in MB/s (Loki: 4).
    pub ingestion_rate_mb: f64,
    /// Burst per tenant in MB (Loki: 6).
    pub ingestion_burst_size_mb: f64,
    /// Longest accepted line (Loki: 256KB). Zero disables the check.
    pub max_line_size: ByteSize,
    /// Truncate longer lines instead of rejecting them (Loki: false).
    pub max_line_size_truncate: bool,
    /// Most labels a stream may have (Loki: 15).
    pub max_label_names_per_series: usize,
    /// Longest label name (Loki: 1024).
    pub max_label_name_length: usize,
    /// Longest label value (Loki: 2048).
    pub max_label_value_length: usize,
    /// Reject entries older than `reject_old_samples_max_age` (Loki: true).
    pub reject_old_samples: bool,
    /// Oldest accepted entry age (Loki: 168h).
    pub reject_old_samples_max_age: HumanDuration,
    /// How far in the future an entry may be (Loki: 10m).
    pub creation_grace_period: HumanDuration,
    /// Most active streams per tenant (Loki's global default: 5000). Zero
    /// disables the limit.
    pub max_streams_per_tenant: usize,
    /// Accept structured metadata (Loki: true).
    pub allow_structured_metadata: bool,
    /// Largest structured metadata of one entry (Loki: 64KB).
    pub max_structured_metadata_size: ByteSize,
    /// Most structured metadata pairs of one entry (Loki: 128).
    pub max_structured_metadata_entries_count: usize,
    /// Largest `limit` of a log query (Loki: 5000).
    pub max_entries_limit_per_query: usize,
    /// Most series a metric query may return (Loki: 500).
    pub max_query_series: usize,
    /// Delete chunks older than this; zero keeps forever (Loki: 0).
    pub retention_period: HumanDuration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            ingestion_rate_mb: 4.0,
            ingestion_burst_size_mb: 6.0,
            max_line_size: ByteSize(256_000),
            max_line_size_truncate: false,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples: true,
            reject_old_samples_max_age: HumanDuration::from_secs(168 * 3600),
            creation_grace_period: HumanDuration::from_secs(600),
            max_streams_per_tenant: 5000,
            allow_structured_metadata: true,
            max_structured_metadata_size: ByteSize(64_000),
            max_structured_metadata_entries_count: 128,
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            retention_period: HumanDuration::from_secs(0),
        }
    }
}

/// How head blocks and chunks are cut (Loki's `ingester` block).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngesterConfig {
    /// Uncompressed size at which a head block is cut and compressed
    /// (Loki: 262144).
    pub block_size: ByteSize,
    /// Compressed size at which a chunk is sealed and flushed (Loki:
    /// 1572864).
    pub chunk_target_size: ByteSize,
    /// Oldest a chunk may get before it is flushed (Loki: 2h). Also bounds
    /// out-of-order acceptance: entries up to half of it behind the
    /// stream's newest entry are accepted.
    pub max_chunk_age: HumanDuration,
    /// Flush a chunk that received nothing for this long (Loki: 30m).
    pub chunk_idle_period: HumanDuration,
    /// How often streams are checked for age and idleness (Loki: 30s).
    pub flush_check_period: HumanDuration,
    /// How often runs of small flushed chunks of a stream are merged into
    /// one (Loki's compactor runs every 10m).
    pub compaction_interval: HumanDuration,
}

impl Default for IngesterConfig {
    fn default() -> IngesterConfig {
        IngesterConfig {
            block_size: ByteSize(262_144),
            chunk_target_size: ByteSize(1_572_864),
            max_chunk_age: HumanDuration::from_secs(2 * 3600),
            chunk_idle_period: HumanDuration::from_secs(30 * 60),
            flush_check_period: HumanDuration::from_secs(30),
            compaction_interval: HumanDuration::from_secs(600),
        }
    }
}

/// The write-ahead log.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// `fdatasync` every group commit before acknowledging (default true).
    /// With false, an acknowledged push survives a process crash (the
    /// kernel has the bytes) but not a power loss.
    pub fsync: bool,
    /// Size at which a segment is closed and a new one started (64MiB).
    pub segment_size: ByteSize,
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            fsync: true,
            segment_size: ByteSize(64 << 20),
        }
    }
}

/// Query execution.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// A query running longer is cancelled with a 504 (default 5m).
    pub timeout: HumanDuration,
    /// Queries run at once; more wait (default: 2 per core).
    pub max_concurrent: usize,
}

impl Default for QueryConfig {
    fn default() -> QueryConfig {
        QueryConfig {
            timeout: HumanDuration::from_secs(300),
            max_concurrent: std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4),
        }
    }
}

/// Decoding pushes (see `store::push::meter`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Memory all push requests being decoded may hold at once: bodies,
    /// decompressed bodies and decoded entries (default 256MiB). A request
    /// that does not fit beside the others is refused with 503 and
    /// retried; one that alone needs more gets 413. Its size also caps a
    /// body's decompressed size, which is otherwise eight times the
    /// tenant's `ingestion_burst_size_mb` (at least 8MiB, at most 100MiB).
    pub max_decode_memory: ByteSize,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        PushConfig {
            // Room for dozens of ordinary batches at once, while a burst of
            // hostile requests (each stopped at its decompressed limit)
            // stays far below the memory of a small node.
            max_decode_memory: ByteSize(256 << 20),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML file is not a valid configuration.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a YAML file; missing keys take their defaults.
    pub fn from_yaml_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        for (tenant, limits) in std::iter::once(("<default>", &self.limits))
            .chain(self.overrides.iter().map(|(t, l)| (t.as_str(), l)))
        {
            if limits.ingestion_rate_mb <= 0.0 || limits.ingestion_burst_size_mb <= 0.0 {
                return bad(format!(
                    "limits of {tenant}: ingestion_rate_mb and ingestion_burst_size_mb must be positive"
                ));
            }
            if limits.max_entries_limit_per_query == 0 {
                return bad(format!(
                    "limits of {tenant}: max_entries_limit_per_query must be positive"
                ));
            }
        }
        for tenant in self.overrides.keys() {
            if let Err(e) = crate::tenant::TenantId::new(tenant) {
                return bad(format!("overrides: {e}"));
            }
        }
        if self.ingester.block_size.0 < 1024 {
            return bad("ingester.block_size must be at least 1KiB".to_string());
        }
        if self.ingester.chunk_target_size.0 < self.ingester.block_size.0 / 8 {
            return bad("ingester.chunk_target_size is too small for block_size".to_string());
        }
        if self.ingester.max_chunk_age.is_zero() || self.ingester.chunk_idle_period.is_zero() {
            return bad(
                "ingester.max_chunk_age and chunk_idle_period must be positive".to_string(),
            );
        }
        if self.wal.segment_size.0 < 1 << 20 {
            return bad("wal.segment_size must be at least 1MiB".to_string());
        }
        if self.push.max_decode_memory.0 < 1 << 20 {
            return bad("push.max_decode_memory must be at least 1MiB".to_string());
        }
        if self.query.max_concurrent == 0 {
            return bad("query.max_concurrent must be positive".to_string());
        }
        if let Some(agent) = &self.agent {
            agent
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("agent: {e}")))?;
        }
        Ok(())
    }

    /// The limits of `tenant`.
    pub fn limits_for(&self, tenant: &str) -> &Limits {
        self.overrides.get(tenant).unwrap_or(&self.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn yaml_with_overrides() {
        let c: Config = serde_yaml::from_str(
            "http_addr: 127.0.0.1:1\nlimits:\n  max_line_size: 1KB\noverrides:\n  team-a:\n    ingestion_rate_mb: 10\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.max_line_size, ByteSize(1000));
        assert_eq!(c.limits_for("team-a").ingestion_rate_mb, 10.0);
        assert_eq!(c.limits_for("other").ingestion_rate_mb, 4.0);
        assert_eq!(c.grpc_addr, "0.0.0.0:9095");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_yaml::from_str::<Config>("htp_addr: x\n").is_err());
        assert!(serde_yaml::from_str::<Config>("limits:\n  max_lines: 1\n").is_err());
    }

    #[test]
    fn bad_values_are_rejected() {
        let mut c = Config::default();
        c.overrides.insert("../etc".to_string(), Limits::default());
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.limits.ingestion_rate_mb = 0.0;
        assert!(c.validate().is_err());
    }
}
