//! HTTP push handlers: `/loki/api/v1/push`, `/api/prom/push`,
//! `/otlp/v1/logs`, and the shared path from a decoded push to a response.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::ingester::{TenantRefused, WriteError};
use crate::push::{self, DecodeError, Push, body};
use crate::tenant::TenantId;
use crate::validate::{self, Reason};

/// Bodies larger than this are decoded on the blocking pool.
const INLINE_DECODE_LIMIT: usize = 64 * 1024;

/// The push formats, by endpoint and content type.
#[derive(Clone, Copy, Debug)]
enum Format {
    /// `/loki/api/v1/push`.
    V1,
    /// `/api/prom/push`.
    Legacy,
    /// `/otlp/v1/logs`.
    Otlp,
}

/// An outcome as an HTTP response: 204, or Loki's status and plain text.
#[derive(Debug)]
pub enum PushError {
    /// Missing or invalid tenant: 401.
    Tenant(String),
    /// Undecodable body: 400 or 413.
    Decode(DecodeError),
    /// Some or all entries rejected: 400, or 429 when the client should retry.
    Rejected {
        /// Whether the client should retry.
        retry: bool,
        /// Loki-style description of every rejection.
        message: String,
    },
    /// The WAL failed or the store is stopping: 503.
    Unavailable(String),
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            PushError::Tenant(m) => (StatusCode::UNAUTHORIZED, m),
            PushError::Decode(DecodeError::BadRequest(m)) => (StatusCode::BAD_REQUEST, m),
            PushError::Decode(DecodeError::TooLarge(m)) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            PushError::Rejected {
                retry: true,
                message,
            } => (StatusCode::TOO_MANY_REQUESTS, message),
            PushError::Rejected {
                retry: false,
                message,
            } => (StatusCode::BAD_REQUEST, message),
            PushError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{msg}\n"),
        )
            .into_response()
    }
}

/// `POST /loki/api/v1/push`.
pub async fn push_v1(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, PushError> {
    handle(app, headers, body, Format::V1).await
}

/// `POST /api/prom/push`.
pub async fn push_legacy(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, PushError> {
    handle(app, headers, body, Format::Legacy).await
}

/// `POST /otlp/v1/logs`.
pub async fn push_otlp(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, PushError> {
    handle(app, headers, body, Format::Otlp).await
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    app: AppState,
    headers: HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<StatusCode, PushError> {
    let tenant = TenantId::from_header(
        header_str(&headers, "x-scope-orgid"),
        app.config.auth_enabled,
    )
    .map_err(|e| PushError::Tenant(e.to_string()))?;
    let content_type = header_str(&headers, "content-type").map(str::to_string);
    let encoding = header_str(&headers, "content-encoding").map(str::to_string);
    let decode = move || -> Result<Push, DecodeError> {
        let raw = body::decode_content_encoding(encoding.as_deref(), &body)?;
        let json = body::is_json(content_type.as_deref())?;
        match (format, json) {
            (Format::V1, true) => push::json::decode_v1(&raw),
            (Format::Legacy, true) => push::json::decode_v0(&raw),
            (Format::V1 | Format::Legacy, false) => push::protobuf::decode_http(&raw),
            (Format::Otlp, true) => push::otlp::decode_json(&raw),
            (Format::Otlp, false) => push::otlp::decode_protobuf(&raw),
        }
    };
    let push = if body_len_hint(&headers) > INLINE_DECODE_LIMIT {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|e| PushError::Unavailable(format!("decoding task failed: {e}")))?
    } else {
        decode()
    }
    .map_err(PushError::Decode)?;
    ingest(&app, &tenant, push)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

fn body_len_hint(headers: &HeaderMap) -> usize {
    header_str(headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Validates, rate-limits and stores a decoded push; shared by HTTP and
/// gRPC. `Ok` means everything was stored.
pub async fn ingest(app: &AppState, tenant: &TenantId, push: Push) -> Result<(), PushError> {
    // Before any work or per-tenant state for a tenant that may not push.
    app.ingester.admit(tenant).map_err(tenant_refused)?;
    let limits = app.config.limits_for(tenant.as_str());
    let received_lines = push.entry_count() as u64;
    let received_bytes: u64 = push
        .streams
        .iter()
        .flat_map(|s| s.entries.iter())
        .map(|e| e.line.len() as u64)
        .sum();
    let labels = app.metrics.tenant_label(tenant.as_str());
    app.metrics
        .lines_received
        .get_or_create(&labels)
        .inc_by(received_lines);
    app.metrics
        .bytes_received
        .get_or_create(&labels)
        .inc_by(received_bytes);

    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let mut validated = validate::validate(push, &limits, now);
    let lines = validated.accepted_entries();
    if lines > 0 {
        let rate = limits.ingestion_rate_mb * 1024.0 * 1024.0;
        let burst = limits.ingestion_burst_size_mb * 1024.0 * 1024.0;
        if !app
            .limiter
            .allow(tenant.as_str(), validated.accepted_bytes, rate, burst)
        {
            let bytes = validated.accepted_bytes;
            validated.discard(Reason::RateLimited, lines, bytes);
            record_discards(app, tenant, &validated.discarded);
            return Err(PushError::Rejected {
                retry: true,
                message: format!(
                    "ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
                    rate as u64
                ),
            });
        }
    }
    let mut errors = std::mem::take(&mut validated.errors);
    let mut retry = validated.has_retryable();
    let discarded = std::mem::take(&mut validated.discarded);
    record_discards(app, tenant, &discarded);
    let outcome = app
        .ingester
        .push(tenant, validated)
        .await
        .map_err(|e| match e {
            WriteError::WalFailed(m) => {
                PushError::Unavailable(format!("write-ahead log failure: {m}"))
            }
            WriteError::ShuttingDown => {
                PushError::Unavailable("the store is shutting down".to_string())
            }
            WriteError::Tenant(r) => tenant_refused(r),
        })?;
    record_discards(app, tenant, &outcome.discarded);
    retry |= outcome.discarded.keys().any(|r| r.is_retryable());
    errors.extend(outcome.errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PushError::Rejected {
            retry,
            message: errors.join("\n"),
        })
    }
}

/// Not allowed: 401, as every tenant error. One tenant too many: 429, as
/// Loki's stream limit: the data is fine and is accepted once the limit is
/// raised, so clients keep it and retry.
fn tenant_refused(r: TenantRefused) -> PushError {
    match r {
        TenantRefused::NotAllowed(_) => PushError::Tenant(r.to_string()),
        TenantRefused::TooMany { .. } => PushError::Rejected {
            retry: true,
            message: r.to_string(),
        },
    }
}

fn record_discards(
    app: &AppState,
    tenant: &TenantId,
    discarded: &std::collections::HashMap<Reason, (u64, u64)>,
) {
    for (reason, (entries, bytes)) in discarded {
        let labels = app
            .metrics
            .tenant_reason_labels(tenant.as_str(), reason.as_str());
        app.metrics
            .discarded_entries
            .get_or_create(&labels)
            .inc_by(*entries);
        app.metrics
            .discarded_bytes
            .get_or_create(&labels)
            .inc_by(*bytes);
    }
}
