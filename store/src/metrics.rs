//! The store's Prometheus metrics, served as text on `/metrics`.
//!
//! Names follow `larch_<subsystem>_<name>_<unit>`; counters end in
//! `_total`; label values are bounded (tenants, routes, status codes,
//! discard reasons). Hot paths update metrics once per request or batch,
//! never per line.
//!
//! Tenant ids come from clients, so the `tenant` label goes through
//! [`TenantLabels`]: tenants named in the configuration, then the first
//! `max_tenants_in_metrics` others, get their own value; every later one is
//! counted under [`OTHER_TENANTS`]. A tenant keeps its value for the life of
//! the process.

use std::collections::HashSet;

use parking_lot::RwLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set type of every family.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1024.0, 2.0, 14))
}

/// The `tenant` label value shared by the tenants without their own. It
/// cannot be a tenant id (`<` and `>` are not allowed in one).
pub const OTHER_TENANTS: &str = "<other>";

/// Which tenants get their own `tenant` label value.
pub struct TenantLabels {
    /// Tenants named in the configuration: always their own value.
    named: HashSet<String>,
    /// Others given their own value, first come first served.
    seen: RwLock<HashSet<String>>,
    /// How many others may have one.
    max: usize,
}

impl TenantLabels {
    /// `named` tenants always have their own value, and at most `max`
    /// others.
    pub fn new(named: impl IntoIterator<Item = String>, max: usize) -> TenantLabels {
        TenantLabels {
            named: named.into_iter().collect(),
            seen: RwLock::new(HashSet::new()),
            max,
        }
    }

    /// The value of the `tenant` label for `tenant`.
    pub fn value(&self, tenant: &str) -> String {
        if self.named.contains(tenant) || self.seen.read().contains(tenant) {
            return tenant.to_string();
        }
        let mut seen = self.seen.write();
        if seen.contains(tenant) {
            return tenant.to_string();
        }
        if seen.len() < self.max {
            seen.insert(tenant.to_string());
            return tenant.to_string();
        }
        OTHER_TENANTS.to_string()
    }
}

impl Default for TenantLabels {
    /// No named tenants; 100 others (the configuration's default).
    fn default() -> TenantLabels {
        TenantLabels::new([], 100)
    }
}

/// All metrics of the store.
pub struct Metrics {
    registry: Registry,
    /// The values of the `tenant` label.
    pub tenant_labels: TenantLabels,
    /// Bytes of lines received per tenant (before validation).
    pub bytes_received: Family<Labels, Counter>,
    /// Lines received per tenant (before validation).
    pub lines_received: Family<Labels, Counter>,
    /// Entries discarded per tenant and reason.
    pub discarded_entries: Family<Labels, Counter>,
    /// Bytes discarded per tenant and reason.
    pub discarded_bytes: Family<Labels, Counter>,
    /// Identical entries dropped per tenant.
    pub duplicate_entries: Family<Labels, Counter>,
    /// Streams with unflushed data per tenant.
    pub active_streams: Family<Labels, Gauge>,
    /// Write nodes in this node's current member set (`cluster:`).
    pub cluster_members: Gauge,
    /// Shares of pushes sent to other members, by result (`success`,
    /// `failure`).
    pub cluster_forwards: Family<Vec<(&'static str, String)>, Counter>,
    /// WAL records written.
    pub wal_records: Counter,
    /// WAL bytes written.
    pub wal_bytes: Counter,
    /// Duration of WAL group commits (write + fsync).
    pub wal_commit_seconds: Histogram,
    /// Requests per WAL group commit.
    pub wal_group_size: Histogram,
    /// WAL syncs made for group commits (groups queued behind a sync
    /// share the next one).
    pub wal_syncs: Counter,
    /// Of those, syncs the WAL writer made itself (nothing else waiting)
    /// instead of handing the group to the sync thread.
    pub wal_inline_syncs: Counter,
    /// Corrupt WAL records or segments met on replay.
    pub wal_corruptions: Counter,
    /// WAL segments on disk.
    pub wal_segments: Gauge,
    /// Chunks written.
    pub chunks_flushed: Family<Labels, Counter>,
    /// Failed chunk writes (retried).
    pub flush_failures: Counter,
    /// Size of flushed chunks.
    pub chunk_size_bytes: Histogram,
    /// Chunks deleted by retention or compaction.
    pub chunks_deleted: Family<Labels, Counter>,
    /// Sealed chunks waiting to be written.
    pub flush_queue_length: Gauge,
    /// HTTP and gRPC request latency by route and status code.
    pub request_duration: HistogramFamily,
    /// Tenants the store holds.
    pub tenants: Gauge,
    /// Pushes refused because of their tenant, by reason (`not_allowed`,
    /// `max_tenants`).
    pub refused_tenant_pushes: Family<Labels, Counter>,
    /// Live tail connections open.
    pub tail_active: Gauge,
    /// Entries sent to live tail clients.
    pub tail_sent_entries: Counter,
    /// Entries live tail clients did not get, by reason (`slow_client`,
    /// `buffer_full`).
    pub tail_dropped_entries: Family<Labels, Counter>,
    /// Push events a live tail missed because it fell behind the fan-out.
    pub tail_lagged_events: Counter,
    /// Damage found on disk and what recovery did about it.
    pub recovery: RecoveryMetrics,
    /// The bucket, the flush backlog, the cache and the compactor.
    pub objstore: crate::objstore::metrics::ObjstoreMetrics,
    /// Delete requests.
    pub deletes: crate::deletes::metrics::DeleteMetrics,
    /// What queries read of the chunks: blocks by how, bytes.
    pub reads: crate::ingester::read::ReadMetrics,
    /// The ruler's metrics.
    pub ruler: crate::ruler::RulerMetrics,
    /// Authentication, authorisation and TLS.
    pub security: crate::auth::metrics::SecurityMetrics,
    /// Reloads of the runtime configuration file, by `outcome`
    /// (`success`, `failure`).
    pub runtime_config_reloads: Family<Labels, Counter>,
    /// 1 if the last reading of the runtime configuration file succeeded
    /// (or there is none), 0 while the last good one is kept.
    pub runtime_config_last_reload_successful: Gauge,
}

impl Metrics {
    /// Creates and registers every metric, with the default bound on
    /// tenant label values.
    pub fn new() -> Metrics {
        Metrics::with_tenant_labels(TenantLabels::default())
    }

    /// Creates and registers every metric, with `config`'s bound on tenant
    /// label values: tenants of `tenant_allow_list` and `overrides`, plus
    /// `max_tenants_in_metrics` others.
    pub fn for_config(config: &crate::config::Config) -> Metrics {
        let named = config
            .tenant_allow_list
            .iter()
            .chain(config.overrides.keys())
            .cloned();
        Metrics::with_tenant_labels(TenantLabels::new(named, config.max_tenants_in_metrics))
    }

    /// Creates and registers every metric, with `tenant_labels`.
    pub fn with_tenant_labels(tenant_labels: TenantLabels) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            tenant_labels,
            bytes_received: Family::default(),
            lines_received: Family::default(),
            discarded_entries: Family::default(),
            discarded_bytes: Family::default(),
            duplicate_entries: Family::default(),
            active_streams: Family::default(),
            cluster_members: Gauge::default(),
            cluster_forwards: Family::default(),
            wal_records: Counter::default(),
            wal_bytes: Counter::default(),
            wal_commit_seconds: latency_histogram(),
            wal_group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            wal_syncs: Counter::default(),
            wal_inline_syncs: Counter::default(),
            wal_corruptions: Counter::default(),
            wal_segments: Gauge::default(),
            chunks_flushed: Family::default(),
            flush_failures: Counter::default(),
            chunk_size_bytes: size_histogram(),
            chunks_deleted: Family::default(),
            flush_queue_length: Gauge::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            tenants: Gauge::default(),
            refused_tenant_pushes: Family::default(),
            tail_active: Gauge::default(),
            tail_sent_entries: Counter::default(),
            tail_dropped_entries: Family::default(),
            tail_lagged_events: Counter::default(),
            recovery: RecoveryMetrics::default(),
            objstore: Default::default(),
            deletes: Default::default(),
            reads: Default::default(),
            ruler: crate::ruler::RulerMetrics::default(),
            security: Default::default(),
            runtime_config_reloads: Family::default(),
            runtime_config_last_reload_successful: Gauge::default(),
            registry: Registry::default(),
        };
        m.runtime_config_last_reload_successful.set(1);
        m.recovery.register(&mut registry);
        m.objstore.register(&mut registry);
        m.deletes.register(&mut registry);
        m.reads.register(&mut registry);
        m.ruler.register(&mut registry);
        m.security.register(&mut registry);
        larch_metrics::register(&mut registry, "larch-store", env!("CARGO_PKG_VERSION"));
        registry.register(
            "larch_distributor_bytes_received",
            "Bytes of log lines received",
            m.bytes_received.clone(),
        );
        registry.register(
            "larch_distributor_lines_received",
            "Log lines received",
            m.lines_received.clone(),
        );
        registry.register(
            "larch_discarded_entries",
            "Entries rejected, by reason",
            m.discarded_entries.clone(),
        );
        registry.register(
            "larch_discarded_bytes",
            "Bytes of entries rejected, by reason",
            m.discarded_bytes.clone(),
        );
        registry.register(
            "larch_ingester_duplicate_entries",
            "Entries dropped because an identical entry was already stored",
            m.duplicate_entries.clone(),
        );
        registry.register(
            "larch_ingester_active_streams",
            "Streams holding unflushed data",
            m.active_streams.clone(),
        );
        registry.register(
            "larch_cluster_members",
            "Write nodes in the current member set",
            m.cluster_members.clone(),
        );
        registry.register(
            "larch_cluster_forwarded_pushes",
            "Shares of pushes forwarded to other members, by result",
            m.cluster_forwards.clone(),
        );
        registry.register(
            "larch_wal_records",
            "WAL records written",
            m.wal_records.clone(),
        );
        registry.register("larch_wal_bytes", "WAL bytes written", m.wal_bytes.clone());
        registry.register(
            "larch_wal_commit_duration_seconds",
            "Duration of WAL group commits (write and fsync)",
            m.wal_commit_seconds.clone(),
        );
        registry.register(
            "larch_wal_group_requests",
            "Push requests acknowledged per WAL group commit",
            m.wal_group_size.clone(),
        );
        registry.register(
            "larch_wal_syncs",
            "WAL syncs made to acknowledge pushes",
            m.wal_syncs.clone(),
        );
        registry.register(
            "larch_wal_inline_syncs",
            "WAL syncs made by the WAL writer itself, with nothing else waiting",
            m.wal_inline_syncs.clone(),
        );
        registry.register(
            "larch_wal_corruptions",
            "Corrupt WAL records or segments skipped on replay",
            m.wal_corruptions.clone(),
        );
        registry.register(
            "larch_wal_segments",
            "WAL segment files on disk",
            m.wal_segments.clone(),
        );
        registry.register(
            "larch_ingester_chunks_flushed",
            "Chunks written to disk",
            m.chunks_flushed.clone(),
        );
        registry.register(
            "larch_ingester_flush_failures",
            "Chunk writes that failed and will be retried",
            m.flush_failures.clone(),
        );
        registry.register(
            "larch_ingester_chunk_size_bytes",
            "Size of flushed chunk files",
            m.chunk_size_bytes.clone(),
        );
        registry.register(
            "larch_ingester_chunks_deleted",
            "Chunk files deleted by retention or compaction",
            m.chunks_deleted.clone(),
        );
        registry.register(
            "larch_ingester_flush_queue_length",
            "Sealed chunks waiting to be written",
            m.flush_queue_length.clone(),
        );
        registry.register(
            "larch_request_duration_seconds",
            "Request latency by route and status code",
            m.request_duration.clone(),
        );
        registry.register(
            "larch_ingester_tenants",
            "Tenants the store holds data of",
            m.tenants.clone(),
        );
        registry.register(
            "larch_ingester_refused_tenant_pushes",
            "Pushes refused because of their tenant (not_allowed: not in tenant_allow_list; max_tenants: one tenant too many)",
            m.refused_tenant_pushes.clone(),
        );
        registry.register(
            "larch_tail_active_connections",
            "Live tail connections open",
            m.tail_active.clone(),
        );
        registry.register(
            "larch_tail_sent_entries",
            "Entries sent to live tail clients",
            m.tail_sent_entries.clone(),
        );
        registry.register(
            "larch_tail_dropped_entries",
            "Entries live tail clients did not get, by reason",
            m.tail_dropped_entries.clone(),
        );
        registry.register(
            "larch_tail_lagged_events",
            "Push events a live tail missed because it fell behind",
            m.tail_lagged_events.clone(),
        );
        registry.register(
            "larch_runtime_config_reloads",
            "Readings of the runtime configuration file (runtime_config.file), by outcome",
            m.runtime_config_reloads.clone(),
        );
        registry.register(
            "larch_runtime_config_last_reload_successful",
            "1 if the last reading of the runtime configuration file succeeded, 0 while the last good one is kept",
            m.runtime_config_last_reload_successful.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Damage found in the data directory and what recovery did about it
/// (see ARCHITECTURE.md, "Failure modes"). Label values are fixed sets.
#[derive(Default)]
pub struct RecoveryMetrics {
    /// Bytes of corrupt WAL regions skipped on replay.
    pub wal_corrupt_bytes: Counter,
    /// Bytes cut off the end of the newest WAL segment (torn writes).
    pub wal_torn_bytes: Counter,
    /// Starts that found the newest WAL segment ending in a torn write.
    pub wal_torn_tails: Counter,
    /// Index logs found damaged, by `kind`: `record` (a bad region
    /// followed by valid records), `header`, `unreadable`.
    pub index_corruptions: Family<Labels, Counter>,
    /// Index logs that ended in a torn record (cut off).
    pub index_torn_tails: Counter,
    /// Damaged chunk files found, by `kind`: `block` (a block's column
    /// fails its checksum), `index` (footer or block index damaged),
    /// `header`, `missing` (named by the index, absent), `unreadable`.
    pub chunk_corruptions: Family<Labels, Counter>,
    /// Chunk files no index record named, added back to the index from
    /// their own headers.
    pub chunks_adopted: Counter,
    /// Files moved or copied to the quarantine folder.
    pub quarantined_files: Counter,
    /// Index log files held open.
    pub index_open_files: Gauge,
}

impl RecoveryMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "larch_wal_corrupt_bytes",
            "Bytes of corrupt WAL records skipped on replay",
            self.wal_corrupt_bytes.clone(),
        );
        registry.register(
            "larch_wal_torn_tail_bytes",
            "Bytes of partly written records cut off the newest WAL segment at startup",
            self.wal_torn_bytes.clone(),
        );
        registry.register(
            "larch_wal_torn_tails",
            "Starts that found the newest WAL segment ending in a partly written record",
            self.wal_torn_tails.clone(),
        );
        registry.register(
            "larch_index_corruptions",
            "Index logs found damaged (records recovered around the damage), by kind",
            self.index_corruptions.clone(),
        );
        registry.register(
            "larch_index_torn_tails",
            "Index logs that ended in a partly written record, cut off at startup",
            self.index_torn_tails.clone(),
        );
        registry.register(
            "larch_chunk_corruptions",
            "Damaged or missing chunk files found, by kind",
            self.chunk_corruptions.clone(),
        );
        registry.register(
            "larch_chunk_adopted",
            "Chunk files no index record named, added back to the index",
            self.chunks_adopted.clone(),
        );
        registry.register(
            "larch_store_quarantined_files",
            "Files moved or copied to the quarantine folder",
            self.quarantined_files.clone(),
        );
        registry.register(
            "larch_index_open_files",
            "Index log files held open",
            self.index_open_files.clone(),
        );
    }
}

/// A one-label set `kind=<kind>`.
pub fn kind_label(kind: &'static str) -> Labels {
    vec![("kind", kind.to_string())]
}

impl Metrics {
    /// The label set `{tenant}` for `tenant`, bounded by
    /// [`TenantLabels`].
    pub fn tenant_label(&self, tenant: &str) -> Labels {
        vec![("tenant", self.tenant_labels.value(tenant))]
    }

    /// The label set `{tenant, reason}`.
    pub fn tenant_reason_labels(&self, tenant: &str, reason: &str) -> Labels {
        vec![
            ("tenant", self.tenant_labels.value(tenant)),
            ("reason", reason.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = Metrics::new();
        m.wal_records.inc();
        m.discarded_entries
            .get_or_create(&vec![
                ("tenant", "t".into()),
                ("reason", "line_too_long".into()),
            ])
            .inc_by(3);
        let text = m.render();
        assert!(text.contains("larch_wal_records_total 1"), "{text}");
        assert!(
            text.contains(r#"larch_discarded_entries_total{tenant="t",reason="line_too_long"} 3"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        // prometheus-client ends each help with a period of its own.
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }

    #[test]
    fn tenant_label_values_are_bounded() {
        let m = Metrics::with_tenant_labels(TenantLabels::new(["named".to_string()], 3));
        for i in 0..1000 {
            m.lines_received
                .get_or_create(&m.tenant_label(&format!("t{i}")))
                .inc();
        }
        m.lines_received
            .get_or_create(&m.tenant_label("named"))
            .inc();
        // The first three keep their value for good.
        assert_eq!(m.tenant_labels.value("t1"), "t1");
        assert_eq!(m.tenant_labels.value("t999"), OTHER_TENANTS);
        let text = m.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("larch_distributor_lines_received_total"))
            .collect();
        assert_eq!(series.len(), 5, "{series:?}");
        assert!(
            text.contains(r#"larch_distributor_lines_received_total{tenant="<other>"} 997"#),
            "{text}"
        );
        assert!(text.contains(r#"{tenant="named"} 1"#), "{text}");
    }

    #[test]
    fn other_tenants_cannot_be_a_tenant_id() {
        assert!(crate::tenant::TenantId::new(OTHER_TENANTS).is_err());
    }
}
