//! A read node's view of the bucket (ARCHITECTURE.md, "Consistency").
//!
//! Every `read.index_refresh_period` the bucket's segments are listed;
//! new ones are read (through the cache) and decoded; the live set of a
//! tenant is what its listing returned minus what a listed segment of the
//! same day supersedes. When a tenant's live set changed, every stream's
//! chunk list is replaced by the one the new set names, stream by stream
//! under the stream's lock: a query sees, for each stream, either the old
//! view or the new one, and the chunks of the old one stay readable for
//! the compactor's grace period.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use larch_query::LabelSet;

use super::bucket::Bucket;
use super::terms::{ChunkTerms, TermIndex};
use super::{layout, segment};
use crate::config::Config;
use crate::index::{ChunkRef, IndexRecord};
use crate::ingester::Ingester;
use crate::ingester::flusher::Msg;
use crate::tenant::TenantId;

/// Checks the bucket when a process starts: refused credentials or a
/// missing bucket stop the start with a message naming the bucket; an
/// unreachable one is logged (a write node takes pushes into its WAL
/// meanwhile, a read node retries).
pub fn check_at_start(bucket: &Bucket, _config: &Config) -> std::io::Result<()> {
    match bucket.check() {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound
            ) =>
        {
            Err(e)
        }
        Err(e) => {
            tracing::error!(error = %e, "The bucket cannot be reached now; starting anyway and retrying.");
            Ok(())
        }
    }
}

/// A segment as loaded.
struct Loaded {
    day: i64,
    name: String,
    segment: Arc<segment::Segment>,
}

/// The view kept between refreshes.
#[derive(Default)]
pub struct View {
    /// Per tenant: segment key -> segment.
    tenants: HashMap<TenantId, HashMap<String, Loaded>>,
    /// Per tenant: the live keys last applied.
    applied: HashMap<TenantId, BTreeSet<String>>,
    /// Term indexes by key, kept across refreshes (their heads and pages
    /// are read once).
    indexes: HashMap<String, Arc<TermIndex>>,
    failing: bool,
}

/// The live keys of one tenant's segments (see the module docs).
fn live_keys(segments: &HashMap<String, Loaded>) -> BTreeSet<String> {
    let mut superseded: HashSet<(i64, &str)> = HashSet::new();
    for l in segments.values() {
        for s in &l.segment.supersedes {
            superseded.insert((l.day, s.as_str()));
        }
    }
    segments
        .iter()
        .filter(|(_, l)| !superseded.contains(&(l.day, l.name.as_str())))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The streams and chunks named by `keys`: labels and chunks by stream,
/// each chunk once.
fn merge(
    segments: &HashMap<String, Loaded>,
    keys: &BTreeSet<String>,
) -> BTreeMap<u64, (Option<LabelSet>, Vec<ChunkRef>)> {
    let mut out: BTreeMap<u64, (Option<LabelSet>, Vec<ChunkRef>)> = BTreeMap::new();
    let mut seen: HashSet<(u64, String)> = HashSet::new();
    for k in keys {
        let Some(l) = segments.get(k) else { continue };
        for r in &l.segment.records {
            match r {
                IndexRecord::Stream { fp, labels } => {
                    out.entry(*fp)
                        .or_default()
                        .0
                        .get_or_insert_with(|| labels.clone());
                }
                IndexRecord::Chunk { fp, chunk } if seen.insert((*fp, chunk.id.clone())) => {
                    out.entry(*fp).or_default().1.push(chunk.clone());
                }
                _ => {}
            }
        }
    }
    out
}

impl View {
    /// Lists the bucket and applies what changed to `ing`'s tenants.
    pub fn refresh(&mut self, ing: &Ingester) -> std::io::Result<()> {
        let started = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let bucket = &ing.bucket;
        for name in bucket.list_dirs(layout::SEGMENTS)? {
            let Ok(tid) = TenantId::new(&name) else {
                continue;
            };
            let listed = bucket.list(&layout::segment_prefix(&tid))?;
            let segs = self.tenants.entry(tid.clone()).or_default();
            let keys: HashSet<&str> = listed.iter().map(|l| l.key.as_str()).collect();
            segs.retain(|k, _| keys.contains(k.as_str()));
            for l in &listed {
                if segs.contains_key(&l.key) {
                    continue;
                }
                let Some((_, day, seg_name)) = layout::parse_segment_key(&l.key) else {
                    continue;
                };
                let bytes = match bucket.get(&l.key) {
                    Ok(b) => b,
                    // Deleted by the compactor since the listing.
                    Err(e) if super::bucket::is_not_found(&e) => continue,
                    Err(e) => return Err(e),
                };
                match segment::decode(&bytes) {
                    Ok(s) => {
                        if s.damaged && ing.health.mark_damaged(std::path::Path::new(&l.key)) {
                            tracing::error!(key = %l.key, "An index segment is damaged; its intact records are used.");
                            ing.health.note(format!(
                                "index segment {} is damaged; its intact records are used",
                                l.key
                            ));
                        }
                        segs.insert(
                            l.key.clone(),
                            Loaded {
                                day,
                                name: seg_name,
                                segment: Arc::new(s),
                            },
                        );
                    }
                    Err(e) => {
                        if ing.health.mark_damaged(std::path::Path::new(&l.key)) {
                            tracing::error!(key = %l.key, error = %e, "An object of the segments folder is not an index segment; ignoring it.");
                        }
                    }
                }
            }
            let live = live_keys(segs);
            if self.applied.get(&tid) == Some(&live) {
                continue;
            }
            apply(ing, &tid, merge(segs, &live));
            let terms = if ing.config.read.term_index {
                chunk_terms(&mut self.indexes, &tid, segs, &live)
            } else {
                ChunkTerms::new()
            };
            ing.terms.write().insert(tid.clone(), Arc::new(terms));
            self.applied.insert(tid, live);
        }
        ing.view_listed_at.store(started, Ordering::Release);
        Ok(())
    }
}

/// The term index of each chunk the live segments' term indexes cover.
/// Any index covering a chunk is right for it (a chunk id names immutable
/// bytes), so this map may be swapped in before or after the chunk lists.
fn chunk_terms(
    indexes: &mut HashMap<String, Arc<TermIndex>>,
    tenant: &TenantId,
    segments: &HashMap<String, Loaded>,
    live: &BTreeSet<String>,
) -> ChunkTerms {
    let mut out = ChunkTerms::new();
    for k in live {
        let Some(l) = segments.get(k) else { continue };
        let Some((name, size)) = &l.segment.terms else {
            continue;
        };
        let key = layout::terms_key(tenant, l.day, name);
        let ti = indexes
            .entry(key.clone())
            .or_insert_with(|| Arc::new(TermIndex::new(key, *size)))
            .clone();
        for r in &l.segment.records {
            if let IndexRecord::Chunk { fp, chunk } = r {
                out.insert((*fp, chunk.id.clone()), ti.clone());
            }
        }
    }
    // Forget indexes no live segment of this tenant names any more.
    let prefix = format!("terms/{}/", tenant.as_str());
    let used: HashSet<&str> = out.values().map(|t| t.key.as_str()).collect();
    indexes.retain(|k, _| !k.starts_with(&prefix) || used.contains(k.as_str()));
    out
}

/// Replaces the chunk lists of `tenant`'s streams by `streams`.
fn apply(
    ing: &Ingester,
    tenant: &TenantId,
    mut streams: BTreeMap<u64, (Option<LabelSet>, Vec<ChunkRef>)>,
) {
    let t = ing.tenant_for_view(tenant);
    for (fp, (labels, _)) in &streams {
        if t.get(*fp).is_none()
            && let Some(l) = labels
        {
            t.get_or_create(*fp, l);
        }
    }
    for s in t.all() {
        let mut chunks = streams.remove(&s.fp).map(|(_, c)| c).unwrap_or_default();
        chunks.sort_by(|a, b| (a.mint, &a.id).cmp(&(b.mint, &b.id)));
        s.state.lock().chunks = chunks;
    }
}

/// Reads the delete requests again (a failure keeps the last list: it
/// only misses requests made since, which reach the node at a later
/// refresh).
pub(crate) fn refresh_deletes(ing: &Ingester) {
    match ing.deletes.refresh() {
        Ok(()) => {
            let (received, processed) = ing.deletes.counts();
            ing.metrics.deletes.set_counts(received, processed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "Reading the delete requests failed; keeping the last list.")
        }
    }
}

/// Reads a write node's delete requests again every
/// `read.index_refresh_period` until `stop`'s sender is dropped: write
/// nodes answer queries too (over their members with `cluster:`), and a
/// query gives the same answer whichever node it lands on.
pub fn run_deletes(ing: Arc<Ingester>, stop: std::sync::mpsc::Receiver<()>) {
    let period = ing
        .config
        .read
        .index_refresh_period
        .0
        .max(Duration::from_millis(10));
    loop {
        match stop.recv_timeout(period) {
            Err(RecvTimeoutError::Timeout) => refresh_deletes(&ing),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Runs a read node's refresher until [`Msg::Stop`]; `FlushAll` refreshes
/// at once.
pub fn run(ing: Arc<Ingester>, rx: Receiver<Msg>) {
    let period = ing
        .config
        .read
        .index_refresh_period
        .0
        .max(Duration::from_millis(10));
    let mut view = View::default();
    loop {
        refresh_deletes(&ing);
        match view.refresh(&ing) {
            Ok(()) => {
                if view.failing {
                    tracing::info!("The bucket answers again; the view of its index is current.");
                }
                view.failing = false;
            }
            Err(e) => {
                if !view.failing {
                    tracing::error!(error = %e, "Listing the bucket's index failed; answering from the last view and retrying.");
                }
                view.failing = true;
            }
        }
        ing.refresh_gauges();
        let mut done = Vec::new();
        match rx.recv_timeout(period) {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::FlushAll(d)) => done.push(d),
            Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {}
        }
        if !done.is_empty() {
            refresh_deletes(&ing);
            let _ = view.refresh(&ing);
            for d in done {
                let _ = d.send(());
            }
        }
    }
}
