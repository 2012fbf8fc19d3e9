//! The ruler's metrics. Label values are bounded: tenants through the
//! store's `TenantLabels`, Alertmanager URLs and remote write client names
//! by the configuration, reasons and states by fixed sets.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::metrics::Labels;

/// Every metric of the ruler.
pub struct RulerMetrics {
    /// Group evaluations run, by tenant.
    pub evaluations: Family<Labels, Counter>,
    /// Rule evaluations that failed, by tenant.
    pub evaluation_failures: Family<Labels, Counter>,
    /// Group evaluations skipped because the previous one (or the wait for
    /// an evaluation slot) ran past the group's next turn, by tenant.
    pub iterations_missed: Family<Labels, Counter>,
    /// Duration of one group evaluation.
    pub evaluation_seconds: Histogram,
    /// Rule groups loaded, by tenant.
    pub rule_groups: Family<Labels, Gauge>,
    /// Rules loaded, by tenant.
    pub rules: Family<Labels, Gauge>,
    /// Alerts by state (`pending`, `firing`).
    pub alerts: Family<Labels, Gauge>,
    /// Rule files that could not be read (kept as last read).
    pub rule_file_errors: Counter,
    /// Alerts sent, by Alertmanager.
    pub notifications_sent: Family<Labels, Counter>,
    /// Failed sends (after retries), by Alertmanager.
    pub notification_errors: Family<Labels, Counter>,
    /// Alerts dropped because the queue was full.
    pub notifications_dropped: Counter,
    /// Alerts waiting to be sent.
    pub notification_queue_length: Gauge,
    /// Samples remote-written, by client.
    pub samples_sent: Family<Labels, Counter>,
    /// Samples not written, by client and reason (`rejected`: a 4xx
    /// answer; `queue_full`; `shutdown`).
    pub samples_failed: Family<Labels, Counter>,
    /// Remote write requests retried, by client.
    pub remote_write_retries: Family<Labels, Counter>,
    /// Samples waiting to be written, by client.
    pub remote_write_queue_length: Family<Labels, Gauge>,
    /// Failed writes of the alert state file.
    pub state_write_failures: Counter,
}

impl Default for RulerMetrics {
    fn default() -> RulerMetrics {
        RulerMetrics {
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            iterations_missed: Family::default(),
            evaluation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            rule_groups: Family::default(),
            rules: Family::default(),
            alerts: Family::default(),
            rule_file_errors: Counter::default(),
            notifications_sent: Family::default(),
            notification_errors: Family::default(),
            notifications_dropped: Counter::default(),
            notification_queue_length: Gauge::default(),
            samples_sent: Family::default(),
            samples_failed: Family::default(),
            remote_write_retries: Family::default(),
            remote_write_queue_length: Family::default(),
            state_write_failures: Counter::default(),
        }
    }
}

impl RulerMetrics {
    /// Registers every metric.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "larch_ruler_evaluations",
            "Rule group evaluations run, by tenant",
            self.evaluations.clone(),
        );
        r.register(
            "larch_ruler_evaluation_failures",
            "Rule evaluations that failed (query error, limit, duplicate labels), by tenant",
            self.evaluation_failures.clone(),
        );
        r.register(
            "larch_ruler_iterations_missed",
            "Rule group evaluations skipped because the previous one ran past the group's interval, by tenant",
            self.iterations_missed.clone(),
        );
        r.register(
            "larch_ruler_evaluation_duration_seconds",
            "Duration of one rule group evaluation",
            self.evaluation_seconds.clone(),
        );
        r.register(
            "larch_ruler_rule_groups",
            "Rule groups loaded, by tenant",
            self.rule_groups.clone(),
        );
        r.register(
            "larch_ruler_rules",
            "Rules loaded, by tenant",
            self.rules.clone(),
        );
        r.register(
            "larch_ruler_alerts",
            "Alerts by state (pending, firing)",
            self.alerts.clone(),
        );
        r.register(
            "larch_ruler_rule_file_errors",
            "Rule files found that could not be read (the ruler keeps what it read before)",
            self.rule_file_errors.clone(),
        );
        r.register(
            "larch_ruler_notifications_sent",
            "Alerts sent to Alertmanager, by Alertmanager",
            self.notifications_sent.clone(),
        );
        r.register(
            "larch_ruler_notification_errors",
            "Alert batches an Alertmanager did not take after retries, by Alertmanager",
            self.notification_errors.clone(),
        );
        r.register(
            "larch_ruler_notifications_dropped",
            "Alerts dropped because the notification queue was full",
            self.notifications_dropped.clone(),
        );
        r.register(
            "larch_ruler_notification_queue_length",
            "Alerts waiting to be sent to Alertmanager",
            self.notification_queue_length.clone(),
        );
        r.register(
            "larch_ruler_remote_write_samples_sent",
            "Samples remote-written, by client",
            self.samples_sent.clone(),
        );
        r.register(
            "larch_ruler_remote_write_samples_failed",
            "Samples not remote-written, by client and reason (rejected, queue_full, shutdown)",
            self.samples_failed.clone(),
        );
        r.register(
            "larch_ruler_remote_write_retries",
            "Remote write requests retried after a failure, by client",
            self.remote_write_retries.clone(),
        );
        r.register(
            "larch_ruler_remote_write_queue_length",
            "Samples waiting to be remote-written, by client",
            self.remote_write_queue_length.clone(),
        );
        r.register(
            "larch_ruler_state_write_failures",
            "Failed writes of the ruler's alert state file",
            self.state_write_failures.clone(),
        );
    }
}

/// `{name=value}`.
pub fn one(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_string())]
}
