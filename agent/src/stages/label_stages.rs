//! Stages that move values between the extracted map, labels, structured
//! metadata and the line: `labels`, `structured_metadata`, `static_labels`,
//! `labeldrop`, `labelallow` and `output`.
//!
//! Empty values set nothing: Loki removes empty-valued labels anyway, and
//! an empty label would only split streams for nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Entry, FileState, Stage, check_label_name};

pub(crate) struct LabelsStage {
    /// (label name, extracted source)
    map: Vec<(String, String)>,
    metadata: bool,
    scratch: String,
}

impl LabelsStage {
    pub fn new(m: &BTreeMap<String, Option<String>>, metadata: bool) -> Result<Self, String> {
        if m.is_empty() {
            return Err("needs at least one label".into());
        }
        let mut map = Vec::new();
        for (name, src) in m {
            check_label_name(name)?;
            let src = src.as_deref().filter(|s| !s.is_empty()).unwrap_or(name);
            map.push((name.clone(), src.to_string()));
        }
        Ok(LabelsStage {
            map,
            metadata,
            scratch: String::new(),
        })
    }
}

impl Stage for LabelsStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        for (name, src) in &self.map {
            let Some(v) = e.extracted.get(src) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            self.scratch.clear();
            self.scratch.push_str(v);
            if self.metadata {
                e.metadata.set(name, &self.scratch);
            } else {
                e.labels.set(name, &self.scratch);
            }
        }
        next(e);
    }
}

/// Settings of the `output` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Extracted value that becomes the line.
    pub source: String,
}

pub(crate) struct OutputStage {
    source: String,
    scratch: String,
}

impl OutputStage {
    pub fn new(c: &OutputConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("source must not be empty".into());
        }
        Ok(OutputStage {
            source: c.source.clone(),
            scratch: String::new(),
        })
    }
}

impl Stage for OutputStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        if let Some(v) = e.extracted.get(&self.source) {
            self.scratch.clear();
            self.scratch.push_str(v);
            std::mem::swap(&mut e.line, &mut self.scratch);
        }
        next(e);
    }
}

pub(crate) struct StaticLabels(Vec<(String, String)>);

impl StaticLabels {
    pub fn new(m: &BTreeMap<String, String>) -> Result<Self, String> {
        if m.is_empty() {
            return Err("needs at least one label".into());
        }
        for name in m.keys() {
            check_label_name(name)?;
        }
        Ok(StaticLabels(
            m.iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
    }
}

impl Stage for StaticLabels {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        for (k, v) in &self.0 {
            e.labels.set(k, v);
        }
        next(e);
    }
}

pub(crate) struct LabelFilter {
    names: Vec<String>,
    allow: bool,
}

impl LabelFilter {
    pub fn new(names: &[String], allow: bool) -> Result<Self, String> {
        if names.is_empty() {
            return Err("needs at least one label name".into());
        }
        for n in names {
            check_label_name(n)?;
        }
        Ok(LabelFilter {
            names: names.to_vec(),
            allow,
        })
    }
}

impl Stage for LabelFilter {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let names = &self.names;
        let allow = self.allow;
        e.labels
            .retain(|n, _| names.iter().any(|x| x == n) == allow);
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn labels_metadata_static_and_output() {
        let (mut p, _) = pipeline(
            r#"
- regex:
    expression: '(?P<lvl>\w+) (?P<trace>\w+) (?P<msg>.*)'
- labels:
    level: lvl
    empty:
- structured_metadata:
    trace_id: trace
- static_labels:
    team: core
- output:
    source: msg
"#,
        );
        let out = run_lines(
            &mut p,
            vec![entry("warn abc123 the message", &[("pod", "p")])],
        );
        let e = &out[0];
        assert_eq!(
            e.labels.to_text(),
            r#"{level="warn", pod="p", team="core"}"#
        );
        assert_eq!(e.metadata.to_text(), r#"{trace_id="abc123"}"#);
        assert_eq!(e.line, "the message");
    }

    #[test]
    fn labeldrop_and_labelallow() {
        let (mut p, _) = pipeline("- labeldrop: [pod]\n");
        let out = run_lines(&mut p, vec![entry("x", &[("pod", "p"), ("app", "a")])]);
        assert_eq!(out[0].labels.to_text(), r#"{app="a"}"#);
        let (mut p, _) = pipeline("- labelallow: [pod]\n");
        let out = run_lines(&mut p, vec![entry("x", &[("pod", "p"), ("app", "a")])]);
        assert_eq!(out[0].labels.to_text(), r#"{pod="p"}"#);
        assert!(pipeline_err("- labels:\n    bad-name:\n").contains("invalid label name"));
        assert!(pipeline_err("- static_labels: {}\n").contains("at least one"));
    }
}
