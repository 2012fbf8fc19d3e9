//! Log queries: the newest (backward) or oldest (forward) `limit` entries
//! in `[start, end)` that pass the pipeline, grouped by label set.
//!
//! Every stream is scanned in the query's direction; each worker keeps a
//! bounded heap of the best `limit` entries it has seen. Entries of one
//! stream arrive in order, so once the heap is full and a stream's next
//! entry cannot beat the heap's worst, the rest of that stream is skipped
//! (the scan callback returns `Break`). Memory is `limit` entries per
//! worker (and the label sets they use) whatever the amount of data.
//! Entries are only materialised (line copied, labels interned) when they
//! enter the heap.
//!
//! Order, as in Loki: by timestamp in the query's direction; ties between
//! streams by the stream's labels, within a stream by position.
//!
//! `interval` keeps an entry only when it is at least `interval` after
//! (forward) or before (backward) the previous kept entry of the whole
//! result. That selection depends on the merged order, so it runs over
//! rounds of the bounded collection: take the best `limit` entries from
//! the current bound, select greedily, and when the heap was full but the
//! selection is short, continue from the last selected entry plus
//! `interval`, where no entry already seen can be selected.

use std::collections::{BinaryHeap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

use crate::labels::LabelSet;
use crate::pipeline::{LabelCategory, LabelsBuilder, StreamPipeline};
use crate::source::{Block, Columns, Direction, ScanRequest, StreamInfo};

use super::error::EngineError;
use super::plan::LogPlan;
use super::scan::{ScanCtx, Span, StreamVisitor, scan_streams, time_spans};
use super::types::{LogEntry, QueryStats, StreamResult};

/// Sort key: smaller is better (earlier in the output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// Timestamp, negated for backward queries.
    ts: i128,
    /// Rank of the stream's labels.
    rank: u32,
    /// Position within the stream in scan order.
    seq: u64,
}

#[derive(Debug)]
struct Held {
    key: Key,
    entry: LogEntry,
    labels: Arc<LabelSet>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.key == other.key
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Held) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

struct Collector<'p> {
    plan: &'p LogPlan,
    start: i64,
    end: i64,
    direction: Direction,
    limit: usize,
    categorize: bool,
    ranks: &'p HashMap<u64, u32>,
    /// Shared by the workers: the worst key timestamp of some worker's
    /// full heap (`i64::MAX` until one fills). Entries whose key timestamp
    /// is worse cannot be among the results, so spans and blocks that hold
    /// only such entries are skipped.
    bound: &'p AtomicI64,
    heap: BinaryHeap<Held>,
    // Per stream.
    rank: u32,
    seq: u64,
    stream_labels: Arc<LabelSet>,
    sp: Option<StreamPipeline>,
    plain: bool,
    // Reused.
    idx: Vec<u32>,
    interned: HashMap<u64, Arc<LabelSet>>,
    scanned_lines: u64,
    scanned_bytes: u64,
    post_filter: u64,
}

impl Collector<'_> {
    fn key(&self, ts: i64, seq: u64) -> Key {
        Key {
            ts: match self.direction {
                Direction::Forward => ts as i128,
                Direction::Backward => -(ts as i128),
            },
            rank: self.rank,
            seq,
        }
    }

    /// Whether an entry at `ts` is worse than the worst entry of some
    /// worker's full heap (ties may still win on rank and position).
    fn beyond_bound(&self, ts: i64) -> bool {
        self.key(ts, 0).ts > i128::from(self.bound.load(AtomicOrdering::Relaxed))
    }

    /// Offers this worker's worst kept entry as the shared bound once its
    /// heap is full. Clamping to `i64` only loosens the bound.
    fn publish_bound(&self) {
        if self.heap.len() >= self.limit
            && let Some(worst) = self.heap.peek()
        {
            let t = worst
                .key
                .ts
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            self.bound.fetch_min(t, AtomicOrdering::Relaxed);
        }
    }

    fn intern(&mut self, hash: u64, make: impl FnOnce() -> LabelSet) -> Arc<LabelSet> {
        self.interned
            .entry(hash)
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// Runs entry `i` of `b`; returns whether the stream can still
    /// contribute.
    fn entry(&mut self, b: &Block<'_>, i: usize) -> bool {
        let ts = b.timestamps[i];
        let key = self.key(ts, self.seq);
        self.seq += 1;
        if self.heap.len() >= self.limit && self.heap.peek().is_some_and(|w| key >= w.key) {
            return false;
        }
        let line = b.line(i);
        let meta = b.metadata(i);
        if self.plain {
            // No stages and no metadata: the stream's labels as they are.
            self.post_filter += 1;
            let entry = LogEntry {
                ts,
                line: String::from_utf8_lossy(line).into_owned(),
                structured_metadata: Vec::new(),
                parsed: Vec::new(),
            };
            let labels = self.stream_labels.clone();
            self.push(key, entry, labels);
            return true;
        }
        let Some(sp) = self.sp.as_mut() else {
            return true;
        };
        let Some((out, lb)) = sp.process(ts, line, meta) else {
            return true;
        };
        self.post_filter += 1;
        let line = String::from_utf8_lossy(out).into_owned();
        let (entry, hash, set) = if self.categorize {
            let sm = pairs(lb, LabelCategory::StructuredMetadata);
            let parsed = pairs(lb, LabelCategory::Parsed);
            let stream = lb.category(LabelCategory::Stream);
            (
                LogEntry {
                    ts,
                    line,
                    structured_metadata: sm,
                    parsed,
                },
                stream.fingerprint(),
                stream,
            )
        } else {
            let set = lb.to_label_set();
            (
                LogEntry {
                    ts,
                    line,
                    structured_metadata: Vec::new(),
                    parsed: Vec::new(),
                },
                set.fingerprint(),
                set,
            )
        };
        let labels = self.intern(hash, || set);
        self.push(key, entry, labels);
        true
    }

    fn push(&mut self, key: Key, entry: LogEntry, labels: Arc<LabelSet>) {
        self.heap.push(Held { key, entry, labels });
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
        // Label sets of entries that left the heap are forgotten, so what a
        // worker holds stays bounded by `limit` whatever the cardinality
        // of the entries it passed over.
        if self.interned.len() > self.limit.saturating_mul(2).saturating_add(1024) {
            self.interned.retain(|_, l| Arc::strong_count(l) > 1);
        }
    }
}

/// The labels of one category, sorted, as owned pairs.
fn pairs(lb: &LabelsBuilder, c: LabelCategory) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    lb.for_each(|n, val, cat| {
        if cat == c {
            v.push((n.to_string(), val.to_string()));
        }
    });
    v.sort();
    v
}

impl StreamVisitor for Collector<'_> {
    fn begin(&mut self, stream: &StreamInfo, span: Span) -> Option<ScanRequest> {
        (self.start, self.end) = span;
        // The best entry the span can hold, against the shared bound.
        let best = match self.direction {
            Direction::Forward => span.0,
            Direction::Backward => span.1.saturating_sub(1),
        };
        if self.beyond_bound(best) {
            return None;
        }
        self.rank = self.ranks.get(&stream.id).copied().unwrap_or(u32::MAX);
        self.seq = 0;
        self.stream_labels = stream.labels.clone();
        self.sp = Some(self.plan.pipeline.for_stream(stream.labels.clone()));
        Some(
            self.plan
                .request(self.start, self.end, self.direction, Columns::ALL),
        )
    }

    fn block(&mut self, b: &Block<'_>) -> ControlFlow<()> {
        let lo = b.timestamps.partition_point(|&t| t < self.start);
        let hi = b.timestamps.partition_point(|&t| t < self.end);
        if lo >= hi {
            return ControlFlow::Continue(());
        }
        let best = match self.direction {
            Direction::Forward => b.timestamps[lo],
            Direction::Backward => b.timestamps[hi - 1],
        };
        if self.beyond_bound(best) {
            return ControlFlow::Break(());
        }
        self.scanned_lines += (hi - lo) as u64;
        if let (Some(&s), Some(&e)) = (b.offsets.get(lo), b.offsets.get(hi)) {
            self.scanned_bytes += u64::from(e.saturating_sub(s));
        }
        let mut idx = std::mem::take(&mut self.idx);
        idx.clear();
        if self.plan.filter.is_empty() {
            idx.extend(lo as u32..hi as u32);
        } else {
            self.plan
                .filter
                .matching_in(b.lines, b.offsets, lo..hi, &mut idx);
        }
        // A stream without stages whose block has no metadata keeps its
        // labels: no builder needed.
        self.plain = !self.plan.has_stages() && b.metadata_offsets.is_empty();
        let mut flow = ControlFlow::Continue(());
        let visit = |c: &mut Self, i: u32| -> bool { c.entry(b, i as usize) };
        match self.direction {
            Direction::Forward => {
                for &i in &idx {
                    if !visit(self, i) {
                        flow = ControlFlow::Break(());
                        break;
                    }
                }
            }
            Direction::Backward => {
                for &i in idx.iter().rev() {
                    if !visit(self, i) {
                        flow = ControlFlow::Break(());
                        break;
                    }
                }
            }
        }
        self.idx = idx;
        self.publish_bound();
        flow
    }
}

/// Runs a log query over `[start, end)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    ctx: &ScanCtx<'_>,
    plan: &LogPlan,
    start: i64,
    end: i64,
    limit: u32,
    direction: Direction,
    interval: i64,
    categorize: bool,
    stats: &mut QueryStats,
) -> Result<Vec<StreamResult>, EngineError> {
    let limit = limit as usize;
    if limit == 0 || end <= start {
        return Ok(Vec::new());
    }
    let mut streams = ctx
        .source
        .streams(ctx.tenant, &plan.matchers, start, end)
        .map_err(EngineError::Storage)?;
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    let ranks: HashMap<u64, u32> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i as u32))
        .collect();
    let mut selected: Vec<Held> = Vec::new();
    let (mut lo, mut hi) = (start, end);
    loop {
        let round = collect(
            ctx, plan, &streams, &ranks, lo, hi, limit, direction, categorize, stats,
        )?;
        let full = round.len() >= limit;
        if interval <= 0 {
            selected = round;
            break;
        }
        let mut last = selected.last().map(|h| h.entry.ts);
        for h in round {
            if selected.len() >= limit {
                break;
            }
            let ok = match (last, direction) {
                (None, _) => true,
                (Some(l), Direction::Forward) => h.entry.ts >= l.saturating_add(interval),
                (Some(l), Direction::Backward) => h.entry.ts <= l.saturating_sub(interval),
            };
            if ok {
                last = Some(h.entry.ts);
                selected.push(h);
            }
        }
        let Some(l) = last else { break };
        if !full || selected.len() >= limit {
            break;
        }
        match direction {
            Direction::Forward => lo = l.saturating_add(interval),
            Direction::Backward => hi = l.saturating_sub(interval).saturating_add(1),
        }
        if lo >= hi {
            break;
        }
    }
    stats.entries_returned += selected.len() as u64;
    Ok(group(selected))
}

#[allow(clippy::too_many_arguments)]
fn collect(
    ctx: &ScanCtx<'_>,
    plan: &LogPlan,
    streams: &[StreamInfo],
    ranks: &HashMap<u64, u32>,
    start: i64,
    end: i64,
    limit: usize,
    direction: Direction,
    categorize: bool,
    stats: &mut QueryStats,
) -> Result<Vec<Held>, EngineError> {
    // Disjoint spans of one stream hold different entries, and the
    // workers' heaps merge exactly: the range can be split freely.
    let spans = time_spans(
        start,
        end,
        streams.len(),
        ctx.threads,
        direction == Direction::Forward,
    );
    let bound = AtomicI64::new(i64::MAX);
    let (workers, scan) = scan_streams(ctx, streams, &spans, || Collector {
        plan,
        bound: &bound,
        start,
        end,
        direction,
        limit,
        categorize,
        ranks,
        heap: BinaryHeap::new(),
        rank: 0,
        seq: 0,
        stream_labels: Arc::new(LabelSet::new()),
        sp: None,
        plain: false,
        idx: Vec::new(),
        interned: HashMap::new(),
        scanned_lines: 0,
        scanned_bytes: 0,
        post_filter: 0,
    })?;
    stats.scan.merge(&scan);
    let mut all: Vec<Held> = Vec::new();
    for w in workers {
        stats.total_lines += w.scanned_lines;
        stats.total_bytes += w.scanned_bytes;
        stats.post_filter_lines += w.post_filter;
        all.extend(w.heap.into_vec());
    }
    all.sort_unstable_by_key(|h| h.key);
    all.truncate(limit);
    Ok(all)
}

/// Groups entries (already in output order) by label set; streams sorted
/// by labels.
fn group(entries: Vec<Held>) -> Vec<StreamResult> {
    let mut index: HashMap<Arc<LabelSet>, usize> = HashMap::new();
    let mut out: Vec<StreamResult> = Vec::new();
    for h in entries {
        match index.get(&h.labels) {
            Some(&i) => out[i].entries.push(h.entry),
            None => {
                index.insert(h.labels.clone(), out.len());
                out.push(StreamResult {
                    labels: (*h.labels).clone(),
                    entries: vec![h.entry],
                });
            }
        }
    }
    out.sort_by_cached_key(|s| s.labels.to_string());
    out
}
