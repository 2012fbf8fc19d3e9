//! One live tail's entries between the push fan-out ([`super::tail`]) and
//! the frames its connection sends: the tenant and the query's selector
//! and pipeline applied to each acknowledged entry (with the pipeline's
//! per-stream state kept), lines a delete request covers left out, entries
//! the history already sent left out, and the rest held in time order
//! until `delay_for` after their timestamp, so that late arrivals still go
//! out in order.
//!
//! The queue is bounded: it holds at most [`MAX_PENDING`] entries and
//! [`MAX_PENDING_BYTES`] of lines; beyond that new entries are dropped,
//! and so are entries the connection has no room for
//! ([`TailQueue::drop_entries`]). A dropped entry is remembered (at most
//! [`MAX_DROPPED_PER_FRAME`], timestamp and labels only) for the next
//! frame's `dropped_entries`, and counted in
//! `larch_tail_dropped_entries_total`. The frames themselves, their JSON
//! and the connection are the HTTP side's (`api::tail_feed`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use larch_query::LabelSet;
use larch_query::drilldown::{EntryFilter, StreamFilter};
use larch_query::engine::LogEntry;
use xxhash_rust::xxh3::Xxh3;

use super::tail::TailEvent;
use crate::metrics::Metrics;
use crate::tenant::TenantId;

/// Dropped entries reported per frame at most (Loki's
/// `maxDroppedEntriesPerTailResponse`); further drops are only counted.
pub const MAX_DROPPED_PER_FRAME: usize = 1000;
/// Entries held back for `delay_for` at most.
pub const MAX_PENDING: usize = 10_000;
/// Line bytes held back for `delay_for` at most.
pub const MAX_PENDING_BYTES: usize = 8 << 20;
/// Streams whose filter state is kept; the cache is cleared beyond this.
const MAX_CACHED_STREAMS: usize = 50_000;

#[derive(Debug)]
struct Pending {
    labels: Arc<LabelSet>,
    entry: LogEntry,
}

/// Heap order: timestamp, then arrival.
type PendingKey = Reverse<(i64, u64)>;

/// An entry dropped since the last frame went out.
#[derive(Debug)]
pub struct Dropped {
    /// Its timestamp (Unix ns).
    pub ts: i64,
    /// Its labels (after the pipeline).
    pub labels: Arc<LabelSet>,
}

/// A tail's filtered, time-ordered, bounded entries (see the module docs).
pub struct TailQueue {
    tenant: TenantId,
    filter: EntryFilter,
    /// Loki's `categorize-labels` form of labels.
    categorize: bool,
    /// `delay_for` in nanoseconds.
    delay: i64,
    metrics: Arc<Metrics>,
    streams: HashMap<u64, Option<StreamFilter>>,
    interned: HashMap<u64, Arc<LabelSet>>,
    pending: BinaryHeap<(PendingKey, usize)>,
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
    pending_bytes: usize,
    seq: u64,
    dropped: Vec<Dropped>,
    /// Entries sent with the history, and the history's end.
    history: HashSet<u64>,
    cut: i64,
    /// Delete requests: their lines are not sent live either.
    deletes: Option<Arc<crate::deletes::Deletes>>,
}

/// Identity of an entry for de-duplication between history and live.
pub fn entry_key(labels: &LabelSet, ts: i64, line: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(&labels.fingerprint().to_le_bytes());
    h.update(&ts.to_le_bytes());
    h.update(line.as_bytes());
    h.digest()
}

impl TailQueue {
    /// An empty queue for `tenant`'s entries that `filter` keeps, each held
    /// `delay` after its timestamp.
    pub fn new(
        tenant: TenantId,
        filter: EntryFilter,
        delay: Duration,
        categorize: bool,
        metrics: Arc<Metrics>,
    ) -> TailQueue {
        TailQueue {
            tenant,
            filter,
            categorize,
            delay: i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX),
            metrics,
            streams: HashMap::new(),
            interned: HashMap::new(),
            pending: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            pending_bytes: 0,
            seq: 0,
            dropped: Vec::new(),
            history: HashSet::new(),
            cut: i64::MIN,
            deletes: None,
        }
    }

    /// Lines of these delete requests are left out.
    pub fn set_deletes(&mut self, deletes: Arc<crate::deletes::Deletes>) {
        self.deletes = Some(deletes);
    }

    /// The history covers entries before `end` (live entries from then on
    /// are all new).
    pub fn history_ends(&mut self, end: i64) {
        self.cut = end;
    }

    /// An entry sent with the history: not sent again when it also
    /// arrives live.
    pub fn sent_in_history(&mut self, labels: &LabelSet, ts: i64, line: &str) {
        self.history.insert(entry_key(labels, ts, line));
    }

    /// Whether the held entries fill more than half the bounds (the feed
    /// then sends early rather than drop for want of room).
    pub fn half_full(&self) -> bool {
        self.pending_bytes > MAX_PENDING_BYTES / 2 || self.pending.len() > MAX_PENDING / 2
    }

    fn intern(&mut self, labels: LabelSet) -> Arc<LabelSet> {
        let fp = labels.fingerprint();
        if self.interned.len() > MAX_CACHED_STREAMS {
            self.interned.clear();
        }
        self.interned
            .entry(fp)
            .or_insert_with(|| Arc::new(labels))
            .clone()
    }

    /// Filters one push event into the queue.
    pub fn add_event(&mut self, ev: &TailEvent) {
        if ev.tenant != self.tenant {
            return;
        }
        let fp = ev.labels.fingerprint();
        if self.streams.len() > MAX_CACHED_STREAMS {
            self.streams.clear();
        }
        let filter = &self.filter;
        let mut sf = match self.streams.remove(&fp) {
            Some(sf) => sf,
            None => filter
                .selects(&ev.labels)
                .then(|| filter.for_stream(ev.labels.clone())),
        };
        // Lines a delete request covers (pushed with old timestamps).
        let mut deleted = sf.as_ref().and_then(|_| {
            self.deletes
                .as_ref()?
                .for_stream(&ev.tenant, &ev.labels, i64::MIN, i64::MAX)
        });
        if let Some(f) = sf.as_mut() {
            for e in &ev.entries {
                if deleted
                    .as_mut()
                    .is_some_and(|d| d.deletes(e.ts, e.line.as_bytes(), &e.meta))
                {
                    continue;
                }
                let Some(kept) = f.process(e.ts, e.line.as_bytes(), &e.meta) else {
                    continue;
                };
                let line = String::from_utf8_lossy(kept.line).into_owned();
                let (labels, sm, parsed) = if kept.labels.is_none() {
                    (ev.labels.clone(), Vec::new(), Vec::new())
                } else {
                    let l = kept.labels(&ev.labels, self.categorize);
                    (self.intern(l.stream), l.structured_metadata, l.parsed)
                };
                if e.ts < self.cut && self.history.contains(&entry_key(&labels, e.ts, &line)) {
                    continue;
                }
                let entry = LogEntry {
                    ts: e.ts,
                    line,
                    structured_metadata: sm,
                    parsed,
                };
                self.hold(labels, entry);
            }
        }
        self.streams.insert(fp, sf);
    }

    fn hold(&mut self, labels: Arc<LabelSet>, entry: LogEntry) {
        if self.pending.len() >= MAX_PENDING
            || self.pending_bytes + entry.line.len() > MAX_PENDING_BYTES
        {
            self.drop_entries("buffer_full", [(entry.ts, labels)]);
            return;
        }
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.seq += 1;
        self.pending.push((Reverse((entry.ts, self.seq)), slot));
        self.pending_bytes += entry.line.len();
        self.slots[slot] = Some(Pending { labels, entry });
    }

    /// Records entries as dropped for `reason` (a value of the
    /// `larch_tail_dropped_entries_total` label).
    pub fn drop_entries(
        &mut self,
        reason: &str,
        entries: impl IntoIterator<Item = (i64, Arc<LabelSet>)>,
    ) {
        let mut n = 0u64;
        for (ts, labels) in entries {
            n += 1;
            if self.dropped.len() < MAX_DROPPED_PER_FRAME {
                self.dropped.push(Dropped { ts, labels });
            }
        }
        self.metrics
            .tail_dropped_entries
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(n);
    }

    /// The oldest held entries whose delay has passed at `now`, in time
    /// order (arrival order for equal timestamps): at most `max_entries`,
    /// and at most `max_bytes` of lines unless the first alone is longer.
    pub fn ready(
        &mut self,
        now: i64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Vec<(Arc<LabelSet>, LogEntry)> {
        let mut batch: Vec<(Arc<LabelSet>, LogEntry)> = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < max_entries {
            let Some(&(Reverse((ts, _)), slot)) = self.pending.peek() else {
                break;
            };
            if ts.saturating_add(self.delay) > now {
                break;
            }
            let len = self
                .slots
                .get(slot)
                .and_then(Option::as_ref)
                .map_or(0, |p| p.entry.line.len());
            if !batch.is_empty() && bytes + len > max_bytes {
                break;
            }
            self.pending.pop();
            self.free.push(slot);
            if let Some(p) = self.slots.get_mut(slot).and_then(Option::take) {
                bytes += len;
                self.pending_bytes -= len;
                batch.push((p.labels, p.entry));
            }
        }
        batch
    }

    /// Entries held, and the bytes of their lines.
    pub fn held(&self) -> (usize, usize) {
        (self.pending.len(), self.pending_bytes)
    }

    /// Entries dropped since [`TailQueue::clear_dropped`].
    pub fn dropped(&self) -> &[Dropped] {
        &self.dropped
    }

    /// The dropped entries were reported.
    pub fn clear_dropped(&mut self) {
        self.dropped.clear();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wal::record::WalEntry;

    fn queue(query: &str, delay: u64) -> TailQueue {
        TailQueue::new(
            TenantId::new("t").unwrap(),
            EntryFilter::parse(query).unwrap(),
            Duration::from_secs(delay),
            false,
            Arc::new(Metrics::new()),
        )
    }

    /// A tail event of `tenant`'s stream `labels` (also used by the
    /// feed's tests).
    pub(crate) fn event(
        tenant: &str,
        labels: &[(&str, &str)],
        entries: &[(i64, &str)],
    ) -> TailEvent {
        TailEvent {
            tenant: TenantId::new(tenant).unwrap(),
            labels: Arc::new(LabelSet::from_pairs(labels.iter().copied())),
            entries: entries
                .iter()
                .map(|(ts, l)| WalEntry {
                    ts: *ts,
                    line: (*l).into(),
                    meta: bytes::Bytes::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn pending_is_capped() {
        let mut q = queue(r#"{app="a"}"#, 5);
        let entries: Vec<(i64, String)> = (0..(MAX_PENDING as i64 + 20))
            .map(|k| (k, format!("l{k}")))
            .collect();
        let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
        q.add_event(&event("t", &[("app", "a")], &refs));
        assert_eq!(q.held().0, MAX_PENDING);
        assert_eq!(q.dropped().len(), 20);
    }

    #[test]
    fn ready_entries_come_in_time_order_within_the_bounds() {
        let s = 1_000_000_000;
        let mut q = queue(r#"{app="a"} != "drop""#, 1);
        q.add_event(&event(
            "t",
            &[("app", "a")],
            &[(3 * s, "c"), (s, "a"), (2 * s, "drop"), (2 * s, "b")],
        ));
        q.add_event(&event("other", &[("app", "a")], &[(s, "other tenant")]));
        q.add_event(&event("t", &[("app", "b")], &[(s, "other stream")]));
        assert_eq!(q.held().0, 3);
        // Held until a second after their timestamp.
        assert!(q.ready(s, 100, 1 << 20).is_empty());
        let lines = |b: Vec<(Arc<LabelSet>, LogEntry)>| -> Vec<String> {
            b.into_iter().map(|(_, e)| e.line).collect()
        };
        assert_eq!(lines(q.ready(3 * s, 100, 1 << 20)), ["a", "b"]);
        // At most one entry, or more than the byte bound for the first.
        q.add_event(&event("t", &[("app", "a")], &[(3 * s, "dd")]));
        assert_eq!(lines(q.ready(10 * s, 1, 1 << 20)), ["c"]);
        assert_eq!(lines(q.ready(10 * s, 100, 0)), ["dd"]);
        assert_eq!(q.held(), (0, 0));
    }
}
