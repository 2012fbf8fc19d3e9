//! Vector aggregations: `sum avg count min max stddev stdvar` aggregate
//! the series of each group step by step; `topk bottomk approx_topk`
//! select series per group and step; `sort sort_desc` only order an
//! instant result (see [`sort_instant`]).
//!
//! Semantics follow Prometheus as Loki runs it: a group's value at a step
//! exists when one of its series has a value there; `min`/`max` prefer
//! numbers to NaN; `avg` is an incremental mean (so huge values do not
//! overflow and infinities of one sign stay infinite); `stddev`/`stdvar`
//! are population statistics by Welford's method; `topk` ranks NaN lowest
//! and, on equal values, keeps the series met first (series are visited in
//! label order).

use std::collections::{BinaryHeap, HashMap};

use crate::labels::LabelSet;
use crate::logql::{Grouping, VectorOp};

use super::matrix::{Keep, Row, set_hash};

#[derive(Clone, Copy, Debug, Default)]
struct Group {
    n: u64,
    value: f64,
    mean: f64,
}

fn fold(op: VectorOp, g: &mut Group, v: f64) {
    g.n += 1;
    if g.n == 1 {
        g.value = match op {
            VectorOp::Stddev | VectorOp::Stdvar => 0.0,
            _ => v,
        };
        g.mean = v;
        return;
    }
    let n = g.n as f64;
    match op {
        VectorOp::Sum => g.value += v,
        VectorOp::Max if g.value < v || g.value.is_nan() => g.value = v,
        VectorOp::Min if g.value > v || g.value.is_nan() => g.value = v,
        VectorOp::Avg => {
            if g.mean.is_infinite() {
                if v.is_infinite() && (g.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            g.mean += v / n - g.mean / n;
        }
        VectorOp::Stddev | VectorOp::Stdvar => {
            let delta = v - g.mean;
            g.mean += delta / n;
            g.value += delta * (v - g.mean);
        }
        _ => {}
    }
}

fn finish(op: VectorOp, g: &Group) -> f64 {
    match op {
        VectorOp::Count => g.n as f64,
        VectorOp::Avg => g.mean,
        VectorOp::Stdvar => g.value / g.n as f64,
        VectorOp::Stddev => (g.value / g.n as f64).sqrt(),
        _ => g.value,
    }
}

/// Applies a vector aggregation to `rows` over `n` steps.
pub(crate) fn aggregate(
    op: VectorOp,
    param: Option<i64>,
    grouping: &Grouping,
    mut rows: Vec<Row>,
    n: usize,
) -> Vec<Row> {
    let keep = Keep::from_grouping(grouping);
    match op {
        VectorOp::Sort | VectorOp::SortDesc => rows,
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
            rows.sort_by(|a, b| a.labels.cmp(&b.labels));
            select(op, param.unwrap_or(0).max(0) as usize, &keep, rows, n)
        }
        _ => {
            let mut index: HashMap<u64, usize> = HashMap::new();
            let mut out: Vec<(LabelSet, Vec<Group>)> = Vec::new();
            for r in &rows {
                let h = keep.hash(&r.labels);
                let gi = *index.entry(h).or_insert_with(|| {
                    out.push((keep.apply(&r.labels), vec![Group::default(); n]));
                    out.len() - 1
                });
                for (k, v) in r.vals.iter().enumerate() {
                    if let Some(v) = v {
                        fold(op, &mut out[gi].1[k], *v);
                    }
                }
            }
            out.into_iter()
                .map(|(labels, groups)| Row {
                    labels,
                    vals: groups
                        .iter()
                        .map(|g| (g.n > 0).then(|| finish(op, g)))
                        .collect(),
                })
                .collect()
        }
    }
}

/// Whether `a` ranks above `b` for `topk` (NaN lowest).
fn above(a: f64, b: f64) -> bool {
    if b.is_nan() {
        return !a.is_nan();
    }
    a > b
}

/// Whether `a` ranks above `b` for `bottomk` (NaN lowest priority too).
fn below(a: f64, b: f64) -> bool {
    if b.is_nan() {
        return !a.is_nan();
    }
    a < b
}

/// A chosen series in `select`'s heap: the heap's top is the worst value,
/// and among equal values the one in the lowest slot, which is the one a
/// better newcomer replaces (taking over its slot).
#[derive(Clone, Copy, Debug)]
struct Chosen {
    value: f64,
    slot: usize,
    row: usize,
    better: fn(f64, f64) -> bool,
}

impl PartialEq for Chosen {
    fn eq(&self, other: &Chosen) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Chosen {}
impl PartialOrd for Chosen {
    fn partial_cmp(&self, other: &Chosen) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Chosen {
    /// Greater = worse (then lower slot).
    fn cmp(&self, other: &Chosen) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        if (self.better)(other.value, self.value) {
            Ordering::Greater
        } else if (self.better)(self.value, other.value) {
            Ordering::Less
        } else {
            other.slot.cmp(&self.slot)
        }
    }
}

/// `topk`/`bottomk`: per group and step the `k` best series. A bounded
/// heap keeps the worst chosen on top, so a step costs `members * log k`
/// whatever `k` the query asks for; on equal values the series met first
/// stays.
#[allow(clippy::needless_range_loop)] // steps index two tables
fn select(op: VectorOp, k: usize, keep: &Keep, rows: Vec<Row>, n: usize) -> Vec<Row> {
    let better: fn(f64, f64) -> bool = if op == VectorOp::Bottomk {
        below
    } else {
        above
    };
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let h = set_hash(&keep.apply(&r.labels));
        groups
            .entry(h)
            .or_insert_with(|| {
                order.push(h);
                Vec::new()
            })
            .push(i);
    }
    let mut out_vals: Vec<Vec<Option<f64>>> = vec![vec![None; n]; rows.len()];
    // `k` comes from the query: never size anything by it alone.
    let mut chosen: BinaryHeap<Chosen> = BinaryHeap::with_capacity(k.min(rows.len()));
    for h in &order {
        let members = &groups[h];
        for step in 0..n {
            chosen.clear();
            for &i in members {
                let Some(v) = rows[i].vals[step] else {
                    continue;
                };
                if chosen.len() < k {
                    let slot = chosen.len();
                    chosen.push(Chosen {
                        value: v,
                        slot,
                        row: i,
                        better,
                    });
                    continue;
                }
                // Replace the worst chosen if `v` beats it.
                if let Some(mut worst) = chosen.peek_mut()
                    && better(v, worst.value)
                {
                    worst.value = v;
                    worst.row = i;
                }
            }
            for c in chosen.iter() {
                out_vals[c.row][step] = Some(c.value);
            }
        }
    }
    rows.into_iter()
        .zip(out_vals)
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .map(|(r, vals)| Row {
            labels: r.labels,
            vals,
        })
        .collect()
}

/// Orders an instant result for `sort` (`desc` false) or `sort_desc`:
/// by value, NaN last, ties by labels.
pub(crate) fn sort_instant(rows: &mut [(LabelSet, f64)], desc: bool) {
    rows.sort_by(|a, b| {
        let o = match (a.1.is_nan(), b.1.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if desc => b.1.total_cmp(&a.1),
            _ => a.1.total_cmp(&b.1),
        };
        o.then_with(|| a.0.cmp(&b.0))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `select` by the definition: per step, keep each value unless `k`
    /// values are kept already, in which case it replaces the worst kept
    /// (the first of equal worst ones) if it is better.
    #[allow(clippy::needless_range_loop)] // steps index two tables
    fn select_reference(op: VectorOp, k: usize, rows: &[Row], n: usize) -> Vec<Vec<Option<f64>>> {
        let better = if op == VectorOp::Bottomk {
            below
        } else {
            above
        };
        let mut out = vec![vec![None; n]; rows.len()];
        for step in 0..n {
            let mut chosen: Vec<(usize, f64)> = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                let Some(v) = r.vals[step] else { continue };
                if chosen.len() < k {
                    chosen.push((i, v));
                    continue;
                }
                let mut worst = 0;
                for (j, c) in chosen.iter().enumerate() {
                    if better(chosen[worst].1, c.1) {
                        worst = j;
                    }
                }
                if k > 0 && better(v, chosen[worst].1) {
                    chosen[worst] = (i, v);
                }
            }
            for (i, v) in chosen {
                out[i][step] = Some(v);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn heap_selection_matches_the_definition(
            vals in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        3 => (0i8..6).prop_map(|v| Some(f64::from(v))),
                        1 => Just(Some(f64::NAN)),
                        1 => Just(None),
                    ],
                    3,
                ),
                0..12,
            ),
            k in 0usize..14,
            bottom in any::<bool>(),
        ) {
            let op = if bottom { VectorOp::Bottomk } else { VectorOp::Topk };
            let rows: Vec<Row> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| Row {
                    labels: LabelSet::from_pairs([("s", format!("{i:02}"))]),
                    vals: v.clone(),
                })
                .collect();
            let want = select_reference(op, k, &rows, 3);
            let got = aggregate(op, Some(k as i64), &Grouping::default(), rows.clone(), 3);
            for (r, w) in rows.iter().zip(&want) {
                let g = got
                    .iter()
                    .find(|x| x.labels == r.labels)
                    .map_or(vec![None; 3], |x| x.vals.clone());
                let same = g.iter().zip(w).all(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => a.to_bits() == b.to_bits(),
                    (None, None) => true,
                    _ => false,
                });
                prop_assert!(same, "{}: got {:?}, want {:?}", r.labels, g, w);
            }
        }
    }

    fn row(pairs: &[(&str, &str)], vals: &[Option<f64>]) -> Row {
        Row {
            labels: LabelSet::from_pairs(pairs.iter().copied()),
            vals: vals.to_vec(),
        }
    }

    fn by(l: &[&str]) -> Grouping {
        Grouping {
            without: false,
            labels: l.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn sums_and_counts_per_step() {
        let rows = vec![
            row(&[("a", "1"), ("b", "x")], &[Some(1.0), None]),
            row(&[("a", "1"), ("b", "y")], &[Some(2.0), Some(5.0)]),
            row(&[("a", "2")], &[None, None]),
        ];
        let s = aggregate(VectorOp::Sum, None, &by(&["a"]), rows.clone(), 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].vals, vec![Some(3.0), Some(5.0)]);
        assert_eq!(s[1].vals, vec![None, None]);
        let c = aggregate(VectorOp::Count, None, &Grouping::default(), rows, 2);
        assert_eq!(c[0].labels, LabelSet::new());
        assert_eq!(c[0].vals, vec![Some(2.0), Some(1.0)]);
    }

    #[test]
    fn avg_and_stddev_special_values() {
        let rows = |a: f64, b: f64| {
            vec![
                row(&[("k", "1")], &[Some(a)]),
                row(&[("k", "2")], &[Some(b)]),
            ]
        };
        let g = Grouping::default();
        let avg = |a, b| aggregate(VectorOp::Avg, None, &g, rows(a, b), 1)[0].vals[0].unwrap();
        assert_eq!(avg(2.0, f64::INFINITY), f64::INFINITY);
        assert!(avg(f64::INFINITY, f64::NEG_INFINITY).is_nan());
        assert_eq!(avg(2.0, 4.0), 3.0);
        let sd = aggregate(VectorOp::Stddev, None, &g, rows(2.0, 4.0), 1)[0].vals[0];
        assert_eq!(sd, Some(1.0));
    }

    #[test]
    fn topk_selects_per_step() {
        let rows = vec![
            row(&[("p", "a")], &[Some(1.0), Some(9.0)]),
            row(&[("p", "b")], &[Some(5.0), Some(2.0)]),
            row(&[("p", "c")], &[Some(f64::NAN), Some(3.0)]),
        ];
        let t = aggregate(
            VectorOp::Topk,
            Some(1),
            &Grouping::default(),
            rows.clone(),
            2,
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].vals, vec![None, Some(9.0)]);
        assert_eq!(t[1].vals, vec![Some(5.0), None]);
        let b = aggregate(VectorOp::Bottomk, Some(1), &Grouping::default(), rows, 2);
        assert_eq!(b[0].vals, vec![Some(1.0), None]);
        assert_eq!(b[1].vals, vec![None, Some(2.0)]);
    }
}
