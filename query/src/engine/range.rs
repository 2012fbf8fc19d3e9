//! Range aggregations (`rate`, `count_over_time`, `sum_over_time`, ...):
//! from log entries to one value per series and step.
//!
//! Windows follow Loki: at instant `t` the window is `(t - offset - range,
//! t - offset]`. The ends of all windows cut the time line into
//! *segments*; every window is a run of whole segments. Scanning adds each
//! sample to the [`Acc`] of its series and segment, and each window's value
//! is then the combination of its segments' accumulators. So memory is
//! bounded by series × segments (at most two per step), whatever the
//! number of lines, and every sample is touched once however much windows
//! overlap. When windows do not overlap (range ≤ step, Grafana's usual
//! query) each window is exactly one segment.
//!
//! Fast paths, cheapest first, all per block:
//! * no stages and no metadata in the block: every entry belongs to the
//!   stream's own series. A count without line filters then needs only
//!   timestamps, and counts a whole segment with two binary searches;
//! * line filters only: the block matcher's hits are counted, no entry is
//!   built;
//! * no stages but structured metadata (most entries carry at least the
//!   stored `detected_level`): an entry's series follows from its encoded
//!   metadata alone, so it is looked up per distinct value (a small
//!   per-stream cache that gives up on high-cardinality metadata) rather
//!   than built per entry;
//! * otherwise each matching entry runs the pipeline and its labels pick
//!   the series.
//!
//! Labels of a series: every label of the entry (stream, structured
//! metadata, parsed, `__error__`) minus an unwrapped label, or the
//! grouping's labels (`by`/`without` after the function, or those of an
//! enclosing `sum`, pushed down as Loki does). A series that still carries
//! `__error__` and has a value fails the query with Loki's pipeline error.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::labels::LabelSet;
use crate::logql::{Grouping, RangeAggregation, RangeOp};
use crate::matcher::MatchOp;
use crate::pipeline::{ERROR_LABEL, LabelsBuilder, StreamPipeline, Unwrap, compile_unwrap};
use crate::source::{Block, Columns, Direction, ScanRequest, StreamInfo, Whole, WholeBlocks};

use super::acc::Func;
use super::error::{EngineError, max_series_error, pipeline_error};
use super::matrix::{Grid, Keep, Row, pair_hash, set_hash};
use super::plan::LogPlan;
use super::scan::{ScanCtx, Span, StreamVisitor, scan_streams, time_spans};
use super::types::QueryStats;
use super::window::{Segments, SeriesAcc, windows};

/// How entries map to series labels.
#[derive(Debug)]
struct Grouper {
    keep: Keep,
}

impl Grouper {
    fn hash_builder(&self, lb: &LabelsBuilder) -> u64 {
        let mut acc = 0u64;
        match &self.keep {
            Keep::Only(names) => {
                for n in names {
                    if let Some(v) = lb_get(lb, n) {
                        acc = acc.wrapping_add(pair_hash(n, v));
                    }
                }
            }
            Keep::AllBut(_) => lb.for_each(|n, v, _| {
                if self.keep.keeps(n) {
                    acc = acc.wrapping_add(pair_hash(n, v));
                }
            }),
        }
        acc
    }

    fn labels_builder(&self, lb: &LabelsBuilder) -> LabelSet {
        let mut pairs: Vec<(String, String)> = Vec::new();
        match &self.keep {
            Keep::Only(names) => {
                for n in names {
                    if let Some(v) = lb_get(lb, n) {
                        pairs.push((n.clone(), v.to_string()));
                    }
                }
            }
            Keep::AllBut(_) => lb.for_each(|n, v, _| {
                if self.keep.keeps(n) {
                    pairs.push((n.to_string(), v.to_string()));
                }
            }),
        }
        LabelSet::from_pairs(pairs)
    }
}

/// A small cache from encoded metadata to a series. It gives up (holds
/// nothing more and answers nothing) once a stream shows more distinct
/// metadata than [`MetaSeries::MAX`]: per-entry values such as trace ids
/// would make it a cost, not a saving.
#[derive(Debug, Default)]
struct MetaSeries {
    entries: Vec<(Vec<u8>, u32)>,
    full: bool,
}

impl MetaSeries {
    const MAX: usize = 16;

    fn get(&self, meta: &[u8]) -> Option<u32> {
        if self.full {
            return None;
        }
        self.entries
            .iter()
            .find(|(m, _)| m.as_slice() == meta)
            .map(|&(_, s)| s)
    }

    fn insert(&mut self, meta: &[u8], series: u32) {
        if self.full {
            return;
        }
        if self.entries.len() >= Self::MAX {
            self.full = true;
            self.entries.clear();
            return;
        }
        self.entries.push((meta.to_vec(), series));
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.full = false;
    }
}

/// Every label, for entries with `__error__`.
static ALL_LABELS: Grouper = Grouper {
    keep: Keep::AllBut(Vec::new()),
};

/// A label of the entry, `__error__` and `__error_details__` included.
fn lb_get<'a>(lb: &'a LabelsBuilder, name: &str) -> Option<&'a str> {
    match name {
        ERROR_LABEL => Some(lb.err()).filter(|e| !e.is_empty()),
        crate::pipeline::ERROR_DETAILS_LABEL => Some(lb.err_details()).filter(|e| !e.is_empty()),
        _ => lb.get(name),
    }
}

/// The series of a stream whose entries all keep the stream's labels (no
/// stages, no unwrap): found or created at its first sample, so a stream
/// without samples in any window creates no series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Constant {
    /// Entries go through the pipeline; each picks its series.
    No,
    /// Not looked up yet.
    Pending,
    /// This series.
    Series(u32),
}

struct Collector<'p> {
    plan: &'p LogPlan,
    func: Func,
    unwrap: Option<&'p Unwrap>,
    grouper: &'p Grouper,
    segs: &'p Segments,
    /// The segments' cut points, when the function needs no timestamp of
    /// a block wholly inside one segment (counts and bytes).
    cuts: Option<Arc<[i64]>>,
    start: i64,
    end: i64,
    bytes: bool,
    series: Vec<SeriesAcc>,
    index: HashMap<u64, u32>,
    /// Most series this collector may create (0 = unlimited).
    max_series: usize,
    /// Why collecting stopped (the series limit), for [`StreamVisitor::failure`].
    failed: Option<EngineError>,
    // Per stream.
    stream_labels: Arc<LabelSet>,
    sp: Option<StreamPipeline>,
    constant: Constant,
    /// With `constant`, the series of the stream's entries by their
    /// encoded metadata (few distinct values, such as `detected_level`),
    /// so that the labels are built once per value, not per entry.
    by_meta: MetaSeries,
    // Reused.
    idx: Vec<u32>,
    scanned_lines: u64,
    scanned_bytes: u64,
    post_filter: u64,
}

impl Collector<'_> {
    /// The series with labels hash `hash`, created with `make()` if new;
    /// `None` (and the failure recorded) when creating it would pass the
    /// series limit.
    fn series_for(&mut self, hash: u64, make: impl FnOnce() -> LabelSet) -> Option<u32> {
        if let Some(&i) = self.index.get(&hash) {
            return Some(i);
        }
        let labels = make();
        if self.max_series > 0 && self.series.len() >= self.max_series {
            if self.failed.is_none() {
                self.failed = Some(series_limit_error(
                    self.max_series,
                    self.series.iter().map(|s| &s.labels),
                    &labels,
                ));
            }
            return None;
        }
        let i = self.series.len() as u32;
        self.series.push(SeriesAcc::new(labels, self.func.is_raw()));
        self.index.insert(hash, i);
        Some(i)
    }

    /// The current stream's own series (see [`Constant`]).
    fn constant_series(&mut self) -> Option<u32> {
        match self.constant {
            Constant::Series(s) => Some(s),
            Constant::No => None,
            Constant::Pending => {
                let keep = &self.grouper.keep;
                let labels = self.stream_labels.clone();
                let s = self.series_for(keep.hash(&labels), || keep.apply(&labels))?;
                self.constant = Constant::Series(s);
                Some(s)
            }
        }
    }

    fn needs_metadata(&self, stream: &LabelSet) -> bool {
        if self.plan.has_stages() || self.unwrap.is_some() {
            return true;
        }
        match &self.grouper.keep {
            Keep::Only(names) => names.iter().any(|n| stream.get(n).is_none()),
            Keep::AllBut(_) => true,
        }
    }

    /// With `constant`, the series of entries with metadata `meta`: that
    /// of the stream's labels and the metadata, cached per distinct
    /// `meta`; `None` (and the failure recorded) past the series limit.
    fn meta_series(&mut self, meta: &[u8]) -> Option<u32> {
        if let Some(s) = self.by_meta.get(meta) {
            return Some(s);
        }
        let sp = self.sp.as_mut()?;
        // No stages: the entry is kept and its labels are the stream's
        // and the metadata's, whatever its line.
        sp.process(0, b"", meta)?;
        let lb = sp.labels_mut();
        let grouper = self.grouper;
        let hash = grouper.hash_builder(lb);
        let s = match self.index.get(&hash) {
            Some(&s) => s,
            None => {
                let labels = grouper.labels_builder(lb);
                self.series_for(hash, || labels)?
            }
        };
        self.by_meta.insert(meta, s);
        Some(s)
    }

    /// Counts the entries of an ascending timestamp column per segment
    /// into the stream's own series, and adds up their bytes from their
    /// `offsets` (`ts.len() + 1` of them) for the `bytes_*` functions;
    /// false when the series limit stops the scan.
    fn count_range(&mut self, ts: &[i64], offsets: Option<&[u32]>) -> bool {
        let (Some(&first), Some(&last)) = (ts.first(), ts.last()) else {
            return true;
        };
        let segs = self.segs;
        let b = &segs.bounds;
        // First segment that can hold `first`.
        let mut j = b.partition_point(|&x| x < first).saturating_sub(1);
        while j + 1 < b.len() && b[j] < last {
            if segs.covered[j] {
                let lo = ts.partition_point(|&t| t <= b[j]);
                let hi = ts.partition_point(|&t| t <= b[j + 1]);
                if hi > lo {
                    let Some(s) = self.constant_series() else {
                        return false;
                    };
                    let func = self.func;
                    // Bytes: the lengths of entries `lo..hi` add up to
                    // the distance between their first and last offsets.
                    let sum = offsets.map_or(0.0, |o| f64::from(o[hi].saturating_sub(o[lo])));
                    self.series[s as usize].add_whole(
                        &func,
                        j as u32,
                        (hi - lo) as u64,
                        sum,
                        ts[hi - 1],
                    );
                    self.post_filter += (hi - lo) as u64;
                }
            }
            j += 1;
        }
        true
    }

    /// A block without timestamps, every entry in the range and in one
    /// segment (asked for with [`ScanRequest::whole`] only when the
    /// stream's entries need no stage and the function no timestamp);
    /// false when the series limit stops the scan.
    fn whole_block(&mut self, b: &Block<'_>, w: Whole) -> bool {
        if w.entries == 0 || w.mint < self.start || w.maxt >= self.end {
            return true;
        }
        self.scanned_lines += w.entries as u64;
        // As the full decode would have counted them: when lines were
        // asked for.
        if self.bytes || !self.plan.filter.is_empty() {
            self.scanned_bytes += w.lines_size;
        }
        let Some(seg) = self.segs.of(w.mint) else {
            return true;
        };
        let func = self.func;
        let plain = b.metadata_offsets.is_empty();
        if plain && self.plan.filter.is_empty() {
            let Some(s) = self.constant_series() else {
                return false;
            };
            let v = if self.bytes { w.lines_size as f64 } else { 0.0 };
            self.series[s as usize].add_whole(&func, seg, w.entries as u64, v, w.maxt);
            self.post_filter += w.entries as u64;
            return true;
        }
        let mut idx = std::mem::take(&mut self.idx);
        idx.clear();
        if self.plan.filter.is_empty() {
            idx.extend(0..w.entries as u32);
        } else {
            self.plan
                .filter
                .matching_in(b.lines, b.offsets, 0..w.entries, &mut idx);
        }
        let mut ok = true;
        if plain {
            // The stream's own series: one addition for the block.
            if !idx.is_empty() {
                match self.constant_series() {
                    Some(s) => {
                        let v = if self.bytes {
                            idx.iter().map(|&i| b.line_len(i as usize) as f64).sum()
                        } else {
                            0.0
                        };
                        self.series[s as usize].add_whole(&func, seg, idx.len() as u64, v, w.maxt);
                        self.post_filter += idx.len() as u64;
                    }
                    None => ok = false,
                }
            }
        } else {
            for &i in &idx {
                let i = i as usize;
                let meta = b.metadata(i);
                let s = if meta.is_empty() {
                    self.constant_series()
                } else {
                    self.meta_series(meta)
                };
                let Some(s) = s else {
                    ok = false;
                    break;
                };
                let v = if self.bytes {
                    b.line_len(i) as f64
                } else {
                    1.0
                };
                self.post_filter += 1;
                self.series[s as usize].add(&func, seg, w.maxt, v);
            }
        }
        self.idx = idx;
        ok
    }

    /// Adds entry `i` of `b` to its series; false when the series limit
    /// stops the scan.
    fn entry(&mut self, b: &Block<'_>, i: usize) -> bool {
        let ts = b.timestamps[i];
        let Some(seg) = self.segs.of(ts) else {
            return true;
        };
        let meta = b.metadata(i);
        if self.constant != Constant::No {
            let s = if meta.is_empty() {
                self.constant_series()
            } else {
                self.meta_series(meta)
            };
            let Some(s) = s else {
                return false;
            };
            let v = if self.bytes {
                b.line_len(i) as f64
            } else {
                1.0
            };
            self.post_filter += 1;
            let func = self.func;
            self.series[s as usize].add(&func, seg, ts, v);
            return true;
        }
        let Some(sp) = self.sp.as_mut() else {
            return true;
        };
        let line = b.line(i);
        let Some(len) = sp.process(ts, line, meta).map(|(l, _)| l.len()) else {
            return true;
        };
        let lb = sp.labels_mut();
        let v = match self.unwrap {
            Some(u) => match u.extract(lb) {
                Some(v) => v,
                None => return true,
            },
            None if self.bytes => len as f64,
            None => 1.0,
        };
        self.post_filter += 1;
        // As in Loki, an entry whose pipeline failed keeps all its labels
        // whatever the grouping, so that the error is not grouped away.
        let grouper = if lb.has_err() {
            &ALL_LABELS
        } else {
            self.grouper
        };
        let hash = grouper.hash_builder(lb);
        let s = match self.index.get(&hash) {
            Some(&s) => s,
            None => {
                let labels = grouper.labels_builder(lb);
                match self.series_for(hash, || labels) {
                    Some(s) => s,
                    None => return false,
                }
            }
        };
        let func = self.func;
        self.series[s as usize].add(&func, seg, ts, v);
        true
    }
}

impl StreamVisitor for Collector<'_> {
    fn begin(&mut self, stream: &StreamInfo, span: Span) -> Option<ScanRequest> {
        (self.start, self.end) = span;
        self.stream_labels = stream.labels.clone();
        let metadata = self.needs_metadata(&stream.labels);
        // `bytes_over_time` of lines no filter or stage looks at needs
        // their lengths, not their bytes.
        let lines = !self.plan.filter.is_empty() || self.plan.has_stages() || self.unwrap.is_some();
        let lengths = lines || self.bytes;
        self.constant = if !self.plan.has_stages() && self.unwrap.is_none() {
            Constant::Pending
        } else {
            Constant::No
        };
        self.sp = metadata.then(|| self.plan.pipeline.for_stream(stream.labels.clone()));
        self.by_meta.clear();
        let mut req = self.plan.request(
            self.start,
            self.end,
            Direction::Forward,
            Columns {
                lines,
                lengths,
                metadata,
            },
        );
        if self.constant != Constant::No
            && let Some(cuts) = &self.cuts
        {
            // A block inside one segment: its entries count (or their
            // bytes add up) without their timestamps.
            req.whole = Some(WholeBlocks {
                cuts: cuts.clone(),
                columns: Columns {
                    lines: !self.plan.filter.is_empty(),
                    // Entries going to different series by their
                    // metadata need their own lengths.
                    lengths: !self.plan.filter.is_empty() || (self.bytes && metadata),
                    metadata,
                },
            });
        }
        Some(req)
    }

    fn block(&mut self, b: &Block<'_>) -> ControlFlow<()> {
        if let Some(w) = b.whole {
            return if self.whole_block(b, w) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            };
        }
        let lo = b.timestamps.partition_point(|&t| t < self.start);
        let hi = b.timestamps.partition_point(|&t| t < self.end);
        if lo >= hi {
            return ControlFlow::Continue(());
        }
        self.scanned_lines += (hi - lo) as u64;
        if let (Some(&s), Some(&e)) = (b.offsets.get(lo), b.offsets.get(hi)) {
            self.scanned_bytes += u64::from(e.saturating_sub(s));
        }
        let plain = b.metadata_offsets.is_empty();
        // The offsets of entries `lo..=hi`, for adding up their bytes.
        let offsets = if self.bytes && b.offsets.len() == b.timestamps.len() + 1 {
            b.offsets.get(lo..=hi)
        } else {
            None
        };
        if self.constant != Constant::No
            && plain
            && self.plan.filter.is_empty()
            && (!self.bytes || offsets.is_some())
        {
            return if self.count_range(&b.timestamps[lo..hi], offsets) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            };
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
        let mut flow = ControlFlow::Continue(());
        for &i in &idx {
            if !self.entry(b, i as usize) {
                flow = ControlFlow::Break(());
                break;
            }
        }
        self.idx = idx;
        flow
    }

    fn failure(&mut self) -> Option<EngineError> {
        self.failed.take()
    }
}

/// The error when a new series (`new`) would pass the series limit. A
/// query that holds series carrying `__error__` would fail on them anyway:
/// it gets Loki's pipeline error (for the new series if it carries one,
/// else for the first such series by labels) instead of the limit.
pub(crate) fn series_limit_error<'a>(
    limit: usize,
    held: impl Iterator<Item = &'a LabelSet>,
    new: &LabelSet,
) -> EngineError {
    let failed = |l: &LabelSet| l.get(ERROR_LABEL).is_some_and(|e| !e.is_empty());
    let culprit = if failed(new) {
        Some(new)
    } else {
        held.filter(|l| failed(l)).min()
    };
    match culprit {
        Some(l) => EngineError::Pipeline(pipeline_error(
            l.get(ERROR_LABEL).unwrap_or_default(),
            &l.to_string(),
        )),
        None => EngineError::Limit(max_series_error(limit)),
    }
}

/// Loki's labels of `absent_over_time`: the selector's equality matchers
/// (a name matched twice is left out).
fn absent_labels(agg: &RangeAggregation) -> LabelSet {
    let ms = &agg.range.log.matchers;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for m in ms.iter().filter(|m| m.op == MatchOp::Eq) {
        if ms.iter().filter(|x| x.name == m.name).count() == 1 {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    LabelSet::from_pairs(pairs)
}

/// Evaluates a range aggregation over `grid`. `pushed` is the grouping of
/// an enclosing `sum` that may be applied while collecting.
pub(crate) fn eval(
    ctx: &ScanCtx<'_>,
    agg: &RangeAggregation,
    pushed: Option<&Grouping>,
    grid: &Grid,
    stats: &mut QueryStats,
) -> Result<Vec<Row>, EngineError> {
    let plan = LogPlan::new(&agg.range.log)?;
    let unwrap = match &agg.range.unwrap {
        Some(u) => Some(compile_unwrap(u).map_err(|e| EngineError::Invalid(e.to_string()))?),
        None => None,
    };
    let range = agg.range.range.as_nanos();
    let offset = agg.range.offset.as_nanos();
    let func = Func {
        op: agg.op,
        unwrap: unwrap.is_some(),
        range_secs: range as f64 / 1e9,
        param: agg.param.unwrap_or(0.0),
    };
    let unwrapped = agg.range.unwrap.as_ref().map(|u| u.label.clone());
    let keep = match agg.grouping.as_ref().or(pushed) {
        // Only whether any sample exists matters: one series suffices
        // (entries with `__error__` still keep theirs).
        _ if agg.op == RangeOp::AbsentOverTime => Keep::Only(Vec::new()),
        Some(g) if !g.without => Keep::Only(g.labels.clone()),
        Some(g) => Keep::AllBut(g.labels.iter().cloned().chain(unwrapped).collect()),
        None => Keep::AllBut(unwrapped.into_iter().collect()),
    };
    let grouper = Grouper { keep };
    let segs = Segments::new(grid, range, offset);
    let (start, end) = segs.scan_range();
    let streams = ctx
        .source
        .streams(ctx.tenant, &plan.matchers, start, end)
        .map_err(EngineError::Storage)?;
    let bytes = matches!(agg.op, RangeOp::BytesOverTime | RangeOp::BytesRate);
    // Functions of the number of entries or of their bytes, which a block
    // inside one segment gives without its timestamps.
    let whole_ok = unwrap.is_none()
        && matches!(
            agg.op,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        );
    // Every sample goes to its series' accumulator for its segment, and
    // accumulators merge whatever worker filled them (raw samples are
    // sorted before windows are taken), so a stream's range can be split
    // into spans like any set of streams.
    let spans = time_spans(start, end, streams.len(), ctx.threads, true);
    let (workers, scan) = scan_streams(ctx, &streams, &spans, || Collector {
        plan: &plan,
        func,
        unwrap: unwrap.as_ref(),
        grouper: &grouper,
        segs: &segs,
        cuts: whole_ok.then(|| Arc::from(segs.bounds.as_slice())),
        start,
        end,
        bytes,
        series: Vec::new(),
        index: HashMap::new(),
        max_series: ctx.max_series,
        failed: None,
        stream_labels: Arc::new(LabelSet::new()),
        sp: None,
        constant: Constant::No,
        by_meta: MetaSeries::default(),
        idx: Vec::new(),
        scanned_lines: 0,
        scanned_bytes: 0,
        post_filter: 0,
    })?;
    stats.scan.merge(&scan);
    // Merge the workers' series (each worker kept within the limit; so
    // must their union).
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut all: Vec<SeriesAcc> = Vec::new();
    for w in workers {
        stats.total_lines += w.scanned_lines;
        stats.total_bytes += w.scanned_bytes;
        stats.post_filter_lines += w.post_filter;
        for s in w.series {
            let h = set_hash(&s.labels);
            match index.get(&h) {
                Some(&i) => all[i].absorb(&func, s),
                None => {
                    if ctx.max_series > 0 && all.len() >= ctx.max_series {
                        return Err(series_limit_error(
                            ctx.max_series,
                            all.iter().map(|s| &s.labels),
                            &s.labels,
                        ));
                    }
                    index.insert(h, all.len());
                    all.push(s);
                }
            }
        }
    }
    let mut rows: Vec<Row> = all
        .into_iter()
        .filter_map(|s| {
            let vals = windows(&func, &segs, grid, s.data);
            vals.iter().any(Option::is_some).then_some(Row {
                labels: s.labels,
                vals,
            })
        })
        .collect();
    check_errors(&rows, grid)?;
    if agg.op == RangeOp::AbsentOverTime {
        let vals: Vec<Option<f64>> = (0..grid.n)
            .map(|k| (!rows.iter().any(|r| r.vals[k].is_some())).then_some(1.0))
            .collect();
        rows = if vals.iter().any(Option::is_some) {
            vec![Row {
                labels: absent_labels(agg),
                vals,
            }]
        } else {
            Vec::new()
        };
    }
    Ok(rows)
}

/// The first series (by step, then labels) carrying `__error__` with a
/// value fails the query.
fn check_errors(rows: &[Row], grid: &Grid) -> Result<(), EngineError> {
    let mut bad: Vec<&Row> = rows
        .iter()
        .filter(|r| r.labels.get(ERROR_LABEL).is_some_and(|e| !e.is_empty()))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort_by(|a, b| a.labels.cmp(&b.labels));
    for k in 0..grid.n {
        if let Some(r) = bad.iter().find(|r| r.vals[k].is_some()) {
            let e = r.labels.get(ERROR_LABEL).unwrap_or_default();
            return Err(EngineError::Pipeline(pipeline_error(
                e,
                &r.labels.to_string(),
            )));
        }
    }
    Ok(())
}
