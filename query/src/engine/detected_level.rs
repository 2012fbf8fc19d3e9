//! `detected_level`, derived at query time.
//!
//! Grafana's logs volume groups by `level, detected_level`. Loki computes
//! `detected_level` when a line is pushed and stores it as structured
//! metadata; Larch derives it while a query runs instead, and only for
//! queries that mention the label, so ingest stays cheap. An entry that
//! already has `detected_level` metadata keeps it. Otherwise the level is
//! taken, in order, from:
//! 1. a level-like stream label or metadata pair (`level LEVEL Level
//!    log.level severity SEVERITY Severity lvl LVL Lvl`);
//! 2. OTLP's `severity_number` metadata (1-4 trace, 5-8 debug, 9-12 info,
//!    13-16 warn, 17-20 error, 21-24 fatal);
//! 3. a level field of a JSON object line or of a logfmt line;
//! 4. a keyword in the line, as a whole word in any case: `trace`,
//!    `debug`, `fatal`, `critical`, `error`, `err`, `warning`, `warn`,
//!    `info` (the first of these found wins, in this order);
//! 5. else `unknown`.
//!
//! Values are lowercased and normalised (`trc`→`trace`, `dbg`→`debug`,
//! `inf`/`information`→`info`, `wrn`/`warning`→`warn`, `err`→`error`).
//! The result is appended to the entry's encoded metadata, so the pipeline
//! sees it as structured metadata and categorised output reports it there.

use crate::labels::LabelSet;
use crate::pipeline::parsers::json::{Kind, object_each, string_value};
use crate::pipeline::parsers::logfmt::Decoder;
use crate::source::decode_metadata;

/// The label's name.
pub const DETECTED_LEVEL: &str = "detected_level";

const LEVEL_NAMES: [&str; 10] = [
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "lvl",
    "LVL",
    "Lvl",
];

const KEYWORDS: [(&str, &str); 9] = [
    ("trace", "trace"),
    ("debug", "debug"),
    ("fatal", "fatal"),
    ("critical", "critical"),
    ("error", "error"),
    ("err", "error"),
    ("warning", "warn"),
    ("warn", "warn"),
    ("info", "info"),
];

/// Lowercases and normalises a level value into `out`.
fn normalise(value: &str, out: &mut String) {
    out.clear();
    let lower = value.trim().to_ascii_lowercase();
    out.push_str(match lower.as_str() {
        "trc" | "trace" => "trace",
        "dbg" | "debug" => "debug",
        "inf" | "info" | "information" => "info",
        "wrn" | "warn" | "warning" => "warn",
        "err" | "error" | "eror" => "error",
        "crit" | "critical" => "critical",
        "fatal" => "fatal",
        "" => "unknown",
        other => other,
    });
}

fn from_severity_number(v: &str) -> Option<&'static str> {
    let n: u32 = v.trim().parse().ok()?;
    Some(match n {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unknown",
    })
}

/// A level field of a JSON object line.
fn from_json(line: &[u8], out: &mut String) -> bool {
    let mut found = false;
    let mut key_buf = String::new();
    let mut value = String::new();
    let _ = object_each(line, &mut key_buf, &mut |key, kind, raw| {
        if found || !LEVEL_NAMES.contains(&key) {
            return Ok(());
        }
        match kind {
            Kind::String => string_value(raw, &mut value),
            _ => {
                value.clear();
                value.push_str(&String::from_utf8_lossy(raw));
            }
        }
        normalise(&value, out);
        found = true;
        Ok(())
    });
    found
}

/// A level field of a logfmt line.
fn from_logfmt(line: &[u8], out: &mut String) -> bool {
    let mut d = Decoder::new(line);
    while !d.eol() {
        if !d.scan() {
            continue;
        }
        if let Ok(k) = std::str::from_utf8(d.key())
            && LEVEL_NAMES.contains(&k)
        {
            normalise(&String::from_utf8_lossy(d.value()), out);
            return true;
        }
    }
    false
}

/// The highest-priority keyword that occurs as a whole word.
fn from_keywords(line: &[u8]) -> Option<&'static str> {
    let mut best: Option<usize> = None;
    let mut i = 0;
    while i < line.len() {
        if !line[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && line[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let word = &line[start..i];
        if word.len() < 3 || word.len() > 8 {
            continue;
        }
        if let Some(p) = KEYWORDS
            .iter()
            .position(|(k, _)| word.eq_ignore_ascii_case(k.as_bytes()))
            && best.is_none_or(|b| p < b)
        {
            best = Some(p);
            if p == 0 {
                break;
            }
        }
    }
    best.map(|p| KEYWORDS[p].1)
}

/// The level of one entry (see the module docs).
pub(crate) fn detect(stream: &LabelSet, metadata: &[u8], line: &[u8], out: &mut String) {
    for name in LEVEL_NAMES {
        if let Some(v) = stream.get(name).filter(|v| !v.is_empty()) {
            normalise(v, out);
            return;
        }
        if let Some((_, v)) = decode_metadata(metadata).find(|(n, v)| *n == name && !v.is_empty()) {
            normalise(v, out);
            return;
        }
    }
    if let Some((_, v)) = decode_metadata(metadata).find(|(n, _)| *n == "severity_number")
        && let Some(l) = from_severity_number(v)
    {
        out.clear();
        out.push_str(l);
        return;
    }
    let trimmed = line.trim_ascii_start();
    if trimmed.first() == Some(&b'{') {
        if from_json(trimmed, out) {
            return;
        }
    } else if memchr::memchr(b'=', line).is_some() && from_logfmt(line, out) {
        return;
    }
    out.clear();
    out.push_str(from_keywords(line).unwrap_or("unknown"));
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(s);
}

/// Derives `detected_level` with reusable buffers. Public so that the
/// store's live tail, pattern and field endpoints label entries the way
/// queries do.
#[derive(Debug, Default)]
pub struct Deriver {
    buf: Vec<u8>,
    level: String,
}

impl Deriver {
    /// The entry's metadata with `detected_level` added when missing.
    pub fn metadata<'a>(
        &'a mut self,
        stream: &LabelSet,
        metadata: &'a [u8],
        line: &[u8],
    ) -> &'a [u8] {
        if decode_metadata(metadata).any(|(n, _)| n == DETECTED_LEVEL) {
            return metadata;
        }
        detect(stream, metadata, line, &mut self.level);
        self.buf.clear();
        self.buf.extend_from_slice(metadata);
        put_str(&mut self.buf, DETECTED_LEVEL.as_bytes());
        put_str(&mut self.buf, self.level.as_bytes());
        &self.buf
    }

    /// The entry's level: its `detected_level` metadata when present,
    /// else derived as described in the module docs.
    pub fn level(&mut self, stream: &LabelSet, metadata: &[u8], line: &[u8]) -> &str {
        if let Some((_, v)) = decode_metadata(metadata).find(|(n, _)| *n == DETECTED_LEVEL) {
            self.level.clear();
            self.level.push_str(v);
        } else {
            detect(stream, metadata, line, &mut self.level);
        }
        &self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(stream: &[(&str, &str)], meta: &[(&str, &str)], line: &str) -> String {
        let mut m = Vec::new();
        for (n, v) in meta {
            put_str(&mut m, n.as_bytes());
            put_str(&mut m, v.as_bytes());
        }
        let mut d = Deriver::default();
        let s = LabelSet::from_pairs(stream.iter().copied());
        let out = d.metadata(&s, &m, line.as_bytes()).to_vec();
        decode_metadata(&out)
            .find(|(n, _)| *n == DETECTED_LEVEL)
            .map(|(_, v)| v.to_string())
            .unwrap()
    }

    #[test]
    fn level_agrees_with_metadata() {
        let mut d = Deriver::default();
        let s = LabelSet::from_pairs([("app", "a")]);
        assert_eq!(d.level(&s, &[], b"level=warn msg=x"), "warn");
        let mut m = Vec::new();
        put_str(&mut m, b"detected_level");
        put_str(&mut m, b"custom");
        assert_eq!(d.level(&s, &m, b"error"), "custom");
        assert_eq!(d.level(&s, &[], b"plain words"), "unknown");
    }

    #[test]
    fn sources_in_order() {
        assert_eq!(level(&[("level", "WRN")], &[], "error here"), "warn");
        assert_eq!(level(&[], &[("lvl", "dbg")], "error here"), "debug");
        assert_eq!(
            level(&[], &[("detected_level", "custom")], "error"),
            "custom"
        );
        assert_eq!(level(&[], &[("severity_number", "17")], "info"), "error");
        assert_eq!(
            level(&[], &[], r#"{"msg":"x error","level":"Information"}"#),
            "info"
        );
        assert_eq!(level(&[], &[], "ts=1 level=trc msg=\"error\""), "trace");
        assert_eq!(
            level(&[], &[], "GET /x failed: Error: boom, warning"),
            "error"
        );
        assert_eq!(level(&[], &[], "a warning and some info"), "warn");
        assert_eq!(
            level(&[], &[], "errors are not words here: terror"),
            "unknown"
        );
        assert_eq!(level(&[], &[], "[ERR] disk"), "error");
        assert_eq!(level(&[], &[], "debug then trace"), "trace");
    }
}
