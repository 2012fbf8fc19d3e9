//! `larch_compactor_delete_requests`, `larch_compactor_deleted_lines_total`
//! and `larch_querier_deleted_lines_filtered_total`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::Labels;

/// Delete request metrics.
#[derive(Clone, Default)]
pub struct DeleteMetrics {
    /// Requests known to this process by status (`received`,
    /// `processed`); cancelled requests are not counted.
    pub requests: Family<Labels, Gauge>,
    /// Lines the compactor removed from chunks.
    pub deleted_lines: Counter,
    /// Lines queries left out because a delete request covers them.
    pub filtered_lines: Counter,
}

impl DeleteMetrics {
    /// Registers every metric in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "larch_compactor_delete_requests",
            "Delete requests by status (received, processed)",
            self.requests.clone(),
        );
        r.register(
            "larch_compactor_deleted_lines",
            "Lines removed from chunks for delete requests",
            self.deleted_lines.clone(),
        );
        r.register(
            "larch_querier_deleted_lines_filtered",
            "Lines left out of query answers because a delete request covers them",
            self.filtered_lines.clone(),
        );
    }

    /// Sets the request gauge.
    pub fn set_counts(&self, received: u64, processed: u64) {
        for (status, n) in [("received", received), ("processed", processed)] {
            self.requests
                .get_or_create(&vec![("status", status.to_string())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
