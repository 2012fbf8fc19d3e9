//! Small endpoints: `status/buildinfo`, `format_query`, `drilldown-limits`.

use axum::extract::State;
use axum::response::Response;

use super::{ApiError, LokiParams, json, json_response};
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

/// `GET /loki/api/v1/drilldown-limits`: the limits Logs Drilldown reads.
pub async fn drilldown_limits(State(app): State<AppState>) -> Response {
    let l = &app.config.limits;
    json_response(format!(
        concat!(
            "{{\"limits\":{{\"discover_log_levels\":true,\"discover_service_name\":[\"service\",\"app\",\"application\",",
            "\"app_name\",\"name\",\"app_kubernetes_io_name\",\"container\",\"container_name\",\"k8s_container_name\",",
            "\"component\",\"workload\",\"job\",\"k8s_job_name\"],\"log_level_fields\":[\"level\",\"LEVEL\",\"Level\",",
            "\"log.level\",\"severity\",\"SEVERITY\",\"Severity\",\"lvl\",\"LVL\",\"Lvl\"],\"max_entries_limit_per_query\":{},",
            "\"max_query_series\":{},\"volume_enabled\":true,\"pattern_persistence_enabled\":false,",
            "\"allow_structured_metadata\":{}}},\"pattern_ingester_enabled\":true,\"version\":\"{}\"}}"
        ),
        l.max_entries_limit_per_query,
        l.max_query_series,
        l.allow_structured_metadata,
        LOKI_API_VERSION
    ))
}
