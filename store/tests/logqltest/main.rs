//! Loki's engine conformance scripts (`testdata/*.logqltest`) run against
//! the real store and the real engine.
//!
//! Every `load` block goes through the store's write path in process:
//! `validate` with the store's limits, then `Ingester::push` (WAL, heads),
//! then a flush, so queries read chunk files with their token filters as
//! well as memory. The script's epoch t=0 is Unix 0, so the store is
//! configured to accept old entries (`reject_old_samples: false`) and a
//! `max_chunk_age` whose out-of-order window covers every script. Every
//! `eval` runs through `larch_query::engine::evaluate` with the ingester
//! as the `LogSource`; results are compared the way Prometheus' promqltest
//! compares them (relative tolerance 1e-6, NaN equals NaN).
//!
//! Two deviations from the plain write path, both because Loki's own
//! harness loads streams into its engine without a distributor, so its
//! expected results have neither a `service_name` label nor a
//! `detected_level`: the store is configured with `discover_log_levels:
//! false` (otherwise every series would carry the level found in its
//! lines), and the runner removes the `service_name` label validation
//! adds again from streams whose script labels lack it.
//!
//! The test fails when fewer evals pass than [`RECORDED_PASSES`], when an
//! eval fails that is not in [`KNOWN_FAILURES`] (each listed with its
//! reason), or when a listed one passes (then the list must shrink).
//!
//! `props` checks the engine over the store against the test kit's
//! reference evaluator (`larch_testkit::engine`) on random data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod props;
mod script;

use std::collections::BTreeMap;

use larch_query::engine::{EngineError, QueryRequest, QueryValue, evaluate};
use larch_query::{LabelSet, MatchOp, Matcher, parse_labels};
use larch_store::push::{PushEntry, PushStream, StreamLabels};
use larch_store::testing::{self, EngineStore};
use script::{Command, Expect, FailCheck, When};

/// Evals that pass today; the test fails below this.
const RECORDED_PASSES: usize = 1095;

/// Evals that fail today, as `(file, line, reason)`.
const KNOWN_FAILURES: &[(&str, usize, &str)] = &[];

/// A store for one script (until its `clear`).
struct Store(EngineStore);

impl Store {
    fn open() -> Store {
        Store(EngineStore::open(None))
    }

    fn load(&self, entries: &[script::LoadEntry]) -> Result<(), String> {
        let mut streams: Vec<PushStream> = Vec::new();
        let mut script_labels: Vec<LabelSet> = Vec::new();
        for e in entries {
            let entry = PushEntry {
                ts: e.ts,
                line: e.line.as_str().into(),
                metadata: e.metadata.clone(),
                omitted: 0,
            };
            match streams
                .iter_mut()
                .find(|s| matches!(&s.labels, StreamLabels::Text(t) if *t == e.labels))
            {
                Some(s) => s.entries.push(entry),
                None => {
                    let pairs = parse_labels(&e.labels).map_err(|x| x.to_string())?;
                    script_labels.push(LabelSet::from_pairs(pairs));
                    streams.push(PushStream {
                        labels: StreamLabels::Text(e.labels.clone()),
                        entries: vec![entry],
                    });
                }
            }
        }
        let now = larch_testkit::now_ns();
        self.0.push(streams, now, |validated| {
            for s in &mut validated.streams {
                let mut without = (*s.labels).clone();
                without.remove("service_name");
                let from_script_without_service = script_labels.iter().any(|l| {
                    let mut l = l.clone();
                    l.remove_empty();
                    l.get("service_name").is_none() && l == without
                });
                if from_script_without_service {
                    s.labels = without.into();
                }
            }
        })?;
        self.0.ing.flush_all();
        Ok(())
    }
}

fn request(when: When, query: &str) -> QueryRequest {
    match when {
        When::Instant(t) => testing::request(query, t, t, 0, true),
        When::Range(a, b, step) => testing::request(query, a, b, step, false),
    }
}

/// Prometheus' promqltest float comparison.
fn almost_equal(a: f64, b: f64) -> bool {
    const EPSILON: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

fn labels_of(text: &str) -> Result<LabelSet, String> {
    Ok(LabelSet::from_pairs(
        parse_labels(text).map_err(|e| format!("bad expected labels {text}: {e}"))?,
    ))
}

fn show(v: &QueryValue) -> String {
    match v {
        QueryValue::Scalar { value, .. } => format!("scalar {value}"),
        QueryValue::Vector(s) => s
            .iter()
            .map(|x| format!("{} {}", x.labels, x.value))
            .collect::<Vec<_>>()
            .join("; "),
        QueryValue::Matrix(m) => m
            .iter()
            .map(|x| {
                format!(
                    "{} {}",
                    x.labels,
                    x.points
                        .iter()
                        .map(|p| format!("{}@{}", p.1, p.0 / 1_000_000))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        QueryValue::Streams(s) => format!("{} streams", s.len()),
    }
}

fn is_empty(v: &QueryValue) -> bool {
    match v {
        QueryValue::Vector(s) => s.is_empty(),
        QueryValue::Matrix(m) => m.iter().all(|s| s.points.is_empty()),
        QueryValue::Streams(s) => s.is_empty(),
        QueryValue::Scalar { .. } => false,
    }
}

fn check(when: When, expect: &Expect, got: Result<QueryValue, EngineError>) -> Result<(), String> {
    let got = match (expect, got) {
        (Expect::Fail(c), Err(e)) => {
            let msg = e.to_string();
            return match c {
                FailCheck::Any => Ok(()),
                FailCheck::Msg(m) if msg.contains(m.as_str()) => Ok(()),
                FailCheck::Msg(m) => Err(format!("error {msg:?} does not contain {m:?}")),
                FailCheck::Regex(r) => {
                    let m = Matcher::new("e", MatchOp::Re, format!(".*(?:{r}).*"))
                        .map_err(|e| e.to_string())?;
                    if m.matches(&msg) {
                        Ok(())
                    } else {
                        Err(format!("error {msg:?} does not match /{r}/"))
                    }
                }
            };
        }
        (Expect::Fail(_), Ok(v)) => return Err(format!("expected failure, got {}", show(&v))),
        (_, Err(e)) => return Err(format!("unexpected error: {e}")),
        (_, Ok(v)) => v,
    };
    let (ordered, series, scalar) = match expect {
        Expect::Empty => {
            return if is_empty(&got) {
                Ok(())
            } else {
                Err(format!("expected empty, got {}", show(&got)))
            };
        }
        Expect::Result {
            ordered,
            series,
            scalar,
        } => (*ordered, series, scalar),
        Expect::Fail(_) => unreachable!(),
    };
    if let Some(want) = scalar {
        return match &got {
            QueryValue::Scalar { value, .. } if almost_equal(*value, *want) => Ok(()),
            _ => Err(format!("expected scalar {want}, got {}", show(&got))),
        };
    }
    let mut want: Vec<(LabelSet, &Vec<Option<f64>>)> = Vec::new();
    for s in series {
        want.push((labels_of(&s.labels)?, &s.values));
    }
    match (&got, when) {
        (QueryValue::Vector(samples), When::Instant(_)) => {
            let mismatch = || format!("got {}", show(&got));
            let expected: Vec<_> = want
                .iter()
                .filter(|(_, v)| v.iter().any(Option::is_some))
                .collect();
            if expected.len() != samples.len() {
                return Err(format!(
                    "expected {} samples, {}",
                    expected.len(),
                    mismatch()
                ));
            }
            for (i, (labels, vals)) in expected.iter().enumerate() {
                let Some(s) = samples.iter().position(|s| s.labels == *labels) else {
                    return Err(format!("missing {labels}, {}", mismatch()));
                };
                if ordered && s != i {
                    return Err(format!("order differs: {labels} at {s}, {}", mismatch()));
                }
                let (Some(Some(v)), 1) = (vals.first(), vals.len()) else {
                    return Err(format!("expectation of {labels} is not one value"));
                };
                if !almost_equal(samples[s].value, *v) {
                    return Err(format!("{labels}: want {v}, {}", mismatch()));
                }
            }
            Ok(())
        }
        (QueryValue::Matrix(m), When::Range(a, b, step)) => {
            let steps: Vec<i64> = (0..)
                .map(|k| a + k * step)
                .take_while(|t| *t <= b)
                .collect();
            let mismatch = || format!("got {}", show(&got));
            let expected: Vec<_> = want
                .iter()
                .filter(|(_, v)| v.iter().any(Option::is_some))
                .collect();
            let present = m.iter().filter(|s| !s.points.is_empty()).count();
            if expected.len() != present {
                return Err(format!(
                    "expected {} series, {}",
                    expected.len(),
                    mismatch()
                ));
            }
            for (labels, vals) in expected {
                if vals.len() != steps.len() {
                    return Err(format!(
                        "expectation of {labels} has {} values for {} steps",
                        vals.len(),
                        steps.len()
                    ));
                }
                let Some(s) = m.iter().find(|s| s.labels == *labels) else {
                    return Err(format!("missing {labels}, {}", mismatch()));
                };
                for (t, w) in steps.iter().zip(vals.iter()) {
                    let g = s.points.iter().find(|p| p.0 == *t).map(|p| p.1);
                    let ok = match (g, w) {
                        (None, None) => true,
                        (Some(g), Some(w)) => almost_equal(g, *w),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "{labels} at {}ms: want {w:?}, {}",
                            t / 1_000_000,
                            mismatch()
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Err(format!("unexpected result type: {}", show(&got))),
    }
}

#[test]
fn loki_engine_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/logqltest/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "logqltest"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        9,
        "expected Loki's nine scripts in {}",
        dir.display()
    );
    let known: BTreeMap<(&str, usize), &str> = KNOWN_FAILURES
        .iter()
        .map(|(f, l, r)| ((*f, *l), *r))
        .collect();
    let mut passes = 0usize;
    let mut total = 0usize;
    let mut unexpected: Vec<String> = Vec::new();
    let mut fixed: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let commands = script::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut store = Store::open();
        let mut file_pass = 0usize;
        let mut file_total = 0usize;
        let mut load_error: Option<String> = None;
        for c in commands {
            match c {
                Command::Clear => {
                    drop(store);
                    store = Store::open();
                    load_error = None;
                }
                Command::Load(entries) => {
                    if let Err(e) = store.load(&entries) {
                        load_error = Some(e);
                    }
                }
                Command::Eval {
                    line,
                    when,
                    query,
                    expect,
                } => {
                    total += 1;
                    file_total += 1;
                    let result = match &load_error {
                        Some(e) => Err(format!("load failed: {e}")),
                        None => {
                            let got =
                                evaluate(&*store.0.ing, &request(when, &query)).map(|(v, _)| v);
                            check(when, &expect, got)
                        }
                    };
                    match (result, known.get(&(name, line))) {
                        (Ok(()), None) => {
                            passes += 1;
                            file_pass += 1;
                        }
                        (Ok(()), Some(_)) => {
                            passes += 1;
                            file_pass += 1;
                            fixed.push(format!("{name}:{line}: {query}"));
                        }
                        (Err(e), None) => {
                            unexpected.push(format!("{name}:{line}: {query}\n    {e}"));
                        }
                        (Err(_), Some(_)) => {}
                    }
                }
            }
        }
        eprintln!("{name}: {file_pass}/{file_total} evals pass");
    }
    eprintln!(
        "total: {passes}/{total} evals pass ({:.1}%) in {:.1}s",
        100.0 * passes as f64 / total.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    for u in &unexpected {
        eprintln!("UNEXPECTED FAILURE {u}");
    }
    for f in &fixed {
        eprintln!("NOW PASSING (remove from KNOWN_FAILURES) {f}");
    }
    assert_eq!(total, 1095, "Loki's scripts hold 1,095 evals");
    assert!(
        unexpected.is_empty(),
        "{} evals fail that KNOWN_FAILURES does not list",
        unexpected.len()
    );
    assert!(fixed.is_empty(), "{} listed failures pass now", fixed.len());
    assert!(
        passes >= RECORDED_PASSES,
        "{passes} evals pass, fewer than the recorded {RECORDED_PASSES}"
    );
}
