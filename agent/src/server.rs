//! The agent's HTTP endpoints: `/metrics` (OpenMetrics text, as the
//! store's) and `/ready`.
//!
//! `/ready` answers 200 once positions are loaded and the pods directory
//! has been scanned; it does not follow the store's health, so an outage
//! of the store does not take every agent out of its DaemonSet's
//! readiness at once (the backlog stays in the files; `/metrics` shows it).
//!
//! `/metrics` is rendered on the blocking pool: some figures are computed
//! at that moment (the unread bytes `fstat` every open log file).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Registry;

async fn respond(
    registry: &Registry,
    ready: &AtomicBool,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            let r = registry.clone();
            match tokio::task::spawn_blocking(move || r.render()).await {
                Ok(text) => (StatusCode::OK, crate::metrics::CONTENT_TYPE, text),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("cannot render metrics: {e}\n"),
                ),
            }
        }
        (&hyper::Method::GET, "/ready") if ready.load(Ordering::Acquire) => {
            (StatusCode::OK, "text/plain", "ready\n".to_string())
        }
        (&hyper::Method::GET, "/ready") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_string(),
        ),
        (&hyper::Method::GET, "/") => (
            StatusCode::OK,
            "text/plain",
            "larch-agent: see /metrics and /ready\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "404 page not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Serves until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, registry: Registry, ready: Arc<AtomicBool>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Accept failed.");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let registry = registry.clone();
                let ready = ready.clone();
                async move { Ok::<_, Infallible>(respond(&registry, &ready, &req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
