//! Live tail: WebSocket `GET /loki/api/v1/tail` (and the legacy
//! `/api/prom/tail`).
//!
//! Parameters are Loki's (`query`, `delay_for` 0-5 s, `limit` 100,
//! `start` now-1h) and are checked before the upgrade, so a bad one is an
//! ordinary 400 with Loki's text. After the upgrade two tasks serve the
//! connection:
//! * the feed ([`super::tail_feed`]) subscribes to acknowledged entries,
//!   sends the history, then filters new entries and queues frames
//!   without ever waiting for the client;
//! * the connection loop writes queued frames, pings every second (so
//!   dead clients are noticed), and ends on the client's close.
//!
//! Limits, as Loki's: at most [`MAX_TAILS_PER_TENANT`] tails per tenant
//! (the next one is closed with code 1011 and Loki's
//! `max concurrent tail requests limit exceeded, count > limit (11 > 10)`);
//! a tail lasts at most [`MAX_TAIL_DURATION`] (`reached tail max duration
//! limit`). When the store shuts down every tail is closed with code 1001
//! before the process exits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use larch_query::drilldown::EntryFilter;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, watch};

use super::params::{Params, limit, now_ns, parse_timestamp};
use super::query::categorize;
use super::tail_feed::{Feed, Frame, MAX_BUFFERED_FRAMES, TailSpec};
use super::{ApiError, LokiParams, tenant};
use crate::server::AppState;
use crate::tenant::TenantId;

/// Concurrent tails per tenant (Loki's `max_concurrent_tail_requests`).
pub const MAX_TAILS_PER_TENANT: usize = 10;
/// Largest `delay_for`, seconds.
pub const MAX_DELAY_FOR: i64 = 5;
/// Longest tail (Loki's `tail_max_duration`).
pub const MAX_TAIL_DURATION: Duration = Duration::from_secs(3600);
/// Ping period.
pub const PING: Duration = Duration::from_secs(1);
/// WebSocket close code for errors (1011, internal error), as Loki uses.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// WebSocket close code when the store goes away (1001).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Longest wait for a client to take one frame before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// History default: the last hour.
const DEFAULT_START: i64 = 3_600_000_000_000;

/// The open tails: per-tenant counts and the shutdown signal.
pub struct TailRegistry {
    counts: Mutex<HashMap<TenantId, usize>>,
    shutdown: watch::Sender<bool>,
    idle: Notify,
}

/// A tail's place in the registry, released on drop.
pub struct TailSlot {
    registry: Arc<TailRegistry>,
    tenant: TenantId,
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut counts = self.registry.counts.lock();
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
        if counts.is_empty() {
            self.registry.idle.notify_waiters();
        }
    }
}

impl TailRegistry {
    /// No tails.
    pub fn new() -> TailRegistry {
        TailRegistry {
            counts: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
            idle: Notify::new(),
        }
    }

    /// A slot for a new tail of `tenant`, or Loki's limit text.
    pub fn acquire(self: &Arc<Self>, tenant: &TenantId) -> Result<TailSlot, String> {
        let mut counts = self.counts.lock();
        let n = counts.entry(tenant.clone()).or_insert(0);
        if *n >= MAX_TAILS_PER_TENANT {
            return Err(format!(
                "max concurrent tail requests limit exceeded, count > limit ({} > {MAX_TAILS_PER_TENANT})",
                *n + 1
            ));
        }
        *n += 1;
        Ok(TailSlot {
            registry: self.clone(),
            tenant: tenant.clone(),
        })
    }

    /// Tails open now.
    pub fn active(&self) -> usize {
        self.counts.lock().values().sum()
    }

    /// Tells every tail to close (the store is shutting down).
    pub fn close_all(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until every tail has closed, at most `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

impl Default for TailRegistry {
    fn default() -> TailRegistry {
        TailRegistry::new()
    }
}

/// `delay_for`: whole seconds, 0 to 5.
fn delay_for(p: &Params) -> Result<Duration, ApiError> {
    let Some(v) = p.get("delay_for") else {
        return Ok(Duration::ZERO);
    };
    let n: i64 = v.parse().map_err(|_| {
        ApiError::bad_request(format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
    })?;
    if n > MAX_DELAY_FOR {
        return Err(ApiError::bad_request(format!(
            "delay_for can't be greater than {MAX_DELAY_FOR}"
        )));
    }
    if n < 0 {
        return Err(ApiError::bad_request("delay_for can't be negative"));
    }
    Ok(Duration::from_secs(n as u64))
}

/// Validates a tail request (Loki's checks and texts).
fn spec(
    app: &AppState,
    headers: &HeaderMap,
    p: &Params,
    legacy: bool,
) -> Result<TailSpec, ApiError> {
    let t = tenant(headers, app.config.auth_enabled)?;
    let limits = app.config.limits_for(t.as_str());
    let query = p.get("query").unwrap_or_default().to_string();
    let filter = EntryFilter::parse(&query)?;
    let start = match p.get("start") {
        Some(v) => parse_timestamp(v).map_err(|e| {
            ApiError::bad_request(format!("could not parse 'start' parameter: {e}"))
        })?,
        None => now_ns() - DEFAULT_START,
    };
    Ok(TailSpec {
        tenant: t,
        query,
        filter,
        delay: delay_for(p)?,
        limit: limit(p, limits.max_entries_limit_per_query)?,
        start,
        categorize: categorize(headers) && !legacy,
        legacy,
    })
}

/// `GET /loki/api/v1/tail` (WebSocket).
pub async fn tail(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let spec = spec(&app, &headers, &p, false)?;
    upgrade(app, spec, ws)
}

/// `GET /api/prom/tail` (WebSocket, legacy frames).
pub async fn tail_legacy(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let spec = spec(&app, &headers, &p, true)?;
    upgrade(app, spec, ws)
}

fn upgrade(
    app: AppState,
    spec: TailSpec,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    Ok(ws
        .max_write_buffer_size(64 << 20)
        // The web UI offers `larch` (beside its credentials, see
        // `crate::ui::websocket_credentials`); a browser refuses a
        // connection whose offered protocols got no answer.
        .protocols([crate::ui::WEBSOCKET_PROTOCOL])
        .on_upgrade(move |socket| serve(app, socket, spec))
        .into_response())
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    // A close reason is at most 123 bytes on the wire.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].to_string().into(),
    };
    let _ = tokio::time::timeout(PING, socket.send(Message::Close(Some(frame)))).await;
}

/// Resolves once the store shuts down.
async fn stopping(rx: &mut watch::Receiver<bool>) {
    let stopped = rx.wait_for(|s| *s).await.is_ok();
    if !stopped {
        // The registry is gone without a shutdown: nothing to wait for.
        std::future::pending::<()>().await;
    }
}

/// Serves one upgraded connection.
async fn serve(app: AppState, mut socket: WebSocket, spec: TailSpec) {
    let _slot = match app.tails.acquire(&spec.tenant) {
        Ok(slot) => slot,
        Err(text) => {
            close(&mut socket, CLOSE_INTERNAL_ERROR, &text).await;
            return;
        }
    };
    let metrics = app.metrics.clone();
    metrics.tail_active.inc();
    tracing::info!(tenant = %spec.tenant.as_str(), query = %spec.query, "Live tail started.");
    let mut shutdown = app.tails.shutdown.subscribe();
    let mut shutdown_while_sending = app.tails.shutdown.subscribe();
    let (frames_tx, mut frames) = mpsc::channel(MAX_BUFFERED_FRAMES);
    let events = app.ingester.subscribe();
    let feed =
        tokio::spawn(Feed::new(spec.clone(), metrics.clone(), frames_tx).run(app.clone(), events));
    let mut ping = tokio::time::interval(PING);
    let deadline = tokio::time::sleep(MAX_TAIL_DURATION);
    tokio::pin!(deadline);
    let mut closing: Option<(u16, String)> = None;
    loop {
        tokio::select! {
            _ = stopping(&mut shutdown) => {
                closing = Some((CLOSE_GOING_AWAY, "the store is shutting down".into()));
                break;
            }
            _ = &mut deadline => {
                closing = Some((CLOSE_INTERNAL_ERROR, "reached tail max duration limit".into()));
                break;
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
            frame = frames.recv() => match frame {
                Some(Frame::Text(text)) => {
                    let send = socket.send(Message::Text(text.into()));
                    tokio::select! {
                        r = tokio::time::timeout(SEND_TIMEOUT, send) => {
                            if !matches!(r, Ok(Ok(()))) {
                                break;
                            }
                        }
                        _ = stopping(&mut shutdown_while_sending) => {
                            closing = Some((CLOSE_GOING_AWAY, "the store is shutting down".into()));
                            break;
                        }
                    }
                }
                Some(Frame::Close(code, reason)) => {
                    closing = Some((code, reason));
                    break;
                }
                None => break,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(frames);
    feed.abort();
    if let Some((code, reason)) = closing {
        close(&mut socket, code, &reason).await;
    }
    metrics.tail_active.dec();
    tracing::info!(tenant = %spec.tenant.as_str(), "Live tail ended.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_for_bounds() {
        let p = |s: &str| Params::parse(s);
        assert_eq!(delay_for(&p("")).unwrap(), Duration::ZERO);
        assert_eq!(
            delay_for(&p("delay_for=5")).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            delay_for(&p("delay_for=6")).unwrap_err().message(),
            "delay_for can't be greater than 5"
        );
        assert_eq!(delay_for(&p("delay_for=-1")).unwrap_err().status(), 400);
        assert_eq!(delay_for(&p("delay_for=x")).unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn per_tenant_limit_and_idle_wait() {
        let r = Arc::new(TailRegistry::new());
        let a = TenantId::new("a").unwrap();
        let slots: Vec<_> = (0..MAX_TAILS_PER_TENANT)
            .map(|_| r.acquire(&a).unwrap())
            .collect();
        assert_eq!(
            r.acquire(&a).err().unwrap(),
            "max concurrent tail requests limit exceeded, count > limit (11 > 10)"
        );
        let other = r.acquire(&TenantId::new("b").unwrap()).unwrap();
        assert_eq!(r.active(), 11);
        drop(slots);
        assert!(r.acquire(&a).is_ok());
        drop(other);
        r.wait_idle(Duration::from_secs(1)).await;
        assert_eq!(r.active(), 0);
    }
}
