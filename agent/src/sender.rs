//! The sender: pushes batches, retries, and applies position updates in
//! batch order once the store acknowledged.
//!
//! Up to `max_in_flight` batches are pushed concurrently, but their results
//! are taken in the order the batches were made (`buffered`), so the
//! positions never jump over a batch still in flight. A batch is
//! *delivered* when the store acknowledged it, rejected its entries for
//! good (a 400: counted and logged), or, with `max_retries` set, when its
//! retries ran out (counted as dropped). During shutdown a batch still
//! failing after `shutdown_timeout` is *abandoned*: its updates and those
//! of every later batch are not applied, so a restart reads those lines
//! again.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::batch::Batch;
use crate::client::{Client, PushError, backoff, rejected_count};
use crate::config::AgentConfig;
use crate::metrics::{Counter, CounterVec, Gauge, HistogramVec, LATENCY_BUCKETS, Registry};
use crate::positions::{Positions, Update};
use crate::stages::dropped_counter;

struct Metrics {
    sent_entries: Counter,
    sent_bytes: Counter,
    sent_batches: Counter,
    retries: Counter,
    request: HistogramVec,
    batch_latency: HistogramVec,
    dropped: CounterVec,
    in_flight: Gauge,
}

struct Ctx {
    client: Client,
    cfg: Arc<AgentConfig>,
    m: Metrics,
    stopping: watch::Receiver<Option<Instant>>,
}

enum Outcome {
    Delivered(Vec<Update>),
    Abandoned,
}

async fn deliver(ctx: Arc<Ctx>, batch: Batch) -> Outcome {
    if batch.body.is_empty() {
        return Outcome::Delivered(batch.updates);
    }
    ctx.m.in_flight.add(1.0);
    let mut attempt: u32 = 0;
    let mut rand =
        (crate::time::now_nanos() as u64) ^ batch.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let outcome = loop {
        let t = Instant::now();
        let result = ctx.client.push(batch.body.clone()).await;
        let status = match &result {
            Ok(code) => code.clone(),
            Err(e) => e.status().to_string(),
        };
        ctx.m
            .request
            .with(&[&status])
            .observe(t.elapsed().as_secs_f64());
        match result {
            Ok(_) => {
                ctx.m.sent_entries.add_u64(batch.entries as u64);
                ctx.m.sent_bytes.add_u64(batch.body.len() as u64);
                ctx.m.sent_batches.inc();
                ctx.m
                    .batch_latency
                    .with(&["ok"])
                    .observe(batch.started.elapsed().as_secs_f64());
                break Outcome::Delivered(batch.updates);
            }
            Err(PushError::Reject { status, message }) => {
                let n = rejected_count(&message)
                    .unwrap_or(batch.entries)
                    .min(batch.entries);
                ctx.m.dropped.with(&["rejected"]).add_u64(n as u64);
                ctx.m.sent_entries.add_u64((batch.entries - n) as u64);
                ctx.m.sent_batches.inc();
                let msg: String = message.chars().take(1024).collect();
                tracing::warn!(status = %status, rejected = n, entries = batch.entries, message = %msg, "Store rejected entries; they are counted as dropped and not retried.");
                break Outcome::Delivered(batch.updates);
            }
            Err(PushError::Retry { status, message }) => {
                ctx.m.retries.inc();
                let max = ctx.cfg.max_retries;
                if max > 0 && attempt >= max {
                    ctx.m
                        .dropped
                        .with(&["retries_exhausted"])
                        .add_u64(batch.entries as u64);
                    tracing::error!(status = %status, entries = batch.entries, retries = attempt, message = %message, "Giving up a batch after max_retries; its entries are dropped.");
                    break Outcome::Delivered(batch.updates);
                }
                let deadline = *ctx.stopping.borrow();
                if let Some(d) = deadline
                    && Instant::now() >= d
                {
                    tracing::warn!(
                        entries = batch.entries,
                        "Shutting down with a batch not acknowledged; it will be read again after restart."
                    );
                    break Outcome::Abandoned;
                }
                let wait = backoff(
                    attempt,
                    ctx.cfg.min_backoff.0,
                    ctx.cfg.max_backoff.0,
                    &mut rand,
                );
                let wait = match deadline {
                    Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
                    None => wait,
                };
                tracing::warn!(status = %status, message = %message.chars().take(512).collect::<String>(), retry_in = ?wait, attempt, "Push failed; retrying.");
                let mut stopping = ctx.stopping.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.changed() => {}
                }
                attempt = attempt.saturating_add(1);
            }
        }
    };
    ctx.m.in_flight.add(-1.0);
    outcome
}

/// Runs until the channel is closed and every batch is delivered or
/// abandoned.
pub(crate) async fn run(
    rx: mpsc::Receiver<Batch>,
    client: Client,
    cfg: Arc<AgentConfig>,
    registry: &Registry,
    positions: Arc<Mutex<Positions>>,
    stopping: watch::Receiver<Option<Instant>>,
) {
    let m = Metrics {
        sent_entries: registry.counter(
            "larch_agent_sent_entries_total",
            "Entries acknowledged by the store.",
        ),
        sent_bytes: registry.counter(
            "larch_agent_sent_bytes_total",
            "Request bytes (compressed) acknowledged by the store.",
        ),
        sent_batches: registry.counter(
            "larch_agent_sent_batches_total",
            "Batches acknowledged by the store.",
        ),
        retries: registry.counter(
            "larch_agent_batch_retries_total",
            "Push attempts that failed and were retried.",
        ),
        request: registry.histogram_vec(
            "larch_agent_request_duration_seconds",
            "Duration of push requests, by status (HTTP code, gRPC code, error or timeout).",
            &["status_code"],
            LATENCY_BUCKETS,
        ),
        batch_latency: registry.histogram_vec(
            "larch_agent_batch_latency_seconds",
            "Time from a batch's first entry to its acknowledgement.",
            &["result"],
            LATENCY_BUCKETS,
        ),
        dropped: dropped_counter(registry),
        in_flight: registry.gauge(
            "larch_agent_batches_in_flight",
            "Batches being pushed or waiting to retry.",
        ),
    };
    let max_in_flight = cfg.max_in_flight;
    let ctx = Arc::new(Ctx {
        client,
        cfg,
        m,
        stopping,
    });
    let batches =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let results = batches
        .map(|b| deliver(ctx.clone(), b))
        .buffered(max_in_flight);
    tokio::pin!(results);
    let mut abandoned = false;
    while let Some(outcome) = results.next().await {
        match outcome {
            Outcome::Delivered(updates) if !abandoned => {
                let mut pos = positions.lock().unwrap_or_else(|p| p.into_inner());
                for u in updates {
                    pos.apply(u);
                }
            }
            Outcome::Delivered(_) => {}
            Outcome::Abandoned => abandoned = true,
        }
    }
}
