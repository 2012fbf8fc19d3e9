//! `line_format` and `label_format`.
//!
//! `line_format "tmpl"` replaces the line with the template's output over
//! the entry's labels; `{{.name}}` alone is a plain lookup. `label_format
//! dst=src` renames (the value moves, `src` is removed) and `dst="tmpl"`
//! sets `dst` from a template (the source labels stay); all templates of
//! one `label_format` see the labels as they were before the stage. A
//! failing template keeps the entry, leaves the line or label unchanged
//! and sets `__error__="TemplateFormatErr"`.

use super::labels_builder::{ERROR_LABEL, LabelCategory, LabelsBuilder};
use larch_go::template::{Context, Dialect, Template, TemplateError};

/// One `label_format` assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelFmtSpec {
    /// `dst=src`.
    Rename {
        /// New name.
        dst: String,
        /// Label to move.
        src: String,
    },
    /// `dst="{{…}}"`.
    Template {
        /// Label to set.
        dst: String,
        /// Template source.
        template: String,
    },
}

const TEMPLATE_FORMAT_ERR: &str = "TemplateFormatErr";

struct BuilderCtx<'a> {
    lb: &'a LabelsBuilder,
    line: &'a [u8],
    ts: i64,
}

impl Context for BuilderCtx<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.lb.get(name)
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        let mut v = Vec::new();
        self.lb.sorted(&mut v);
        for (k, x) in v {
            f(k, x);
        }
    }
    fn line(&self) -> &[u8] {
        self.line
    }
    fn timestamp(&self) -> i64 {
        self.ts
    }
}

struct SnapshotCtx<'a> {
    labels: &'a [(String, String)],
    line: &'a [u8],
    ts: i64,
}

impl Context for SnapshotCtx<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, x) in self.labels {
            f(k, x);
        }
    }
    fn line(&self) -> &[u8] {
        self.line
    }
    fn timestamp(&self) -> i64 {
        self.ts
    }
}

/// A compiled `line_format`.
#[derive(Clone, Debug)]
pub struct LineFormatter {
    template: Template,
    simple: Option<String>,
}

impl LineFormatter {
    /// Parses the template.
    pub fn new(src: &str) -> Result<LineFormatter, TemplateError> {
        let template = Template::parse("line", src, &Dialect::LOKI)?;
        let simple = template.simple_field().map(str::to_string);
        Ok(LineFormatter { template, simple })
    }

    /// Writes the new line into `out`; returns whether the line was
    /// replaced (false on a template error).
    pub fn process(&self, ts: i64, line: &[u8], lb: &mut LabelsBuilder, out: &mut Vec<u8>) -> bool {
        out.clear();
        if let Some(name) = &self.simple {
            if let Some(v) = lb.get(name) {
                out.extend_from_slice(v.as_bytes());
            }
            return true;
        }
        let r = self.template.execute(&BuilderCtx { lb, line, ts }, out);
        match r {
            Ok(()) => true,
            Err(e) => {
                lb.set_err(TEMPLATE_FORMAT_ERR);
                lb.set_err_details(&e.to_string());
                false
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Fmt {
    Rename(String, String),
    Template(String, Template),
}

/// A compiled `label_format`.
#[derive(Clone, Debug)]
pub struct LabelsFormatter {
    fmts: Vec<Fmt>,
}

impl LabelsFormatter {
    /// Compiles the assignments; a name may appear once, and `__error__`
    /// cannot be set.
    pub fn new(specs: &[LabelFmtSpec]) -> Result<LabelsFormatter, String> {
        let mut seen: Vec<&str> = Vec::new();
        let mut fmts = Vec::new();
        for s in specs {
            let dst = match s {
                LabelFmtSpec::Rename { dst, .. } | LabelFmtSpec::Template { dst, .. } => dst,
            };
            if dst == ERROR_LABEL {
                return Err(format!("{dst} cannot be formatted"));
            }
            if seen.contains(&dst.as_str()) {
                return Err(format!(
                    "multiple label name '{dst}' not allowed in a single format operation"
                ));
            }
            seen.push(dst);
            fmts.push(match s {
                LabelFmtSpec::Rename { dst, src } => Fmt::Rename(dst.clone(), src.clone()),
                LabelFmtSpec::Template { dst, template } => Fmt::Template(
                    dst.clone(),
                    Template::parse("label", template, &Dialect::LOKI)
                        .map_err(|e| format!("invalid template for label '{dst}': {e}"))?,
                ),
            });
        }
        Ok(LabelsFormatter { fmts })
    }

    /// Applies the assignments.
    pub fn process(&self, ts: i64, line: &[u8], lb: &mut LabelsBuilder) {
        let mut snapshot: Option<Vec<(String, String)>> = None;
        let mut buf = Vec::new();
        for f in &self.fmts {
            match f {
                Fmt::Rename(dst, src) => {
                    if let Some(v) = lb.get(src).map(str::to_string) {
                        lb.set(LabelCategory::Parsed, dst, &v);
                        lb.del(src);
                    }
                }
                Fmt::Template(dst, t) => {
                    let labels = snapshot.get_or_insert_with(|| {
                        let mut v = Vec::new();
                        lb.sorted(&mut v);
                        v.into_iter()
                            .map(|(k, x)| (k.to_string(), x.to_string()))
                            .collect()
                    });
                    buf.clear();
                    let ctx = SnapshotCtx { labels, line, ts };
                    match t.execute(&ctx, &mut buf) {
                        Ok(()) => {
                            let v = String::from_utf8_lossy(&buf).into_owned();
                            lb.set(LabelCategory::Parsed, dst, &v);
                        }
                        Err(e) => {
                            lb.set_err(TEMPLATE_FORMAT_ERR);
                            lb.set_err_details(&e.to_string());
                        }
                    }
                }
            }
        }
    }
}
