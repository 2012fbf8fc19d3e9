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

/// Whether `v` starts with the ASCII word `w`, in any case (byte-wise, so
/// a multi-byte character in `v` is simply no match).
fn starts_with_ignore_case(v: &str, w: &str) -> bool {
    v.as_bytes()
        .get(..w.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(w.as_bytes()))
}

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
    let p = parts(t.secs, t.nanos);
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
            "MST" => out.push_str("UTC"),
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
            "-0700" => out.push_str("+0000"),
            "-07:00" => out.push_str("+00:00"),
            "-07" => out.push_str("+00"),
            "-07:00:00" => out.push_str("+00:00:00"),
            "Z0700" | "Z07:00" | "Z07" | "Z07:00:00" => out.push('Z'),
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

fn take_num(v: &str, min: usize, max: usize) -> Option<(i64, &str)> {
    let n = v
        .bytes()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if n < min {
        return None;
    }
    Some((v[..n].parse().ok()?, &v[n..]))
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

/// Parses `value` with a Go layout (UTC unless the value has an offset).
pub fn parse(layout: &str, value: &str) -> Result<Time, String> {
    parse_in_zone(layout, value, Zone::UTC)
}

/// Go's `time.ParseInLocation`: a value with an offset is read with it;
/// one without is civil time in `zone`.
pub fn parse_in_zone(layout: &str, value: &str, zone: Zone) -> Result<Time, String> {
    let (local, nanos, offset) = parse_local(layout, value)?;
    let offset = offset.unwrap_or_else(|| zone.offset_at_local(local));
    Ok(Time {
        secs: local - offset,
        nanos,
    })
}

/// Parses to wall-clock seconds since the epoch, nanoseconds, and the
/// offset the value states, if any.
fn parse_local(layout: &str, value: &str) -> Result<(i64, u32, Option<i64>), String> {
    let bad = || format!("parsing time {:?} as {:?}: cannot parse", value, layout);
    let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
    let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i64> = None;
    let mut rest = layout;
    let mut v = value;
    while let Some((start, tok, len)) = next_token(rest) {
        let lit = &rest[..start];
        v = v.strip_prefix(lit).ok_or_else(bad)?;
        match tok {
            "2006" => (year, v) = take_num(v, 4, 4).ok_or_else(bad)?,
            "06" => {
                let (y, r) = take_num(v, 2, 2).ok_or_else(bad)?;
                year = if y >= 69 { 1900 + y } else { 2000 + y };
                v = r;
            }
            "01" | "1" => {
                let (m, r) = take_num(v, if tok == "01" { 2 } else { 1 }, 2).ok_or_else(bad)?;
                month = m as u32;
                v = r;
            }
            "January" | "Jan" => {
                let i = MONTHS
                    .iter()
                    .position(|m| {
                        let m = if tok == "Jan" { &m[..3] } else { m };
                        starts_with_ignore_case(v, m)
                    })
                    .ok_or_else(bad)?;
                let l = if tok == "Jan" { 3 } else { MONTHS[i].len() };
                month = i as u32 + 1;
                v = &v[l..];
            }
            "Monday" | "Mon" => {
                let i = DAYS
                    .iter()
                    .position(|d| {
                        let d = if tok == "Mon" { &d[..3] } else { d };
                        starts_with_ignore_case(v, d)
                    })
                    .ok_or_else(bad)?;
                v = &v[if tok == "Mon" { 3 } else { DAYS[i].len() }..];
            }
            "02" | "2" | "_2" => {
                let v2 = if tok == "_2" {
                    v.trim_start_matches(' ')
                } else {
                    v
                };
                let (d, r) = take_num(v2, if tok == "02" { 2 } else { 1 }, 2).ok_or_else(bad)?;
                day = d as u32;
                v = r;
            }
            "15" | "03" | "3" => {
                let (h, r) = take_num(v, if tok == "3" { 1 } else { 2 }, 2).ok_or_else(bad)?;
                hour = h as u32;
                v = r;
            }
            "04" | "4" => {
                let (m, r) = take_num(v, if tok == "4" { 1 } else { 2 }, 2).ok_or_else(bad)?;
                min = m as u32;
                v = r;
            }
            "05" | "5" => {
                let (s, r) = take_num(v, if tok == "5" { 1 } else { 2 }, 2).ok_or_else(bad)?;
                sec = s as u32;
                v = r;
                // Go accepts a fraction after seconds even if the layout
                // has none.
                if !rest[start + len..].starts_with(['.', ','])
                    && let Some(fr) = v.strip_prefix(['.', ','])
                {
                    let n = fr.bytes().take_while(|b| b.is_ascii_digit()).count();
                    if n > 0 {
                        let digits = &fr[..n.min(9)];
                        nanos = format!("{digits:0<9}").parse().map_err(|_| bad())?;
                        v = &fr[n..];
                    }
                }
            }
            "PM" | "pm" => {
                let up = v.get(..2).ok_or_else(bad)?.to_ascii_uppercase();
                pm = Some(match up.as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(bad()),
                });
                v = &v[2..];
            }
            "MST" => {
                let n = v.bytes().take_while(|b| b.is_ascii_uppercase()).count();
                if n < 3 {
                    return Err(bad());
                }
                v = &v[n..];
            }
            "-0700" | "-07:00" | "-07" | "-07:00:00" | "Z0700" | "Z07:00" | "Z07" | "Z07:00:00" => {
                if tok.starts_with('Z') && v.starts_with('Z') {
                    v = &v[1..];
                    offset = Some(0);
                } else {
                    let sign = match v.as_bytes().first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return Err(bad()),
                    };
                    let mut r = &v[1..];
                    let (h, r2) = take_num(r, 2, 2).ok_or_else(bad)?;
                    r = r2;
                    let mut m = 0;
                    if tok.contains("00") || tok.ends_with("0700") {
                        r = r.strip_prefix(':').unwrap_or(r);
                        let (mm, r3) = take_num(r, 2, 2).ok_or_else(bad)?;
                        m = mm;
                        r = r3;
                    }
                    offset = Some(sign * (h * 3600 + m * 60));
                    v = r;
                }
            }
            _ if tok.starts_with('.') || tok.starts_with(',') => {
                let fr = v.strip_prefix(['.', ',']);
                match fr {
                    Some(fr) => {
                        let n = fr.bytes().take_while(|b| b.is_ascii_digit()).count();
                        let digits = &fr[..n.min(9)];
                        if !digits.is_empty() {
                            nanos = format!("{digits:0<9}").parse().map_err(|_| bad())?;
                        }
                        v = &fr[n..];
                    }
                    None if tok.as_bytes()[1] == b'9' => {}
                    None => return Err(bad()),
                }
            }
            _ => {
                v = v.strip_prefix(tok).ok_or_else(bad)?;
            }
        }
        rest = &rest[start + len..];
    }
    v = v.strip_prefix(rest).ok_or_else(bad)?;
    if !v.is_empty() {
        return Err(format!("parsing time {:?}: extra text: {:?}", value, v));
    }
    if let Some(pm) = pm {
        if hour > 12 {
            return Err(bad());
        }
        if pm && hour < 12 {
            hour += 12;
        } else if !pm && hour == 12 {
            hour = 0;
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 59 {
        return Err(format!("parsing time {value:?}: value out of range"));
    }
    let days = days_from_civil(year, month, day);
    let local = days * DAY + hour as i64 * 3600 + min as i64 * 60 + sec as i64;
    Ok((local, nanos, offset))
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
