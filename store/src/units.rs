//! Human-friendly units in configuration: durations (`30m`, `1h30m`, `7d`)
//! and byte sizes (`256KB`, `1.5MiB`, `1048576`).
//!
//! Both accept a plain number too: seconds for durations, bytes for sizes.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as Prometheus does (`1h30m`, `500ms`, `7d`, `1y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// From whole seconds.
    pub const fn from_secs(s: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(s))
    }

    /// The duration in nanoseconds, saturating at `i64::MAX`.
    pub fn as_nanos_i64(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Whether the duration is zero (often "disabled").
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Parses `1h30m`, `500ms`, `2d`, `1y`, `0` or `1.5s` (the configuration
/// grammar of `larch_go::units`, shared with the agent and the CLI).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    larch_go::units::parse_duration(text).map_err(|e| e.to_string())
}

/// The longest duration accepted: about 292 years, the most nanoseconds
/// an `i64` holds (timestamps are `i64` nanoseconds everywhere).
pub const MAX_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

/// `secs` as a duration if it is a number from zero to [`MAX_DURATION`].
fn secs_to_duration(secs: f64) -> Option<Duration> {
    larch_go::units::seconds(secs).ok()
}

fn out_of_range(text: &str) -> String {
    format!("invalid duration {text:?}: durations must be from 0 to 292y")
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let mut rest = ms;
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if rest >= size {
                write!(f, "{}{}", rest / size, unit)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a duration such as 30s, 1h30m or 7d, or a number of seconds",
            convert: |raw| {
                match raw {
                    Raw::U64(n) => secs_to_duration(n as f64),
                    Raw::I64(n) => secs_to_duration(n as f64),
                    Raw::F64(n) => secs_to_duration(n),
                    Raw::Text(t) => return parse_duration(t).map(HumanDuration),
                }
                .map(HumanDuration)
                .ok_or_else(|| out_of_range(&raw.to_string()))
            },
        })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A byte size: `256KB` (1000-based), `256KiB` (1024-based), or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Parses sizes with Loki's (humanize) units: B, KB, KiB, MB, MiB, GB,
/// GiB, TB, TiB...; a plain number is bytes (`larch_go::units`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    larch_go::units::parse_bytes(text).map_err(|e| e.to_string())
}

/// `bytes` rounded to a whole number of bytes, if it fits a `u64`.
fn bytes_from_f64(bytes: f64) -> Option<u64> {
    larch_go::units::bytes_from_number(bytes).ok()
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_bytes(s).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a byte size such as 256KB or 1MiB, or a number of bytes",
            convert: |raw| {
                match raw {
                    Raw::U64(n) => Some(n),
                    Raw::I64(n) => u64::try_from(n).ok(),
                    Raw::F64(n) => bytes_from_f64(n),
                    Raw::Text(t) => return parse_bytes(t).map(ByteSize),
                }
                .map(ByteSize)
                .ok_or_else(|| {
                    format!("invalid byte size {raw}: sizes must be from 0 to 2^64-1 bytes")
                })
            },
        })
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A configuration value as YAML gives it.
#[derive(Clone, Copy)]
enum Raw<'a> {
    U64(u64),
    I64(i64),
    F64(f64),
    Text(&'a str),
}

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::U64(n) => write!(f, "{n}"),
            Raw::I64(n) => write!(f, "{n}"),
            // Debug keeps exponents short: 1e30, not 31 digits.
            Raw::F64(n) => write!(f, "{n:?}"),
            Raw::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// Reads a number or a text and converts it while the deserializer is
/// still at the value, so that its errors carry the key's path.
struct UnitVisitor<T> {
    expecting: &'static str,
    convert: fn(Raw<'_>) -> Result<T, String>,
}

impl<T> UnitVisitor<T> {
    fn run<E: serde::de::Error>(self, raw: Raw<'_>) -> Result<T, E> {
        (self.convert)(raw).map_err(E::custom)
    }
}

impl<'de, T> serde::de::Visitor<'de> for UnitVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        self.run(Raw::U64(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        self.run(Raw::I64(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        self.run(Raw::F64(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        self.run(Raw::Text(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        // A unit is required in text; a bare YAML number is seconds.
        assert!(parse_duration("90").is_err());
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5minutes").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(HumanDuration::from_secs(5400).to_string(), "1h30m");
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("256KB").unwrap(), 256_000);
        assert_eq!(parse_bytes("1.5MiB").unwrap(), 1_572_864);
        assert_eq!(parse_bytes("42").unwrap(), 42);
        assert!(parse_bytes("12 parsecs").is_err());
    }

    #[test]
    fn out_of_range_values_are_errors() {
        // Issue 10: `retention_period: 1e30` used to panic.
        for bad in [
            "1e30",
            "1e30s",
            "inf",
            "NaN",
            "-1",
            "300y",
            "9999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("292y").is_ok());
        assert!(parse_duration("200y200y").is_err());
        for bad in ["1e30", "18446744073709551616", "1e7TiB", "-1", "NaN", "inf"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_bytes("18446744073709549568").unwrap(),
            18446744073709549568
        );
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct T {
            d: Option<HumanDuration>,
            b: Option<ByteSize>,
        }
        for bad in [
            "d: 1e30", "d: -1", "d: .nan", "d: .inf", "b: 1e30", "b: -1", "b: .inf",
        ] {
            let err = crate::yaml::from_str::<T>(bad).unwrap_err().to_string();
            assert!(err.starts_with(&bad[..2]), "{bad}: {err}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text is a value or an error, never a panic.
        #[test]
        fn parsers_never_panic(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
            let _ = parse_bytes(&text);
        }

        /// Number-and-unit shaped text, where the overflows live.
        #[test]
        fn unit_shaped_text_never_panics(
            parts in proptest::collection::vec(
                ("[0-9]{0,40}(\\.[0-9]{0,5})?(e[0-9]{1,3})?", "(ns|us|µs|ms|s|m|h|d|w|y|B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|x)?"),
                1..5,
            )
        ) {
            let text: String = parts.iter().map(|(n, u)| format!("{n}{u}")).collect();
            if let Ok(d) = parse_duration(&text) {
                proptest::prop_assert!(d <= MAX_DURATION);
            }
            let _ = parse_bytes(&text);
            let yaml = format!("d: {text}\nb: {text}\n");
            let _ = crate::yaml::from_str::<std::collections::BTreeMap<String, HumanDuration>>(&yaml);
            let _ = crate::yaml::from_str::<std::collections::BTreeMap<String, ByteSize>>(&yaml);
        }
    }

    #[test]
    fn serde_forms() {
        #[derive(Deserialize)]
        struct T {
            d: HumanDuration,
            b: ByteSize,
        }
        let t: T = crate::yaml::from_str("d: 2h\nb: 1MB\n").unwrap();
        assert_eq!(t.d, HumanDuration::from_secs(7200));
        assert_eq!(t.b, ByteSize(1_000_000));
        let t: T = crate::yaml::from_str("d: 30\nb: 100\n").unwrap();
        assert_eq!(t.d, HumanDuration::from_secs(30));
        assert!(crate::yaml::from_str::<T>("d: soon\nb: 1\n").is_err());
    }
}
