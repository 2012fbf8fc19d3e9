//! `time.Parse(time.RFC3339Nano, s)` (and `time.RFC3339`, which reads the
//! same texts): the timestamps of CRI and docker logs, Loki's legacy push
//! body, its query parameters and its delete API.
//!
//! Go reads these texts with its general layout parser (its fast path
//! accepts a subset of the same texts with the same answers), so this
//! follows that parser for the layout `2006-01-02T15:04:05.999999999Z07:00`:
//!
//! * `T` and `Z` are upper case only, and nothing replaces the `T`
//!   (chrono's RFC 3339 reader also takes `t`, `z` and a space);
//! * the year is four digits (0000–9999); month, day, minute and second
//!   two digits; the hour one or two (`15` in a layout takes either);
//! * the fraction after `.` or `,` takes any number of digits, the first
//!   nine count;
//! * the offset is `Z` or `±hh:mm`, hours up to 24 and minutes up to 60
//!   (Go's own bounds for offsets);
//! * month 1–12, hour 0–23, minute 0–59, second 0–59 (no leap second) and a
//!   day that exists in its month, each refused with Go's error text.
//!
//! Parsing allocates only for an error.

use std::fmt;

use super::{DAY, Time, days_from_civil, days_in_month};

/// Which of Go's RFC 3339 layout constants a caller names. Both read the
/// same texts; the name shows in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc3339 {
    /// `time.RFC3339`: `2006-01-02T15:04:05Z07:00`.
    Seconds,
    /// `time.RFC3339Nano`: `2006-01-02T15:04:05.999999999Z07:00`.
    Nano,
}

impl Rfc3339 {
    /// The Go layout text.
    pub const fn layout(self) -> &'static str {
        match self {
            Rfc3339::Seconds => "2006-01-02T15:04:05Z07:00",
            Rfc3339::Nano => "2006-01-02T15:04:05.999999999Z07:00",
        }
    }
}

/// A text Go's `time.Parse` refuses; displays as Go's `*time.ParseError`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    value: Vec<u8>,
    layout: Rfc3339,
    detail: Detail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Detail {
    /// `cannot parse "<rest>" as "<element>"`.
    CannotParse {
        rest: Vec<u8>,
        element: &'static str,
    },
    /// `<field> out of range`.
    Range(&'static str),
    /// `day out of range` (checked after the whole text is read).
    Day,
    /// `extra text: "<rest>"`.
    Extra(Vec<u8>),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parsing time {}", quote(&self.value))?;
        match &self.detail {
            Detail::CannotParse { rest, element } => write!(
                f,
                " as {}: cannot parse {} as {}",
                quote(self.layout.layout().as_bytes()),
                quote(rest),
                quote(element.as_bytes())
            ),
            Detail::Range(what) => write!(f, ": {what} out of range"),
            Detail::Day => f.write_str(": day out of range"),
            Detail::Extra(rest) => write!(f, ": extra text: {}", quote(rest)),
        }
    }
}

/// The `time` package's own quoting in its errors: `"` and `\` escaped,
/// every byte of a control or non-ASCII character as `\xNN`.
fn quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    for &c in b {
        if !(b' '..0x80).contains(&c) {
            out.push_str(&format!("\\x{c:02x}"));
        } else {
            if c == b'"' || c == b'\\' {
                out.push('\\');
            }
            out.push(char::from(c));
        }
    }
    out.push('"');
    out
}

/// Go's `getnum`: one or two digits (exactly two when `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(u32, &[u8])> {
    let d = |i: usize| {
        s.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| u32::from(c - b'0'))
    };
    let first = d(0)?;
    match d(1) {
        Some(second) => Some((first * 10 + second, &s[2..])),
        None if fixed => None,
        None => Some((first, &s[1..])),
    }
}

/// Reads `value` as Go's `time.Parse(layout, value)` does for the RFC 3339
/// layouts (see the module docs); the result is the instant, whatever the
/// offset written.
pub fn parse_rfc3339<'a>(value: &'a [u8], layout: Rfc3339) -> Result<Time, ParseError> {
    let fail = |detail: Detail| ParseError {
        value: value.to_vec(),
        layout,
        detail,
    };
    let cannot = |rest: &[u8], element: &'static str| {
        fail(Detail::CannotParse {
            rest: rest.to_vec(),
            element,
        })
    };
    fn lit(v: &[u8], c: u8) -> Option<&[u8]> {
        v.split_first()
            .filter(|&(&x, _)| x == c)
            .map(|(_, rest)| rest)
    }
    let skip =
        |v: &'a [u8], c: u8, element: &'static str| lit(v, c).ok_or_else(|| cannot(v, element));

    let v = value;
    // 2006
    let year = match v.get(..4) {
        Some(y) if y.iter().all(u8::is_ascii_digit) => {
            y.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0'))
        }
        _ => return Err(cannot(v, "2006")),
    };
    let v = skip(&v[4..], b'-', "-")?;
    // 01
    let (month, v) = getnum(v, true).ok_or_else(|| cannot(v, "01"))?;
    if !(1..=12).contains(&month) {
        return Err(fail(Detail::Range("month")));
    }
    let v = skip(v, b'-', "-")?;
    // 02: any two digits here; the month decides at the end.
    let (day, v) = getnum(v, true).ok_or_else(|| cannot(v, "02"))?;
    let v = skip(v, b'T', "T")?;
    // 15: one or two digits.
    let (hour, v) = getnum(v, false).ok_or_else(|| cannot(v, "15"))?;
    if hour >= 24 {
        return Err(fail(Detail::Range("hour")));
    }
    let v = skip(v, b':', ":")?;
    let (minute, v) = getnum(v, true).ok_or_else(|| cannot(v, "04"))?;
    if minute >= 60 {
        return Err(fail(Detail::Range("minute")));
    }
    let v = skip(v, b':', ":")?;
    let (second, mut v) = getnum(v, true).ok_or_else(|| cannot(v, "05"))?;
    if second >= 60 {
        return Err(fail(Detail::Range("second")));
    }
    // .999999999 (or a fraction after the seconds in a layout without
    // one): `.` or `,` and at least one digit, else no fraction.
    let mut nanos = 0u32;
    if v.len() >= 2 && matches!(v[0], b'.' | b',') && v[1].is_ascii_digit() {
        let n = 1 + v[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let digits = v[1..n].iter().map(|c| u32::from(c - b'0'));
        for d in digits.chain(std::iter::repeat(0)).take(9) {
            nanos = nanos * 10 + d;
        }
        v = &v[n..];
    }
    // Z07:00
    let offset = if let Some((b'Z', rest)) = v.split_first() {
        v = rest;
        0
    } else {
        if v.len() < 6 || v[3] != b':' {
            return Err(cannot(v, "Z07:00"));
        }
        // Go reads the minutes only if the hours read, and checks the
        // bounds (the minutes' last) before the sign.
        let h = getnum(&v[1..3], true).map(|(h, _)| h);
        let m = h.and_then(|_| getnum(&v[4..6], true).map(|(m, _)| m));
        if m.is_some_and(|m| m > 60) {
            return Err(fail(Detail::Range("time zone offset minute")));
        }
        if h.is_some_and(|h| h > 24) {
            return Err(fail(Detail::Range("time zone offset hour")));
        }
        let (Some(h), Some(m), sign @ (b'+' | b'-')) = (h, m, v[0]) else {
            return Err(cannot(v, "Z07:00"));
        };
        let secs = i64::from(h * 3600 + m * 60);
        v = &v[6..];
        if sign == b'-' { -secs } else { secs }
    };
    if !v.is_empty() {
        return Err(fail(Detail::Extra(v.to_vec())));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(fail(Detail::Day));
    }
    let secs = days_from_civil(year, month, day) * DAY
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset;
    Ok(Time { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nanos(s: &str) -> Option<i64> {
        parse_rfc3339(s.as_bytes(), Rfc3339::Nano)
            .ok()
            .and_then(Time::checked_unix_nanos)
    }

    fn err(s: &str, layout: Rfc3339) -> String {
        match parse_rfc3339(s.as_bytes(), layout) {
            Ok(t) => panic!("{s:?} parsed as {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_what_go_reads() {
        assert_eq!(nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(nanos("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            nanos("2024-02-29T12:34:56.123456789Z"),
            Some(1_709_210_096_123_456_789)
        );
        assert_eq!(
            nanos("2024-02-29T14:34:56.123456789+02:00"),
            Some(1_709_210_096_123_456_789)
        );
        // Digits past the ninth are dropped, not rounded.
        assert_eq!(
            nanos("2024-02-29T12:34:56.1234567899999Z"),
            Some(1_709_210_096_123_456_789)
        );
        // A comma before the fraction, a one-digit hour, offsets up to
        // 24:00 and 00:60: Go's general parser takes them all.
        assert_eq!(nanos("1970-01-01T00:00:00,25Z"), Some(250_000_000));
        assert_eq!(nanos("1970-01-01T1:00:00Z"), Some(3_600_000_000_000));
        assert_eq!(nanos("1970-01-02T00:00:00+24:00"), Some(0));
        assert_eq!(nanos("1970-01-01T01:00:00+00:60"), Some(0));
        assert_eq!(nanos("1969-12-31T23:59:59.999999999Z"), Some(-1));
        assert_eq!(
            parse_rfc3339(b"0000-01-01T00:00:00Z", Rfc3339::Seconds),
            Ok(Time {
                secs: days_from_civil(0, 1, 1) * DAY,
                nanos: 0
            })
        );
        assert_eq!(
            parse_rfc3339(b"0001-01-01T00:00:00Z", Rfc3339::Nano),
            Ok(Time::zero())
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        for s in [
            "1970-01-01t00:00:00Z",
            "1970-01-01 00:00:00Z",
            "1970-01-01T00:00:00z",
            "1970-01-01T00:00:60Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00+0100",
            "1970-01-01T00:00:00+01",
            "+1970-01-01T00:00:00Z",
            "19700-01-01T00:00:00Z",
            "1970-1-01T00:00:00Z",
            "1970-01-1T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1970-01-01T00:00:00Z ",
            " 1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00+25:00",
            "",
        ] {
            assert!(
                parse_rfc3339(s.as_bytes(), Rfc3339::Nano).is_err(),
                "{s:?} must be refused"
            );
        }
    }

    #[test]
    fn errors_read_like_go() {
        let nano = Rfc3339::Nano;
        assert_eq!(
            err("yesterday", nano),
            r#"parsing time "yesterday" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "yesterday" as "2006""#
        );
        assert_eq!(
            err("abc", Rfc3339::Seconds),
            r#"parsing time "abc" as "2006-01-02T15:04:05Z07:00": cannot parse "abc" as "2006""#
        );
        assert_eq!(
            err("2024-01-01t00:00:00Z", nano),
            r#"parsing time "2024-01-01t00:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "t00:00:00Z" as "T""#
        );
        assert_eq!(
            err("2025-03-02T13:00:0Z", nano),
            r#"parsing time "2025-03-02T13:00:0Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "0Z" as "05""#
        );
        assert_eq!(
            err("2024-13-01T00:00:00Z", nano),
            r#"parsing time "2024-13-01T00:00:00Z": month out of range"#
        );
        assert_eq!(
            err("2024-01-01T00:00:60Z", nano),
            r#"parsing time "2024-01-01T00:00:60Z": second out of range"#
        );
        assert_eq!(
            err("2023-02-29T00:00:00Z", nano),
            r#"parsing time "2023-02-29T00:00:00Z": day out of range"#
        );
        assert_eq!(
            err("2024-01-01T00:00:00Zx", nano),
            r#"parsing time "2024-01-01T00:00:00Zx": extra text: "x""#
        );
        assert_eq!(
            err("2024-01-01T00:00:00+25:00", nano),
            r#"parsing time "2024-01-01T00:00:00+25:00": time zone offset hour out of range"#
        );
        assert_eq!(
            err("2024-01-01T00:00:00", nano),
            r#"parsing time "2024-01-01T00:00:00" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "" as "Z07:00""#
        );
        assert_eq!(
            err("2024\u{e9}\"\n", nano),
            r#"parsing time "2024\xc3\xa9\"\x0a" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "\xc3\xa9\"\x0a" as "-""#
        );
    }

    /// A text of RFC 3339's shape whose fields may be out of range.
    fn shaped() -> impl Strategy<Value = (String, [u32; 6], bool)> {
        (
            (0u32..=9999, 0u32..=13, 0u32..=32),
            (0u32..=24, 0u32..=60, 0u32..=60),
            proptest::option::of(1usize..=9),
            0u64..1_000_000_000,
            proptest::option::of((any::<bool>(), 0u32..=23, 0u32..=59)),
        )
            .prop_map(|((y, mo, d), (h, mi, s), digits, frac, zone)| {
                let mut t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
                if let Some(n) = digits {
                    t.push('.');
                    t.push_str(&format!("{frac:09}")[..n]);
                }
                match zone {
                    None => t.push('Z'),
                    Some((neg, oh, om)) => {
                        t.push_str(&format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }))
                    }
                }
                (t, [y, mo, d, h, mi, s], digits.is_some())
            })
    }

    proptest! {
        /// chrono's RFC 3339 reader is the reference for texts of the strict
        /// shape: both accept the same ones (but for chrono's leap second)
        /// and agree on the instant.
        #[test]
        fn agrees_with_chrono_on_rfc3339_texts((text, f, _) in shaped()) {
            let ours = parse_rfc3339(text.as_bytes(), Rfc3339::Nano);
            let theirs = chrono::DateTime::parse_from_rfc3339(&text);
            if f[5] == 60 {
                prop_assert!(ours.is_err(), "{text}: Go has no leap second");
            } else {
                match (ours, theirs) {
                    (Ok(t), Ok(c)) => {
                        prop_assert_eq!(t.secs, c.timestamp());
                        prop_assert_eq!(t.nanos, c.timestamp_subsec_nanos());
                    }
                    (Err(_), Err(_)) => {}
                    (o, c) => prop_assert!(false, "{}: ours {:?}, chrono {:?}", text, o, c),
                }
            }
        }

        /// Any instant Go can write reads back to itself, in any offset.
        #[test]
        fn formatted_instants_read_back(
            secs in days_from_civil(0, 1, 1) * DAY..days_from_civil(10000, 1, 1) * DAY,
            nanos in 0u32..1_000_000_000,
            offset_min in -(23 * 60 + 59)..=(23 * 60 + 59i64),
        ) {
            let t = Time { secs, nanos };
            let local = secs + offset_min * 60;
            prop_assume!(local >= days_from_civil(0, 1, 1) * DAY && local < days_from_civil(10000, 1, 1) * DAY);
            let text = super::super::format_at_offset(t, Rfc3339::Nano.layout(), offset_min * 60);
            prop_assert_eq!(parse_rfc3339(text.as_bytes(), Rfc3339::Nano), Ok(t), "{}", text);
        }

        /// What chrono also accepts but Go does not: a lower-case `t` or
        /// `z`, or a space for the `T`.
        #[test]
        fn refuses_chrono_only_spellings((text, f, _) in shaped(), which in 0usize..3) {
            prop_assume!(f[5] < 60);
            let bad = match which {
                0 => text.replacen('T', "t", 1),
                1 => text.replacen('T', " ", 1),
                _ => match text.strip_suffix('Z') {
                    Some(head) => format!("{head}z"),
                    None => text.replacen('T', "t", 1),
                },
            };
            prop_assert!(parse_rfc3339(bad.as_bytes(), Rfc3339::Nano).is_err(), "{}", bad);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_rfc3339(&bytes, Rfc3339::Nano).map_err(|e| e.to_string());
        }
    }
}
