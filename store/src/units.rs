//! Human-friendly units in configuration: durations (`30m`, `1h30m`, `7d`)
//! and byte sizes (`256KB`, `1.5MiB`, `1048576`).
//!
//! Text is read with the grammar the agent and the CLI use too
//! (`larch_go::units`); a bare YAML number is seconds for durations and
//! bytes for sizes.

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
        let v = NumberOrText::deserialize(d)?;
        match v {
            NumberOrText::Number(n) => larch_go::units::seconds(n)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
            NumberOrText::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
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
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => larch_go::units::bytes_from_number(n)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
            NumberOrText::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
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
    fn serde_forms() {
        #[derive(Deserialize)]
        struct T {
            d: HumanDuration,
            b: ByteSize,
        }
        let t: T = serde_yaml::from_str("d: 2h\nb: 1MB\n").unwrap();
        assert_eq!(t.d, HumanDuration::from_secs(7200));
        assert_eq!(t.b, ByteSize(1_000_000));
        let t: T = serde_yaml::from_str("d: 30\nb: 100\n").unwrap();
        assert_eq!(t.d, HumanDuration::from_secs(30));
        assert!(serde_yaml::from_str::<T>("d: soon\nb: 1\n").is_err());
        // Out of range values are errors, never panics.
        assert!(serde_yaml::from_str::<T>("d: 1e30\nb: 1\n").is_err());
        assert!(serde_yaml::from_str::<T>("d: 1\nb: 1e30\n").is_err());
    }
}
