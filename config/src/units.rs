//! The unit types of configuration keys and flags: [`HumanDuration`] and
//! [`ByteSize`].
//!
//! Both read text with `larch_go::units` (the grammar, its limits and its
//! messages live there), a YAML number as its decimal text (see the crate
//! docs for numbers without a unit). Both print a form
//! that reads back to the same value, so a printed configuration
//! (`--print-config`) means what the loaded one meant.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use larch_go::units::UnitError;
use serde::de::{MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as Prometheus or Go write them (`500ms`, `1m30s`,
/// `1.5h`, `7d`, `1y`; `0`): from zero to about 292 years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `s` whole seconds.
    pub const fn from_secs(s: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(s))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(ms))
    }

    /// The duration in nanoseconds, saturating at `i64::MAX` (timestamps
    /// are `i64` nanoseconds everywhere).
    pub fn as_nanos_i64(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Whether the duration is zero (for many keys: disabled).
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Prometheus' form (`1h30m`, `1m30s`, `1w`, `250ms`, `0s`), Go's for
/// durations with a part below a millisecond (`1.5µs`).
impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&larch_go::units::format_duration(self.0))
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        larch_go::units::parse_duration(s).map(HumanDuration)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor {
            expecting: "a duration such as 500ms, 30s, 1h30m or 7d",
            parse: |t| t.parse(),
        })
    }
}

/// A size in bytes, written as humanize reads sizes: `1048576`, `256KiB`
/// (1024-based), `1MB` (1000-based), `1.5GiB`; units case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// The largest prefix that holds the size a whole number of times, the
/// decimal unit before the binary one (`256KB`, not `250KiB`; `1MiB`;
/// `1536KiB`), else bytes (`999B`). The text reads back to the
/// same size up to 2^53 bytes (8 PiB): sizes are read through a float, as
/// humanize reads them.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 12] = [
            ("EB", 1_000_000_000_000_000_000),
            ("EiB", 1 << 60),
            ("PB", 1_000_000_000_000_000),
            ("PiB", 1 << 50),
            ("TB", 1_000_000_000_000),
            ("TiB", 1 << 40),
            ("GB", 1_000_000_000),
            ("GiB", 1 << 30),
            ("MB", 1_000_000),
            ("MiB", 1 << 20),
            ("KB", 1_000),
            ("KiB", 1 << 10),
        ];
        let b = self.0;
        match UNITS
            .iter()
            .find(|(_, size)| b != 0 && b.is_multiple_of(*size))
        {
            Some((unit, size)) => write!(f, "{}{unit}", b / size),
            None => write!(f, "{b}B"),
        }
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        larch_go::units::parse_bytes(s).map(ByteSize)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor {
            expecting: "a byte size such as 1048576, 256KiB, 1MB or 1.5GiB",
            parse: |t| t.parse(),
        })
    }
}

/// Reads a value as its text and parses it while the deserializer is
/// still at the value, so that an error carries the value's key path, line
/// and column. A number is read as its decimal text (`10` as `"10"`); any
/// other kind of value (a list, a map, a boolean) is an error that says
/// what was expected.
struct TextVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, UnitError>,
}

impl<T> TextVisitor<T> {
    fn run<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }

    /// serde's own message for a value of the wrong kind, raised as a
    /// custom error: the YAML reader places those at the value, where it
    /// would place serde's at the enclosing map.
    fn wrong<E: serde::de::Error>(self, what: Unexpected<'_>) -> Result<T, E> {
        Err(E::custom(format_args!(
            "invalid type: {what}, expected {}",
            self.expecting
        )))
    }
}

impl<'de, T> Visitor<'de> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        self.run(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        self.run(&v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        self.run(&v.to_string())
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<T, E> {
        self.run(&v.to_string())
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<T, E> {
        self.run(&v.to_string())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<T, E> {
        self.wrong(Unexpected::Bool(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
        self.wrong(Unexpected::Unit)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        self.wrong(Unexpected::Seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<T, A::Error> {
        self.wrong(Unexpected::Map)
    }

    /// Debug keeps the fraction and the exponent (`0.0`, `1e30`), so a
    /// float without a unit reads as one (`0.0` is not the duration `0`).
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        self.run(&format!("{v:?}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::yaml;

    fn secs(s: u64) -> HumanDuration {
        HumanDuration::from_secs(s)
    }

    #[test]
    fn durations_parse_and_print() {
        let d = |t: &str| t.parse::<HumanDuration>();
        assert_eq!(d("1h30m"), Ok(secs(5400)));
        assert_eq!(d("500ms"), Ok(HumanDuration::from_millis(500)));
        assert_eq!(d("1.5h"), Ok(secs(5400)));
        assert_eq!(d("7d"), Ok(secs(7 * 86400)));
        assert_eq!(d("0"), Ok(secs(0)));
        assert!(d("90").unwrap_err().0.contains("missing unit"));
        assert!(d("5minutes").unwrap_err().0.contains("unknown unit"));
        for bad in ["", "h", "s"] {
            assert!(d(bad).is_err(), "{bad:?}");
        }
        // Prometheus' form, which reads back: 90s prints as 1m30s.
        for (text, printed) in [
            ("1s", "1s"),
            ("250ms", "250ms"),
            ("5m", "5m"),
            ("2h", "2h"),
            ("0s", "0s"),
            ("90s", "1m30s"),
            ("5400s", "1h30m"),
            ("7d", "1w"),
            ("1500ns", "1.5µs"),
        ] {
            let v = d(text).unwrap();
            assert_eq!(v.to_string(), printed, "{text}");
            assert_eq!(d(printed), Ok(v), "{printed}");
        }
        assert_eq!(secs(1).as_nanos_i64(), 1_000_000_000);
        assert_eq!(
            HumanDuration(Duration::MAX).as_nanos_i64(),
            i64::MAX,
            "saturates"
        );
        assert!(secs(0).is_zero() && !secs(1).is_zero());
    }

    #[test]
    fn sizes_parse_and_print() {
        let b = |t: &str| t.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("256KB"), Ok(256_000));
        assert_eq!(b("256KiB"), Ok(256 * 1024));
        assert_eq!(b("1.5MiB"), Ok(1_572_864));
        assert_eq!(b("1mb"), Ok(1_000_000));
        assert_eq!(b("4096"), Ok(4096));
        assert!(b("1 parsec").unwrap_err().0.contains("unhandled size name"));
        assert!(b("MiB").is_err());
        for (n, printed) in [
            (1 << 20, "1MiB"),
            (1000, "1KB"),
            (999, "999B"),
            (0, "0B"),
            (256_000, "256KB"),
            (1_024_000, "1024KB"),
            (1_572_864, "1536KiB"),
            (3 << 30, "3GiB"),
            (u64::MAX, "18446744073709551615B"),
        ] {
            assert_eq!(ByteSize(n).to_string(), printed);
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Doc {
        d: Option<HumanDuration>,
        b: Option<ByteSize>,
    }

    fn doc(text: &str) -> Result<Doc, String> {
        yaml::from_str::<Doc>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn yaml_values_are_read_as_written() {
        assert_eq!(
            doc("d: 2h\nb: 1MB\n"),
            Ok(Doc {
                d: Some(secs(7200)),
                b: Some(ByteSize(1_000_000)),
            })
        );
        // Numbers: a size may be plain bytes (a fraction cut as Go cuts
        // it), a duration needs a unit unless it is zero.
        assert_eq!(doc("b: 1048576\n").unwrap().b, Some(ByteSize(1 << 20)));
        assert_eq!(doc("b: 1.5\n").unwrap().b, Some(ByteSize(1)));
        assert_eq!(doc("b: \"2MiB\"\n").unwrap().b, Some(ByteSize(2 << 20)));
        assert_eq!(doc("d: 0\n").unwrap().d, Some(secs(0)));
        let e = doc("b: 1\nd: 30\n").unwrap_err();
        assert!(
            e.starts_with("d: invalid duration \"30\": ")
                && e.contains("missing unit")
                && e.ends_with(" at line 2 column 4"),
            "{e}"
        );
        assert!(doc("d: 0.0\n").unwrap_err().contains("missing unit"));
        assert!(doc("d: soon\n").unwrap_err().starts_with("d: "));
        assert_eq!(doc("d:\nb: null\n"), Ok(Doc { d: None, b: None }));
    }

    /// The errors of sizes say what a size looks like, at the value.
    #[test]
    fn size_errors_show_what_a_size_looks_like() {
        for (text, at) in [
            ("b: -3\n", "line 1 column 4"),
            ("d: 1s\nb: lots\n", "line 2 column 4"),
            ("b: 12 parsecs\n", "line 1 column 4"),
        ] {
            let e = doc(text).unwrap_err();
            assert!(
                e.starts_with("b: invalid byte size ")
                    && e.contains("examples: 1048576, 256KiB")
                    && e.ends_with(at),
                "{text:?}: {e}"
            );
        }
        // Values of the wrong kind too, at the value (serde's own error
        // would stand at the enclosing map).
        for (text, want) in [
            (
                "d: 1s\nb: [1]\n",
                "b: invalid type: sequence, expected a byte size such as 1048576, 256KiB, 1MB or 1.5GiB at line 2 column 4",
            ),
            (
                "b: 1\nd: {x: 1}\n",
                "d: invalid type: map, expected a duration such as 500ms, 30s, 1h30m or 7d at line 2 column 4",
            ),
            (
                "d: 1s\nb: true\n",
                "b: invalid type: boolean `true`, expected a byte size",
            ),
        ] {
            let e = doc(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    /// Issue 10: `retention_period: 1e30` used to panic. Values out of
    /// range are errors that name their key.
    #[test]
    fn out_of_range_values_are_errors() {
        for bad in [
            "d: 1e30",
            "d: 1e30s",
            "d: -1",
            "d: -1h",
            "d: .nan",
            "d: .inf",
            "d: 300y",
            "d: 200y200y",
            "b: 1e30",
            "b: -1",
            "b: .inf",
            "b: 1e7TiB",
            "b: 18446744073709551616",
        ] {
            let e = doc(bad).unwrap_err();
            assert!(e.starts_with(&bad[..3]), "{bad}: {e}");
        }
        assert!(doc("d: 292y\n").is_ok());
        assert_eq!(
            doc("b: 18446744073709549568\n").unwrap().b,
            Some(ByteSize(18446744073709549568))
        );
    }

    #[test]
    fn printed_values_read_back() {
        let d = Doc {
            d: Some(HumanDuration(Duration::from_nanos(3_600_000_000_001))),
            b: Some(ByteSize(1_572_864)),
        };
        let text = yaml::to_string(&d).unwrap();
        assert!(text.contains("b: 1536KiB"), "{text}");
        assert_eq!(yaml::from_str::<Doc>(&text).unwrap(), d, "{text}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text is a value or an error, never a panic, and a value
        /// prints as text that reads back to it.
        #[test]
        fn any_text_never_panics(text in "\\PC{0,24}") {
            if let Ok(d) = text.parse::<HumanDuration>() {
                proptest::prop_assert_eq!(d.to_string().parse::<HumanDuration>(), Ok(d));
            }
            if let Ok(b) = text.parse::<ByteSize>() {
                proptest::prop_assert_eq!(b.to_string().parse::<ByteSize>(), Ok(b));
            }
        }

        /// Number-and-unit shaped text, where the overflows live, as text
        /// and as YAML.
        #[test]
        fn unit_shaped_text_never_panics(
            parts in proptest::collection::vec(
                ("-?[0-9]{0,40}(\\.[0-9]{0,5})?(e[0-9]{1,3})?", "(ns|us|µs|ms|s|m|h|d|w|y|B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|x)?"),
                1..5,
            )
        ) {
            let text: String = parts.iter().map(|(n, u)| format!("{n}{u}")).collect();
            if let Ok(d) = text.parse::<HumanDuration>() {
                proptest::prop_assert!(d.0 <= Duration::from_nanos(i64::MAX as u64));
                proptest::prop_assert_eq!(d.to_string().parse::<HumanDuration>(), Ok(d));
            }
            let _ = text.parse::<ByteSize>();
            let yaml = format!("d: {text}\nb: {text}\n");
            let _ = yaml::from_str::<BTreeMap<String, HumanDuration>>(&yaml);
            let _ = yaml::from_str::<BTreeMap<String, ByteSize>>(&yaml);
        }

        /// Every size up to 2^53 bytes prints as text that reads back to it.
        #[test]
        fn every_size_reads_back(n in 0u64..1 << 53, shift in 0u32..53) {
            for b in [n, n >> shift, (n >> shift) << shift.min(20)] {
                proptest::prop_assert_eq!(ByteSize(b).to_string().parse::<ByteSize>(), Ok(ByteSize(b)));
            }
        }
    }
}
