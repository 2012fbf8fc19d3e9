//! The sender: pushes batches, retries, and applies position updates in
//! batch order once the store acknowledged.
//!
//! Up to `max_in_flight` batches are pushed concurrently, but their results
//! are taken in the order the batches were made (`buffered`), so the
//! positions never jump over a batch still in flight. A batch is
//! *delivered* when the store acknowledged it, rejected its entries for
//! good (a 400: counted and logged), or, with `max_retries` set, when its
//! retries ran out (counted as dropped). Any other failure (401, 403, 404,
//! 429, 5xx, the network) is retried with backoff for as long as it lasts,
//! and the positions stay put meanwhile; the state shows in
//! `larch_agent_push_failures_total{status_code}` and
//! `larch_agent_push_consecutive_failures`, and in a log line when pushes
//! start failing, at most every 30 s while they go on failing (sooner if
//! the status changes), and when they succeed again.
//!
//! A batch the store answers 413 (too large) is split in halves by entry
//! count and the halves pushed in order, recursively; a single entry still
//! too large can never be accepted and is dropped (counted as
//! `too_large`, logged). A batch refused as rate limited (429,
//! `ResourceExhausted`) five times in a row is split too, since a store
//! that does not answer 413 (Loki) refuses a request larger than the
//! tenant's whole burst with 429 forever; a single entry is never dropped
//! for that. During shutdown a batch still failing after
//! `shutdown_timeout` is *abandoned*: its updates and those of every later
//! batch are not applied, so a restart reads those lines again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
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
    splits: Counter,
    request: HistogramVec,
    batch_latency: HistogramVec,
    dropped: CounterVec,
    in_flight: Gauge,
    failures: CounterVec,
    consecutive: Gauge,
}

/// How often a failure that goes on is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct FailureLog {
    since: Option<Instant>,
    last_logged: Option<Instant>,
    last_status: String,
    attempts: u64,
    unlogged: u64,
}

/// Push failures across batches: the consecutive-failure gauge and the
/// rate-limited log.
struct Failures {
    consecutive: AtomicU64,
    log: Mutex<FailureLog>,
}

impl Failures {
    fn failed(&self, m: &Metrics, status: &str, message: &str, retry_in: Option<Duration>) {
        m.failures.with(&[status]).inc();
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        m.consecutive.set(i64::try_from(n).unwrap_or(i64::MAX));
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let since = *log.since.get_or_insert(now);
        log.attempts += 1;
        let due = log
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
            || log.last_status != status;
        if !due {
            log.unlogged += 1;
            return;
        }
        let msg: String = message.trim().chars().take(512).collect();
        let failing_for = now.duration_since(since);
        let (attempts, unlogged) = (log.attempts, log.unlogged);
        log.last_logged = Some(now);
        log.last_status = status.to_string();
        log.unlogged = 0;
        drop(log);
        // Statuses that need someone to fix a tenant, a token, a URL or a
        // gateway are errors; the others usually pass by themselves.
        let needs_fixing = matches!(
            status,
            "401" | "403" | "404" | "Unauthenticated" | "PermissionDenied" | "NotFound"
        );
        if needs_fixing {
            tracing::error!(status, message = %msg, attempts, not_logged = unlogged, failing_for = ?failing_for, retry_in = ?retry_in, "Pushes to the store are failing; retrying with backoff, positions stay at the last acknowledged line.");
        } else {
            tracing::warn!(status, message = %msg, attempts, not_logged = unlogged, failing_for = ?failing_for, retry_in = ?retry_in, "Pushes to the store are failing; retrying with backoff, positions stay at the last acknowledged line.");
        }
    }

    fn succeeded(&self, m: &Metrics) {
        if self.consecutive.swap(0, Ordering::Relaxed) == 0 {
            return;
        }
        m.consecutive.set(0);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = log.since.take() {
            tracing::info!(attempts = log.attempts, failing_for = ?since.elapsed(), "Pushes to the store succeed again.");
        }
        *log = FailureLog::default();
    }
}

struct Ctx {
    client: Client,
    cfg: Arc<AgentConfig>,
    m: Metrics,
    failures: Failures,
    stopping: watch::Receiver<Option<Instant>>,
}

enum Outcome {
    Delivered(Vec<Update>),
    Abandoned,
}

/// Splits a batch body into two with about half the entries each, keeping
/// every entry's stream; `None` for a body of at most one entry (or one
/// that does not decode, which the batcher never makes).
pub(crate) fn split_body(body: &[u8], compressed: bool) -> Option<[(Bytes, usize); 2]> {
    use larch_proto::logproto::{PushRequest, Stream};
    use prost::Message;
    let raw = if compressed {
        snap::raw::Decoder::new().decompress_vec(body).ok()?
    } else {
        body.to_vec()
    };
    let req = PushRequest::decode(raw.as_slice()).ok()?;
    let total: usize = req.streams.iter().map(|s| s.entries.len()).sum();
    if total < 2 {
        return None;
    }
    let mut left = total / 2;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for mut s in req.streams {
        if left == 0 {
            b.push(s);
        } else if s.entries.len() <= left {
            left -= s.entries.len();
            a.push(s);
        } else {
            let rest = s.entries.split_off(left);
            left = 0;
            b.push(Stream {
                labels: s.labels.clone(),
                entries: rest,
                hash: s.hash,
            });
            a.push(s);
        }
    }
    let encode = |streams: Vec<Stream>| -> Option<(Bytes, usize)> {
        let n = streams.iter().map(|s| s.entries.len()).sum();
        let raw = PushRequest {
            streams,
            ..Default::default()
        }
        .encode_to_vec();
        let body = if compressed {
            snap::raw::Encoder::new().compress_vec(&raw).ok()?
        } else {
            raw
        };
        Some((Bytes::from(body), n))
    };
    Some([encode(a)?, encode(b)?])
}

/// A piece refused as rate limited this many times in a row is split:
/// a request larger than a tenant's whole burst is refused with 429
/// forever by stores that do not answer 413 (Loki), and halves of a
/// request that is merely early go through as well once the limit allows.
const SPLIT_AFTER_LIMITED: u32 = 5;

/// [`split_body`] on the blocking pool.
async fn halves(ctx: &Ctx, body: &Bytes, entries: usize) -> Option<[(Bytes, usize); 2]> {
    if entries < 2 {
        return None;
    }
    let compressed = ctx.client.wants_snappy();
    let b = body.clone();
    tokio::task::spawn_blocking(move || split_body(&b, compressed))
        .await
        .ok()
        .flatten()
}

/// Pushes one batch (split as needed); `None` if abandoned at shutdown.
async fn push_batch(ctx: &Ctx, batch: &Batch, rand: &mut u64) -> Option<()> {
    // Pieces still to push, the next one last.
    let mut pieces = vec![(batch.body.clone(), batch.entries)];
    let mut attempt: u32 = 0;
    while let Some((body, entries)) = pieces.pop() {
        let mut limited: u32 = 0;
        loop {
            let t = Instant::now();
            let result = ctx.client.push(body.clone()).await;
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
                    ctx.failures.succeeded(&ctx.m);
                    ctx.m.sent_entries.inc_by(entries as u64);
                    ctx.m.sent_bytes.inc_by(body.len() as u64);
                    break;
                }
                Err(PushError::Reject { status, message }) => {
                    // The store answered: the push itself works.
                    ctx.failures.succeeded(&ctx.m);
                    let n = rejected_count(&message).unwrap_or(entries).min(entries);
                    ctx.m.dropped.with(&["rejected"]).inc_by(n as u64);
                    ctx.m.sent_entries.inc_by((entries - n) as u64);
                    let msg: String = message.chars().take(1024).collect();
                    tracing::warn!(status = %status, rejected = n, entries, message = %msg, "Store rejected entries; they are counted as dropped and not retried.");
                    break;
                }
                Err(PushError::TooLarge { status, message }) => {
                    ctx.failures.failed(&ctx.m, &status, &message, None);
                    match halves(ctx, &body, entries).await {
                        Some([first, second]) => {
                            ctx.m.splits.inc();
                            tracing::debug!(
                                entries,
                                bytes = body.len(),
                                "Request too large for the store; pushing it in two halves."
                            );
                            pieces.push(second);
                            pieces.push(first);
                        }
                        None => {
                            ctx.m.dropped.with(&["too_large"]).inc_by(entries as u64);
                            let msg: String = message.chars().take(512).collect();
                            tracing::error!(status = %status, entries, bytes = body.len(), message = %msg, "The store refuses a request of a single entry as too large; the entry is dropped. Raise the store's limit (ingestion_burst_size_mb, a proxy's body size) or lower max_line_size.");
                        }
                    }
                    break;
                }
                Err(PushError::Retry { status, message }) => {
                    ctx.m.retries.inc();
                    if status == "429" || status == "ResourceExhausted" {
                        limited += 1;
                    } else {
                        limited = 0;
                    }
                    let max = ctx.cfg.max_retries;
                    if max > 0 && attempt >= max {
                        ctx.failures.failed(&ctx.m, &status, &message, None);
                        ctx.m
                            .dropped
                            .with(&["retries_exhausted"])
                            .inc_by(entries as u64);
                        tracing::error!(status = %status, entries, retries = attempt, message = %message, "Giving up a batch after max_retries; its entries are dropped.");
                        break;
                    }
                    let deadline = *ctx.stopping.borrow();
                    if let Some(d) = deadline
                        && Instant::now() >= d
                    {
                        ctx.failures.failed(&ctx.m, &status, &message, None);
                        tracing::warn!(
                            entries,
                            "Shutting down with a batch not acknowledged; it will be read again after restart."
                        );
                        return None;
                    }
                    if limited >= SPLIT_AFTER_LIMITED
                        && let Some([first, second]) = halves(ctx, &body, entries).await
                    {
                        ctx.failures.failed(&ctx.m, &status, &message, None);
                        ctx.m.splits.inc();
                        tracing::debug!(
                            entries,
                            bytes = body.len(),
                            "Request rate limited again and again; pushing it in two halves."
                        );
                        pieces.push(second);
                        pieces.push(first);
                        break;
                    }
                    let wait = backoff(attempt, ctx.cfg.min_backoff.0, ctx.cfg.max_backoff.0, rand);
                    let wait = match deadline {
                        Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
                        None => wait,
                    };
                    ctx.failures.failed(&ctx.m, &status, &message, Some(wait));
                    let mut stopping = ctx.stopping.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopping.changed() => {}
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
    Some(())
}

async fn deliver(ctx: Arc<Ctx>, batch: Batch) -> Outcome {
    if batch.body.is_empty() {
        return Outcome::Delivered(batch.updates);
    }
    ctx.m.in_flight.inc();
    let mut rand =
        (crate::time::now_nanos() as u64) ^ batch.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let outcome = match push_batch(&ctx, &batch, &mut rand).await {
        Some(()) => {
            ctx.m.sent_batches.inc();
            ctx.m
                .batch_latency
                .with(&["ok"])
                .observe(batch.started.elapsed().as_secs_f64());
            Outcome::Delivered(batch.updates)
        }
        None => Outcome::Abandoned,
    };
    ctx.m.in_flight.dec();
    outcome
}

/// Runs until the channel is closed and every batch is delivered or
/// abandoned. `room` tells the reader that the channel has room again.
pub(crate) async fn run(
    rx: mpsc::Receiver<Batch>,
    client: Client,
    cfg: Arc<AgentConfig>,
    registry: &Registry,
    positions: Arc<Mutex<Positions>>,
    stopping: watch::Receiver<Option<Instant>>,
    room: std::sync::mpsc::SyncSender<()>,
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
        splits: registry.counter(
            "larch_agent_batch_splits_total",
            "Requests the store answered too large (413) that were split in two.",
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
        failures: registry.counter_vec(
            "larch_agent_push_failures_total",
            "Push attempts that failed, by status (HTTP code, gRPC code, error or timeout); 400 rejections are not failures.",
            &["status_code"],
        ),
        consecutive: registry.gauge(
            "larch_agent_push_consecutive_failures",
            "Push attempts failed since the last one that succeeded (0 when pushes go through).",
        ),
    };
    let max_in_flight = cfg.max_in_flight;
    let ctx = Arc::new(Ctx {
        client,
        cfg,
        m,
        failures: Failures {
            consecutive: AtomicU64::new(0),
            log: Mutex::new(FailureLog::default()),
        },
        stopping,
    });
    let batches = futures_util::stream::unfold((rx, room), |(mut rx, room)| async move {
        let b = rx.recv().await?;
        let _ = room.try_send(());
        Some((b, (rx, room)))
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batcher;
    use crate::labels::Labels;
    use larch_proto::logproto::PushRequest;
    use prost::Message;

    fn lines(body: &[u8], compressed: bool) -> Vec<(String, String)> {
        let raw = if compressed {
            snap::raw::Decoder::new().decompress_vec(body).unwrap()
        } else {
            body.to_vec()
        };
        let req = PushRequest::decode(raw.as_slice()).unwrap();
        req.streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| (s.labels.clone(), e.line.clone())))
            .collect()
    }

    #[test]
    fn splitting_keeps_every_entry_in_order_until_one_is_left() {
        for compressed in [true, false] {
            let mut b = Batcher::new(1 << 20, compressed);
            for i in 0..7 {
                let l = Labels::from_pairs([("s", if i % 3 == 0 { "a" } else { "b" })]);
                b.push_labels(&l, i, &format!("line {i}"), &Labels::new());
            }
            let batch = b.flush();
            let all = lines(&batch.body, compressed);
            // Split down to single entries, depth first.
            let mut stack = vec![(batch.body.clone(), batch.entries)];
            let mut out = Vec::new();
            while let Some((body, n)) = stack.pop() {
                match split_body(&body, compressed) {
                    Some([x, y]) => {
                        assert_eq!(x.1 + y.1, n);
                        assert!(x.1 >= 1 && y.1 >= 1);
                        stack.push(y);
                        stack.push(x);
                    }
                    None => {
                        assert_eq!(n, 1);
                        out.extend(lines(&body, compressed));
                    }
                }
            }
            assert_eq!(out, all);
        }
    }
}
