//! The inverted label index of one tenant: `name -> value -> stream ids`.
//!
//! Stream ids are dense `u32`s assigned in creation order, so every posting
//! list is sorted by construction and set operations are linear merges.
//! Equality matchers are one map lookup; regex matchers walk the sorted
//! values of their label (the term dictionary); matchers that accept the
//! empty value (`!=`, `!~`, `=~".*"`) are evaluated as "all streams minus
//! those whose value the matcher rejects", which also covers streams that
//! lack the label.

use std::collections::BTreeMap;

use larch_query::{LabelSet, Matcher};

/// Dense id of a stream within its tenant.
pub type StreamId = u32;

/// The postings of one tenant.
#[derive(Debug, Default)]
pub struct Postings {
    map: BTreeMap<Box<str>, BTreeMap<Box<str>, Ids>>,
    count: u32,
}

/// The ids of one label value. A value held by one stream only (a pod
/// name, one per stream) keeps its id inline, without a vector of its
/// own: with a million such values that is 32 MiB or more less.
#[derive(Debug)]
enum Ids {
    One(StreamId),
    Many(Vec<StreamId>),
}

impl Ids {
    fn push(&mut self, id: StreamId) {
        match self {
            Ids::One(first) => *self = Ids::Many(vec![*first, id]),
            Ids::Many(v) => v.push(id),
        }
    }

    fn as_slice(&self) -> &[StreamId] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(v) => v,
        }
    }
}

impl Postings {
    /// Adds stream `id` (which must be greater than every id added
    /// before) with `labels`.
    pub fn add(&mut self, id: StreamId, labels: &LabelSet) {
        debug_assert!(id >= self.count);
        for l in labels {
            let values = match self.map.get_mut(l.name.as_str()) {
                Some(v) => v,
                None => self.map.entry(l.name.as_str().into()).or_default(),
            };
            match values.get_mut(l.value.as_str()) {
                Some(ids) => ids.push(id),
                None => {
                    values.insert(l.value.as_str().into(), Ids::One(id));
                }
            }
        }
        self.count = id + 1;
    }

    /// Number of ids ever added (ids are `0..count`).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Label names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| &**k)
    }

    /// Values of `name` with their postings, sorted by value.
    pub fn values(&self, name: &str) -> impl Iterator<Item = (&str, &[StreamId])> {
        self.map
            .get(name)
            .into_iter()
            .flat_map(|m| m.iter().map(|(v, ids)| (&**v, ids.as_slice())))
    }

    /// Values of `name` after `after` (from the first with `None`) with
    /// their postings, sorted by value: a walk over a label with a million
    /// values can be taken in pages, each under its own lock.
    pub fn values_after<'a>(
        &'a self,
        name: &str,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a [StreamId])> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.map.get(name).into_iter().flat_map(move |m| {
            m.range::<str, _>((from, Bound::Unbounded))
                .map(|(v, ids)| (&**v, ids.as_slice()))
        })
    }

    /// Ids of the streams that satisfy every matcher, sorted.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<StreamId> {
        let mut positive: Option<Vec<StreamId>> = None;
        let mut exclude: Vec<StreamId> = Vec::new();
        // Positive matchers first, most selective (smallest) first.
        let mut sets: Vec<Vec<StreamId>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                let rejected = self.union_where(&m.name, |v| !m.matches(v));
                exclude = union(&exclude, &rejected);
            } else if m.op == larch_query::MatchOp::Eq {
                // One lookup, not a walk over every value of the label.
                sets.push(
                    self.map
                        .get(m.name.as_str())
                        .and_then(|values| values.get(m.value.as_str()))
                        .map_or_else(Vec::new, |ids| ids.as_slice().to_vec()),
                );
            } else {
                sets.push(self.union_where(&m.name, |v| m.matches(v)));
            }
        }
        sets.sort_by_key(Vec::len);
        for s in sets {
            positive = Some(match positive {
                None => s,
                Some(p) => intersect(&p, &s),
            });
            if positive.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let base = positive.unwrap_or_else(|| (0..self.count).collect());
        subtract(&base, &exclude)
    }

    fn union_where(&self, name: &str, pred: impl Fn(&str) -> bool) -> Vec<StreamId> {
        let Some(values) = self.map.get(name) else {
            return Vec::new();
        };
        let mut lists: Vec<&[StreamId]> = values
            .iter()
            .filter(|(v, _)| pred(v))
            .map(|(_, ids)| ids.as_slice())
            .collect();
        match lists.len() {
            0 => Vec::new(),
            1 => lists[0].to_vec(),
            _ => {
                let mut all: Vec<StreamId> =
                    lists.iter_mut().flat_map(|l| l.iter().copied()).collect();
                all.sort_unstable();
                all.dedup();
                all
            }
        }
    }
}

/// The values both sorted, duplicate-free lists hold, in order.
pub(crate) fn intersect<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn union(a: &[StreamId], b: &[StreamId]) -> Vec<StreamId> {
    let mut out: Vec<StreamId> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn subtract(a: &[StreamId], b: &[StreamId]) -> Vec<StreamId> {
    if b.is_empty() {
        return a.to_vec();
    }
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|x| {
            while j < b.len() && b[j] < *x {
                j += 1;
            }
            !(j < b.len() && b[j] == *x)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_query::MatchOp;
    use proptest::prelude::*;

    fn m(name: &str, op: MatchOp, v: &str) -> Matcher {
        Matcher::new(name, op, v).unwrap()
    }

    fn sample() -> (Postings, Vec<LabelSet>) {
        let sets = vec![
            LabelSet::from_pairs([("app", "api"), ("env", "prod")]),
            LabelSet::from_pairs([("app", "api"), ("env", "dev")]),
            LabelSet::from_pairs([("app", "web"), ("env", "prod")]),
            LabelSet::from_pairs([("app", "db")]),
        ];
        let mut p = Postings::default();
        for (i, s) in sets.iter().enumerate() {
            p.add(i as u32, s);
        }
        (p, sets)
    }

    #[test]
    fn matchers() {
        let (p, _) = sample();
        assert_eq!(p.select(&[m("app", MatchOp::Eq, "api")]), vec![0, 1]);
        assert_eq!(
            p.select(&[
                m("app", MatchOp::Re, "api|web"),
                m("env", MatchOp::Eq, "prod")
            ]),
            vec![0, 2]
        );
        assert_eq!(p.select(&[m("env", MatchOp::NotEq, "prod")]), vec![1, 3]);
        assert_eq!(
            p.select(&[m("app", MatchOp::Re, ".+"), m("env", MatchOp::NotRe, "d.*")]),
            vec![0, 2, 3]
        );
        assert_eq!(p.select(&[m("env", MatchOp::Eq, "")]), vec![3]);
        assert_eq!(p.select(&[m("nope", MatchOp::Eq, "x")]), Vec::<u32>::new());
        assert_eq!(p.names().collect::<Vec<_>>(), vec!["app", "env"]);
    }

    #[test]
    fn values_in_pages() {
        let (p, _) = sample();
        let all: Vec<(&str, &[u32])> = p.values_after("app", None).collect();
        assert_eq!(
            all,
            vec![("api", &[0, 1][..]), ("db", &[3][..]), ("web", &[2][..])]
        );
        assert_eq!(all, p.values("app").collect::<Vec<_>>());
        let rest: Vec<&str> = p.values_after("app", Some("api")).map(|(v, _)| v).collect();
        assert_eq!(rest, vec!["db", "web"]);
        // A value that is not held still places the page.
        let rest: Vec<&str> = p.values_after("app", Some("c")).map(|(v, _)| v).collect();
        assert_eq!(rest, vec!["db", "web"]);
        assert_eq!(p.values_after("app", Some("web")).count(), 0);
        assert_eq!(p.values_after("nope", None).count(), 0);
    }

    proptest! {
        /// The index agrees with evaluating the matchers on every stream.
        #[test]
        fn agrees_with_brute_force(
            streams in proptest::collection::vec(proptest::collection::btree_map("[abc]", "[xyz]{0,2}", 0..3), 0..20),
            name in "[abcd]", value in "[xyz]{0,2}", op in 0..4u8,
        ) {
            let mut p = Postings::default();
            let sets: Vec<LabelSet> = streams.iter().map(|s| {
                let mut l = LabelSet::from_pairs(s.clone());
                l.remove_empty();
                l
            }).collect();
            for (i, s) in sets.iter().enumerate() { p.add(i as u32, s); }
            let op = [MatchOp::Eq, MatchOp::NotEq, MatchOp::Re, MatchOp::NotRe][op as usize];
            let matcher = m(&name, op, &value);
            let want: Vec<u32> = sets.iter().enumerate()
                .filter(|(_, s)| matcher.matches(s.get(&name).unwrap_or("")))
                .map(|(i, _)| i as u32).collect();
            prop_assert_eq!(p.select(&[matcher]), want);
        }
    }
}
