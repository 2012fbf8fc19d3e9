//! The canonical text of a query (`Display` for the syntax tree).
//!
//! The output is what Loki's `String()` methods produce, which is also what
//! `/loki/api/v1/format_query` returns: matchers as `name="value"` joined by
//! `, `; strings in Go quoting; binary operations fully parenthesised;
//! ranges in Prometheus duration form and offsets in Go form
//! (`[5m] offset 1h0m0s`); label filter conjunctions as `( a , b )`; numbers
//! in Go's shortest form (`1e+06` for literals).
//!
//! Deliberate differences, both to keep printing from changing a query's
//! meaning (the printed text always parses back to the same tree, except
//! for literals folded to NaN or infinity, which LogQL cannot write):
//! * Bytes filters: Loki prints the humanized, rounded size (`2.6kB` for
//!   2560 bytes); we print that form only when it reads back exactly and
//!   the byte count otherwise (`2560B`).
//! * `ignoring () group_left`: Loki drops the modifier from the text; we
//!   keep it.
//! * `group_left`/`group_right` without labels before a parenthesised
//!   right-hand side prints as `group_left ()`; Loki's text would read the
//!   operand as the label list.
//! * Negative zero prints as `0` (Loki's `-0` reads back as a duration).
//! * `vector(x)`: Loki prints six decimals; when that rounds the value we
//!   print all its digits.
//! * Regex label filters are always printed with double quotes; Loki
//!   sometimes uses backticks.

use std::fmt::{self, Display, Formatter, Write as _};

use crate::matcher::{MatchOp, Matcher};

use super::ast::{
    BinOp, Cardinality, Expr, Grouping, LabelExtraction, LabelFilter, LabelFormat, LabelReplace,
    LineFilter, LineFilterValue, LogExpr, LogRange, NamedMatcher, RangeAggregation, SampleExpr,
    Stage, Unwrap, VectorAggregation,
};
use larch_go::bytes::format_bytes_exact;
use larch_go::quote::go_quote;

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Sample(s) => s.fmt(f),
        }
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_matcher(f, m)?;
        }
        f.write_char('}')?;
        for s in &self.stages {
            f.write_char(' ')?;
            s.fmt(f)?;
        }
        Ok(())
    }
}

/// Prometheus' matcher text: the name (quoted when it is not a classic
/// label name), the operator and the Go-quoted value.
pub(crate) fn write_matcher(f: &mut impl fmt::Write, m: &Matcher) -> fmt::Result {
    if !larch_go::labels::is_valid_label_name(&m.name) {
        f.write_str(&go_quote(&m.name))?;
    } else {
        f.write_str(&m.name)?;
    }
    f.write_str(match m.op {
        MatchOp::Eq => "=",
        MatchOp::NotEq => "!=",
        MatchOp::Re => "=~",
        MatchOp::NotRe => "!~",
    })?;
    f.write_str(&go_quote(&m.value))
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(l) => l.fmt(f),
            Stage::Json { params } => {
                f.write_str("| json")?;
                if !params.is_empty() {
                    f.write_char(' ')?;
                    write_extractions(f, params)?;
                }
                Ok(())
            }
            Stage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                f.write_str("| logfmt")?;
                if params.is_empty() {
                    if *strict {
                        f.write_str(" --strict")?;
                    }
                    if *keep_empty {
                        f.write_str(" --keep-empty")?;
                    }
                } else {
                    f.write_char(' ')?;
                    if *strict {
                        f.write_str("--strict ")?;
                    }
                    if *keep_empty {
                        f.write_str("--keep-empty ")?;
                    }
                    write_extractions(f, params)?;
                }
                Ok(())
            }
            Stage::Regexp(re) => write!(f, "| regexp {}", go_quote(re)),
            Stage::Pattern(p) => write!(f, "| pattern {}", go_quote(p)),
            Stage::Unpack => f.write_str("| unpack"),
            Stage::LabelFilter(l) => write!(f, "| {l}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", go_quote(t)),
            Stage::LabelFormat(fmts) => {
                f.write_str("| label_format ")?;
                for (i, lf) in fmts.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    match lf {
                        LabelFormat::Rename { dst, src } => write!(f, "{dst}={src}")?,
                        LabelFormat::Template { dst, template } => {
                            write!(f, "{dst}={}", go_quote(template))?
                        }
                    }
                }
                Ok(())
            }
            Stage::Decolorize => f.write_str("| decolorize"),
            Stage::Drop(names) => {
                f.write_str("| drop ")?;
                write_named_matchers(f, names)
            }
            Stage::Keep(names) => {
                f.write_str("| keep ")?;
                write_named_matchers(f, names)
            }
        }
    }
}

fn write_extractions(f: &mut Formatter<'_>, params: &[LabelExtraction]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        write!(f, "{}={}", p.label, go_quote(&p.expr))?;
    }
    Ok(())
}

fn write_named_matchers(f: &mut Formatter<'_>, names: &[NamedMatcher]) -> fmt::Result {
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        match n {
            NamedMatcher::Name(name) => f.write_str(name)?,
            NamedMatcher::Matcher(m) => write_matcher(f, m)?,
        }
    }
    Ok(())
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        for (i, v) in self.values.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " or " })?;
            match v {
                LineFilterValue::Text(t) => f.write_str(&go_quote(t))?,
                LineFilterValue::Ip(p) => write!(f, "ip({})", go_quote(p))?,
            }
        }
        Ok(())
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::Matcher(m) => write_matcher(f, m),
            LabelFilter::Ip { name, op, pattern } => {
                let op = if *op == super::ast::CmpOp::NotEq {
                    "!="
                } else {
                    "="
                };
                write!(f, "{name}{op}ip({})", go_quote(pattern))
            }
            LabelFilter::Number { name, op, value } => {
                write!(
                    f,
                    "{name}{}{}",
                    op.as_str(),
                    go_float_f(unsigned_zero(*value))
                )
            }
            LabelFilter::Duration { name, op, value } => {
                write!(f, "{name}{}{}", op.as_str(), value.fmt_go())
            }
            LabelFilter::Bytes { name, op, value } => {
                write!(f, "{name}{}{}", op.as_str(), format_bytes_exact(*value))
            }
            LabelFilter::And(l, r) => write!(f, "( {l} , {r} )"),
            LabelFilter::Or(l, r) => write!(f, "( {l} or {r} )"),
        }
    }
}

impl Display for SampleExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SampleExpr::RangeAggregation(r) => r.fmt(f),
            SampleExpr::VectorAggregation(v) => v.fmt(f),
            SampleExpr::BinOp(b) => b.fmt(f),
            SampleExpr::Literal(v) => f.write_str(&go_float_v(unsigned_zero(*v))),
            SampleExpr::Vector(v) => {
                // Loki prints six decimals; keep every digit when that
                // would round the value.
                let six = go_float_fixed6(*v);
                if super::parse_go_float(&six).is_ok_and(|x| x == *v) {
                    write!(f, "vector({six})")
                } else {
                    write!(f, "vector({})", go_float_f(*v))
                }
            }
            SampleExpr::LabelReplace(l) => l.fmt(f),
        }
    }
}

impl Display for RangeAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op.as_str())?;
        if let Some(p) = self.param {
            write!(f, "{},", go_float_f(p))?;
        }
        write!(f, "{})", self.range)?;
        if let Some(g) = &self.grouping {
            g.fmt(f)?;
        }
        Ok(())
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            u.fmt(f)?;
        }
        write!(f, "[{}]", self.range.fmt_prometheus())?;
        if !self.offset.is_zero() {
            write!(f, " offset {}", self.offset.fmt_go())?;
        }
        Ok(())
    }
}

impl Display for Unwrap {
    /// Printed with a leading space, as it follows the pipeline.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.conversion {
            Some(c) => write!(f, " | unwrap {}({})", c.as_str(), self.label)?,
            None => write!(f, " | unwrap {}", self.label)?,
        }
        for pf in &self.post_filters {
            write!(f, " | {pf}")?;
        }
        Ok(())
    }
}

impl Display for Grouping {
    /// Printed with a leading space: ` by (a,b)`, ` without ()`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kw = if self.without { "without" } else { "by" };
        write!(f, " {kw} ({})", self.labels.join(","))
    }
}

impl Display for VectorAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        if !self.grouping.is_singleton() {
            self.grouping.fmt(f)?;
        }
        f.write_char('(')?;
        if let Some(k) = self.param {
            write!(f, "{k},")?;
        }
        write!(f, "{})", self.expr)
    }
}

impl Display for BinOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut op = self.op.as_str().to_string();
        if self.return_bool {
            op.push_str(" bool");
        }
        let m = &self.matching;
        let mut group = match m.card {
            Cardinality::OneToOne => String::new(),
            Cardinality::ManyToOne => "group_left".to_string(),
            Cardinality::OneToMany => "group_right".to_string(),
        };
        if !m.include.is_empty() {
            let _ = write!(group, " ({})", m.include.join(","));
        } else if m.card != Cardinality::OneToOne && matches!(*self.rhs, SampleExpr::BinOp(_)) {
            // `group_left (` would read the parenthesised right-hand side as
            // the include list.
            group.push_str(" ()");
        }
        if m.on || !m.labels.is_empty() || m.card != Cardinality::OneToOne {
            let kw = if m.on { "on" } else { "ignoring" };
            let _ = write!(op, " {kw} ({}) {group}", m.labels.join(","));
        }
        write!(f, "({} {op} {})", self.lhs, self.rhs)
    }
}

impl Display for LabelReplace {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "label_replace({},{},{},{},{})",
            self.expr,
            go_quote(&self.dst),
            go_quote(&self.replacement),
            go_quote(&self.src),
            go_quote(self.regex.as_str())
        )
    }
}

/// Negative zero prints as `0`: `-0` would read back as a duration.
fn unsigned_zero(v: f64) -> f64 {
    if v == 0.0 { 0.0 } else { v }
}

/// Go's `fmt.Sprint(float64)` (`%v`): `1.5`, `100000`, `1e+06`, `NaN`.
pub(crate) use larch_go::floatfmt::format_float_g as go_float_v;

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an
/// exponent.
pub(crate) fn go_float_f(v: f64) -> String {
    larch_go::floatfmt::format_float_f(v, None)
}

/// Go's `fmt.Sprintf("%f", v)`: six decimals.
pub(crate) fn go_float_fixed6(v: f64) -> String {
    larch_go::floatfmt::format_float_f(v, Some(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats() {
        assert_eq!(go_float_v(1.6), "1.6");
        assert_eq!(go_float_v(0.0), "0");
        assert_eq!(go_float_v(-0.0), "-0");
        assert_eq!(go_float_v(100000.0), "100000");
        assert_eq!(go_float_v(1e6), "1e+06");
        assert_eq!(go_float_v(1234567.0), "1.234567e+06");
        assert_eq!(go_float_v(0.0001), "0.0001");
        assert_eq!(go_float_v(0.00001), "1e-05");
        assert_eq!(go_float_v(-2.5e-300), "-2.5e-300");
        assert_eq!(go_float_v(f64::NAN), "NaN");
        assert_eq!(go_float_v(f64::NEG_INFINITY), "-Inf");
        assert_eq!(go_float_f(1e21), "1000000000000000000000");
        assert_eq!(go_float_f(5.01), "5.01");
        assert_eq!(go_float_fixed6(1.0), "1.000000");
    }
}
