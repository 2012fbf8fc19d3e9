//! Property tests of the HTTP parameter parsers (`larch_store::api::params`)
//! with arbitrary text and extreme numbers, durations and timestamps: they
//! never panic, return at once, and every range they accept is
//! well-ordered with a bounded number of steps whose instants cannot
//! overflow. Then the same values against every endpoint of a real store
//! process: each answers promptly with a 2xx or a 4xx, never a 5xx, and
//! the store keeps serving.

use std::time::{Duration, Instant};

use larch_store::api::params::{
    MAX_POINTS, Params, TimeRange, bounds, default_step, direction, interval, limit,
    parse_seconds_or_duration, parse_timestamp, points,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use larch_testkit::http::percent;

use super::support::*;

/// "Now" for the parsers: 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600_000_000_000;

/// Values chosen to sit on every boundary the parsers have: the ends of
/// i64 in seconds and nanoseconds, the 10-digit switch between the two,
/// float seconds at and past the nanosecond range, special floats,
/// durations near and past 292 years, RFC3339 at the ends of time.
const EXTREMES: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "+1",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
    "9999999999",
    "-9999999999",
    "10000000000",
    "4000000000",
    "1767225600",
    "1767225600000000000",
    "9223372036.854775807",
    "9200000000.5",
    "9300000000.5",
    "-9223372036.9",
    "1e308",
    "-1e308",
    "1e-320",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "0.000000001",
    "0.0001",
    "1.5",
    "-1.5",
    "0x10",
    "1_000",
    "",
    " ",
    ".",
    "-",
    "1ms",
    "1ns",
    "15s",
    "1h30m",
    "1d",
    "292y",
    "293y",
    "9999999999y",
    "106751d",
    "106752d",
    "1y1y",
    "1m1h",
    "5m0s",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.123456789+14:00",
    "1677-09-21T00:12:43.145224192Z",
    "1677-09-21T00:12:43.145224191Z",
    "2262-04-11T23:47:16.854775807Z",
    "2262-04-11T23:47:16.854775808Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "forward",
    "BACKWARD",
    "fOrWaRd",
    "sideways",
    "%",
    "%zz",
    "\u{1F600}",
];

/// A parameter value: an extreme, a random integer or float in text, or
/// any text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(EXTREMES).prop_map(str::to_string),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        1 => (any::<i64>(), 0u32..1_000_000_000).prop_map(|(s, f)| format!("{s}.{f:09}")),
        1 => (0u64..100_000, proptest::sample::select(&["ns", "ms", "s", "m", "h", "d", "w", "y"][..]))
            .prop_map(|(n, u)| format!("{n}{u}")),
        1 => "\\PC{0,24}",
    ]
}

const KEYS: &[&str] = &[
    "start",
    "end",
    "since",
    "step",
    "limit",
    "direction",
    "interval",
    "time",
    "line_limit",
    "field_limit",
    "targetLabels",
    "aggregateBy",
    "delay_for",
];

/// A query string of 0 to 6 of the parameters, each with a [`value`].
fn query_string() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            proptest::sample::select(KEYS).prop_map(str::to_string),
            value(),
        ),
        0..6,
    )
}

fn to_query(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks every parser on `p`; fails the case if a property does not hold.
fn check_parsers(p: &Params) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let _ = bounds(p, NOW);
    for default in [None, Some(3_600_000_000_000)] {
        if let Ok(r) = TimeRange::parse(p, NOW, default) {
            prop_assert!(r.start <= r.end, "{r:?}");
            prop_assert!(r.step > 0, "{r:?}");
            let n = r.points();
            prop_assert!(n >= 1 && n as i64 <= MAX_POINTS + 1, "{r:?}: {n} points");
            // The last instant is the last one not after `end`, computed
            // without overflow.
            let last = i128::from(r.start) + i128::from(r.step) * (n as i128 - 1);
            prop_assert!(last <= i128::from(r.end), "{r:?}");
            prop_assert!(last + i128::from(r.step) > i128::from(r.end), "{r:?}");
            prop_assert_eq!(i128::from(r.at(n - 1)), last);
            prop_assert_eq!(points(r.start, r.end, r.step), Some(n as u64));
        }
    }
    if let Ok(l) = limit(p, 5000) {
        prop_assert!((1..=5000).contains(&l));
    }
    if let Ok(l) = limit(p, 0) {
        prop_assert!(l >= 1);
    }
    let _ = direction(p);
    if let Ok(i) = interval(p) {
        prop_assert!(i >= 0);
    }
    for key in KEYS {
        if let Some(v) = p.get(key) {
            let _ = parse_timestamp(v);
            let _ = parse_seconds_or_duration(v);
        }
    }
    prop_assert!(
        started.elapsed() < Duration::from_secs(1),
        "parsing took {:?}",
        started.elapsed()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_and_accepted_ranges_are_bounded(pairs in query_string()) {
        check_parsers(&Params::parse(&to_query(&pairs)))?;
    }

    #[test]
    fn any_text_is_a_query_string(text in "\\PC{0,64}") {
        check_parsers(&Params::parse(&text))?;
    }

    #[test]
    fn encoded_values_decode_to_themselves(pairs in query_string()) {
        let p = Params::parse(&to_query(&pairs));
        for (k, v) in &pairs {
            prop_assert!(p.all(k).contains(v), "{k}={v:?} lost: {:?}", p.all(k));
        }
    }

    #[test]
    fn steps_and_points_never_overflow(start in any::<i64>(), end in any::<i64>(), step in any::<i64>()) {
        let d = default_step(start, end);
        prop_assert!(d >= 1_000_000_000);
        match points(start, end, step) {
            None => prop_assert!(step <= 0 || end < start),
            Some(n) => {
                prop_assert!(n >= 1);
                let span = i128::from(end) - i128::from(start);
                prop_assert_eq!(i128::from(n), span / i128::from(step) + 1);
            }
        }
    }
}

#[test]
fn the_hanging_requests_of_the_issue_are_refused() {
    let too_many = "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter";
    let hour = Some(3_600_000_000_000);
    for q in [
        "start=-9223372036854775808&end=9223372036854775807&step=1",
        "start=0&end=9223372036854775807&step=0.001",
        "start=-9223372036854775808&end=9223372036854775807&step=1ms",
    ] {
        for default in [None, hour] {
            let e = TimeRange::parse(&Params::parse(q), NOW, default).unwrap_err();
            assert_eq!(e.message(), too_many, "{q}");
        }
    }
    // The whole representable range with Loki's default step (range / 250)
    // is accepted, with a handful of steps; with a one-hour default it is
    // refused.
    let q = Params::parse("start=-9223372036854775808&end=9223372036854775807");
    let r = TimeRange::parse(&q, NOW, None).unwrap();
    assert!(r.points() <= 251, "{r:?}");
    assert_eq!(
        TimeRange::parse(&q, NOW, hour).unwrap_err().message(),
        too_many
    );
    // A step of a year spans it in 585 steps.
    let q = Params::parse("start=-9223372036854775808&end=9223372036854775807&step=1y");
    assert_eq!(TimeRange::parse(&q, NOW, hour).unwrap().points(), 585);
    let e = TimeRange::parse(&Params::parse("start=10&end=5"), NOW, None).unwrap_err();
    assert_eq!(
        e.message(),
        "end timestamp must not be before or equal to start time"
    );
    let e = TimeRange::parse(&Params::parse("step=-1"), NOW, None).unwrap_err();
    assert_eq!(
        e.message(),
        "zero or negative query resolution step widths are not accepted. Try a positive integer"
    );
}

/// Every endpoint whose parameters these are, GET with a query string.
const ENDPOINTS: &[&str] = &[
    "/loki/api/v1/query_range?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/query_range?query=sum%20by%20(app)%20(count_over_time(%7Bapp%3D%22p%22%7D%5B1m%5D))",
    "/loki/api/v1/query?query=count_over_time(%7Bapp%3D%22p%22%7D%5B1m%5D)",
    "/api/prom/query?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/labels?x=1",
    "/loki/api/v1/label/app/values?x=1",
    "/loki/api/v1/series?match%5B%5D=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/index/stats?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/index/volume?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/index/volume_range?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/detected_labels?x=1",
    "/loki/api/v1/detected_fields?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/detected_field/level/values?query=%7Bapp%3D%22p%22%7D",
    "/loki/api/v1/patterns?query=%7Bapp%3D%22p%22%7D",
];

#[test]
fn every_endpoint_answers_hostile_parameters_promptly_without_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let port = store.http;
    let t0 = now_ns() - 120_000_000_000;
    let lines: Vec<String> = (0..200)
        .map(|i| format!("level=info msg=\"request {i}\" took={i}ms"))
        .collect();
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(r#"{app="p"}"#, t0, &lines),
    )
    .unwrap();
    assert_eq!(r.status, 204);

    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (query_string(), 0..ENDPOINTS.len());
    runner
        .run(&strategy, |(pairs, e)| {
            let path = format!("{}&{}", ENDPOINTS[e], to_query(&pairs));
            let started = Instant::now();
            let r = request(port, "GET", &path, &[], b"")
                .map_err(|err| TestCaseError::fail(format!("{path}: {err}")))?;
            prop_assert!(
                started.elapsed() < Duration::from_secs(10),
                "{path} took {:?}",
                started.elapsed()
            );
            prop_assert!(
                (200..500).contains(&r.status),
                "{path}: {} {}",
                r.status,
                r.text()
            );
            Ok(())
        })
        .unwrap();
    // Every endpoint with the extreme range of the issue: 400 at once.
    for e in ENDPOINTS {
        let path = format!("{e}&start=-9223372036854775808&end=9223372036854775807&step=1&time=0");
        let started = Instant::now();
        let r = request(port, "GET", &path, &[], b"").unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
        assert!(
            (200..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    let r = request(port, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    drop(store);
}
