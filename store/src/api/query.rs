//! `/loki/api/v1/query`, `/loki/api/v1/query_range` and the legacy
//! `/api/prom/query`: parameters in, the engine on the blocking pool,
//! Loki's JSON out.
//!
//! A query runs through [`super::exec::run`]: it holds a permit of a
//! bounded pool (`query.max_concurrent`), runs at most `query.timeout`
//! (then 504 with Loki's text), and stops at the next block when the
//! client goes away (the handler's future is dropped, which raises the
//! engine's cancel flag).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use larch_query::engine::{EngineError, QueryRequest, QueryStats, QueryValue, evaluate};

use super::params::{Params, TimeRange, direction, interval, limit, now_ns, parse_timestamp};
use super::{ApiError, LokiParams, exec, json, json_response};
use crate::server::AppState;

/// Whether the request asks for Loki's `categorize-labels` encoding.
pub fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-loki-response-encoding-flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|f| f.trim() == "categorize-labels"))
}

fn query_text(p: &Params) -> String {
    p.get("query").unwrap_or_default().to_string()
}

/// Maps an engine error to Loki's status and text.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::Cancelled => exec::cancelled(),
        // A write node that did not answer: the answer would miss its
        // unflushed lines, so it is refused as unavailable.
        EngineError::Storage(s) if s.is::<crate::objstore::remote::WriteNodeError>() => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, s.to_string())
        }
        EngineError::Storage(s) if s.is::<crate::deletes::NotLoaded>() => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, s.to_string())
        }
        EngineError::Storage(s) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, s.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Runs a query through [`exec::run`] (query slot, blocking pool, timeout,
/// cancellation).
pub async fn run(
    app: &AppState,
    mut req: QueryRequest,
) -> Result<(QueryValue, QueryStats), ApiError> {
    let ingester = app.query_source();
    exec::run(app, move |cancel| {
        req.cancel = Some(cancel);
        // Tenant ids cannot hold `|`: it separates the tenants of a
        // multi-tenant query (see `query_tenants`).
        if req.tenant.contains('|') {
            let tenants = req
                .tenant
                .split('|')
                .filter_map(|t| crate::tenant::TenantId::new(t).ok())
                .collect();
            let source = crate::ingester::multi::MultiTenantSource::new(ingester.as_ref(), tenants);
            evaluate(&source, &req)
        } else {
            evaluate(ingester.as_ref(), &req)
        }
        .map_err(engine_error)
    })
    .await
}

/// The tenant (or, with `multi_tenant_queries_enabled`, the `|`-separated
/// tenants) of a query and the limits that apply: for several tenants,
/// the smallest of theirs.
fn query_tenants(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<(String, crate::config::Limits), ApiError> {
    let value = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok());
    let tenants = crate::ingester::multi::parse_tenants(
        value,
        app.config.auth_enabled,
        app.config.multi_tenant_queries_enabled,
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let mut limits = app.config.limits_for(tenants[0].as_str());
    for t in &tenants[1..] {
        let l = app.config.limits_for(t.as_str());
        limits.max_entries_limit_per_query = limits
            .max_entries_limit_per_query
            .min(l.max_entries_limit_per_query);
        limits.max_query_series = limits.max_query_series.min(l.max_query_series);
    }
    let joined: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
    Ok((joined.join("|"), limits))
}

/// `GET|POST /loki/api/v1/query_range`.
pub async fn query_range(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (t, limits) = query_tenants(&app, &headers)?;
    let r = TimeRange::parse(&p, now_ns(), None)?;
    let req = QueryRequest {
        tenant: t.clone(),
        query: query_text(&p),
        start: r.start,
        end: r.end,
        step: r.step,
        interval: interval(&p)?,
        limit: limit(&p, limits.max_entries_limit_per_query)?,
        direction: direction(&p)?,
        instant: false,
        categorize_labels: categorize(&headers),
        max_series: limits.max_query_series,
        cancel: None,
    };
    answer(&app, req).await
}

/// Runs `req` and writes Loki's query response.
async fn answer(app: &AppState, req: QueryRequest) -> Result<Response, ApiError> {
    let categorized = req.categorize_labels;
    let (value, stats) = run(app, req).await?;
    Ok(json_response(json::query_response(
        &value,
        &stats,
        categorized,
    )))
}

/// `GET|POST /loki/api/v1/query` (instant).
pub async fn query_instant(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (t, limits) = query_tenants(&app, &headers)?;
    let time = match p.get("time") {
        Some(v) => parse_timestamp(v)
            .map_err(|e| ApiError::bad_request(format!("could not parse 'time' parameter: {e}")))?,
        None => now_ns(),
    };
    let req = QueryRequest {
        tenant: t.clone(),
        query: query_text(&p),
        start: time,
        end: time,
        step: 0,
        interval: 0,
        limit: limit(&p, limits.max_entries_limit_per_query)?,
        direction: direction(&p)?,
        instant: true,
        categorize_labels: categorize(&headers),
        max_series: limits.max_query_series,
        cancel: None,
    };
    answer(&app, req).await
}

/// `GET|POST /api/prom/query`: the legacy log query. `regexp` is appended
/// as a `|~` filter; only stream results are allowed.
pub async fn legacy_query(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (t, limits) = query_tenants(&app, &headers)?;
    let r = TimeRange::parse(&p, now_ns(), None)?;
    let mut query = query_text(&p);
    if let Some(re) = p.get("regexp") {
        query.push_str(" |~ ");
        query.push_str(&larch_query::logql::go_quote(re));
    }
    let req = QueryRequest {
        tenant: t.clone(),
        query,
        start: r.start,
        end: r.end,
        step: r.step,
        interval: 0,
        limit: limit(&p, limits.max_entries_limit_per_query)?,
        direction: direction(&p)?,
        instant: false,
        categorize_labels: false,
        max_series: limits.max_query_series,
        cancel: None,
    };
    let (value, stats) = run(&app, req).await?;
    let QueryValue::Streams(streams) = value else {
        return Err(ApiError::bad_request(
            "legacy endpoints only support streams result type",
        ));
    };
    let mut out = String::from("{\"streams\":[");
    json::legacy_streams(&mut out, &streams);
    out.push_str("],\"stats\":");
    json::stats_json(&mut out, &stats);
    out.push('}');
    Ok(json_response(out))
}
