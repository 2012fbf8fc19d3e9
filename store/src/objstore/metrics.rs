//! `larch_objstore_*`: requests to the bucket, bytes moved, the flush
//! backlog and the cache.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metrics::Labels;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

/// Object storage metrics.
#[derive(Clone)]
pub struct ObjstoreMetrics {
    /// Requests by operation (`get`, `get_range`, `put`, `list`, `delete`)
    /// and result (`success`, `not_found`, `error`).
    pub requests: Family<Labels, Counter>,
    /// Request latency by operation.
    pub duration: HistogramFamily,
    /// Bytes moved, by direction (`download`, `upload`).
    pub bytes: Family<Labels, Counter>,
    /// Chunks sealed or written but not yet named by a published segment.
    pub flush_backlog: Gauge,
    /// Segments published.
    pub segments_published: Counter,
    /// Cache lookups that found their bytes.
    pub cache_hits: Counter,
    /// Cache lookups that did not.
    pub cache_misses: Counter,
    /// Bytes held by the cache.
    pub cache_bytes: Gauge,
    /// Compactor runs by result.
    pub compactions: Family<Labels, Counter>,
    /// Objects the compactor deleted, by kind (`segment`, `chunk`, `terms`).
    pub compactor_deleted: Family<Labels, Counter>,
    /// Chunks the compactor dropped from the index for retention (their
    /// objects are then deleted after the grace period).
    pub compactor_expired_chunks: Counter,
    /// Term indexes the compactor wrote.
    pub compactor_term_indexes: Counter,
    /// Their bytes.
    pub compactor_term_index_bytes: Counter,
}

impl Default for ObjstoreMetrics {
    fn default() -> ObjstoreMetrics {
        ObjstoreMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency),
            bytes: Family::default(),
            flush_backlog: Gauge::default(),
            segments_published: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_bytes: Gauge::default(),
            compactions: Family::default(),
            compactor_deleted: Family::default(),
            compactor_expired_chunks: Counter::default(),
            compactor_term_indexes: Counter::default(),
            compactor_term_index_bytes: Counter::default(),
        }
    }
}

impl ObjstoreMetrics {
    /// Registers every metric in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "larch_objstore_requests",
            "Requests to the bucket by operation and result",
            self.requests.clone(),
        );
        r.register(
            "larch_objstore_request_duration_seconds",
            "Latency of requests to the bucket by operation",
            self.duration.clone(),
        );
        r.register(
            "larch_objstore_bytes",
            "Bytes moved to and from the bucket by direction",
            self.bytes.clone(),
        );
        r.register(
            "larch_objstore_flush_backlog_chunks",
            "Chunks not yet named by a published index segment",
            self.flush_backlog.clone(),
        );
        r.register(
            "larch_objstore_segments_published",
            "Index segments written by this write node",
            self.segments_published.clone(),
        );
        r.register(
            "larch_objstore_cache_hits",
            "Reads answered by the local cache",
            self.cache_hits.clone(),
        );
        r.register(
            "larch_objstore_cache_misses",
            "Reads the local cache could not answer",
            self.cache_misses.clone(),
        );
        r.register(
            "larch_objstore_cache_bytes",
            "Bytes held by the local cache",
            self.cache_bytes.clone(),
        );
        r.register(
            "larch_compactor_runs",
            "Compactions of a tenant's day by result",
            self.compactions.clone(),
        );
        r.register(
            "larch_compactor_deleted_objects",
            "Superseded segments and chunks deleted, by kind",
            self.compactor_deleted.clone(),
        );
        r.register(
            "larch_compactor_expired_chunks",
            "Chunks dropped from the index past their tenant's retention period",
            self.compactor_expired_chunks.clone(),
        );
        r.register(
            "larch_compactor_term_indexes",
            "Term indexes written",
            self.compactor_term_indexes.clone(),
        );
        r.register(
            "larch_compactor_term_index_bytes",
            "Bytes of the term indexes written",
            self.compactor_term_index_bytes.clone(),
        );
    }
}
