//! Timestamps as the agent counts them (Unix nanoseconds): RFC 3339 read
//! with Go's rules and written with nanoseconds, and the calendar.
//!
//! Every CRI and docker line starts with (or contains) an RFC 3339
//! timestamp with nanoseconds, so reading it is on the hot path:
//! `larch_go::time::parse_rfc3339` reads the digits in place and touches
//! neither the heap (unless the text is refused) nor a time-zone database.

/// Nanoseconds since the Unix epoch (UTC).
pub type Nanos = i64;

pub use larch_go::time::{civil_from_days, days_from_civil, days_in_month};

/// Reads a CRI, docker or `timestamp`-stage RFC 3339 text as Go's
/// `time.Parse(time.RFC3339Nano, …)` does (`larch_go::time::parse_rfc3339`):
/// `None` if Go refuses it or the instant does not fit in [`Nanos`].
pub fn parse_rfc3339(b: &[u8]) -> Option<Nanos> {
    larch_go::time::parse_rfc3339(b, larch_go::time::Rfc3339::Nano)
        .ok()?
        .checked_unix_nanos()
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

    /// Go's rules, not the agent's former ones: no lower-case `t` or `z`,
    /// no space for the `T`, no leap second.
    #[test]
    fn parses_cri_timestamps() {
        assert_eq!(parse_rfc3339(b"1970-01-01t00:00:00Z"), None);
        assert_eq!(parse_rfc3339(b"1970-01-01 00:00:00Z"), None);
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00z"), None);
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:60Z"), None);
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00,5Z"), Some(500_000_000));
        assert_eq!(parse_rfc3339(b"1500-01-01T00:00:00Z"), None);
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
