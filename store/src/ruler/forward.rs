//! The rules API of a node that does not run the ruler
//! (`ruler.enabled: false` with `ruler.api_forward_url`): every rules
//! route is forwarded to the node that runs it, so that Grafana, pointed
//! at the read nodes, finds the ruler there.
//!
//! The request goes as it came (method, path, query, body) with the
//! caller's `X-Scope-OrgID`, `Authorization`, `Content-Type` and `Accept`;
//! the answer comes back with its status, `Content-Type` and body. The
//! request body is bounded as on the ruler node ([`MAX_GROUP_BYTES`]), the
//! answer by [`MAX_ANSWER_BYTES`], the whole exchange by
//! `ruler.api_forward_timeout`. When the ruler node does not answer, the
//! caller gets 502 (504 past the timeout) saying so, plain text on the
//! configuration routes and Prometheus' JSON envelope on the status
//! routes. This node authorises the request first (the route table's
//! rules rows); the ruler node checks the same credentials again.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::Full;

use super::RulerConfig;
use super::api::MAX_GROUP_BYTES;
use super::http::{Failure, HttpClient};
use crate::server::AppState;

/// Largest answer passed back (a tenant's whole rule listing, at the
/// default limits, is far below it).
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Request headers passed on.
const PASSED: [&str; 4] = ["x-scope-orgid", "authorization", "content-type", "accept"];

struct Forwarder {
    /// The client, or why it could not be made (its TLS files), given as
    /// every answer's error.
    client: Result<HttpClient, String>,
    base: String,
    timeout: Duration,
}

/// The client of `config.api_forward_url`, with `api_forward_client`'s
/// TLS settings read; the store checks this at start, so a node whose
/// files do not load does not start.
pub fn client(config: &RulerConfig) -> std::io::Result<HttpClient> {
    HttpClient::new(&config.api_forward_client, "ruler.api_forward_client")
}

/// The rules routes, forwarded to `config.api_forward_url`.
pub fn routes(config: &RulerConfig) -> Router<AppState> {
    let client = client(config).map_err(|e| {
        tracing::error!(error = %e, "Cannot make the client of ruler.api_forward_url; the rules API answers with this error.");
        e.to_string()
    });
    let f = Arc::new(Forwarder {
        client,
        base: config.api_forward_url.trim_end_matches('/').to_string(),
        timeout: config.api_forward_timeout.0,
    });
    let mut r = Router::new();
    for prefix in ["/loki/api/v1/rules", "/api/prom/rules"] {
        r = r
            .route(prefix, any(forward))
            .route(&format!("{prefix}/{{namespace}}"), any(forward))
            .route(&format!("{prefix}/{{namespace}}/{{group}}"), any(forward));
    }
    r.route("/prometheus/api/v1/rules", any(forward))
        .route("/prometheus/api/v1/alerts", any(forward))
        .layer(DefaultBodyLimit::max(MAX_GROUP_BYTES))
        .layer(Extension(f))
}

async fn forward(
    Extension(f): Extension<Arc<Forwarder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", f.base);
    let status_route = uri.path().starts_with("/prometheus/");
    let client = match &f.client {
        Ok(c) => c,
        Err(e) => {
            return failure(
                StatusCode::BAD_GATEWAY,
                status_route,
                &format!("the ruler at {} cannot be reached: {e}", f.base),
            );
        }
    };
    let mut req = hyper::Request::builder().method(method).uri(&url);
    for name in PASSED {
        for v in headers.get_all(name) {
            req = req.header(name, v);
        }
    }
    let req = match req.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                status_route,
                &format!("invalid request: {e}"),
            );
        }
    };
    match client.send(req, f.timeout, MAX_ANSWER_BYTES).await {
        Ok((status, h, body)) => {
            let mut resp = (status, body).into_response();
            if let Some(ct) = h.get(header::CONTENT_TYPE) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            resp
        }
        Err(e) => {
            let status = match e {
                Failure::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            tracing::warn!(ruler = %f.base, error = %e, "The ruler node did not answer a forwarded rules API request.");
            failure(
                status,
                status_route,
                &format!("the ruler at {} did not answer: {e}", f.base),
            )
        }
    }
}

/// An error in the route's form: Prometheus' JSON on the status routes,
/// plain text on the others.
fn failure(status: StatusCode, json: bool, msg: &str) -> Response {
    if json {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"status": "error", "data": null, "errorType": "unavailable", "error": msg})
                .to_string(),
        )
            .into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{msg}\n"),
        )
            .into_response()
    }
}
