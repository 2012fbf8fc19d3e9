//! One delete request: its parameters as the API takes them (with Loki's
//! error texts), its stored form, its compiled selector and pipeline, and
//! its JSON as `GET /loki/api/v1/delete` lists it.

use std::sync::Arc;

use larch_query::logql::{self, LogExpr};
use larch_query::pipeline::{BlockMatcher, Pipeline, compile_log};
use larch_query::{LabelSet, Matcher};
use serde::{Deserialize, Serialize};

/// Longest query a delete request may carry, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// A request's parameters refused, with Loki's text (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

fn err(s: impl Into<String>) -> ParamError {
    ParamError(s.into())
}

/// What a client asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// The LogQL log query, as sent.
    pub query: String,
    /// First millisecond deleted.
    pub start_ms: i64,
    /// Last millisecond deleted (inclusive, as Loki's).
    pub end_ms: i64,
    /// `max_interval` in milliseconds (0: none given); kept and shown,
    /// the request is processed whole.
    pub max_interval_ms: i64,
}

/// Parses a time as Loki's delete API does: Go's
/// `time.Parse(time.RFC3339, …)`, or exactly ten digits of Unix seconds;
/// empty is `now_ms`.
pub fn parse_time(value: &str, now_ms: i64) -> Option<i64> {
    use larch_go::time::{Rfc3339, parse_rfc3339};
    if value.is_empty() {
        return Some(now_ms);
    }
    if let Ok(t) = parse_rfc3339(value.as_bytes(), Rfc3339::Seconds) {
        return Some(t.unix_millis());
    }
    if value.len() == 10 && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i64>().ok()?.checked_mul(1000);
    }
    None
}

/// Checks the parameters of `POST /loki/api/v1/delete` (`get` reads one
/// parameter), in Loki's order and with its texts. `max_ms` is
/// `compactor.delete_max_interval` (0: no bound).
pub fn parse_new(
    get: impl Fn(&str) -> Option<String>,
    now_ms: i64,
    max_ms: i64,
) -> Result<NewRequest, ParamError> {
    let query = get("query").unwrap_or_default();
    if query.is_empty() {
        return Err(err("query not set"));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(err(format!(
            "invalid query expression: the query is {} bytes, the limit is {MAX_QUERY_BYTES}",
            query.len()
        )));
    }
    let expr =
        logql::parse_log_selector(&query, false).map_err(|_| err("invalid query expression"))?;
    // Compiled here too, so a request that could not filter is refused
    // now rather than when queries run.
    Compiled::new(&expr).map_err(|_| err("invalid query expression"))?;
    let start = get("start").unwrap_or_default();
    if start.is_empty() {
        return Err(err("start time not set"));
    }
    let start_ms = parse_time(&start, now_ms)
        .ok_or_else(|| err("invalid start time: require unix seconds or RFC3339 format"))?;
    let end_ms = parse_time(&get("end").unwrap_or_default(), now_ms)
        .ok_or_else(|| err("invalid end time: require unix seconds or RFC3339 format"))?;
    if end_ms > now_ms {
        return Err(err("deletes in the future are not allowed"));
    }
    if start_ms >= end_ms {
        return Err(err("start time can't be greater than or equal to end time"));
    }
    let mut max_interval_ms = 0;
    let has_filter = !expr.stages.is_empty();
    if has_filter {
        max_interval_ms = max_ms;
        if let Some(v) = get("max_interval").filter(|v| !v.is_empty()) {
            let bad = || err("invalid max_interval: valid time units are 's', 'm', 'h'");
            let d = logql::parse_go_duration(&v).map_err(|_| bad())?;
            let ms = d.as_millis();
            if d.as_nanos() < 1_000_000_000 {
                return Err(bad());
            }
            if max_ms != 0 && ms > max_ms {
                return Err(err(format!(
                    "max_interval can't be greater than {}",
                    go_duration(max_ms)
                )));
            }
            let span = end_ms - start_ms;
            if ms > span {
                return Err(err(format!(
                    "max_interval can't be greater than the interval to be deleted ({})",
                    go_duration(span)
                )));
            }
            max_interval_ms = ms;
        }
    }
    Ok(NewRequest {
        query,
        start_ms,
        end_ms,
        max_interval_ms,
    })
}

/// Milliseconds as Go prints a `time.Duration` (`24h0m0s`, `1.5s`).
pub fn go_duration(ms: i64) -> String {
    larch_go::duration::Duration::from_millis(ms)
        .fmt_go()
        .to_string()
}

/// The stored form of a request (`deletes/<tenant>/<id>.req`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The query as sent.
    pub query: String,
    /// First millisecond.
    pub start_ms: i64,
    /// Last millisecond (inclusive).
    pub end_ms: i64,
    /// When it was made (milliseconds since the epoch).
    pub created_ms: i64,
    /// `max_interval` (0: none).
    #[serde(default)]
    pub max_interval_ms: i64,
}

/// A request's selector and pipeline, compiled once.
#[derive(Debug, Clone)]
pub struct Compiled {
    matchers: Vec<Matcher>,
    lines: BlockMatcher,
    pipeline: Pipeline,
}

impl Compiled {
    /// Compiles a parsed query.
    pub fn new(expr: &LogExpr) -> Result<Compiled, String> {
        let c = compile_log(expr).map_err(|e| e.to_string())?;
        Ok(Compiled {
            matchers: expr.matchers.clone(),
            lines: c.line_filter,
            pipeline: c.pipeline,
        })
    }

    /// Whether the selector matches a stream's labels.
    pub fn selects(&self, labels: &LabelSet) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    /// Whether the leading line filters pass `line`.
    pub fn line_matches(&self, line: &[u8]) -> bool {
        self.lines.matches_line(line)
    }

    /// The pipeline's state for one stream.
    pub fn for_stream(&self, labels: Arc<LabelSet>) -> larch_query::pipeline::StreamPipeline {
        self.pipeline.for_stream(labels)
    }

    /// Whether the query has no filter: every line of a selected stream
    /// in the time range is deleted.
    pub fn is_whole_stream(&self) -> bool {
        self.lines.is_empty() && self.pipeline.is_empty()
    }
}

/// A request as the store knows it.
#[derive(Debug)]
pub struct Request {
    /// Its id (`X-Delete-Request-ID`).
    pub id: String,
    /// What was stored.
    pub stored: Stored,
    /// Its compiled form.
    pub compiled: Compiled,
    /// When the compactor finished it (ms), if it has.
    pub processed_ms: Option<i64>,
}

impl Request {
    /// A stored request, compiled; `None` if its query no longer parses.
    pub fn from_stored(id: String, stored: Stored, processed_ms: Option<i64>) -> Option<Request> {
        let expr = logql::parse_log_selector(&stored.query, false).ok()?;
        let compiled = Compiled::new(&expr).ok()?;
        Some(Request {
            id,
            stored,
            compiled,
            processed_ms,
        })
    }

    /// First nanosecond deleted.
    pub fn start_ns(&self) -> i64 {
        self.stored.start_ms.saturating_mul(1_000_000)
    }

    /// Last nanosecond deleted (the whole last millisecond).
    pub fn end_ns(&self) -> i64 {
        self.stored
            .end_ms
            .saturating_mul(1_000_000)
            .saturating_add(999_999)
    }

    /// Whether `[start, end)` (ns) overlaps the request's range.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        start <= self.end_ns() && end > self.start_ns()
    }

    /// Loki's status text.
    pub fn status(&self) -> &'static str {
        if self.processed_ms.is_some() {
            "processed"
        } else {
            "received"
        }
    }
}

/// Milliseconds as Loki's JSON prints a time: Unix seconds, with the
/// milliseconds as decimals when there are any.
pub fn seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (s, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        return format!("{sign}{s}");
    }
    let f = format!("{frac:03}");
    format!("{sign}{s}.{}", f.trim_end_matches('0'))
}

/// The JSON list `GET /loki/api/v1/delete` answers, ordered by creation.
pub fn list_json(requests: &[Arc<Request>]) -> String {
    let mut sorted: Vec<&Arc<Request>> = requests.iter().collect();
    sorted.sort_by(|a, b| (a.stored.created_ms, &a.id).cmp(&(b.stored.created_ms, &b.id)));
    let mut out = String::from("[");
    for (i, r) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"request_id\":{},\"start_time\":{},\"end_time\":{},\"query\":{},\"status\":\"{}\",\"created_at\":{},\"user_id\":\"\"}}",
            serde_json::Value::String(r.id.clone()),
            seconds(r.stored.start_ms),
            seconds(r.stored.end_ms),
            serde_json::Value::String(r.stored.query.clone()),
            r.status(),
            seconds(r.stored.created_ms),
        ));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_700_000_000_000;

    fn parse(pairs: &[(&str, &str)]) -> Result<NewRequest, ParamError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_new(|k| m.get(k).cloned(), NOW, 24 * 3_600_000)
    }

    #[test]
    fn lokis_errors_in_lokis_order() {
        let e = |p: &[(&str, &str)]| parse(p).unwrap_err().0;
        assert_eq!(e(&[]), "query not set");
        assert_eq!(e(&[("query", "{a=")]), "invalid query expression");
        assert_eq!(
            e(&[("query", "rate({a=\"b\"}[1m])")]),
            "invalid query expression"
        );
        assert_eq!(e(&[("query", "{a=\"b\"}")]), "start time not set");
        assert_eq!(
            e(&[("query", "{a=\"b\"}"), ("start", "yesterday")]),
            "invalid start time: require unix seconds or RFC3339 format"
        );
        // Go's RFC 3339 wants an upper-case `T` (chrono took a space).
        assert_eq!(
            e(&[("query", "{a=\"b\"}"), ("start", "2023-07-22 04:26:40Z")]),
            "invalid start time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            parse_time("2023-07-22T04:26:40.9Z", 0),
            Some(1_690_000_000_900)
        );
        // Unix seconds are exactly ten digits.
        assert_eq!(
            e(&[("query", "{a=\"b\"}"), ("start", "169999999")]),
            "invalid start time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            e(&[
                ("query", "{a=\"b\"}"),
                ("start", "1690000000"),
                ("end", "x")
            ]),
            "invalid end time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            e(&[
                ("query", "{a=\"b\"}"),
                ("start", "1690000000"),
                ("end", "1800000000")
            ]),
            "deletes in the future are not allowed"
        );
        assert_eq!(
            e(&[
                ("query", "{a=\"b\"}"),
                ("start", "1690000000"),
                ("end", "1690000000")
            ]),
            "start time can't be greater than or equal to end time"
        );
        let with = |mi: &str| {
            e(&[
                ("query", "{a=\"b\"} |= \"x\""),
                ("start", "1690000000"),
                ("end", "1690003600"),
                ("max_interval", mi),
            ])
        };
        assert_eq!(
            with("1d"),
            "invalid max_interval: valid time units are 's', 'm', 'h'"
        );
        assert_eq!(
            with("500ms"),
            "invalid max_interval: valid time units are 's', 'm', 'h'"
        );
        assert_eq!(with("25h"), "max_interval can't be greater than 24h0m0s");
        assert_eq!(
            with("2h"),
            "max_interval can't be greater than the interval to be deleted (1h0m0s)"
        );
        let long = format!("{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        assert!(e(&[("query", &long)]).starts_with("invalid query expression"));
    }

    #[test]
    fn accepted_requests() {
        let r = parse(&[
            ("query", "{a=\"b\"} |= \"secret\""),
            ("start", "2023-11-14T20:00:00Z"),
            ("max_interval", "1h"),
        ])
        .unwrap();
        assert_eq!(r.start_ms, 1_699_992_000_000);
        assert_eq!(r.end_ms, NOW);
        assert_eq!(r.max_interval_ms, 3_600_000);
        // Without filters `max_interval` is not looked at.
        let r = parse(&[
            ("query", "{a=\"b\"}"),
            ("start", "1690000000"),
            ("max_interval", "x"),
        ])
        .unwrap();
        assert_eq!((r.start_ms, r.max_interval_ms), (1_690_000_000_000, 0));
    }

    #[test]
    fn selection_and_times() {
        let stored = Stored {
            query: "{app=\"api\", env!=\"dev\"} |= \"secret\"".into(),
            start_ms: 1000,
            end_ms: 2000,
            created_ms: 5,
            max_interval_ms: 0,
        };
        let r = Request::from_stored("id".into(), stored, None).unwrap();
        assert!(r.compiled.selects(&LabelSet::from_pairs([("app", "api")])));
        assert!(
            !r.compiled
                .selects(&LabelSet::from_pairs([("app", "api"), ("env", "dev")]))
        );
        assert!(!r.compiled.selects(&LabelSet::from_pairs([("app", "web")])));
        assert!(!r.compiled.is_whole_stream());
        assert_eq!((r.start_ns(), r.end_ns()), (1_000_000_000, 2_000_999_999));
        assert!(r.overlaps(0, 1_000_000_001));
        assert!(!r.overlaps(0, 1_000_000_000));
        assert!(r.overlaps(2_000_999_999, i64::MAX));
        assert!(!r.overlaps(2_001_000_000, i64::MAX));
        assert_eq!(r.status(), "received");
    }

    #[test]
    fn json_times_and_list() {
        assert_eq!(seconds(1_700_000_000_000), "1700000000");
        assert_eq!(seconds(1_700_000_000_500), "1700000000.5");
        assert_eq!(seconds(1_700_000_000_012), "1700000000.012");
        assert_eq!(seconds(-1500), "-1.5");
        let mk = |id: &str, created: i64, done: Option<i64>| {
            Arc::new(
                Request::from_stored(
                    id.into(),
                    Stored {
                        query: "{a=\"\\\"b\"}".into(),
                        start_ms: 1000,
                        end_ms: 2500,
                        created_ms: created,
                        max_interval_ms: 0,
                    },
                    done,
                )
                .unwrap(),
            )
        };
        let json = list_json(&[mk("b", 20, Some(30)), mk("a", 10, None)]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["request_id"], "a");
        assert_eq!(v[0]["status"], "received");
        assert_eq!(v[1]["status"], "processed");
        assert_eq!(v[0]["start_time"], 1);
        assert_eq!(v[0]["end_time"], 2.5);
        assert_eq!(v[0]["created_at"], 0.01);
        assert_eq!(v[0]["query"], "{a=\"\\\"b\"}");
        assert_eq!(v[0]["user_id"], "");
        assert_eq!(list_json(&[]), "[]");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a client sends, parsing answers without panicking, and
        /// what it accepts is a range in the past, start before end.
        #[test]
        fn any_parameters(
            query in "\\PC{0,40}|\\{a=\"b\"\\}( \\|= \"x\")?",
            start in "\\PC{0,12}|[0-9]{10}|2023-11-1[0-9]T[0-2][0-9]:00:00(Z|[+-]0[0-9]:00)",
            end in "\\PC{0,12}|[0-9]{10}",
            max in "\\PC{0,6}|[0-9]{1,6}(s|m|h|ms)",
        ) {
            let m: HashMap<&str, &str> =
                [("query", query.as_str()), ("start", start.as_str()), ("end", end.as_str()), ("max_interval", max.as_str())]
                    .into_iter()
                    .collect();
            if let Ok(r) = parse_new(|k| m.get(k).map(|v| v.to_string()), NOW, 24 * 3_600_000) {
                proptest::prop_assert!(r.start_ms < r.end_ms);
                proptest::prop_assert!(r.end_ms <= NOW);
                proptest::prop_assert!(r.max_interval_ms >= 0);
                proptest::prop_assert!(r.max_interval_ms <= 24 * 3_600_000);
            }
        }
    }
}
