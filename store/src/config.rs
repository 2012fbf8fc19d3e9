//! The store's configuration: one serde struct, loaded from a YAML file
//! (`--config`) and overridden by command-line flags of the same names.
//!
//! Every field has a default chosen to match Loki's where Loki has one, so
//! clients see the limits they are used to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::objstore::config::{Backend, CacheConfig, ReadConfig, StorageConfig, Target};
use larch_config::{ByteSize, HumanDuration};

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
    /// Tenants that may push, by id. Empty (the default) lets every valid
    /// tenant id push. A push of another tenant gets 401 with a message
    /// naming this key; reads of any tenant are answered as before (empty
    /// for a tenant without data). Loki has no such list.
    pub tenant_allow_list: Vec<String>,
    /// Most tenants the store holds (default 10000; 0: no limit). A push
    /// that would create one more gets 429 with a message naming this key;
    /// tenants that already exist keep working, also when the limit is
    /// lowered below their number. With `limits.max_streams_per_tenant`
    /// it bounds the active streams of the whole store.
    pub max_tenants: usize,
    /// Most tenants with their own value of the `tenant` label on
    /// `/metrics` (default 100): tenants named in `tenant_allow_list` or
    /// `overrides`, then the first others seen. The rest are counted
    /// together under `tenant="<other>"`, a value no tenant id can take,
    /// so the number of series stays bounded whatever the clients send.
    pub max_tenants_in_metrics: usize,
    /// Queries may name several tenants (`X-Scope-OrgID: a|b`); results
    /// carry the `__tenant_id__` label, and a matcher on it selects
    /// tenants. Default false, as Loki's `multi_tenant_queries_enabled`.
    pub multi_tenant_queries_enabled: bool,
    /// Tokens mapped to tenants and actions (`auth.tokens_file`); off by
    /// default.
    pub auth: crate::auth::AuthConfig,
    /// TLS on the HTTP and gRPC ports; off unless `tls.cert_file` is set.
    pub tls: crate::server::tls::TlsConfig,
    /// Longest a shutdown (SIGTERM, Ctrl-C) may take, from the signal to
    /// the exit (default 20s, within Kubernetes' default grace period of
    /// 30s). Requests in flight finish, the WAL is synced, and with
    /// `ingester.flush_on_shutdown` open chunks are written until this much
    /// time has passed; whatever is not in a chunk file by then is in the
    /// WAL and is replayed at the next start.
    pub shutdown_timeout: HumanDuration,
    /// Ingestion and query limits applied to every tenant.
    pub limits: Limits,
    /// Per-tenant limits: for each tenant, the `limits` keys that differ
    /// for it; every key it does not set keeps its value from `limits`
    /// (as Loki's runtime `overrides`).
    pub overrides: BTreeMap<String, LimitsOverride>,
    /// Head blocks and chunk cutting.
    pub ingester: IngesterConfig,
    /// Write-ahead log.
    pub wal: WalConfig,
    /// Query execution.
    pub query: QueryConfig,
    /// Decoding pushes.
    pub push: PushConfig,
    /// Which role this process plays (`all`, `write`, `read`, `backend`).
    pub target: Target,
    /// Where flushed chunks and index segments live.
    pub storage: StorageConfig,
    /// The `read` target.
    pub read: ReadConfig,
    /// Several write nodes sharing streams: members, replication factor
    /// (see [`crate::cluster`]). Off unless `cluster.members` or
    /// `cluster.dns` is set.
    pub cluster: crate::cluster::ClusterConfig,
    /// The ruler: LogQL alerting and recording rules (see
    /// [`crate::ruler`]).
    pub ruler: crate::ruler::RulerConfig,
    /// Per-tenant overrides in a separate file, read again every `period`
    /// without a restart (Loki's `runtime_config`; see
    /// [`crate::runtime_config`]).
    pub runtime_config: crate::runtime_config::RuntimeConfig,
    /// Retention and the compactor of the bucket (Loki's `compactor`
    /// block).
    pub compactor: CompactorConfig,
    /// The overrides read from `runtime_config.file`, in force now (not a
    /// key of the file; shared by every clone).
    #[serde(skip)]
    pub runtime: crate::runtime_config::RuntimeOverrides,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            http_addr: "0.0.0.0:3100".to_string(),
            grpc_addr: "0.0.0.0:9095".to_string(),
            data_dir: PathBuf::from("./data"),
            auth_enabled: false,
            tenant_allow_list: Vec::new(),
            // Enough for any deployment we know of; a guard against a
            // client inventing tenant ids, not a sizing decision.
            max_tenants: 10_000,
            // A dashboard with more lines than this is unreadable anyway.
            max_tenants_in_metrics: 100,
            multi_tenant_queries_enabled: false,
            auth: crate::auth::AuthConfig::default(),
            tls: crate::server::tls::TlsConfig::default(),
            // Kubernetes kills the pod 30s after SIGTERM by default; 10s
            // are left for what comes after the budget (stopping threads)
            // and for a slow disk.
            shutdown_timeout: HumanDuration::from_secs(20),
            limits: Limits::default(),
            overrides: BTreeMap::new(),
            ingester: IngesterConfig::default(),
            wal: WalConfig::default(),
            query: QueryConfig::default(),
            push: PushConfig::default(),
            target: Target::default(),
            storage: StorageConfig::default(),
            read: ReadConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            ruler: crate::ruler::RulerConfig::default(),
            runtime_config: crate::runtime_config::RuntimeConfig::default(),
            compactor: CompactorConfig::default(),
            runtime: crate::runtime_config::RuntimeOverrides::default(),
        }
    }
}

/// `compactor:`: retention (Loki's `retention_enabled`) and, with object
/// storage, the compactor of the bucket that the `backend` target (or
/// `all`) runs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorConfig {
    /// Delete chunks past each tenant's `retention_period` (default true:
    /// a `retention_period` set is applied). Loki's default is false;
    /// a Loki configuration read with `--config.file` keeps Loki's
    /// meaning, so that retention it had off stays off.
    pub retention_enabled: bool,
    /// How often the bucket's days are compacted, per tenant (default
    /// 10m, Loki's `compaction_interval`).
    pub interval: HumanDuration,
    /// How long superseded segments and chunks stay readable in the bucket
    /// before they are deleted (default 10m): longer than a query plus a
    /// read node's index refresh.
    pub deletion_delay: HumanDuration,
    /// How long a delete request may be cancelled after it was made
    /// (Loki's `delete_request_cancel_period`, 24h); the compactor
    /// rewrites chunks only after it.
    pub delete_request_cancel_period: HumanDuration,
    /// Largest `max_interval` a delete request may give (Loki's
    /// `delete_max_interval`, 24h).
    pub delete_max_interval: HumanDuration,
    /// Build a term index for every day the compactor writes a segment
    /// for (default true), so that needle queries over the bucket fetch
    /// few bytes; a day with one live segment and no term index is
    /// rewritten to get one.
    pub term_index: bool,
}

impl Default for CompactorConfig {
    fn default() -> CompactorConfig {
        CompactorConfig {
            retention_enabled: true,
            interval: HumanDuration::from_secs(600),
            deletion_delay: HumanDuration::from_secs(600),
            delete_request_cancel_period: HumanDuration::from_secs(24 * 3600),
            delete_max_interval: HumanDuration::from_secs(24 * 3600),
            term_index: true,
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
    /// Most active streams per tenant (default 100,000; Loki's is 5000).
    /// Zero disables the limit. Loki's name `max_global_streams_per_user`
    /// is accepted too.
    ///
    /// Chosen from the cardinality benchmark (BENCHMARKS.md,
    /// "Cardinality"): an active stream of Kubernetes labels with a few
    /// short lines costs the store about 1.5 KiB of memory (its packed
    /// labels, postings, head block and bookkeeping; more as its chunk
    /// fills), and at a million streams the label names and a selective
    /// `series` answer in under a second, the million values of one label
    /// in under two. So 100,000 streams are about 150 MiB,
    /// a seventh of the Helm chart's 1 GiB memory request, and a
    /// single tenant may hold them without the store running short,
    /// while one runaway label (a request id as a label) is stopped long
    /// before it could take the store's memory. Loki's 5000 answers the
    /// cost of a stream in its own ingesters (replicated three times) and
    /// is far below what a store here holds.
    #[serde(alias = "max_global_streams_per_user")]
    pub max_streams_per_tenant: usize,
    /// Accept structured metadata (Loki: true).
    pub allow_structured_metadata: bool,
    /// Give every accepted entry a `detected_level` structured metadata
    /// pair, found as Loki finds it (Loki: true). Only with
    /// `allow_structured_metadata`.
    pub discover_log_levels: bool,
    /// Largest structured metadata of one entry (Loki: 64KB).
    pub max_structured_metadata_size: ByteSize,
    /// Most structured metadata pairs of one entry (Loki: 128).
    pub max_structured_metadata_entries_count: usize,
    /// Largest `limit` of a log query (Loki: 5000).
    pub max_entries_limit_per_query: usize,
    /// Most series a metric query may return (default 500, as Loki's).
    ///
    /// Kept at 500 for this store's own costs: a series of a range query
    /// holds up to 11,000 points of 16 bytes (176 KiB), so 500 series are
    /// at most about 86 MiB per query, and `query.max_concurrent` of them
    /// fit the chart's memory request beside the active streams. The
    /// label and series endpoints need no limit of their own: they answer
    /// from the label index, a million pod names (about 40 MB of JSON) in
    /// under two seconds (BENCHMARKS.md, "Cardinality"), bounded by
    /// `query.timeout`.
    pub max_query_series: usize,
    /// Delete chunks older than this; zero keeps forever (Loki: 0).
    pub retention_period: HumanDuration,
    /// Whether the tenant may make delete requests and whether the
    /// compactor rewrites chunks for them (Loki: `filter-and-delete`).
    pub deletion_mode: DeletionMode,
}

/// Loki's `deletion_mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DeletionMode {
    /// No delete requests are accepted.
    Disabled,
    /// Requests hide lines from queries; chunks are never rewritten.
    FilterOnly,
    /// Requests hide lines at once, and the compactor rewrites the
    /// chunks once the cancel period has passed.
    #[default]
    FilterAndDelete,
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
            max_streams_per_tenant: 100_000,
            allow_structured_metadata: true,
            // Loki's default: Grafana colours lines and builds level
            // filters from the stored level.
            discover_log_levels: true,
            max_structured_metadata_size: ByteSize(64_000),
            max_structured_metadata_entries_count: 128,
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            retention_period: HumanDuration::from_secs(0),
            deletion_mode: DeletionMode::FilterAndDelete,
        }
    }
}

/// One tenant's entry in `overrides`: the `limits` keys set for it. A key
/// left out (or `null`) keeps the value of the configured `limits` block,
/// not the binary's default, as in Loki's runtime overrides.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsOverride {
    /// See [`Limits::ingestion_rate_mb`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingestion_rate_mb: Option<f64>,
    /// See [`Limits::ingestion_burst_size_mb`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingestion_burst_size_mb: Option<f64>,
    /// See [`Limits::max_line_size`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_line_size: Option<ByteSize>,
    /// See [`Limits::max_line_size_truncate`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_line_size_truncate: Option<bool>,
    /// See [`Limits::max_label_names_per_series`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_label_names_per_series: Option<usize>,
    /// See [`Limits::max_label_name_length`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_label_name_length: Option<usize>,
    /// See [`Limits::max_label_value_length`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_label_value_length: Option<usize>,
    /// See [`Limits::reject_old_samples`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_old_samples: Option<bool>,
    /// See [`Limits::reject_old_samples_max_age`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_old_samples_max_age: Option<HumanDuration>,
    /// See [`Limits::creation_grace_period`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_grace_period: Option<HumanDuration>,
    /// See [`Limits::max_streams_per_tenant`].
    #[serde(
        skip_serializing_if = "Option::is_none",
        alias = "max_global_streams_per_user"
    )]
    pub max_streams_per_tenant: Option<usize>,
    /// See [`Limits::allow_structured_metadata`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_structured_metadata: Option<bool>,
    /// See [`Limits::discover_log_levels`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discover_log_levels: Option<bool>,
    /// See [`Limits::max_structured_metadata_size`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_structured_metadata_size: Option<ByteSize>,
    /// See [`Limits::max_structured_metadata_entries_count`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_structured_metadata_entries_count: Option<usize>,
    /// See [`Limits::max_entries_limit_per_query`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_entries_limit_per_query: Option<usize>,
    /// See [`Limits::max_query_series`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_query_series: Option<usize>,
    /// See [`Limits::retention_period`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<HumanDuration>,
    /// See [`Limits::deletion_mode`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_mode: Option<DeletionMode>,
}

impl LimitsOverride {
    /// This override laid over `below`: the keys it sets, and `below`'s
    /// for the others.
    pub fn over(&self, below: &LimitsOverride) -> LimitsOverride {
        // Written out without `..`, as `apply` is.
        let LimitsOverride {
            ingestion_rate_mb,
            ingestion_burst_size_mb,
            max_line_size,
            max_line_size_truncate,
            max_label_names_per_series,
            max_label_name_length,
            max_label_value_length,
            reject_old_samples,
            reject_old_samples_max_age,
            creation_grace_period,
            max_streams_per_tenant,
            allow_structured_metadata,
            max_structured_metadata_size,
            max_structured_metadata_entries_count,
            max_entries_limit_per_query,
            max_query_series,
            retention_period,
            discover_log_levels,
            deletion_mode,
        } = *self;
        LimitsOverride {
            ingestion_rate_mb: ingestion_rate_mb.or(below.ingestion_rate_mb),
            ingestion_burst_size_mb: ingestion_burst_size_mb.or(below.ingestion_burst_size_mb),
            max_line_size: max_line_size.or(below.max_line_size),
            max_line_size_truncate: max_line_size_truncate.or(below.max_line_size_truncate),
            max_label_names_per_series: max_label_names_per_series
                .or(below.max_label_names_per_series),
            max_label_name_length: max_label_name_length.or(below.max_label_name_length),
            max_label_value_length: max_label_value_length.or(below.max_label_value_length),
            reject_old_samples: reject_old_samples.or(below.reject_old_samples),
            reject_old_samples_max_age: reject_old_samples_max_age
                .or(below.reject_old_samples_max_age),
            creation_grace_period: creation_grace_period.or(below.creation_grace_period),
            max_streams_per_tenant: max_streams_per_tenant.or(below.max_streams_per_tenant),
            allow_structured_metadata: allow_structured_metadata
                .or(below.allow_structured_metadata),
            max_structured_metadata_size: max_structured_metadata_size
                .or(below.max_structured_metadata_size),
            max_structured_metadata_entries_count: max_structured_metadata_entries_count
                .or(below.max_structured_metadata_entries_count),
            max_entries_limit_per_query: max_entries_limit_per_query
                .or(below.max_entries_limit_per_query),
            max_query_series: max_query_series.or(below.max_query_series),
            discover_log_levels: discover_log_levels.or(below.discover_log_levels),
            retention_period: retention_period.or(below.retention_period),
            deletion_mode: deletion_mode.or(below.deletion_mode),
        }
    }

    /// `base` with the keys this override sets replaced.
    pub fn apply(&self, base: &Limits) -> Limits {
        // Written out without `..` on either side, so that a key added to
        // `Limits` or to the override and not to this function does not
        // compile.
        let LimitsOverride {
            ingestion_rate_mb,
            ingestion_burst_size_mb,
            max_line_size,
            max_line_size_truncate,
            max_label_names_per_series,
            max_label_name_length,
            max_label_value_length,
            reject_old_samples,
            reject_old_samples_max_age,
            creation_grace_period,
            max_streams_per_tenant,
            allow_structured_metadata,
            discover_log_levels,
            max_structured_metadata_size,
            max_structured_metadata_entries_count,
            max_entries_limit_per_query,
            max_query_series,
            retention_period,
            deletion_mode,
        } = *self;
        Limits {
            ingestion_rate_mb: ingestion_rate_mb.unwrap_or(base.ingestion_rate_mb),
            ingestion_burst_size_mb: ingestion_burst_size_mb
                .unwrap_or(base.ingestion_burst_size_mb),
            max_line_size: max_line_size.unwrap_or(base.max_line_size),
            max_line_size_truncate: max_line_size_truncate.unwrap_or(base.max_line_size_truncate),
            max_label_names_per_series: max_label_names_per_series
                .unwrap_or(base.max_label_names_per_series),
            max_label_name_length: max_label_name_length.unwrap_or(base.max_label_name_length),
            max_label_value_length: max_label_value_length.unwrap_or(base.max_label_value_length),
            reject_old_samples: reject_old_samples.unwrap_or(base.reject_old_samples),
            reject_old_samples_max_age: reject_old_samples_max_age
                .unwrap_or(base.reject_old_samples_max_age),
            creation_grace_period: creation_grace_period.unwrap_or(base.creation_grace_period),
            max_streams_per_tenant: max_streams_per_tenant.unwrap_or(base.max_streams_per_tenant),
            allow_structured_metadata: allow_structured_metadata
                .unwrap_or(base.allow_structured_metadata),
            discover_log_levels: discover_log_levels.unwrap_or(base.discover_log_levels),
            max_structured_metadata_size: max_structured_metadata_size
                .unwrap_or(base.max_structured_metadata_size),
            max_structured_metadata_entries_count: max_structured_metadata_entries_count
                .unwrap_or(base.max_structured_metadata_entries_count),
            max_entries_limit_per_query: max_entries_limit_per_query
                .unwrap_or(base.max_entries_limit_per_query),
            max_query_series: max_query_series.unwrap_or(base.max_query_series),
            retention_period: retention_period.unwrap_or(base.retention_period),
            deletion_mode: deletion_mode.unwrap_or(base.deletion_mode),
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
    /// How new blocks are compressed (Loki's `chunk_encoding`): `snappy`
    /// (default), `lz4` (fastest to scan), `zstd` (smallest; level in
    /// `chunk_zstd_level`) or `none`. Chunks already written keep their
    /// codec and are read whatever this says; compaction rewrites with it.
    pub chunk_encoding: crate::chunk::Codec,
    /// zstd's compression level with `chunk_encoding: zstd`, 1 to 19
    /// (default 3, zstd's own: on the loghub replay it makes chunks 1.86x
    /// smaller than snappy's, and level 4 wrote at half the speed for a
    /// few percent more; reading speed hardly changes; BENCHMARKS.md).
    pub chunk_zstd_level: i32,
    /// LZ4's level with `chunk_encoding: lz4`, 0 to 12 (default 0, LZ4's
    /// fast matcher, the cheapest to write). 1 to 12 take the
    /// high-compression matcher: at 3, chunks of the loghub replay come
    /// out 1.25x smaller and a literal scan over them runs about 1.3x
    /// faster (past ripgrep over the raw lines, per CPU-second), while
    /// blocks are written at a third of the speed and the store ingests a
    /// quarter to two fifths less per core (BENCHMARKS.md, chunk codecs).
    pub chunk_lz4_level: i32,
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
    /// Seal and write every open chunk when the store stops, within
    /// `shutdown_timeout` (default false, as Loki's
    /// `ingester.flush_on_shutdown` with its WAL on). Either way nothing
    /// acknowledged is lost: what is not in a chunk file is in the WAL and
    /// is replayed at the next start. Flushing makes that start faster and
    /// the stop slower, and cuts every stream's chunk short.
    pub flush_on_shutdown: bool,
    /// Chunks written to the bucket at once (Loki's `concurrent_flushes`,
    /// default 32; 0 counts as 1). A chunk file costs a few `fsync`s (or
    /// one object upload), mostly waiting: written one after another a
    /// local disk here managed about 800 chunks a second, which is what
    /// limits a store whose streams go idle by the hundred thousand, or
    /// one flushing every stream at shutdown. The index records of the
    /// chunks written together are appended in one write and one `fsync`
    /// per tenant.
    pub concurrent_flushes: usize,
}

impl IngesterConfig {
    /// How new blocks are written (a validated configuration's level fits).
    pub fn encoding(&self) -> crate::chunk::Encoding {
        use crate::chunk::codec::{LZ4_FAST_LEVEL, LZ4_MAX_LEVEL, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL};
        crate::chunk::Encoding {
            codec: self.chunk_encoding,
            zstd_level: level_within(self.chunk_zstd_level, ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL),
            lz4_level: level_within(self.chunk_lz4_level, LZ4_FAST_LEVEL, LZ4_MAX_LEVEL),
        }
    }
}

/// A codec level brought within `lo..=hi` (where a validated
/// configuration's level already is).
fn level_within(value: i32, lo: i8, hi: i8) -> i8 {
    // Clamped to an i8's range, so the conversion always succeeds.
    i8::try_from(value.clamp(i32::from(lo), i32::from(hi))).unwrap_or(lo)
}

/// An error naming `key` unless the codec level `value` is within
/// `lo..=hi`.
fn check_level(key: &str, value: i32, lo: i8, hi: i8) -> Result<(), ConfigError> {
    if (i32::from(lo)..=i32::from(hi)).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, format!("must be between {lo} and {hi}")))
    }
}

impl Default for IngesterConfig {
    fn default() -> IngesterConfig {
        IngesterConfig {
            block_size: ByteSize(262_144),
            chunk_target_size: ByteSize(1_572_864),
            chunk_encoding: crate::chunk::Codec::Snappy,
            chunk_zstd_level: i32::from(crate::chunk::codec::ZSTD_DEFAULT_LEVEL),
            chunk_lz4_level: i32::from(crate::chunk::codec::LZ4_FAST_LEVEL),
            max_chunk_age: HumanDuration::from_secs(2 * 3600),
            chunk_idle_period: HumanDuration::from_secs(30 * 60),
            flush_check_period: HumanDuration::from_secs(30),
            compaction_interval: HumanDuration::from_secs(600),
            flush_on_shutdown: false,
            concurrent_flushes: 32,
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
    /// Most bytes the WAL may hold on disk (default 0: no bound). Past it
    /// pushes get 503 until flushes let it be trimmed (e.g. while the
    /// bucket is unreachable), rather than filling the disk.
    pub max_size: ByteSize,
}

impl Default for WalConfig {
    fn default() -> WalConfig {
        WalConfig {
            fsync: true,
            segment_size: ByteSize(64 << 20),
            max_size: ByteSize(0),
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
    /// The YAML file could not be read. (The cause is part of the
    /// message, not a `source`, so that error reports print it once.)
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A `${VAR}` reference of the file cannot be expanded.
    #[error("invalid config file {path}: {error}")]
    Expand {
        /// The file.
        path: PathBuf,
        /// Why.
        error: larch_config::expand::ExpandError,
    },
    /// The YAML file is not a valid configuration.
    #[error("invalid config file {path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        error: larch_config::yaml::YamlError,
    },
    /// A value is out of range.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The key, as a YAML path (`overrides.team-a.ingestion_rate_mb`).
        key: String,
        /// What is wrong and what would be right.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Reads a YAML configuration file into `T` (the store's [`Config`], or a
/// binary's configuration that embeds its keys); an empty file is
/// `T::default()`. Errors name the key and the line. `${VAR}` references
/// are expanded from the environment first ([`larch_config::expand`]).
pub fn read_yaml_file<T>(path: &std::path::Path) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    read_yaml_file_with(path, true)
}

/// [`read_yaml_file`], expanding `${VAR}` references only with
/// `expand_env` (`--config.expand-env`).
pub fn read_yaml_file_with<T>(path: &std::path::Path, expand_env: bool) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let text = if expand_env {
        larch_config::expand::expand_env(&text).map_err(|error| ConfigError::Expand {
            path: path.to_path_buf(),
            error,
        })?
    } else {
        text
    };
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    larch_config::yaml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

impl Config {
    /// Reads a YAML file; missing keys take their defaults. Errors name
    /// the key and the line.
    pub fn from_yaml_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        read_yaml_file(path)
    }

    /// Checks values that types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_limits("limits", &self.limits)?;
        for (tenant, o) in &self.overrides {
            let key = format!("overrides.{tenant}");
            crate::tenant::TenantId::new(tenant)
                .map_err(|e| invalid(&key, format!("not a valid tenant id: {e}")))?;
            validate_limits(&key, &o.apply(&self.limits))?;
        }
        for (i, tenant) in self.tenant_allow_list.iter().enumerate() {
            crate::tenant::TenantId::new(tenant).map_err(|e| {
                invalid(
                    format!("tenant_allow_list[{i}]"),
                    format!("not a valid tenant id: {e}"),
                )
            })?;
        }
        self.tls.check().map_err(|(k, r)| invalid(k, r))?;
        if let Some(p) = &self.auth.tokens_file
            && p.as_os_str().is_empty()
        {
            return Err(invalid("auth.tokens_file", "is empty"));
        }
        if self.auth.reload_interval.0.is_zero() {
            return Err(invalid("auth.reload_interval", "must be greater than 0"));
        }
        if self.ingester.block_size.0 < 1024 {
            return Err(invalid("ingester.block_size", "must be at least 1KiB"));
        }
        if self.ingester.chunk_target_size.0 < self.ingester.block_size.0 / 8 {
            return Err(invalid(
                "ingester.chunk_target_size",
                "must be at least an eighth of ingester.block_size",
            ));
        }
        {
            use crate::chunk::codec::{
                LZ4_FAST_LEVEL, LZ4_MAX_LEVEL, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL,
            };
            let i = &self.ingester;
            check_level(
                "ingester.chunk_zstd_level",
                i.chunk_zstd_level,
                ZSTD_MIN_LEVEL,
                ZSTD_MAX_LEVEL,
            )?;
            check_level(
                "ingester.chunk_lz4_level",
                i.chunk_lz4_level,
                LZ4_FAST_LEVEL,
                LZ4_MAX_LEVEL,
            )?;
        }
        if self.ingester.max_chunk_age.is_zero() {
            return Err(invalid("ingester.max_chunk_age", "must be positive"));
        }
        if self.ingester.chunk_idle_period.is_zero() {
            return Err(invalid("ingester.chunk_idle_period", "must be positive"));
        }
        if self.wal.segment_size.0 < 1 << 20 {
            return Err(invalid("wal.segment_size", "must be at least 1MiB"));
        }
        if self.push.max_decode_memory.0 < 1 << 20 {
            return Err(invalid("push.max_decode_memory", "must be at least 1MiB"));
        }
        if self.query.max_concurrent == 0 {
            return Err(invalid("query.max_concurrent", "must be positive"));
        }
        crate::objstore::config::validate(&self.storage).map_err(|(k, r)| invalid(k, r))?;
        if self.target == Target::Read && self.read.index_refresh_period.is_zero() {
            return Err(invalid("read.index_refresh_period", "must be positive"));
        }
        self.cluster.check().map_err(|(k, r)| invalid(k, r))?;
        if self.target == Target::Read {
            self.read
                .check_write_node_tls(self.tls.enabled(), self.cluster.enabled())
                .map_err(|(k, r)| invalid(k, r))?;
        }
        if self.cluster.enabled() && self.tls.enabled() && self.cluster.tls.tls_ca_path.is_none() {
            return Err(invalid(
                "cluster.tls.tls_ca_path",
                "is required with tls.cert_file: the other members serve TLS too, and their certificates are checked against it",
            ));
        }
        if self.compactor.interval.is_zero() {
            return Err(invalid("compactor.interval", "must be positive"));
        }
        self.ruler.validate()?;
        Ok(())
    }

    /// The limits of `tenant`: `limits` with the keys of its entry in
    /// `overrides`, then those of its entry in the runtime file, if it
    /// has them; `retention_period` zero while
    /// `compactor.retention_enabled` is off.
    pub fn limits_for(&self, tenant: &str) -> Limits {
        let mut limits = match self.overrides.get(tenant) {
            Some(o) => o.apply(&self.limits),
            None => self.limits.clone(),
        };
        if let Some(o) = self.runtime.tenant(tenant) {
            limits = o.apply(&limits);
        }
        if !self.compactor.retention_enabled {
            limits.retention_period = HumanDuration::from_secs(0);
        }
        limits
    }

    /// How long a leaving write node keeps answering queries after its
    /// flush: `cluster.leave_linger`, or by default the longer of
    /// `cluster.refresh_period` (within which every reader's membership
    /// has seen it leaving, so it stops counting on it) and
    /// `read.index_refresh_period` (within which every reader lists the
    /// bucket again, its flushed chunks included), plus 2s for the probe
    /// and the listing themselves.
    pub fn leave_linger(&self) -> std::time::Duration {
        match self.cluster.leave_linger {
            Some(d) => d.0,
            None => self
                .cluster
                .refresh_period
                .0
                .max(self.read.index_refresh_period.0)
                .saturating_add(std::time::Duration::from_secs(2)),
        }
    }
}

/// Checks one limits block; `key` is where it is (`limits`,
/// `overrides.<tenant>`).
pub(crate) fn validate_limits(key: &str, limits: &Limits) -> Result<(), ConfigError> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(invalid(
                format!("{key}.{name}"),
                format!("must be a positive number, not {v}"),
            ))
        }
    };
    positive("ingestion_rate_mb", limits.ingestion_rate_mb)?;
    positive("ingestion_burst_size_mb", limits.ingestion_burst_size_mb)?;
    if limits.max_entries_limit_per_query == 0 {
        return Err(invalid(
            format!("{key}.max_entries_limit_per_query"),
            "must be positive",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    type Mapping = Map<String, Value>;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn yaml_with_overrides() {
        let c: Config = larch_config::yaml::from_str(
            "http_addr: 127.0.0.1:1\nlimits:\n  max_line_size: 1KB\noverrides:\n  team-a:\n    ingestion_rate_mb: 10\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.limits.max_line_size, ByteSize(1000));
        assert_eq!(c.limits_for("team-a").ingestion_rate_mb, 10.0);
        assert_eq!(c.limits_for("team-a").max_line_size, ByteSize(1000));
        assert_eq!(c.limits_for("other").ingestion_rate_mb, 4.0);
        assert_eq!(c.grpc_addr, "0.0.0.0:9095");
    }

    /// Issue 10: an override that sets one key used to reset every other
    /// key to the binary's default (team-a's 200-byte lines were accepted
    /// and its retention became "forever").
    #[test]
    fn issue_10_override_keeps_the_configured_limits() {
        let c: Config = larch_config::yaml::from_str(
            "limits:\n  max_line_size: 100B\n  retention_period: 744h\noverrides:\n  team-a:\n    ingestion_rate_mb: 10\n",
        )
        .unwrap();
        c.validate().unwrap();
        let a = c.limits_for("team-a");
        assert_eq!(a.max_line_size, ByteSize(100));
        assert_eq!(a.retention_period, HumanDuration::from_secs(744 * 3600));
        assert_eq!(a.ingestion_rate_mb, 10.0);
    }

    fn mapping(v: &impl Serialize) -> Mapping {
        match serde_json::to_value(v).unwrap() {
            Value::Object(m) => m,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    const DELETION_MODES: [&str; 3] = ["disabled", "filter-only", "filter-and-delete"];

    /// A value of the same kind as `v` that differs from it (and from
    /// what `step` other than this one gives), still valid for the key.
    fn changed(v: &Value, step: u64) -> Value {
        match v {
            Value::Bool(b) => Value::Bool(if step % 2 == 1 { !b } else { *b }),
            Value::Number(n) if n.is_u64() => Value::from(n.as_u64().unwrap() + 7 * step),
            Value::Number(n) => Value::from(n.as_f64().unwrap() + 0.25 * step as f64),
            // `deletion_mode`: the next modes along.
            Value::String(s) if DELETION_MODES.contains(&s.as_str()) => {
                let i = DELETION_MODES.iter().position(|m| m == s).unwrap_or(0);
                Value::from(DELETION_MODES[(i + step as usize) % DELETION_MODES.len()])
            }
            // Durations and sizes serialize as text.
            Value::String(s) => Value::String(match s.parse::<HumanDuration>() {
                Ok(d) => HumanDuration(d.0 + std::time::Duration::from_secs(61 * step)).to_string(),
                Err(_) => {
                    let b: ByteSize = s.parse().unwrap();
                    ByteSize(b.0 + 7 * step).to_string()
                }
            }),
            // A new kind of limit: teach this function how to change it.
            other => panic!("no way to change {other:?}"),
        }
    }

    /// Every key of `limits`, found through serde so that a key added
    /// later is covered: set alone in an override, it changes that key
    /// only; every other key keeps the configured (non-default) value of
    /// `limits`.
    #[test]
    fn every_limit_is_inherited_and_overridable_alone() {
        let defaults = mapping(&Limits::default());
        assert!(defaults.len() >= 18, "{defaults:?}");
        let configured: Mapping = defaults
            .iter()
            .map(|(k, v)| (k.clone(), changed(v, 1)))
            .collect();
        for (k, v) in &configured {
            // Booleans flip back at step 2; the other kinds differ.
            assert_ne!(Some(v), defaults.get(k), "{k:?} is not changed");
        }
        for key in defaults.keys() {
            let set = match &configured[key] {
                Value::Bool(b) => Value::Bool(!b),
                v => changed(v, 2),
            };
            let mut over = Mapping::new();
            over.insert(key.clone(), set.clone());
            let mut overrides = Mapping::new();
            overrides.insert("team-a".into(), Value::Object(over));
            let mut doc = Mapping::new();
            doc.insert("limits".into(), Value::Object(configured.clone()));
            doc.insert("overrides".into(), Value::Object(overrides));
            // Read as a user's file would be.
            let yaml = larch_config::yaml::to_string(&doc).unwrap();
            let c: Config = larch_config::yaml::from_str(&yaml).unwrap();
            c.validate().unwrap();
            assert_eq!(mapping(&c.limits), configured, "limits block read back");
            assert_eq!(c.limits_for("team-b"), c.limits, "tenant without override");
            let got = mapping(&c.limits_for("team-a"));
            assert_eq!(got.len(), configured.len());
            for (k, v) in &got {
                if k == key {
                    assert_eq!(v, &set, "{key:?} set by the override");
                } else {
                    assert_eq!(v, &configured[k], "{k:?} with only {key:?} overridden");
                }
            }
            // The override reads back as written: only its key.
            assert_eq!(mapping(&c.overrides["team-a"]).len(), 1);
        }
    }

    #[test]
    fn chunk_encoding_and_zstd_level() {
        let c: Config = larch_config::yaml::from_str(
            "ingester:\n  chunk_encoding: zstd\n  chunk_zstd_level: 9\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.ingester.encoding(),
            crate::chunk::Encoding {
                codec: crate::chunk::Codec::Zstd,
                zstd_level: 9,
                lz4_level: 0,
            }
        );
        let c: Config = larch_config::yaml::from_str(
            "ingester:\n  chunk_encoding: lz4\n  chunk_lz4_level: 3\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            (c.ingester.encoding().codec, c.ingester.encoding().lz4_level),
            (crate::chunk::Codec::Lz4, 3)
        );
        for name in ["snappy", "lz4", "none"] {
            let c: Config =
                larch_config::yaml::from_str(&format!("ingester:\n  chunk_encoding: {name}\n"))
                    .unwrap();
            assert_eq!(c.ingester.chunk_encoding.name(), name);
        }
        let d = Config::default().ingester;
        assert_eq!((d.chunk_encoding.name(), d.chunk_zstd_level), ("snappy", 3));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(larch_config::yaml::from_str::<Config>("htp_addr: x\n").is_err());
        assert!(larch_config::yaml::from_str::<Config>("limits:\n  max_lines: 1\n").is_err());
        let e = larch_config::yaml::from_str::<Config>("overrides:\n  t:\n    max_lines: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("overrides.t") && e.contains("max_lines"), "{e}");
    }

    /// Parse errors name the key, also for values that used to panic.
    #[test]
    fn bad_values_name_their_key() {
        for (yaml, key) in [
            (
                "limits:\n  retention_period: 1e30\n",
                "limits.retention_period",
            ),
            (
                "limits:\n  retention_period: 10 years\n",
                "limits.retention_period",
            ),
            (
                "overrides:\n  t:\n    reject_old_samples_max_age: -5\n",
                "overrides.t.reject_old_samples_max_age",
            ),
            ("limits:\n  max_line_size: 1e30\n", "limits.max_line_size"),
            (
                "ingester:\n  max_chunk_age: .inf\n",
                "ingester.max_chunk_age",
            ),
            ("shutdown_timeout: soon\n", "shutdown_timeout"),
            ("max_tenants: -1\n", "max_tenants"),
            (
                "ingester:\n  chunk_encoding: gzip\n",
                "ingester.chunk_encoding",
            ),
        ] {
            let e = larch_config::yaml::from_str::<Config>(yaml)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(key), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        let check = |c: Config, key: &str| {
            let e = c.validate().unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
                "{key}: {e}"
            );
            assert!(e.to_string().contains(key), "{e}");
        };
        let mut c = Config::default();
        c.overrides
            .insert("../etc".to_string(), LimitsOverride::default());
        check(c, "overrides.../etc");
        let mut c = Config::default();
        c.limits.ingestion_rate_mb = 0.0;
        check(c, "limits.ingestion_rate_mb");
        let mut c = Config::default();
        c.limits.ingestion_burst_size_mb = f64::NAN;
        check(c, "limits.ingestion_burst_size_mb");
        let mut c = Config::default();
        c.overrides.insert(
            "team-a".to_string(),
            LimitsOverride {
                max_entries_limit_per_query: Some(0),
                ..LimitsOverride::default()
            },
        );
        check(c, "overrides.team-a.max_entries_limit_per_query");
        let c = Config {
            tenant_allow_list: vec!["ok".into(), "a/b".into()],
            ..Config::default()
        };
        check(c, "tenant_allow_list[1]");
        for level in [0, 20, -5] {
            let mut c = Config::default();
            c.ingester.chunk_zstd_level = level;
            check(c, "ingester.chunk_zstd_level");
        }
        for level in [13, -1] {
            let mut c = Config::default();
            c.ingester.chunk_lz4_level = level;
            check(c, "ingester.chunk_lz4_level");
        }
        let mut c = Config::default();
        c.ingester.chunk_idle_period = HumanDuration::from_secs(0);
        check(c, "ingester.chunk_idle_period");
    }

    #[test]
    fn tenant_keys() {
        let c: Config = larch_config::yaml::from_str(
            "tenant_allow_list: [team-a, team-b]\nmax_tenants: 3\nmax_tenants_in_metrics: 5\nshutdown_timeout: 5s\ningester:\n  flush_on_shutdown: true\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.tenant_allow_list, ["team-a", "team-b"]);
        assert_eq!(c.max_tenants, 3);
        assert_eq!(c.max_tenants_in_metrics, 5);
        assert_eq!(c.shutdown_timeout, HumanDuration::from_secs(5));
        assert!(c.ingester.flush_on_shutdown);
        let d = Config::default();
        assert!(d.tenant_allow_list.is_empty());
        assert_eq!((d.max_tenants, d.max_tenants_in_metrics), (10_000, 100));
        assert!(!d.ingester.flush_on_shutdown);
    }

    #[test]
    fn a_leaver_lingers_past_the_readers_refreshes_unless_told() {
        let d = Config::default();
        // 5s membership refresh, 15s bucket listing: 15s + 2s.
        assert_eq!(d.leave_linger(), std::time::Duration::from_secs(17));
        let c: Config = larch_config::yaml::from_str(
            "read:\n  index_refresh_period: 100ms\ncluster:\n  members: [a:1]\n  refresh_period: 200ms\n",
        )
        .unwrap();
        assert_eq!(c.leave_linger(), std::time::Duration::from_millis(2200));
        let c: Config =
            larch_config::yaml::from_str("cluster:\n  members: [a:1]\n  leave_linger: 0s\n")
                .unwrap();
        c.validate().unwrap();
        assert_eq!(c.leave_linger(), std::time::Duration::ZERO);
    }
}
