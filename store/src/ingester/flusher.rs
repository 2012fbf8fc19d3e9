//! The flusher: seals chunks by age and idleness, writes sealed chunks to
//! disk and records them in the index, trims the WAL, and applies
//! retention.
//!
//! Durability order for a chunk: the file is written to a temporary name,
//! fsynced, renamed and its directory fsynced; then the index record is
//! appended and fsynced; only then does the stream drop the in-memory copy
//! and may the WAL segments holding its entries be deleted. Chunks of one
//! stream are written in the order they were sealed, so "every entry up to
//! `max_seq` is in a chunk" holds for the stream at every moment.
//!
//! A cycle writes many streams' chunks at once (`ingester.concurrent_flushes`
//! threads, each taking whole streams), then appends all their index
//! records with one write and one `fsync` per tenant, then updates the
//! streams: a chunk's cost is mostly waiting on its syncs, which a disk
//! serves together when several are in flight.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

use super::stream::{SealedChunk, Stream};
use super::tenant::Tenant;
use super::{Ingester, note_activation};
use crate::chunk::{ChunkHeader, EncodedBlock, chunk_parts};
use crate::config::Target;
use crate::index::{ChunkRef, IndexRecord};

/// Retries of the bucket after a failure: exponentially spaced, from 1 s
/// to 1 min (`object_store` also retries each request itself).
#[derive(Debug, Default)]
pub struct Backoff {
    retry_at: Option<Instant>,
    delay: Duration,
    failures: u64,
}

impl Backoff {
    /// Whether the bucket may be tried now.
    pub fn ready(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// Notes a failure: the next try waits longer. Logged when failures
    /// start and every tenth one.
    pub fn failed(&mut self, what: &str, e: &dyn std::fmt::Display) {
        self.delay = (self.delay * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        self.retry_at = Some(Instant::now() + self.delay);
        if self.failures.is_multiple_of(10) {
            tracing::error!(error = %e, failures = self.failures + 1, retry_in_ms = self.delay.as_millis() as u64, "{what} failed; the data stays in memory and in the WAL, and is retried.");
        }
        self.failures += 1;
    }

    /// Notes a success.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "The bucket answers again; the backlog is being written."
            );
        }
        *self = Backoff::default();
    }
}

/// Messages to the flusher.
pub enum Msg {
    /// Sealed chunks are waiting.
    Wake,
    /// Seal and write everything, then signal.
    FlushAll(SyncSender<()>),
    /// Stop after the current cycle.
    Stop,
}

/// The other end of the flusher's queue.
pub struct Handle {
    tx: parking_lot::Mutex<Sender<Msg>>,
}

impl Handle {
    /// A handle and the receiver for [`run`].
    pub fn new() -> (Handle, Receiver<Msg>) {
        let (tx, rx) = channel();
        (
            Handle {
                tx: parking_lot::Mutex::new(tx),
            },
            rx,
        )
    }

    /// Asks for a flush cycle soon.
    pub fn wake(&self) {
        let _ = self.tx.lock().send(Msg::Wake);
    }

    /// Seals and writes everything; returns when done (or the flusher is
    /// gone).
    pub fn flush_all_and_wait(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.lock().send(Msg::FlushAll(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Stops the flusher thread.
    pub fn stop(&self) {
        let _ = self.tx.lock().send(Msg::Stop);
    }
}

/// Runs the flusher until [`Msg::Stop`].
pub fn run(ing: Arc<Ingester>, rx: Receiver<Msg>) {
    let period = ing
        .config
        .ingester
        .flush_check_period
        .0
        .max(Duration::from_millis(10));
    let compaction = ing.config.ingester.compaction_interval.0;
    let mut last_compaction = Instant::now();
    // The last cycle that looked at every stream, and the last trim of
    // the WAL; the first cycle looks at every stream.
    let mut last_full: Option<Instant> = None;
    let mut last_trim = Instant::now();
    loop {
        let mut done = Vec::new();
        let mut force = false;
        let mut stop = false;
        // Woken because the writer sealed chunks (not by the period, a
        // flush request or the stop).
        let mut woken = false;
        match rx.recv_timeout(period) {
            Ok(Msg::Wake) => woken = true,
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::FlushAll(d)) => {
                force = true;
                done.push(d);
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stop = true,
        }
        // Gather everything else already queued into this cycle.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Wake => {}
                Msg::FlushAll(d) => {
                    force = true;
                    done.push(d);
                }
                Msg::Stop => stop = true,
            }
        }
        if !ing.deletes.loaded() && ing.config.target == Target::All {
            // The reading at start failed: queries wait for this one (a
            // write node's own refresher retries on its thread).
            crate::objstore::view::refresh_deletes(&ing);
        }
        // Every stream is looked at (for chunks due by age or idleness,
        // the WAL's trim, the gauges) at least once a period; a cycle
        // woken by seals between those writes the sealed chunks only, so
        // that a store with a million idle streams does not walk them all
        // for every chunk its busy streams fill.
        if !woken || force || stop || last_full.is_none_or(|t| t.elapsed() >= period) {
            last_full = Some(Instant::now());
            last_trim = Instant::now();
            cycle(&ing, force);
        } else {
            let trim = last_trim.elapsed() >= TRIM_EVERY;
            if trim {
                last_trim = Instant::now();
            }
            write_sealed(&ing, trim);
        }
        // Write nodes leave compaction and retention to the compactor.
        if ing.config.target == Target::All
            && !compaction.is_zero()
            && last_compaction.elapsed() >= compaction
            && !ing.out_of_time()
        {
            super::compact::compact_all(&ing);
            super::compact::apply_deletes(&ing);
            last_compaction = Instant::now();
        } else if force && ing.config.target == Target::All && !ing.out_of_time() {
            // `POST /flush` also applies the delete requests that are due.
            super::compact::apply_deletes(&ing);
        }
        ing.graveyard.sweep(&ing.bucket, stop);
        for d in done {
            let _ = d.send(());
        }
        if stop {
            return;
        }
    }
}

/// Least time between two trims of the WAL by cycles woken by seals (a trim
/// looks at every stream; one a period is done anyway).
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// A cycle woken by seals: writes the chunks of the streams the writer
/// sealed since the last cycle took them (see
/// [`Ingester::sealed_streams`]), publishes them on a write node, and trims
/// the WAL when `trim`. A stream whose write fails keeps its chunk sealed,
/// and the next cycle that looks at every stream tries it again.
fn write_sealed(ing: &Ingester, trim: bool) {
    let applied = ing.applied_seq.load(Ordering::Acquire);
    let mut queue = std::mem::take(&mut *ing.sealed_streams.lock());
    // A stream sealed twice is written once; tenant by tenant, so that a
    // tenant's records go in one append.
    queue.sort_by_key(|(t, s)| (Arc::as_ptr(t) as usize, Arc::as_ptr(s) as usize));
    queue.dedup_by(|a, b| Arc::ptr_eq(&a.1, &b.1));
    write_queue(ing, &queue);
    publish(ing);
    if trim {
        trim_wal(ing, applied);
    }
}

/// On a write node, publishes the index segments of chunks written since
/// the last one.
fn publish(ing: &Ingester) {
    if ing.config.target == Target::Write && ing.backoff.lock().ready() && !ing.out_of_time() {
        match crate::objstore::publish::publish_all(ing) {
            Ok(()) => ing.backoff.lock().succeeded(),
            Err(e) => {
                ing.metrics.flush_failures.inc();
                ing.backoff.lock().failed("Publishing an index segment", &e);
            }
        }
    }
}

/// One pass: seal what is due, write what is sealed, trim, retain. Once a
/// shutdown's deadline has passed (see [`Ingester::shutdown_until`]) it seals and
/// writes nothing more (what is left is in the WAL) and only trims.
pub fn cycle(ing: &Ingester, force: bool) {
    // Read before looking at streams: entries applied after this point are
    // protected from WAL trimming by this bound.
    let applied = ing.applied_seq.load(Ordering::Acquire);
    let max_age = ing.config.ingester.max_chunk_age.0;
    let idle = ing.config.ingester.chunk_idle_period.0;
    let now = Instant::now();
    let mut queue: Vec<(Arc<Tenant>, Arc<Stream>)> = Vec::new();
    let mut waiting = 0usize;
    // This pass finds every stream with sealed chunks, those the writer
    // listed too.
    ing.sealed_streams.lock().clear();
    'seal: for tenant in ing.tenants() {
        for s in tenant.all() {
            if ing.out_of_time() {
                break 'seal;
            }
            let mut st = s.state.lock();
            if !st.open.is_empty()
                && (force
                    || now.duration_since(st.open.created) >= max_age
                    || now.duration_since(st.last_append) >= idle)
            {
                st.seal();
            }
            if !st.sealed.is_empty() {
                waiting += st.sealed.len();
                queue.push((tenant.clone(), s.clone()));
            }
        }
    }
    ing.metrics.flush_queue_length.set(waiting as i64);
    write_queue(ing, &queue);
    publish(ing);
    let mut backlog = 0usize;
    for tenant in ing.tenants() {
        backlog += tenant.unpublished.lock().len();
        for s in tenant.all() {
            backlog += s.state.lock().sealed.len();
        }
    }
    ing.metrics.objstore.flush_backlog.set(backlog as i64);
    trim_wal(ing, applied);
    if ing.config.target == Target::All && !ing.out_of_time() {
        apply_retention(ing);
    }
    ing.refresh_gauges();
}

/// Writes the sealed chunks of `queue`'s streams (listed tenant by
/// tenant), a round at a time, unless the bucket is waiting out a failure;
/// stops at a failure of the bucket or when the shutdown's time is up.
fn write_queue(ing: &Ingester, queue: &[(Arc<Tenant>, Arc<Stream>)]) {
    if queue.is_empty() || !ing.backoff.lock().ready() {
        return;
    }
    let remote = ing.bucket.local_root().is_none();
    for round in queue.chunks(ROUND) {
        if !write_round(ing, round, remote) {
            break;
        }
    }
}

/// Streams a round takes: their chunk files are written, then their index
/// records appended (one write per tenant), then their state updated.
/// Bounds the records held and the files a crash in the middle of a long
/// flush leaves unnamed (adopted at the next start).
const ROUND: usize = 4096;

/// A chunk file written and the reference its index record will hold.
type Written = (Arc<SealedChunk>, ChunkRef);

/// Writes the sealed chunks of `round`'s streams, on up to
/// `ingester.concurrent_flushes` threads (each stream's in the order they
/// were sealed, by one thread), then records them. Returns false when the
/// bucket failed or the shutdown's time is up: the cycle writes no more.
fn write_round(ing: &Ingester, round: &[(Arc<Tenant>, Arc<Stream>)], remote: bool) -> bool {
    let workers = ing
        .config
        .ingester
        .concurrent_flushes
        .clamp(1, round.len().max(1));
    let next = AtomicUsize::new(0);
    // Set by the first failure of a remote bucket: one is enough to know it
    // is down, and every further try would wait for its own timeout.
    let down = AtomicBool::new(false);
    let work = || {
        let mut done: Vec<(usize, Vec<Written>)> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((tenant, stream)) = round.get(i) else {
                break;
            };
            let written = write_stream(ing, tenant, stream, remote, &down);
            if !written.is_empty() {
                done.push((i, written));
            }
        }
        done
    };
    let mut done = if workers == 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    std::thread::Builder::new()
                        .name("larch-flush".into())
                        .spawn_scoped(scope, work)
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                match h {
                    Ok(h) => match h.join() {
                        Ok(done) => all.extend(done),
                        // A panic in a worker is a bug; what it wrote is
                        // not recorded and stays sealed, and the next
                        // cycle writes it again.
                        Err(_) => tracing::error!("A chunk flush worker panicked."),
                    },
                    // No thread (resource limits): the streams it would
                    // have taken go to the threads that did start, or to
                    // this one.
                    Err(e) => tracing::warn!(error = %e, "Could not start a chunk flush worker."),
                }
            }
            // Streams no thread took (every spawn failed) are written here.
            all.extend(work());
            all
        })
    };
    done.sort_unstable_by_key(|(i, _)| *i);
    record(ing, round, done, remote) && !down.load(Ordering::Relaxed) && !ing.out_of_time()
}

/// Writes `stream`'s sealed chunks in order until one fails, the bucket is
/// down or the shutdown's time is up; returns those written. They stay
/// sealed (in memory, and in the WAL) until [`record`] names them.
fn write_stream(
    ing: &Ingester,
    tenant: &Tenant,
    stream: &Stream,
    remote: bool,
    down: &AtomicBool,
) -> Vec<Written> {
    // Only this cycle takes chunks off `sealed`; the writer may add more
    // behind these meanwhile, left for the next cycle.
    let sealed: Vec<Arc<SealedChunk>> = stream.state.lock().sealed.iter().cloned().collect();
    let mut written = Vec::with_capacity(sealed.len());
    for chunk in sealed {
        if down.load(Ordering::Relaxed) || ing.out_of_time() {
            break;
        }
        match write_file(ing, tenant, stream, &chunk) {
            Ok(r) => written.push((chunk, r)),
            Err(e) => {
                ing.metrics.flush_failures.inc();
                if remote {
                    if !down.swap(true, Ordering::Relaxed) {
                        ing.backoff
                            .lock()
                            .failed("Writing a chunk to the bucket", &e);
                    }
                } else {
                    tracing::error!(tenant = %tenant.id, stream = %stream.labels, error = %e, "Writing a chunk failed; it stays in memory and in the WAL and will be retried.");
                }
                break;
            }
        }
    }
    written
}

/// Writes one sealed chunk's file (durably: see [`write_durably`]) and
/// returns the reference its index record will hold.
fn write_file(
    ing: &Ingester,
    tenant: &Tenant,
    stream: &Stream,
    sealed: &SealedChunk,
) -> std::io::Result<ChunkRef> {
    let refs: Vec<&EncodedBlock> = sealed.blocks.iter().map(Arc::as_ref).collect();
    let header = ChunkHeader {
        labels: stream.labels.to_string(),
        fingerprint: stream.fp,
        min_seq: sealed.first_seq,
        max_seq: sealed.max_seq,
        replaces: Vec::new(),
    };
    let parts = chunk_parts(&header, &refs);
    let id = match ing.config.target {
        // Unique across write nodes: the writer's name is part of it.
        Target::Write => format!(
            "{:016x}-{:08x}-{}",
            sealed.max_seq, parts.index_crc, ing.writer_id
        ),
        _ => format!("{:016x}-{:08x}", sealed.max_seq, parts.index_crc),
    };
    let key = ing.chunk_key(&tenant.id, stream.fp, &id);
    // Blocks go to the file as they are held, not gathered first.
    ing.bucket.put_parts(&key, &parts.slices(&refs))?;
    Ok(ChunkRef {
        id,
        mint: sealed.mint,
        maxt: sealed.maxt,
        entries: sealed.entries,
        bytes: parts.size,
        max_seq: sealed.max_seq,
        raw_bytes: sealed.raw_bytes(),
    })
}

/// Appends the index records of the chunks written in a round, one append
/// (one write and one `fsync`) per tenant, and only then lets each stream
/// drop its written chunks from memory. `done` is in `round`'s order, so
/// each stream's records follow its own `Stream` record (when the log
/// does not have it yet) and keep the order its chunks were sealed in.
/// When an append fails, its chunks stay sealed (in memory and in the WAL,
/// which is not trimmed past them); their files are named by nothing and
/// are written again by the retry, or adopted at the next start. Returns
/// false when a remote bucket's index append failed.
fn record(
    ing: &Ingester,
    round: &[(Arc<Tenant>, Arc<Stream>)],
    done: Vec<(usize, Vec<Written>)>,
    remote: bool,
) -> bool {
    let mut done = done.into_iter().peekable();
    while let Some(first) = done.peek() {
        let tenant = round[first.0].0.clone();
        // This tenant's streams: consecutive in the round, which the
        // queue lists tenant by tenant.
        let mut group: Vec<(&Arc<Stream>, Vec<Written>)> = Vec::new();
        while let Some((i, _)) = done.peek() {
            if !Arc::ptr_eq(&round[*i].0, &tenant) {
                break;
            }
            if let Some((i, written)) = done.next() {
                group.push((&round[i].1, written));
            }
        }
        let mut records = Vec::with_capacity(group.iter().map(|(_, w)| w.len() + 1).sum());
        for (stream, written) in &group {
            if !stream.state.lock().logged {
                records.push(IndexRecord::Stream {
                    fp: stream.fp,
                    labels: stream.labels.to_set(),
                });
            }
            records.extend(written.iter().map(|(_, chunk)| IndexRecord::Chunk {
                fp: stream.fp,
                chunk: chunk.clone(),
            }));
        }
        if let Err(e) = tenant.append(&records) {
            ing.metrics.flush_failures.inc();
            if remote {
                ing.backoff
                    .lock()
                    .failed("Recording written chunks in the index", &e);
                return false;
            }
            tracing::error!(tenant = %tenant.id, chunks = records.len(), error = %e, "Recording written chunks in the index failed; they stay in memory and in the WAL and will be retried.");
            continue;
        }
        let flushed = ing
            .metrics
            .chunks_flushed
            .get_or_create(&ing.metrics.tenant_label(tenant.id.as_str()))
            .clone();
        for (stream, written) in group {
            let mut st = stream.state.lock();
            let was_active = st.is_active();
            st.logged = true;
            for (sealed, chunk) in written {
                flushed.inc();
                ing.metrics.chunk_size_bytes.observe(chunk.bytes as f64);
                if ing.config.target == Target::Write {
                    // Served from memory, and kept in the WAL, until a
                    // segment names it.
                    tenant.unpublished.lock().push((stream.fp, chunk.clone()));
                    st.written(&sealed, chunk);
                } else {
                    st.retire(&sealed, chunk);
                }
            }
            note_activation(&tenant, was_active, &st);
        }
    }
    true
}

/// Writes a file through `write` so that after a crash it is either absent
/// or complete: temp file, fsync, rename, fsync of the directory. On
/// failure no temp file is left behind.
pub fn write_durably(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("chunk path has no parent"))?;
    crate::quarantine::create_dirs_durably(dir)?;
    let tmp = path.with_extension("tmp");
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    crate::wal::sync_dir(dir)
}

fn trim_wal(ing: &Ingester, applied: u64) {
    // Records replay could not apply are kept too.
    let mut min = applied
        .saturating_add(1)
        .min(ing.replay_floor.load(Ordering::Acquire))
        .min(ing.publish_floor());
    for tenant in ing.tenants() {
        for s in tenant.all() {
            if let Some(m) = s.state.lock().min_unflushed_seq() {
                min = min.min(m);
            }
        }
    }
    let mut wal = ing.wal.lock();
    match wal.remove_segments_before(min) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(
            removed = n,
            "Deleted WAL segments whose entries are all in chunks."
        ),
        Err(e) => tracing::warn!(error = %e, "Could not delete old WAL segments; will retry."),
    }
    ing.note_wal_size(wal.disk_size());
}

fn apply_retention(ing: &Ingester) {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    for tenant in ing.tenants() {
        let period = ing.config.limits_for(tenant.id.as_str()).retention_period;
        if period.is_zero() {
            continue;
        }
        let cutoff = now.saturating_sub(period.as_nanos_i64());
        for s in tenant.all() {
            if ing.out_of_time() {
                return;
            }
            let expired: Vec<ChunkRef> = s
                .state
                .lock()
                .chunks
                .iter()
                .filter(|c| c.maxt < cutoff)
                .cloned()
                .collect();
            if expired.is_empty() {
                continue;
            }
            let records: Vec<IndexRecord> = expired
                .iter()
                .map(|c| IndexRecord::Delete {
                    fp: s.fp,
                    id: c.id.clone(),
                })
                .collect();
            if let Err(e) = tenant.append(&records) {
                tracing::warn!(tenant = %tenant.id, error = %e, "Could not record expired chunks; will retry.");
                continue;
            }
            s.state
                .lock()
                .chunks
                .retain(|c| !expired.iter().any(|x| x.id == c.id));
            for c in &expired {
                ing.graveyard.bury(
                    ing.chunk_key(&tenant.id, s.fp, &c.id),
                    super::compact::grace(ing),
                );
            }
            ing.metrics
                .chunks_deleted
                .get_or_create(&ing.metrics.tenant_label(tenant.id.as_str()))
                .inc_by(expired.len() as u64);
        }
    }
}
