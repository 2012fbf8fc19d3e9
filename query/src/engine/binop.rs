//! Binary operations: arithmetic, comparisons (filtering, or 0/1 with
//! `bool`) and the set operations `and or unless`, between scalars and
//! vectors, with Prometheus' vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`) and Loki's deviations: a zero divisor
//! gives NaN for `/` and `%`.
//!
//! Between two vectors each step is matched on its own, so a conflict
//! (two series with one signature on the "one" side, or two results with
//! one label set) is an error only at a step where both exist; the
//! messages are Loki's.

use std::collections::{HashMap, HashSet};

use crate::labels::LabelSet;
use crate::logql::{BinOp, BinOpKind, Cardinality, VectorMatching};

use super::error::EngineError;
use super::matrix::{Keep, Row, Val, set_hash};
use super::range::series_limit_error;

/// `l op r`: the value and whether a comparison holds (always true for
/// arithmetic).
pub(crate) fn apply(op: BinOpKind, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOpKind::Add => (l + r, true),
        BinOpKind::Sub => (l - r, true),
        BinOpKind::Mul => (l * r, true),
        BinOpKind::Div => (if r == 0.0 { f64::NAN } else { l / r }, true),
        BinOpKind::Mod => (if r == 0.0 { f64::NAN } else { l % r }, true),
        BinOpKind::Pow => (l.powf(r), true),
        BinOpKind::Eq => (l, l == r),
        BinOpKind::NotEq => (l, l != r),
        BinOpKind::Gt => (l, l > r),
        BinOpKind::Ge => (l, l >= r),
        BinOpKind::Lt => (l, l < r),
        BinOpKind::Le => (l, l <= r),
        // Set operations never reach here.
        BinOpKind::And | BinOpKind::Or | BinOpKind::Unless => (l, true),
    }
}

/// Evaluates `lhs op rhs` over `n` steps; a vector result may hold at
/// most `max_series` series (0 = unlimited), checked as each is created.
pub(crate) fn eval(
    b: &BinOp,
    lhs: Val,
    rhs: Val,
    n: usize,
    max_series: usize,
) -> Result<Val, EngineError> {
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, keep) = apply(b.op, l, r);
            Ok(Val::Scalar(if b.op.is_comparison() {
                if keep { 1.0 } else { 0.0 }
            } else {
                v
            }))
        }
        (Val::Vector(rows), Val::Scalar(s)) => Ok(Val::Vector(with_scalar(b, rows, s, false))),
        (Val::Scalar(s), Val::Vector(rows)) => Ok(Val::Vector(with_scalar(b, rows, s, true))),
        (Val::Vector(l), Val::Vector(r)) => {
            if b.op.is_set_op() {
                let rows = set_op(b.op, &b.matching, l, r, n);
                if max_series > 0 && rows.len() > max_series {
                    return Err(series_limit_error(
                        max_series,
                        rows[..max_series].iter().map(|r| &r.labels),
                        &rows[max_series].labels,
                    ));
                }
                Ok(Val::Vector(rows))
            } else {
                Ok(Val::Vector(vector_op(b, l, r, n, max_series)?))
            }
        }
    }
}

fn with_scalar(b: &BinOp, rows: Vec<Row>, s: f64, scalar_left: bool) -> Vec<Row> {
    let cmp = b.op.is_comparison();
    rows.into_iter()
        .filter_map(|mut r| {
            for v in r.vals.iter_mut() {
                let Some(x) = *v else { continue };
                let (l, rr) = if scalar_left { (s, x) } else { (x, s) };
                let (mut value, keep) = apply(b.op, l, rr);
                if cmp && scalar_left {
                    value = x;
                }
                *v = if b.return_bool {
                    Some(if keep { 1.0 } else { 0.0 })
                } else if keep {
                    Some(value)
                } else {
                    None
                };
            }
            r.vals.iter().any(Option::is_some).then_some(r)
        })
        .collect()
}

/// The matching signature of a series.
fn signature(m: &VectorMatching, labels: &LabelSet) -> u64 {
    if m.on {
        Keep::Only(m.labels.clone()).hash(labels)
    } else {
        Keep::AllBut(m.labels.clone()).hash(labels)
    }
}

fn set_op(op: BinOpKind, m: &VectorMatching, l: Vec<Row>, r: Vec<Row>, n: usize) -> Vec<Row> {
    let lsig: Vec<u64> = l.iter().map(|x| signature(m, &x.labels)).collect();
    let rsig: Vec<u64> = r.iter().map(|x| signature(m, &x.labels)).collect();
    // Signatures present on each side, per step.
    let present = |rows: &[Row], sigs: &[u64], k: usize| -> HashSet<u64> {
        rows.iter()
            .zip(sigs)
            .filter(|(row, _)| row.vals[k].is_some())
            .map(|(_, &s)| s)
            .collect()
    };
    let keep_rows = |rows: Vec<Row>| -> Vec<Row> {
        rows.into_iter()
            .filter(|r| r.vals.iter().any(Option::is_some))
            .collect()
    };
    match op {
        BinOpKind::And | BinOpKind::Unless => {
            let mut l = l;
            for k in 0..n {
                let there = present(&r, &rsig, k);
                for (row, s) in l.iter_mut().zip(&lsig) {
                    if row.vals[k].is_some() && there.contains(s) != (op == BinOpKind::And) {
                        row.vals[k] = None;
                    }
                }
            }
            keep_rows(l)
        }
        _ => {
            let mut r = r;
            for k in 0..n {
                let taken = present(&l, &lsig, k);
                for (row, s) in r.iter_mut().zip(&rsig) {
                    if row.vals[k].is_some() && taken.contains(s) {
                        row.vals[k] = None;
                    }
                }
            }
            let mut all = keep_rows(l);
            all.extend(keep_rows(r));
            merge_same_labels(all, n)
        }
    }
}

/// Rows with equal labels merged (first value per step wins).
fn merge_same_labels(rows: Vec<Row>, n: usize) -> Vec<Row> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Row> = Vec::new();
    for r in rows {
        let h = set_hash(&r.labels);
        match index.get(&h) {
            Some(&i) => {
                for k in 0..n {
                    if out[i].vals[k].is_none() {
                        out[i].vals[k] = r.vals[k];
                    }
                }
            }
            None => {
                index.insert(h, out.len());
                out.push(r);
            }
        }
    }
    out
}

/// Prometheus' result labels of a vector/vector operation.
fn result_labels(many: &LabelSet, one: &LabelSet, m: &VectorMatching) -> LabelSet {
    let mut out = if m.card == Cardinality::OneToOne {
        if m.on {
            Keep::Only(m.labels.clone()).apply(many)
        } else {
            Keep::AllBut(m.labels.clone()).apply(many)
        }
    } else {
        many.clone()
    };
    for name in &m.include {
        match one.get(name) {
            Some(v) if !v.is_empty() => out.insert(name.clone(), v.to_string()),
            _ => {
                out.remove(name);
            }
        }
    }
    out
}

fn vector_op(
    b: &BinOp,
    l: Vec<Row>,
    r: Vec<Row>,
    n: usize,
    max_series: usize,
) -> Result<Vec<Row>, EngineError> {
    let m = &b.matching;
    // `many` is matched against the unique `one` side.
    let swapped = m.card == Cardinality::OneToMany;
    let (many, one) = if swapped { (r, l) } else { (l, r) };
    let many_sig: Vec<u64> = many.iter().map(|x| signature(m, &x.labels)).collect();
    let one_sig: Vec<u64> = one.iter().map(|x| signature(m, &x.labels)).collect();
    let mut out: Vec<Row> = Vec::new();
    let mut out_index: HashMap<u64, usize> = HashMap::new();
    let mut one_at: HashMap<u64, usize> = HashMap::new();
    let mut matched: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut labels_of: HashMap<(usize, usize), (LabelSet, u64)> = HashMap::new();
    for k in 0..n {
        one_at.clear();
        for (j, row) in one.iter().enumerate() {
            if row.vals[k].is_none() {
                continue;
            }
            if let Some(&prev) = one_at.get(&one_sig[j]) {
                let side = if swapped { "left" } else { "right" };
                return Err(EngineError::Invalid(format!(
                    "found duplicate series on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    row.labels, one[prev].labels
                )));
            }
            one_at.insert(one_sig[j], j);
        }
        matched.clear();
        for (i, row) in many.iter().enumerate() {
            let Some(mv) = row.vals[k] else { continue };
            let Some(&j) = one_at.get(&many_sig[i]) else {
                continue;
            };
            let Some(ov) = one[j].vals[k] else { continue };
            let (fl, fr) = if swapped { (ov, mv) } else { (mv, ov) };
            let (value, keep) = apply(b.op, fl, fr);
            let value = if b.return_bool {
                if keep { 1.0 } else { 0.0 }
            } else if keep {
                value
            } else {
                continue;
            };
            let (labels, lh) = labels_of
                .entry((i, j))
                .or_insert_with(|| {
                    let l = result_labels(&row.labels, &one[j].labels, m);
                    let h = set_hash(&l);
                    (l, h)
                })
                .clone();
            let seen = matched.entry(many_sig[i]).or_default();
            if m.card == Cardinality::OneToOne {
                if !seen.is_empty() {
                    return Err(EngineError::Invalid(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else if seen.contains(&lh) {
                return Err(EngineError::Invalid(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            seen.push(lh);
            let oi = match out_index.get(&lh) {
                Some(&oi) => oi,
                None => {
                    if max_series > 0 && out.len() >= max_series {
                        return Err(series_limit_error(
                            max_series,
                            out.iter().map(|r| &r.labels),
                            &labels,
                        ));
                    }
                    out.push(Row {
                        labels,
                        vals: vec![None; n],
                    });
                    out_index.insert(lh, out.len() - 1);
                    out.len() - 1
                }
            };
            out[oi].vals[k] = Some(value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)], v: f64) -> Row {
        Row {
            labels: LabelSet::from_pairs(pairs.iter().copied()),
            vals: vec![Some(v)],
        }
    }

    fn op(kind: BinOpKind, matching: VectorMatching, return_bool: bool) -> BinOp {
        BinOp {
            op: kind,
            lhs: Box::new(crate::logql::SampleExpr::Literal(0.0)),
            rhs: Box::new(crate::logql::SampleExpr::Literal(0.0)),
            return_bool,
            matching,
        }
    }

    #[test]
    fn arithmetic_and_zero_divisors() {
        assert!(apply(BinOpKind::Div, 1.0, 0.0).0.is_nan());
        assert!(apply(BinOpKind::Mod, -1.0, 0.0).0.is_nan());
        assert_eq!(apply(BinOpKind::Mod, 16.0, 6.0).0, 4.0);
        assert_eq!(apply(BinOpKind::Pow, 2.0, 3.0).0, 8.0);
    }

    #[test]
    fn one_to_one_keeps_on_labels_and_detects_conflicts() {
        let l = vec![row(&[("app", "a"), ("m", "x")], 6.0)];
        let r = vec![row(&[("app", "a")], 6.0)];
        let on = VectorMatching {
            on: true,
            labels: vec!["app".into()],
            ..VectorMatching::default()
        };
        let v = eval(
            &op(BinOpKind::Add, on, false),
            Val::Vector(l.clone()),
            Val::Vector(r.clone()),
            1,
            0,
        )
        .unwrap();
        assert_eq!(v, Val::Vector(vec![row(&[("app", "a")], 12.0)]));
        let ign = VectorMatching {
            on: false,
            labels: vec!["m".into()],
            ..VectorMatching::default()
        };
        let two = vec![l[0].clone(), row(&[("app", "a"), ("m", "y")], 4.0)];
        let e = eval(
            &op(BinOpKind::Gt, ign.clone(), true),
            Val::Vector(two.clone()),
            Val::Vector(r.clone()),
            1,
            0,
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("many-to-one matching must be explicit")
        );
        let e = eval(
            &op(BinOpKind::Gt, ign, true),
            Val::Vector(r),
            Val::Vector(two),
            1,
            0,
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("found duplicate series on the right hand-side")
        );
    }

    #[test]
    fn set_operations() {
        let l = vec![row(&[("p", "a")], 1.0), row(&[("p", "b")], 2.0)];
        let r = vec![row(&[("p", "a"), ("x", "1")], 9.0), row(&[("p", "c")], 3.0)];
        let on = VectorMatching {
            on: true,
            labels: vec!["p".into()],
            ..VectorMatching::default()
        };
        let and = eval(
            &op(BinOpKind::And, on.clone(), false),
            Val::Vector(l.clone()),
            Val::Vector(r.clone()),
            1,
            0,
        )
        .unwrap();
        assert_eq!(and, Val::Vector(vec![row(&[("p", "a")], 1.0)]));
        let unless = eval(
            &op(BinOpKind::Unless, on.clone(), false),
            Val::Vector(l.clone()),
            Val::Vector(r.clone()),
            1,
            0,
        )
        .unwrap();
        assert_eq!(unless, Val::Vector(vec![row(&[("p", "b")], 2.0)]));
        let or = eval(
            &op(BinOpKind::Or, on, false),
            Val::Vector(l),
            Val::Vector(r),
            1,
            0,
        )
        .unwrap();
        let Val::Vector(or) = or else { panic!() };
        assert_eq!(or.len(), 3);
        assert_eq!(or[2], row(&[("p", "c")], 3.0));
    }
}
