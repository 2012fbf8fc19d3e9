//! Specific behaviours of the engine: what it asks storage for, Loki's
//! error texts, limits, cancellation, categorised output, `interval`,
//! `detected_level`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use larch_query::engine::{
    CANCELLED, EngineError, INSTANT_LOG_QUERY, QueryRequest, QueryValue, evaluate,
    evaluate_with_threads,
};
use larch_query::{Columns, Direction, LabelSet};

use larch_query::engine::mem::{Entry, MemSource, Stream};

const S: i64 = 1_000_000_000;

fn entry(ts_s: i64, line: &str, meta: &[(&str, &str)]) -> Entry {
    Entry {
        ts: ts_s * S,
        line: line.to_string(),
        meta: meta
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn stream(labels: &[(&str, &str)], entries: Vec<Entry>) -> Stream {
    Stream {
        labels: LabelSet::from_pairs(labels.iter().copied()),
        entries,
    }
}

fn source() -> MemSource {
    MemSource::new(
        vec![
            stream(
                &[("app", "a"), ("pod", "1")],
                (0..60)
                    .map(|i| {
                        entry(
                            i,
                            &format!("level=info msg=\"request {i}\" took={i}ms"),
                            if i % 2 == 0 { &[("tid", "even")] } else { &[] },
                        )
                    })
                    .collect(),
            ),
            stream(
                &[("app", "a"), ("pod", "2")],
                (0..60)
                    .map(|i| entry(i, &format!("ERROR disk {i}"), &[]))
                    .collect(),
            ),
            stream(
                &[("app", "b"), ("level", "WRN")],
                (0..60)
                    .map(|i| entry(i, &format!("{{\"level\":\"debug\",\"n\":{i}}}"), &[]))
                    .collect(),
            ),
        ],
        7,
    )
}

fn range(query: &str, start: i64, end: i64, step: i64) -> QueryRequest {
    QueryRequest {
        tenant: "fake".into(),
        query: query.into(),
        start: start * S,
        end: end * S,
        step: step * S,
        limit: 100,
        ..QueryRequest::default()
    }
}

fn instant(query: &str, t: i64) -> QueryRequest {
    QueryRequest {
        instant: true,
        ..range(query, t, t, 0)
    }
}

fn vector(v: QueryValue) -> Vec<(String, f64)> {
    let QueryValue::Vector(v) = v else {
        panic!("not a vector: {v:?}")
    };
    v.into_iter()
        .map(|s| (s.labels.to_string(), s.value))
        .collect()
}

#[test]
fn log_query_as_instant_query_is_refused_with_lokis_text() {
    let e = evaluate(&source(), &instant(r#"{app="a"}"#, 10)).unwrap_err();
    assert_eq!(e.to_string(), INSTANT_LOG_QUERY);
    assert_eq!(e.http_status(), 400);
    let e = evaluate(&source(), &instant(r#"sum(rate({app="a"}[1m]"#, 10)).unwrap_err();
    assert!(matches!(e, EngineError::Parse(_)), "{e}");
    assert!(
        e.to_string().starts_with("parse error at line 1, col"),
        "{e}"
    );
}

#[test]
fn columns_are_the_fewest_the_query_needs() {
    let cases: [(&str, Columns, usize); 8] = [
        // Bytes of lines nothing looks at: their lengths.
        (
            r#"sum(bytes_over_time({app="a"}[1m]))"#,
            Columns {
                lines: false,
                lengths: true,
                metadata: false,
            },
            0,
        ),
        (
            r#"sum(bytes_over_time({app="a"} |= "disk" [1m]))"#,
            Columns {
                lines: true,
                lengths: true,
                metadata: false,
            },
            1,
        ),
        // A stage may change the line: its bytes are counted after it.
        (
            r#"sum(bytes_over_time({app="a"} | line_format "x" [1m]))"#,
            Columns {
                lines: true,
                lengths: true,
                metadata: true,
            },
            0,
        ),
        // Grouping by stream labels only: timestamps suffice.
        (
            r#"sum by (app) (count_over_time({app="a"}[1m]))"#,
            Columns::NONE,
            0,
        ),
        (r#"sum(rate({app="a"}[1m]))"#, Columns::NONE, 0),
        // Series labels include structured metadata: metadata, no lines.
        (
            r#"count_over_time({app="a"}[1m])"#,
            Columns {
                lines: false,
                lengths: false,
                metadata: true,
            },
            0,
        ),
        // A filter needs lines; its literal goes to storage.
        (
            r#"sum(count_over_time({app="a"} |= "disk" [1m]))"#,
            Columns {
                lines: true,
                lengths: true,
                metadata: false,
            },
            1,
        ),
        (
            r#"sum by (tid) (count_over_time({app="a"} |= "disk" [1m]))"#,
            Columns {
                lines: true,
                lengths: true,
                metadata: true,
            },
            1,
        ),
    ];
    for (q, want, literals) in cases {
        let src = source();
        // One thread: one request per stream (more threads split ranges).
        evaluate_with_threads(&src, &instant(q, 60), 1).unwrap();
        let reqs = src.requests.lock().unwrap();
        assert_eq!(reqs.len(), 2, "{q}");
        for r in reqs.iter() {
            assert_eq!(r.columns, want, "{q}");
            assert_eq!(r.must_contain.len(), literals, "{q}");
        }
    }
}

#[test]
fn counts_with_and_without_metadata() {
    let (v, stats) = evaluate(
        &source(),
        &instant(r#"count_over_time({app="a"}[10s])"#, 59),
    )
    .unwrap();
    assert_eq!(
        vector(v),
        vec![
            (r#"{app="a", pod="1"}"#.to_string(), 5.0),
            (r#"{app="a", pod="1", tid="even"}"#.to_string(), 5.0),
            (r#"{app="a", pod="2"}"#.to_string(), 10.0),
        ]
    );
    assert_eq!(stats.post_filter_lines, 20);
    let (v, _) = evaluate(
        &source(),
        &instant(
            r#"sum by (app) (count_over_time({app=~"a|b"} |= "disk" [10s]))"#,
            59,
        ),
    )
    .unwrap();
    assert_eq!(vector(v), vec![(r#"{app="a"}"#.to_string(), 10.0)]);
}

#[test]
fn backward_log_query_with_small_limit_stops_early() {
    let src = source();
    let mut req = range(r#"{app="a", pod="2"}"#, 0, 60, 0);
    req.limit = 3;
    req.direction = Direction::Backward;
    let (v, stats) = evaluate_with_threads(&src, &req, 1).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    let ts: Vec<i64> = s[0].entries.iter().map(|e| e.ts / S).collect();
    assert_eq!(ts, vec![59, 58, 57]);
    // 60 entries in blocks of 7: only the newest block and the next one
    // (to prove nothing newer remains) are read.
    assert!(stats.scan.blocks <= 2, "{:?}", stats.scan);
    // On several threads the range is split into spans scanned at once
    // (how many blocks the other spans read before the newest one fills
    // its heap depends on timing); the result is the same.
    for threads in [2, 4] {
        let (v, _) = evaluate_with_threads(&src, &req, threads).unwrap();
        let QueryValue::Streams(s) = v else { panic!() };
        let ts: Vec<i64> = s[0].entries.iter().map(|e| e.ts / S).collect();
        assert_eq!(ts, vec![59, 58, 57], "{threads} threads");
    }
    req.direction = Direction::Forward;
    let (v, _) = evaluate(&src, &req).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    let ts: Vec<i64> = s[0].entries.iter().map(|e| e.ts / S).collect();
    assert_eq!(ts, vec![0, 1, 2]);
}

#[test]
fn interval_keeps_one_entry_per_interval_across_streams() {
    let mut req = range(r#"{app="a"}"#, 0, 60, 0);
    req.interval = 10 * S;
    req.limit = 4;
    req.direction = Direction::Forward;
    let (v, _) = evaluate_with_threads(&source(), &req, 2).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    let mut ts: Vec<i64> = s
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.ts / S))
        .collect();
    ts.sort();
    assert_eq!(ts, vec![0, 10, 20, 30]);
    req.direction = Direction::Backward;
    req.limit = 100;
    let (v, _) = evaluate(&source(), &req).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    let mut ts: Vec<i64> = s
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.ts / S))
        .collect();
    ts.sort();
    assert_eq!(ts, vec![9, 19, 29, 39, 49, 59]);
}

#[test]
fn categorized_output_separates_metadata_and_parsed_labels() {
    let mut req = range(r#"{app="a", pod="1"} | logfmt | drop took"#, 0, 2, 0);
    req.categorize_labels = true;
    req.direction = Direction::Forward;
    let (v, _) = evaluate(&source(), &req).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels.to_string(), r#"{app="a", pod="1"}"#);
    let e = &s[0].entries[0];
    assert_eq!(e.structured_metadata, vec![("tid".into(), "even".into())]);
    assert_eq!(
        e.parsed,
        vec![
            ("level".into(), "info".into()),
            ("msg".into(), "request 0".into())
        ]
    );
    assert!(s[0].entries[1].structured_metadata.is_empty());
    // Without the flag every label is part of the stream's label set.
    req.categorize_labels = false;
    let (v, _) = evaluate(&source(), &req).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[0].labels.to_string(),
        r#"{app="a", level="info", msg="request 0", pod="1", tid="even"}"#
    );
}

/// Entries as the store keeps them with level discovery: `detected_level`
/// in each entry's metadata (stream `c`); stream `d` was written without it.
fn leveled() -> MemSource {
    MemSource::new(
        vec![
            stream(
                &[("app", "c")],
                (0..60)
                    .map(|i| {
                        let level = ["info", "warn", "error"][(i % 3) as usize];
                        entry(i, &format!("line {i}"), &[("detected_level", level)])
                    })
                    .collect(),
            ),
            stream(
                &[("app", "d")],
                (0..60).map(|i| entry(i, "ERROR disk", &[])).collect(),
            ),
        ],
        3,
    )
}

#[test]
fn detected_level_is_stored_metadata_never_derived() {
    let run = |q: &str| vector(evaluate(&leveled(), &instant(q, 59)).unwrap().0);
    // Without aggregation a metric query has one series per level, as
    // every metadata pair is part of a series' labels.
    assert_eq!(
        run(r#"count_over_time({app="c"}[10s])"#),
        vec![
            (r#"{app="c", detected_level="error"}"#.to_string(), 4.0),
            (r#"{app="c", detected_level="info"}"#.to_string(), 3.0),
            (r#"{app="c", detected_level="warn"}"#.to_string(), 3.0),
        ]
    );
    // Thresholds select among those series.
    assert_eq!(
        run(r#"count_over_time({app="c"}[10s]) > 3"#),
        vec![(r#"{app="c", detected_level="error"}"#.to_string(), 4.0)]
    );
    // Aggregation and `drop` remove it.
    assert_eq!(
        run(r#"sum by (app) (count_over_time({app="c"}[10s]))"#),
        vec![(r#"{app="c"}"#.to_string(), 10.0)]
    );
    assert_eq!(
        run(r#"count_over_time({app="c"} | drop detected_level [10s])"#),
        vec![(r#"{app="c"}"#.to_string(), 10.0)]
    );
    // Naming the label changes nothing about the series.
    assert_eq!(
        run(r#"count_over_time({app="c"} | detected_level=~".*" [10s])"#),
        run(r#"count_over_time({app="c"}[10s])"#)
    );
    assert_eq!(
        run(r#"sum by (detected_level) (count_over_time({app=~"c|d"}[10s]))"#),
        vec![
            (r#"{}"#.to_string(), 10.0),
            (r#"{detected_level="error"}"#.to_string(), 4.0),
            (r#"{detected_level="info"}"#.to_string(), 3.0),
            (r#"{detected_level="warn"}"#.to_string(), 3.0),
        ]
    );
    // Lines stored without a level get none at query time.
    assert_eq!(
        run(r#"count_over_time({app="d"} | detected_level="error" [10s])"#),
        vec![]
    );
    assert_eq!(
        run(r#"count_over_time({app="d"}[10s])"#),
        vec![(r#"{app="d"}"#.to_string(), 10.0)]
    );
    // Log queries report it as structured metadata.
    let mut req = range(r#"{app="c"} | detected_level="error""#, 0, 60, 0);
    req.categorize_labels = true;
    let (v, _) = evaluate(&leveled(), &req).unwrap();
    let QueryValue::Streams(s) = v else { panic!() };
    assert_eq!(s.iter().map(|s| s.entries.len()).sum::<usize>(), 20);
    assert_eq!(
        s[0].entries[0].structured_metadata,
        vec![("detected_level".into(), "error".into())]
    );
}

/// Series looked up by metadata: right whether a stream has few distinct
/// metadata values or more than the per-stream cache keeps.
#[test]
fn series_by_metadata_with_many_distinct_values() {
    let src = MemSource::new(
        vec![stream(
            &[("app", "x")],
            (0..120)
                .map(|i| {
                    let tid = format!("t{}", i % 40);
                    if i % 3 == 0 {
                        entry(i / 4, "l", &[])
                    } else {
                        entry(i / 4, "l", &[("tid", &tid), ("detected_level", "info")])
                    }
                })
                .collect(),
        )],
        2,
    );
    let (v, _) = evaluate(&src, &instant(r#"count_over_time({app="x"}[1m])"#, 59)).unwrap();
    let got = vector(v);
    assert_eq!(got.len(), 41, "{got:?}");
    assert_eq!(got.iter().map(|(_, n)| n).sum::<f64>(), 120.0);
    assert_eq!(got[0], (r#"{app="x"}"#.to_string(), 40.0));
    let (v, _) = evaluate(
        &src,
        &instant(
            r#"sum by (detected_level) (count_over_time({app="x"}[1m]))"#,
            59,
        ),
    )
    .unwrap();
    assert_eq!(
        vector(v),
        vec![
            ("{}".to_string(), 40.0),
            (r#"{detected_level="info"}"#.to_string(), 80.0)
        ]
    );
}

#[test]
fn pipeline_errors_fail_metric_queries_unless_filtered() {
    let e = evaluate(
        &source(),
        &instant(r#"count_over_time({app="a", pod="2"} | json [10s])"#, 59),
    )
    .unwrap_err();
    assert!(matches!(e, EngineError::Pipeline(_)));
    assert!(
        e.to_string().starts_with(
            "pipeline error: 'JSONParserErr' for series: '{__error__=\"JSONParserErr\", __error_details__="
        ),
        "{e}"
    );
    let (v, _) = evaluate(
        &source(),
        &instant(
            r#"count_over_time({app="a", pod="2"} | json | __error__="" [10s])"#,
            59,
        ),
    )
    .unwrap();
    assert!(vector(v).is_empty());
}

#[test]
fn max_series_and_cancellation() {
    let mut req = range(r#"count_over_time({app=~"a|b"}[10s])"#, 10, 50, 10);
    req.max_series = 2;
    let e = evaluate(&source(), &req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "maximum number of series (2) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    );
    req.max_series = 4;
    let (v, stats) = evaluate(&source(), &req).unwrap();
    let QueryValue::Matrix(m) = v else { panic!() };
    assert_eq!(m.len(), 4);
    assert_eq!(stats.entries_returned, 4 * 5);
    req.cancel = Some(Arc::new(AtomicBool::new(true)));
    let e = evaluate(&source(), &req).unwrap_err();
    assert!(matches!(e, EngineError::Cancelled));
    assert_eq!(e.to_string(), CANCELLED);
}

#[test]
fn scalars_sorting_and_bad_steps() {
    let (v, _) = evaluate(&source(), &instant("1 + 1", 7)).unwrap();
    assert_eq!(
        v,
        QueryValue::Scalar {
            ts: 7 * S,
            value: 2.0
        }
    );
    let (v, _) = evaluate(&source(), &range("vector(1) + vector(1)", 0, 20, 10)).unwrap();
    let QueryValue::Matrix(m) = v else { panic!() };
    assert_eq!(m[0].points, vec![(0, 2.0), (10 * S, 2.0), (20 * S, 2.0)]);
    let (v, _) = evaluate(
        &source(),
        &instant(
            r#"sort_desc(sum by (pod) (count_over_time({app="a"} |~ "1|disk" [1m])))"#,
            59,
        ),
    )
    .unwrap();
    let v = vector(v);
    assert_eq!(v[0].0, r#"{pod="2"}"#);
    assert!(v[0].1 > v[1].1);
    let e = evaluate(&source(), &range("vector(1)", 0, 20, 0)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("zero or negative query resolution step")
    );
    let e = evaluate(
        &source(),
        &range(r#"approx_topk(1, rate({app="a"}[1m]))"#, 0, 20, 10),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "count min sketches are only supported on instant queries"
    );
}

/// `label_replace`'s regex follows Go's rules, as Loki compiles it with
/// Go's `regexp` when the query is parsed: octal escapes work, `\d` is
/// ASCII only, and an expression Go refuses fails the parse with Go's
/// message, before anything is evaluated.
#[test]
fn label_replace_regex_is_go_regex_compiled_when_parsed() {
    let src = MemSource::new(
        vec![
            stream(&[("job", "j"), ("pod", "api-3")], vec![entry(1, "x", &[])]),
            // ARABIC-INDIC DIGIT THREE: a digit to Rust's Unicode `\d`, not to Go's.
            stream(
                &[("job", "j"), ("pod", "api-\u{663}")],
                vec![entry(1, "x", &[])],
            ),
        ],
        7,
    );
    let relabel = |re: &str| {
        let q = format!(
            r#"label_replace(sum by (pod) (count_over_time({{job="j"}}[1m])), "n", "$1", "pod", "{re}")"#
        );
        let (v, _) = evaluate(&src, &instant(&q, 30)).unwrap();
        let mut v = vector(v);
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(l, _)| l).collect::<Vec<_>>()
    };
    // `\141` is `a` in octal, as in Go.
    assert_eq!(
        relabel(r"\\141pi-(.*)"),
        [r#"{n="3", pod="api-3"}"#, r#"{n="٣", pod="api-٣"}"#]
    );
    assert_eq!(
        relabel(r"api-(\\d)"),
        [r#"{n="3", pod="api-3"}"#, r#"{pod="api-٣"}"#]
    );
    // Rust's syntax accepts both; Go's does not, and Loki reports it while parsing.
    for (re, go) in [
        (r"\\u0041", r"invalid escape sequence: `\u`"),
        (r"a{1001}", r"invalid repeat count: `{1001}`"),
    ] {
        let q = format!(r#"label_replace(vector(1), "n", "$1", "pod", "{re}")"#);
        let e = evaluate(&src, &instant(&q, 30)).unwrap_err();
        assert!(matches!(e, EngineError::Parse(_)), "{e}");
        assert_eq!(
            e.to_string(),
            format!("parse error : invalid regex in label_replace: error parsing regexp: {go}")
        );
    }
}
