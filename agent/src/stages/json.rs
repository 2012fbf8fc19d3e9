//! The `json` stage: extracts values from a JSON line (or extracted value)
//! by path.
//!
//! Paths are the part of JMESPath that log pipelines use: field names
//! (`level`), nested fields (`http.status`), quoted names
//! (`"user-agent"`, `kubernetes."pod name"`) and array indexes (`tags[0]`,
//! `tags[-1]`). Anything else is refused when the configuration is loaded,
//! never ignored. Strings are extracted as they are; numbers, booleans,
//! objects and arrays as JSON text; `null` and missing paths extract
//! nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BuildCtx, Entry, FileState, Stage};
use crate::metrics::Counter;

/// Settings of the `json` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// Extracted name → path (empty: the name itself).
    pub expressions: BTreeMap<String, Option<String>>,
    /// Extracted value to parse instead of the line.
    #[serde(default)]
    pub source: Option<String>,
    /// Drop entries that are not valid JSON. Default false.
    #[serde(default)]
    pub drop_malformed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(i64),
}

/// Compiles a path expression.
fn compile(expr: &str) -> Result<Vec<Step>, String> {
    let b = expr.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    let bad = |why: &str| {
        format!(
            "unsupported expression {expr:?}: {why} (use fields, \"quoted fields\", `.` and [index])"
        )
    };
    let mut expect_field = true;
    while i < b.len() {
        match b[i] {
            b'"' => {
                if !expect_field {
                    return Err(bad("expected `.` or `[`"));
                }
                let mut j = i + 1;
                let mut name = String::new();
                loop {
                    match b.get(j) {
                        None => return Err(bad("unterminated quoted field")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let c = expr[j + 1..]
                                .chars()
                                .next()
                                .ok_or_else(|| bad("bad escape"))?;
                            name.push(c);
                            j += 1 + c.len_utf8();
                        }
                        Some(_) => {
                            let ch = expr[j..]
                                .chars()
                                .next()
                                .ok_or_else(|| bad("bad character"))?;
                            name.push(ch);
                            j += ch.len_utf8();
                        }
                    }
                }
                steps.push(Step::Field(name));
                i = j + 1;
                expect_field = false;
            }
            b'[' => {
                let close = expr[i..].find(']').ok_or_else(|| bad("unterminated ["))? + i;
                let n: i64 = expr[i + 1..close]
                    .trim()
                    .parse()
                    .map_err(|_| bad("index must be an integer"))?;
                steps.push(Step::Index(n));
                i = close + 1;
                expect_field = false;
            }
            b'.' => {
                if expect_field {
                    return Err(bad("unexpected `.`"));
                }
                expect_field = true;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                if !expect_field {
                    return Err(bad("expected `.` or `[`"));
                }
                let end = expr[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map(|n| n + i)
                    .unwrap_or(b.len());
                steps.push(Step::Field(expr[i..end].to_string()));
                i = end;
                expect_field = false;
            }
            _ => return Err(bad("unexpected character")),
        }
    }
    if steps.is_empty() || expect_field {
        return Err(bad("empty or ends with `.`"));
    }
    Ok(steps)
}

fn lookup<'a>(mut v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for s in steps {
        v = match (s, v) {
            (Step::Field(f), Value::Object(m)) => m.get(f)?,
            (Step::Index(i), Value::Array(a)) => {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                a.get(usize::try_from(idx).ok()?)?
            }
            _ => return None,
        };
    }
    Some(v)
}

/// Writes a JSON value as an extracted string.
pub(crate) fn value_text(v: &Value, out: &mut String) -> bool {
    out.clear();
    match v {
        Value::Null => return false,
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        other => out.push_str(&other.to_string()),
    }
    true
}

pub(crate) struct JsonStage {
    exprs: Vec<(String, Vec<Step>)>,
    source: Option<String>,
    drop_malformed: bool,
    dropped: Counter,
    scratch: String,
}

impl JsonStage {
    pub fn new(c: &JsonConfig, ctx: &BuildCtx<'_>) -> Result<Self, String> {
        if c.expressions.is_empty() {
            return Err("expressions must not be empty".into());
        }
        let mut exprs = Vec::new();
        for (name, path) in &c.expressions {
            let path = path.as_deref().filter(|p| !p.is_empty()).unwrap_or(name);
            exprs.push((name.clone(), compile(path)?));
        }
        Ok(JsonStage {
            exprs,
            source: c.source.clone(),
            drop_malformed: c.drop_malformed,
            dropped: ctx.dropped.with(&["malformed_json"]),
            scratch: String::new(),
        })
    }
}

impl Stage for JsonStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let Some(src) = e.source(self.source.as_deref()) else {
            return next(e);
        };
        let v: Value = match serde_json::from_str(src) {
            Ok(v) => v,
            Err(_) => {
                if self.drop_malformed {
                    self.dropped.inc();
                    return;
                }
                return next(e);
            }
        };
        for (name, steps) in &self.exprs {
            if let Some(found) = lookup(&v, steps)
                && value_text(found, &mut self.scratch)
            {
                e.extracted.set(name, &self.scratch);
            }
        }
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn paths_compile() {
        assert_eq!(
            compile("a.b").unwrap(),
            vec![Step::Field("a".into()), Step::Field("b".into())]
        );
        assert_eq!(
            compile(r#"k."x-y"[1]"#).unwrap(),
            vec![
                Step::Field("k".into()),
                Step::Field("x-y".into()),
                Step::Index(1)
            ]
        );
        assert!(compile("a.").is_err());
        assert!(compile("a..b").is_err());
        assert!(
            compile("keys(@)")
                .unwrap_err()
                .contains("unsupported expression")
        );
        assert!(compile("a[x]").is_err());
    }

    #[test]
    fn extracts_values() {
        let (mut p, _) = pipeline(
            r#"
- json:
    expressions:
      level:
      status: http.status
      first: tags[0]
      last: tags[-1]
      ua: 'http."user-agent"'
      obj: http
      nothing: missing.path
"#,
        );
        let out = run_lines(
            &mut p,
            vec![entry(
                r#"{"level":"info","http":{"status":200,"user-agent":"curl"},"tags":["a","b"]}"#,
                &[],
            )],
        );
        let x = &out[0].extracted;
        assert_eq!(x.get("level"), Some("info"));
        assert_eq!(x.get("status"), Some("200"));
        assert_eq!(x.get("first"), Some("a"));
        assert_eq!(x.get("last"), Some("b"));
        assert_eq!(x.get("ua"), Some("curl"));
        assert_eq!(x.get("obj"), Some(r#"{"status":200,"user-agent":"curl"}"#));
        assert_eq!(x.get("nothing"), None);
    }

    #[test]
    fn malformed_lines_pass_or_drop() {
        let (mut p, _) = pipeline("- json:\n    expressions: {a: }\n");
        assert_eq!(run_lines(&mut p, vec![entry("not json", &[])]).len(), 1);
        let (mut p, reg) = pipeline("- json:\n    expressions: {a: }\n    drop_malformed: true\n");
        assert_eq!(run_lines(&mut p, vec![entry("not json", &[])]).len(), 0);
        assert!(
            reg.render()
                .contains(r#"larch_agent_dropped_entries_total{reason="malformed_json"} 1"#)
        );
        assert!(
            pipeline_err("- json:\n    expressions: {a: 'b['}\n")
                .contains("pipeline stage 0 (json)")
        );
    }

    proptest::proptest! {
        #[test]
        fn path_compiler_never_panics(s in "\\PC{0,30}") {
            let _ = compile(&s);
        }
    }
}
