//! The `regex` and `logfmt` stages: extract values from text.
//!
//! `regex` sets one extracted value per named group that took part in the
//! match (the regex is not anchored, as in Promtail). `logfmt` reads
//! `key=value` and `key="quoted \"value\""` pairs and extracts the mapped
//! keys. Both reuse their capture slots and scratch strings across lines.

use std::collections::BTreeMap;

use regex::{CaptureLocations, Regex};
use serde::{Deserialize, Serialize};

use super::{Entry, FileState, Stage};

/// Settings of the `regex` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    /// RE2-style regular expression with named groups `(?P<name>…)`.
    pub expression: String,
    /// Extracted value to match instead of the line.
    #[serde(default)]
    pub source: Option<String>,
}

pub(crate) struct RegexStage {
    re: Regex,
    locs: CaptureLocations,
    names: Vec<(usize, String)>,
    source: Option<String>,
    scratch: String,
}

impl RegexStage {
    pub fn new(c: &RegexConfig) -> Result<Self, String> {
        let re = larch_go::regex::compile(&c.expression, false)
            .map_err(|e| format!("invalid expression: {e}"))?;
        let names: Vec<(usize, String)> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        if names.is_empty() {
            return Err("expression must have at least one named group (?P<name>...)".into());
        }
        Ok(RegexStage {
            locs: re.capture_locations(),
            re,
            names,
            source: c.source.clone(),
            scratch: String::new(),
        })
    }
}

impl Stage for RegexStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let Some(src) = e.source(self.source.as_deref()) else {
            return next(e);
        };
        self.scratch.clear();
        self.scratch.push_str(src);
        if self
            .re
            .captures_read(&mut self.locs, &self.scratch)
            .is_some()
        {
            for (i, name) in &self.names {
                if let Some((s, t)) = self.locs.get(*i) {
                    e.extracted.set(name, &self.scratch[s..t]);
                }
            }
        }
        next(e);
    }
}

/// Settings of the `logfmt` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogfmtConfig {
    /// Extracted name → logfmt key (empty: the name itself).
    pub mapping: BTreeMap<String, Option<String>>,
    /// Extracted value to parse instead of the line.
    #[serde(default)]
    pub source: Option<String>,
}

pub(crate) struct LogfmtStage {
    /// logfmt key → extracted names.
    keys: BTreeMap<String, Vec<String>>,
    source: Option<String>,
    line: String,
    value: String,
}

impl LogfmtStage {
    pub fn new(c: &LogfmtConfig) -> Result<Self, String> {
        if c.mapping.is_empty() {
            return Err("mapping must not be empty".into());
        }
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, key) in &c.mapping {
            let key = key.as_deref().filter(|k| !k.is_empty()).unwrap_or(name);
            keys.entry(key.to_string()).or_default().push(name.clone());
        }
        Ok(LogfmtStage {
            keys,
            source: c.source.clone(),
            line: String::new(),
            value: String::new(),
        })
    }
}

/// Calls `f(key, value)` for each logfmt pair of `s`; quoted values are
/// unescaped into `scratch`.
pub(crate) fn logfmt_pairs(s: &str, scratch: &mut String, mut f: impl FnMut(&str, &str)) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &s[ks..i];
        if key.is_empty() {
            i += 1;
            continue;
        }
        if i >= b.len() || b[i] == b' ' {
            f(key, "");
            continue;
        }
        i += 1; // '='
        scratch.clear();
        if b.get(i) == Some(&b'"') {
            i += 1;
            let mut seg = i;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    scratch.push_str(&s[seg..i]);
                    let escaped = match b[i + 1] {
                        b'n' => Some('\n'),
                        b't' => Some('\t'),
                        b'r' => Some('\r'),
                        c @ (b'"' | b'\\') => Some(c as char),
                        _ => None,
                    };
                    match escaped {
                        Some(c) => {
                            scratch.push(c);
                            i += 2;
                        }
                        None => {
                            // Not an escape: keep the backslash; what follows
                            // (possibly a multi-byte character) is copied as is.
                            scratch.push('\\');
                            i += 1;
                        }
                    }
                    seg = i;
                } else {
                    i += 1;
                }
            }
            scratch.push_str(&s[seg..i.min(b.len())]);
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            scratch.push_str(&s[vs..i]);
        }
        f(key, scratch);
    }
}

impl Stage for LogfmtStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let Some(src) = e.source(self.source.as_deref()) else {
            return next(e);
        };
        self.line.clear();
        self.line.push_str(src);
        let keys = &self.keys;
        let extracted = &mut e.extracted;
        logfmt_pairs(&self.line, &mut self.value, |k, v| {
            if let Some(names) = keys.get(k) {
                for n in names {
                    extracted.set(n, v);
                }
            }
        });
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn regex_extracts_named_groups() {
        let (mut p, _) = pipeline(
            "- regex:\n    expression: '^(?P<ip>\\S+) (?P<method>GET|POST)( (?P<path>/\\S*))?'\n",
        );
        let out = run_lines(&mut p, vec![entry("1.2.3.4 GET", &[]), entry("nope", &[])]);
        assert_eq!(out[0].extracted.get("ip"), Some("1.2.3.4"));
        assert_eq!(out[0].extracted.get("method"), Some("GET"));
        assert_eq!(out[0].extracted.get("path"), None);
        assert!(out[1].extracted.is_empty());
        assert!(pipeline_err("- regex:\n    expression: 'a(b)'\n").contains("named group"));
    }

    #[test]
    fn regex_reads_a_source() {
        let (mut p, _) = pipeline(
            "- regex:\n    expression: '(?P<a>.)(?P<rest>.*)'\n- regex:\n    expression: '(?P<b>.)'\n    source: rest\n- regex:\n    expression: '(?P<c>.)'\n    source: missing\n",
        );
        let out = run_lines(&mut p, vec![entry("xyz", &[])]);
        assert_eq!(out[0].extracted.get("b"), Some("y"));
        assert_eq!(out[0].extracted.get("c"), None);
    }

    #[test]
    fn logfmt_pairs_parse() {
        let mut got = Vec::new();
        let mut s = String::new();
        logfmt_pairs(
            r#"a=1 b="two words" c= flag d="q\"x\\y" e"#,
            &mut s,
            |k, v| got.push((k.to_string(), v.to_string())),
        );
        assert_eq!(
            got,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "".into()),
                ("flag".into(), "".into()),
                ("d".into(), "q\"x\\y".into()),
                ("e".into(), "".into()),
            ]
        );
        let mut n = 0;
        logfmt_pairs("= == x=\"unterminated", &mut s, |_, _| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn logfmt_stage_maps_keys() {
        let (mut p, _) = pipeline("- logfmt:\n    mapping:\n      level:\n      message: msg\n");
        let out = run_lines(
            &mut p,
            vec![entry(r#"level=error msg="boom" other=1"#, &[])],
        );
        assert_eq!(out[0].extracted.get("level"), Some("error"));
        assert_eq!(out[0].extracted.get("message"), Some("boom"));
        assert_eq!(out[0].extracted.get("other"), None);
    }

    proptest::proptest! {
        #[test]
        fn logfmt_never_panics(s in "\\PC{0,80}") {
            let mut scratch = String::new();
            logfmt_pairs(&s, &mut scratch, |_, _| {});
        }
    }
}
