//! The engine's intermediate values: every metric subexpression evaluates
//! to a scalar or to a set of series with one optional value per step of
//! the query's [`Grid`].
//!
//! A series' labels are fixed across steps, so label work (grouping keys,
//! matching signatures) is done once per series, while values are
//! combined step by step, which keeps Loki's per-step semantics (a series
//! absent at a step takes no part in that step).

use crate::labels::LabelSet;
use crate::logql::Grouping;

/// Evaluation instants: `start`, `start + step`, ... (`n` of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    /// First instant (ns).
    pub start: i64,
    /// Distance between instants (ns); 0 for an instant query.
    pub step: i64,
    /// Number of instants, at least 1.
    pub n: usize,
}

impl Grid {
    /// Instant `k`.
    pub fn t(&self, k: usize) -> i64 {
        self.start
            .saturating_add(self.step.saturating_mul(k as i64))
    }
}

/// One series: labels and a value per step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    /// The labels.
    pub labels: LabelSet,
    /// `vals[k]` is the value at instant `k`, if any.
    pub vals: Vec<Option<f64>>,
}

/// A subexpression's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    /// A number (a literal or literal arithmetic).
    Scalar(f64),
    /// Series (from range aggregations, `vector()`, and operations on
    /// them).
    Vector(Vec<Row>),
}

/// Order-independent hash of a label pair, summed over a set: equal sets
/// hash equal whatever order their pairs are visited in.
#[inline]
pub(crate) fn pair_hash(name: &str, value: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(name.as_bytes());
    h.update(&[0xff]);
    h.update(value.as_bytes());
    h.digest()
}

/// Hash of a whole label set (see [`pair_hash`]).
pub(crate) fn set_hash(labels: &LabelSet) -> u64 {
    labels.iter().fold(0u64, |acc, l| {
        acc.wrapping_add(pair_hash(&l.name, &l.value))
    })
}

/// Which labels of a series survive an aggregation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Only these (`by (..)`).
    Only(Vec<String>),
    /// All but these (`without (..)`, or no grouping minus an unwrapped
    /// label).
    AllBut(Vec<String>),
}

impl Keep {
    /// From a grouping clause.
    pub fn from_grouping(g: &Grouping) -> Keep {
        if g.without {
            Keep::AllBut(g.labels.clone())
        } else {
            Keep::Only(g.labels.clone())
        }
    }

    /// Whether label `name` survives.
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            Keep::Only(l) => l.iter().any(|x| x == name),
            Keep::AllBut(l) => !l.iter().any(|x| x == name),
        }
    }

    /// The surviving labels of `labels`.
    pub fn apply(&self, labels: &LabelSet) -> LabelSet {
        LabelSet::from_pairs(
            labels
                .iter()
                .filter(|l| self.keeps(&l.name))
                .map(|l| (l.name.clone(), l.value.clone())),
        )
    }

    /// Hash of the surviving labels of `labels` (equal to
    /// `set_hash(&self.apply(labels))`).
    pub fn hash(&self, labels: &LabelSet) -> u64 {
        labels
            .iter()
            .filter(|l| self.keeps(&l.name))
            .fold(0u64, |acc, l| {
                acc.wrapping_add(pair_hash(&l.name, &l.value))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_and_hash_agree() {
        let l = LabelSet::from_pairs([("a", "1"), ("b", "2"), ("c", "3")]);
        for k in [
            Keep::Only(vec!["a".into(), "c".into(), "z".into()]),
            Keep::AllBut(vec!["b".into()]),
            Keep::AllBut(vec![]),
        ] {
            assert_eq!(k.hash(&l), set_hash(&k.apply(&l)));
        }
        assert_eq!(
            Keep::Only(vec!["a".into()]).apply(&l).to_string(),
            r#"{a="1"}"#
        );
        let g = Grid {
            start: 10,
            step: 5,
            n: 3,
        };
        assert_eq!((g.t(1), g.t(2)), (15, 20));
    }
}
