//! Loki's delete API: `POST|PUT /loki/api/v1/delete` makes a request,
//! `GET` lists them with their status, `DELETE` cancels one. Requests are
//! objects in the bucket ([`crate::deletes`]); the handlers do the bucket's
//! blocking calls on the blocking pool.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, LokiParams, json_response, tenant};
use crate::config::DeletionMode;
use crate::deletes::{DeleteError, request};
use crate::server::AppState;
use crate::tenant::TenantId;

/// Loki's text for a tenant whose `deletion_mode` is `disabled`.
pub const NOT_AVAILABLE: &str = "deletion is not available for this tenant";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The tenant, once the store and its limits allow deletes.
fn allowed(app: &AppState, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    if !app.config.compactor.retention_enabled {
        return Err(ApiError::bad_request("Retention is not enabled"));
    }
    let t = tenant(headers, app.config.auth_enabled)?;
    if app.config.limits_for(t.as_str()).deletion_mode == DeletionMode::Disabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, NOT_AVAILABLE));
    }
    Ok(t)
}

fn delete_error(e: DeleteError) -> ApiError {
    let status = match &e {
        DeleteError::NotFound => StatusCode::NOT_FOUND,
        DeleteError::Processed | DeleteError::PastDeadline(_) => StatusCode::BAD_REQUEST,
        DeleteError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        DeleteError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("delete request failed: {e}"),
        )
    })?
}

fn refresh_gauge(app: &AppState) {
    let (received, processed) = app.ingester.deletes.counts();
    app.metrics.deletes.set_counts(received, processed);
}

/// `POST|PUT /loki/api/v1/delete`: 204 with `X-Delete-Request-ID`.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = allowed(&app, &headers)?;
    let max_ms =
        i64::try_from(app.config.compactor.delete_max_interval.0.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    let new = request::parse_new(|k| p.get(k).map(str::to_string), now, max_ms)
        .map_err(|e| ApiError::bad_request(e.0))?;
    let deletes = app.ingester.deletes.clone();
    let (tenant, query) = (t.clone(), new.query.clone());
    let id = blocking(move || deletes.add(&t, new, now).map_err(delete_error)).await?;
    tracing::info!(tenant = %tenant, request_id = %id, query = %query, "Delete request added.");
    refresh_gauge(&app);
    Ok((
        StatusCode::NO_CONTENT,
        [(header::HeaderName::from_static("x-delete-request-id"), id)],
    )
        .into_response())
}

/// `GET /loki/api/v1/delete[?start&end]`: the requests, oldest first; with
/// both `start` and `end`, those overlapping them.
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = allowed(&app, &headers)?;
    let now = now_ms();
    let range = match (p.get("start"), p.get("end")) {
        (Some(s), Some(e)) if !s.is_empty() && !e.is_empty() => {
            let s = request::parse_time(s, now).ok_or_else(|| {
                ApiError::bad_request("invalid start time: require unix seconds or RFC3339 format")
            })?;
            let e = request::parse_time(e, now).ok_or_else(|| {
                ApiError::bad_request("invalid end time: require unix seconds or RFC3339 format")
            })?;
            Some((s, e))
        }
        _ => None,
    };
    let deletes = app.ingester.deletes.clone();
    let list = blocking(move || {
        deletes
            .refresh_tenant(&t)
            .map_err(|e| delete_error(e.into()))?;
        Ok(deletes.list(&t))
    })
    .await?;
    let shown: Vec<_> = list
        .iter()
        .filter(|r| range.is_none_or(|(s, e)| r.stored.start_ms <= e && r.stored.end_ms >= s))
        .cloned()
        .collect();
    refresh_gauge(&app);
    Ok(json_response(request::list_json(&shown)))
}

/// `DELETE /loki/api/v1/delete?request_id=…[&force=true]`: 204.
pub async fn cancel(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = allowed(&app, &headers)?;
    let id = p.get("request_id").unwrap_or_default().to_string();
    let force = p.get("force") == Some("true");
    let period_ms = i64::try_from(
        app.config
            .compactor
            .delete_request_cancel_period
            .0
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    if !crate::deletes::valid_id(&id) {
        return Err(delete_error(DeleteError::NotFound));
    }
    let deletes = app.ingester.deletes.clone();
    let (tenant, rid) = (t.clone(), id.clone());
    blocking(move || {
        deletes
            .cancel(&t, &id, force, now_ms(), period_ms)
            .map_err(delete_error)
    })
    .await?;
    tracing::info!(tenant = %tenant, request_id = %rid, "Delete request cancelled.");
    refresh_gauge(&app);
    Ok(StatusCode::NO_CONTENT.into_response())
}
