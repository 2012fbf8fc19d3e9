//! The property the parser's fuzz target checks, shared with the test that
//! replays the committed fuzz corpus.
//!
//! For any input bytes: parsing returns a tree or an error (never panics,
//! overflows the stack or runs away); a tree passes through the plan-time
//! checks; and its printed form parses back to the same tree. The printed
//! form may fail to parse, or parse to another tree, only where LogQL has no
//! syntax for what the tree holds, which Loki's printer shares: literals folded to NaN or infinity
//! (`0/0`), and label names that are not plain identifiers (Loki's lexer
//! turns stray characters into one-character identifiers, and Prometheus
//! quotes such names in matchers). `| json !` is such a case: the lone `!`
//! is a label to extract, printed as `json !="!"`, which reads back as a
//! `!=` filter.

use super::ast::{Expr, LabelFilter, LabelFormat, LogExpr, NamedMatcher, SampleExpr, Stage};
use super::{check_expr, parse_expr, parse_expr_bytes, parse_log_selector, parse_matchers};

/// Runs one fuzz input; panics if the property does not hold.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_log_selector(s, false);
        let _ = parse_matchers(s, false);
    }
    let Ok(expr) = parse_expr_bytes(data) else {
        return;
    };
    let _ = check_expr(&expr);
    let printed = expr.to_string();
    match parse_expr(&printed) {
        Ok(again) => assert!(
            again == expr || !printable(&expr),
            "printing changed the query\n input:   {:?}\n printed: {printed}\n again:   {again}",
            String::from_utf8_lossy(data)
        ),
        Err(e) => assert!(
            !printable(&expr),
            "the printed query does not parse\n input:   {:?}\n printed: {printed}\n error:   {e}",
            String::from_utf8_lossy(data)
        ),
    }
}

/// Whether LogQL can write everything the tree holds.
fn printable(e: &Expr) -> bool {
    match e {
        Expr::Log(l) => log_printable(l),
        Expr::Sample(s) => sample_printable(s),
    }
}

fn ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn matcher_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn sample_printable(s: &SampleExpr) -> bool {
    match s {
        SampleExpr::Literal(v) | SampleExpr::Vector(v) => v.is_finite(),
        SampleExpr::RangeAggregation(r) => {
            log_printable(&r.range.log)
                && r.grouping
                    .as_ref()
                    .is_none_or(|g| g.labels.iter().all(|l| ident(l)))
                && r.range
                    .unwrap
                    .as_ref()
                    .is_none_or(|u| ident(&u.label) && u.post_filters.iter().all(filter_printable))
        }
        SampleExpr::VectorAggregation(v) => {
            v.grouping.labels.iter().all(|l| ident(l)) && sample_printable(&v.expr)
        }
        SampleExpr::BinOp(b) => {
            b.matching
                .labels
                .iter()
                .chain(&b.matching.include)
                .all(|l| ident(l))
                && sample_printable(&b.lhs)
                && sample_printable(&b.rhs)
        }
        SampleExpr::LabelReplace(l) => sample_printable(&l.expr),
    }
}

fn log_printable(l: &LogExpr) -> bool {
    l.matchers.iter().all(|m| matcher_name(&m.name)) && l.stages.iter().all(stage_printable)
}

fn stage_printable(s: &Stage) -> bool {
    match s {
        Stage::Json { params } | Stage::Logfmt { params, .. } => {
            params.iter().all(|p| ident(&p.label))
        }
        Stage::LabelFilter(f) => filter_printable(f),
        Stage::LabelFormat(fmts) => fmts.iter().all(|f| match f {
            LabelFormat::Rename { dst, src } => ident(dst) && ident(src),
            LabelFormat::Template { dst, .. } => ident(dst),
        }),
        Stage::Drop(ns) | Stage::Keep(ns) => ns.iter().all(|n| match n {
            NamedMatcher::Name(n) => ident(n),
            NamedMatcher::Matcher(m) => matcher_name(&m.name),
        }),
        _ => true,
    }
}

fn filter_printable(f: &LabelFilter) -> bool {
    match f {
        LabelFilter::Matcher(m) => matcher_name(&m.name),
        LabelFilter::Ip { name, .. }
        | LabelFilter::Number { name, .. }
        | LabelFilter::Duration { name, .. }
        | LabelFilter::Bytes { name, .. } => ident(name),
        LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
            filter_printable(a) && filter_printable(b)
        }
    }
}
