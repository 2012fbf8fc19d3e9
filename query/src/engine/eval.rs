//! Metric queries: walking the expression tree over the step grid.
//!
//! Leaves are range aggregations (scanned from storage, see [`range`]),
//! literals and `vector()`. Inner nodes work on whole series: vector
//! aggregations, binary operations and `label_replace`. As in Loki, a
//! `sum` directly over `count_over_time`, `rate`, `bytes_over_time`,
//! `bytes_rate` or `sum_over_time` without its own grouping hands its
//! grouping down to the range aggregation, so series are grouped while
//! scanning (fewer series in memory; and, as in Loki, a grouping that
//! drops `__error__` hides pipeline errors).
//!
//! [`range`]: super::range

use crate::labels::LabelSet;
use crate::logql::{LabelReplace, RangeOp, SampleExpr, VectorOp};

use super::binop;
use super::error::EngineError;
use super::matrix::{Grid, Row, Val};
use super::range;
use super::scan::ScanCtx;
use super::types::QueryStats;
use super::vector;

/// State of one metric evaluation.
pub(crate) struct Evaluator<'a, 'c> {
    /// Storage and cancellation.
    pub ctx: &'a ScanCtx<'c>,
    /// Evaluation instants.
    pub grid: Grid,
    /// Statistics, summed over every scan.
    pub stats: QueryStats,
}

/// Whether `sum` may push its grouping into range function `op`.
fn can_push_down(op: RangeOp) -> bool {
    matches!(
        op,
        RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::SumOverTime
            | RangeOp::Rate
            | RangeOp::CountOverTime
    )
}

impl Evaluator<'_, '_> {
    /// Evaluates `e`.
    pub fn eval(&mut self, e: &SampleExpr) -> Result<Val, EngineError> {
        if self.ctx.cancelled() {
            return Err(EngineError::Cancelled);
        }
        let n = self.grid.n;
        match e {
            SampleExpr::Literal(v) => Ok(Val::Scalar(*v)),
            SampleExpr::Vector(v) => Ok(Val::Vector(vec![Row {
                labels: LabelSet::new(),
                vals: vec![Some(*v); n],
            }])),
            SampleExpr::RangeAggregation(r) => Ok(Val::Vector(range::eval(
                self.ctx,
                r,
                None,
                &self.grid,
                &mut self.stats,
            )?)),
            SampleExpr::VectorAggregation(v) => {
                let rows = match &*v.expr {
                    SampleExpr::RangeAggregation(r)
                        if v.op == VectorOp::Sum && r.grouping.is_none() && can_push_down(r.op) =>
                    {
                        range::eval(self.ctx, r, Some(&v.grouping), &self.grid, &mut self.stats)?
                    }
                    inner => match self.eval(inner)? {
                        Val::Vector(rows) => rows,
                        Val::Scalar(s) => vec![Row {
                            labels: LabelSet::new(),
                            vals: vec![Some(s); n],
                        }],
                    },
                };
                Ok(Val::Vector(vector::aggregate(
                    v.op,
                    v.param,
                    &v.grouping,
                    rows,
                    n,
                )))
            }
            SampleExpr::BinOp(b) => {
                let l = self.eval(&b.lhs)?;
                let r = self.eval(&b.rhs)?;
                binop::eval(b, l, r, n, self.ctx.max_series)
            }
            SampleExpr::LabelReplace(l) => {
                let rows = match self.eval(&l.expr)? {
                    Val::Vector(rows) => rows,
                    Val::Scalar(s) => vec![Row {
                        labels: LabelSet::new(),
                        vals: vec![Some(s); n],
                    }],
                };
                Ok(Val::Vector(label_replace(l, rows)))
            }
        }
    }
}

/// `label_replace(v, dst, replacement, src, regex)`: where the whole
/// value of `src` (empty when absent) matches, `dst` becomes the
/// replacement with `$1`/`${name}` expanded (an empty result removes it).
/// The regex was compiled when the query was parsed.
fn label_replace(l: &LabelReplace, rows: Vec<Row>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut buf = String::new();
    for mut r in rows {
        let src = r.labels.get(&l.src).unwrap_or("").to_string();
        if let Some(caps) = l.regex.captures(&src) {
            buf.clear();
            caps.expand(&l.replacement, &mut buf);
            if buf.is_empty() {
                r.labels.remove(&l.dst);
            } else {
                r.labels.insert(l.dst.clone(), buf.clone());
            }
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::ReplaceRegex;

    #[test]
    fn label_replace_expands_and_removes() {
        let rows = vec![Row {
            labels: LabelSet::from_pairs([("app", "api-1"), ("x", "y")]),
            vals: vec![Some(1.0)],
        }];
        let lr = |dst: &str, repl: &str, src: &str, re: &str| LabelReplace {
            expr: Box::new(SampleExpr::Literal(0.0)),
            dst: dst.into(),
            replacement: repl.into(),
            src: src.into(),
            regex: ReplaceRegex::new(re).unwrap(),
        };
        let out = label_replace(&lr("svc", "$1", "app", "(.*)-[0-9]+"), rows.clone());
        assert_eq!(out[0].labels.get("svc"), Some("api"));
        let out = label_replace(&lr("x", "", "app", ".*"), rows.clone());
        assert_eq!(out[0].labels.get("x"), None);
        // No match: unchanged (the regex is anchored).
        let out = label_replace(&lr("svc", "$1", "app", "api"), rows.clone());
        assert_eq!(out, rows);
    }
}
