//! Durations and byte sizes in configuration files and flags: one grammar
//! for the store, the agent and the CLI.
//!
//! A duration is any duration Loki's and Promtail's configurations accept:
//! Prometheus' form (`model.Duration`: `30m`, `1h30m`, `7d`, `2w`, `1y`),
//! else Go's (`time.Duration`: `1.5h`, `250ms`, `10us`). Both need a unit
//! (`10` is refused with Go's `missing unit`, since Go would read a bare
//! YAML number as nanoseconds), except `0`. Negative durations are
//! refused. A size is humanize's (`flagext.ByteSize`): `256KB`
//! (1000-based), `256KiB` (1024-based), `1,000`, units case-insensitive; a
//! plain number is bytes. The configuration types over this grammar, and
//! how they read YAML numbers, are `larch-config`'s.
//!
//! Nothing here panics on any input: values beyond what a `Duration` of
//! `i64` nanoseconds (about 292 years) or a `u64` byte count holds are
//! errors (property-tested).

use std::time::Duration;

/// A configuration value that cannot be read; the text says what is wrong
/// and what would be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

/// Parses a configuration duration (see the module docs).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(UnitError("empty duration".to_string()));
    }
    let d = crate::duration::parse_duration(t).map_err(|e| {
        UnitError(format!(
            "invalid duration {text:?}: {e} (examples: 500ms, 30s, 1h30m, 7d)"
        ))
    })?;
    u64::try_from(d.as_nanos())
        .map(Duration::from_nanos)
        .map_err(|_| UnitError(format!("invalid duration {text:?}: negative")))
}

/// Prometheus' text form of a configuration duration (`1h30m`, `7d`,
/// `500ms`, `0s`), which [`parse_duration`] reads back. Sub-millisecond
/// parts are written in Go's form (`1.5µs`) so nothing is lost.
pub fn format_duration(d: Duration) -> String {
    let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let d = crate::duration::Duration::from_nanos(nanos);
    if nanos % 1_000_000 == 0 {
        d.fmt_prometheus().to_string()
    } else {
        d.fmt_go().to_string()
    }
}

/// Parses a configuration byte size (see the module docs).
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(UnitError("empty byte size".to_string()));
    }
    crate::bytes::parse_bytes(t).map_err(|e| {
        // humanize reads no sign, so it would say that "" is not a number.
        let why = if t.starts_with('-') {
            "negative".to_string()
        } else {
            e.to_string()
        };
        UnitError(format!(
            "invalid byte size {text:?}: {why} (examples: 1048576, 256KiB, 1MB, 1.5GiB)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7d"), Ok(secs(7 * 86400)));
        assert_eq!(parse_duration("1y"), Ok(secs(365 * 86400)));
        assert_eq!(parse_duration("1.5h"), Ok(secs(5400)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration(" 90s "), Ok(secs(90)));
        assert!(parse_duration("90").unwrap_err().0.contains("missing unit"));
        assert!(
            parse_duration("0.5")
                .unwrap_err()
                .0
                .contains("missing unit")
        );
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(
            parse_duration("5minutes")
                .unwrap_err()
                .0
                .contains("unknown unit")
        );
        assert!(parse_duration("-1h").unwrap_err().0.contains("negative"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1e30").is_err());
        assert!(parse_duration("300y").is_err());
    }

    #[test]
    fn duration_text_reads_back() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_secs(5400),
            Duration::from_secs(7 * 86400),
            Duration::from_nanos(1500),
            Duration::from_nanos(3_600_000_000_001),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256KB"), Ok(256_000));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_bytes("1mb"), Ok(1_000_000));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("1,000"), Ok(1000));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("1e30").is_err());
        assert_eq!(
            parse_bytes("-3").unwrap_err().0,
            "invalid byte size \"-3\": negative (examples: 1048576, 256KiB, 1MB, 1.5GiB)"
        );
        assert!(parse_bytes("99999999999EB").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_bytes(&s);
            if let Ok(d) = parse_duration(&s) {
                let _ = format_duration(d);
            }
        }
    }
}
