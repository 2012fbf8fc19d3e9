//! Go time: reference layouts (`2006-01-02T15:04:05Z07:00`) for formatting
//! and parsing, the proleptic Gregorian calendar, and zones.
//!
//! Times are instants ([`Time`]: seconds and nanoseconds since the Unix
//! epoch) shown in UTC, which is Go's `Local` on servers that run in UTC,
//! as Loki's and Promtail's containers do. Zones ([`Zone`]) come from the
//! IANA database compiled into the binary (`chrono-tz`), so
//! `toDateInZone "…" "Europe/Paris"` and the agent's `location` read civil
//! times as Go's `time.ParseInLocation` does, with daylight saving time,
//! on any image.
//!
//! [`parse_rfc3339`] reads Go's `time.RFC3339`/`RFC3339Nano` texts, the
//! one RFC 3339 reader of the agent (CRI and docker timestamps), the store
//! (legacy push, query and delete parameters) and the CLI.

mod rfc3339;

pub use rfc3339::{ParseError, Rfc3339, parse_rfc3339};

const NS: i64 = 1_000_000_000;
const DAY: i64 = 86_400;

/// A point in time: seconds and nanoseconds since the Unix epoch (wide
/// enough for Go's zero time, year 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Time {
    /// From Unix nanoseconds.
    pub fn from_unix_nanos(ns: i64) -> Time {
        Time {
            secs: ns.div_euclid(NS),
            nanos: ns.rem_euclid(NS) as u32,
        }
    }

    /// Go's zero `time.Time` (January 1, year 1, UTC).
    pub fn zero() -> Time {
        Time {
            secs: days_from_civil(1, 1, 1) * DAY,
            nanos: 0,
        }
    }

    /// Unix nanoseconds, as Go computes them (wrapping outside ±292 years).
    pub fn unix_nanos(self) -> i64 {
        self.secs.wrapping_mul(NS).wrapping_add(self.nanos as i64)
    }

    /// Unix nanoseconds, or `None` outside the years 1677–2262 that an
    /// `i64` of nanoseconds holds.
    pub fn checked_unix_nanos(self) -> Option<i64> {
        self.secs
            .checked_mul(NS)?
            .checked_add(i64::from(self.nanos))
    }

    /// Unix milliseconds.
    pub fn unix_millis(self) -> i64 {
        self.secs * 1000 + (self.nanos / 1_000_000) as i64
    }
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

/// Days since 1970-01-01 to (year, month 1-12, day 1-31).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    nanos: u32,
    weekday: usize,
    yday: u32,
}

fn parts(secs: i64, nanos: u32) -> Parts {
    let days = secs.div_euclid(DAY);
    let sod = secs.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: (sod / 3600) as u32,
        min: (sod % 3600 / 60) as u32,
        sec: (sod % 60) as u32,
        nanos,
        weekday: (days + 4).rem_euclid(7) as usize,
        yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
    }
}

/// Layout elements, longest first where prefixes overlap.
const TOKENS: [&str; 38] = [
    "January",
    "Jan",
    "Monday",
    "Mon",
    "MST",
    "2006",
    "-07:00:00",
    "-0700",
    "-07:00",
    "-07",
    "Z07:00:00",
    "Z0700",
    "Z07:00",
    "Z07",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "002",
    "__2",
    "_2",
    "15",
    "1",
    "2",
    "3",
    "4",
    "5",
    "PM",
    "pm",
    ".000",
    ",000",
    ".999",
    ",999",
    ".0",
    ".9",
    "Z",
];

/// The first layout element of `layout` for formatting, as (start,
/// element, length).
fn next_token(layout: &str) -> Option<(usize, &'static str, usize)> {
    // Returns (start, token, length) of the first layout element.
    let b = layout.as_bytes();
    for i in 0..b.len() {
        for t in TOKENS {
            if t == "Z" {
                continue;
            }
            if b[i..].starts_with(t.as_bytes()) {
                // Fractional seconds: a run of 0s or 9s after . or ,
                if t.starts_with('.') || t.starts_with(',') {
                    let digit = t.as_bytes()[1];
                    let mut j = i + 1;
                    while j < b.len() && b[j] == digit {
                        j += 1;
                    }
                    // Only when not followed by another digit.
                    if j < b.len() && b[j].is_ascii_digit() {
                        continue;
                    }
                    return Some((i, t, j - i));
                }
                // "Jan" must not start "January" handled by order; "Mon"
                // vs "Monday" likewise. "1"/"2"... only as standalone.
                if t == "2006" || t.len() > 1 || !matches!(t, "1" | "2" | "3" | "4" | "5") {
                    return Some((i, t, t.len()));
                }
                return Some((i, t, 1));
            }
        }
    }
    None
}

fn hour12(h: u32) -> u32 {
    if h.is_multiple_of(12) { 12 } else { h % 12 }
}

/// Formats a time (UTC) with a Go layout.
pub fn format(t: Time, layout: &str) -> String {
    format_at_offset(t, layout, 0)
}

/// Formats a time with a Go layout as seen `offset` seconds east of UTC
/// (Go's `t.In(time.FixedZone("", offset)).Format(layout)`: the zone name
/// is `UTC` at offset 0, else the offset, `+0200`).
pub fn format_at_offset(t: Time, layout: &str, offset: i64) -> String {
    let p = parts(t.secs.saturating_add(offset), t.nanos);
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.unsigned_abs();
    let (oh, om, os) = (o / 3600, o / 60 % 60, o % 60);
    let mut out = String::new();
    let mut rest = layout;
    while let Some((start, tok, len)) = next_token(rest) {
        out.push_str(&rest[..start]);
        let frac = &rest[start..start + len];
        match tok {
            "January" => out.push_str(MONTHS[p.month as usize - 1]),
            "Jan" => out.push_str(&MONTHS[p.month as usize - 1][..3]),
            "Monday" => out.push_str(DAYS[p.weekday]),
            "Mon" => out.push_str(&DAYS[p.weekday][..3]),
            "MST" if offset == 0 => out.push_str("UTC"),
            "MST" => out.push_str(&format!("{sign}{oh:02}{om:02}")),
            "2006" => out.push_str(&format!("{:04}", p.year)),
            "06" => out.push_str(&format!("{:02}", p.year.rem_euclid(100))),
            "01" => out.push_str(&format!("{:02}", p.month)),
            "1" => out.push_str(&p.month.to_string()),
            "02" => out.push_str(&format!("{:02}", p.day)),
            "2" => out.push_str(&p.day.to_string()),
            "_2" => out.push_str(&format!("{:>2}", p.day)),
            "002" => out.push_str(&format!("{:03}", p.yday)),
            "__2" => out.push_str(&format!("{:>3}", p.yday)),
            "15" => out.push_str(&format!("{:02}", p.hour)),
            "3" => out.push_str(&hour12(p.hour).to_string()),
            "03" => out.push_str(&format!("{:02}", hour12(p.hour))),
            "04" => out.push_str(&format!("{:02}", p.min)),
            "4" => out.push_str(&p.min.to_string()),
            "05" => out.push_str(&format!("{:02}", p.sec)),
            "5" => out.push_str(&p.sec.to_string()),
            "PM" => out.push_str(if p.hour >= 12 { "PM" } else { "AM" }),
            "pm" => out.push_str(if p.hour >= 12 { "pm" } else { "am" }),
            "Z0700" | "Z07:00" | "Z07" | "Z07:00:00" if offset == 0 => out.push('Z'),
            "-0700" | "Z0700" => out.push_str(&format!("{sign}{oh:02}{om:02}")),
            "-07:00" | "Z07:00" => out.push_str(&format!("{sign}{oh:02}:{om:02}")),
            "-07" | "Z07" => out.push_str(&format!("{sign}{oh:02}")),
            "-07:00:00" | "Z07:00:00" => out.push_str(&format!("{sign}{oh:02}:{om:02}:{os:02}")),
            _ if tok.starts_with('.') || tok.starts_with(',') => {
                let digits = len - 1;
                let s = format!("{:09}", p.nanos);
                let mut d = s[..digits.min(9)].to_string();
                if frac.as_bytes()[1] == b'9' {
                    let trimmed = d.trim_end_matches('0').to_string();
                    if !trimmed.is_empty() {
                        out.push_str(&frac[..1]);
                        out.push_str(&trimmed);
                    }
                } else {
                    while d.len() < digits {
                        d.push('0');
                    }
                    out.push_str(&frac[..1]);
                    out.push_str(&d);
                }
            }
            _ => out.push_str(tok),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// Go's `Time.String()` in UTC.
pub fn go_string(t: Time) -> String {
    format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// A time zone: a fixed offset, or a zone of the IANA database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// Seconds east of UTC.
    Fixed(i32),
    /// An IANA zone (`Europe/Paris`).
    Named(chrono_tz::Tz),
}

impl Zone {
    /// UTC.
    pub const UTC: Zone = Zone::Fixed(0);

    /// Go's `time.LoadLocation`: `""` and `UTC` are UTC, `Local` is the
    /// server's zone (UTC here), anything else an IANA name. `None` for an
    /// unknown name.
    pub fn load(name: &str) -> Option<Zone> {
        match name {
            "" | "UTC" | "Local" => Some(Zone::UTC),
            _ => name.parse::<chrono_tz::Tz>().ok().map(Zone::Named),
        }
    }

    /// The offset (seconds east of UTC) in force at the civil time
    /// `local_secs` (seconds since 1970-01-01T00:00:00 on the wall clock).
    /// A wall time that occurs twice takes the first (daylight) offset; one
    /// that a transition skips takes the offset from before the
    /// transition, so it reads as Go's `time.Date` normalises it.
    pub fn offset_at_local(self, local_secs: i64) -> i64 {
        use chrono::{Offset, TimeZone};
        match self {
            Zone::Fixed(o) => i64::from(o),
            Zone::Named(tz) => {
                let Some(naive) = chrono::DateTime::from_timestamp(local_secs, 0) else {
                    return 0;
                };
                let naive = naive.naive_utc();
                match tz.offset_from_local_datetime(&naive) {
                    chrono::LocalResult::Single(o) | chrono::LocalResult::Ambiguous(o, _) => {
                        i64::from(o.fix().local_minus_utc())
                    }
                    chrono::LocalResult::None => {
                        let before = naive - chrono::Duration::hours(3);
                        let o = tz.offset_from_utc_datetime(&before);
                        i64::from(o.fix().local_minus_utc())
                    }
                }
            }
        }
    }

    /// The offset (seconds east of UTC) in force at the instant `secs`.
    pub fn offset_at(self, secs: i64) -> i64 {
        use chrono::{Offset, TimeZone};
        match self {
            Zone::Fixed(o) => i64::from(o),
            Zone::Named(tz) => chrono::DateTime::from_timestamp(secs, 0).map_or(0, |t| {
                i64::from(
                    tz.offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc(),
                )
            }),
        }
    }
}

/// Days in month `m` (1–12) of year `y`; 0 for another `m`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses `value` with a Go layout (UTC unless the value has an offset).
pub fn parse(layout: &str, value: &str) -> Result<Time, String> {
    parse_in_zone(layout, value, Zone::UTC)
}

/// Go's `time.ParseInLocation`: a value with an offset is read with it;
/// one without is civil time in `zone`. Fields the layout lacks are Go's
/// defaults (year 0, January, day 1, midnight).
pub fn parse_in_zone(layout: &str, value: &str, zone: Zone) -> Result<Time, String> {
    Layout::compile(layout)
        .parse(value, zone, 0)
        .ok_or_else(|| format!("parsing time {value:?} as {layout:?}: cannot parse"))
}

/// A Go layout compiled for parsing (Promtail's `timestamp` stage parses
/// every line with one): elements are split the way Go's `time` package
/// splits them (longest match first: `January` before `Jan`, `2006`
/// before `2`, `15` before `1`), and parsing follows Go's rules: a run of
/// spaces in the layout matches a run of spaces, a fractional second may
/// follow the seconds even if the layout has none, `_2` accepts a
/// space-padded day, month and day names are case-insensitive, days are
/// checked against the month.
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

impl Layout {
    /// Compiles a Go layout. Any text is a layout (text that names no
    /// field matches itself); see [`Layout::has_fields`].
    pub fn compile(layout: &str) -> Layout {
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
                b' ' => {
                    // A run of spaces in the layout matches a run of spaces.
                    let run = b[i..].iter().take_while(|&&c| c == b' ').count();
                    (El::Space, run)
                }
                c => (El::Lit(c), 1),
            };
            els.push(el);
            i += n;
        }
        Layout { els }
    }

    /// Whether the layout has a date or time field (a layout without one,
    /// such as a misspelt format name, parses nothing useful).
    pub fn has_fields(&self) -> bool {
        self.els.iter().any(|e| {
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
        })
    }

    /// Parses `value` in `zone` (used when the value states no offset);
    /// `default_year` applies when the layout has no year (Go's `Parse`
    /// uses 0, Promtail the current year).
    pub fn parse(&self, value: &str, zone: Zone, default_year: i64) -> Option<Time> {
        let (local, nanos, offset) = self.parse_local(value, default_year)?;
        let offset = offset.unwrap_or_else(|| zone.offset_at_local(local));
        Some(Time {
            secs: local.checked_sub(offset)?,
            nanos,
        })
    }

    /// Parses `value` to wall-clock seconds since the epoch, nanoseconds,
    /// and the offset the value states, if any.
    fn parse_local(&self, value: &str, this_year: i64) -> Option<(i64, u32, Option<i64>)> {
        let v = value.as_bytes();
        let mut i = 0;
        let (mut year, mut month, mut day) = (this_year, 1u32, 1u32);
        let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset: Option<i64> = None;
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
                        offset = Some(0);
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
                    offset = Some(sign * o);
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
                    // matching location, treat them as UTC.
                    offset = Some(0);
                }
            }
        }
        if i != v.len() {
            return None;
        }
        if let Some(pm) = pm {
            if hour > 12 {
                return None;
            }
            hour = match (pm, hour) {
                (false, 12) => 0,
                (true, 12) => 12,
                (true, h) => h + 12,
                (false, h) => h,
            };
        }
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || min > 59
            || sec > 59
        {
            return None;
        }
        let local = days_from_civil(year, month, day)
            .checked_mul(DAY)?
            .checked_add(i64::from(hour * 3600 + min * 60 + sec))?;
        Some((local, nanos, offset))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_civil_days() {
        for d in [-800_000i64, -1, 0, 1, 19_373, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(19_372), (2023, 1, 15));
    }

    #[test]
    fn formats_like_go() {
        let ns = Time::from_unix_nanos(1_673_798_889_902_000_000); // 2023-01-15T16:08:09.902Z
        assert_eq!(
            format(ns, "2006-01-02T15:04:05Z07:00"),
            "2023-01-15T16:08:09Z"
        );
        assert_eq!(
            format(ns, "2006-01-02 15:04:05.000"),
            "2023-01-15 16:08:09.902"
        );
        assert_eq!(format(ns, "Mon Jan _2 3:04PM"), "Sun Jan 15 4:08PM");
        assert_eq!(go_string(ns), "2023-01-15 16:08:09.902 +0000 UTC");
        assert_eq!(format(Time::from_unix_nanos(0), "02/01/06"), "01/01/70");
        assert_eq!(go_string(Time::zero()), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(format(ns, "2006年01月02日"), "2023年01月15日");
        assert_eq!(
            format_at_offset(ns, "2006-01-02T15:04:05Z07:00 MST -0700", 7200),
            "2023-01-15T18:08:09+02:00 +0200 +0200"
        );
        assert_eq!(
            format_at_offset(ns, "15:04 Z0700 -07", -5400),
            "14:38 -0130 -01"
        );
    }

    #[test]
    fn multibyte_layouts_and_values_do_not_panic() {
        assert_eq!(
            parse("2006年01月", "2023年02月").map(|t| t.secs),
            Ok(days_from_civil(2023, 2, 1) * DAY)
        );
        assert!(parse("Jan 2006", "Jé 2023").is_err());
        assert!(parse("Monday", "Mé").is_err());
    }

    #[test]
    fn parses_like_go() {
        let t = |secs, nanos| Ok(Time { secs, nanos });
        assert_eq!(parse("2006-01-02", "2023-01-15"), t(1_673_740_800, 0));
        assert_eq!(
            parse("2006-01-02T15:04:05Z07:00", "2023-01-15T16:08:09+01:00"),
            t(1_673_798_889 - 3600, 0)
        );
        assert_eq!(
            parse("2006-01-02 15:04:05", "2023-01-15 16:08:09.5"),
            t(1_673_798_889, 500_000_000)
        );
        assert!(parse("2006-01-02", "nope").is_err());
        assert!(parse("2006-01-02", "2023-13-01").is_err());
    }

    fn p(layout: &str, v: &str) -> Option<i64> {
        Layout::compile(layout)
            .parse(v, Zone::UTC, 2024)
            .map(Time::unix_nanos)
    }

    #[test]
    fn compiled_layouts() {
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
            p("Mon Jan  2 15:04:05 2006", "Tue Jan 2 03:04:05 2024"),
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
        assert_eq!(p("2006-01-02", "2023-02-29"), None);
        assert_eq!(p("2006-01-02", "2024-01-02 trailing"), None);
        assert!(!Layout::compile("hello").has_fields());
        let paris = Zone::load("Europe/Paris").unwrap();
        assert_eq!(
            Layout::compile("2006-01-02 15:04:05")
                .parse("2024-01-02 05:04:05", paris, 0)
                .map(Time::unix_nanos),
            Some(t + 3600 * 1_000_000_000)
        );
    }

    proptest::proptest! {
        #[test]
        fn layouts_never_panic(
            layout in "[0-9A-Za-z_:.,+ /-]{0,30}",
            value in "[0-9A-Za-z_:.,+ /-]{0,30}",
        ) {
            let _ = Layout::compile(&layout).parse(&value, Zone::UTC, 2024);
            let _ = parse(&layout, &value);
        }
    }

    #[test]
    fn zones_from_the_database() {
        let paris = Zone::load("Europe/Paris").unwrap();
        // Winter: +01:00; summer: +02:00.
        assert_eq!(
            parse_in_zone("2006-01-02 15:04", "2023-01-15 12:00", paris).map(|t| t.secs),
            Ok(1_673_784_000 - 3600)
        );
        assert_eq!(
            parse_in_zone("2006-01-02 15:04", "2023-07-15 12:00", paris).map(|t| t.secs),
            Ok(1_689_422_400 - 7200)
        );
        // A stated offset wins over the zone.
        assert_eq!(
            parse_in_zone("2006-01-02 15:04 -0700", "2023-01-15 12:00 +0000", paris)
                .map(|t| t.secs),
            Ok(1_673_784_000)
        );
        assert_eq!(Zone::load("Local"), Some(Zone::UTC));
        assert_eq!(Zone::load("Nowhere/Special"), None);
        assert_eq!(paris.offset_at(1_689_422_400), 7200);
        // 02:30 on 2023-03-26 does not exist in Paris; 02:30 on
        // 2023-10-29 exists twice.
        let gap = days_from_civil(2023, 3, 26) * DAY + 2 * 3600 + 1800;
        assert_eq!(paris.offset_at_local(gap), 3600);
        let twice = days_from_civil(2023, 10, 29) * DAY + 2 * 3600 + 1800;
        assert_eq!(paris.offset_at_local(twice), 7200);
    }
}
