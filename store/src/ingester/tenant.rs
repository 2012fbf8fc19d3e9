//! A tenant's streams: lookup by fingerprint, the label postings, the
//! durable index log, and the count of active streams.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use larch_query::{LabelSet, Matcher};
use parking_lot::{Mutex, RwLock};

use super::stream::{Stream, StreamState};
use crate::index::{ChunkRef, Handles, IndexLog, IndexRecord, LogDamage, Postings};
use crate::quarantine::Quarantine;
use crate::tenant::TenantId;

/// One tenant.
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    registry: RwLock<Registry>,
    /// Streams with unflushed data.
    pub active: AtomicUsize,
    /// The durable index log (created on its first append).
    pub log: Mutex<IndexLog>,
    /// Set once the index log refuses appends: the tenant's data can no
    /// longer be flushed, so its pushes are refused.
    log_failed: AtomicBool,
    /// Chunk records of the journal not yet named by a published segment
    /// (write nodes): `(stream, chunk)`, in journal order.
    pub unpublished: Mutex<Vec<(u64, ChunkRef)>>,
}

#[derive(Default)]
struct Registry {
    by_fp: HashMap<u64, Arc<Stream>>,
    list: Vec<Arc<Stream>>,
    postings: Postings,
}

/// Where a walk over a label's values ([`Tenant::values_page`]) stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Page {
    /// At the last value, or where the visitor stopped it.
    End,
    /// The page was full: the walk goes on after this value.
    After(Box<str>),
}

/// The streams that hold a label value, in id order
/// ([`Tenant::values_page`]).
pub struct Holders<'a> {
    ids: std::slice::Iter<'a, crate::index::StreamId>,
    list: &'a [Arc<Stream>],
}

impl<'a> Iterator for Holders<'a> {
    type Item = &'a Stream;

    fn next(&mut self) -> Option<&'a Stream> {
        self.ids
            .by_ref()
            .find_map(|&id| self.list.get(id as usize).map(|s| &**s))
    }
}

/// What loading a tenant's index log found, for recovery.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Damage found and repaired in the log.
    pub damage: LogDamage,
    /// The log was not readable at all and was moved to the quarantine
    /// folder; the index is rebuilt from the chunk files.
    pub unreadable: bool,
    /// Chunks a delete record retired: `(stream, id)`.
    pub retired: HashSet<(u64, String)>,
    /// Chunk records of streams the log has no stream record for (lost to
    /// damage): their files are adopted from their own headers.
    pub orphan_records: usize,
}

impl Loaded {
    /// Whether the log can be trusted for what it says was deleted.
    pub fn is_trustworthy(&self) -> bool {
        !self.unreadable && !self.damage.is_corrupt()
    }
}

/// The index log path of `id` under `index_dir`.
pub fn log_path(index_dir: &Path, id: &TenantId) -> std::path::PathBuf {
    index_dir.join(format!("{}.idx", id.as_str()))
}

impl Tenant {
    /// A tenant with no streams and no index file yet.
    pub fn new(id: TenantId, index_dir: &Path, handles: Arc<Handles>) -> Tenant {
        let log = IndexLog::new(&log_path(index_dir, &id), handles);
        Tenant {
            id,
            registry: RwLock::new(Registry::default()),
            active: AtomicUsize::new(0),
            log: Mutex::new(log),
            log_failed: AtomicBool::new(false),
            unpublished: Mutex::new(Vec::new()),
        }
    }

    /// Opens the tenant's index log under `index_dir` (repairing it, see
    /// [`IndexLog::open`]) and rebuilds its streams and chunk lists from
    /// it. A file that is not an index log at all is moved to the
    /// quarantine folder and the tenant starts with an empty index, to be
    /// rebuilt from its chunk files.
    pub fn load(
        id: TenantId,
        index_dir: &Path,
        handles: Arc<Handles>,
        quarantine: &Quarantine,
    ) -> std::io::Result<(Tenant, Loaded)> {
        let path = log_path(index_dir, &id);
        let mut loaded = Loaded::default();
        let (log, records) = match IndexLog::open(&path, handles.clone(), quarantine) {
            Ok(o) => {
                loaded.damage = o.damage;
                (o.log, o.records)
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let rel = Path::new("index").join(format!("{}.idx", id.as_str()));
                let to = quarantine.move_file(&path, &rel)?;
                tracing::error!(tenant = %id, path = %path.display(), moved_to = %to.display(), "The index log is unreadable; moved it to the quarantine folder, the index is rebuilt from the chunk files.");
                loaded.unreadable = true;
                loaded.damage.saved_to = Some(to);
                (IndexLog::new(&path, handles), Vec::new())
            }
            Err(e) => return Err(e),
        };
        let tenant = Tenant {
            id,
            registry: RwLock::new(Registry::default()),
            active: AtomicUsize::new(0),
            log: Mutex::new(log),
            log_failed: AtomicBool::new(false),
            unpublished: Mutex::new(Vec::new()),
        };
        let mut unpublished: Vec<(u64, ChunkRef)> = Vec::new();
        let mut pending: HashMap<u64, Vec<ChunkRef>> = HashMap::new();
        for r in records {
            match r {
                IndexRecord::Stream { fp, labels } => {
                    let s = tenant.get_or_create(fp, &labels);
                    let mut st = s.state.lock();
                    st.logged = true;
                    for chunk in pending.remove(&fp).unwrap_or_default() {
                        st.flushed_max_seq = st.flushed_max_seq.max(chunk.max_seq);
                        st.add_chunk(chunk);
                    }
                }
                IndexRecord::Published { .. } => unpublished.clear(),
                IndexRecord::Chunk { fp, chunk } => {
                    unpublished.push((fp, chunk.clone()));
                    loaded.retired.remove(&(fp, chunk.id.clone()));
                    match tenant.get(fp) {
                        Some(s) => {
                            let mut st = s.state.lock();
                            st.flushed_max_seq = st.flushed_max_seq.max(chunk.max_seq);
                            st.chunks.retain(|c| c.id != chunk.id);
                            st.add_chunk(chunk);
                        }
                        None => pending.entry(fp).or_default().push(chunk),
                    }
                }
                IndexRecord::Delete { fp, id } => {
                    if let Some(s) = tenant.get(fp) {
                        s.state.lock().chunks.retain(|c| c.id != id);
                    }
                    if let Some(p) = pending.get_mut(&fp) {
                        p.retain(|c| c.id != id);
                    }
                    loaded.retired.insert((fp, id));
                }
            }
        }
        *tenant.unpublished.lock() = unpublished;
        loaded.orphan_records = pending.values().map(Vec::len).sum();
        if loaded.orphan_records > 0 {
            tracing::warn!(tenant = %tenant.id, chunks = loaded.orphan_records, "The index log names chunks of streams it has no record of; they are taken from the chunk files' own headers.");
        }
        Ok((tenant, loaded))
    }

    /// Appends `records` to the index log. Once the log refuses appends
    /// (see [`IndexLog::append`]) the tenant is marked so that its pushes
    /// are refused.
    pub fn append(&self, records: &[IndexRecord]) -> std::io::Result<()> {
        let mut log = self.log.lock();
        let res = log.append(records);
        if log.failure().is_some() {
            self.log_failed.store(true, Ordering::Release);
        }
        res
    }

    /// Why the index log refuses appends, if it does.
    pub fn log_failure(&self) -> Option<String> {
        if !self.log_failed.load(Ordering::Acquire) {
            return None;
        }
        self.log.lock().failure().map(str::to_string)
    }

    /// The stream with fingerprint `fp`.
    pub fn get(&self, fp: u64) -> Option<Arc<Stream>> {
        self.registry.read().by_fp.get(&fp).cloned()
    }

    /// The stream with fingerprint `fp`, created with `labels` if new.
    pub fn get_or_create(&self, fp: u64, labels: &LabelSet) -> Arc<Stream> {
        if let Some(s) = self.get(fp) {
            return s;
        }
        let mut reg = self.registry.write();
        if let Some(s) = reg.by_fp.get(&fp) {
            return s.clone();
        }
        let id = reg.list.len() as u32;
        reg.postings.add(id, labels);
        let s = Arc::new(Stream {
            id,
            fp,
            labels: super::stream::PackedLabels::new(labels),
            state: parking_lot::Mutex::new(StreamState::default()),
        });
        reg.by_fp.insert(fp, s.clone());
        reg.list.push(s.clone());
        s
    }

    /// Streams whose labels satisfy `matchers`.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Arc<Stream>> {
        let reg = self.registry.read();
        reg.postings
            .select(matchers)
            .into_iter()
            .filter_map(|id| reg.list.get(id as usize).cloned())
            .collect()
    }

    /// Label names of the streams, sorted.
    pub fn label_names(&self) -> Vec<Box<str>> {
        self.registry
            .read()
            .postings
            .names()
            .map(Box::from)
            .collect()
    }

    /// One page of the values of label `name`, in order: those after
    /// `after` (from the first with `None`), at most `max` of them, each
    /// handed to `visit` with the streams that hold it. The registry is
    /// read-locked for the page only, so that a walk over a million values
    /// never holds off new streams for long; `visit` may lock a stream's
    /// state (the lock order is registry, then stream: nothing takes the
    /// registry lock while it holds a stream's state).
    pub fn values_page(
        &self,
        name: &str,
        after: Option<&str>,
        max: usize,
        mut visit: impl FnMut(&str, Holders<'_>) -> ControlFlow<()>,
    ) -> Page {
        let reg = self.registry.read();
        let mut last: Option<&str> = None;
        for (n, (value, ids)) in reg.postings.values_after(name, after).enumerate() {
            if n >= max.max(1) {
                return last.map_or(Page::End, |l| Page::After(l.into()));
            }
            let holders = Holders {
                ids: ids.iter(),
                list: &reg.list,
            };
            if visit(value, holders).is_break() {
                return Page::End;
            }
            last = Some(value);
        }
        Page::End
    }

    /// Every stream.
    pub fn all(&self) -> Vec<Arc<Stream>> {
        self.registry.read().list.clone()
    }

    /// Number of streams known.
    pub fn stream_count(&self) -> usize {
        self.registry.read().list.len()
    }

    /// Streams with unflushed data.
    pub fn active_count(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_pages_with_their_streams() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tenant::new(
            TenantId::new("t").unwrap(),
            dir.path(),
            crate::index::Handles::new(1),
        );
        let pods = ["e", "a", "d", "b", "c"];
        for (i, pod) in pods.iter().enumerate() {
            let set =
                LabelSet::from_pairs([("app", if i % 2 == 0 { "x" } else { "y" }), ("pod", pod)]);
            t.get_or_create(set.fingerprint(), &set);
        }
        assert_eq!(
            t.label_names(),
            vec!["app".into(), "pod".into()] as Vec<Box<str>>
        );

        // Every value once, in order, a page of two at a time, each with
        // the stream that holds it.
        let mut seen = Vec::new();
        let mut after: Option<Box<str>> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            let page = t.values_page("pod", after.as_deref(), 2, |v, holders| {
                let held: Vec<&str> = holders.map(|s| s.labels.get("pod").unwrap()).collect();
                assert_eq!(held, vec![v]);
                seen.push(v.to_string());
                ControlFlow::Continue(())
            });
            match page {
                Page::After(last) => after = Some(last),
                Page::End => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert_eq!(pages, 3);

        // A value held by several streams lists them all; a visitor can
        // stop the walk.
        let mut held = Vec::new();
        let page = t.values_page("app", None, 10, |v, holders| {
            held.push((v.to_string(), holders.count()));
            ControlFlow::Break(())
        });
        assert_eq!(page, Page::End);
        assert_eq!(held, vec![("x".to_string(), 3)]);
        assert_eq!(
            t.values_page("nope", None, 10, |_, _| ControlFlow::Continue(())),
            Page::End
        );
    }
}
