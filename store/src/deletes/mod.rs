//! Loki's delete requests (ARCHITECTURE.md, "Deletes").
//!
//! A request is three kinds of immutable objects in the bucket, so every
//! node that reads the bucket sees the same requests and the filesystem
//! bucket of `all` mode and S3 share one code path:
//!
//! ```text
//! deletes/<tenant>/<id>.req      the request (JSON: query, range, creation time)
//! deletes/<tenant>/<id>.cancel   written by a cancel; the request is gone
//! deletes/<tenant>/<id>.done     written by the compactor once chunks are rewritten
//! ```
//!
//! [`Deletes`] holds every tenant's requests, compiled once, and is
//! refreshed from the bucket (`all` mode sees its own writes at once;
//! read nodes refresh with their view of the bucket). Queries ask it for a
//! [`StreamFilter`] per stream: only streams a request's selector matches,
//! in a scan whose range overlaps the request's, pay anything. Processed
//! requests keep filtering: lines that were still in memory or in a write
//! node when the compactor ran are then hidden all the same.

pub mod metrics;
pub mod request;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use larch_query::pipeline::StreamPipeline;
use larch_query::{Block, LabelSet};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::objstore::Bucket;
use crate::objstore::bucket::is_not_found;
use crate::tenant::TenantId;
pub use request::{NewRequest, ParamError, Request, Stored};

/// Where every tenant's requests are.
pub const PREFIX: &str = "deletes/";

/// Requests of one tenant not yet processed, at most.
pub const MAX_PENDING_PER_TENANT: usize = 1000;

/// Requests of one tenant the store reads, at most (processed included).
pub const MAX_REQUESTS_PER_TENANT: usize = 100_000;

/// Errors of the delete API (the status each maps to is the API's).
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such request (404).
    #[error("could not find delete request with given id")]
    NotFound,
    /// Already processed (400, even with `force`).
    #[error("deletion of request which is in process or already processed is not allowed")]
    Processed,
    /// Past the cancel period, without `force` (400).
    #[error(
        "Cancellation of partially completed delete request or delete request past the deadline of {0} since its creation is not allowed. To force, use the ?force query parameter"
    )]
    PastDeadline(String),
    /// Too many requests waiting (429).
    #[error(
        "the tenant has {0} delete requests waiting for the compactor, the limit is {MAX_PENDING_PER_TENANT}; wait until some are processed or cancel some"
    )]
    TooMany(usize),
    /// The bucket failed (500).
    #[error("delete requests: {0}")]
    Io(#[from] std::io::Error),
}

/// `deletes/<tenant>/`.
pub fn tenant_prefix(tenant: &TenantId) -> String {
    format!("{PREFIX}{}/", tenant.as_str())
}

fn key(tenant: &TenantId, id: &str, ext: &str) -> String {
    format!("{PREFIX}{}/{id}.{ext}", tenant.as_str())
}

/// The content of a `.done` or `.cancel` object.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Mark {
    at_ms: i64,
}

/// Whether `id` is one the store makes (16 lower-case hex digits), so a
/// key built from it stays in its prefix.
pub fn valid_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn new_id() -> std::io::Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| std::io::Error::other("no random numbers"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Every tenant's delete requests (cancelled ones left out).
pub struct Deletes {
    bucket: Arc<Bucket>,
    tenants: RwLock<HashMap<TenantId, Arc<Vec<Arc<Request>>>>>,
    /// Serialises this process's changes of one tenant's list.
    write: Mutex<()>,
    /// Whether one complete reading of the bucket's requests succeeded:
    /// until then queries are refused rather than show deleted lines.
    loaded: AtomicBool,
}

/// Queries are refused until the node has read the delete requests once
/// (the bucket could not be reached so far): an answer without them could
/// show deleted lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the delete requests could not be read from the bucket yet; retry later")]
pub struct NotLoaded;

impl Deletes {
    /// An empty registry over `bucket`; call [`Deletes::refresh`].
    pub fn new(bucket: Arc<Bucket>) -> Deletes {
        Deletes {
            bucket,
            tenants: RwLock::new(HashMap::new()),
            write: Mutex::new(()),
            loaded: AtomicBool::new(false),
        }
    }

    /// Reads every tenant's requests from the bucket and swaps them in.
    pub fn refresh(&self) -> std::io::Result<()> {
        let names = self.bucket.list_dirs(PREFIX)?;
        let mut next = HashMap::new();
        for name in names {
            let Ok(t) = TenantId::new(&name) else {
                continue;
            };
            let list = self.load(&t)?;
            if !list.is_empty() {
                next.insert(t, Arc::new(list));
            }
        }
        *self.tenants.write() = next;
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the requests were read from the bucket at least once (a
    /// node that answers queries without them would show deleted lines).
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Reads one tenant's requests from the bucket.
    pub fn refresh_tenant(&self, tenant: &TenantId) -> std::io::Result<()> {
        let list = self.load(tenant)?;
        self.set(tenant, list);
        Ok(())
    }

    fn set(&self, tenant: &TenantId, list: Vec<Arc<Request>>) {
        let mut m = self.tenants.write();
        if list.is_empty() {
            m.remove(tenant);
        } else {
            m.insert(tenant.clone(), Arc::new(list));
        }
    }

    /// The tenant's requests from the bucket; requests already known are
    /// reused, not read again.
    fn load(&self, tenant: &TenantId) -> std::io::Result<Vec<Arc<Request>>> {
        let known = self.list(tenant);
        let mut reqs: HashMap<String, (bool, bool, bool)> = HashMap::new();
        let prefix = tenant_prefix(tenant);
        for l in self.bucket.list(&prefix)? {
            let Some(name) = l.key.strip_prefix(&prefix) else {
                continue;
            };
            let Some((id, ext)) = name.rsplit_once('.') else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            let e = reqs.entry(id.to_string()).or_default();
            match ext {
                "req" => e.0 = true,
                "cancel" => e.1 = true,
                "done" => e.2 = true,
                _ => {}
            }
        }
        let mut out = Vec::new();
        let mut ids: Vec<_> = reqs.into_iter().collect();
        ids.sort();
        for (id, (req, cancelled, done)) in ids {
            if !req || cancelled {
                continue;
            }
            if out.len() >= MAX_REQUESTS_PER_TENANT {
                tracing::error!(tenant = %tenant, limit = MAX_REQUESTS_PER_TENANT, "A tenant has more delete requests than the store reads; the rest are left out.");
                break;
            }
            if let Some(k) = known.iter().find(|r| r.id == id)
                && (k.processed_ms.is_some() || !done)
            {
                out.push(k.clone());
                continue;
            }
            let stored = match self.bucket.get(&key(tenant, &id, "req")) {
                Ok(b) => b,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            let Ok(stored) = serde_json::from_slice::<Stored>(&stored) else {
                tracing::error!(tenant = %tenant, id, "A delete request object does not parse; it is left out.");
                continue;
            };
            let processed = if done {
                match self.bucket.get(&key(tenant, &id, "done")) {
                    Ok(b) => Some(serde_json::from_slice::<Mark>(&b).map_or(0, |m| m.at_ms)),
                    Err(e) if is_not_found(&e) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            match Request::from_stored(id.clone(), stored, processed) {
                Some(r) => out.push(Arc::new(r)),
                None => {
                    tracing::error!(tenant = %tenant, id, "A delete request's query does not parse; it is left out.")
                }
            }
        }
        Ok(out)
    }

    /// The tenant's requests (not cancelled), as last read.
    pub fn list(&self, tenant: &TenantId) -> Arc<Vec<Arc<Request>>> {
        self.tenants.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Every tenant with requests.
    pub fn tenants(&self) -> Vec<(TenantId, Arc<Vec<Arc<Request>>>)> {
        self.tenants
            .read()
            .iter()
            .map(|(t, l)| (t.clone(), l.clone()))
            .collect()
    }

    /// Stores a new request (one PUT) and returns its id.
    pub fn add(
        &self,
        tenant: &TenantId,
        new: NewRequest,
        now_ms: i64,
    ) -> Result<String, DeleteError> {
        let _w = self.write.lock();
        let fresh = self.load(tenant)?;
        let pending = fresh.iter().filter(|r| r.processed_ms.is_none()).count();
        if pending >= MAX_PENDING_PER_TENANT {
            self.set(tenant, fresh);
            return Err(DeleteError::TooMany(pending));
        }
        let id = new_id()?;
        let stored = Stored {
            query: new.query,
            start_ms: new.start_ms,
            end_ms: new.end_ms,
            created_ms: now_ms,
            max_interval_ms: new.max_interval_ms,
        };
        let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        self.bucket.put(&key(tenant, &id, "req"), bytes.into())?;
        let mut list = fresh;
        if let Some(r) = Request::from_stored(id.clone(), stored, None) {
            list.push(Arc::new(r));
        }
        self.set(tenant, list);
        Ok(id)
    }

    /// Cancels a request: within `period` of its creation, or with
    /// `force` while it is not processed.
    pub fn cancel(
        &self,
        tenant: &TenantId,
        id: &str,
        force: bool,
        now_ms: i64,
        period_ms: i64,
    ) -> Result<(), DeleteError> {
        let _w = self.write.lock();
        let fresh = self.load(tenant)?;
        let Some(r) = fresh.iter().find(|r| r.id == id).cloned() else {
            self.set(tenant, fresh);
            return Err(DeleteError::NotFound);
        };
        if r.processed_ms.is_some() {
            self.set(tenant, fresh);
            return Err(DeleteError::Processed);
        }
        if r.stored.created_ms.saturating_add(period_ms) < now_ms && !force {
            self.set(tenant, fresh);
            return Err(DeleteError::PastDeadline(request::go_duration(period_ms)));
        }
        let bytes = serde_json::to_vec(&Mark { at_ms: now_ms }).map_err(std::io::Error::other)?;
        self.bucket.put(&key(tenant, id, "cancel"), bytes.into())?;
        let list = fresh.into_iter().filter(|x| x.id != id).collect();
        self.set(tenant, list);
        Ok(())
    }

    /// Marks a request processed (the compactor, once its chunks are
    /// rewritten).
    pub fn mark_processed(&self, tenant: &TenantId, id: &str, now_ms: i64) -> std::io::Result<()> {
        let _w = self.write.lock();
        let bytes = serde_json::to_vec(&Mark { at_ms: now_ms }).map_err(std::io::Error::other)?;
        self.bucket.put(&key(tenant, id, "done"), bytes.into())?;
        let list = self
            .list(tenant)
            .iter()
            .map(|r| {
                if r.id == id && r.processed_ms.is_none() {
                    Arc::new(Request {
                        id: r.id.clone(),
                        stored: r.stored.clone(),
                        compiled: r.compiled.clone(),
                        processed_ms: Some(now_ms),
                    })
                } else {
                    r.clone()
                }
            })
            .collect();
        self.set(tenant, list);
        Ok(())
    }

    /// Requests whose cancel period has passed and that are not processed
    /// yet, oldest first.
    pub fn due(&self, now_ms: i64, period_ms: i64) -> Vec<(TenantId, Arc<Request>)> {
        let mut out: Vec<(TenantId, Arc<Request>)> = self
            .tenants()
            .into_iter()
            .flat_map(|(t, l)| {
                l.iter()
                    .filter(|r| {
                        r.processed_ms.is_none()
                            && r.stored.created_ms.saturating_add(period_ms) <= now_ms
                    })
                    .map(|r| (t.clone(), r.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by_key(|a| a.1.stored.created_ms);
        out
    }

    /// Counts of requests by status, for the gauge.
    pub fn counts(&self) -> (u64, u64) {
        let mut received = 0;
        let mut processed = 0;
        for (_, l) in self.tenants() {
            for r in l.iter() {
                if r.processed_ms.is_some() {
                    processed += 1;
                } else {
                    received += 1;
                }
            }
        }
        (received, processed)
    }

    /// The filter of one stream of `tenant` for a scan of `[start, end)`
    /// (ns); `None` when no request touches it (the common case, one
    /// map lookup).
    pub fn for_stream(
        &self,
        tenant: &TenantId,
        labels: &Arc<LabelSet>,
        start: i64,
        end: i64,
    ) -> Option<StreamFilter> {
        let list = self.tenants.read().get(tenant).cloned()?;
        StreamFilter::new(&list, labels, start, end)
    }
}

/// The requests that touch one stream, ready to test its entries.
pub struct StreamFilter {
    parts: Vec<(Arc<Request>, Option<StreamPipeline>)>,
    /// Whether a request needs the lines (it has filters).
    needs_lines: bool,
}

impl StreamFilter {
    /// The requests of `list` that select `labels` and overlap
    /// `[start, end)`; `None` if there are none.
    pub fn new(
        list: &[Arc<Request>],
        labels: &Arc<LabelSet>,
        start: i64,
        end: i64,
    ) -> Option<StreamFilter> {
        let mut parts = Vec::new();
        let mut needs_lines = false;
        for r in list {
            if !r.overlaps(start, end) || !r.compiled.selects(labels) {
                continue;
            }
            let p = (!r.compiled.is_whole_stream()).then(|| r.compiled.for_stream(labels.clone()));
            needs_lines |= p.is_some();
            parts.push((r.clone(), p));
        }
        (!parts.is_empty()).then_some(StreamFilter { parts, needs_lines })
    }

    /// Whether the filter reads lines and metadata (else only times).
    pub fn needs_lines(&self) -> bool {
        self.needs_lines
    }

    /// Whether one entry is deleted.
    pub fn deletes(&mut self, ts: i64, line: &[u8], metadata: &[u8]) -> bool {
        for (r, p) in &mut self.parts {
            if ts < r.start_ns() || ts > r.end_ns() {
                continue;
            }
            match p {
                None => return true,
                Some(p) => {
                    if r.compiled.line_matches(line) && p.process(ts, line, metadata).is_some() {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Whether a block spanning `[first, last]` may hold a deleted entry.
    fn may_touch(&self, first: i64, last: i64) -> bool {
        self.parts
            .iter()
            .any(|(r, _)| first <= r.end_ns() && last >= r.start_ns())
    }

    /// The entries of `block` that are not deleted, in `out`; `false`
    /// when none is deleted (then `out` is not filled and `block` stands).
    pub fn filter(&mut self, block: &Block<'_>, out: &mut OwnedBlock) -> bool {
        let n = block.len();
        let (Some(&first), Some(&last)) = (block.timestamps.first(), block.timestamps.last())
        else {
            return false;
        };
        if !self.may_touch(first, last) {
            return false;
        }
        let mut keep = Vec::with_capacity(n);
        let mut dropped = false;
        for i in 0..n {
            let d = self.deletes(block.timestamps[i], block.line(i), block.metadata(i));
            dropped |= d;
            keep.push(!d);
        }
        if !dropped {
            return false;
        }
        out.clear();
        let with_lines = block.offsets.len() == n + 1;
        let with_meta = block.metadata_offsets.len() == n + 1;
        let mut end = 0u32;
        if with_lines {
            out.offsets.push(0);
        }
        if with_meta {
            out.metadata_offsets.push(0);
        }
        for (i, k) in keep.iter().enumerate() {
            if !k {
                continue;
            }
            out.timestamps.push(block.timestamps[i]);
            if with_lines {
                // A block scanned for its line lengths alone has offsets
                // and no line bytes: the offsets carry the lengths.
                out.lines.extend_from_slice(block.line(i));
                let len = u32::try_from(block.line_len(i)).unwrap_or(u32::MAX);
                end = end.saturating_add(len);
                out.offsets.push(end);
            }
            if with_meta {
                out.metadata.extend_from_slice(block.metadata(i));
                out.metadata_offsets
                    .push(u32::try_from(out.metadata.len()).unwrap_or(u32::MAX));
            }
        }
        true
    }
}

/// A block's columns, owned (a filtered copy).
#[derive(Debug, Default, Clone)]
pub struct OwnedBlock {
    /// Timestamps.
    pub timestamps: Vec<i64>,
    /// Line offsets (`n + 1`, or empty).
    pub offsets: Vec<u32>,
    /// Line bytes.
    pub lines: Vec<u8>,
    /// Metadata offsets (`n + 1`, or empty).
    pub metadata_offsets: Vec<u32>,
    /// Metadata bytes.
    pub metadata: Vec<u8>,
}

impl OwnedBlock {
    fn clear(&mut self) {
        self.timestamps.clear();
        self.offsets.clear();
        self.lines.clear();
        self.metadata_offsets.clear();
        self.metadata.clear();
    }

    /// The block as the engine reads it.
    pub fn view(&self) -> Block<'_> {
        Block {
            timestamps: &self.timestamps,
            offsets: &self.offsets,
            lines: &self.lines,
            metadata_offsets: &self.metadata_offsets,
            metadata: &self.metadata,
            whole: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, query: &str, start_ms: i64, end_ms: i64) -> Arc<Request> {
        Arc::new(
            Request::from_stored(
                id.into(),
                Stored {
                    query: query.into(),
                    start_ms,
                    end_ms,
                    created_ms: 0,
                    max_interval_ms: 0,
                },
                None,
            )
            .unwrap(),
        )
    }

    fn block(entries: &[(i64, &str)]) -> OwnedBlock {
        let mut b = OwnedBlock::default();
        b.offsets.push(0);
        for (t, l) in entries {
            b.timestamps.push(*t);
            b.lines.extend_from_slice(l.as_bytes());
            b.offsets.push(b.lines.len() as u32);
        }
        b
    }

    fn lines(b: &Block<'_>) -> Vec<String> {
        (0..b.len())
            .map(|i| String::from_utf8_lossy(b.line(i)).into_owned())
            .collect()
    }

    #[test]
    fn only_selected_streams_in_range_pay() {
        let list = vec![req("a", "{app=\"api\"} |= \"secret\"", 1, 2)];
        let api = Arc::new(LabelSet::from_pairs([("app", "api")]));
        let web = Arc::new(LabelSet::from_pairs([("app", "web")]));
        assert!(StreamFilter::new(&list, &web, 0, i64::MAX).is_none());
        assert!(StreamFilter::new(&list, &api, 3_000_000, i64::MAX).is_none());
        let f = StreamFilter::new(&list, &api, 0, i64::MAX).unwrap();
        assert!(f.needs_lines());
    }

    #[test]
    fn filters_lines_in_range_matching_the_pipeline() {
        let list = vec![
            req("a", "{app=\"api\"} |= \"secret\"", 1, 2),
            req("b", "{app=\"api\"} | logfmt | user=\"bob\"", 0, 10),
        ];
        let api = Arc::new(LabelSet::from_pairs([("app", "api")]));
        let mut f = StreamFilter::new(&list, &api, 0, i64::MAX).unwrap();
        let b = block(&[
            (500_000, "secret too early"),
            (1_000_000, "secret at start"),
            (1_500_000, "public"),
            (2_999_999, "secret at the end of the last ms"),
            (3_000_000, "secret too late"),
            (4_000_000, "user=bob msg=hi"),
            (4_000_001, "user=alice msg=hi"),
        ]);
        let mut out = OwnedBlock::default();
        assert!(f.filter(&b.view(), &mut out));
        assert_eq!(
            lines(&out.view()),
            vec![
                "secret too early",
                "public",
                "secret too late",
                "user=alice msg=hi"
            ]
        );
        assert_eq!(out.view().timestamps.len(), 4);
        // A block outside every range is not touched.
        let late = block(&[(20_000_000, "secret")]);
        assert!(!f.filter(&late.view(), &mut out));
    }

    #[test]
    fn whole_stream_requests_need_no_lines() {
        let list = vec![req("a", "{app=\"api\"}", 1, 1)];
        let api = Arc::new(LabelSet::from_pairs([("app", "api")]));
        let mut f = StreamFilter::new(&list, &api, 0, i64::MAX).unwrap();
        assert!(!f.needs_lines());
        // Timestamps only, as a count without filters asks.
        let b = OwnedBlock {
            timestamps: vec![999_999, 1_000_000, 1_999_999, 2_000_000],
            ..OwnedBlock::default()
        };
        let mut out = OwnedBlock::default();
        assert!(f.filter(&b.view(), &mut out));
        assert_eq!(out.timestamps, vec![999_999, 2_000_000]);
        assert!(out.offsets.is_empty());
        // Line lengths without the lines, as `bytes_over_time` asks: the
        // kept entries keep their lengths.
        let b = OwnedBlock {
            timestamps: vec![999_999, 1_000_000, 1_999_999, 2_000_000],
            offsets: vec![0, 3, 10, 10, 14],
            ..OwnedBlock::default()
        };
        assert!(f.filter(&b.view(), &mut out));
        let v = out.view();
        assert!(v.lines.is_empty());
        assert_eq!((v.line_len(0), v.line_len(1)), (3, 4));
    }

    #[test]
    fn ids() {
        let id = new_id().unwrap();
        assert!(valid_id(&id), "{id}");
        assert!(!valid_id("../../x"));
        assert!(!valid_id("ABCDEF0123456789"));
    }
}
