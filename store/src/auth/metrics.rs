//! Metrics of authentication, authorisation and TLS. Label values are
//! bounded: reasons and actions are fixed sets, token names come from the
//! tokens file, never from clients.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::Labels;

/// The metrics.
#[derive(Default)]
pub struct SecurityMetrics {
    /// Requests refused, by reason (`missing_credentials`,
    /// `invalid_credentials`, `rate_limited`, `no_org_id`,
    /// `tenant_not_allowed`, `action_not_allowed`) and protocol.
    pub denied: Family<Labels, Counter>,
    /// Requests let through, by token name and action.
    pub allowed: Family<Labels, Counter>,
    /// Reloads of the tokens file and of certificates, by `file`
    /// (`tokens`, `tls`) and `result` (`success`, `failure`).
    pub reloads: Family<Labels, Counter>,
    /// Tokens in the file in use.
    pub tokens: Gauge,
    /// TLS handshakes that failed or timed out, by listener.
    pub handshake_failures: Family<Labels, Counter>,
}

impl SecurityMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "larch_auth_denied_requests",
            "Requests refused by authentication or authorisation, by reason",
            self.denied.clone(),
        );
        registry.register(
            "larch_auth_allowed_requests",
            "Requests let through by authorisation, by token and action",
            self.allowed.clone(),
        );
        registry.register(
            "larch_auth_reloads",
            "Reloads of the tokens file and of TLS certificates after a change, by result",
            self.reloads.clone(),
        );
        registry.register(
            "larch_auth_tokens",
            "Tokens in the tokens file in use",
            self.tokens.clone(),
        );
        registry.register(
            "larch_tls_handshake_failures",
            "TLS handshakes that failed or timed out, by listener",
            self.handshake_failures.clone(),
        );
    }

    /// Counts a reload.
    pub fn reloaded(&self, file: &'static str, ok: bool) {
        self.reloads
            .get_or_create(&vec![
                ("file", file.to_string()),
                ("result", if ok { "success" } else { "failure" }.to_string()),
            ])
            .inc();
    }
}
