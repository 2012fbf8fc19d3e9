//! A reference evaluator for the property tests: plain loops over every
//! entry, no blocks, no heaps, no segments. It covers what the property
//! tests generate ([`super::cases`]): a selector on `app`, line filters,
//! log queries with limit and direction, and `count_over_time`/`rate`,
//! optionally under `sum by (...)`. It depends on nothing but
//! `larch_query`'s types.

use std::collections::BTreeMap;

use larch_query::{Direction, LabelSet, MatchOp, Matcher};

/// One entry of the reference data.
#[derive(Clone, Debug, PartialEq)]
pub struct RefEntry {
    /// Unix ns.
    pub ts: i64,
    /// The line.
    pub line: String,
    /// Structured metadata (name, value).
    pub meta: Vec<(String, String)>,
}

/// One stream of the reference data.
#[derive(Clone, Debug)]
pub struct RefStream {
    /// The stream's labels.
    pub labels: LabelSet,
    /// Its entries, in any order.
    pub entries: Vec<RefEntry>,
}

/// A line filter.
#[derive(Clone, Debug)]
pub enum Filter {
    /// `|= "s"`
    Contains(String),
    /// `!= "s"`
    NotContains(String),
    /// `|~ "re"`
    Regex(String),
    /// `!~ "re"`
    NotRegex(String),
}

impl Filter {
    /// The filter as LogQL.
    pub fn logql(&self) -> String {
        match self {
            Filter::Contains(s) => format!("|= {s:?}"),
            Filter::NotContains(s) => format!("!= {s:?}"),
            Filter::Regex(s) => format!("|~ {s:?}"),
            Filter::NotRegex(s) => format!("!~ {s:?}"),
        }
    }

    /// Whether `line` passes the filter.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Filter::Contains(s) => line.contains(s.as_str()),
            Filter::NotContains(s) => !line.contains(s.as_str()),
            Filter::Regex(r) => unanchored(r).matches(line),
            Filter::NotRegex(r) => !unanchored(r).matches(line),
        }
    }
}

/// A regex search (matchers are anchored, so pad with `.*`).
fn unanchored(re: &str) -> Matcher {
    Matcher::new("line", MatchOp::Re, format!(".*(?:{re}).*")).unwrap()
}

/// The selector: one `app` or every stream.
#[derive(Clone, Debug)]
pub struct Query {
    /// `{app="<this>"}`, or `{app=~".+"}` when `None`.
    pub app: Option<String>,
    /// Line filters after the selector.
    pub filters: Vec<Filter>,
}

impl Query {
    /// The query as LogQL.
    pub fn selector(&self) -> String {
        let sel = match &self.app {
            Some(a) => format!("{{app={a:?}}}"),
            None => "{app=~\".+\"}".to_string(),
        };
        let filters: Vec<String> = self.filters.iter().map(Filter::logql).collect();
        format!("{sel} {}", filters.join(" ")).trim().to_string()
    }

    fn selects(&self, s: &RefStream) -> bool {
        match &self.app {
            Some(a) => s.labels.get("app") == Some(a.as_str()),
            None => s.labels.get("app").is_some_and(|v| !v.is_empty()),
        }
    }

    fn passes(&self, e: &RefEntry) -> bool {
        self.filters.iter().all(|f| f.matches(&e.line))
    }
}

/// An entry's labels: the stream's plus its metadata (a name the stream
/// has becomes `<name>_extracted`).
pub fn entry_labels(stream: &LabelSet, meta: &[(String, String)]) -> LabelSet {
    let mut out = stream.clone();
    for (n, v) in meta {
        if stream.get(n).is_some() {
            out.insert(format!("{n}_extracted"), v.clone());
        } else {
            out.insert(n.clone(), v.clone());
        }
    }
    out
}

/// A log query: `(labels, [(ts, line)])` per label set, label sets sorted
/// by their text, entries in the query's order.
#[allow(clippy::type_complexity)]
pub fn log_query(
    data: &[RefStream],
    q: &Query,
    start: i64,
    end: i64,
    limit: usize,
    dir: Direction,
) -> Vec<(LabelSet, Vec<(i64, String)>)> {
    let mut streams: Vec<&RefStream> = data.iter().filter(|s| q.selects(s)).collect();
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    // (ts key, stream rank, position key, labels, ts, line)
    let mut all: Vec<(i128, usize, i64, LabelSet, i64, String)> = Vec::new();
    for (rank, s) in streams.iter().enumerate() {
        let mut entries: Vec<&RefEntry> = s.entries.iter().collect();
        entries.sort_by_key(|e| e.ts);
        for (pos, e) in entries.iter().enumerate() {
            if e.ts < start || e.ts >= end || !q.passes(e) {
                continue;
            }
            let (tk, pk) = match dir {
                Direction::Forward => (e.ts as i128, pos as i64),
                Direction::Backward => (-(e.ts as i128), -(pos as i64)),
            };
            all.push((
                tk,
                rank,
                pk,
                entry_labels(&s.labels, &e.meta),
                e.ts,
                e.line.clone(),
            ));
        }
    }
    all.sort_by_key(|a| (a.0, a.1, a.2));
    all.truncate(limit);
    let mut groups: BTreeMap<String, (LabelSet, Vec<(i64, String)>)> = BTreeMap::new();
    for (_, _, _, labels, ts, line) in all {
        groups
            .entry(labels.to_string())
            .or_insert_with(|| (labels, Vec::new()))
            .1
            .push((ts, line));
    }
    groups.into_values().collect()
}

/// `count_over_time` (or `rate`) over `(t - range, t]` at `start + k *
/// step`, `k < n`, optionally summed by `by` labels: values per series,
/// `None` where the window holds nothing.
#[allow(clippy::too_many_arguments)]
pub fn count_query(
    data: &[RefStream],
    q: &Query,
    start: i64,
    step: i64,
    n: usize,
    range: i64,
    rate: bool,
    by: Option<&[String]>,
) -> BTreeMap<LabelSet, Vec<Option<f64>>> {
    let mut out: BTreeMap<LabelSet, Vec<Option<f64>>> = BTreeMap::new();
    for k in 0..n {
        let t = start + k as i64 * step;
        let mut counts: BTreeMap<LabelSet, f64> = BTreeMap::new();
        for s in data.iter().filter(|s| q.selects(s)) {
            for e in &s.entries {
                if e.ts <= t - range || e.ts > t || !q.passes(e) {
                    continue;
                }
                let all = entry_labels(&s.labels, &e.meta);
                let key = match by {
                    None => all,
                    Some(names) => LabelSet::from_pairs(
                        names
                            .iter()
                            .filter_map(|n| all.get(n).map(|v| (n.clone(), v.to_string()))),
                    ),
                };
                *counts.entry(key).or_default() += 1.0;
            }
        }
        for (labels, c) in counts {
            let v = if rate { c / (range as f64 / 1e9) } else { c };
            out.entry(labels).or_insert_with(|| vec![None; n])[k] = Some(v);
        }
    }
    out
}
