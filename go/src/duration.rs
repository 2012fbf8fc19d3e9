//! Durations as LogQL, Prometheus and Go write them.
//!
//! LogQL uses two duration grammars, and the query API and configuration
//! reuse both:
//! * Prometheus' (`model.ParseDuration`): integer amounts with the units
//!   `ms s m h d w y`, compound forms in decreasing unit order (`1h30m`),
//!   millisecond precision. Range selectors `[5m]` accept only this form.
//! * Go's (`time.ParseDuration`): optional sign, decimal fractions, units
//!   `ns us µs ms s m h` (`1.5s`, `-2h45m`), nanosecond precision. Offsets
//!   and duration label filters try Prometheus' form first and fall back to
//!   Go's.
//!
//! Both parsers return Go's or Prometheus' exact error texts because those
//! texts reach users in parse errors (`unknown unit "minutes" in duration
//! "5minutes"`). Printing follows the same split: [`Duration::fmt_prometheus`]
//! for ranges (`5m`, `1h30m`), [`Duration::fmt_go`] for offsets and
//! duration filters (`1h30m0s`).
//!
//! [`seconds`] is Go's `Duration.Seconds()`, which the template function
//! `duration` and `unwrap duration()` return.

use std::fmt;

use crate::quote::go_quote;

const NANOS_PER_MILLI: i64 = 1_000_000;
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A signed span of time with nanosecond resolution (Go's `time.Duration`),
/// used for ranges, offsets and duration label filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    nanos: i64,
}

impl Duration {
    /// The empty duration.
    pub const ZERO: Duration = Duration { nanos: 0 };

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Duration {
        Duration { nanos }
    }

    /// A duration of `millis` milliseconds (saturating).
    pub const fn from_millis(millis: i64) -> Duration {
        Duration {
            nanos: millis.saturating_mul(NANOS_PER_MILLI),
        }
    }

    /// A duration of `secs` seconds (saturating).
    pub const fn from_secs(secs: i64) -> Duration {
        Duration {
            nanos: secs.saturating_mul(NANOS_PER_SEC),
        }
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// The duration in whole milliseconds, truncated toward zero.
    pub const fn as_millis(self) -> i64 {
        self.nanos / NANOS_PER_MILLI
    }

    /// The duration in seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / NANOS_PER_SEC as f64
    }

    /// Whether the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// Prometheus' text form (`model.Duration.String`): largest units first,
    /// years and weeks only when exact, millisecond precision: `5m`,
    /// `1h30m`, `90d`, `1y`, `0s`.
    pub fn fmt_prometheus(self) -> impl fmt::Display {
        PromFmt(self)
    }

    /// Go's text form (`time.Duration.String`): `1h30m0s`, `1.5s`, `20ms`,
    /// `0s`.
    pub fn fmt_go(self) -> impl fmt::Display {
        GoFmt(self)
    }
}

struct PromFmt(Duration);

impl fmt::Display for PromFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.nanos / NANOS_PER_MILLI;
        if ms == 0 {
            return f.write_str("0s");
        }
        if ms < 0 {
            f.write_str("-")?;
            ms = -ms;
        }
        const DAY: i64 = 1000 * 60 * 60 * 24;
        let units: [(&str, i64, bool); 7] = [
            ("y", DAY * 365, true),
            ("w", DAY * 7, true),
            ("d", DAY, false),
            ("h", 1000 * 60 * 60, false),
            ("m", 1000 * 60, false),
            ("s", 1000, false),
            ("ms", 1, false),
        ];
        for (unit, mult, exact) in units {
            if exact && ms % mult != 0 {
                continue;
            }
            let v = ms / mult;
            if v > 0 {
                write!(f, "{v}{unit}")?;
                ms -= v * mult;
            }
        }
        Ok(())
    }
}

struct GoFmt(Duration);

impl fmt::Display for GoFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0.nanos;
        if d == 0 {
            return f.write_str("0s");
        }
        if d < 0 {
            f.write_str("-")?;
        }
        let u = d.unsigned_abs();
        if u < NANOS_PER_SEC as u64 {
            // Below a second Go uses the largest sub-second unit.
            let (unit, prec) = if u < 1_000 {
                ("ns", 0)
            } else if u < 1_000_000 {
                ("µs", 3)
            } else {
                ("ms", 6)
            };
            write_frac(f, u, prec)?;
            return f.write_str(unit);
        }
        let secs_part = u % (60 * NANOS_PER_SEC as u64);
        let total_min = u / (60 * NANOS_PER_SEC as u64);
        let hours = total_min / 60;
        let mins = total_min % 60;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if total_min > 0 {
            write!(f, "{mins}m")?;
        }
        write_frac(f, secs_part, 9)?;
        f.write_str("s")
    }
}

/// Writes `v / 10^prec` with the fraction's trailing zeros removed.
fn write_frac(f: &mut fmt::Formatter<'_>, v: u64, prec: u32) -> fmt::Result {
    let scale = 10u64.pow(prec);
    let int = v / scale;
    let mut frac = v % scale;
    write!(f, "{int}")?;
    if frac == 0 {
        return Ok(());
    }
    let mut digits = prec as usize;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    write!(f, ".{frac:0digits$}")
}

/// A duration text that neither grammar accepts; the message is Go's or
/// Prometheus' own (`time: unknown unit "d" in duration "1d"`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

/// Parses a Prometheus duration (`model.ParseDuration`): `5m`, `1h30m`,
/// `2w`, `0`. Units must appear in decreasing order, at most once each.
pub fn parse_prometheus_duration(s: &str) -> Result<Duration, DurationError> {
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err(DurationError("empty duration string".into())),
        _ => {}
    }
    let invalid = || DurationError(format!("not a valid duration string: {}", go_quote(s)));
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_pos = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let v: u64 = s[start..i].parse().map_err(|_| invalid())?;
        let ustart = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == ustart {
            return Err(invalid());
        }
        let unit = &s[ustart..i];
        const DAY: u64 = 24 * 3600 * NANOS_PER_SEC as u64;
        let (pos, mult) = match unit {
            "ms" => (7, NANOS_PER_MILLI as u64),
            "s" => (6, NANOS_PER_SEC as u64),
            "m" => (5, 60 * NANOS_PER_SEC as u64),
            "h" => (4, 3600 * NANOS_PER_SEC as u64),
            "d" => (3, DAY),
            "w" => (2, 7 * DAY),
            "y" => (1, 365 * DAY),
            _ => {
                return Err(DurationError(format!(
                    "unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                )));
            }
        };
        if pos <= last_pos {
            return Err(invalid());
        }
        last_pos = pos;
        if v > (1u64 << 63) / mult {
            return Err(DurationError("duration out of range".into()));
        }
        total += v * mult;
        if total > i64::MAX as u64 {
            return Err(DurationError("duration out of range".into()));
        }
    }
    Ok(Duration::from_nanos(total as i64))
}

/// Parses a Go duration (`time.ParseDuration`): `1.5h`, `-2m30s`, `300ms`,
/// `10us`, `0`.
pub fn parse_go_duration(orig: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError(format!("time: invalid duration {}", go_quote(orig)));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let mut i = 0;
        let mut v: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if v > (1u64 << 63) / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(b[i] - b'0');
            if v > 1u64 << 63 {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        // Fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fstart = i;
            let mut overflow = false;
            while i < b.len() && b[i].is_ascii_digit() {
                if !overflow {
                    if frac > (1u64 << 63) / 10 {
                        overflow = true;
                    } else {
                        let y = frac * 10 + u64::from(b[i] - b'0');
                        if y > 1u64 << 63 {
                            overflow = true;
                        } else {
                            frac = y;
                            scale *= 10.0;
                        }
                    }
                }
                i += 1;
            }
            post = i > fstart;
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let ustart = i;
        while i < b.len() && b[i] != b'.' && !b[i].is_ascii_digit() {
            i += 1;
        }
        if i == ustart {
            return Err(DurationError(format!(
                "time: missing unit in duration {}",
                go_quote(orig)
            )));
        }
        let unit = &s[ustart..i];
        let mult: u64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC as u64,
            "m" => 60 * NANOS_PER_SEC as u64,
            "h" => 3600 * NANOS_PER_SEC as u64,
            _ => {
                return Err(DurationError(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(orig)
                )));
            }
        };
        if v > (1u64 << 63) / mult {
            return Err(invalid());
        }
        v *= mult;
        if frac > 0 {
            v += (frac as f64 * (mult as f64 / scale)) as u64;
            if v > 1u64 << 63 {
                return Err(invalid());
            }
        }
        total += v;
        if total > 1u64 << 63 {
            return Err(invalid());
        }
        s = &s[i..];
    }
    if neg {
        return Ok(Duration::from_nanos((total as i64).wrapping_neg()));
    }
    if total > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total as i64))
}

/// Parses a duration the way LogQL offsets and duration filters do:
/// Prometheus' grammar first, then Go's. The error is Go's.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    match parse_prometheus_duration(s) {
        Ok(d) => Ok(d),
        Err(_) => parse_go_duration(s),
    }
}

/// Go's `Duration.Seconds()` of `nanos` nanoseconds: whole seconds plus
/// the fraction, computed apart so large values keep their nanoseconds.
pub fn seconds(nanos: i64) -> f64 {
    let sec = nanos / NANOS_PER_SEC;
    let nsec = nanos % NANOS_PER_SEC;
    sec as f64 + nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        let ms = |v: i64| Duration::from_millis(v);
        assert_eq!(parse_prometheus_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_prometheus_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_prometheus_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_prometheus_duration("1y2w3d").map(|d| d.as_millis()),
            Ok((365 + 14 + 3) * 86_400_000)
        );
        assert_eq!(
            parse_prometheus_duration("5minutes").unwrap_err().0,
            r#"unknown unit "minutes" in duration "5minutes""#
        );
        assert_eq!(
            parse_prometheus_duration("1m1h").unwrap_err().0,
            r#"not a valid duration string: "1m1h""#
        );
        assert_eq!(
            parse_prometheus_duration("1.5h").unwrap_err().0,
            r#"unknown unit "." in duration "1.5h""#
        );
        assert_eq!(
            parse_prometheus_duration("").unwrap_err().0,
            "empty duration string"
        );
        assert_eq!(
            parse_prometheus_duration("300y").unwrap_err().0,
            "duration out of range"
        );
    }

    #[test]
    fn go_durations() {
        let ns = Duration::from_nanos;
        assert_eq!(parse_go_duration("1.5s"), Ok(ns(1_500_000_000)));
        assert_eq!(parse_go_duration("-2m30s"), Ok(ns(-150_000_000_000)));
        assert_eq!(parse_go_duration("10us"), Ok(ns(10_000)));
        assert_eq!(parse_go_duration("10µs"), Ok(ns(10_000)));
        assert_eq!(parse_go_duration(".5h"), Ok(ns(1_800_000_000_000)));
        assert_eq!(parse_go_duration("-0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("1d").unwrap_err().0,
            r#"time: unknown unit "d" in duration "1d""#
        );
        assert_eq!(
            parse_go_duration("5").unwrap_err().0,
            r#"time: missing unit in duration "5""#
        );
        assert_eq!(
            parse_go_duration("x").unwrap_err().0,
            r#"time: invalid duration "x""#
        );
        assert_eq!(
            parse_go_duration("9999999999h").unwrap_err().0,
            r#"time: invalid duration "9999999999h""#
        );
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(seconds(500_000_000), 0.5);
        assert_eq!(seconds(-1_500_000_000), -1.5);
    }

    #[test]
    fn duration_printing() {
        let s = Duration::from_secs;
        assert_eq!(s(300).fmt_prometheus().to_string(), "5m");
        assert_eq!(s(5400).fmt_prometheus().to_string(), "1h30m");
        assert_eq!(s(86_400 * 90).fmt_prometheus().to_string(), "90d");
        assert_eq!(s(86_400 * 14).fmt_prometheus().to_string(), "2w");
        assert_eq!(s(86_400 * 365).fmt_prometheus().to_string(), "1y");
        assert_eq!(Duration::ZERO.fmt_prometheus().to_string(), "0s");
        assert_eq!(s(5400).fmt_go().to_string(), "1h30m0s");
        assert_eq!(s(90).fmt_go().to_string(), "1m30s");
        assert_eq!(s(-3600).fmt_go().to_string(), "-1h0m0s");
        assert_eq!(Duration::from_millis(20).fmt_go().to_string(), "20ms");
        assert_eq!(Duration::from_millis(1500).fmt_go().to_string(), "1.5s");
        assert_eq!(Duration::from_nanos(1500).fmt_go().to_string(), "1.5µs");
        assert_eq!(Duration::from_nanos(7).fmt_go().to_string(), "7ns");
        assert_eq!(Duration::ZERO.fmt_go().to_string(), "0s");
        for d in [1, 999, 1_000_001, 3_723_000_000_123, -42_000_000_000] {
            let d = Duration::from_nanos(d);
            assert_eq!(parse_go_duration(&d.fmt_go().to_string()), Ok(d));
        }
    }
}
