//! From the LogQL syntax tree ([`crate::logql`]) to executable stages.
//!
//! [`compile_log`] splits a log pipeline in two: the line filters that can
//! run before anything else go to the [`BlockMatcher`] (which searches
//! whole blocks), the rest becomes a [`Pipeline`]. A line filter may move
//! ahead of every stage that does not rewrite the line (parsers, label
//! filters, `label_format`, `drop`, `keep`): it reads only the line, and
//! filters commute, so the result is the same, as in Loki's
//! `reorderStages`. Stages that rewrite the line (`line_format`,
//! `unpack`, `decolorize`) end the reordering.

use super::block::BlockMatcher;
use super::format::LabelFmtSpec;
use super::label_filter::{CmpOp, LabelFilterError, LabelFilterSpec};
use super::line_filter::{LineFilterArg, LineFilterOp, LineFilterSpec};
use super::stages::{NameOrMatcher, Pipeline, PipelineError, StageSpec};
use super::unwrap::{Conversion, Unwrap, UnwrapSpec};
use crate::logql;

/// A compiled log query pipeline.
#[derive(Clone, Debug)]
pub struct CompiledLog {
    /// The leading line filters, for whole blocks.
    pub line_filter: BlockMatcher,
    /// The remaining stages, per entry.
    pub pipeline: Pipeline,
}

fn line_filter(f: &logql::LineFilter) -> LineFilterSpec {
    LineFilterSpec {
        op: match f.op {
            logql::LineFilterOp::Contains => LineFilterOp::Contains,
            logql::LineFilterOp::NotContains => LineFilterOp::NotContains,
            logql::LineFilterOp::Regex => LineFilterOp::Regex,
            logql::LineFilterOp::NotRegex => LineFilterOp::NotRegex,
            logql::LineFilterOp::Pattern => LineFilterOp::Pattern,
            logql::LineFilterOp::NotPattern => LineFilterOp::NotPattern,
        },
        args: f
            .values
            .iter()
            .map(|v| match v {
                logql::LineFilterValue::Text(t) => LineFilterArg::Text(t.clone()),
                logql::LineFilterValue::Ip(p) => LineFilterArg::Ip(p.clone()),
            })
            .collect(),
    }
}

fn cmp(op: logql::CmpOp) -> CmpOp {
    match op {
        logql::CmpOp::Eq => CmpOp::Eq,
        logql::CmpOp::NotEq => CmpOp::Ne,
        logql::CmpOp::Gt => CmpOp::Gt,
        logql::CmpOp::Ge => CmpOp::Ge,
        logql::CmpOp::Lt => CmpOp::Lt,
        logql::CmpOp::Le => CmpOp::Le,
    }
}

/// The spec of a label filter expression.
pub fn label_filter(f: &logql::LabelFilter) -> LabelFilterSpec {
    match f {
        logql::LabelFilter::Matcher(m) => LabelFilterSpec::String {
            name: m.name.clone(),
            op: m.op,
            value: m.value.clone(),
        },
        logql::LabelFilter::Ip { name, op, pattern } => LabelFilterSpec::Ip {
            name: name.clone(),
            negated: *op == logql::CmpOp::NotEq,
            pattern: pattern.clone(),
        },
        logql::LabelFilter::Number { name, op, value } => LabelFilterSpec::Number {
            name: name.clone(),
            op: cmp(*op),
            value: *value,
        },
        logql::LabelFilter::Duration { name, op, value } => LabelFilterSpec::Duration {
            name: name.clone(),
            op: cmp(*op),
            value_ns: value.as_nanos(),
        },
        logql::LabelFilter::Bytes { name, op, value } => LabelFilterSpec::Bytes {
            name: name.clone(),
            op: cmp(*op),
            value: *value,
        },
        logql::LabelFilter::And(a, b) => {
            LabelFilterSpec::And(Box::new(label_filter(a)), Box::new(label_filter(b)))
        }
        logql::LabelFilter::Or(a, b) => {
            LabelFilterSpec::Or(Box::new(label_filter(a)), Box::new(label_filter(b)))
        }
    }
}

fn params(p: &[logql::LabelExtraction]) -> Vec<(String, String)> {
    p.iter()
        .map(|e| (e.label.clone(), e.expr.clone()))
        .collect()
}

fn names(v: &[logql::NamedMatcher]) -> Vec<NameOrMatcher> {
    v.iter()
        .map(|n| match n {
            logql::NamedMatcher::Name(s) => NameOrMatcher::Name(s.clone()),
            logql::NamedMatcher::Matcher(m) => NameOrMatcher::Matcher(m.clone()),
        })
        .collect()
}

/// Splits stages into leading line filters and the rest (see the module
/// docs).
pub fn stage_specs(stages: &[logql::Stage]) -> (Vec<LineFilterSpec>, Vec<StageSpec>) {
    let mut leading = Vec::new();
    let mut rest = Vec::new();
    let mut rewritten = false;
    for s in stages {
        let spec = match s {
            logql::Stage::LineFilter(f) if !rewritten => {
                leading.push(line_filter(f));
                continue;
            }
            logql::Stage::LineFilter(f) => StageSpec::LineFilter(line_filter(f)),
            logql::Stage::Json { params: p } => StageSpec::Json { params: params(p) },
            logql::Stage::Logfmt {
                strict,
                keep_empty,
                params: p,
            } => StageSpec::Logfmt {
                strict: *strict,
                keep_empty: *keep_empty,
                params: params(p),
            },
            logql::Stage::Regexp(r) => StageSpec::Regexp(r.clone()),
            logql::Stage::Pattern(p) => StageSpec::Pattern(p.clone()),
            logql::Stage::Unpack => {
                rewritten = true;
                StageSpec::Unpack
            }
            logql::Stage::LabelFilter(f) => StageSpec::LabelFilter(label_filter(f)),
            logql::Stage::LineFormat(t) => {
                rewritten = true;
                StageSpec::LineFormat(t.clone())
            }
            logql::Stage::LabelFormat(v) => StageSpec::LabelFormat(
                v.iter()
                    .map(|f| match f {
                        logql::LabelFormat::Rename { dst, src } => LabelFmtSpec::Rename {
                            dst: dst.clone(),
                            src: src.clone(),
                        },
                        logql::LabelFormat::Template { dst, template } => LabelFmtSpec::Template {
                            dst: dst.clone(),
                            template: template.clone(),
                        },
                    })
                    .collect(),
            ),
            logql::Stage::Decolorize => {
                rewritten = true;
                StageSpec::Decolorize
            }
            logql::Stage::Drop(v) => StageSpec::Drop(names(v)),
            logql::Stage::Keep(v) => StageSpec::Keep(names(v)),
        };
        rest.push(spec);
    }
    (leading, rest)
}

/// Compiles a log query's pipeline.
pub fn compile_log(expr: &logql::LogExpr) -> Result<CompiledLog, PipelineError> {
    let (leading, rest) = stage_specs(&expr.stages);
    Ok(CompiledLog {
        line_filter: BlockMatcher::new(&leading)?,
        pipeline: Pipeline::new(&rest)?,
    })
}

/// Compiles an `unwrap`.
pub fn compile_unwrap(u: &logql::Unwrap) -> Result<Unwrap, LabelFilterError> {
    Unwrap::new(&UnwrapSpec {
        label: u.label.clone(),
        conversion: match u.conversion {
            None => Conversion::Float,
            Some(logql::UnwrapConversion::Bytes) => Conversion::Bytes,
            Some(logql::UnwrapConversion::Duration | logql::UnwrapConversion::DurationSeconds) => {
                Conversion::Duration
            }
        },
        post_filters: u.post_filters.iter().map(label_filter).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::labels::LabelSet;
    use crate::matcher::{MatchOp, Matcher};

    #[test]
    fn line_filters_move_ahead_of_parsers_but_not_of_rewrites() {
        let lf = |t: &str| {
            logql::Stage::LineFilter(logql::LineFilter {
                op: logql::LineFilterOp::Contains,
                values: vec![logql::LineFilterValue::Text(t.into())],
            })
        };
        let stages = vec![
            lf("a"),
            logql::Stage::Logfmt {
                strict: false,
                keep_empty: false,
                params: vec![],
            },
            lf("b"),
            logql::Stage::LineFormat("{{.x}}".into()),
            lf("c"),
        ];
        let (lead, rest) = stage_specs(&stages);
        assert_eq!(lead.len(), 2);
        assert_eq!(rest.len(), 3);
        let c = compile_log(&logql::LogExpr {
            matchers: vec![Matcher::new("app", MatchOp::Eq, "a").unwrap()],
            stages,
        })
        .unwrap();
        assert!(c.line_filter.matches_line(b"a b x=c"));
        let mut sp = c.pipeline.for_stream(Arc::new(LabelSet::new()));
        assert!(sp.process(0, b"a b x=c", &[]).is_some());
        assert!(sp.process(0, b"a b x=d", &[]).is_none());
    }

    #[test]
    fn unwrap_compiles() {
        let u = compile_unwrap(&logql::Unwrap {
            label: "d".into(),
            conversion: Some(logql::UnwrapConversion::DurationSeconds),
            post_filters: vec![logql::LabelFilter::Duration {
                name: "d".into(),
                op: logql::CmpOp::Gt,
                value: logql::Duration::from_secs(1),
            }],
        })
        .unwrap();
        let mut lb =
            crate::pipeline::LabelsBuilder::new(Arc::new(LabelSet::from_pairs([("d", "2s")])));
        assert_eq!(u.extract(&mut lb), Some(2.0));
    }
}
