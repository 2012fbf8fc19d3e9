//! The store's servers: the HTTP API (Loki's routes, `/ready`,
//! `/metrics`) and the gRPC push service.

pub mod grpc;
pub mod listen;
pub mod push;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api;
use crate::config::Config;
use crate::ingester::Ingester;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// The ingester (write path and data source).
    pub ingester: Arc<Ingester>,
    /// On a write node with `cluster:`, its query side once opened: a
    /// read-side ingester of its own (the bucket's view plus every
    /// member's unflushed data), so that a query gets a read node's
    /// answer whichever node it lands on (see [`AppState::query_source`]).
    pub query: Arc<std::sync::OnceLock<Arc<Ingester>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Ingestion rate limiter.
    pub limiter: Arc<RateLimiter>,
    /// Whether the store accepts traffic (false while shutting down).
    pub ready: Arc<AtomicBool>,
    /// Permits for queries running at once.
    pub query_slots: Arc<tokio::sync::Semaphore>,
    /// Open live tails (per-tenant limit, closed on shutdown).
    pub tails: Arc<api::tail::TailRegistry>,
    /// Memory for decoding pushes (`push.max_decode_memory`).
    pub decode_budget: Arc<crate::push::meter::DecodeBudget>,
    /// Labels texts pushes sent before, parsed.
    pub label_cache: Arc<crate::validate::LabelCache>,
    /// The ruler, when it runs (its API is served then).
    pub ruler: Option<Arc<crate::ruler::Ruler>>,
    /// Tokens (`auth.tokens_file`); `None` trusts `X-Scope-OrgID`.
    pub auth: Option<Arc<crate::auth::Authorizer>>,
    /// TLS of both ports (`tls:`); `None` serves plain TCP.
    pub tls: Option<Arc<tls::TlsServer>>,
    /// The roles running and their state (`/services`).
    pub services: crate::services::Services,
    /// The effective configuration as `/config` prints it; the binary
    /// sets it (it knows the whole file), else the store's own
    /// configuration is shown.
    pub config_view: Option<Arc<crate::config_view::ConfigView>>,
    /// Notified by `POST /ingester/shutdown` with `terminate`: the binary
    /// then shuts down as on SIGTERM.
    pub shutdown_request: Arc<tokio::sync::Notify>,
}

/// Security settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The tokens file.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// TLS files.
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
}

impl AppState {
    /// State around an opened ingester.
    pub fn new(ingester: Arc<Ingester>) -> AppState {
        let decode_budget = crate::push::meter::DecodeBudget::new(
            usize::try_from(ingester.config.push.max_decode_memory.0).unwrap_or(usize::MAX),
        );
        AppState {
            config: ingester.config.clone(),
            metrics: ingester.metrics.clone(),
            query_slots: Arc::new(tokio::sync::Semaphore::new(
                ingester.config.query.max_concurrent,
            )),
            query: Arc::default(),
            ingester,
            limiter: Arc::new(RateLimiter::default()),
            ready: Arc::new(AtomicBool::new(true)),
            tails: Arc::new(api::tail::TailRegistry::new()),
            decode_budget,
            label_cache: Arc::new(crate::validate::LabelCache::new()),
            ruler: None,
            auth: None,
            tls: None,
            services: crate::services::Services::new(),
            config_view: None,
            shutdown_request: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// What a query is answered from now: the query side (a write node's,
    /// see [`crate::ingester::query_side`]) once it is open, has listed
    /// the bucket and read the delete requests; until then (the first
    /// seconds after a start, or a bucket that cannot be reached) and on
    /// every other node, the node's own ingester.
    pub fn query_source(&self) -> Arc<Ingester> {
        match self.query.get() {
            Some(q) if listed(q) => q.clone(),
            _ => self.ingester.clone(),
        }
    }

    /// The same state with `ruler` running (its API is served).
    pub fn with_ruler(mut self, ruler: Arc<crate::ruler::Ruler>) -> AppState {
        self.ruler = Some(ruler);
        self
    }

    /// Starts what `auth:` and `tls:` ask for: reads the tokens file and
    /// the certificates (an error if they cannot be used) and watches them
    /// for changes.
    pub fn secure(mut self) -> Result<AppState, SecurityError> {
        self.auth = crate::auth::Authorizer::start(&self.config.auth, self.metrics.clone())?;
        self.tls = tls::TlsServer::start(
            &self.config.tls,
            self.config.auth.reload_interval.0,
            self.metrics.clone(),
        )?;
        Ok(self)
    }
}

/// The HTTP API.
pub fn app(state: AppState) -> Router {
    let rc = &state.config.ruler;
    let rules = if state.ruler.is_some() && rc.enable_api {
        crate::ruler::api::routes()
    } else if state.ruler.is_none() && rc.enable_api && !rc.api_forward_url.is_empty() {
        // A node without the ruler answers the rules API through the node
        // that runs it.
        crate::ruler::forward::routes(rc)
    } else {
        Router::new()
    };
    let router = routes(rules);
    // Authorisation wraps every route (and unknown paths), inside the
    // latency metric so refusals are measured too.
    let router = match &state.auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            crate::auth::http_layer,
        )),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        // Outermost: the UI's WebSocket credentials become headers before
        // anything looks at them (the token check included).
        .layer(axum::middleware::from_fn(crate::ui::websocket_credentials))
        .with_state(state)
}

/// Every route; each has its row in [`crate::auth::routes::ROUTES`].
fn routes(rules: Router<AppState>) -> Router<AppState> {
    Router::new()
        .merge(rules)
        .route("/loki/api/v1/push", post(push::push_v1))
        .route("/api/prom/push", post(push::push_legacy))
        .route("/otlp/v1/logs", post(push::push_otlp))
        .route(
            "/loki/api/v1/query",
            get(api::query::query_instant).post(api::query::query_instant),
        )
        .route(
            "/loki/api/v1/query_range",
            get(api::query::query_range).post(api::query::query_range),
        )
        .route(
            "/api/prom/query",
            get(api::query::legacy_query).post(api::query::legacy_query),
        )
        .route(
            "/loki/api/v1/labels",
            get(api::labels::label_names).post(api::labels::label_names),
        )
        .route(
            "/loki/api/v1/label",
            get(api::labels::label_names).post(api::labels::label_names),
        )
        .route(
            "/loki/api/v1/label/{name}/values",
            get(api::labels::label_values).post(api::labels::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(api::labels::series).post(api::labels::series),
        )
        .route(
            "/loki/api/v1/index/stats",
            get(api::labels::index_stats).post(api::labels::index_stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(api::labels::volume).post(api::labels::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(api::labels::volume_range).post(api::labels::volume_range),
        )
        .route(
            "/loki/api/v1/detected_labels",
            get(api::detected::detected_labels).post(api::detected::detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(api::detected::detected_fields).post(api::detected::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(api::detected::detected_field_values).post(api::detected::detected_field_values),
        )
        .route(
            "/loki/api/v1/patterns",
            get(api::patterns::patterns).post(api::patterns::patterns),
        )
        .route("/loki/api/v1/tail", get(api::tail::tail))
        .route("/api/prom/tail", get(api::tail::tail_legacy))
        .route("/loki/api/v1/status/buildinfo", get(api::misc::buildinfo))
        .route(
            "/loki/api/v1/format_query",
            get(api::misc::format_query).post(api::misc::format_query),
        )
        .route(
            "/loki/api/v1/drilldown-limits",
            get(api::misc::drilldown_limits),
        )
        .route(
            "/loki/api/v1/delete",
            get(api::delete::list)
                .post(api::delete::create)
                .put(api::delete::create)
                .delete(api::delete::cancel),
        )
        .route("/flush", post(flush))
        .route(
            "/ingester/shutdown",
            get(ingester_shutdown).post(ingester_shutdown),
        )
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/config", get(api::status::config))
        .route("/runtime_config", get(api::status::runtime_config))
        .route("/services", get(api::status::services))
        .route("/", get(crate::ui::index))
        .route("/ui/{file}", get(crate::ui::file))
        .layer(DefaultBodyLimit::max(crate::push::body::MAX_BODY))
}

/// Whether a read-side ingester has listed the bucket once and read the
/// delete requests (before that its answers would miss what the bucket
/// holds).
fn listed(ing: &Ingester) -> bool {
    ing.view_listed_at.load(Ordering::Acquire) != i64::MIN && ing.deletes.loaded()
}

async fn ready(State(app): State<AppState>) -> Response {
    if !app.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if !app.ingester.is_healthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Ingester not ready: write-ahead log failed\n",
        )
            .into_response();
    }
    // A read node answers from its view of the bucket: until the first
    // listing completes it would answer as if the bucket were empty, and
    // until the delete requests are read it refuses queries. (A write
    // node's query side does not hold its readiness up: pushes go on
    // while the bucket cannot be listed, see `AppState::query_source`.)
    if app.ingester.config.target == crate::objstore::config::Target::Read && !listed(&app.ingester)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Querier not ready: the bucket's index has not been listed yet\n",
        )
            .into_response();
    }
    // Damage found on disk and recovered from leaves the store serving:
    // ready, with what was found listed after the first line.
    let notes = app.ingester.health_notes();
    if notes.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut body = String::from("ready\n");
    for n in notes {
        body.push_str("degraded: ");
        body.push_str(&n);
        body.push('\n');
    }
    (StatusCode::OK, body).into_response()
}

/// `POST /flush`: seals and writes every open chunk now (and on a write
/// node publishes them), as Loki's `/flush`; for tests and before a scale
/// down. On a read node it refreshes the view of the bucket, on a backend
/// it runs the compactor. Answers 204 when done.
async fn flush(State(app): State<AppState>) -> Response {
    let ing = app.ingester.clone();
    match tokio::task::spawn_blocking(move || ing.flush_all()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("flush failed: {e}\n"),
        )
            .into_response(),
    }
}

/// Parameters of `/ingester/shutdown` (Loki's).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ShutdownParams {
    flush: Option<String>,
    delete_ring_tokens: Option<String>,
    terminate: Option<String>,
}

fn bool_param(v: &Option<String>, default: bool) -> Result<bool, String> {
    match v.as_deref() {
        None | Some("") => Ok(default),
        // Go's strconv.ParseBool, as Loki reads the parameter.
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(s) => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// `/ingester/shutdown` (Loki's endpoint; GET or POST): the node leaves
/// the cluster (takes no new streams, answers `Ready` with false), then
/// with `flush` (default true) seals and writes every open chunk, then
/// with `terminate` (default true) shuts down as on SIGTERM.
/// `delete_ring_tokens` is accepted: there is no ring state to delete.
/// Answers 204 once the flush is done.
async fn ingester_shutdown(
    State(app): State<AppState>,
    axum::extract::Query(p): axum::extract::Query<ShutdownParams>,
) -> Response {
    let parsed = (|| {
        let _ = bool_param(&p.delete_ring_tokens, false)?;
        Ok::<_, String>((bool_param(&p.flush, true)?, bool_param(&p.terminate, true)?))
    })();
    let (flush, terminate) = match parsed {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    if !app.config.target.writes() {
        return (
            StatusCode::BAD_REQUEST,
            "this node is not a write node: it holds no streams to hand over\n",
        )
            .into_response();
    }
    let stopping = !app.ready.load(Ordering::Acquire)
        || app
            .ingester
            .cluster
            .as_ref()
            .is_some_and(|c| c.is_leaving());
    if stopping {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Ingester is stopping or already stopped.\n",
        )
            .into_response();
    }
    if let Some(c) = &app.ingester.cluster {
        c.leave();
    }
    if flush {
        let ing = app.ingester.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || ing.flush_all()).await {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("flush failed: {e}\n"),
            )
                .into_response();
        }
    }
    if terminate {
        app.shutdown_request.notify_one();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn metrics(State(app): State<AppState>) -> Response {
    // Rendering reads /proc (process figures): on the blocking pool.
    let m = app.metrics.clone();
    let text = tokio::task::spawn_blocking(move || m.render())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Records request latency by route (Loki's route names, e.g.
/// `loki_api_v1_push`) and status code.
async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_name(p.as_str()))
        .unwrap_or_else(|| "other".to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    app.metrics
        .request_duration
        .get_or_create(&vec![
            ("route", route),
            ("status_code", resp.status().as_u16().to_string()),
        ])
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// `/loki/api/v1/label/{name}/values` → `loki_api_v1_label_name_values`.
pub fn route_name(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .map(|seg| seg.trim_start_matches('{').trim_end_matches('}'))
        .collect::<Vec<_>>()
        .join("_")
}

/// Runs the HTTP and gRPC servers until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    http: tokio::net::TcpListener,
    grpc: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grpc_state = state.clone();
    let mut grpc_stop = stop_rx.clone();
    let http = listen::Incoming::new(
        http,
        state.tls.clone(),
        tls::Protocol::Http,
        state.metrics.clone(),
    )?;
    let grpc = listen::Incoming::new(
        grpc,
        state.tls.clone(),
        tls::Protocol::Grpc,
        state.metrics.clone(),
    )?;
    let grpc_task = tokio::spawn(async move {
        let auth = crate::auth::GrpcAuthLayer::new(grpc_state.auth.clone());
        let querier =
            crate::objstore::remote::service::QuerierService::new(grpc_state.ingester.clone());
        let replica = grpc::ReplicaService::new(grpc_state.clone());
        let svc = grpc::PusherService::new(grpc_state);
        tonic::transport::Server::builder()
            .layer(auth)
            .add_service(svc)
            .add_service(querier)
            .add_service(replica)
            .serve_with_incoming_shutdown(grpc, async move {
                let _ = grpc_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let ready = state.ready.clone();
    let tails = state.tails.clone();
    let mut http_stop = stop_rx;
    let http_task = tokio::spawn(async move {
        axum::serve(
            http,
            app(state).into_make_service_with_connect_info::<listen::Peer>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|s| *s).await;
        })
        .await
    });
    shutdown.await;
    ready.store(false, Ordering::Release);
    // Upgraded connections (live tails) are not the HTTP server's to
    // drain: tell them to close, and give them a moment to say so.
    tails.close_all();
    let _ = stop_tx.send(true);
    let http = http_task.await.map_err(std::io::Error::other)?;
    tails.wait_idle(std::time::Duration::from_secs(5)).await;
    let grpc = grpc_task.await.map_err(std::io::Error::other)?;
    http?;
    grpc.map_err(std::io::Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_match_lokis() {
        assert_eq!(route_name("/loki/api/v1/push"), "loki_api_v1_push");
        assert_eq!(
            route_name("/loki/api/v1/label/{name}/values"),
            "loki_api_v1_label_name_values"
        );
    }
}
