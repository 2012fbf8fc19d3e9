//! Times and durations as people type them and as `larch` prints them.
//!
//! Input follows the query API's own rules so that a time copied from a
//! response or a URL means the same on the command line: an integer of at
//! most 10 digits is Unix seconds, a longer one Unix nanoseconds, a decimal
//! number is seconds with a fraction, and anything else is RFC 3339 as
//! logcli's `time.Parse(time.RFC3339Nano, …)` reads it
//! (`larch_go::time::parse_rfc3339`: an upper-case `T`, `Z` or `±hh:mm`,
//! fractional seconds optional). A time without a zone
//! (`2024-05-01T10:00:00`, or just a date) is read in the `--timezone`,
//! as logcli does. Durations are Prometheus durations (`1h30m`, `7d`),
//! Go durations (`1.5h`) or plain seconds (`90`).
//!
//! Output uses Go's layouts (formatted by `larch_go::time`) because logcli
//! does and people grep for them:
//! `rfc3339` (seconds, `Z` for a zero offset) by default, `rfc3339nano`
//! (fraction with trailing zeros removed) for JSON lines.

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Nanoseconds in a second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The zone timestamps are printed in and zone-less times are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The machine's zone (`TZ`, `/etc/localtime`).
    Local,
    /// UTC.
    Utc,
}

impl Zone {
    /// Reads `Local` or `UTC` (any case).
    pub fn parse(s: &str) -> Result<Zone, String> {
        match s.to_ascii_lowercase().as_str() {
            "local" => Ok(Zone::Local),
            "utc" | "z" => Ok(Zone::Utc),
            _ => Err(format!(
                "unknown timezone {s:?}: use Local or UTC (or set TZ for another zone)"
            )),
        }
    }
}

/// How timestamps are printed (`--output-timestamp-format`), named after
/// Go's layout constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TsFormat {
    /// `2006-01-02T15:04:05Z07:00`
    #[value(name = "rfc3339")]
    Rfc3339,
    /// `2006-01-02T15:04:05.999999999Z07:00`
    #[value(name = "rfc3339nano")]
    Rfc3339Nano,
    /// `02 Jan 06 15:04 -0700`
    #[value(name = "rfc822z")]
    Rfc822Z,
    /// `Mon, 02 Jan 2006 15:04:05 -0700`
    #[value(name = "rfc1123z")]
    Rfc1123Z,
    /// `Jan _2 15:04:05.000`
    #[value(name = "stampmilli")]
    StampMilli,
    /// `Jan _2 15:04:05.000000`
    #[value(name = "stampmicro")]
    StampMicro,
    /// `Jan _2 15:04:05.000000000`
    #[value(name = "stampnano")]
    StampNano,
}

/// The current time in Unix nanoseconds.
pub fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Reads a point in time (see the module docs) as Unix nanoseconds.
pub fn parse_time(s: &str, zone: Zone) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty time".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t
            .parse()
            .map_err(|_| format!("time {t:?} is out of range"))?;
        return if t.len() <= 10 {
            Ok(n * NANOS_PER_SEC)
        } else {
            Ok(n)
        };
    }
    if let Some(ns) = decimal_seconds(t) {
        return ns.ok_or_else(|| format!("time {t:?} is out of range"));
    }
    if let Ok(t) = larch_go::time::parse_rfc3339(t.as_bytes(), larch_go::time::Rfc3339::Nano) {
        return t.checked_unix_nanos().ok_or_else(out_of_range);
    }
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
        .or_else(|_| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        });
    match naive {
        Ok(n) => match zone {
            Zone::Utc => nanos(Utc.from_utc_datetime(&n)),
            Zone::Local => match Local.from_local_datetime(&n).earliest() {
                Some(dt) => nanos(dt),
                None => Err(format!("time {t:?} does not exist in the local timezone")),
            },
        },
        Err(_) => Err(format!(
            "cannot read time {t:?}: use RFC 3339 (2024-05-01T10:00:00Z), a date \
             (2024-05-01), or Unix seconds or nanoseconds"
        )),
    }
}

/// `123` or `123.456` (digits, at most one dot) as nanoseconds, exactly:
/// `None` if `t` has another form, `Some(None)` if it overflows.
fn decimal_seconds(t: &str) -> Option<Option<i64>> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    let secs: i64 = if int.is_empty() {
        0
    } else {
        match int.parse() {
            Ok(v) => v,
            Err(_) => return Some(None),
        }
    };
    let mut nanos: i64 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(
        secs.checked_mul(NANOS_PER_SEC)
            .and_then(|v| v.checked_add(nanos)),
    )
}

fn nanos<Tz: TimeZone>(dt: DateTime<Tz>) -> Result<i64, String> {
    dt.timestamp_nanos_opt().ok_or_else(out_of_range)
}

fn out_of_range() -> String {
    "time is outside the years 1677 to 2262".to_string()
}

/// Reads a duration (see the module docs) as nanoseconds; negative
/// durations are refused.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Some(ns) = decimal_seconds(t) {
        return ns.ok_or_else(|| format!("duration {t:?} is too long"));
    }
    let d = larch_go::duration::parse_duration(t)
        .map_err(|e| format!("cannot read duration {t:?} ({e}); examples: 30s, 15m, 1h30m, 7d"))?;
    if d.as_nanos() < 0 {
        return Err(format!("duration {t:?} is negative"));
    }
    Ok(d.as_nanos())
}

/// Seconds as the query API reads them (`60`, `0.5`), for `step` and
/// `interval`.
pub fn seconds_param(ns: i64) -> String {
    if ns % NANOS_PER_SEC == 0 {
        format!("{}", ns / NANOS_PER_SEC)
    } else {
        let s = format!("{}.{:09}", ns / NANOS_PER_SEC, (ns % NANOS_PER_SEC).abs());
        s.trim_end_matches('0').to_string()
    }
}

/// Formats Unix nanoseconds in `zone` with `format`.
pub fn format_ts(ns: i64, zone: Zone, format: TsFormat) -> String {
    let utc = DateTime::from_timestamp_nanos(ns);
    match zone {
        Zone::Utc => format_in(&utc.fixed_offset(), format),
        Zone::Local => format_in(&utc.with_timezone(&Local).fixed_offset(), format),
    }
}

fn format_in(dt: &DateTime<FixedOffset>, format: TsFormat) -> String {
    let layout = match format {
        TsFormat::Rfc3339 => "2006-01-02T15:04:05Z07:00",
        TsFormat::Rfc3339Nano => "2006-01-02T15:04:05.999999999Z07:00",
        TsFormat::Rfc822Z => "02 Jan 06 15:04 -0700",
        TsFormat::Rfc1123Z => "Mon, 02 Jan 2006 15:04:05 -0700",
        TsFormat::StampMilli => "Jan _2 15:04:05.000",
        TsFormat::StampMicro => "Jan _2 15:04:05.000000",
        TsFormat::StampNano => "Jan _2 15:04:05.000000000",
    };
    let t = larch_go::time::Time {
        secs: dt.timestamp(),
        nanos: dt.timestamp_subsec_nanos(),
    };
    larch_go::time::format_at_offset(t, layout, i64::from(dt.offset().local_minus_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_714_557_600_000_000_000; // 2024-05-01T10:00:00Z

    #[test]
    fn times_in_every_notation() {
        for (s, want) in [
            ("1714557600", T),
            ("1714557600000000000", T),
            ("1714557600.5", T + 500_000_000),
            ("2024-05-01T10:00:00Z", T),
            ("2024-05-01T12:00:00+02:00", T),
            ("2024-05-01T10:00:00.000000001Z", T + 1),
            ("2024-05-01T10:00:00", T),
            ("2024-05-01 10:00:00.25", T + 250_000_000),
            ("2024-05-01", T - 10 * 3600 * NANOS_PER_SEC),
        ] {
            assert_eq!(parse_time(s, Zone::Utc), Ok(want), "{s}");
        }
        // Go's RFC 3339, not chrono's: with a zone, only an upper-case
        // `T` separates the date and the time.
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "99999999999999999999",
            "2024-05-01t10:00:00Z",
            "2024-05-01 10:00:00Z",
            "2024-05-01T10:00:00z",
            "2024-05-01T10:00:60Z",
        ] {
            assert!(parse_time(bad, Zone::Utc).is_err(), "{bad}");
        }
        assert!(
            parse_time("soon", Zone::Utc)
                .unwrap_err()
                .contains("use RFC 3339")
        );
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("90", 90 * NANOS_PER_SEC),
            ("0.5", NANOS_PER_SEC / 2),
            ("15m", 900 * NANOS_PER_SEC),
            ("1h30m", 5400 * NANOS_PER_SEC),
            ("7d", 7 * 86400 * NANOS_PER_SEC),
            ("1.5h", 5400 * NANOS_PER_SEC),
            ("250ms", 250_000_000),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        assert!(parse_duration("-1h").unwrap_err().contains("negative"));
        assert!(
            parse_duration("5 minutes")
                .unwrap_err()
                .contains("30s, 15m")
        );
    }

    #[test]
    fn seconds_params() {
        assert_eq!(seconds_param(60 * NANOS_PER_SEC), "60");
        assert_eq!(seconds_param(NANOS_PER_SEC / 2), "0.5");
        assert_eq!(seconds_param(1_000_000), "0.001");
    }

    #[test]
    fn formats_like_go() {
        let z = Zone::Utc;
        assert_eq!(format_ts(T, z, TsFormat::Rfc3339), "2024-05-01T10:00:00Z");
        assert_eq!(
            format_ts(T + 120_000_000, z, TsFormat::Rfc3339),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            format_ts(T + 120_000_000, z, TsFormat::Rfc3339Nano),
            "2024-05-01T10:00:00.12Z"
        );
        assert_eq!(
            format_ts(T, z, TsFormat::Rfc3339Nano),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            format_ts(T + 1, z, TsFormat::Rfc3339Nano),
            "2024-05-01T10:00:00.000000001Z"
        );
        assert_eq!(format_ts(T, z, TsFormat::Rfc822Z), "01 May 24 10:00 +0000");
        assert_eq!(
            format_ts(T, z, TsFormat::Rfc1123Z),
            "Wed, 01 May 2024 10:00:00 +0000"
        );
        assert_eq!(
            format_ts(T + 1_500_000, z, TsFormat::StampMilli),
            "May  1 10:00:00.001"
        );
        assert_eq!(
            format_ts(T, z, TsFormat::StampNano),
            "May  1 10:00:00.000000000"
        );
        let plus2 = FixedOffset::east_opt(7200).unwrap();
        let dt = DateTime::from_timestamp_nanos(T).with_timezone(&plus2);
        assert_eq!(
            format_in(&dt, TsFormat::Rfc3339),
            "2024-05-01T12:00:00+02:00"
        );
    }

    #[test]
    fn zones() {
        assert_eq!(Zone::parse("UTC"), Ok(Zone::Utc));
        assert_eq!(Zone::parse("local"), Ok(Zone::Local));
        assert!(Zone::parse("Mars/Olympus").is_err());
    }
}
