//! The `timestamp` stage: sets the entry's time from an extracted value.
//!
//! Formats are Promtail's: the Go names (`RFC3339`, `RFC3339Nano`,
//! `ANSIC`, `UnixDate`, `RubyDate`, `RFC822`, `RFC822Z`, `RFC850`,
//! `RFC1123`, `RFC1123Z`, `Kitchen`, `Stamp`, `StampMilli`, `StampMicro`,
//! `StampNano`), epoch numbers (`Unix` — seconds, fractions allowed —
//! `UnixMs`, `UnixUs`, `UnixNs`) and any Go layout. `fallback_formats` are
//! tried in order. `location` applies to layouts without a zone: `UTC`, a
//! fixed offset such as `+02:00`, or an IANA zone (`Europe/Paris`, from
//! the database compiled into the binary, daylight saving time included).
//! Layouts are parsed by `larch_go::time::Layout`.
//! On failure, `fudge` (default) uses the file's previous timestamp plus
//! 1 ns, keeping the order of lines; `skip` keeps the time the entry has.

use serde::{Deserialize, Serialize};

use larch_go::time::{Layout, Zone};

use super::{Entry, FileState, Stage};
use crate::time::{Nanos, current_year, parse_rfc3339};

/// What to do when no format parses the value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Previous timestamp of the file plus 1 ns.
    #[default]
    Fudge,
    /// Leave the timestamp as it is.
    Skip,
}

/// Settings of the `timestamp` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// Extracted value holding the time.
    pub source: String,
    /// Format name or Go layout.
    pub format: String,
    /// Formats tried when `format` fails.
    #[serde(default)]
    pub fallback_formats: Vec<String>,
    /// `UTC` or a fixed offset like `+02:00`, for layouts without a zone.
    #[serde(default)]
    pub location: Option<String>,
    /// `fudge` (default) or `skip`.
    #[serde(default)]
    pub action_on_failure: OnFailure,
}

#[derive(Clone, Debug)]
enum Format {
    Rfc3339,
    Unix { scale: i64 },
    Layout(Layout),
}

fn named(name: &str) -> Option<&'static str> {
    Some(match name {
        "ANSIC" => "Mon Jan _2 15:04:05 2006",
        "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
        "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
        "RFC822" => "02 Jan 06 15:04 MST",
        "RFC822Z" => "02 Jan 06 15:04 -0700",
        "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
        "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
        "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
        "Kitchen" => "3:04PM",
        "Stamp" => "Jan _2 15:04:05",
        "StampMilli" => "Jan _2 15:04:05.000",
        "StampMicro" => "Jan _2 15:04:05.000000",
        "StampNano" => "Jan _2 15:04:05.000000000",
        _ => return None,
    })
}

fn compile(f: &str) -> Result<Format, String> {
    Ok(match f {
        "RFC3339" | "RFC3339Nano" => Format::Rfc3339,
        "Unix" => Format::Unix {
            scale: 1_000_000_000,
        },
        "UnixMs" => Format::Unix { scale: 1_000_000 },
        "UnixUs" => Format::Unix { scale: 1_000 },
        "UnixNs" => Format::Unix { scale: 1 },
        other => {
            let layout = Layout::compile(named(other).unwrap_or(other));
            if !layout.has_fields() {
                return Err(format!(
                    "layout {other:?} has no date or time fields (Go layouts use the reference time Mon Jan 2 15:04:05 MST 2006)"
                ));
            }
            Format::Layout(layout)
        }
    })
}

fn parse_location(loc: &str) -> Result<Zone, String> {
    match loc {
        "UTC" | "Etc/UTC" | "Z" => return Ok(Zone::UTC),
        _ => {}
    }
    let b = loc.as_bytes();
    let sign = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => {
            return Zone::load(loc).ok_or_else(|| {
                format!(
                    "location {loc:?}: unknown time zone; use UTC, an IANA name like Europe/Paris or an offset like +02:00"
                )
            });
        }
    };
    let digits: String = loc[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("location {loc:?}: expected an offset like +02:00"));
    }
    let h: i32 = digits[..2]
        .parse()
        .map_err(|_| format!("location {loc:?}"))?;
    let m: i32 = digits[2..]
        .parse()
        .map_err(|_| format!("location {loc:?}"))?;
    Ok(Zone::Fixed(sign * (h * 3600 + m * 60)))
}

fn parse_unix(v: &str, scale: i64) -> Option<Nanos> {
    let v = v.trim();
    if scale == 1_000_000_000
        && let Some((int, frac)) = v.split_once('.')
    {
        let s: i64 = int.parse().ok()?;
        if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut ns = 0i64;
        for k in 0..9 {
            ns = ns * 10 + frac.as_bytes().get(k).map_or(0, |c| (c - b'0') as i64);
        }
        return s
            .checked_mul(scale)?
            .checked_add(if s < 0 { -ns } else { ns });
    }
    v.parse::<i64>().ok()?.checked_mul(scale)
}

pub(crate) struct TimestampStage {
    source: String,
    formats: Vec<Format>,
    zone: Zone,
    fudge: bool,
    year: i64,
    scratch: String,
}

impl TimestampStage {
    pub fn new(c: &TimestampConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("source must not be empty".into());
        }
        let mut formats = vec![compile(&c.format)?];
        for f in &c.fallback_formats {
            formats.push(compile(f)?);
        }
        Ok(TimestampStage {
            source: c.source.clone(),
            formats,
            zone: match &c.location {
                Some(l) => parse_location(l)?,
                None => Zone::UTC,
            },
            fudge: c.action_on_failure == OnFailure::Fudge,
            year: current_year(),
            scratch: String::new(),
        })
    }

    fn parse(&self, v: &str) -> Option<Nanos> {
        self.formats.iter().find_map(|f| match f {
            Format::Rfc3339 => parse_rfc3339(v.as_bytes()),
            Format::Unix { scale } => parse_unix(v, *scale),
            Format::Layout(l) => l.parse(v, self.zone, self.year).and_then(|t| {
                t.secs
                    .checked_mul(1_000_000_000)?
                    .checked_add(i64::from(t.nanos))
            }),
        })
    }
}

impl Stage for TimestampStage {
    fn process(&mut self, e: &mut Entry, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let last = match fs {
            FileState::LastTs(t) => Some(*t),
            _ => None,
        };
        let parsed = match e.extracted.get(&self.source) {
            Some(v) => {
                self.scratch.clear();
                self.scratch.push_str(v);
                self.parse(&self.scratch)
            }
            None => None,
        };
        match parsed {
            Some(ts) => {
                e.ts = ts;
                *fs = FileState::LastTs(ts);
            }
            None if self.fudge => {
                if let Some(t) = last {
                    e.ts = t.saturating_add(1);
                    *fs = FileState::LastTs(e.ts);
                }
            }
            None => {}
        }
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn formats_and_epochs() {
        assert_eq!(
            parse_unix("1562708916.414123", 1_000_000_000),
            Some(1_562_708_916_414_123_000)
        );
        assert_eq!(
            parse_unix("1562708916", 1_000_000_000),
            Some(1_562_708_916_000_000_000)
        );
        assert_eq!(
            parse_unix("1562708916414", 1_000_000),
            Some(1_562_708_916_414_000_000)
        );
        assert_eq!(parse_unix("x", 1), None);
        assert_eq!(parse_location("+02:00"), Ok(Zone::Fixed(7200)));
        assert_eq!(parse_location("-0130"), Ok(Zone::Fixed(-5400)));
        assert_eq!(
            parse_location("Europe/Paris"),
            Zone::load("Europe/Paris").ok_or(String::new())
        );
        assert!(
            parse_location("Mars/Olympus")
                .unwrap_err()
                .contains("unknown time zone")
        );
    }

    #[test]
    fn sets_fudges_and_skips() {
        let yaml = r#"
- regex:
    expression: '^(?P<t>\S+) '
- timestamp:
    source: t
    format: UnixMs
    fallback_formats: ["2006-01-02T15:04:05"]
    location: "+01:00"
"#;
        let (mut p, _) = pipeline(yaml);
        let out = run_lines(
            &mut p,
            vec![
                entry("1000 a", &[]),
                entry("2024-01-02T04:04:05 b", &[]),
                entry("garbage c", &[]),
            ],
        );
        assert_eq!(out[0].ts, 1_000_000_000);
        assert_eq!(out[1].ts, 1_704_164_645_000_000_000);
        assert_eq!(out[2].ts, 1_704_164_645_000_000_001, "fudged");
        let (mut p, _) = pipeline(&format!("{yaml}    action_on_failure: skip\n"));
        let out = run_lines(&mut p, vec![entry("1000 a", &[]), entry("garbage c", &[])]);
        assert_eq!(out[1].ts, 1, "kept");
        assert!(
            pipeline_err("- timestamp:\n    source: t\n    format: nonsense\n")
                .contains("no date or time fields")
        );
    }
}
