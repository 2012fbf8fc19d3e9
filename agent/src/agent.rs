//! Wiring: the [`Agent`] starts the reader thread, the sender, the
//! positions writer, the Kubernetes watch and the HTTP endpoints, and stops
//! them in order on shutdown.
//!
//! ```text
//!  reader thread ──Batch (bounded channel)──► sender ──ack──► positions
//!  (scan, tail, decode,                       (push, retry,    (written every
//!   stages, batch, snappy)                     in order)        positions_sync)
//! ```
//!
//! Shutdown: the reader stops reading and sends its last batch; the sender
//! delivers what is queued, retrying at most `shutdown_timeout`; positions
//! are written one last time.
//!
//! A damaged positions file does not stop the agent: what can be trusted
//! of it is used, the rest is reported (log and
//! `larch_agent_positions_errors_total{reason}`), the file is copied to
//! `<positions>.damaged` for inspection, and every file without a usable
//! record is read from its start (see [`crate::positions::recover`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::client::Client;
use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::metrics::{CounterVec, Registry};
use crate::positions::{self, Positions};
use crate::reader::{self, ReaderSetup};

/// A configured agent, ready to [`run`](Agent::run).
pub struct Agent {
    cfg: Arc<AgentConfig>,
    registry: Registry,
    ready: Arc<AtomicBool>,
}

fn positions_errors(registry: &Registry) -> CounterVec {
    registry.counter_vec(
        "larch_agent_positions_errors_total",
        "Problems with the positions file: unusable content found at start (unreadable, unsupported_version, corrupt_header, corrupt_record, truncated) and failed writes (write).",
        &["reason"],
    )
}

/// Loads the positions, reporting damage; true if some could not be used.
fn load_positions(
    cfg: &AgentConfig,
    errors: &CounterVec,
) -> (Vec<positions::PositionRecord>, bool) {
    let loaded = positions::recover(&cfg.positions);
    let path = cfg.positions.display();
    if loaded.problems.is_empty() {
        tracing::info!(path = %path, files = loaded.records.len(), "Loaded positions.");
        return (loaded.records, false);
    }
    for p in &loaded.problems {
        errors.with(&[p.reason]).inc();
        tracing::error!(path = %path, reason = p.reason, detail = %p.detail, "Positions file damaged.");
    }
    let mut copy = cfg.positions.clone().into_os_string();
    copy.push(".damaged");
    match std::fs::copy(&cfg.positions, &copy) {
        Ok(_) => {
            tracing::warn!(path = %path, copy = %std::path::Path::new(&copy).display(), usable = loaded.records.len(), "Kept a copy of the damaged positions file; files without a usable position are read from their start (rotated ones included), and the store drops the lines it already has.")
        }
        Err(e) => {
            tracing::warn!(path = %path, error = %e, usable = loaded.records.len(), "Files without a usable position are read from their start (rotated ones included), and the store drops the lines it already has; no copy of the damaged file could be kept.")
        }
    }
    (loaded.records, true)
}

async fn save_positions(
    path: std::path::PathBuf,
    positions: &Arc<Mutex<Positions>>,
    errors: &CounterVec,
) {
    let dirty = positions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take_dirty();
    let Some(records) = dirty else { return };
    let p = path.clone();
    let result = tokio::task::spawn_blocking(move || positions::save(&p, &records)).await;
    let err = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    errors.with(&["write"]).inc();
    tracing::error!(path = %path.display(), error = %err, "Cannot write positions; will retry (the previous file is unchanged).");
    positions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .mark_dirty();
}

impl Agent {
    /// Validates the configuration.
    pub fn new(cfg: AgentConfig) -> Result<Agent> {
        cfg.validate()?;
        let registry = Registry::new();
        registry.register_process_metrics();
        Ok(Agent {
            cfg: Arc::new(cfg),
            registry,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The metrics registry (served on `/metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// True once the agent has loaded positions and scanned the pods
    /// directory.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Runs until `shutdown` completes, then flushes and returns. Must be
    /// called inside a Tokio runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let cfg = self.cfg.clone();
        let pos_errors = positions_errors(&self.registry);
        let (saved, recovering) = load_positions(&cfg, &pos_errors);
        let client = Client::new(&cfg)?;
        let compress = client.wants_snappy();
        let kube = match crate::kube::access(&cfg.kubernetes)? {
            Some(access) => {
                tracing::info!(api = %access.api_server, "Reading pod metadata from the Kubernetes API.");
                Some(crate::kube::spawn(
                    access,
                    cfg.node_name.clone(),
                    &self.registry,
                )?)
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(cfg.http_addr)
            .await
            .map_err(|source| Error::Listen {
                addr: cfg.http_addr.to_string(),
                source,
            })?;
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Serving /metrics and /ready.");
        let server = tokio::spawn(crate::server::serve(
            listener,
            self.registry.clone(),
            self.ready.clone(),
        ));

        let positions = Arc::new(Mutex::new(Positions::new()));
        let (tx, rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = watch::channel::<Option<Instant>>(None);
        let registry = self.registry.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let wake = std_mpsc::sync_channel(1);
        let wake_tx = wake.0.clone();
        let (room_tx, room_rx) = std_mpsc::sync_channel(1);
        let sender = {
            let cfg = cfg.clone();
            let positions = positions.clone();
            let room = room_tx.clone();
            tokio::spawn(async move {
                crate::sender::run(rx, client, cfg, &registry, positions, stop_rx, room).await
            })
        };
        let writer = {
            let positions = positions.clone();
            let path = cfg.positions.clone();
            let every = cfg.positions_sync.0;
            let lag = self.registry.gauge(
                "larch_agent_positions_lag_bytes",
                "Bytes put into batches but not yet acknowledged by the store (what a crash would resend).",
            );
            let errors = pos_errors.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let l = positions.lock().unwrap_or_else(|p| p.into_inner()).lag();
                    lag.set(i64::try_from(l).unwrap_or(i64::MAX));
                    save_positions(path.clone(), &positions, &errors).await;
                }
            })
        };

        let setup = ReaderSetup {
            cfg: cfg.clone(),
            registry: self.registry.clone(),
            kube,
            tx,
            positions: saved,
            compress,
            stop: stop.clone(),
            ready: self.ready.clone(),
            wake,
            room: room_rx,
            recovering,
        };
        let reader = std::thread::Builder::new()
            .name("larch-reader".into())
            .spawn(move || reader::run(setup))
            .map_err(|e| Error::Config(format!("cannot start the reader thread: {e}")))?;
        let reader_done = tokio::task::spawn_blocking(move || reader.join());
        tokio::pin!(reader_done);

        let mut reader_result = None;
        tokio::select! {
            _ = shutdown => tracing::info!("Shutting down: sending the last batch."),
            r = &mut reader_done => reader_result = Some(r),
        }
        stop.store(true, Ordering::Release);
        let _ = wake_tx.try_send(());
        let _ = room_tx.try_send(());
        let _ = stop_tx.send(Some(Instant::now() + cfg.shutdown_timeout.0));
        let reader_result = match reader_result {
            Some(r) => r,
            None => reader_done.await,
        };
        let _ = sender.await;
        writer.abort();
        save_positions(cfg.positions.clone(), &positions, &pos_errors).await;
        server.abort();
        tracing::info!("Stopped.");
        match reader_result {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Config("the reader thread panicked".into())),
            Err(e) => Err(Error::Config(format!("the reader thread failed: {e}"))),
        }
    }
}
