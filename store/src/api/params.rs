//! Query parameters as Loki reads them (`pkg/loghttp`): timestamps in four
//! notations, durations as seconds or Prometheus durations, `limit`,
//! `direction`, and the time bounds with `since`. Error texts are Loki's.

use std::collections::HashMap;
use std::time::Duration;

use larch_query::Direction;

use super::ApiError;

/// Loki's default range: the last hour.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(3600);
/// Loki's default `limit`.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most points per series of a range query.
pub const MAX_POINTS: i64 = 11_000;

/// Form or query-string parameters; repeated keys keep every value.
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: HashMap<String, Vec<String>>,
}

impl Params {
    /// Parses `a=1&b=2` (URL-encoded).
    pub fn parse(query: &str) -> Params {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded_pairs(query) {
            map.entry(k).or_default().push(v);
        }
        Params { map }
    }

    /// Adds the pairs of another source (a POST body).
    pub fn extend(&mut self, other: Params) {
        for (k, v) in other.map {
            self.map.entry(k).or_default().extend(v);
        }
    }

    /// The first value of `key`, if present and non-empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> &[String] {
        self.map.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Splits `application/x-www-form-urlencoded` text into decoded pairs.
fn form_urlencoded_pairs(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Now, in Unix nanoseconds.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Parses a timestamp as Loki does: a number with a `.` that Go's
/// `strconv.ParseFloat` reads is float seconds (rounded to the
/// millisecond); an integer (`strconv.ParseInt`) of up to 10 digits is
/// seconds, a longer one nanoseconds; anything else Go's
/// `time.Parse(time.RFC3339Nano, …)`. When that fails too, the error is
/// the integer's, as Loki's is.
pub fn parse_timestamp(value: &str) -> Result<i64, String> {
    use larch_go::time::{Rfc3339, parse_rfc3339};
    if value.contains('.')
        && let Ok(f) = larch_go::strconv::parse_float(value)
    {
        if !f.is_finite() || f.abs() > 9.2e9 {
            return Err(format!("timestamp {value} is out of range"));
        }
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        return (secs as i64)
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(ms as i64 * 1_000_000))
            .ok_or_else(|| format!("timestamp {value} is out of range"));
    }
    let int_err = match larch_go::strconv::parse_int10(value) {
        Ok(n) => {
            let digits = value.trim_start_matches('-').len();
            return Ok(if digits <= 10 {
                n.saturating_mul(1_000_000_000)
            } else {
                n
            });
        }
        Err(e) => e,
    };
    match parse_rfc3339(value.as_bytes(), Rfc3339::Nano) {
        Ok(t) => t
            .checked_unix_nanos()
            .ok_or_else(|| format!("timestamp {value} is out of range")),
        Err(_) => Err(int_err.to_string()),
    }
}

/// Parses a duration given as float seconds (Go's `strconv.ParseFloat`:
/// `15`, `0.5`, `1e1`, `0x1p4`) or a Prometheus duration (`15s`, `1m`,
/// `1h30m`, `1d`, `1y`).
pub fn parse_seconds_or_duration(value: &str) -> Result<i64, String> {
    if let Ok(f) = larch_go::strconv::parse_float(value) {
        if !f.is_finite() || f.abs() > 9.2e9 {
            return Err(format!("cannot parse {value:?} to a valid duration"));
        }
        return Ok((f * 1e9).round() as i64);
    }
    larch_query::logql::parse_prometheus_duration(value)
        .map(|d| d.as_nanos())
        .map_err(|_| format!("cannot parse {value:?} to a valid duration"))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// Loki's text for a range whose end precedes its start.
pub const END_BEFORE_START: &str = "end timestamp must not be before or equal to start time";
/// Loki's text for a step of zero or less.
pub const STEP_NOT_POSITIVE: &str =
    "zero or negative query resolution step widths are not accepted. Try a positive integer";
/// Loki's text for a range with more than [`MAX_POINTS`] steps.
pub const TOO_MANY_POINTS: &str = "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter";

/// `start` and `end` with Loki's defaults: `end` defaults to now; `start`
/// to `min(end, now) - since` (`since` defaults to 1h).
pub fn bounds(p: &Params, now: i64) -> Result<(i64, i64), ApiError> {
    let since = match p.get("since") {
        Some(s) => larch_query::logql::parse_prometheus_duration(s)
            .map(|d| d.as_nanos())
            .map_err(|e| bad(format!("could not parse 'since' parameter: {e}")))?,
        None => DEFAULT_SINCE.as_nanos() as i64,
    };
    let end = match p.get("end") {
        Some(v) => {
            parse_timestamp(v).map_err(|e| bad(format!("could not parse 'end' parameter: {e}")))?
        }
        None => now,
    };
    let start = match p.get("start") {
        Some(v) => parse_timestamp(v)
            .map_err(|e| bad(format!("could not parse 'start' parameter: {e}")))?,
        None => end.min(now).saturating_sub(since),
    };
    Ok((start, end))
}

/// `limit` (default 100; must be positive and at most `max`).
pub fn limit(p: &Params, max: usize) -> Result<u32, ApiError> {
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| bad(format!("strconv.ParseInt: parsing {v:?}: invalid syntax")))?;
            if n <= 0 {
                return Err(bad("limit must be a positive value"));
            }
            u32::try_from(n).unwrap_or(u32::MAX)
        }
    };
    if max > 0 && limit as usize > max {
        return Err(bad(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
        )));
    }
    Ok(limit)
}

/// `direction`: `forward` or `backward` in any case; default backward.
pub fn direction(p: &Params) -> Result<Direction, ApiError> {
    match p.get("direction").map(str::to_ascii_uppercase).as_deref() {
        None | Some("BACKWARD") => Ok(Direction::Backward),
        Some("FORWARD") => Ok(Direction::Forward),
        Some(_) => Err(bad(format!(
            "invalid direction '{}'",
            p.get("direction").unwrap_or_default()
        ))),
    }
}

/// Loki's default step of a range query over `[start, end]`:
/// `max(floor(range / 250 s), 1 s)`, computed without overflow.
pub fn default_step(start: i64, end: i64) -> i64 {
    let span = (i128::from(end) - i128::from(start)).max(0);
    let secs = (span / 1_000_000_000 / 250).max(1);
    i64::try_from(secs * 1_000_000_000).unwrap_or(i64::MAX)
}

/// The number of evaluation instants `start, start + step, ... <= end`:
/// `floor((end - start) / step) + 1`, computed without overflow; `None`
/// when `step <= 0` or `end < start`.
pub fn points(start: i64, end: i64, step: i64) -> Option<u64> {
    if step <= 0 || end < start {
        return None;
    }
    let n = (i128::from(end) - i128::from(start)) / i128::from(step) + 1;
    u64::try_from(n).ok()
}

/// Checks `step` against the range `[start, end]` as Loki does: positive,
/// and at most [`MAX_POINTS`] steps between `start` and `end`.
pub fn check_step(start: i64, end: i64, step: i64) -> Result<i64, ApiError> {
    if step <= 0 {
        return Err(bad(STEP_NOT_POSITIVE));
    }
    let span = (i128::from(end) - i128::from(start)).max(0);
    if span / i128::from(step) > i128::from(MAX_POINTS) {
        return Err(bad(TOO_MANY_POINTS));
    }
    Ok(step)
}

/// `step` for a range query over `[start, end]`: given, or Loki's default
/// ([`default_step`]); checked against zero and the 11,000 point limit.
pub fn step(p: &Params, start: i64, end: i64) -> Result<i64, ApiError> {
    step_or(p, start, end, default_step(start, end))
}

/// `step` for a range over `[start, end]`, `default` when absent; checked
/// as [`step`] is.
pub fn step_or(p: &Params, start: i64, end: i64, default: i64) -> Result<i64, ApiError> {
    let step = match p.get("step") {
        Some(v) => parse_seconds_or_duration(v).map_err(bad)?,
        None => default,
    };
    check_step(start, end, step)
}

/// The time parameters of a range query, checked: `start <= end`,
/// `step > 0`, and at most `MAX_POINTS + 1` instants from `start` to `end`
/// (so `start + k * step` cannot overflow for any instant `k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant (Unix ns).
    pub start: i64,
    /// Last instant, or the exclusive end of a log query (Unix ns).
    pub end: i64,
    /// Distance between instants (ns), positive.
    pub step: i64,
}

impl TimeRange {
    /// `start`, `end` (with `since`) and `step` of a range request (Loki's
    /// `query_range`, index stats and volume): `end < start` is refused;
    /// `default_step` gives the step when `step` is absent (`None`: Loki's
    /// range / 250).
    pub fn parse(p: &Params, now: i64, default_step: Option<i64>) -> Result<TimeRange, ApiError> {
        let (start, end) = bounds(p, now)?;
        if end < start {
            return Err(bad(END_BEFORE_START));
        }
        let default = default_step.unwrap_or_else(|| self::default_step(start, end));
        let step = step_or(p, start, end, default)?;
        Ok(TimeRange { start, end, step })
    }

    /// The number of instants `start + k * step <= end` (at most
    /// `MAX_POINTS + 1`).
    pub fn points(&self) -> usize {
        points(self.start, self.end, self.step).map_or(0, |n| n as usize)
    }

    /// Instant `k` (saturating; exact for `k < self.points()`).
    pub fn at(&self, k: usize) -> i64 {
        let t = i128::from(self.start) + i128::from(self.step) * k as i128;
        t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// `interval` (log queries: at most one entry per interval); 0 when absent.
pub fn interval(p: &Params) -> Result<i64, ApiError> {
    match p.get("interval") {
        None => Ok(0),
        Some(v) => {
            let i = parse_seconds_or_duration(v).map_err(bad)?;
            if i < 0 {
                return Err(bad("interval must be >= 0"));
            }
            Ok(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_notation() {
        assert_eq!(
            parse_timestamp("1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("4000000000").unwrap(),
            4_000_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("1700000000123456789").unwrap(),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            parse_timestamp("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_timestamp("1700000000.1234").unwrap(),
            1_700_000_000_123_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.25+00:00").unwrap(),
            1_700_000_000_250_000_000
        );
        // Go's ParseFloat reads hex floats; Rust's does not.
        assert_eq!(parse_timestamp("0x1.8p1").unwrap(), 3_000_000_000);
        // Go's RFC 3339 wants the `T`; chrono also took a space or `t`.
        for bad in [
            "2023-11-14 22:13:20Z",
            "2023-11-14t22:13:20Z",
            "1_700_000_000.5",
        ] {
            assert_eq!(
                parse_timestamp(bad).unwrap_err(),
                format!("strconv.ParseInt: parsing {bad:?}: invalid syntax")
            );
        }
        // Loki answers with the integer's error, not the time's.
        assert_eq!(
            parse_timestamp("yesterday").unwrap_err(),
            r#"strconv.ParseInt: parsing "yesterday": invalid syntax"#
        );
        assert_eq!(
            parse_timestamp("99999999999999999999").unwrap_err(),
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#
        );
    }

    #[test]
    fn durations_and_steps() {
        assert_eq!(parse_seconds_or_duration("15").unwrap(), 15_000_000_000);
        assert_eq!(parse_seconds_or_duration("0.5").unwrap(), 500_000_000);
        assert_eq!(
            parse_seconds_or_duration("15000ms").unwrap(),
            15_000_000_000
        );
        assert_eq!(parse_seconds_or_duration("1d").unwrap(), 86_400_000_000_000);
        assert_eq!(
            parse_seconds_or_duration("x").unwrap_err(),
            r#"cannot parse "x" to a valid duration"#
        );
        // Go's ParseFloat: hex floats and a leading `+` are seconds; `_`
        // separators, `1e` and a trailing space are not numbers.
        assert_eq!(parse_seconds_or_duration("0x1p4").unwrap(), 16_000_000_000);
        assert_eq!(parse_seconds_or_duration("+2").unwrap(), 2_000_000_000);
        for bad in ["1_000", "1e", "15 ", "Inf"] {
            assert_eq!(
                parse_seconds_or_duration(bad).unwrap_err(),
                format!("cannot parse {bad:?} to a valid duration")
            );
        }
        let hour = 3_600_000_000_000;
        assert_eq!(step(&Params::parse(""), 0, hour).unwrap(), 14_000_000_000);
        assert_eq!(step(&Params::parse(""), 0, 10).unwrap(), 1_000_000_000);
        assert!(
            step(&Params::parse("step=0"), 0, hour)
                .unwrap_err()
                .message()
                .starts_with("zero or negative")
        );
        assert!(
            step(&Params::parse("step=0.01"), 0, hour)
                .unwrap_err()
                .message()
                .starts_with("exceeded maximum resolution")
        );
    }

    #[test]
    fn bounds_defaults() {
        let now = 10_000_000_000_000;
        assert_eq!(
            bounds(&Params::parse(""), now).unwrap(),
            (now - 3_600_000_000_000, now)
        );
        assert_eq!(
            bounds(&Params::parse("since=5m"), now).unwrap(),
            (now - 300_000_000_000, now)
        );
        // A future end does not move the default start past now.
        let (s, e) = bounds(&Params::parse("end=4000000000"), now).unwrap();
        assert_eq!((s, e), (now - 3_600_000_000_000, 4_000_000_000_000_000_000));
        assert!(
            bounds(&Params::parse("start=abc"), now)
                .unwrap_err()
                .message()
                .starts_with("could not parse 'start' parameter")
        );
    }

    #[test]
    fn limit_and_direction() {
        assert_eq!(limit(&Params::parse(""), 5000).unwrap(), 100);
        assert_eq!(
            limit(&Params::parse("limit=0"), 5000)
                .unwrap_err()
                .message(),
            "limit must be a positive value"
        );
        assert_eq!(
            limit(&Params::parse("limit=6000"), 5000)
                .unwrap_err()
                .message(),
            "max entries limit per query exceeded, limit > max_entries_limit_per_query (6000 > 5000)"
        );
        assert_eq!(
            direction(&Params::parse("direction=FORWARD")).unwrap(),
            Direction::Forward
        );
        assert_eq!(
            direction(&Params::parse("direction=backward")).unwrap(),
            Direction::Backward
        );
        assert_eq!(
            direction(&Params::parse("direction=up"))
                .unwrap_err()
                .message(),
            "invalid direction 'up'"
        );
    }

    #[test]
    fn url_decoding_and_repeats() {
        let p = Params::parse(
            "query=%7Bapp%3D%22a%22%7D+%7C%3D+%22x%22&match%5B%5D=a&match%5B%5D=b&bad=%zz",
        );
        assert_eq!(p.get("query"), Some(r#"{app="a"} |= "x""#));
        assert_eq!(p.all("match[]"), ["a", "b"]);
        assert_eq!(p.get("bad"), Some("%zz"));
    }
}
