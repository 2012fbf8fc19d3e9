//! Limits that keep a query's memory bounded by configuration rather than
//! by the data: `max_series` is enforced when a series would be created
//! (in range aggregations, before a `sum by` or any other aggregation sees
//! it, and in binary operations), and extreme ranges and parameters are
//! refused or evaluated without overflow.

use larch_query::LabelSet;
use larch_query::engine::mem::{Entry, MemSource, Stream};
use larch_query::engine::{EngineError, QueryRequest, QueryValue, evaluate, evaluate_with_threads};

const S: i64 = 1_000_000_000;

/// Loki's series-limit text for `n`.
fn limit_text(n: usize) -> String {
    format!(
        "maximum number of series ({n}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    )
}

/// `streams` streams `{app="x", pod="<i>"}` of `per` plain lines each, one a
/// second from 0 s.
fn many_streams(streams: usize, per: i64) -> MemSource {
    MemSource::new(
        (0..streams)
            .map(|i| Stream {
                labels: LabelSet::from_pairs([("app", "x".to_string()), ("pod", i.to_string())]),
                entries: (0..per)
                    .map(|t| Entry {
                        ts: t * S,
                        line: format!("line {t}"),
                        meta: Vec::new(),
                    })
                    .collect(),
            })
            .collect(),
        16,
    )
}

/// One stream `{app="j"}` of `n` JSON lines, each with a distinct `id`,
/// one every 10 ms from 0 s, and a `lvl` of two values.
fn json_lines(n: i64) -> MemSource {
    MemSource::new(
        vec![Stream {
            labels: LabelSet::from_pairs([("app", "j")]),
            entries: (0..n)
                .map(|i| Entry {
                    ts: i * (S / 100),
                    line: format!(r#"{{"id":"u{i}","lvl":"{}","n":{i}}}"#, i % 2),
                    meta: Vec::new(),
                })
                .collect(),
        }],
        64,
    )
}

fn range(query: &str, start: i64, end: i64, step: i64, max_series: usize) -> QueryRequest {
    QueryRequest {
        tenant: "fake".into(),
        query: query.into(),
        start,
        end,
        step,
        limit: 100,
        max_series,
        ..QueryRequest::default()
    }
}

fn series_count(v: &QueryValue) -> usize {
    match v {
        QueryValue::Matrix(m) => m.len(),
        QueryValue::Vector(v) => v.len(),
        QueryValue::Streams(s) => s.len(),
        QueryValue::Scalar { .. } => 1,
    }
}

#[test]
fn series_limit_stops_the_scan_when_a_series_would_be_created() {
    let src = many_streams(200, 30);
    let req = range(
        r#"count_over_time({app="x"}[10s])"#,
        10 * S,
        30 * S,
        10 * S,
        5,
    );
    let e = evaluate_with_threads(&src, &req, 1).unwrap_err();
    assert!(matches!(e, EngineError::Limit(_)), "{e:?}");
    assert_eq!(e.to_string(), limit_text(5));
    assert_eq!(e.http_status(), 400);
    // The sixth stream would have made the sixth series: nothing after it
    // was read.
    let scanned = src.requests.lock().unwrap().len();
    assert_eq!(
        scanned, 6,
        "streams scanned before the limit stopped the query"
    );

    // On several threads each worker stops at its own limit and the union
    // is checked too.
    let src = many_streams(200, 30);
    let e = evaluate_with_threads(&src, &req, 4).unwrap_err();
    assert_eq!(e.to_string(), limit_text(5));
    assert!(src.requests.lock().unwrap().len() < 200);

    // At the limit exactly, the query answers.
    let src = many_streams(5, 30);
    let (v, _) = evaluate(&src, &req).unwrap();
    assert_eq!(series_count(&v), 5);
}

#[test]
fn streams_without_samples_in_any_window_create_no_series() {
    // Windows of 1 s every 10 s: a stream whose only entries fall between
    // windows is selected but holds no sample, so it cannot reach the
    // limit.
    let mut streams = vec![Stream {
        labels: LabelSet::from_pairs([("app", "x"), ("pod", "in")]),
        entries: vec![Entry {
            ts: 10 * S,
            line: "in".into(),
            meta: Vec::new(),
        }],
    }];
    for i in 0..20 {
        streams.push(Stream {
            labels: LabelSet::from_pairs([("app", "x".to_string()), ("pod", format!("gap{i}"))]),
            entries: vec![Entry {
                ts: 15 * S,
                line: "between windows".into(),
                meta: Vec::new(),
            }],
        });
    }
    let src = MemSource::new(streams, 4);
    let req = range(
        r#"count_over_time({app="x"}[1s])"#,
        10 * S,
        20 * S,
        10 * S,
        1,
    );
    let (v, _) = evaluate(&src, &req).unwrap();
    assert_eq!(series_count(&v), 1);
}

#[test]
fn high_cardinality_grouping_fails_at_the_limit_not_after_building_everything() {
    let src = json_lines(20_000);
    let (start, end, step) = (60 * S, 200 * S, 10 * S);
    // `sum by (id)` is pushed into the range aggregation: one series per
    // id, refused at the 11th.
    for q in [
        r#"sum by (id) (count_over_time({app="j"} | json [1m]))"#,
        // Not pushed down: the inner aggregation's series (every label)
        // are what is limited, before `max` ever sees them.
        r#"max by (lvl) (count_over_time({app="j"} | json [1m]))"#,
        r#"topk(3, sum by (id) (rate({app="j"} | json [1m])))"#,
        r#"sum by (id) (sum_over_time({app="j"} | json | unwrap n [1m]))"#,
        r#"quantile_over_time(0.5, {app="j"} | json | unwrap n [1m]) by (id)"#,
    ] {
        let src = json_lines(20_000);
        let e = evaluate_with_threads(&src, &range(q, start, end, step, 10), 1).unwrap_err();
        assert_eq!(e.to_string(), limit_text(10), "{q}");
        // The scan stopped at the limit: well before the 20,000 lines.
        let e = evaluate(&src, &range(q, start, end, step, 10)).unwrap_err();
        assert!(matches!(e, EngineError::Limit(_)), "{q}: {e:?}");
    }
    // Low-cardinality groupings of the same lines answer.
    for (q, n) in [
        (
            r#"sum by (lvl) (count_over_time({app="j"} | json [1m]))"#,
            2,
        ),
        (r#"sum(count_over_time({app="j"} | json [1m]))"#, 1),
        (r#"count_over_time({app="j"} | json | keep lvl [1m])"#, 2),
    ] {
        let (v, _) = evaluate(&src, &range(q, start, end, step, 10)).unwrap();
        assert_eq!(series_count(&v), n, "{q}");
    }
}

#[test]
fn absent_over_time_holds_one_series_whatever_the_streams() {
    let src = many_streams(50, 30);
    let req = range(
        r#"absent_over_time({app="x"}[5s])"#,
        10 * S,
        60 * S,
        10 * S,
        2,
    );
    let (v, _) = evaluate(&src, &req).unwrap();
    let QueryValue::Matrix(m) = v else { panic!() };
    // Data until 29 s: absent from the 40 s step on.
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels.to_string(), r#"{app="x"}"#);
    let steps: Vec<i64> = m[0].points.iter().map(|p| p.0 / S).collect();
    assert_eq!(steps, [40, 50, 60]);
}

#[test]
fn pipeline_errors_win_over_the_series_limit() {
    // Lines that are not JSON carry `__error__`: the query would fail on
    // them anyway, and says so rather than naming the limit.
    let src = MemSource::new(
        vec![Stream {
            labels: LabelSet::from_pairs([("app", "bad")]),
            entries: (0..50)
                .map(|i| Entry {
                    ts: i * S,
                    line: format!("not json {i}"),
                    meta: vec![("trace".to_string(), format!("t{i}"))],
                })
                .collect(),
        }],
        8,
    );
    let req = range(
        r#"count_over_time({app="bad"} | json [1m])"#,
        60 * S,
        60 * S,
        S,
        3,
    );
    let e = evaluate(&src, &req).unwrap_err();
    assert!(matches!(e, EngineError::Pipeline(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("pipeline error: 'JSONParserErr'"),
        "{e}"
    );
}

#[test]
fn binary_operations_are_limited_as_they_build_series() {
    let src = many_streams(6, 30);
    let q = r#"count_over_time({app="x", pod=~"[0-2]"}[10s]) or count_over_time({app="x", pod=~"[3-5]"}[10s])"#;
    let e = evaluate(&src, &range(q, 10 * S, 30 * S, 10 * S, 5)).unwrap_err();
    assert_eq!(e.to_string(), limit_text(5));
    let (v, _) = evaluate(&src, &range(q, 10 * S, 30 * S, 10 * S, 6)).unwrap();
    assert_eq!(series_count(&v), 6);
    // group_left with a label that changes per step makes new series as
    // it matches.
    let q = r#"count_over_time({app="x"}[10s]) * on (app) group_left () sum by (app) (count_over_time({app="x"}[10s]))"#;
    let e = evaluate(&src, &range(q, 10 * S, 30 * S, 10 * S, 4)).unwrap_err();
    assert_eq!(e.to_string(), limit_text(4));
}

#[test]
fn extreme_ranges_and_parameters_neither_panic_nor_hang() {
    let src = many_streams(3, 30);
    let started = std::time::Instant::now();
    let extremes = [
        (i64::MIN, i64::MAX, 1),
        (i64::MIN, i64::MAX, i64::MAX),
        (i64::MIN, i64::MAX, i64::MAX / 2),
        (i64::MIN, i64::MIN, 1),
        (i64::MAX, i64::MAX, 1),
        (i64::MAX - 5, i64::MAX, 1),
        (i64::MIN, i64::MIN + 11_000, 1),
        (0, 30 * S, i64::MAX),
        (0, 30 * S, 0),
        (0, 30 * S, -1),
        (30 * S, 0, S),
    ];
    let queries = [
        r#"count_over_time({app="x"}[10s])"#,
        r#"rate({app="x"}[1y] offset 1y)"#,
        r#"sum by (pod) (count_over_time({app="x"}[5m] offset -1h))"#,
        r#"quantile_over_time(0.9, {app="x"} | regexp "line (?P<n>\\d+)" | unwrap n [2y])"#,
        r#"topk(9223372036854775807, count_over_time({app="x"}[10s]))"#,
        r#"count_over_time({app="x"}[10s]) / on (pod) count_over_time({app="x"}[10s])"#,
        r#"{app="x"}"#,
        r#"{app="x"} |= "line""#,
    ];
    for (start, end, step) in extremes {
        for q in queries {
            for instant in [false, true] {
                let req = QueryRequest {
                    instant,
                    interval: i64::MAX,
                    limit: u32::MAX,
                    ..range(q, start, end, step, 100)
                };
                // Either an answer or an error: no panic.
                match evaluate(&src, &req) {
                    Ok((v, _)) => assert!(series_count(&v) <= 100),
                    Err(e) => assert_eq!(e.http_status(), 400, "{q} {start} {end} {step}: {e}"),
                }
            }
        }
    }
    let e = evaluate(
        &src,
        &range(
            r#"count_over_time({app="x"}[10s])"#,
            i64::MIN,
            i64::MAX,
            1,
            0,
        ),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("exceeded maximum resolution of 11,000 points")
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "extreme ranges took {:?}",
        started.elapsed()
    );
}
