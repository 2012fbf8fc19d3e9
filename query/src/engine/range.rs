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
use crate::source::{Block, Columns, Direction, ScanRequest, StreamInfo};

use super::acc::Func;
use super::detected_level::Deriver;
use super::error::{EngineError, pipeline_error};
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

struct Collector<'p> {
    plan: &'p LogPlan,
    func: Func,
    unwrap: Option<&'p Unwrap>,
    grouper: &'p Grouper,
    segs: &'p Segments,
    start: i64,
    end: i64,
    bytes: bool,
    series: Vec<SeriesAcc>,
    index: HashMap<u64, u32>,
    // Per stream.
    stream_labels: Arc<LabelSet>,
    sp: Option<StreamPipeline>,
    constant: Option<u32>,
    // Reused.
    idx: Vec<u32>,
    deriver: Deriver,
    scanned_lines: u64,
    scanned_bytes: u64,
    post_filter: u64,
}

impl Collector<'_> {
    fn series_for(&mut self, hash: u64, make: impl FnOnce() -> LabelSet) -> u32 {
        if let Some(&i) = self.index.get(&hash) {
            return i;
        }
        let i = self.series.len() as u32;
        self.series.push(SeriesAcc::new(make(), self.func.is_raw()));
        self.index.insert(hash, i);
        i
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

    /// Counts entries `lo..hi` of an ascending timestamp column per
    /// segment, into series `s`.
    fn count_range(&mut self, ts: &[i64], s: u32) {
        let (Some(&first), Some(&last)) = (ts.first(), ts.last()) else {
            return;
        };
        let b = &self.segs.bounds;
        // First segment that can hold `first`.
        let mut j = b.partition_point(|&x| x < first).saturating_sub(1);
        while j + 1 < b.len() && b[j] < last {
            if self.segs.covered[j] {
                let lo = ts.partition_point(|&t| t <= b[j]);
                let hi = ts.partition_point(|&t| t <= b[j + 1]);
                if hi > lo {
                    let func = self.func;
                    self.series[s as usize].add_count(
                        &func,
                        j as u32,
                        (hi - lo) as u64,
                        ts[hi - 1],
                    );
                    self.post_filter += (hi - lo) as u64;
                }
            }
            j += 1;
        }
    }

    fn entry(&mut self, b: &Block<'_>, i: usize) {
        let ts = b.timestamps[i];
        let Some(seg) = self.segs.of(ts) else {
            return;
        };
        let meta = b.metadata(i);
        if let Some(s) = self.constant
            && meta.is_empty()
        {
            let v = if self.bytes {
                b.line(i).len() as f64
            } else {
                1.0
            };
            self.post_filter += 1;
            let func = self.func;
            self.series[s as usize].add(&func, seg, ts, v);
            return;
        }
        let Some(sp) = self.sp.as_mut() else {
            return;
        };
        let line = b.line(i);
        let meta = if self.plan.detected_level {
            self.deriver.metadata(&self.stream_labels, meta, line)
        } else {
            meta
        };
        let Some(len) = sp.process(ts, line, meta).map(|(l, _)| l.len()) else {
            return;
        };
        let lb = sp.labels_mut();
        let v = match self.unwrap {
            Some(u) => match u.extract(lb) {
                Some(v) => v,
                None => return,
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
                let s = self.series.len() as u32;
                self.series.push(SeriesAcc::new(labels, self.func.is_raw()));
                self.index.insert(hash, s);
                s
            }
        };
        let func = self.func;
        self.series[s as usize].add(&func, seg, ts, v);
    }
}

impl StreamVisitor for Collector<'_> {
    fn begin(&mut self, stream: &StreamInfo, span: Span) -> Option<ScanRequest> {
        (self.start, self.end) = span;
        self.stream_labels = stream.labels.clone();
        let metadata = self.needs_metadata(&stream.labels);
        let lines = self.bytes
            || !self.plan.filter.is_empty()
            || self.plan.has_stages()
            || self.unwrap.is_some();
        self.constant = if !self.plan.has_stages() && self.unwrap.is_none() {
            let keep = &self.grouper.keep;
            let labels = &stream.labels;
            Some(self.series_for(keep.hash(labels), || keep.apply(labels)))
        } else {
            None
        };
        self.sp = metadata.then(|| self.plan.pipeline.for_stream(stream.labels.clone()));
        Some(self.plan.request(
            self.start,
            self.end,
            Direction::Forward,
            Columns { lines, metadata },
        ))
    }

    fn block(&mut self, b: &Block<'_>) -> ControlFlow<()> {
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
        if let Some(s) = self.constant
            && plain
            && self.plan.filter.is_empty()
            && !self.bytes
        {
            self.count_range(&b.timestamps[lo..hi], s);
            return ControlFlow::Continue(());
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
        for &i in &idx {
            self.entry(b, i as usize);
        }
        self.idx = idx;
        ControlFlow::Continue(())
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
    detected_level: bool,
    stats: &mut QueryStats,
) -> Result<Vec<Row>, EngineError> {
    let plan = LogPlan::new(&agg.range.log, detected_level)?;
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
        start,
        end,
        bytes,
        series: Vec::new(),
        index: HashMap::new(),
        stream_labels: Arc::new(LabelSet::new()),
        sp: None,
        constant: None,
        idx: Vec::new(),
        deriver: Deriver::default(),
        scanned_lines: 0,
        scanned_bytes: 0,
        post_filter: 0,
    })?;
    stats.scan.merge(&scan);
    // Merge the workers' series.
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
