//! The LogQL engine: one call, [`evaluate`], from a query text to a
//! result, over any [`LogSource`].
//!
//! A query is parsed and checked once, then compiled into a plan per log
//! selector (`plan`): label matchers and the time range go to the
//! storage's stream lookup, leading line filters become a block matcher
//! that searches whole decompressed blocks, literals every match must
//! contain go to the storage as `must_contain` so its per-block token
//! filters skip blocks, and the columns read are the fewest the query needs
//! (a bare `count_over_time` reads timestamps only).
//!
//! Execution streams block by block on several threads (`scan`); what
//! it keeps is bounded by the result, never by the data read:
//! * log queries (`logs`) keep at most `limit` entries per worker and
//!   stop reading a stream once it cannot contribute;
//! * metric queries (`range`) keep one small accumulator per output
//!   series and window segment; vector aggregations, binary operations and
//!   `label_replace` then work series by series (`eval`, `vector`,
//!   `binop`).
//!
//! Semantics are Loki's: log queries return entries with `start <= ts <
//! end` newest first by default; a metric query evaluated at `t` sees the
//! window `(t - offset - range, t - offset]`, a window without lines gives
//! no sample, steps run from `start` to `end` by `step`; series that carry
//! `__error__` fail the query with Loki's `pipeline error` text unless a
//! filter removes them; results over `max_series` fail with Loki's limit
//! text. `detected_level` is stored metadata like any other (the store
//! detects it when a line is pushed, see [`crate::level`]): nothing is
//! derived at query time, so a query's series do not depend on its text.
//!
//! [`LogSource`]: crate::LogSource

mod acc;
mod binop;
mod error;
mod eval;
mod logs;
mod matrix;
#[doc(hidden)]
pub mod mem;
mod plan;
mod range;
mod scan;
mod types;
mod vector;
mod window;

use std::time::Instant;

use crate::logql::{Expr, SampleExpr, VectorOp, check_expr, parse_expr};
use crate::source::LogSource;

pub use error::{CANCELLED, EngineError, INSTANT_LOG_QUERY, TOO_MANY_POINTS};
pub use types::{LogEntry, QueryRequest, QueryStats, QueryValue, Sample, Series, StreamResult};

use eval::Evaluator;
use matrix::{Grid, Val};
use plan::LogPlan;
use scan::{ScanCtx, default_threads};

/// Most intervals between the first and the last step of a range query,
/// as in Loki (so at most `MAX_POINTS + 1` points per series).
pub const MAX_POINTS: i64 = 11_000;

/// Evaluates `req` against `source`.
pub fn evaluate(
    source: &dyn LogSource,
    req: &QueryRequest,
) -> Result<(QueryValue, QueryStats), EngineError> {
    evaluate_with_threads(source, req, default_threads())
}

/// [`evaluate`] with at most `threads` scan threads (at least one).
pub fn evaluate_with_threads(
    source: &dyn LogSource,
    req: &QueryRequest,
    threads: usize,
) -> Result<(QueryValue, QueryStats), EngineError> {
    let started = Instant::now();
    let expr = parse_expr(&req.query)?;
    check_expr(&expr)?;
    let ctx = ScanCtx {
        source,
        tenant: &req.tenant,
        cancel: req.cancel.as_deref(),
        threads: threads.max(1),
        max_series: req.max_series,
    };
    let mut stats = QueryStats::default();
    let value = match &expr {
        Expr::Log(l) => {
            if req.instant {
                return Err(EngineError::Invalid(INSTANT_LOG_QUERY.into()));
            }
            let plan = LogPlan::new(l)?;
            QueryValue::Streams(logs::run(
                &ctx,
                &plan,
                req.start,
                req.end,
                req.limit,
                req.direction,
                req.interval,
                req.categorize_labels,
                &mut stats,
            )?)
        }
        Expr::Sample(s) => {
            let grid = grid(req, s)?;
            let mut ev = Evaluator {
                ctx: &ctx,
                grid,
                stats: QueryStats::default(),
            };
            let v = ev.eval(s)?;
            stats = ev.stats;
            let out = finish(v, &grid, req, sort_order(s))?;
            stats.entries_returned = match &out {
                QueryValue::Matrix(m) => m.iter().map(|s| s.points.len() as u64).sum(),
                QueryValue::Vector(v) => v.len() as u64,
                QueryValue::Scalar { .. } => 1,
                QueryValue::Streams(_) => 0,
            };
            out
        }
    };
    stats.exec_seconds = started.elapsed().as_secs_f64();
    Ok((value, stats))
}

/// The evaluation instants of a metric query.
fn grid(req: &QueryRequest, e: &SampleExpr) -> Result<Grid, EngineError> {
    if req.instant {
        return Ok(Grid {
            start: req.end,
            step: 0,
            n: 1,
        });
    }
    if has_op(e, VectorOp::ApproxTopk) {
        return Err(EngineError::Invalid(
            "count min sketches are only supported on instant queries".into(),
        ));
    }
    if req.step <= 0 {
        return Err(EngineError::Invalid(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if req.end < req.start {
        return Err(EngineError::Invalid(
            "end timestamp must not be before or equal to start time".into(),
        ));
    }
    // In i128: any two i64 instants and any positive step give a
    // representable count, checked before anything is sized by it.
    let intervals = (i128::from(req.end) - i128::from(req.start)) / i128::from(req.step);
    if intervals > i128::from(MAX_POINTS) {
        return Err(EngineError::Invalid(TOO_MANY_POINTS.into()));
    }
    Ok(Grid {
        start: req.start,
        step: req.step,
        n: intervals as usize + 1,
    })
}

fn has_op(e: &SampleExpr, op: VectorOp) -> bool {
    match e {
        SampleExpr::VectorAggregation(v) => v.op == op || has_op(&v.expr, op),
        SampleExpr::BinOp(b) => has_op(&b.lhs, op) || has_op(&b.rhs, op),
        SampleExpr::LabelReplace(l) => has_op(&l.expr, op),
        _ => false,
    }
}

/// `Some(desc)` when the query sorts its instant result by value (Loki:
/// any `sort`/`sort_desc` in the expression, the outermost deciding).
fn sort_order(e: &SampleExpr) -> Option<bool> {
    match e {
        SampleExpr::VectorAggregation(v) => match v.op {
            VectorOp::Sort => Some(false),
            VectorOp::SortDesc => Some(true),
            _ => sort_order(&v.expr),
        },
        SampleExpr::BinOp(b) => sort_order(&b.lhs).or_else(|| sort_order(&b.rhs)),
        SampleExpr::LabelReplace(l) => sort_order(&l.expr),
        _ => None,
    }
}

/// Turns the root value into Loki's result type.
fn finish(
    v: Val,
    grid: &Grid,
    req: &QueryRequest,
    sort: Option<bool>,
) -> Result<QueryValue, EngineError> {
    let rows = match v {
        Val::Scalar(value) if req.instant => {
            return Ok(QueryValue::Scalar {
                ts: grid.start,
                value,
            });
        }
        Val::Scalar(value) => {
            return Ok(QueryValue::Matrix(vec![Series {
                labels: crate::LabelSet::new(),
                points: (0..grid.n).map(|k| (grid.t(k), value)).collect(),
            }]));
        }
        Val::Vector(rows) => rows,
    };
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|r| r.vals.iter().any(Option::is_some))
        .collect();
    rows.sort_by(|a, b| a.labels.cmp(&b.labels));
    rows.dedup_by(|b, a| {
        if a.labels != b.labels {
            return false;
        }
        for (x, y) in a.vals.iter_mut().zip(&b.vals) {
            if x.is_none() {
                *x = *y;
            }
        }
        true
    });
    if req.max_series > 0 && rows.len() > req.max_series {
        return Err(EngineError::Limit(error::max_series_error(req.max_series)));
    }
    if req.instant {
        let mut samples: Vec<(crate::LabelSet, f64)> = rows
            .into_iter()
            .filter_map(|r| r.vals[0].map(|v| (r.labels, v)))
            .collect();
        if let Some(desc) = sort {
            vector::sort_instant(&mut samples, desc);
        }
        return Ok(QueryValue::Vector(
            samples
                .into_iter()
                .map(|(labels, value)| Sample {
                    labels,
                    ts: grid.start,
                    value,
                })
                .collect(),
        ));
    }
    Ok(QueryValue::Matrix(
        rows.into_iter()
            .map(|r| Series {
                labels: r.labels,
                points: r
                    .vals
                    .iter()
                    .enumerate()
                    .filter_map(|(k, v)| v.map(|v| (grid.t(k), v)))
                    .collect(),
            })
            .collect(),
    ))
}
