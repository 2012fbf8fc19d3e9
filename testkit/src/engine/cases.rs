//! Random data and queries for the engine's property tests, and the
//! comparison of the engine's answer with the reference evaluator
//! ([`super::naive`]). Storage-agnostic: the query crate's tests run it
//! over an in-memory source, the store's tests over the real ingester.

use larch_query::engine::{QueryRequest, QueryValue, evaluate_with_threads};
use larch_query::{Direction, LabelSet, LogSource};
use proptest::prelude::*;

use super::naive::{Filter, Query, RefEntry, RefStream, count_query, log_query};

const S: i64 = 1_000_000_000;

const WORDS: [&str; 6] = [
    "error disk full",
    "info request ok",
    "warn needle here",
    "debug trace",
    "ERROR upper",
    "needle",
];

/// Up to four streams over `app` × `pod`, each with distinct timestamps
/// (so every order is fully determined), lines from a small vocabulary
/// and optional `tid` metadata.
pub fn data() -> impl Strategy<Value = Vec<RefStream>> {
    let stream = (
        0usize..2,
        0usize..3,
        proptest::collection::btree_map(0i64..200_000, (0usize..WORDS.len(), 0usize..3), 0..40),
    )
        .prop_map(|(app, pod, entries)| RefStream {
            labels: LabelSet::from_pairs([
                ("app", ["a", "b"][app].to_string()),
                ("pod", pod.to_string()),
            ]),
            entries: entries
                .into_iter()
                .enumerate()
                .map(|(i, (ms, (w, m)))| RefEntry {
                    ts: ms * 1_000_000,
                    line: format!("{} #{i}", WORDS[w]),
                    meta: match m {
                        0 => vec![],
                        1 => vec![("tid".to_string(), "t1".to_string())],
                        _ => vec![("tid".to_string(), "t2".to_string())],
                    },
                })
                .collect(),
        });
    proptest::collection::vec(stream, 1..5).prop_map(|mut v| {
        // One stream per label set.
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v.dedup_by(|a, b| a.labels == b.labels);
        v
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    prop_oneof![
        Just(Filter::Contains("needle".into())),
        Just(Filter::Contains("error".into())),
        Just(Filter::Contains("#1".into())),
        Just(Filter::NotContains("debug".into())),
        Just(Filter::NotContains("e".into())),
        Just(Filter::Regex("(?i)error".into())),
        Just(Filter::Regex("#[0-9]$".into())),
        Just(Filter::NotRegex("ok|full".into())),
    ]
}

/// A query: one `app` or every stream, and up to two line filters.
pub fn query() -> impl Strategy<Value = Query> {
    (
        prop_oneof![
            Just(None),
            Just(Some("a".to_string())),
            Just(Some("b".to_string()))
        ],
        proptest::collection::vec(filter(), 0..3),
    )
        .prop_map(|(app, filters)| Query { app, filters })
}

/// A log query's parameters.
#[derive(Clone, Debug)]
pub struct LogCase {
    /// Start of the range (ns, inclusive).
    pub start: i64,
    /// End of the range (ns, exclusive).
    pub end: i64,
    /// Most entries returned.
    pub limit: u32,
    /// Order of the entries.
    pub direction: Direction,
}

/// A log query's range, limit and direction.
pub fn log_case() -> impl Strategy<Value = LogCase> {
    (0i64..220, 0i64..220, 1u32..15, any::<bool>()).prop_map(|(a, b, limit, fwd)| LogCase {
        start: a.min(b) * S,
        end: (a.max(b) + 1) * S,
        limit,
        direction: if fwd {
            Direction::Forward
        } else {
            Direction::Backward
        },
    })
}

/// A metric query's parameters.
#[derive(Clone, Debug)]
pub struct MetricCase {
    /// The first step's time (ns).
    pub start: i64,
    /// Between steps (ns).
    pub step: i64,
    /// Number of steps.
    pub n: usize,
    /// The range of `[range]` (ns).
    pub range: i64,
    /// `rate` (else `count_over_time`).
    pub rate: bool,
    /// `sum by (...)` around it, or no aggregation.
    pub by: Option<Vec<String>>,
}

/// A metric range query's steps, range, function and grouping.
pub fn metric_case() -> impl Strategy<Value = MetricCase> {
    (
        0i64..120,
        prop_oneof![Just(5i64), Just(10), Just(15), Just(30)],
        1usize..9,
        prop_oneof![Just(5i64), Just(10), Just(30), Just(60)],
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(vec!["pod".to_string()])),
            Just(Some(vec!["tid".to_string()])),
            Just(Some(vec![])),
        ],
    )
        .prop_map(|(start, step, n, range, rate, by)| MetricCase {
            start: start * S,
            step: step * S,
            n,
            range: range * S,
            rate,
            by,
        })
}

fn request(query: String, start: i64, end: i64) -> QueryRequest {
    QueryRequest {
        tenant: "fake".into(),
        query,
        start,
        end,
        ..QueryRequest::default()
    }
}

/// The engine's log query result against the reference.
pub fn check_log(
    src: &dyn LogSource,
    data: &[RefStream],
    q: &Query,
    c: &LogCase,
    threads: usize,
) -> Result<(), TestCaseError> {
    let mut req = request(q.selector(), c.start, c.end);
    req.limit = c.limit;
    req.direction = c.direction;
    let (got, _) = evaluate_with_threads(src, &req, threads)
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", req.query)))?;
    let QueryValue::Streams(got) = got else {
        return Err(TestCaseError::fail("not a streams result"));
    };
    let got: Vec<(LabelSet, Vec<(i64, String)>)> = got
        .into_iter()
        .map(|s| {
            (
                s.labels,
                s.entries.into_iter().map(|e| (e.ts, e.line)).collect(),
            )
        })
        .collect();
    let want = log_query(data, q, c.start, c.end, c.limit as usize, c.direction);
    prop_assert_eq!(got, want, "query {}", req.query);
    Ok(())
}

/// The engine's metric range query result against the reference.
pub fn check_metric(
    src: &dyn LogSource,
    data: &[RefStream],
    q: &Query,
    c: &MetricCase,
    threads: usize,
) -> Result<(), TestCaseError> {
    let f = if c.rate { "rate" } else { "count_over_time" };
    let inner = format!("{f}({} [{}s])", q.selector(), c.range / S);
    let text = match &c.by {
        None => inner,
        Some(by) => format!("sum by ({}) ({inner})", by.join(", ")),
    };
    let mut req = request(text, c.start, c.start + (c.n as i64 - 1) * c.step);
    req.step = c.step;
    let (got, _) = evaluate_with_threads(src, &req, threads)
        .map_err(|e| TestCaseError::fail(format!("{}: {e}", req.query)))?;
    let QueryValue::Matrix(got) = got else {
        return Err(TestCaseError::fail("not a matrix"));
    };
    let want = count_query(
        data,
        q,
        c.start,
        c.step,
        c.n,
        c.range,
        c.rate,
        c.by.as_deref(),
    );
    prop_assert_eq!(got.len(), want.len(), "query {}: {:?}", req.query, got);
    for (s, (labels, vals)) in got.iter().zip(want.iter()) {
        prop_assert_eq!(&s.labels, labels, "query {}", req.query);
        let points: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (c.start + k as i64 * c.step, v)))
            .collect();
        prop_assert_eq!(
            s.points.len(),
            points.len(),
            "query {} {}",
            req.query,
            labels
        );
        for (a, b) in s.points.iter().zip(&points) {
            prop_assert_eq!(a.0, b.0);
            prop_assert!(
                (a.1 - b.1).abs() <= 1e-9 * b.1.abs().max(1.0),
                "{} vs {}",
                a.1,
                b.1
            );
        }
    }
    Ok(())
}
