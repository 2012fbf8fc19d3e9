//! A tenant's streams: lookup by fingerprint, the label postings, the
//! durable index log, and the count of active streams.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use larch_query::{LabelSet, Matcher};
use parking_lot::{Mutex, RwLock};

use super::stream::{Stream, StreamState};
use crate::index::{IndexLog, IndexRecord, Postings};
use crate::tenant::TenantId;

/// One tenant.
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    registry: RwLock<Registry>,
    /// Streams with unflushed data.
    pub active: AtomicUsize,
    /// The durable index log.
    pub log: Mutex<IndexLog>,
}

#[derive(Default)]
struct Registry {
    by_fp: HashMap<u64, Arc<Stream>>,
    list: Vec<Arc<Stream>>,
    postings: Postings,
}

impl Tenant {
    /// Opens the tenant's index log under `index_dir` and rebuilds its
    /// streams and chunk lists from it.
    pub fn open(id: TenantId, index_dir: &Path) -> std::io::Result<Tenant> {
        let path = index_dir.join(format!("{}.idx", id.as_str()));
        let (log, records, damaged) = IndexLog::open(&path)?;
        if damaged {
            tracing::warn!(tenant = %id, path = %path.display(), "Index log ended in a torn record; it was cut off and the chunk it named will be rebuilt from the WAL.");
        }
        let tenant = Tenant {
            id,
            registry: RwLock::new(Registry::default()),
            active: AtomicUsize::new(0),
            log: Mutex::new(log),
        };
        for r in records {
            match r {
                IndexRecord::Stream { fp, labels } => {
                    let s = tenant.get_or_create(fp, labels);
                    s.state.lock().logged = true;
                }
                IndexRecord::Chunk { fp, chunk } => match tenant.get(fp) {
                    Some(s) => {
                        let mut st = s.state.lock();
                        st.flushed_max_seq = st.flushed_max_seq.max(chunk.max_seq);
                        st.add_chunk(chunk);
                    }
                    None => tracing::warn!(
                        fp,
                        "Index log names a chunk of an unknown stream; ignoring it."
                    ),
                },
                IndexRecord::Delete { fp, id } => {
                    if let Some(s) = tenant.get(fp) {
                        s.state.lock().chunks.retain(|c| c.id != id);
                    }
                }
            }
        }
        Ok(tenant)
    }

    /// The stream with fingerprint `fp`.
    pub fn get(&self, fp: u64) -> Option<Arc<Stream>> {
        self.registry.read().by_fp.get(&fp).cloned()
    }

    /// The stream with fingerprint `fp`, created with `labels` if new.
    pub fn get_or_create(&self, fp: u64, labels: LabelSet) -> Arc<Stream> {
        if let Some(s) = self.get(fp) {
            return s;
        }
        let mut reg = self.registry.write();
        if let Some(s) = reg.by_fp.get(&fp) {
            return s.clone();
        }
        let id = reg.list.len() as u32;
        reg.postings.add(id, &labels);
        let s = Arc::new(Stream {
            id,
            fp,
            labels: Arc::new(labels),
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
