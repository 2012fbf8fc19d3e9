//! Small endpoints: `status/buildinfo`, `format_query`, `drilldown-limits`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use larch_query::level::LEVEL_FIELDS;

use super::{ApiError, LokiParams, json, json_response, tenant};
use crate::server::AppState;

/// The Loki version whose API we implement (clients such as Grafana's
/// Logs Drilldown gate features on it).
pub const LOKI_API_VERSION: &str = "3.5.0";

/// `GET /loki/api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    json_response(format!(
        "{{\"version\":\"{LOKI_API_VERSION}\",\"revision\":\"larch-{}\",\"branch\":\"main\",\"buildUser\":\"larch\",\"buildDate\":\"\",\"goVersion\":\"\"}}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// `GET|POST /loki/api/v1/format_query`: the query in canonical form.
pub async fn format_query(LokiParams(p): LokiParams) -> Result<Response, ApiError> {
    let q = p.get("query").unwrap_or_default();
    let expr =
        larch_query::logql::parse_expr(q).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut out = String::new();
    json::string(&mut out, &expr.to_string());
    Ok(json_response(json::success(&out)))
}

/// `GET /loki/api/v1/drilldown-limits`: the limits Logs Drilldown reads,
/// the tenant's own (the configured `limits` when the request names no
/// valid tenant: the answer is advice to the UI, not data).
pub async fn drilldown_limits(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let l = match tenant(&headers, app.config.auth_enabled) {
        Ok(t) => app.config.limits_for(t.as_str()),
        Err(_) => app.config.limits.clone(),
    };
    let mut fields = String::new();
    for (i, f) in LEVEL_FIELDS.iter().enumerate() {
        if i > 0 {
            fields.push(',');
        }
        json::string(&mut fields, f);
    }
    json_response(format!(
        concat!(
            "{{\"limits\":{{\"discover_log_levels\":{},\"discover_service_name\":[\"service\",\"app\",\"application\",",
            "\"app_name\",\"name\",\"app_kubernetes_io_name\",\"container\",\"container_name\",\"k8s_container_name\",",
            "\"component\",\"workload\",\"job\",\"k8s_job_name\"],\"log_level_fields\":[{}],\"max_entries_limit_per_query\":{},",
            "\"max_query_series\":{},\"volume_enabled\":true,\"pattern_persistence_enabled\":false,",
            "\"allow_structured_metadata\":{}}},\"pattern_ingester_enabled\":true,\"version\":\"{}\"}}"
        ),
        l.discover_log_levels,
        fields,
        l.max_entries_limit_per_query,
        l.max_query_series,
        l.allow_structured_metadata,
        LOKI_API_VERSION
    ))
}
