//! The WAL writer: the only thread that appends to the WAL and to stream
//! heads.
//!
//! It takes every request waiting in its queue (a group), and for each:
//! applies the rules that depend on stored state (active stream limit,
//! out-of-order window, duplicates), numbers and appends its WAL record,
//! and applies the accepted entries to the heads. Then it syncs the WAL
//! once for the whole group and only then acknowledges every request in
//! it (group commit). A request is therefore acknowledged only after its
//! record is durable, and its record holds exactly the entries applied, so
//! replay rebuilds the same state.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::stream::{BuildIdentity, Verdict, entry_fingerprint};
use super::tenant::Tenant;
use super::{Ingester, cut_policy, note_activation};
use crate::bufpool::BufPool;
use crate::validate::{Reason, ValidStream, rfc3339};
use crate::wal::record::{WalEntry, encode_push_into, finish_frame};

/// Most requests committed in one group.
const MAX_GROUP: usize = 512;

/// Buffers for WAL records, kept between pushes (see [`crate::bufpool`]):
/// a push encodes its record into one, and the writer gives it back once
/// the record is written. Up to four of up to 8 MiB each.
pub(super) static FRAMES: BufPool = BufPool::new(4, 8 << 20);

/// Most rejected entries described per stream, as Loki does.
const MAX_ERRORS_PER_STREAM: usize = 10;

/// Most messages of one request formatted by the writer; the rest are
/// counted in [`WriteOutcome::unlisted_errors`].
const MAX_LISTED_ERRORS: usize = 100;

/// A push on its way to the WAL.
pub struct WriteRequest {
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// Validated streams.
    pub streams: Vec<ValidStream>,
    /// The body their lines are slices of, for a record written again
    /// ([`crate::push::SourceBody`]).
    pub source: Option<crate::push::SourceBody>,
    /// Their WAL record, encoded by the request handler (unnumbered).
    pub frame: Vec<u8>,
    /// Where the outcome goes.
    pub reply: tokio::sync::oneshot::Sender<Result<WriteOutcome, WriteError>>,
}

/// What happened to a durable push.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Messages for entries rejected by stored state, in Loki's words.
    pub errors: Vec<String>,
    /// Messages not formatted (past the first 100 of a request).
    pub unlisted_errors: u64,
    /// Rejected entries and bytes by reason.
    pub discarded: HashMap<Reason, (u64, u64)>,
    /// Entries dropped as duplicates.
    pub duplicates: u64,
    /// Entries stored.
    pub accepted: u64,
}

/// A push that could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The WAL could not be written or synced.
    #[error("write-ahead log failure: {0}")]
    WalFailed(String),
    /// The store is stopping.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The tenant may not push ([`super::Ingester::admit`]).
    #[error(transparent)]
    Tenant(#[from] super::TenantRefused),
}

type Reply = tokio::sync::oneshot::Sender<Result<WriteOutcome, WriteError>>;

/// A group whose records are written and applied, waiting for the disk.
struct SyncJob {
    handle: crate::wal::SyncHandle,
    last_seq: u64,
    replies: Vec<(Reply, Result<WriteOutcome, WriteError>)>,
    sealed: bool,
    started: Instant,
    /// Entries for live tails, published once durable.
    tail: Vec<Arc<super::tail::TailEvent>>,
}

/// Runs the writer until every sender is gone. When more requests are
/// waiting, or a sync is already running, the group's sync happens on a
/// second thread, so the writer appends and applies the next group while
/// the disk completes the previous one; when the writer would otherwise
/// wait idle and no sync is running, it syncs and replies itself (one
/// thread hand-over less per request). Either way replies wait for the
/// sync that covers their record, and groups are settled in the order
/// their records were appended (the writer syncs inline only when the
/// sync thread holds no earlier group).
pub fn run(ing: Arc<Ingester>, mut rx: tokio::sync::mpsc::Receiver<WriteRequest>) {
    let policy = cut_policy(&ing.config);
    let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel::<SyncJob>(2);
    let syncer_ing = ing.clone();
    // Groups handed to the sync thread and not yet settled.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let syncer_in_flight = in_flight.clone();
    let syncer = std::thread::Builder::new()
        .name("larch-wal-sync".into())
        .spawn(move || sync_loop(syncer_ing, sync_rx, &syncer_in_flight));
    let syncer = match syncer {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "Cannot start the WAL sync thread; syncing inline.");
            None
        }
    };
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let mut replies = Vec::with_capacity(group.len());
        let mut sealed = false;
        let mut tail_events = Vec::new();
        let mut wal = ing.wal.lock();
        for req in group {
            let result = process(
                &ing,
                &mut wal,
                req.tenant,
                req.streams,
                req.frame,
                req.source.as_ref(),
                policy,
                &mut sealed,
                &mut tail_events,
            );
            replies.push((req.reply, result));
        }
        let job = SyncJob {
            handle: wal.sync_handle(),
            last_seq: ing.next_seq.load(Ordering::Acquire) - 1,
            replies,
            sealed,
            started,
            tail: tail_events,
        };
        drop(wal);
        // Inline when nothing else waits: no earlier group is unsettled
        // (so acknowledgements stay in order) and no request is queued
        // (so the writer has nothing to overlap the sync with).
        let idle = in_flight.load(Ordering::Acquire) == 0 && rx.is_empty();
        if syncer.is_some() && !idle {
            in_flight.fetch_add(1, Ordering::AcqRel);
            if let Err(std::sync::mpsc::SendError(job)) = sync_tx.send(job) {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                finish(&ing, job);
            }
        } else {
            ing.metrics.wal_inline_syncs.inc();
            finish(&ing, job);
        }
    }
    drop(sync_tx);
    if let Some(h) = syncer {
        let _ = h.join();
    }
}

/// Syncs groups as they come; groups that queued up while the previous
/// sync ran share one sync (the last group's: it covers every record
/// appended before it, since a segment is synced before the WAL moves on
/// to the next), so many small pushes cost few syncs.
fn sync_loop(ing: Arc<Ingester>, rx: std::sync::mpsc::Receiver<SyncJob>, in_flight: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(next) = rx.try_recv() {
            jobs.push(next);
        }
        let n = jobs.len();
        finish_all(&ing, jobs);
        // Only now may the writer settle a later group itself.
        in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Syncs, then acknowledges (or fails) every request of the group.
fn finish(ing: &Ingester, job: SyncJob) {
    finish_all(ing, vec![job]);
}

/// Syncs once for `jobs` (in the order their records were appended), then
/// acknowledges (or fails) every request of each.
fn finish_all(ing: &Ingester, jobs: Vec<SyncJob>) {
    let Some(last) = jobs.last() else {
        return;
    };
    let synced = last.handle.sync();
    ing.metrics.wal_syncs.inc();
    for job in jobs {
        settle(
            ing,
            job,
            synced.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        );
    }
}

/// Acknowledges (or fails) every request of a group once the sync that
/// covers its records returned `synced`.
fn settle(ing: &Ingester, job: SyncJob, synced: Result<(), String>) {
    ing.metrics
        .wal_commit_seconds
        .observe(job.started.elapsed().as_secs_f64());
    ing.metrics.wal_group_size.observe(job.replies.len() as f64);
    if let Err(e) = synced {
        tracing::error!(error = %e, "WAL sync failed; refusing further pushes.");
        ing.wal_failed.store(true, Ordering::Release);
        for (reply, _) in job.replies {
            let _ = reply.send(Err(WriteError::WalFailed(e.clone())));
        }
        return;
    }
    if ing.wal_failed.load(Ordering::Acquire) {
        for (reply, _) in job.replies {
            let _ = reply.send(Err(WriteError::WalFailed(
                "the write-ahead log failed earlier; restart the store".into(),
            )));
        }
        return;
    }
    ing.applied_seq.fetch_max(job.last_seq, Ordering::AcqRel);
    for (reply, result) in job.replies {
        let _ = reply.send(result);
    }
    for event in job.tail {
        ing.tail.publish(event);
    }
    if job.sealed {
        ing.flusher.wake();
    }
}

#[allow(clippy::too_many_arguments)]
fn process(
    ing: &Ingester,
    wal: &mut crate::wal::Wal,
    tenant: Arc<Tenant>,
    streams: Vec<ValidStream>,
    frame: Vec<u8>,
    source: Option<&crate::push::SourceBody>,
    policy: super::stream::CutPolicy,
    sealed: &mut bool,
    tail_events: &mut Vec<Arc<super::tail::TailEvent>>,
) -> Result<WriteOutcome, WriteError> {
    if ing.wal_failed.load(Ordering::Acquire) {
        return Err(WriteError::WalFailed(
            "the write-ahead log failed earlier; restart the store".into(),
        ));
    }
    let limits = ing.config.limits_for(tenant.id.as_str());
    let window = (ing.config.ingester.max_chunk_age.as_nanos_i64() / 2).max(1);
    let mut out = WriteOutcome::default();
    let mut dropped_any = false;
    // Indexes of the accepted entries, per stream.
    let mut keep: Vec<Vec<usize>> = Vec::with_capacity(streams.len());
    let mut new_active = 0usize;
    for vs in &streams {
        let existing = tenant.get(vs.fp);
        let active = existing
            .as_ref()
            .is_some_and(|s| s.state.lock().is_active());
        if !active
            && limits.max_streams_per_tenant > 0
            && tenant.active_count() + new_active >= limits.max_streams_per_tenant
        {
            // One message per stream, but only the first few are
            // formatted: a request of many new streams must not keep the
            // writer busy writing messages nobody reads.
            if out.errors.len() < MAX_LISTED_ERRORS {
                out.errors.push(format!(
                    "maximum active stream limit exceeded when trying to create stream {}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{}'",
                    vs.labels, tenant.id
                ));
            } else {
                out.unlisted_errors += 1;
            }
            let bytes = vs.entries.iter().map(|e| e.line.len() as u64).sum();
            discard(
                &mut out,
                Reason::StreamLimit,
                vs.entries.len() as u64,
                bytes,
            );
            keep.push(Vec::new());
            dropped_any = true;
            continue;
        }
        if !active {
            new_active += 1;
        }
        let mut kept = Vec::with_capacity(vs.entries.len());
        // Identical entries within this request; built only when an entry
        // is not newer than everything before it (until then no entry is
        // hashed).
        let mut seen: Option<HashSet<u64, BuildIdentity>> = None;
        let fp = |e: &WalEntry| entry_fingerprint(e.ts, e.line.as_bytes(), &e.meta);
        let mut rejected_lines = Vec::new();
        let mut rejected = 0usize;
        let mut st = existing.as_ref().map(|s| s.state.lock());
        // The newest timestamp so far, including earlier entries of this
        // request: entries are judged as if appended one by one.
        let mut newest = st.as_ref().map_or(i64::MIN, |s| s.max_ts);
        for (i, e) in vs.entries.iter().enumerate() {
            let verdict = if newest != i64::MIN && e.ts < newest.saturating_sub(window) {
                Verdict::TooFarBehind
            } else {
                match &mut st {
                    Some(st) => st.check(e.ts, e.line.as_bytes(), &e.meta, None),
                    None => Verdict::Accept,
                }
            };
            let verdict = if verdict == Verdict::Accept && e.ts <= newest {
                let set =
                    seen.get_or_insert_with(|| kept.iter().map(|&j| fp(&vs.entries[j])).collect());
                if set.insert(fp(e)) {
                    Verdict::Accept
                } else {
                    Verdict::Duplicate
                }
            } else {
                if let Some(set) = &mut seen {
                    set.insert(fp(e));
                }
                verdict
            };
            if verdict == Verdict::Accept {
                newest = newest.max(e.ts);
            }
            match verdict {
                Verdict::Accept => kept.push(i),
                Verdict::Duplicate => out.duplicates += 1,
                Verdict::TooFarBehind => {
                    rejected += 1;
                    discard(&mut out, Reason::TooFarBehind, 1, e.line.len() as u64);
                    if rejected_lines.len() < MAX_ERRORS_PER_STREAM
                        && out.errors.len() < MAX_LISTED_ERRORS
                    {
                        let oldest = newest.saturating_sub(window);
                        rejected_lines.push(format!(
                            "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}',",
                            rfc3339(e.ts),
                            rfc3339(e.ts),
                            rfc3339(oldest)
                        ));
                    }
                }
            }
        }
        drop(st);
        if rejected > 0 && out.errors.len() >= MAX_LISTED_ERRORS {
            out.unlisted_errors += 1;
        } else if rejected > 0 {
            let mut msg = rejected_lines.join("\n");
            let _ = write!(
                msg,
                "\nuser '{}', total ignored: {} out of {} for stream: {}",
                tenant.id,
                rejected,
                vs.entries.len(),
                vs.labels
            );
            out.errors.push(msg);
        }
        if kept.len() != vs.entries.len() {
            dropped_any = true;
        }
        keep.push(kept);
    }
    if out.duplicates > 0 {
        ing.metrics
            .duplicate_entries
            .get_or_create(&ing.metrics.tenant_label(tenant.id.as_str()))
            .inc_by(out.duplicates);
    }
    let accepted: usize = keep.iter().map(Vec::len).sum();
    if accepted == 0 {
        FRAMES.give(frame);
        return Ok(out);
    }

    // The record holds exactly what is applied.
    let mut frame = if dropped_any {
        FRAMES.give(frame);
        let kept_entries: Vec<(usize, Vec<WalEntry>)> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| !k.is_empty())
            .map(|(i, k)| {
                (
                    i,
                    k.iter().map(|&j| streams[i].entries[j].clone()).collect(),
                )
            })
            .collect();
        encode_push_into(
            FRAMES.take(),
            tenant.id.as_str(),
            source,
            kept_entries
                .iter()
                .map(|(i, es)| (&*streams[*i].labels, es.as_slice()))
                .collect::<Vec<_>>()
                .into_iter(),
        )
    } else {
        frame
    };
    let seq = ing.next_seq.load(Ordering::Relaxed);
    finish_frame(&mut frame, seq);
    if let Err(e) = wal.append(&frame, seq) {
        if wal.failure().is_some() {
            tracing::error!(error = %e, "WAL append failed and the segment could not be cut back; refusing further pushes.");
            ing.wal_failed.store(true, Ordering::Release);
        } else {
            // The segment was cut back to its last record: this push
            // fails, the next may succeed (e.g. once space is freed).
            tracing::error!(error = %e, "WAL append failed; the push is refused and the segment left as it was.");
        }
        return Err(WriteError::WalFailed(e.to_string()));
    }
    ing.next_seq.store(seq + 1, Ordering::Release);
    ing.note_wal_size(wal.disk_size());
    ing.metrics.wal_records.inc();
    ing.metrics.wal_bytes.inc_by(frame.len() as u64);
    FRAMES.give(frame);

    for (vs, kept) in streams.into_iter().zip(keep) {
        if kept.is_empty() {
            continue;
        }
        let s = tenant.get_or_create(vs.fp, &vs.labels);
        if ing.tail.has_subscribers() {
            tail_events.push(Arc::new(super::tail::TailEvent {
                tenant: tenant.id.clone(),
                labels: vs.labels.clone(),
                // Copies: an event may wait in a subscriber's queue long
                // after the request, and must not keep its body alive.
                entries: kept
                    .iter()
                    .map(|&i| {
                        let e = &vs.entries[i];
                        WalEntry {
                            ts: e.ts,
                            line: e.line.detached(),
                            meta: e.meta.clone(),
                        }
                    })
                    .collect(),
            }));
        }
        let mut st = s.state.lock();
        let was_active = st.is_active();
        for i in kept {
            let e = &vs.entries[i];
            st.append(seq, e.ts, e.line.as_bytes(), &e.meta, policy);
            out.accepted += 1;
        }
        // Sealed between records only: a chunk holds whole records.
        if st.seal_if_full(policy).is_some() {
            *sealed = true;
            ing.sealed_streams.lock().push((tenant.clone(), s.clone()));
        }
        st.touch();
        note_activation(&tenant, was_active, &st);
    }
    Ok(out)
}

fn discard(out: &mut WriteOutcome, reason: Reason, entries: u64, bytes: u64) {
    let d = out.discarded.entry(reason).or_default();
    d.0 += entries;
    d.1 += bytes;
}
