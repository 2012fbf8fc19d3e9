//! The ingester: every tenant's streams in memory, the WAL writer that
//! makes pushes durable and applies them, the flusher that writes chunks,
//! and the read side the query engine scans.
//!
//! Threads: request handlers validate in parallel and hand a prepared WAL
//! record to the single [`writer`] thread; the [`flusher`] thread seals
//! chunks by age and writes sealed chunks; queries scan snapshots
//! ([`read`]).

pub mod compact;
pub mod flusher;
pub mod metadata;
pub mod multi;
pub mod read;
pub mod recover;
pub mod stream;
pub mod tail;
pub mod tail_queue;
pub mod tenant;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::config::{Config, Target};
use crate::index::Handles;
use crate::metrics::Metrics;
use crate::objstore::Bucket;
use crate::quarantine::Quarantine;
use crate::tenant::TenantId;
use crate::validate::Validated;
use crate::wal::{self, Wal};
use stream::{CutPolicy, StreamState, Verdict};
use tenant::Tenant;
pub use writer::{WriteError, WriteOutcome};

/// Errors opening the ingester.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A directory or file could not be used.
    #[error("{what} {path}: {cause}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why: part of the message, not a separate cause, so that a
        /// message printed with its causes says it once.
        cause: std::io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OpenError + 'a {
    move |cause| OpenError::Io {
        what,
        path: path.to_path_buf(),
        cause,
    }
}

/// Why a push of a tenant is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantRefused {
    /// `tenant_allow_list` is set and does not name the tenant (HTTP 401).
    #[error(
        "tenant '{0}' is not allowed to push to this store: it is not in tenant_allow_list, ask your Larch administrator to add it"
    )]
    NotAllowed(TenantId),
    /// The tenant is new and the store holds `max_tenants` already (HTTP
    /// 429: the data is fine, the store is full of tenants).
    #[error(
        "maximum number of tenants exceeded when trying to create tenant '{tenant}' (limit: {max}), contact your Larch administrator to see if the max_tenants limit can be increased"
    )]
    TooMany {
        /// The new tenant.
        tenant: TenantId,
        /// `max_tenants`.
        max: usize,
    },
}

impl TenantRefused {
    /// The `reason` label of `larch_ingester_refused_tenant_pushes_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            TenantRefused::NotAllowed(_) => "not_allowed",
            TenantRefused::TooMany { .. } => "max_tenants",
        }
    }
}

/// What a shutdown left behind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Streams whose newest entries are only in the WAL (replayed at the
    /// next start).
    pub streams_in_wal: usize,
    /// Whether the flusher ran out of time before everything asked of it
    /// was written.
    pub out_of_time: bool,
}

/// The shared state of the store's write and read paths.
pub struct Ingester {
    /// Configuration.
    pub config: Arc<Config>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    tenants: RwLock<HashMap<TenantId, Arc<Tenant>>>,
    /// `tenant_allow_list`; empty: every tenant may push.
    allowed: HashSet<String>,
    /// Set when a shutdown begins: the flusher and compaction stop writing
    /// at this instant (between two chunks).
    stop_at: Mutex<Option<Instant>>,
    index_dir: PathBuf,
    wal: Mutex<Wal>,
    next_seq: AtomicU64,
    /// Highest sequence number applied to the heads.
    applied_seq: AtomicU64,
    /// Set when the WAL cannot be written: pushes fail with 503.
    wal_failed: AtomicBool,
    writer_tx: Mutex<Option<tokio::sync::mpsc::Sender<writer::WriteRequest>>>,
    flusher: flusher::Handle,
    threads: Mutex<Vec<JoinHandle<()>>>,
    read_cache: read::ChunkCache,
    tail: tail::Tail,
    graveyard: compact::Graveyard,
    /// Open index log files, shared by every tenant.
    handles: Arc<Handles>,
    /// Damage found on disk, for `/ready` and logs.
    pub health: recover::Health,
    /// Lowest sequence number of a WAL record replay could not apply (its
    /// tenant could not be opened): segments from there on are kept.
    replay_floor: AtomicU64,
    /// The bucket chunks (and, from write nodes, index segments) go to.
    pub bucket: Arc<Bucket>,
    /// This process's writer identity (`data_dir/writer-id`).
    pub writer_id: String,
    /// Lowest sequence number the WAL must keep for journal records not
    /// yet published (write nodes, after a restart); `u64::MAX`: none.
    publish_floor: AtomicU64,
    /// Bytes the WAL holds on disk (for `wal.max_size`).
    wal_size: AtomicU64,
    /// Wall clock (ns) when this process started.
    pub started_at_ns: i64,
    /// Wall clock (ns) when the last complete listing of the bucket began
    /// (read nodes; `i64::MIN` before the first).
    pub view_listed_at: AtomicI64,
    /// A read node's term indexes, per tenant (`objstore::view`).
    pub terms: parking_lot::RwLock<
        std::collections::HashMap<TenantId, Arc<crate::objstore::terms::ChunkTerms>>,
    >,
    /// The write nodes a read node asks for their unflushed data.
    pub remote: Option<crate::objstore::remote::WriteNodes>,
    /// Membership and the other members' clients, with `cluster:`.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// When the bucket may be tried again after a failure.
    pub(crate) backoff: Mutex<flusher::Backoff>,
    /// Streams the writer sealed a chunk of since the flusher last took
    /// them: a cycle woken by a seal writes these instead of looking at
    /// every stream, which it does every `flush_check_period`.
    pub(crate) sealed_streams: Mutex<Vec<(Arc<Tenant>, Arc<stream::Stream>)>>,
    /// Delete requests, filtered out of every query.
    pub deletes: Arc<crate::deletes::Deletes>,
    /// Dropped to stop a write node's refresher of the delete requests.
    deletes_stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

/// Index log files kept open at most (see [`Handles`]): a few dozen file
/// descriptors serve any number of tenants, since a tenant's log is
/// written once per flushed chunk.
const INDEX_HANDLES: usize = 64;

/// What replay found, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    /// WAL statistics.
    pub replay: wal::ReplayStats,
    /// Entries re-applied from the WAL.
    pub replayed_entries: u64,
    /// Entries skipped because they are already in flushed chunks.
    pub skipped_entries: u64,
    /// What recovery found and did in the index and chunk files.
    pub recovery: recover::RecoveryReport,
}

impl Ingester {
    /// Opens the data directory: loads every tenant's index, replays the
    /// WAL, and starts the writer and flusher threads.
    pub fn open(
        config: Config,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Ingester>, OpenReport), OpenError> {
        let data = config.data_dir.clone();
        let wal_dir = data.join("wal");
        let index_dir = data.join("index");
        let chunks_dir = data.join("chunks");
        for d in [&wal_dir, &index_dir, &chunks_dir] {
            crate::quarantine::create_dirs_durably(d).map_err(io_err("creating", d))?;
        }
        let bucket = Arc::new(
            Bucket::open(&config.storage, &data, metrics.objstore.clone())
                .map_err(io_err("opening the bucket of", &data))?,
        );
        let chunks_dir = match bucket.local_root() {
            Some(root) => root.join("chunks"),
            None => chunks_dir,
        };
        crate::quarantine::create_dirs_durably(&chunks_dir)
            .map_err(io_err("creating", &chunks_dir))?;
        if config.storage.backend != crate::config::Backend::Filesystem {
            crate::objstore::view::check_at_start(&bucket, &config)
                .map_err(io_err("checking the bucket of", &data))?;
        }
        let writer_id = writer_id(&data).map_err(io_err("reading the writer id in", &data))?;
        // Delete requests before the first query: a node that queries
        // must not show deleted lines. When the bucket cannot be reached it
        // starts anyway (a write path keeps taking pushes) and refuses
        // queries until a later reading succeeds.
        let deletes = Arc::new(crate::deletes::Deletes::new(bucket.clone()));
        {
            // On a thread of its own: the bucket's calls block, and `open`
            // may be called from within an async runtime.
            let read = std::thread::scope(|sc| {
                sc.spawn(|| deletes.refresh())
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("reading them panicked")))
            });
            match read {
                Ok(()) => {
                    let (received, processed) = deletes.counts();
                    metrics.deletes.set_counts(received, processed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(io_err("reading the delete requests of", &data)(e));
                }
                Err(e) => {
                    tracing::error!(error = %e, "Reading the delete requests failed; queries are refused until a later reading succeeds.");
                }
            }
        }
        let quarantine = Quarantine::new(&data);
        let handles = Handles::new(INDEX_HANDLES);
        let health = recover::Health::default();
        let mut report = OpenReport::default();

        // Every tenant with an index log or a chunk directory.
        let mut tenants = HashMap::new();
        let mut loaded = Vec::new();
        for (dir, suffix) in [(&index_dir, ".idx"), (&chunks_dir, "")] {
            let rd = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
            for e in rd {
                let e = e.map_err(io_err("listing", dir))?;
                let name = e.file_name().to_string_lossy().to_string();
                if suffix == ".idx" && name.ends_with(".idx.tmp") {
                    // A rewrite interrupted before its rename: the log
                    // itself is intact.
                    std::fs::remove_file(e.path()).map_err(io_err("removing", &e.path()))?;
                    continue;
                }
                let Some(stem) = name.strip_suffix(suffix) else {
                    continue;
                };
                if suffix.is_empty() && !e.path().is_dir() {
                    continue;
                }
                match TenantId::new(stem) {
                    Ok(id) if tenants.contains_key(&id) => {}
                    Ok(id) => {
                        let (t, l) =
                            Tenant::load(id.clone(), &index_dir, handles.clone(), &quarantine)
                                .map_err(io_err("opening index", &e.path()))?;
                        let t = Arc::new(t);
                        tenants.insert(id, t.clone());
                        loaded.push((t, l));
                    }
                    Err(err) => {
                        tracing::warn!(file = %e.path().display(), error = %err, "Ignoring a file whose name is not a valid tenant.")
                    }
                }
            }
        }

        // Reconcile every index with its chunk files before replay, so
        // replay skips exactly what the chunks hold.
        let wal_floor = wal::first_seq(&wal_dir).map_err(io_err("reading WAL", &wal_dir))?;
        let mut holes: HashMap<TenantId, recover::Holes> = HashMap::new();
        {
            let ctx = recover::Ctx {
                chunks_dir: &chunks_dir,
                quarantine: &quarantine,
                metrics: &metrics,
                health: &health,
                config: &config,
                wal_floor,
            };
            for (t, l) in &loaded {
                if bucket.local_root().is_none() {
                    // Chunk objects are not listed at start (see
                    // ARCHITECTURE.md, "The writer's journal").
                    let mut r = recover::RecoveryReport::default();
                    recover::report_log(&ctx, t, l, &mut r);
                    report.recovery.add(&r);
                    continue;
                }
                let (r, h) = recover::reconcile(&ctx, t, l).map_err(io_err(
                    "recovering chunks of",
                    &chunks_dir.join(t.id.as_str()),
                ))?;
                report.recovery.add(&r);
                if !h.is_empty() {
                    holes.insert(t.id.clone(), h);
                }
            }
        }
        drop(loaded);
        // Journal records a segment must still name (write nodes); the
        // WAL keeps everything until they are published.
        let mut publish_floor = u64::MAX;
        for t in tenants.values() {
            let mut u = t.unpublished.lock();
            if config.target != Target::Write {
                u.clear();
            } else if !u.is_empty() {
                publish_floor = 0;
            }
        }

        let config = Arc::new(config);
        let policy = cut_policy(&config);
        let mut sealed_any = false;
        let mut unapplied: Option<u64> = None;
        let tenants = RwLock::new(tenants);
        let (segments, stats) = wal::replay(&wal_dir, &quarantine, |rec| {
            let Ok(tid) = TenantId::new(rec.tenant) else {
                tracing::error!(tenant = %rec.tenant, "WAL record of an invalid tenant; skipping it.");
                return;
            };
            let tenant = {
                let existing = tenants.read().get(&tid).cloned();
                match existing {
                    Some(t) => t,
                    None => {
                        let t = Arc::new(Tenant::new(tid.clone(), &index_dir, handles.clone()));
                        tenants.write().insert(tid.clone(), t.clone());
                        t
                    }
                }
            };
            if let Some(why) = tenant.log_failure() {
                tracing::error!(tenant = %tid, error = %why, "A tenant's index log cannot be written; its WAL entries stay in the WAL.");
                unapplied = Some(unapplied.map_or(rec.seq, |u| u.min(rec.seq)));
                return;
            }
            let tholes = holes.get(&tid);
            for stream in &rec.streams {
                // The labels are built only for a stream not seen yet.
                let fp = stream.fingerprint();
                let s = match tenant.get(fp) {
                    Some(s) => s,
                    None => tenant.get_or_create(fp, &stream.label_set()),
                };
                let entries = &stream.entries;
                let mut st = s.state.lock();
                if rec.seq <= st.flushed_max_seq
                    && !recover::in_hole(tholes.and_then(|h| h.get(&fp)), rec.seq)
                {
                    report.skipped_entries += entries.len() as u64;
                    continue;
                }
                let was_active = st.is_active();
                for e in entries {
                    let line = e.line.as_bytes();
                    if st.check(e.ts, line, e.meta, None) == Verdict::Accept {
                        st.append(rec.seq, e.ts, line, e.meta, policy);
                        report.replayed_entries += 1;
                    }
                }
                sealed_any |= st.seal_if_full(policy).is_some();
                if !was_active && st.is_active() {
                    tenant.active.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .map_err(io_err("replaying WAL", &wal_dir))?;
        metrics.wal_corruptions.inc_by(stats.corruptions);
        metrics
            .recovery
            .wal_corrupt_bytes
            .inc_by(stats.corrupt_bytes);
        metrics.recovery.wal_torn_bytes.inc_by(stats.torn_bytes);
        if stats.torn_tail {
            metrics.recovery.wal_torn_tails.inc();
        }
        metrics.recovery.quarantined_files.inc_by(stats.quarantined);
        if stats.corruptions > 0 {
            health.note(format!(
                "WAL: {} corrupt region(s), {} bytes skipped; the records after them were replayed",
                stats.corruptions, stats.corrupt_bytes
            ));
        }
        report.replay = stats.clone();
        let wal = Wal::open(
            &wal_dir,
            config.wal.segment_size.0,
            config.wal.fsync,
            segments,
        )
        .map_err(io_err("opening WAL", &wal_dir))?;
        let next = stats.last_seq + 1;
        let wal_size = wal.disk_size();
        let (flusher, flush_rx) = flusher::Handle::new();
        // Several write nodes (`cluster:`): membership for writers and
        // readers; a write node asks the other members for their
        // unflushed data when it answers a query.
        let cluster = (config.cluster.enabled() && config.target != Target::Backend)
            .then(|| {
                let token = config
                    .cluster
                    .token_file
                    .clone()
                    .or_else(|| config.read.write_node_token_file.clone());
                crate::cluster::Cluster::start(
                    &config.cluster,
                    &config.grpc_addr,
                    config.target.writes(),
                    token,
                    config.tls.enabled(),
                    metrics.cluster_members.clone(),
                )
            })
            .transpose()
            .map_err(io_err("starting cluster membership from", &data))?;
        let remote = match &cluster {
            Some(c) => Some(crate::objstore::remote::WriteNodes::from_cluster(
                c.clone(),
                &config.read,
            )),
            None => (config.target == Target::Read && !config.read.write_nodes.is_empty())
                .then(|| {
                    crate::objstore::remote::WriteNodes::new(&config.read, config.tls.enabled())
                })
                .transpose()
                .map_err(io_err("connecting to read.write_nodes from", &data))?,
        };
        let ing = Arc::new(Ingester {
            config: config.clone(),
            metrics,
            tenants,
            allowed: config.tenant_allow_list.iter().cloned().collect(),
            stop_at: Mutex::new(None),
            index_dir,
            wal: Mutex::new(wal),
            next_seq: AtomicU64::new(next),
            applied_seq: AtomicU64::new(stats.last_seq),
            wal_failed: AtomicBool::new(false),
            writer_tx: Mutex::new(None),
            flusher,
            threads: Mutex::new(Vec::new()),
            read_cache: read::ChunkCache::new(4096),
            tail: tail::Tail::new(),
            graveyard: compact::Graveyard::default(),
            handles,
            health,
            replay_floor: AtomicU64::new(unapplied.unwrap_or(u64::MAX)),
            bucket,
            writer_id,
            publish_floor: AtomicU64::new(publish_floor),
            wal_size: AtomicU64::new(wal_size),
            started_at_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            view_listed_at: AtomicI64::new(i64::MIN),
            terms: Default::default(),
            remote,
            cluster,
            backoff: Mutex::new(flusher::Backoff::default()),
            sealed_streams: Mutex::new(Vec::new()),
            deletes,
            deletes_stop: Mutex::new(None),
        });
        ing.refresh_gauges();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        *ing.writer_tx.lock() = Some(tx);
        let w = ing.clone();
        let writer = std::thread::Builder::new()
            .name("larch-wal-writer".into())
            .spawn(move || writer::run(w, rx))
            .map_err(io_err("starting writer thread", &data))?;
        let f = ing.clone();
        let target = ing.config.target;
        let flush = std::thread::Builder::new()
            .name("larch-flusher".into())
            .spawn(move || match target {
                Target::All | Target::Write => flusher::run(f, flush_rx),
                Target::Read => crate::objstore::view::run(f, flush_rx),
                Target::Backend => crate::objstore::compactor::run(f, flush_rx),
            })
            .map_err(io_err("starting flusher thread", &data))?;
        ing.threads.lock().extend([writer, flush]);
        if target == Target::Write {
            // Read and backend nodes read them with their view of the
            // bucket, `all` mode sees its own.
            let (tx, rx) = std::sync::mpsc::channel();
            *ing.deletes_stop.lock() = Some(tx);
            let d = ing.clone();
            let refresher = std::thread::Builder::new()
                .name("larch-deletes".into())
                .spawn(move || crate::objstore::view::run_deletes(d, rx))
                .map_err(io_err("starting the delete requests' refresher", &data))?;
            ing.threads.lock().push(refresher);
        }
        if sealed_any {
            ing.flusher.wake();
        }
        let r = &report.recovery;
        tracing::info!(
            records = report.replay.records,
            replayed_entries = report.replayed_entries,
            skipped_entries = report.skipped_entries,
            corruptions = report.replay.corruptions,
            adopted_chunks = r.adopted,
            quarantined_files = r.quarantined,
            damaged_index_logs = r.damaged_logs,
            damaged_chunks = r.damaged_chunks + r.missing,
            "WAL replayed."
        );
        Ok((ing, report))
    }

    /// Whether `id` may push now: it is in `tenant_allow_list` (when
    /// set), and it exists or one more tenant fits under `max_tenants`.
    /// Cheap and creates nothing, so the push path asks before doing any
    /// work for a push; [`Ingester::tenant`] checks again when it creates
    /// the tenant. Refusals are counted in
    /// `larch_ingester_refused_tenant_pushes_total`.
    pub fn admit(&self, id: &TenantId) -> Result<(), TenantRefused> {
        let tenants = self.tenants.read();
        self.admit_locked(id, tenants.contains_key(id), tenants.len())
    }

    fn admit_locked(&self, id: &TenantId, exists: bool, count: usize) -> Result<(), TenantRefused> {
        let refused = if !self.allowed.is_empty() && !self.allowed.contains(id.as_str()) {
            TenantRefused::NotAllowed(id.clone())
        } else if exists || self.config.max_tenants == 0 || count < self.config.max_tenants {
            return Ok(());
        } else {
            TenantRefused::TooMany {
                tenant: id.clone(),
                max: self.config.max_tenants,
            }
        };
        self.metrics
            .refused_tenant_pushes
            .get_or_create(&vec![("reason", refused.reason().to_string())])
            .inc();
        Err(refused)
    }

    /// The tenant `id` for a push, created if new and admitted (its index
    /// file is created when its first chunk is flushed) ([`Ingester::admit`]). Only pushes create tenants:
    /// reads use [`Ingester::existing_tenant`], and WAL replay restores
    /// every tenant it finds whatever the limits say now.
    pub fn tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, WriteError> {
        if let Some(t) = self.tenants.read().get(id) {
            self.admit_locked(id, true, 0)?;
            return Ok(t.clone());
        }
        let mut w = self.tenants.write();
        if let Some(t) = w.get(id) {
            self.admit_locked(id, true, 0)?;
            return Ok(t.clone());
        }
        self.admit_locked(id, false, w.len())?;
        let t = Arc::new(Tenant::new(
            id.clone(),
            &self.index_dir,
            self.handles.clone(),
        ));
        w.insert(id.clone(), t.clone());
        self.metrics.tenants.set(w.len() as i64);
        Ok(t)
    }

    /// The tenant `id`, created if new without the limits pushes meet (a
    /// read node's view of the bucket).
    pub(crate) fn tenant_for_view(&self, id: &TenantId) -> Arc<Tenant> {
        if let Some(t) = self.tenants.read().get(id) {
            return t.clone();
        }
        let mut w = self.tenants.write();
        w.entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Tenant::new(
                    id.clone(),
                    &self.index_dir,
                    self.handles.clone(),
                ))
            })
            .clone()
    }

    /// The tenant `id` if it has ever written anything.
    pub fn existing_tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        self.tenants.read().get(id).cloned()
    }

    /// Every tenant.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        self.tenants.read().values().cloned().collect()
    }

    /// Makes a validated push durable and applies it. Resolves once the
    /// WAL holds it (the acknowledgement point) or it failed.
    pub async fn push(
        &self,
        tenant: &TenantId,
        validated: Validated,
    ) -> Result<WriteOutcome, WriteError> {
        if validated.streams.is_empty() {
            return Ok(WriteOutcome::default());
        }
        if !self.config.target.writes() {
            return Err(WriteError::WalFailed(format!(
                "this store runs with target {}, which takes no pushes; push to a write node",
                self.config.target.as_str()
            )));
        }
        let max = self.config.wal.max_size.0;
        let held = self.wal_size.load(Ordering::Acquire);
        if max > 0 && held >= max {
            return Err(WriteError::WalFailed(format!(
                "the write-ahead log holds {held} bytes, at its bound wal.max_size ({max} bytes), because flushes are failing (see /metrics and the logs); retry later"
            )));
        }
        if self.wal_failed.load(Ordering::Acquire) {
            return Err(WriteError::WalFailed(
                "the write-ahead log failed earlier; restart the store".into(),
            ));
        }
        let t = self.tenant(tenant)?;
        if let Some(why) = t.log_failure() {
            return Err(WriteError::WalFailed(format!(
                "the index log of tenant {tenant} cannot be written ({why}); its data stays in memory and in the write-ahead log until the store restarts"
            )));
        }
        let frame = wal::record::encode_push_into(
            writer::FRAMES.take(),
            tenant.as_str(),
            validated.source.as_ref(),
            validated
                .streams
                .iter()
                .map(|s| (&*s.labels, s.entries.as_slice())),
        );
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = writer::WriteRequest {
            tenant: t,
            streams: validated.streams,
            source: validated.source,
            frame,
            reply,
        };
        let tx = self
            .writer_tx
            .lock()
            .clone()
            .ok_or(WriteError::ShuttingDown)?;
        tx.send(req).await.map_err(|_| WriteError::ShuttingDown)?;
        rx.await.map_err(|_| WriteError::ShuttingDown)?
    }

    /// Seals every open chunk and writes everything to disk, then trims the
    /// WAL. Used by tests and benches.
    pub fn flush_all(&self) {
        self.flusher.flush_all_and_wait();
    }

    /// A leaving member's flush while its servers still answer: seals and
    /// writes every open chunk and publishes it, as [`Ingester::flush_all`],
    /// but writes nothing more once `deadline` (the shutdown's) is past.
    /// The shutdown that follows ([`Ingester::shutdown_until`]) keeps the
    /// same deadline.
    pub fn flush_until(&self, deadline: Instant) {
        *self.stop_at.lock() = Some(deadline);
        self.flush_all();
    }

    /// Stops accepting pushes, drains the writer, flushes every chunk and
    /// stops the threads, however long that takes. For tests and embedders
    /// that want everything in chunk files; the binary uses
    /// [`Ingester::shutdown_until`].
    pub fn shutdown(&self) -> ShutdownReport {
        self.stop(true, None)
    }

    /// Stops within a bounded time: stops accepting pushes, lets the WAL
    /// writer finish and sync the pushes already queued, then, with
    /// `ingester.flush_on_shutdown`, seals and writes open chunks until
    /// `deadline`; without it, the flusher stops after the chunk it is
    /// writing. Whatever is not in a chunk file stays in the WAL, which the
    /// next start replays, so nothing acknowledged is lost either way. The
    /// time taken past `deadline` is at most one chunk write and the WAL
    /// writer's last group.
    /// A member of several write nodes (`cluster:`) always flushes, as
    /// it hands its streams over to the others.
    pub fn shutdown_until(&self, deadline: Instant) -> ShutdownReport {
        let handing_over = self.cluster.is_some() && self.config.target.writes();
        self.stop(
            self.config.ingester.flush_on_shutdown || handing_over,
            Some(deadline),
        )
    }

    fn stop(&self, flush: bool, deadline: Option<Instant>) -> ShutdownReport {
        self.writer_tx.lock().take();
        let mut threads: Vec<_> = self.threads.lock().drain(..).collect();
        // The writer (first) ends once every sender is gone and its last
        // group is synced; only then is everything applied and flushable.
        if !threads.is_empty() {
            let _ = threads.remove(0).join();
        }
        let stop_at = match (flush, deadline) {
            (_, None) => None,
            (true, Some(d)) => Some(d),
            (false, Some(_)) => Some(Instant::now()),
        };
        *self.stop_at.lock() = stop_at;
        if flush {
            self.flush_all();
        }
        self.flusher.stop();
        self.deletes_stop.lock().take();
        for t in threads {
            let _ = t.join();
        }
        let mut report = ShutdownReport {
            out_of_time: flush && self.out_of_time(),
            ..ShutdownReport::default()
        };
        for t in self.tenants() {
            for s in t.all() {
                if s.state.lock().min_unflushed_seq().is_some() {
                    report.streams_in_wal += 1;
                }
            }
        }
        report
    }

    /// Whether a shutdown's deadline has passed: the flusher and
    /// compaction write nothing more.
    pub(crate) fn out_of_time(&self) -> bool {
        self.stop_at.lock().is_some_and(|t| Instant::now() >= t)
    }

    /// New entries of every tenant as they are acknowledged, for live
    /// tailing. Receivers that fall behind lose the oldest events (and are
    /// told how many); nothing is buffered when nobody listens.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<tail::TailEvent>> {
        self.tail.subscribe()
    }

    /// Whether pushes can be accepted.
    pub fn is_healthy(&self) -> bool {
        !self.wal_failed.load(Ordering::Acquire)
    }

    /// What is wrong on disk (damage found and recovered from, tenants
    /// whose index cannot be written), one line each, for `/ready`.
    pub fn health_notes(&self) -> Vec<String> {
        let (mut notes, more) = self.health.notes();
        if more > 0 {
            notes.push(format!("... and {more} more (see the logs)"));
        }
        for t in self.tenants() {
            if let Some(why) = t.log_failure() {
                notes.push(format!(
                    "tenant {}: index log cannot be written ({why}); its pushes are refused",
                    t.id
                ));
            }
        }
        notes
    }

    /// Stops the writer and flusher threads without flushing: what a crash
    /// leaves on disk (sealed chunks the flusher is writing are finished).
    /// For tests and tools; a running store stops with
    /// [`Ingester::shutdown`].
    #[doc(hidden)]
    pub fn halt(&self) {
        self.writer_tx.lock().take();
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        self.flusher.stop();
        self.deletes_stop.lock().take();
        for t in threads {
            let _ = t.join();
        }
    }

    pub(crate) fn refresh_gauges(&self) {
        let mut tenants = self.tenants();
        self.metrics.tenants.set(tenants.len() as i64);
        // In name order, so that after a restart the same tenants get
        // their own label value; tenants without one are summed.
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut active: HashMap<String, i64> = HashMap::new();
        for t in tenants {
            *active
                .entry(self.metrics.tenant_labels.value(t.id.as_str()))
                .or_default() += t.active_count() as i64;
        }
        for (tenant, n) in active {
            self.metrics
                .active_streams
                .get_or_create(&vec![("tenant", tenant)])
                .set(n);
        }
        self.metrics
            .wal_segments
            .set(self.wal.lock().segment_count() as i64);
        self.metrics
            .recovery
            .index_open_files
            .set(self.handles.open_count() as i64);
    }

    /// The key of a chunk in the bucket.
    pub(crate) fn chunk_key(&self, tenant: &TenantId, fp: u64, id: &str) -> String {
        crate::objstore::layout::chunk_key(tenant, fp, id)
    }

    /// Where a chunk is for reports: its file, or its key in a remote
    /// bucket.
    pub(crate) fn chunk_location(&self, tenant: &TenantId, fp: u64, id: &str) -> PathBuf {
        let key = self.chunk_key(tenant, fp, id);
        self.bucket
            .local_path(&key)
            .unwrap_or_else(|| PathBuf::from(key))
    }

    /// Notes the WAL's size on disk (after appends and trims).
    pub(crate) fn note_wal_size(&self, bytes: u64) {
        self.wal_size.store(bytes, Ordering::Release);
    }

    /// Lets the WAL be trimmed past journal records once they are
    /// published.
    pub(crate) fn set_publish_floor(&self, floor: u64) {
        self.publish_floor.store(floor, Ordering::Release);
    }

    /// See [`Ingester::set_publish_floor`].
    pub(crate) fn publish_floor(&self) -> u64 {
        self.publish_floor.load(Ordering::Acquire)
    }
}

/// This process's writer identity: a random name made once and kept in
/// `data_dir/writer-id`, so that the objects of two write nodes never
/// share a name.
fn writer_id(data: &Path) -> std::io::Result<String> {
    let path = data.join("writer-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if crate::index::valid_chunk_id(s.trim()) && s.trim().len() <= 20 => {
            return Ok(s.trim().to_string());
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "The writer id file is damaged; making a new id.");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let seed = format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        data
    );
    let id = format!(
        "w{:012x}",
        xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) >> 16
    );
    flusher::write_durably(&path, |f| std::io::Write::write_all(f, id.as_bytes()))?;
    Ok(id)
}

/// The configuration of a write node's query side, when it has one: a
/// write node with `cluster:` answers its query API the way a read node
/// does (a view of the bucket, plus every member's unflushed data and
/// journals over gRPC, itself included), so that lines of members that
/// left and chunks the compactor merged (their originals deleted) are in
/// its answers too. The query side is a `read` ingester in
/// `<data_dir>/query` (its disk cache in `<storage.cache.dir>/query` when
/// that is set); its own ingester keeps taking pushes and answering the
/// members' gRPC queries. `storage.cache.max_size` is split evenly
/// between the two caches (`config`'s is halved), so the node's disk use
/// stays within it. `None` (and `config` unchanged) for every other node.
pub fn query_side(config: &mut Config) -> Option<Config> {
    if config.target != Target::Write || !config.cluster.enabled() {
        return None;
    }
    let half = config.storage.cache.max_size.0 / 2;
    let mut c = config.clone();
    c.target = Target::Read;
    c.data_dir = config.data_dir.join("query");
    if !c.storage.cache.dir.as_os_str().is_empty() {
        c.storage.cache.dir = c.storage.cache.dir.join("query");
    }
    c.storage.cache.max_size.0 = config.storage.cache.max_size.0 - half;
    c.ruler.enabled = false;
    config.storage.cache.max_size.0 = half;
    Some(c)
}

/// Cutting sizes from the configuration.
pub fn cut_policy(config: &Config) -> CutPolicy {
    CutPolicy {
        block_size: config.ingester.block_size.0 as usize,
        chunk_target_size: config.ingester.chunk_target_size.0,
        encoding: config.ingester.encoding(),
    }
}

/// Helper for code that holds a stream's state.
pub(crate) fn note_activation(tenant: &Tenant, was_active: bool, st: &StreamState) {
    match (was_active, st.is_active()) {
        (false, true) => {
            tenant.active.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) => {
            tenant.active.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_write_node_with_a_cluster_gets_a_query_side_and_the_cache_is_shared() {
        let mut c = Config {
            data_dir: PathBuf::from("/data"),
            ..Config::default()
        };
        c.storage.cache.max_size.0 = 1001;
        for target in [Target::All, Target::Write, Target::Read, Target::Backend] {
            c.target = target;
            let mut mine = c.clone();
            assert!(
                query_side(&mut mine).is_none(),
                "{target:?} without cluster:"
            );
            assert_eq!(mine, c);
        }
        c.cluster.members = vec!["a:9095".into(), "b:9095".into()];
        for target in [Target::All, Target::Read, Target::Backend] {
            c.target = target;
            let mut mine = c.clone();
            assert!(query_side(&mut mine).is_none(), "{target:?}");
            assert_eq!(mine, c);
        }
        c.target = Target::Write;
        c.ruler.enabled = true;
        let mut mine = c.clone();
        let q = query_side(&mut mine).unwrap();
        assert_eq!(q.target, Target::Read);
        assert_eq!(q.data_dir, PathBuf::from("/data/query"));
        assert!(q.storage.cache.dir.as_os_str().is_empty());
        assert!(!q.ruler.enabled);
        assert_eq!(q.cluster, c.cluster);
        assert_eq!(
            (mine.storage.cache.max_size.0, q.storage.cache.max_size.0),
            (500, 501)
        );
        assert_eq!(mine.target, Target::Write);
        c.storage.cache.dir = PathBuf::from("/cache");
        let q = query_side(&mut c.clone()).unwrap();
        assert_eq!(q.storage.cache.dir, PathBuf::from("/cache/query"));
    }
}
