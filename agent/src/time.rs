//! Timestamps: RFC 3339 parsing without allocation, and civil-date
//! arithmetic shared by the `timestamp` stage.
//!
//! Every CRI and docker line starts with (or contains) an RFC 3339
//! timestamp with nanoseconds, so this parser is on the hot path: it reads
//! the digits in place and converts with the calendar of `larch_go::time`,
//! never touching the heap or a time-zone database.

/// Nanoseconds since the Unix epoch (UTC).
pub type Nanos = i64;

pub use larch_go::time::{civil_from_days, days_from_civil, days_in_month};

/// A date and time of day as written, before applying its zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month, from 1.
    pub day: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
    /// Second, 0–60 (a leap second counts as 59).
    pub second: u32,
    /// Nanoseconds.
    pub nanos: u32,
}

/// Nanoseconds since the epoch of a civil time `offset_secs` east of UTC;
/// `None` if a field is out of range or the result does not fit.
pub fn to_nanos(c: &Civil, offset_secs: i64) -> Option<Nanos> {
    let Civil {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        nanos,
    } = *c;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days
        .checked_mul(86400)?
        .checked_add((h * 3600 + mi * 60 + s.min(59)) as i64)?
        .checked_sub(offset_secs)?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos as i64)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (also lower-case `t`/`z`
/// and a space for `T`). Fractions longer than 9 digits are cut.
pub fn parse_rfc3339(b: &[u8]) -> Option<Nanos> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let y = digits(&b[0..4])? as i64;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let s = digits(&b[17..19])?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' || b[i] == b',' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(&b[i + 1..i + 3])? as i64;
            let om = digits(&b[i + 4..i + 6])? as i64;
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    to_nanos(
        &Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            nanos,
        },
        offset,
    )
}

/// Formats nanoseconds as RFC 3339 with nanoseconds in UTC.
pub fn format_rfc3339(ns: Nanos) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// The current year (UTC), for layouts without a year.
pub fn current_year() -> i64 {
    civil_from_days(now_nanos().div_euclid(86_400_000_000_000)).0
}

/// The current time in nanoseconds since the epoch.
pub fn now_nanos() -> Nanos {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_cri_timestamps() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339(b"1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2024-02-29T12:34:56.123456789Z"),
            Some(1_709_210_096_123_456_789)
        );
        assert_eq!(
            parse_rfc3339(b"2024-02-29T14:34:56.123456789+02:00"),
            Some(1_709_210_096_123_456_789)
        );
        assert_eq!(parse_rfc3339(b"2023-02-29T12:34:56Z"), None);
        assert_eq!(parse_rfc3339(b"2024-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339(b"2024-01-01T00:00:00.Z"), None);
        assert_eq!(parse_rfc3339(b"not a time at all!!!"), None);
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ns in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000i64) {
            let text = format_rfc3339(ns);
            prop_assert_eq!(parse_rfc3339(text.as_bytes()), Some(ns));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_rfc3339(&bytes);
        }
    }
}
