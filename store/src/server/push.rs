//! HTTP push handlers: `/loki/api/v1/push`, `/api/prom/push`,
//! `/otlp/v1/logs`, and the shared path from a received body to a response
//! (gRPC joins it at [`prepare`]).
//!
//! A request holds a [`Meter`] on the store's decode budget from its first
//! body byte to its response: the body is charged as it arrives and refused
//! past the tenant's decompressed limit, decoding charges what it
//! allocates, and what the decoded push holds stays charged until it is
//! stored. Decoding and validation run on the request's task when the body
//! decodes to at most [`INLINE_DECODE_LIMIT`] bytes (as received, or as its
//! snappy header says), else on the blocking pool.

use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::cluster::forward::ReplicateError;
use crate::config::Limits;
use crate::ingester::{TenantRefused, WriteError};
use crate::push::meter::{LineLimit, Meter};
use crate::push::{self, DecodeError, Format, body};
use crate::tenant::TenantId;
use crate::validate::{self, Reason, Validated};

/// Bodies that decode to at most this many bytes are decoded and validated
/// on the request's task; larger ones go to the blocking pool, as do gzip,
/// deflate and framed snappy bodies, whose decoded size is known only
/// once decoded. A protobuf push's size is read from its snappy block
/// header, which the decoder checks before decompressing, so a body that
/// lies about it is refused before any work. The bound: decoding and
/// validating costs about 0.5 µs per 150-byte line (the profiles in
/// BENCHMARKS.md), so an inline decode holds an executor thread for at
/// most about 0.4 ms; in exchange, small pushes (the most common kind)
/// skip the blocking pool's round trip, two thread hand-overs and
/// wake-ups per request.
pub const INLINE_DECODE_LIMIT: usize = 128 * 1024;

/// Longest message of the WAL writer quoted in a response.
const MAX_WRITER_MESSAGE: usize = 4096;

/// An outcome as an HTTP response: 204, or Loki's status and plain text.
#[derive(Debug)]
pub enum PushError {
    /// Missing or invalid tenant: 401.
    Tenant(String),
    /// Undecodable body: 400, 413, or 503 when the store has no memory
    /// left for decoding it now.
    Decode(DecodeError),
    /// The request can never be accepted whole, however often it is sent
    /// (it holds more than the tenant's burst): 413.
    TooLarge(String),
    /// Some or all entries rejected: 400, or 429 when the client should retry.
    Rejected {
        /// Whether the client should retry.
        retry: bool,
        /// Loki-style description of the rejections (bounded).
        message: String,
    },
    /// The WAL failed or the store is stopping: 503.
    Unavailable(String),
}

impl PushError {
    /// The HTTP status and text.
    pub fn status_and_message(self) -> (StatusCode, String) {
        match self {
            PushError::Tenant(m) => (StatusCode::UNAUTHORIZED, m),
            PushError::Decode(DecodeError::BadRequest(m)) => (StatusCode::BAD_REQUEST, m),
            PushError::Decode(DecodeError::TooLarge(m)) | PushError::TooLarge(m) => {
                (StatusCode::PAYLOAD_TOO_LARGE, m)
            }
            PushError::Decode(DecodeError::Busy(m)) | PushError::Unavailable(m) => {
                (StatusCode::SERVICE_UNAVAILABLE, m)
            }
            PushError::Rejected {
                retry: true,
                message,
            } => (StatusCode::TOO_MANY_REQUESTS, message),
            PushError::Rejected {
                retry: false,
                message,
            } => (StatusCode::BAD_REQUEST, message),
        }
    }
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        let (status, msg) = self.status_and_message();
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
    body: Body,
) -> Result<StatusCode, PushError> {
    handle(app, headers, body, Format::V1).await
}

/// `POST /api/prom/push`.
pub async fn push_legacy(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, PushError> {
    handle(app, headers, body, Format::Legacy).await
}

/// `POST /otlp/v1/logs`.
pub async fn push_otlp(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, PushError> {
    handle(app, headers, body, Format::Otlp).await
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(
    app: AppState,
    headers: HeaderMap,
    body: Body,
    format: Format,
) -> Result<StatusCode, PushError> {
    let tenant = TenantId::from_header(
        header_str(&headers, "x-scope-orgid"),
        app.config.auth_enabled,
    )
    .map_err(|e| PushError::Tenant(e.to_string()))?;
    let mut meter = admit(&app, &tenant)?;
    let content_length = header_str(&headers, "content-length").and_then(|v| v.parse().ok());
    let body = match read_body(body, content_length, &mut meter).await {
        Ok(b) => b,
        Err(e) => {
            if let PushError::Decode(DecodeError::TooLarge(_)) = e {
                let received = content_length.unwrap_or(meter.held());
                count_too_large(&app, &tenant, received as u64);
            }
            return Err(e);
        }
    };
    let content_type = header_str(&headers, "content-type").map(str::to_string);
    let encoding = header_str(&headers, "content-encoding").map(str::to_string);
    let prepared = prepare(&app, &tenant, format, content_type, encoding, body, meter).await?;
    ingest(&app, &tenant, prepared, false)
        .await
        .map(|()| StatusCode::NO_CONTENT)
}

/// Admits `tenant` (before any work or per-tenant state for a tenant that
/// may not push) and returns a meter on the decode budget with its limits.
pub fn admit(app: &AppState, tenant: &TenantId) -> Result<Meter, PushError> {
    app.ingester.admit(tenant).map_err(tenant_refused)?;
    let limits = app.config.limits_for(tenant.as_str());
    let burst = limits.ingestion_burst_size_mb * 1024.0 * 1024.0;
    Ok(Meter::new(
        &app.decode_budget,
        body::max_decompressed(burst, app.decode_budget.limit()),
        LineLimit {
            max: usize::try_from(limits.max_line_size.0).unwrap_or(usize::MAX),
            truncate: limits.max_line_size_truncate,
        },
    ))
}

/// Reads the body, charging it to `meter` as it arrives and refusing it
/// once it passes `meter.max_decompressed` (no body is larger than what it
/// decompresses to, beyond a few bytes of framing).
async fn read_body(
    mut body: Body,
    content_length: Option<usize>,
    meter: &mut Meter,
) -> Result<Bytes, PushError> {
    let limit = meter.max_decompressed;
    let too_large = |size| PushError::Decode(body::too_large(size, limit));
    let mut buf: Vec<u8> = Vec::new();
    if let Some(n) = content_length {
        if n > limit {
            return Err(too_large(n));
        }
        meter.charge(n).map_err(PushError::Decode)?;
        buf.reserve_exact(n);
    }
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            PushError::Decode(DecodeError::bad(format!(
                "failed to read request body: {e}"
            )))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len().saturating_add(data.len());
        if len > limit {
            return Err(too_large(len));
        }
        if len > buf.capacity() {
            let want = len
                .max(buf.capacity().saturating_mul(2))
                .max(16 << 10)
                .min(limit);
            meter
                .charge(want - buf.capacity())
                .map_err(PushError::Decode)?;
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

/// What a request turned into before it is stored.
pub struct Prepared {
    validated: Validated,
    /// Holds the decoded push's memory until the request ends.
    _meter: Meter,
    received_lines: u64,
    received_bytes: u64,
}

/// Decodes and validates a received body: on the blocking pool unless it
/// is small and not compressed.
pub async fn prepare(
    app: &AppState,
    tenant: &TenantId,
    format: Format,
    content_type: Option<String>,
    encoding: Option<String>,
    body: Bytes,
    meter: Meter,
) -> Result<Prepared, PushError> {
    let inline = decodes_inline(format, content_type.as_deref(), encoding.as_deref(), &body);
    let config = app.config.clone();
    let cache = app.label_cache.clone();
    let owner = tenant.clone();
    let body_len = body.len() as u64;
    let work = move || {
        let limits = config.limits_for(owner.as_str());
        decode_and_validate(
            format,
            content_type,
            encoding,
            body,
            meter,
            (&limits, &cache),
            &owner,
        )
    };
    let result = if inline {
        work()
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PushError::Unavailable(format!("decoding task failed: {e}")))?
    };
    if let Err(PushError::Decode(DecodeError::TooLarge(_))) = &result {
        count_too_large(app, tenant, body_len);
    }
    result
}

/// Whether a body decodes to at most [`INLINE_DECODE_LIMIT`] bytes, known
/// before decoding it.
fn decodes_inline(
    format: Format,
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: &[u8],
) -> bool {
    let enc = encoding.map(str::trim).unwrap_or("");
    let identity = enc.is_empty() || enc.eq_ignore_ascii_case("identity");
    let snappy_protobuf = matches!(format, Format::V1 | Format::Legacy)
        && !body::is_json(content_type).unwrap_or(true)
        && (identity || enc.eq_ignore_ascii_case("snappy"));
    if snappy_protobuf {
        return push::protobuf::snappy_block_len(body)
            .is_some_and(|n| n <= INLINE_DECODE_LIMIT && body.len() <= INLINE_DECODE_LIMIT);
    }
    identity && body.len() <= INLINE_DECODE_LIMIT
}

fn decode_and_validate(
    format: Format,
    content_type: Option<String>,
    encoding: Option<String>,
    body: Bytes,
    mut meter: Meter,
    (limits, cache): (&Limits, &validate::LabelCache),
    tenant: &TenantId,
) -> Result<Prepared, PushError> {
    let push = push::decode(
        format,
        content_type.as_deref(),
        encoding.as_deref(),
        &body,
        &mut meter,
    )
    .map_err(PushError::Decode)?;
    drop(body);
    // The decode's buffers are gone, but for the one the lines are slices
    // of and the body a snappy protobuf push keeps for its WAL record
    // (both counted in the push's heap size); the push stays, and about as
    // much again for its validated form and its WAL record.
    meter.release_to(push.heap_size().saturating_mul(2));
    let received_lines = push.entry_count() as u64;
    let received_bytes = push
        .streams
        .iter()
        .flat_map(|s| s.entries.iter())
        .map(|e| e.sent_len() as u64)
        .sum();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let validated =
        validate::validate_metered(push, limits, now, tenant.as_str(), &mut meter, cache)
            .map_err(PushError::Decode)?;
    Ok(Prepared {
        validated,
        _meter: meter,
        received_lines,
        received_bytes,
    })
}

/// Counts a body refused for its size, as Loki does (bytes only).
fn count_too_large(app: &AppState, tenant: &TenantId, bytes: u64) {
    let labels = app
        .metrics
        .tenant_reason_labels(tenant.as_str(), Reason::RequestBodyTooLarge.as_str());
    app.metrics
        .discarded_bytes
        .get_or_create(&labels)
        .inc_by(bytes);
}

/// Rate-limits and stores a validated push; shared by HTTP and gRPC. `Ok`
/// means everything was stored. With `cluster:` the push is written to
/// its streams' owners ([`crate::cluster::forward`]); a push another
/// member `forwarded` was counted and rate-limited there, and is written
/// here only.
pub async fn ingest(
    app: &AppState,
    tenant: &TenantId,
    prepared: Prepared,
    forwarded: bool,
) -> Result<(), PushError> {
    let Prepared {
        mut validated,
        _meter,
        received_lines,
        received_bytes,
    } = prepared;
    let limits = app.config.limits_for(tenant.as_str());
    if !forwarded {
        let labels = app.metrics.tenant_label(tenant.as_str());
        app.metrics
            .lines_received
            .get_or_create(&labels)
            .inc_by(received_lines);
        app.metrics
            .bytes_received
            .get_or_create(&labels)
            .inc_by(received_bytes);
    }

    let lines = validated.accepted_entries();
    if lines > 0 && !forwarded {
        let rate = limits.ingestion_rate_mb * 1024.0 * 1024.0;
        let burst = limits.ingestion_burst_size_mb * 1024.0 * 1024.0;
        let bytes = validated.accepted_bytes;
        if bytes as f64 > burst {
            // A bucket never holds more than the burst: this request would
            // be refused forever, so it must not be told to retry.
            validated.discard(Reason::RequestBodyTooLarge, lines, bytes);
            record_discards(app, tenant, &validated.discarded);
            return Err(PushError::TooLarge(format!(
                "ingestion burst size limit exceeded for user {tenant} (limit: {} bytes) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes in one request, which can never be accepted: split it into smaller requests or contact your Loki administrator to see if the limit can be increased",
                burst as u64
            )));
        }
        if !app
            .limiter
            .allow(tenant.as_str(), validated.accepted_bytes, rate, burst)
        {
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
    let mut report = Validated {
        errors: std::mem::take(&mut validated.errors),
        error_bytes: validated.error_bytes,
        unlisted_errors: validated.unlisted_errors,
        ..Validated::default()
    };
    let mut retry = validated.has_retryable();
    let discarded = std::mem::take(&mut validated.discarded);
    record_discards(app, tenant, &discarded);
    let write_error = |e| match e {
        WriteError::WalFailed(m) => PushError::Unavailable(format!("write-ahead log failure: {m}")),
        WriteError::ShuttingDown => {
            PushError::Unavailable("the store is shutting down".to_string())
        }
        WriteError::Tenant(r) => tenant_refused(r),
    };
    let cluster = app
        .ingester
        .cluster
        .as_ref()
        .filter(|_| !forwarded && app.config.target.writes());
    let outcome = match cluster {
        Some(c) => crate::cluster::forward::replicate(&app.ingester, c, tenant, validated)
            .await
            .map_err(|e| match e {
                ReplicateError::Local(e) => write_error(e),
                ReplicateError::Quorum {
                    limited: true,
                    message,
                } => PushError::Rejected {
                    retry: true,
                    message,
                },
                ReplicateError::Quorum {
                    limited: false,
                    message,
                } => PushError::Unavailable(message),
            })?,
        None => app
            .ingester
            .push(tenant, validated)
            .await
            .map_err(write_error)?,
    };
    record_discards(app, tenant, &outcome.discarded);
    retry |= outcome.discarded.keys().any(|r| r.is_retryable());
    for msg in outcome.errors {
        report.report(|| clip(msg, MAX_WRITER_MESSAGE));
    }
    report.unlisted_errors += outcome.unlisted_errors;
    if report.errors.is_empty() && report.unlisted_errors == 0 {
        Ok(())
    } else {
        Err(PushError::Rejected {
            retry,
            message: render(&report),
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

/// The messages of a request, one per line, then how many were left out.
pub fn render(report: &Validated) -> String {
    let mut out = report.errors.join("\n");
    if report.unlisted_errors > 0 {
        out.push_str(&format!(
            "\n{} more errors not listed",
            report.unlisted_errors
        ));
    }
    out
}

fn clip(mut msg: String, max: usize) -> String {
    if msg.len() > max {
        let mut cut = max;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push_str("...");
    }
    msg
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let s = |e: PushError| e.status_and_message().0.as_u16();
        assert_eq!(s(PushError::Decode(DecodeError::bad("x"))), 400);
        assert_eq!(s(PushError::Decode(DecodeError::TooLarge("x".into()))), 413);
        assert_eq!(s(PushError::Decode(DecodeError::Busy("x".into()))), 503);
        assert_eq!(s(PushError::TooLarge("x".into())), 413);
        assert_eq!(
            s(PushError::Rejected {
                retry: true,
                message: String::new()
            }),
            429
        );
    }

    #[test]
    fn only_bodies_known_to_decode_small_are_decoded_inline() {
        let snappy = |n: usize| {
            snap::raw::Encoder::new()
                .compress_vec(&vec![b'a'; n])
                .unwrap()
        };
        let pb = Some("application/x-protobuf");
        let json = Some("application/json");
        let small = snappy(INLINE_DECODE_LIMIT);
        let big = snappy(INLINE_DECODE_LIMIT + 1);
        // Snappy protobuf: by the size its header gives, not its own.
        assert!(decodes_inline(Format::V1, pb, None, &small));
        assert!(decodes_inline(Format::Legacy, pb, Some("snappy"), &small));
        assert!(!decodes_inline(Format::V1, pb, None, &big));
        assert!(big.len() < 8 << 10);
        // Framed snappy, gzip: the size is unknown before decoding.
        let framed = {
            use std::io::Write;
            let mut w = snap::write::FrameEncoder::new(Vec::new());
            w.write_all(b"tiny").unwrap();
            w.into_inner().unwrap()
        };
        assert!(!decodes_inline(Format::V1, pb, None, &framed));
        assert!(!decodes_inline(Format::V1, json, Some("gzip"), b"x"));
        // Uncompressed: by the body's size.
        assert!(decodes_inline(Format::V1, json, None, &[b' '; 100]));
        assert!(!decodes_inline(
            Format::Otlp,
            json,
            Some("identity"),
            &vec![b' '; INLINE_DECODE_LIMIT + 1]
        ));
        assert!(decodes_inline(Format::Grpc, None, None, &small));
    }

    #[test]
    fn clipping_keeps_characters_whole() {
        assert_eq!(clip("abcé".to_string(), 4), "abc...");
        assert_eq!(clip("abc".to_string(), 4), "abc");
    }

    #[test]
    fn rendering_counts_what_was_left_out() {
        let mut v = Validated::default();
        for i in 0..100_000 {
            v.report(|| format!("error {i} {}", "x".repeat(100)));
        }
        let text = render(&v);
        assert!(
            text.len() < validate::MAX_ERROR_BYTES + 256,
            "{}",
            text.len()
        );
        assert!(text.ends_with("more errors not listed"), "{text}");
    }
}
