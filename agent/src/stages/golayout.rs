//! Go time layouts (`2006-01-02T15:04:05.000Z07:00`), as Promtail's
//! `timestamp` stage accepts them, compiled once and parsed without
//! allocation.
//!
//! The layout is split into elements the way Go's `time` package does
//! (longest match first: `January` before `Jan`, `2006` before `2`, `15`
//! before `1`). Parsing follows Go's rules where they matter for logs:
//! a space in the layout matches one or more spaces, a fractional second
//! may follow the seconds even if the layout has none, `_2` accepts a
//! space-padded day, and a layout without a year means the current year.

use crate::time::{Civil, Nanos, to_nanos};

#[derive(Clone, Debug, PartialEq, Eq)]
enum El {
    Lit(u8),
    Space,
    Year4,
    Year2,
    MonthName {
        long: bool,
    },
    Month {
        zero: bool,
    },
    Day {
        pad: Pad,
    },
    Weekday {
        long: bool,
    },
    Hour24,
    Hour12 {
        zero: bool,
    },
    Minute {
        zero: bool,
    },
    Second {
        zero: bool,
    },
    Ampm,
    /// Numeric zone: `z` = `Z` allowed for UTC; `colon`; seconds.
    Zone {
        z: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    ZoneName,
    /// Fractional seconds: `digits` fixed (`.000`) or any (`.999`).
    Frac {
        fixed: Option<usize>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pad {
    Zero,
    Space,
    None,
}

/// A compiled layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    els: Vec<El>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl Layout {
    /// Compiles a Go layout.
    pub fn compile(layout: &str) -> Result<Layout, String> {
        let b = layout.as_bytes();
        let mut els = Vec::new();
        let mut i = 0;
        let starts = |i: usize, s: &str| layout[i..].starts_with(s);
        while i < b.len() {
            let (el, n) = match b[i] {
                b'J' if starts(i, "January") => (El::MonthName { long: true }, 7),
                b'J' if starts(i, "Jan") => (El::MonthName { long: false }, 3),
                b'M' if starts(i, "Monday") => (El::Weekday { long: true }, 6),
                b'M' if starts(i, "Mon") => (El::Weekday { long: false }, 3),
                b'M' if starts(i, "MST") => (El::ZoneName, 3),
                b'0' if starts(i, "01") => (El::Month { zero: true }, 2),
                b'0' if starts(i, "02") => (El::Day { pad: Pad::Zero }, 2),
                b'0' if starts(i, "03") => (El::Hour12 { zero: true }, 2),
                b'0' if starts(i, "04") => (El::Minute { zero: true }, 2),
                b'0' if starts(i, "05") => (El::Second { zero: true }, 2),
                b'0' if starts(i, "06") => (El::Year2, 2),
                b'1' if starts(i, "15") => (El::Hour24, 2),
                b'1' => (El::Month { zero: false }, 1),
                b'2' if starts(i, "2006") => (El::Year4, 4),
                b'2' => (El::Day { pad: Pad::None }, 1),
                b'_' if starts(i, "_2006") => (El::Lit(b'_'), 1),
                b'_' if starts(i, "_2") => (El::Day { pad: Pad::Space }, 2),
                b'3' => (El::Hour12 { zero: false }, 1),
                b'4' => (El::Minute { zero: false }, 1),
                b'5' => (El::Second { zero: false }, 1),
                b'P' if starts(i, "PM") => (El::Ampm, 2),
                b'p' if starts(i, "pm") => (El::Ampm, 2),
                b'-' | b'Z' => {
                    let z = b[i] == b'Z';
                    let rest = &layout[i + 1..];
                    let forms: [(&str, bool, bool, bool); 5] = [
                        ("07:00:00", true, true, true),
                        ("070000", false, true, true),
                        ("07:00", true, true, false),
                        ("0700", false, true, false),
                        ("07", false, false, false),
                    ];
                    match forms.iter().find(|(f, ..)| rest.starts_with(f)) {
                        Some((f, colon, minutes, seconds)) => (
                            El::Zone {
                                z,
                                colon: *colon,
                                minutes: *minutes,
                                seconds: *seconds,
                            },
                            1 + f.len(),
                        ),
                        None => (El::Lit(b[i]), 1),
                    }
                }
                c @ (b'.' | b',') if matches!(b.get(i + 1), Some(b'0' | b'9')) => {
                    let d = b[i + 1];
                    let mut j = i + 1;
                    while j < b.len() && b[j] == d {
                        j += 1;
                    }
                    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
                        (El::Lit(c), 1)
                    } else {
                        let n = j - i - 1;
                        (
                            El::Frac {
                                fixed: (d == b'0').then_some(n),
                            },
                            j - i,
                        )
                    }
                }
                b' ' => (El::Space, 1),
                c => (El::Lit(c), 1),
            };
            els.push(el);
            i += n;
        }
        if !els.iter().any(|e| {
            matches!(
                e,
                El::Hour24
                    | El::Hour12 { .. }
                    | El::Day { .. }
                    | El::Year4
                    | El::Year2
                    | El::Month { .. }
                    | El::MonthName { .. }
            )
        }) {
            return Err(format!(
                "layout {layout:?} has no date or time fields (Go layouts use the reference time Mon Jan 2 15:04:05 MST 2006)"
            ));
        }
        Ok(Layout { els })
    }

    /// Parses `value`; `default_offset` (seconds east of UTC) applies when
    /// the layout has no zone, `this_year` when it has no year.
    pub fn parse(&self, value: &str, default_offset: i64, this_year: i64) -> Option<Nanos> {
        let v = value.as_bytes();
        let mut i = 0;
        let (mut year, mut month, mut day) = (this_year, 1u32, 1u32);
        let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset = default_offset;
        let num = |i: &mut usize, min_d: usize, max_d: usize| -> Option<u32> {
            let start = *i;
            while *i < v.len() && *i - start < max_d && v[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i - start < min_d {
                return None;
            }
            let mut n = 0u32;
            for &c in &v[start..*i] {
                n = n * 10 + (c - b'0') as u32;
            }
            Some(n)
        };
        let frac = |i: &mut usize, fixed: Option<usize>| -> Option<u32> {
            let start = *i;
            while *i < v.len() && v[*i].is_ascii_digit() {
                *i += 1;
            }
            let n = *i - start;
            if let Some(f) = fixed
                && n != f
            {
                return None;
            }
            let mut ns = 0u32;
            for k in 0..9 {
                ns = ns * 10
                    + if k < n {
                        (v[start + k] - b'0') as u32
                    } else {
                        0
                    };
            }
            Some(ns)
        };
        for (k, el) in self.els.iter().enumerate() {
            match el {
                El::Lit(c) => {
                    if v.get(i) != Some(c) {
                        return None;
                    }
                    i += 1;
                }
                El::Space => {
                    if v.get(i) != Some(&b' ') {
                        return None;
                    }
                    while v.get(i) == Some(&b' ') {
                        i += 1;
                    }
                }
                El::Year4 => year = num(&mut i, 4, 4)? as i64,
                El::Year2 => {
                    let y = num(&mut i, 2, 2)? as i64;
                    year = if y >= 69 { 1900 + y } else { 2000 + y };
                }
                El::MonthName { long } => {
                    let (m, n) = match_name(&v[i..], &MONTHS, *long)?;
                    month = m as u32 + 1;
                    i += n;
                }
                El::Weekday { long } => {
                    let (_, n) = match_name(&v[i..], &DAYS, *long)?;
                    i += n;
                }
                El::Month { zero } => month = num(&mut i, if *zero { 2 } else { 1 }, 2)?,
                El::Day { pad } => {
                    if *pad == Pad::Space && v.get(i) == Some(&b' ') {
                        i += 1;
                        day = num(&mut i, 1, 1)?;
                    } else {
                        day = num(&mut i, if *pad == Pad::Zero { 2 } else { 1 }, 2)?;
                    }
                }
                El::Hour24 => hour = num(&mut i, 2, 2)?,
                El::Hour12 { zero } => hour = num(&mut i, if *zero { 2 } else { 1 }, 2)?,
                El::Minute { zero } => min = num(&mut i, if *zero { 2 } else { 1 }, 2)?,
                El::Second { zero } => {
                    sec = num(&mut i, if *zero { 2 } else { 1 }, 2)?;
                    // Go accepts a fraction after the seconds even when the
                    // layout does not have one.
                    if !matches!(self.els.get(k + 1), Some(El::Frac { .. }))
                        && matches!(v.get(i), Some(b'.' | b','))
                        && v.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                    {
                        i += 1;
                        nanos = frac(&mut i, None)?;
                    }
                }
                El::Frac { fixed } => match v.get(i) {
                    Some(b'.' | b',') => {
                        i += 1;
                        nanos = frac(&mut i, *fixed)?;
                    }
                    _ if fixed.is_none() => {}
                    _ => return None,
                },
                El::Ampm => {
                    let s = v.get(i..i + 2)?;
                    pm = Some(match s {
                        b"PM" | b"pm" => true,
                        b"AM" | b"am" => false,
                        _ => return None,
                    });
                    i += 2;
                }
                El::Zone {
                    z,
                    colon,
                    minutes,
                    seconds,
                } => {
                    if *z && v.get(i) == Some(&b'Z') {
                        i += 1;
                        offset = 0;
                        continue;
                    }
                    let sign = match v.get(i)? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    i += 1;
                    let h = num(&mut i, 2, 2)? as i64;
                    let mut o = h * 3600;
                    if *minutes {
                        if *colon {
                            if v.get(i) != Some(&b':') {
                                return None;
                            }
                            i += 1;
                        }
                        o += num(&mut i, 2, 2)? as i64 * 60;
                    }
                    if *seconds {
                        if *colon {
                            if v.get(i) != Some(&b':') {
                                return None;
                            }
                            i += 1;
                        }
                        o += num(&mut i, 2, 2)? as i64;
                    }
                    offset = sign * o;
                }
                El::ZoneName => {
                    let start = i;
                    while i < v.len() && v[i].is_ascii_uppercase() {
                        i += 1;
                    }
                    if i - start < 3 {
                        return None;
                    }
                    // Abbreviations are ambiguous; like Go without a
                    // matching location, treat them as UTC, except that
                    // an explicit offset may follow (`UTC+2` is not Go).
                    offset = 0;
                }
            }
        }
        if i != v.len() {
            return None;
        }
        if let Some(pm) = pm {
            if hour > 12 || hour == 0 {
                return None;
            }
            hour = match (pm, hour) {
                (false, 12) => 0,
                (true, 12) => 12,
                (true, h) => h + 12,
                (false, h) => h,
            };
        }
        let civil = Civil {
            year,
            month,
            day,
            hour,
            minute: min,
            second: sec,
            nanos,
        };
        to_nanos(&civil, offset)
    }
}

fn match_name(v: &[u8], names: &[&str], long: bool) -> Option<(usize, usize)> {
    for (idx, name) in names.iter().enumerate() {
        let want = if long {
            name.as_bytes()
        } else {
            &name.as_bytes()[..3]
        };
        if v.len() >= want.len() && v[..want.len()].eq_ignore_ascii_case(want) {
            return Some((idx, want.len()));
        }
    }
    None
}

/// The current year (UTC), for layouts without a year.
pub fn current_year() -> i64 {
    let days = crate::time::now_nanos().div_euclid(86_400_000_000_000);
    crate::time::civil_from_days(days).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(layout: &str, v: &str) -> Option<Nanos> {
        Layout::compile(layout).unwrap().parse(v, 0, 2024)
    }

    #[test]
    fn go_layouts() {
        let t = 1_704_164_645_000_000_000; // 2024-01-02T03:04:05Z
        assert_eq!(
            p("2006-01-02T15:04:05Z07:00", "2024-01-02T03:04:05Z"),
            Some(t)
        );
        assert_eq!(
            p("2006-01-02T15:04:05Z07:00", "2024-01-02T05:04:05+02:00"),
            Some(t)
        );
        assert_eq!(
            p("2006-01-02 15:04:05.000", "2024-01-02 03:04:05.123"),
            Some(t + 123_000_000)
        );
        assert_eq!(p("2006-01-02 15:04:05.000", "2024-01-02 03:04:05.12"), None);
        assert_eq!(
            p("2006-01-02 15:04:05", "2024-01-02 03:04:05.5"),
            Some(t + 500_000_000)
        );
        assert_eq!(p("2006-01-02 15:04:05.999", "2024-01-02 03:04:05"), Some(t));
        assert_eq!(
            p("Mon Jan _2 15:04:05 2006", "Tue Jan  2 03:04:05 2024"),
            Some(t)
        );
        assert_eq!(
            p(
                "Mon, 02 Jan 2006 15:04:05 MST",
                "Tue, 02 Jan 2024 03:04:05 UTC"
            ),
            Some(t)
        );
        assert_eq!(
            p(
                "Mon, 02 Jan 2006 15:04:05 -0700",
                "Mon, 01 Jan 2024 20:04:05 -0700"
            ),
            Some(t)
        );
        assert_eq!(
            p("02/Jan/2006:15:04:05 -0700", "02/Jan/2024:03:04:05 +0000"),
            Some(t)
        );
        assert_eq!(p("Jan _2 15:04:05", "Jan  2 03:04:05"), Some(t));
        assert_eq!(
            p("January 2, 2006 3:04PM", "January 2, 2024 3:04AM"),
            Some(t - 5_000_000_000)
        );
        assert_eq!(
            p("January 2, 2006 3:04PM", "January 2, 2024 3:04PM"),
            Some(t + 12 * 3_600_000_000_000 - 5_000_000_000)
        );
        assert_eq!(p("2006-01-02", "2024-13-02"), None);
        assert_eq!(p("2006-01-02", "2024-01-02 trailing"), None);
        assert!(Layout::compile("hello").is_err());
    }

    #[test]
    fn default_offset_applies_without_zone() {
        let l = Layout::compile("2006-01-02 15:04:05").unwrap();
        assert_eq!(
            l.parse("2024-01-02 05:04:05", 7200, 2024),
            Some(1_704_164_645_000_000_000)
        );
    }

    proptest::proptest! {
        #[test]
        fn layouts_never_panic(layout in "[0-9A-Za-z_:.,+ /-]{0,30}", value in "[0-9A-Za-z_:.,+ /-]{0,30}") {
            if let Ok(l) = Layout::compile(&layout) {
                let _ = l.parse(&value, 0, 2024);
            }
        }
    }
}
