//! The `template` stage: rewrites an extracted value with a Go template,
//! as Promtail's does.
//!
//! The template is Go `text/template` with Promtail's functions (its own
//! `ToLower`, `ToUpper`, `Replace`, `Trim*`, `regexReplaceAll*`, and
//! Sprig's), from `larch_go::template` with [`Dialect::PROMTAIL`]. The data
//! is the extracted values by name, `.Value` (the value of `source`, when
//! it exists) and `.Entry` (the line); a missing name prints `<no value>`,
//! as in Go. Unknown functions and syntax errors are configuration errors.
//!
//! As in Promtail, the result replaces the extracted value `source`; an
//! empty result removes it; a template that fails for an entry (a
//! function given a missing value, a bad regex) leaves it as it was.

use larch_go::template::{Context, Dialect, Template};
use serde::{Deserialize, Serialize};

use super::{Entry, FileState, Stage};

/// Settings of the `template` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Extracted value read as `.Value` and replaced by the result.
    pub source: String,
    /// The template.
    pub template: String,
}

/// What a template reads for one entry.
struct Data<'a> {
    source: &'a str,
    entry: &'a Entry,
}

impl Context for Data<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        match name {
            "Value" => self.entry.extracted.get(self.source),
            "Entry" => Some(&self.entry.line),
            _ => self.entry.extracted.get(name),
        }
    }

    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        let mut all: Vec<(&str, &str)> = self
            .entry
            .extracted
            .iter()
            .filter(|(k, _)| *k != "Value" && *k != "Entry")
            .collect();
        all.push(("Entry", &self.entry.line));
        if let Some(v) = self.entry.extracted.get(self.source) {
            all.push(("Value", v));
        }
        all.sort_unstable();
        for (k, v) in all {
            f(k, v);
        }
    }

    fn line(&self) -> &[u8] {
        self.entry.line.as_bytes()
    }

    fn timestamp(&self) -> i64 {
        self.entry.ts
    }
}

pub(crate) struct TemplateStage {
    source: String,
    template: Template,
    out: Vec<u8>,
}

impl TemplateStage {
    pub fn new(c: &TemplateConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("source must not be empty".into());
        }
        let template = Template::parse("pipeline_template", &c.template, &Dialect::PROMTAIL)
            .map_err(|e| e.to_string())?;
        Ok(TemplateStage {
            source: c.source.clone(),
            template,
            out: Vec::new(),
        })
    }
}

impl Stage for TemplateStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        self.out.clear();
        let data = Data {
            source: &self.source,
            entry: e,
        };
        if self.template.execute(&data, &mut self.out).is_ok() {
            if self.out.is_empty() {
                e.extracted.remove(&self.source);
            } else {
                let v = String::from_utf8_lossy(&self.out);
                e.extracted.set(&self.source, &v);
            }
        }
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn render(t: &str, value: Option<&str>, extracted: &[(&str, &str)]) -> Option<String> {
        let stage = TemplateStage::new(&TemplateConfig {
            source: "src".into(),
            template: t.into(),
        })
        .unwrap();
        let mut e = entry("the line", &[]);
        if let Some(v) = value {
            e.extracted.set("src", v);
        }
        for (k, v) in extracted {
            e.extracted.set(k, v);
        }
        let mut out = Vec::new();
        let data = Data {
            source: "src",
            entry: &e,
        };
        stage
            .template
            .execute(&data, &mut out)
            .ok()
            .map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn renders_promtail_templates() {
        let r = |t: &str, v: &str| render(t, Some(v), &[("app", "cart")]).unwrap();
        assert_eq!(r("{{ .Value | ToUpper }}", "warn"), "WARN");
        assert_eq!(r("{{ ToLower .Value }}!", "WARN"), "warn!");
        assert_eq!(r(r#"{{ Replace .Value "a" "o" -1 }}"#, "banana"), "bonono");
        assert_eq!(r(r#"{{ .Value | replace "a" "o" }}"#, "banana"), "bonono");
        assert_eq!(
            r(r#"{{ regexReplaceAll "(\\d+)" .Value "<$1>" }}"#, "a1b22"),
            "a<1>b<22>"
        );
        assert_eq!(
            r(
                r#"{{ if eq .Value "WARN" }}warning{{ else if eq .Value "ERR" }}error{{ else }}other{{ end }}"#,
                "ERR"
            ),
            "error"
        );
        assert_eq!(
            r("{{ .app }}/{{ .Value }} {{ .Entry }}", "v"),
            "cart/v the line"
        );
        assert_eq!(r("a  {{- .Value -}}  b", "X"), "aXb");
        assert_eq!(r(r#"{{ .missing | default "none" }}"#, "v"), "none");
        assert_eq!(r("{{ .missing }}", "v"), "<no value>");
        assert_eq!(r(r#"{{ quote .Value }}"#, "a\"b"), r#""a\"b""#);
        assert_eq!(
            r("{{ substr 1 3 .Value }} {{ trunc 2 .Value }}", "hello"),
            "el he"
        );
        // Go's \d is ASCII.
        assert_eq!(r(r#"{{ regexReplaceAll "\\d" .Value "D" }}"#, "1١"), "D١");
    }

    #[test]
    fn template_errors_are_config_errors() {
        let err = |t: &str| {
            TemplateStage::new(&TemplateConfig {
                source: "s".into(),
                template: t.into(),
            })
            .err()
            .unwrap()
        };
        assert!(err("{{ nosuch .Value }}").contains("not defined"));
        assert!(err("{{ if .Value }}x").contains("unexpected EOF"));
        assert!(err("{{ .Value ").contains("unclosed action"));
        assert!(err("{{ end }}").contains("unexpected {{end}}"));
        // Loki's own functions are not Promtail's.
        assert!(err("{{ __line__ }}").contains("not defined"));
    }

    #[test]
    fn stage_writes_back_to_source() {
        let (mut p, _) = pipeline(
            "- regex:\n    expression: '(?P<level>\\w+)'\n- template:\n    source: level\n    template: '{{ ToUpper .Value }}'\n- labels:\n    level:\n",
        );
        let out = run_lines(&mut p, vec![entry("warn x", &[])]);
        assert_eq!(out[0].labels.get("level"), Some("WARN"));
    }

    #[test]
    fn failing_or_empty_results_follow_promtail() {
        let (mut p, _) = pipeline(
            "- regex:\n    expression: '(?P<level>\\w+) (?P<other>\\w+)'\n- template:\n    source: level\n    template: '{{ ToUpper .nothing }}'\n- template:\n    source: other\n    template: '{{ if eq .Value \"drop\" }}{{ end }}'\n- labels:\n    level:\n    other:\n",
        );
        let out = run_lines(&mut p, vec![entry("warn drop", &[])]);
        // A failing template leaves the value; an empty result removes it.
        assert_eq!(out[0].labels.get("level"), Some("warn"));
        assert_eq!(out[0].labels.get("other"), None);
        assert_eq!(render("{{ ToUpper .Value }}", None, &[]), None);
    }

    proptest::proptest! {
        #[test]
        fn parser_and_renderer_never_panic(t in r#"[a-zA-Z {}|."()$:=-]{0,40}"#, v in "\\PC{0,20}") {
            if let Ok(stage) = TemplateStage::new(&TemplateConfig { source: "s".into(), template: t }) {
                let mut e = entry("line", &[]);
                e.extracted.set("s", &v);
                let mut out = Vec::new();
                let _ = stage.template.execute(&Data { source: "s", entry: &e }, &mut out);
            }
        }
    }
}
