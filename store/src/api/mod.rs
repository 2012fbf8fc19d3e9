//! Loki's query API: `/loki/api/v1/query`, `query_range`, `labels`,
//! `label/{name}/values`, `series`, `index/stats`, `index/volume`,
//! `index/volume_range`, the Drilldown endpoints, `tail`, and the legacy
//! `/api/prom/*` paths; and Loki's operational `/config`,
//! `/runtime_config` and `/services` ([`status`]); Loki's delete API
//! ([`delete`]). Every handler accepts GET with a query string and
//! POST with a form body, as Loki does.
//!
//! Every endpoint whose work grows with the stored data runs it through
//! [`exec::run`]: a query slot, the blocking pool, the query timeout and a
//! cancel flag raised when the client goes away. Parameters are parsed
//! and checked first, on the request's task, with checked arithmetic
//! wherever they meet numbers ([`params`]).
//!
//! A handler parses the request, makes one call (the engine, or
//! [`larch_query::drilldown`] for the Drilldown endpoints, or the
//! ingester's metadata walks, [`crate::ingester::metadata`]), and writes
//! Loki's JSON ([`json`]); query logic lives in `larch-query`, where its
//! tests and fuzz target reach it, and index walks, the multi-tenant
//! source ([`crate::ingester::multi`]) and a live tail's filtering and
//! ordering ([`crate::ingester::tail_queue`]) in the ingester.
//!
//! Errors are plain text with Loki's status codes and messages: 400 for
//! bad queries and parameters, 499 when the client went away, 504 on
//! timeout, 500 otherwise.

pub mod delete;
pub mod detected;
pub mod exec;
pub mod json;
pub mod labels;
pub mod misc;
pub mod params;
pub mod patterns;
pub mod query;
pub mod status;
pub mod tail;
pub mod tail_feed;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::tenant::TenantId;
use params::Params;

/// An API error: a status and Loki's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Any status with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<larch_query::engine::EngineError> for ApiError {
    fn from(e: larch_query::engine::EngineError) -> ApiError {
        query::engine_error(e)
    }
}

impl From<crate::ingester::metadata::MetaError> for ApiError {
    fn from(e: crate::ingester::metadata::MetaError) -> ApiError {
        use crate::ingester::metadata::MetaError;
        match e {
            MetaError::Cancelled => exec::cancelled(),
            MetaError::WriteNodes(e) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

/// A JSON body with status 200.
pub fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The tenant of a request (401 `no org id` when required and absent).
pub fn tenant(headers: &HeaderMap, auth_enabled: bool) -> Result<TenantId, ApiError> {
    let value = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok());
    TenantId::from_header(value, auth_enabled)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// Parameters from the query string and, for POST, a form body.
pub struct LokiParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for LokiParams {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<LokiParams, ApiError> {
        let mut params = Params::parse(req.uri().query().unwrap_or(""));
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
            params.extend(Params::parse(&String::from_utf8_lossy(&body)));
        }
        Ok(LokiParams(params))
    }
}
