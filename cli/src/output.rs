//! How results look on stdout (logcli's three output modes) and what goes
//! to stderr.
//!
//! * `default`: `<timestamp> <labels> <line>`. Labels are written as
//!   `{a="1", b="2"}`, without the labels every stream of the answer shares
//!   (those are reported once on stderr as `Common labels: {...}`), padded
//!   to one width so that lines align. The line is trimmed of surrounding
//!   white space. On a terminal the timestamp is blue and each label set
//!   gets a colour of its own, picked from a hash of its text so that a
//!   stream keeps its colour from batch to batch.
//! * `raw`: the line alone, as stored (one trailing newline removed).
//! * `jsonl`: `{"labels":{...},"line":"...","timestamp":"<RFC 3339 nano>"}`.
//!   Unlike `default`, the labels are the stream's full set (minus
//!   `--exclude-label`, or only `--include-label`), so every JSON line
//!   stands alone whatever else the answer held.
//!
//! Metric results are printed as indented JSON of Loki's `result`
//! (`default`, `raw`) or one series per line (`jsonl`). Statistics
//! (`--stats`) go to stderr as aligned `Key value` lines.
//!
//! Writing never allocates per line except for the timestamp text.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};

use serde_json::Value;

use crate::loki::Labels;
use crate::time::{TsFormat, Zone, format_ts};

/// `-o/--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Timestamp, labels and line.
    Default,
    /// The line only.
    Raw,
    /// One JSON object per line.
    Jsonl,
}

const RESET: &str = "\x1b[0m";
const BLUE: &str = "\x1b[34m";
/// Colours for label sets (red, green, yellow, magenta, cyan and their
/// bright forms); blue is kept for timestamps.
const PALETTE: [&str; 10] = [
    "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[35m", "\x1b[36m", "\x1b[91m", "\x1b[92m", "\x1b[93m",
    "\x1b[95m", "\x1b[96m",
];

/// How log lines are written.
#[derive(Debug, Clone)]
pub struct LogFormat {
    /// Output mode.
    pub mode: Mode,
    /// Zone of printed timestamps.
    pub zone: Zone,
    /// Timestamp layout in `default` mode.
    pub ts_format: TsFormat,
    /// ANSI colours.
    pub color: bool,
    /// Leave labels out.
    pub no_labels: bool,
    /// Show only these label names.
    pub include: Vec<String>,
    /// Never show these label names.
    pub exclude: Vec<String>,
    /// Keep common labels on every line.
    pub include_common: bool,
    /// Minimum width of the labels column.
    pub labels_length: usize,
}

impl Default for LogFormat {
    fn default() -> LogFormat {
        LogFormat {
            mode: Mode::Default,
            zone: Zone::Utc,
            ts_format: TsFormat::Rfc3339,
            color: false,
            no_labels: false,
            include: Vec::new(),
            exclude: Vec::new(),
            include_common: false,
            labels_length: 0,
        }
    }
}

/// The printable labels of one answer's streams.
#[derive(Debug, Default)]
pub struct BatchLabels {
    /// Labels common to every stream (removed from `shown`).
    pub common: Labels,
    shown: Vec<String>,
    json: Vec<String>,
    colors: Vec<&'static str>,
    width: usize,
}

impl LogFormat {
    /// Prepares the labels of one answer. `factor_common` removes the
    /// labels every stream shares and pads to one width (range and instant
    /// queries; live tail shows each stream's labels in full, unpadded, as
    /// logcli does).
    pub fn batch_labels<'a>(
        &self,
        sets: impl IntoIterator<Item = &'a Labels> + Clone,
        factor_common: bool,
    ) -> BatchLabels {
        let mut common = Labels::new();
        if factor_common && !self.include_common {
            let mut it = sets.clone().into_iter();
            if let Some(first) = it.next() {
                common = first.clone();
                for s in it {
                    common.retain(|k, v| s.get(k) == Some(v));
                }
            }
            // Labels asked for explicitly stay on the lines.
            common.retain(|k, _| !self.include.contains(k));
        }
        let mut out = BatchLabels {
            width: self.labels_length,
            ..BatchLabels::default()
        };
        for set in sets {
            let keep = |k: &String| {
                (self.include.is_empty() || self.include.contains(k)) && !self.exclude.contains(k)
            };
            let shown: Labels = set
                .iter()
                .filter(|(k, _)| keep(k) && !common.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let text = labels_text(&shown);
            if factor_common {
                // Aligned within an answer; a live tail has no fixed set
                // of streams to align, so its labels are not padded.
                out.width = out.width.max(text.chars().count());
            }
            out.colors.push(color_of(&text));
            out.shown.push(text);
            let full: Labels = set
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.json
                .push(serde_json::to_string(&full).unwrap_or_else(|_| "{}".into()));
        }
        out.common = common;
        out
    }

    /// Writes one log line of stream `idx`.
    pub fn write_entry(
        &self,
        out: &mut impl Write,
        labels: &BatchLabels,
        idx: usize,
        ts: i64,
        line: &str,
    ) -> io::Result<()> {
        match self.mode {
            Mode::Raw => {
                let line = line.strip_suffix('\n').unwrap_or(line);
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            }
            Mode::Jsonl => {
                out.write_all(b"{")?;
                if !self.no_labels {
                    out.write_all(b"\"labels\":")?;
                    out.write_all(labels.json.get(idx).map_or("{}", String::as_str).as_bytes())?;
                    out.write_all(b",")?;
                }
                out.write_all(b"\"line\":")?;
                serde_json::to_writer(&mut *out, line).map_err(io::Error::other)?;
                let ts = format_ts(ts, self.zone, TsFormat::Rfc3339Nano);
                writeln!(out, ",\"timestamp\":\"{ts}\"}}")
            }
            Mode::Default => {
                let ts = format_ts(ts, self.zone, self.ts_format);
                if self.color {
                    write!(out, "{BLUE}{ts}{RESET} ")?;
                } else {
                    write!(out, "{ts} ")?;
                }
                if !self.no_labels {
                    let text = labels.shown.get(idx).map_or("{}", String::as_str);
                    let pad = labels.width.saturating_sub(text.chars().count());
                    if self.color {
                        let c = labels.colors.get(idx).copied().unwrap_or(PALETTE[0]);
                        write!(out, "{c}{text}{:pad$}{RESET} ", "")?;
                    } else {
                        write!(out, "{text}{:pad$} ", "")?;
                    }
                }
                out.write_all(line.trim().as_bytes())?;
                out.write_all(b"\n")
            }
        }
    }

    /// Writes a metric result (`matrix`, `vector`, `scalar`, or the
    /// `data` of a volume answer).
    pub fn write_metric(&self, out: &mut impl Write, result: &Value) -> io::Result<()> {
        write_json(out, self.mode, result)
    }
}

/// JSON as logcli prints results: indented, or one element per line in
/// `jsonl` mode.
pub fn write_json(out: &mut impl Write, mode: Mode, v: &Value) -> io::Result<()> {
    match (mode, v) {
        (Mode::Jsonl, Value::Array(items)) if !is_sample(v) => {
            for item in items {
                serde_json::to_writer(&mut *out, item).map_err(io::Error::other)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        (Mode::Jsonl, _) => {
            serde_json::to_writer(&mut *out, v).map_err(io::Error::other)?;
            out.write_all(b"\n")
        }
        _ => {
            serde_json::to_writer_pretty(&mut *out, v).map_err(io::Error::other)?;
            out.write_all(b"\n")
        }
    }
}

/// A scalar result `[<time>, "<value>"]` is one value, not a list.
fn is_sample(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.len() == 2 && a[0].is_number() && a[1].is_string())
}

/// `{a="1", b="x\"y"}`, names sorted, values quoted as Go does.
pub fn labels_text(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&larch_query::logql::go_quote(v));
    }
    s.push('}');
    s
}

fn color_of(text: &str) -> &'static str {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    PALETTE[(h.finish() % PALETTE.len() as u64) as usize]
}

/// Bytes as people read them: `512 B`, `1.5 kB`, `12 MB` (decimal units).
pub fn human_bytes(v: u64) -> String {
    let s = larch_query::logql::format_bytes(v);
    match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => format!("{} {}", &s[..i], &s[i..]),
        None => s,
    }
}

/// Writes query statistics as aligned `Section.Key value` lines, bytes
/// humanized: `Summary.TotalBytesProcessed 1.2 MB`.
pub fn write_stats(out: &mut impl Write, stats: &Value) -> io::Result<()> {
    let mut rows = Vec::new();
    flatten(stats, &mut String::new(), &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        writeln!(out, "{k:width$}  {v}")?;
    }
    Ok(())
}

fn flatten(v: &Value, prefix: &mut String, rows: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                let mut chars = k.chars();
                if let Some(c) = chars.next() {
                    prefix.extend(c.to_uppercase());
                    prefix.push_str(chars.as_str());
                }
                flatten(v, prefix, rows);
                prefix.truncate(len);
            }
        }
        Value::Number(n) => {
            let is_bytes = prefix
                .rsplit('.')
                .next()
                .is_some_and(|k| k.contains("Bytes"));
            let text = match n.as_u64() {
                Some(b) if is_bytes => human_bytes(b),
                _ => n.to_string(),
            };
            rows.push((prefix.clone(), text));
        }
        Value::String(s) => rows.push((prefix.clone(), s.clone())),
        Value::Bool(b) => rows.push((prefix.clone(), b.to_string())),
        Value::Null | Value::Array(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn render(f: &LogFormat, sets: &[Labels], lines: &[(usize, i64, &str)]) -> String {
        let b = f.batch_labels(sets.iter(), true);
        let mut out = Vec::new();
        for &(i, ts, l) in lines {
            f.write_entry(&mut out, &b, i, ts, l).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    const T: i64 = 1_714_557_600_000_000_000;

    #[test]
    fn default_mode_factors_common_labels_and_pads() {
        let sets = [
            labels(&[("app", "api"), ("env", "prod")]),
            labels(&[("app", "web-frontend"), ("env", "prod")]),
        ];
        let f = LogFormat::default();
        let b = f.batch_labels(sets.iter(), true);
        assert_eq!(labels_text(&b.common), r#"{env="prod"}"#);
        assert_eq!(
            render(&f, &sets, &[(0, T, "  one \n"), (1, T + 1, "two")]),
            "2024-05-01T10:00:00Z {app=\"api\"}          one\n\
             2024-05-01T10:00:00Z {app=\"web-frontend\"} two\n"
        );
        // One stream: everything is common.
        assert_eq!(
            render(&f, &sets[..1], &[(0, T, "x")]),
            "2024-05-01T10:00:00Z {} x\n"
        );
        let f = LogFormat {
            include_common: true,
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets[..1], &[(0, T, "x")]),
            "2024-05-01T10:00:00Z {app=\"api\", env=\"prod\"} x\n"
        );
    }

    #[test]
    fn include_exclude_and_no_labels() {
        let sets = [
            labels(&[("app", "api"), ("env", "prod"), ("pod", "a")]),
            labels(&[("app", "api"), ("env", "dev"), ("pod", "b")]),
        ];
        let f = LogFormat {
            exclude: vec!["pod".into()],
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets, &[(0, T, "x"), (1, T, "y")]),
            "2024-05-01T10:00:00Z {env=\"prod\"} x\n2024-05-01T10:00:00Z {env=\"dev\"}  y\n"
        );
        let f = LogFormat {
            include: vec!["app".into(), "pod".into()],
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets, &[(0, T, "x")]),
            "2024-05-01T10:00:00Z {app=\"api\", pod=\"a\"} x\n"
        );
        let f = LogFormat {
            no_labels: true,
            labels_length: 40,
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets, &[(0, T, "x")]),
            "2024-05-01T10:00:00Z x\n"
        );
    }

    #[test]
    fn raw_and_jsonl() {
        let sets = [labels(&[("app", "a\"b")]), labels(&[("app", "c")])];
        let f = LogFormat {
            mode: Mode::Raw,
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets, &[(0, T, "  keep spaces \n")]),
            "  keep spaces \n"
        );
        let f = LogFormat {
            mode: Mode::Jsonl,
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets, &[(0, T + 5_000_000, "say \"hi\"\n")]),
            "{\"labels\":{\"app\":\"a\\\"b\"},\"line\":\"say \\\"hi\\\"\\n\",\"timestamp\":\"2024-05-01T10:00:00.005Z\"}\n"
        );
        let f = LogFormat {
            mode: Mode::Jsonl,
            no_labels: true,
            ..LogFormat::default()
        };
        assert_eq!(
            render(&f, &sets, &[(1, T, "x")]),
            "{\"line\":\"x\",\"timestamp\":\"2024-05-01T10:00:00Z\"}\n"
        );
    }

    #[test]
    fn colours() {
        let sets = [labels(&[("app", "a")]), labels(&[("app", "b")])];
        let f = LogFormat {
            color: true,
            ..LogFormat::default()
        };
        let s = render(&f, &sets, &[(0, T, "x")]);
        let c = color_of(r#"{app="a"}"#);
        assert_eq!(
            s,
            format!("{BLUE}2024-05-01T10:00:00Z{RESET} {c}{{app=\"a\"}}{RESET} x\n")
        );
    }

    #[test]
    fn metric_json() {
        let v: Value = serde_json::from_str(
            r#"[{"metric":{"a":"b"},"value":[1.5,"2"]},{"metric":{},"value":[1.5,"3"]}]"#,
        )
        .unwrap();
        let mut out = Vec::new();
        write_json(&mut out, Mode::Default, &v).unwrap();
        assert!(
            String::from_utf8_lossy(&out)
                .starts_with("[\n  {\n    \"metric\": {\n      \"a\": \"b\"\n")
        );
        let mut out = Vec::new();
        write_json(&mut out, Mode::Jsonl, &v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"metric\":{\"a\":\"b\"},\"value\":[1.5,\"2\"]}\n{\"metric\":{},\"value\":[1.5,\"3\"]}\n"
        );
        let scalar: Value = serde_json::from_str(r#"[4000000000,"2"]"#).unwrap();
        let mut out = Vec::new();
        write_json(&mut out, Mode::Jsonl, &scalar).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[4000000000,\"2\"]\n");
    }

    #[test]
    fn stats_lines() {
        let v: Value = serde_json::from_str(
            r#"{"summary":{"totalBytesProcessed":1500,"execTime":0.25},"ingester":{"totalReached":1}}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        write_stats(&mut out, &v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Ingester.TotalReached        1\n\
             Summary.ExecTime             0.25\n\
             Summary.TotalBytesProcessed  1.5 kB\n"
        );
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(12_000_000), "12 MB");
    }
}
