//! The `drop` stage: discards entries by content, age or size, counting
//! them under `drop_counter_reason`.
//!
//! The conditions that are set must all hold for an entry to be dropped:
//! `source` alone (the extracted values exist), `value` (the joined source
//! values equal it), `expression` (the regex matches the joined source
//! values, or the line when there is no source), `older_than` (the entry's
//! time is older than now minus this), `longer_than` (the line is longer).

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{BuildCtx, Entry, FileState, Stage};
use crate::metrics::Counter;
use crate::time::now_nanos;
use larch_config::{ByteSize, HumanDuration};

/// One source name or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sources {
    /// A single extracted name.
    One(String),
    /// Several, joined with `separator`.
    Many(Vec<String>),
}

fn default_separator() -> String {
    ";".into()
}
fn default_reason() -> String {
    "drop_stage".into()
}

/// Settings of the `drop` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// Extracted value(s) the conditions read.
    #[serde(default)]
    pub source: Option<Sources>,
    /// Joins several sources. Default `;`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Regex (unanchored) the input must match.
    #[serde(default)]
    pub expression: Option<String>,
    /// Exact value the input must equal (needs `source`).
    #[serde(default)]
    pub value: Option<String>,
    /// Drop entries older than this.
    #[serde(default)]
    pub older_than: Option<HumanDuration>,
    /// Drop lines longer than this.
    #[serde(default)]
    pub longer_than: Option<ByteSize>,
    /// Reason label on `larch_agent_dropped_entries_total`. Default
    /// `drop_stage`.
    #[serde(default = "default_reason")]
    pub drop_counter_reason: String,
}

pub(crate) struct DropStage {
    sources: Vec<String>,
    separator: String,
    expression: Option<Regex>,
    value: Option<String>,
    older_than: Option<i64>,
    longer_than: Option<usize>,
    dropped: Counter,
    scratch: String,
}

impl DropStage {
    pub fn new(c: &DropConfig, ctx: &BuildCtx<'_>) -> Result<Self, String> {
        let sources = match &c.source {
            None => Vec::new(),
            Some(Sources::One(s)) => vec![s.clone()],
            Some(Sources::Many(v)) => v.clone(),
        };
        if c.value.is_some() && sources.is_empty() {
            return Err("value needs a source".into());
        }
        if c.value.is_some() && c.expression.is_some() {
            return Err("value and expression cannot both be set".into());
        }
        if sources.is_empty()
            && c.expression.is_none()
            && c.older_than.is_none()
            && c.longer_than.is_none()
        {
            return Err("needs at least one of source, expression, older_than, longer_than".into());
        }
        let expression = c
            .expression
            .as_deref()
            .map(|e| {
                larch_go::regex::compile(e, false)
                    .map_err(|err| format!("invalid expression: {err}"))
            })
            .transpose()?;
        Ok(DropStage {
            sources,
            separator: c.separator.clone(),
            expression,
            value: c.value.clone(),
            older_than: c
                .older_than
                .map(|d| d.0.as_nanos().min(i64::MAX as u128) as i64),
            longer_than: c.longer_than.map(|b| b.0 as usize),
            dropped: ctx.dropped.with(&[&c.drop_counter_reason]),
            scratch: String::new(),
        })
    }

    fn should_drop(&mut self, e: &Entry) -> bool {
        if let Some(age) = self.older_than
            && e.ts >= now_nanos().saturating_sub(age)
        {
            return false;
        }
        if let Some(max) = self.longer_than
            && e.line.len() <= max
        {
            return false;
        }
        let input: &str = if self.sources.is_empty() {
            &e.line
        } else {
            self.scratch.clear();
            for (i, s) in self.sources.iter().enumerate() {
                let Some(v) = e.extracted.get(s) else {
                    return false;
                };
                if i > 0 {
                    self.scratch.push_str(&self.separator);
                }
                self.scratch.push_str(v);
            }
            &self.scratch
        };
        if let Some(v) = &self.value
            && input != v
        {
            return false;
        }
        if let Some(re) = &self.expression
            && !re.is_match(input)
        {
            return false;
        }
        true
    }
}

impl Stage for DropStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        if self.should_drop(e) {
            self.dropped.inc();
        } else {
            next(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::time::now_nanos;

    #[test]
    fn drops_by_expression_value_and_size() {
        let (mut p, reg) = pipeline(
            r#"
- drop:
    expression: debug
    drop_counter_reason: noisy
- regex:
    expression: 'level=(?P<level>\w+)'
- drop:
    source: level
    value: trace
- drop:
    longer_than: 20B
"#,
        );
        let out = run_lines(
            &mut p,
            vec![
                entry("debug stuff", &[]),
                entry("level=trace x", &[]),
                entry("level=info x", &[]),
                entry("level=info this line is far too long", &[]),
                entry("no level", &[]),
            ],
        );
        let lines: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, vec!["level=info x", "no level"]);
        let m = reg.render();
        assert!(
            m.contains(r#"larch_agent_dropped_entries_total{reason="noisy"} 1"#),
            "{m}"
        );
        assert!(
            m.contains(r#"larch_agent_dropped_entries_total{reason="drop_stage"} 2"#),
            "{m}"
        );
    }

    #[test]
    fn drops_old_entries_and_needs_a_condition() {
        let (mut p, _) = pipeline("- drop:\n    older_than: 1h\n");
        let mut fresh = entry("fresh", &[]);
        fresh.ts = now_nanos();
        let out = run_lines(&mut p, vec![entry("old", &[]), fresh]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "fresh");
        assert!(pipeline_err("- drop: {}\n").contains("needs at least one"));
        assert!(pipeline_err("- drop:\n    value: x\n").contains("value needs a source"));
    }

    #[test]
    fn several_sources_are_joined() {
        let (mut p, _) = pipeline(
            "- regex:\n    expression: '(?P<a>\\w) (?P<b>\\w)'\n- drop:\n    source: [a, b]\n    separator: '-'\n    value: x-y\n",
        );
        let out = run_lines(&mut p, vec![entry("x y", &[]), entry("x z", &[])]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "x z");
    }
}
