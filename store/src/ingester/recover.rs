//! Recovery at startup: each tenant's index reconciled with its chunk
//! files, damaged chunks found where the WAL can still replace them, and
//! the index rebuilt from the chunk files alone when asked to
//! (`larch-store --rebuild-index`).
//!
//! The chunk files are the ground truth about what is flushed: every
//! version 2 chunk says which stream it belongs to, which WAL records it
//! holds and which chunks it replaced (a compaction's inputs). The index
//! log is a fast summary of them. So at startup, before the WAL is
//! replayed, every tenant's chunk directory is listed and compared with
//! its index:
//!
//! * a `.tmp` file (a chunk write cut short by a crash) is moved to the
//!   quarantine folder: the flusher names only renamed files, so nothing
//!   ever pointed at it and its entries are still in the WAL, but the
//!   store does not delete a file on that reasoning alone;
//! * a chunk the index names stays (if it is in the WAL's range, its
//!   checksums are verified, see below);
//! * a chunk a delete record retired is deleted when the log read clean
//!   (the delete is durable and trustworthy: that is what the deferred
//!   deletion would have done);
//! * any other chunk file (the index lost its record to damage, or a crash
//!   came between writing the file and recording it) is read and
//!   *adopted*: recorded in the index again from its own header and block
//!   index, so that its entries are served and the WAL does not replay
//!   them twice. It is moved to the quarantine folder instead when its
//!   entries are known to be elsewhere (a live chunk's header says it
//!   replaced it; or it is a compaction output whose inputs are all still
//!   indexed), when it cannot be read, or when it belongs to no stream.
//!   A delete record from a damaged log is believed only when it is
//!   corroborated (the chunk was replaced, or it has expired).
//!
//! Then every indexed chunk the WAL may still cover (its `max_seq` at or
//! above the WAL's oldest record) is verified, finding its blocks as the
//! reader does (`chunk::check`). When one is missing, has damaged blocks or
//! a damaged index, or serves fewer entries than its record names, its
//! sequence range (after the previous chunk of its
//! stream, up to its own `max_seq`) becomes a *hole*: replay re-applies the
//! stream's WAL entries in that range instead of skipping them as flushed,
//! and they are flushed again. The damaged chunk stays in the index (its
//! intact blocks are still served; the read path merges overlapping blocks
//! and drops identical entries, so nothing is returned twice).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use larch_query::LabelSet;
use parking_lot::Mutex;

use super::tenant::{Loaded, Tenant};
use crate::chunk::{ChunkCheck, ChunkHeader, ChunkIndex, check, max_seq_from_id};
use crate::config::Config;
use crate::index::{ChunkRef, IndexRecord, valid_chunk_id};
use crate::metrics::{Metrics, kind_label};
use crate::quarantine::Quarantine;

/// Most notes kept for `/ready`.
const MAX_NOTES: usize = 32;

/// What the store found wrong on disk, for `/ready` and logs: a bounded
/// list of one-line notes, and the chunk files known to be damaged.
#[derive(Default)]
pub struct Health {
    notes: Mutex<(Vec<String>, u64)>,
    damaged: Mutex<HashSet<PathBuf>>,
}

impl Health {
    /// Records a note (the first 32 are kept; later ones are
    /// counted).
    pub fn note(&self, msg: String) {
        let mut n = self.notes.lock();
        if n.0.len() < MAX_NOTES {
            n.0.push(msg);
        } else {
            n.1 += 1;
        }
    }

    /// The notes kept, and how many more were recorded.
    pub fn notes(&self) -> (Vec<String>, u64) {
        self.notes.lock().clone()
    }

    /// Marks a chunk file as damaged; true the first time.
    pub fn mark_damaged(&self, path: &Path) -> bool {
        self.damaged.lock().insert(path.to_path_buf())
    }

    /// Whether a chunk file is known to be damaged.
    pub fn is_damaged(&self, path: &Path) -> bool {
        self.damaged.lock().contains(path)
    }
}

/// What recovery did, summed over tenants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Index logs that were damaged (records recovered around the damage,
    /// or rebuilt from the chunk files).
    pub damaged_logs: u64,
    /// Index logs that ended in a torn record.
    pub torn_logs: u64,
    /// Chunk files added back to the index from their own headers.
    pub adopted: u64,
    /// Files moved to the quarantine folder.
    pub quarantined: u64,
    /// Chunk files deleted because a durable delete record retired them.
    pub deleted_retired: u64,
    /// Temporary files (chunk writes cut short) moved to the quarantine
    /// folder; also counted in `quarantined`.
    pub temp_quarantined: u64,
    /// Indexed chunk files that are missing.
    pub missing: u64,
    /// Indexed chunk files found damaged.
    pub damaged_chunks: u64,
    /// Sequence ranges handed back to WAL replay.
    pub holes: u64,
}

impl RecoveryReport {
    pub(crate) fn add(&mut self, o: &RecoveryReport) {
        self.damaged_logs += o.damaged_logs;
        self.torn_logs += o.torn_logs;
        self.adopted += o.adopted;
        self.quarantined += o.quarantined;
        self.deleted_retired += o.deleted_retired;
        self.temp_quarantined += o.temp_quarantined;
        self.missing += o.missing;
        self.damaged_chunks += o.damaged_chunks;
        self.holes += o.holes;
    }
}

/// Sequence ranges `(after, upto]` per stream whose WAL entries replay
/// must apply even though a chunk claims them.
pub type Holes = HashMap<u64, Vec<(u64, u64)>>;

/// Whether `seq` lies in one of `holes`.
pub fn in_hole(holes: Option<&Vec<(u64, u64)>>, seq: u64) -> bool {
    holes.is_some_and(|h| h.iter().any(|&(a, b)| seq > a && seq <= b))
}

/// What recovery needs from the store.
pub struct Ctx<'a> {
    /// `<data>/chunks`.
    pub chunks_dir: &'a Path,
    /// The quarantine folder.
    pub quarantine: &'a Quarantine,
    /// Metrics.
    pub metrics: &'a Metrics,
    /// Where notes go.
    pub health: &'a Health,
    /// Retention settings.
    pub config: &'a Config,
    /// Sequence number of the oldest WAL record, if any.
    pub wal_floor: Option<u64>,
}

impl Ctx<'_> {
    fn chunk_path(&self, tenant: &str, fp: u64, id: &str) -> PathBuf {
        self.chunks_dir
            .join(tenant)
            .join(format!("{fp:016x}"))
            .join(format!("{id}.chunk"))
    }

    fn quarantine_chunk(
        &self,
        tenant: &str,
        fp: u64,
        name: &str,
        why: &str,
        r: &mut RecoveryReport,
    ) {
        let path = self
            .chunks_dir
            .join(tenant)
            .join(format!("{fp:016x}"))
            .join(name);
        let rel = Path::new("chunks")
            .join(tenant)
            .join(format!("{fp:016x}"))
            .join(name);
        match self.quarantine.move_file(&path, &rel) {
            Ok(to) => {
                tracing::warn!(tenant, path = %path.display(), moved_to = %to.display(), reason = why, "Moved a chunk file to the quarantine folder.");
                self.health.note(format!(
                    "tenant {tenant}: chunk file {name} of stream {fp:016x} quarantined ({why})"
                ));
                self.metrics.recovery.quarantined_files.inc();
                r.quarantined += 1;
            }
            Err(e) => {
                tracing::error!(tenant, path = %path.display(), error = %e, "Cannot move a chunk file to the quarantine folder; leaving it in place.");
            }
        }
    }

    fn report_chunk(&self, tenant: &str, path: &Path, c: &ChunkCheck) {
        let kind = if c.version == 0 {
            "unreadable"
        } else if c.bad_blocks > 0 {
            "block"
        } else if c.index_damaged {
            "index"
        } else {
            "header"
        };
        if self.health.mark_damaged(path) {
            self.metrics
                .recovery
                .chunk_corruptions
                .get_or_create(&kind_label(kind))
                .inc();
            tracing::error!(tenant, path = %path.display(), damaged_blocks = c.bad_blocks, intact_blocks = c.good.len(), index_damaged = c.index_damaged, "A chunk file is damaged; its intact blocks are still served.");
            self.health.note(format!(
                "tenant {tenant}: chunk {} is damaged ({} of {} blocks unreadable{})",
                path.display(),
                c.bad_blocks,
                c.bad_blocks + c.good.len(),
                if c.index_damaged {
                    ", index damaged"
                } else {
                    ""
                }
            ));
        }
    }
}

/// Notes and counts the damage found in a tenant's index log.
pub fn report_log(ctx: &Ctx<'_>, tenant: &Tenant, loaded: &Loaded, r: &mut RecoveryReport) {
    let d = &loaded.damage;
    let id = tenant.id.as_str();
    if d.saved_to.is_some() {
        ctx.metrics.recovery.quarantined_files.inc();
    }
    let kind = if loaded.unreadable {
        Some("unreadable")
    } else if d.bad_header {
        Some("header")
    } else if d.corrupt_regions > 0 {
        Some("record")
    } else {
        None
    };
    if let Some(kind) = kind {
        r.damaged_logs += 1;
        ctx.metrics
            .recovery
            .index_corruptions
            .get_or_create(&kind_label(kind))
            .inc();
        let saved = d
            .saved_to
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        tracing::error!(tenant = id, regions = d.corrupt_regions, bytes = d.corrupt_bytes, saved_to = %saved, "The index log is corrupt; every valid record was kept and the log rewritten, the damaged original saved; what the lost records named is recovered from the chunk files.");
        ctx.health.note(format!(
            "tenant {id}: index log damaged ({kind}; {} bad region(s), {} bytes); original saved as {saved}",
            d.corrupt_regions, d.corrupt_bytes
        ));
    }
    if d.torn_bytes > 0 && !d.is_corrupt() {
        r.torn_logs += 1;
        ctx.metrics.recovery.index_torn_tails.inc();
        tracing::warn!(
            tenant = id,
            bytes = d.torn_bytes,
            "The index log ended in a partly written record (a crash during an append); it was cut off and saved in the quarantine folder."
        );
    }
}

/// Retention cutoff of `tenant` (entries older are expired), if any.
fn cutoff(config: &Config, tenant: &str) -> Option<i64> {
    let period = config.limits_for(tenant).retention_period;
    if period.is_zero() {
        return None;
    }
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    Some(now.saturating_sub(period.as_nanos_i64()))
}

/// Files in a tenant's chunk directory: stream fingerprint -> chunk ids.
fn list_chunks(
    ctx: &Ctx<'_>,
    tenant: &str,
    r: &mut RecoveryReport,
) -> std::io::Result<Vec<(u64, Vec<String>)>> {
    let dir = ctx.chunks_dir.join(tenant);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for sd in rd {
        let sd = sd?;
        let name = sd.file_name().to_string_lossy().into_owned();
        let Some(fp) = (name.len() == 16)
            .then(|| u64::from_str_radix(&name, 16).ok())
            .flatten()
        else {
            tracing::warn!(tenant, path = %sd.path().display(), "Ignoring an entry of a chunk directory that is not a stream's directory.");
            continue;
        };
        if !sd.file_type()?.is_dir() {
            continue;
        }
        let mut ids = Vec::new();
        for f in std::fs::read_dir(sd.path())? {
            let f = f?;
            let fname = f.file_name().to_string_lossy().into_owned();
            if fname.ends_with(".tmp") {
                // Only renamed files are ever named by the index, and a
                // chunk's entries stay in the WAL until its record is
                // durable, so a temporary file should hold nothing unique;
                // it is kept aside all the same, never deleted.
                let before = r.quarantined;
                ctx.quarantine_chunk(
                    tenant,
                    fp,
                    &fname,
                    "a temporary file of a chunk write cut short",
                    r,
                );
                r.temp_quarantined += r.quarantined - before;
            } else if let Some(id) = fname.strip_suffix(".chunk") {
                if valid_chunk_id(id) {
                    ids.push(id.to_string());
                } else {
                    ctx.quarantine_chunk(tenant, fp, &fname, "not a chunk name", r);
                }
            }
        }
        ids.sort();
        out.push((fp, ids));
    }
    out.sort_by_key(|(fp, _)| *fp);
    Ok(out)
}

/// An unnamed chunk file, read.
struct Candidate {
    id: String,
    check: ChunkCheck,
    size: u64,
}

/// The chunk reference of a chunk file, from its intact blocks.
fn chunk_ref(id: &str, c: &ChunkCheck, size: u64) -> ChunkRef {
    let max_seq = match &c.header {
        Some(h) if c.version >= 2 => h.max_seq,
        _ => max_seq_from_id(id).unwrap_or(0),
    };
    ChunkRef {
        id: id.to_string(),
        mint: c.good.iter().map(|b| b.mint).min().unwrap_or(0),
        maxt: c.good.iter().map(|b| b.maxt).max().unwrap_or(0),
        entries: c.good.iter().map(|b| u64::from(b.entries)).sum(),
        bytes: size,
        max_seq,
        raw_bytes: c.good.iter().map(|b| b.lines_size).sum(),
    }
}

/// The labels a chunk header names, if they parse and match `fp`.
fn header_labels(h: &ChunkHeader, fp: u64) -> Option<LabelSet> {
    let pairs = larch_query::parse_labels(&h.labels).ok()?;
    let labels = LabelSet::from_unique_pairs(pairs).ok()?;
    (labels.fingerprint() == fp && h.fingerprint == fp).then_some(labels)
}

/// Reconciles a tenant's index with its chunk files (see the module docs)
/// and finds the holes WAL replay must fill.
pub fn reconcile(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    loaded: &Loaded,
) -> std::io::Result<(RecoveryReport, Holes)> {
    reconcile_with(ctx, tenant, loaded, true)
}

/// [`reconcile`]; adoptions are appended to the index log when `persist`
/// (a rebuild writes the whole log itself).
fn reconcile_with(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    loaded: &Loaded,
    persist: bool,
) -> std::io::Result<(RecoveryReport, Holes)> {
    let mut r = RecoveryReport::default();
    report_log(ctx, tenant, loaded, &mut r);
    let tid = tenant.id.as_str();
    let trust = loaded.is_trustworthy();
    let cut = cutoff(ctx.config, tid);
    let on_disk = list_chunks(ctx, tid, &mut r)?;
    let mut appends: Vec<IndexRecord> = Vec::new();
    let mut newly_logged: Vec<u64> = Vec::new();
    let mut retire_after: Vec<(u64, String)> = Vec::new();
    let mut checked: HashMap<(u64, String), ChunkCheck> = HashMap::new();
    for (fp, ids) in &on_disk {
        let fp = *fp;
        let live: HashSet<String> = tenant
            .get(fp)
            .map(|s| s.state.lock().chunks.iter().map(|c| c.id.clone()).collect())
            .unwrap_or_default();
        // Live chunks whose files exist: only they hold their entries.
        let live_present: HashSet<String> = ids
            .iter()
            .filter(|id| live.contains(*id))
            .cloned()
            .collect();
        let mut unnamed = Vec::new();
        for id in ids.iter().filter(|id| !live.contains(*id)) {
            if trust && loaded.retired.contains(&(fp, id.clone())) {
                let path = ctx.chunk_path(tid, fp, id);
                match std::fs::remove_file(&path) {
                    Ok(()) => r.deleted_retired += 1,
                    Err(e) => {
                        tracing::warn!(tenant = tid, path = %path.display(), error = %e, "Cannot delete a retired chunk file; trying again at the next start.");
                    }
                }
            } else {
                unnamed.push(id.clone());
            }
        }
        if unnamed.is_empty() {
            continue;
        }
        // What the live chunks of this stream replaced: input -> output.
        let mut replaced: HashMap<String, String> = HashMap::new();
        for id in &live_present {
            if let Ok(idx) = ChunkIndex::read(&ctx.chunk_path(tid, fp, id))
                && let Some(h) = idx.header
            {
                replaced.extend(h.replaces.into_iter().map(|x| (x, id.clone())));
            }
        }
        // Whether a present chunk file is whole: only a whole chunk may
        // stand in for the chunks it replaced (or that replaced it).
        let mut whole_cache: HashMap<String, bool> = HashMap::new();
        let mut whole = |id: &str| -> bool {
            *whole_cache.entry(id.to_string()).or_insert_with(|| {
                std::fs::read(ctx.chunk_path(tid, fp, id))
                    .map(|b| {
                        let c = check(&b);
                        c.bad_blocks == 0 && !c.index_damaged && c.version != 0
                    })
                    .unwrap_or(false)
            })
        };
        let mut cands = Vec::new();
        for id in unnamed {
            let path = ctx.chunk_path(tid, fp, &id);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(tenant = tid, path = %path.display(), error = %e, "Cannot read a chunk file no index record names; leaving it in place.");
                    continue;
                }
            };
            cands.push(Candidate {
                id,
                check: check(&bytes),
                size: bytes.len() as u64,
            });
        }
        // What unnamed, whole chunks replaced.
        let cand_replaced: HashSet<String> = cands
            .iter()
            .filter(|c| {
                c.check.bad_blocks == 0 && !c.check.index_damaged && !c.check.good.is_empty()
            })
            .filter_map(|c| c.check.header.as_ref())
            .filter(|h| h.fingerprint == fp)
            .flat_map(|h| h.replaces.iter().cloned())
            .collect();
        for c in cands {
            let name = format!("{}.chunk", c.id);
            let header = c.check.header.clone();
            let retired = loaded.retired.contains(&(fp, c.id.clone()));
            let stream = tenant.get(fp);
            let labels = header
                .as_ref()
                .and_then(|h| header_labels(h, fp))
                .or_else(|| stream.as_ref().map(|s| s.labels.to_set()));
            let why = if c.check.version == 0 {
                Some("not a chunk file of a known version")
            } else if header.as_ref().is_some_and(|h| h.fingerprint != fp) {
                Some("it belongs to another stream")
            } else if labels.is_none() {
                Some("its header is damaged and no index record names its stream")
            } else if replaced.get(&c.id).is_some_and(|out| whole(out))
                || cand_replaced.contains(&c.id)
            {
                Some("a compaction replaced it")
            } else if header.as_ref().is_some_and(|h| {
                !h.replaces.is_empty()
                    && h.replaces
                        .iter()
                        .all(|x| live_present.contains(x) && whole(x))
            }) {
                Some("a compaction output never recorded; its inputs are indexed")
            } else if retired && cut.is_some_and(|t| c.check.good.iter().all(|b| b.maxt < t)) {
                Some("retired by retention")
            } else if c.check.good.is_empty() {
                Some("no readable block")
            } else {
                None
            };
            if let Some(why) = why {
                ctx.quarantine_chunk(tid, fp, &name, why, &mut r);
                continue;
            }
            let Some(labels) = labels else { continue };
            let chunk = chunk_ref(&c.id, &c.check, c.size);
            let s = tenant.get_or_create(fp, &labels);
            {
                let mut st = s.state.lock();
                if !st.logged && !newly_logged.contains(&fp) {
                    appends.push(IndexRecord::Stream { fp, labels });
                    newly_logged.push(fp);
                }
                st.flushed_max_seq = st.flushed_max_seq.max(chunk.max_seq);
                st.add_chunk(chunk.clone());
                if let Some(h) = &header {
                    for x in h.replaces.iter().filter(|x| live.contains(*x)) {
                        st.chunks.retain(|k| &k.id != x);
                        appends.push(IndexRecord::Delete { fp, id: x.clone() });
                        if live_present.contains(x) {
                            retire_after.push((fp, x.clone()));
                        }
                    }
                }
            }
            appends.push(IndexRecord::Chunk { fp, chunk });
            let path = ctx.chunk_path(tid, fp, &c.id);
            if !c.check.is_intact() {
                ctx.report_chunk(tid, &path, &c.check);
            }
            tracing::warn!(tenant = tid, path = %path.display(), retired_by_untrusted_record = retired, "Adopted a chunk file no index record named.");
            ctx.metrics.recovery.chunks_adopted.inc();
            r.adopted += 1;
            checked.insert((fp, c.id.clone()), c.check);
        }
    }
    if r.adopted > 0 {
        ctx.health.note(format!(
            "tenant {tid}: {} chunk file(s) no index record named were adopted into the index",
            r.adopted
        ));
    }
    if !persist {
        for fp in newly_logged {
            if let Some(s) = tenant.get(fp) {
                s.state.lock().logged = true;
            }
        }
    } else if !appends.is_empty() {
        match tenant.append(&appends) {
            Ok(()) => {
                for fp in newly_logged {
                    if let Some(s) = tenant.get(fp) {
                        s.state.lock().logged = true;
                    }
                }
                for (fp, id) in retire_after {
                    ctx.quarantine_chunk(
                        tid,
                        fp,
                        &format!("{id}.chunk"),
                        "a compaction replaced it",
                        &mut r,
                    );
                }
            }
            Err(e) => {
                tracing::error!(tenant = tid, error = %e, "Cannot record adopted chunks in the index log; they are served, and adopted again at the next start.");
                ctx.health
                    .note(format!("tenant {tid}: cannot record adopted chunks: {e}"));
            }
        }
    }

    // Indexed chunks that are missing, and damaged chunks the WAL covers.
    let present: HashSet<(u64, &str)> = on_disk
        .iter()
        .flat_map(|(fp, ids)| ids.iter().map(move |id| (*fp, id.as_str())))
        .collect();
    let mut holes: Holes = HashMap::new();
    for s in tenant.all() {
        let mut chunks = s.state.lock().chunks.clone();
        if chunks
            .iter()
            .any(|c| !present.contains(&(s.fp, c.id.as_str())))
        {
            // A missing chunk a present one says it replaced was retired
            // by a compaction whose delete record was lost: record it.
            let mut replaced: HashSet<String> = HashSet::new();
            for c in chunks
                .iter()
                .filter(|c| present.contains(&(s.fp, c.id.as_str())))
            {
                if let Ok(idx) = ChunkIndex::read(&ctx.chunk_path(tid, s.fp, &c.id))
                    && let Some(h) = idx.header
                {
                    replaced.extend(h.replaces);
                }
            }
            let gone: Vec<IndexRecord> = chunks
                .iter()
                .filter(|c| !present.contains(&(s.fp, c.id.as_str())) && replaced.contains(&c.id))
                .map(|c| IndexRecord::Delete {
                    fp: s.fp,
                    id: c.id.clone(),
                })
                .collect();
            if !gone.is_empty() {
                let ids: HashSet<&str> = gone
                    .iter()
                    .filter_map(|r| match r {
                        IndexRecord::Delete { id, .. } => Some(id.as_str()),
                        _ => None,
                    })
                    .collect();
                s.state
                    .lock()
                    .chunks
                    .retain(|c| !ids.contains(c.id.as_str()));
                chunks.retain(|c| !ids.contains(c.id.as_str()));
                if persist && let Err(e) = tenant.append(&gone) {
                    tracing::error!(tenant = tid, error = %e, "Cannot record chunks a compaction replaced; they are recorded at the next start.");
                }
            }
        }
        for c in &chunks {
            let path = ctx.chunk_path(tid, s.fp, &c.id);
            let missing = !present.contains(&(s.fp, c.id.as_str()));
            let covered = ctx.wal_floor.is_some_and(|f| c.max_seq >= f);
            if missing {
                r.missing += 1;
                if ctx.health.mark_damaged(&path) {
                    ctx.metrics
                        .recovery
                        .chunk_corruptions
                        .get_or_create(&kind_label("missing"))
                        .inc();
                    tracing::error!(tenant = tid, path = %path.display(), entries = c.entries, in_wal = covered, "A chunk file the index names is missing.");
                    ctx.health.note(format!(
                        "tenant {tid}: chunk {} is missing ({} entries{})",
                        path.display(),
                        c.entries,
                        if covered {
                            "; replayed from the WAL"
                        } else {
                            ""
                        }
                    ));
                }
            }
            if !covered {
                continue;
            }
            let lost = if missing {
                true
            } else {
                let key = (s.fp, c.id.clone());
                let chk = match checked.remove(&key) {
                    Some(chk) => chk,
                    None => match std::fs::read(&path) {
                        Ok(b) => check(&b),
                        Err(e) => {
                            tracing::error!(tenant = tid, path = %path.display(), error = %e, "Cannot read a chunk file to verify it.");
                            ChunkCheck::default()
                        }
                    },
                };
                if !chk.is_intact() {
                    r.damaged_chunks += 1;
                    ctx.report_chunk(tid, &path, &chk);
                }
                // A record's entry count cannot tell alone: an adopted
                // chunk was recorded with its intact blocks' entries only
                // (now, or at an earlier start), and blocks lost with a
                // damaged index are not counted as bad.
                chk.bad_blocks > 0
                    || chk.index_damaged
                    || chk.good.iter().map(|b| u64::from(b.entries)).sum::<u64>() < c.entries
            };
            if lost {
                let after = chunks
                    .iter()
                    .map(|k| k.max_seq)
                    .filter(|&m| m < c.max_seq)
                    .max()
                    .unwrap_or(0);
                tracing::warn!(tenant = tid, path = %path.display(), after, upto = c.max_seq, "Entries of a damaged or missing chunk are replayed from the WAL.");
                holes.entry(s.fp).or_default().push((after, c.max_seq));
                r.holes += 1;
            }
        }
    }
    Ok((r, holes))
}

/// What [`rebuild_index`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildSummary {
    /// Tenants whose index was rebuilt.
    pub tenants: u64,
    /// Streams in the rebuilt indexes.
    pub streams: u64,
    /// Chunks in the rebuilt indexes.
    pub chunks: u64,
    /// Entries in those chunks.
    pub entries: u64,
    /// Recovery's counts (adoptions, quarantined files, damage).
    pub recovery: RecoveryReport,
    /// Notes on what was found damaged.
    pub notes: Vec<String>,
}

/// Rebuilds every tenant's index log from its chunk files. The old log
/// (when readable) contributes only what it retired; every chunk file is
/// read and adopted or quarantined as at startup; the log is then
/// replaced by one naming exactly the chunks found (temp file, fsync,
/// rename), the old one saved in the quarantine folder first. The store
/// must not be running on the same data directory.
pub fn rebuild_index(config: &Config, metrics: &Metrics) -> std::io::Result<RebuildSummary> {
    let data = &config.data_dir;
    let index_dir = data.join("index");
    let chunks_dir = data.join("chunks");
    let quarantine = Quarantine::new(data);
    let handles = crate::index::Handles::new(16);
    let health = Health::default();
    let mut names: Vec<String> = Vec::new();
    for dir in [&index_dir, &chunks_dir] {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd {
            let name = e?.file_name().to_string_lossy().into_owned();
            let name = name.strip_suffix(".idx").unwrap_or(&name).to_string();
            if crate::tenant::TenantId::new(&name).is_ok() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    let ctx = Ctx {
        chunks_dir: &chunks_dir,
        quarantine: &quarantine,
        metrics,
        health: &health,
        config,
        wal_floor: None,
    };
    let mut sum = RebuildSummary::default();
    for name in names {
        let Ok(id) = crate::tenant::TenantId::new(&name) else {
            continue;
        };
        let path = super::tenant::log_path(&index_dir, &id);
        if path.exists() {
            let rel = Path::new("index").join(format!("{name}.idx.before-rebuild"));
            quarantine.save(&rel, &std::fs::read(&path)?)?;
            metrics.recovery.quarantined_files.inc();
        }
        let (old, loaded) = Tenant::load(id.clone(), &index_dir, handles.clone(), &quarantine)?;
        drop(old);
        let tenant = Tenant::new(id, &index_dir, handles.clone());
        let (rep, _) = reconcile_with(&ctx, &tenant, &loaded, false)?;
        sum.recovery.add(&rep);
        let mut records = Vec::new();
        for s in tenant.all() {
            let st = s.state.lock();
            if st.chunks.is_empty() {
                continue;
            }
            records.push(IndexRecord::Stream {
                fp: s.fp,
                labels: s.labels.to_set(),
            });
            for c in &st.chunks {
                sum.chunks += 1;
                sum.entries += c.entries;
                records.push(IndexRecord::Chunk {
                    fp: s.fp,
                    chunk: c.clone(),
                });
            }
            sum.streams += 1;
        }
        tenant.log.lock().rewrite(&records)?;
        sum.tenants += 1;
    }
    sum.notes = health.notes().0;
    Ok(sum)
}
