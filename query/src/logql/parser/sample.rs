//! Metric queries: operands, aggregations, binary operations.

use super::super::ast::{
    BinOp, BinOpKind, Cardinality, Grouping, LabelReplace, LogExpr, LogRange, RangeAggregation,
    RangeOp, ReplaceRegex, SampleExpr, VectorAggregation, VectorMatching, VectorOp,
};
use super::super::error::ParseError;
use super::super::lexer::{Func, Kw, Tok};
use super::super::parse_go_float;
use super::super::print::go_float_fixed6;
use super::{MAX_DEPTH, Operand, Parser, Sample, check_matchers};
use larch_go::quote::go_quote;

impl Parser<'_> {
    /// An expression whose binary operators bind at least as tightly as
    /// `min_prec` (precedence climbing).
    pub(super) fn expr(&mut self, min_prec: u8) -> Result<Operand, ParseError> {
        self.enter()?;
        let mut lhs = self.operand()?;
        while let Some(op) = binop(&self.tok.tok) {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.bump()?;
            let (return_bool, matching) = self.bin_modifiers()?;
            let next_min = if op == BinOpKind::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = self.binop(op, return_bool, matching, lhs, rhs)?;
        }
        self.leave();
        Ok(lhs)
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let f = match self.tok.tok {
            Tok::Number(_) | Tok::Kw(Kw::Add | Kw::Sub) => {
                let (expr, err) = match self.number_literal()? {
                    Ok(v) => (SampleExpr::Literal(v), None),
                    Err(m) => (SampleExpr::Literal(0.0), Some(ParseError::validation(m))),
                };
                return Ok(Operand::Sample(Box::new(Sample {
                    expr,
                    err,
                    depth: 1,
                })));
            }
            Tok::Kw(Kw::LBrace) => {
                let matchers = self.selector()?;
                let mut stages = Vec::new();
                self.stages(&mut stages, false)?;
                return Ok(Operand::Log(Box::new(LogExpr { matchers, stages })));
            }
            Tok::Kw(Kw::LParen) => {
                self.bump()?;
                let e = self.expr(0)?;
                self.expect_kw(Kw::RParen, &[])?;
                return Ok(e);
            }
            Tok::Func(f) => f,
            _ => return Err(self.unexpected(&[])),
        };
        if let Some(op) = range_op(f) {
            return self.range_aggregation(op);
        }
        if let Some(op) = vector_op(f) {
            return self.vector_aggregation(op);
        }
        match f {
            Func::LabelReplace => self.label_replace(),
            Func::Vector => self.vector(),
            _ => Err(self.unexpected(&[])),
        }
    }

    /// The operand inside a call, which must be a metric query.
    fn sample_arg(&mut self) -> Result<Sample, ParseError> {
        match self.expr(0)? {
            Operand::Sample(s) => Ok(*s),
            // Loki's grammar fails at the token after the log query.
            Operand::Log(_) => Err(self.unexpected(&[])),
        }
    }

    fn range_aggregation(&mut self, op: RangeOp) -> Result<Operand, ParseError> {
        self.bump()?;
        self.expect_kw(Kw::LParen, &["("])?;
        let param = if let Tok::Number(_) = self.tok.tok {
            let text = self.number_text(&[])?;
            self.expect_kw(Kw::Comma, &[","])?;
            Some(text)
        } else {
            None
        };
        let expected: &[&str] = if param.is_some() {
            &["{", "("]
        } else {
            &["NUMBER", "{", "("]
        };
        let range = self.log_range(expected)?;
        self.expect_kw(Kw::RParen, &[")"])?;
        let grouping = self.opt_grouping()?;
        let (value, err) =
            range_aggregation_checks(op, param.as_deref(), &range, grouping.as_ref());
        let err = err.or_else(|| check_matchers(&range.log.matchers).err());
        Ok(Operand::Sample(Box::new(Sample {
            expr: SampleExpr::RangeAggregation(RangeAggregation {
                op,
                param: value,
                range,
                grouping,
            }),
            err,
            depth: 1,
        })))
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<Operand, ParseError> {
        self.bump()?;
        let before = self.opt_grouping()?;
        self.expect_kw(Kw::LParen, &["("])?;
        let param = if let Tok::Number(_) = self.tok.tok
            && *self.peek2()? == Tok::Kw(Kw::Comma)
        {
            let text = self.number_text(&[])?;
            self.bump()?;
            Some(text)
        } else {
            None
        };
        let inner = self.sample_arg()?;
        self.expect_kw(Kw::RParen, &[])?;
        let grouping = match before {
            Some(g) => Some(g),
            None => self.opt_grouping()?,
        };
        let written = grouping.is_some();
        let grouping = grouping.unwrap_or_default();
        let depth = self.deeper(inner.depth)?;
        let (k, own) = vector_param_checks(op, param.as_deref(), written);
        let sort_err = (matches!(op, VectorOp::Sort | VectorOp::SortDesc)
            && !grouping.labels.is_empty())
        .then(|| ParseError::validation("sort and sort_desc doesn't allow grouping by "));
        let err = own.or(sort_err).or(inner.err);
        Ok(Operand::Sample(Box::new(Sample {
            expr: SampleExpr::VectorAggregation(VectorAggregation {
                op,
                param: k,
                grouping,
                expr: Box::new(inner.expr),
            }),
            err,
            depth,
        })))
    }

    fn label_replace(&mut self) -> Result<Operand, ParseError> {
        self.bump()?;
        self.expect_kw(Kw::LParen, &["("])?;
        let inner = self.sample_arg()?;
        self.expect_kw(Kw::Comma, &[])?;
        let dst = self.expect_str(&["STRING"])?;
        self.expect_kw(Kw::Comma, &[","])?;
        let replacement = self.expect_str(&["STRING"])?;
        self.expect_kw(Kw::Comma, &[","])?;
        let src = self.expect_str(&["STRING"])?;
        self.expect_kw(Kw::Comma, &[","])?;
        let regex = self.expect_str(&["STRING"])?;
        self.expect_kw(Kw::RParen, &[")"])?;
        let depth = self.deeper(inner.depth)?;
        // Compiled here, once, as Loki compiles it in its parser.
        let (regex, own) = match ReplaceRegex::new(regex.as_str()) {
            Ok(re) => (re, None),
            Err(e) => (
                ReplaceRegex::rejected(regex),
                Some(ParseError::validation(format!(
                    "invalid regex in label_replace: {e}"
                ))),
            ),
        };
        Ok(Operand::Sample(Box::new(Sample {
            expr: SampleExpr::LabelReplace(LabelReplace {
                expr: Box::new(inner.expr),
                dst,
                replacement,
                src,
                regex,
            }),
            err: own.or(inner.err),
            depth,
        })))
    }

    fn vector(&mut self) -> Result<Operand, ParseError> {
        self.bump()?;
        self.expect_kw(Kw::LParen, &["("])?;
        let text = self.number_text(&["NUMBER"])?;
        self.expect_kw(Kw::RParen, &[")"])?;
        let (v, err) = match parse_go_float(&text) {
            Ok(v) => (v, None),
            Err(e) => (
                0.0,
                Some(ParseError::validation(format!(
                    "unable to parse vectorExpr as a float: strconv.ParseFloat: parsing {}: {e}",
                    go_quote(&text)
                ))),
            ),
        };
        Ok(Operand::Sample(Box::new(Sample {
            expr: SampleExpr::Vector(v),
            err,
            depth: 1,
        })))
    }

    /// `by (..)` or `without (..)` if it comes next.
    fn opt_grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = match self.tok.tok {
            Tok::Kw(Kw::By) => false,
            Tok::Kw(Kw::Without) => true,
            _ => return Ok(None),
        };
        self.bump()?;
        self.expect_kw(Kw::LParen, &["("])?;
        let labels = self.label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    /// `a, b)` or `)` after an opening parenthesis.
    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut labels = Vec::new();
        if self.is_kw(Kw::RParen) {
            self.bump()?;
            return Ok(labels);
        }
        let mut expected: &[&str] = &["IDENTIFIER", ")"];
        loop {
            labels.push(self.expect_ident(expected)?);
            if self.is_kw(Kw::Comma) {
                self.bump()?;
                expected = &["IDENTIFIER"];
                continue;
            }
            self.expect_kw(Kw::RParen, &[",", ")"])?;
            return Ok(labels);
        }
    }

    /// `bool`, `on (..)`/`ignoring (..)` and `group_left/right [(..)]`
    /// after a binary operator.
    fn bin_modifiers(&mut self) -> Result<(bool, VectorMatching), ParseError> {
        let return_bool = self.is_kw(Kw::Bool);
        if return_bool {
            self.bump()?;
        }
        let mut m = VectorMatching::default();
        let on = match self.tok.tok {
            Tok::Kw(Kw::On) => true,
            Tok::Kw(Kw::Ignoring) => false,
            _ => return Ok((return_bool, m)),
        };
        self.bump()?;
        self.expect_kw(Kw::LParen, &["("])?;
        m.labels = self.label_list()?;
        m.on = on;
        m.card = match self.tok.tok {
            Tok::Kw(Kw::GroupLeft) => Cardinality::ManyToOne,
            Tok::Kw(Kw::GroupRight) => Cardinality::OneToMany,
            _ => return Ok((return_bool, m)),
        };
        self.bump()?;
        if self.is_kw(Kw::LParen) {
            self.bump()?;
            m.include = self.label_list()?;
        }
        Ok((return_bool, m))
    }

    /// Loki's `mustNewBinOpExpr`, with its checks deferred.
    fn binop(
        &mut self,
        op: BinOpKind,
        return_bool: bool,
        matching: VectorMatching,
        lhs: Operand,
        rhs: Operand,
    ) -> Result<Operand, ParseError> {
        let depth = self.deeper(lhs.depth().max(rhs.depth()))?;
        let leg_err = |side: &str, l: &LogExpr| {
            let ty = if l.stages.is_empty() {
                "*syntax.MatchersExpr"
            } else {
                "*syntax.PipelineExpr"
            };
            ParseError::validation(format!(
                "unexpected type for {side} leg of binary operation ({}): {ty}",
                op.as_str()
            ))
        };
        let (l, r) = match (lhs, rhs) {
            (Operand::Log(l), _) => return Ok(placeholder(op, leg_err("left", &l), depth)),
            (_, Operand::Log(r)) => return Ok(placeholder(op, leg_err("right", &r), depth)),
            (Operand::Sample(l), Operand::Sample(r)) => (*l, *r),
        };
        let lit = |s: &Sample| match s.expr {
            SampleExpr::Literal(v) => Some(v),
            _ => None,
        };
        let (llit, rlit) = (lit(&l), lit(&r));
        // A literal leg that failed to parse fails the operation.
        if llit.is_some()
            && let Some(e) = &l.err
        {
            return Ok(placeholder(op, e.clone(), depth));
        }
        if rlit.is_some()
            && let Some(e) = &r.err
        {
            return Ok(placeholder(op, e.clone(), depth));
        }
        if op.is_set_op() {
            let side = match (llit, rlit) {
                (Some(v), _) => Some(("left", v)),
                (None, Some(v)) => Some(("right", v)),
                _ => None,
            };
            if let Some((side, v)) = side {
                let e = ParseError::validation(format!(
                    "unexpected literal for {side} leg of logical/set binary operation ({}): {}",
                    op.as_str(),
                    go_float_fixed6(v)
                ));
                return Ok(placeholder(op, e, depth));
            }
        }
        if let (Some(a), Some(b)) = (llit, rlit) {
            return Ok(Operand::Sample(Box::new(Sample {
                expr: SampleExpr::Literal(fold(op, a, b)),
                err: None,
                depth: 1,
            })));
        }
        Ok(Operand::Sample(Box::new(Sample {
            expr: SampleExpr::BinOp(BinOp {
                op,
                lhs: Box::new(l.expr),
                rhs: Box::new(r.expr),
                return_bool,
                matching,
            }),
            err: l.err.or(r.err),
            depth,
        })))
    }

    /// Height of a node above a child of height `child`, within limits.
    fn deeper(&self, child: u32) -> Result<u32, ParseError> {
        let d = child + 1;
        if d > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(d)
    }
}

/// A binary operation that Loki rejects during validation.
fn placeholder(op: BinOpKind, err: ParseError, depth: u32) -> Operand {
    Operand::Sample(Box::new(Sample {
        expr: SampleExpr::BinOp(BinOp {
            op,
            lhs: Box::new(SampleExpr::Literal(0.0)),
            rhs: Box::new(SampleExpr::Literal(0.0)),
            return_bool: false,
            matching: VectorMatching::default(),
        }),
        err: Some(err),
        depth,
    }))
}

/// Loki folds operations between two literals at parse time (comparisons
/// give 0 or 1 whatever `bool` says; division and modulo by zero give NaN).
fn fold(op: BinOpKind, a: f64, b: f64) -> f64 {
    let truth = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinOpKind::Add => a + b,
        BinOpKind::Sub => a - b,
        BinOpKind::Mul => a * b,
        BinOpKind::Div if b == 0.0 => f64::NAN,
        BinOpKind::Div => a / b,
        BinOpKind::Mod if b == 0.0 => f64::NAN,
        BinOpKind::Mod => a % b,
        BinOpKind::Pow => a.powf(b),
        BinOpKind::Eq => truth(a == b),
        BinOpKind::NotEq => truth(a != b),
        BinOpKind::Gt => truth(a > b),
        BinOpKind::Ge => truth(a >= b),
        BinOpKind::Lt => truth(a < b),
        BinOpKind::Le => truth(a <= b),
        // Set operations on literals are rejected before folding.
        BinOpKind::Or | BinOpKind::And | BinOpKind::Unless => f64::NAN,
    }
}

fn binop(t: &Tok) -> Option<BinOpKind> {
    let Tok::Kw(k) = t else { return None };
    Some(match k {
        Kw::Or => BinOpKind::Or,
        Kw::And => BinOpKind::And,
        Kw::Unless => BinOpKind::Unless,
        Kw::Add => BinOpKind::Add,
        Kw::Sub => BinOpKind::Sub,
        Kw::Mul => BinOpKind::Mul,
        Kw::Div => BinOpKind::Div,
        Kw::Mod => BinOpKind::Mod,
        Kw::Pow => BinOpKind::Pow,
        Kw::CmpEq => BinOpKind::Eq,
        Kw::Neq => BinOpKind::NotEq,
        Kw::Gt => BinOpKind::Gt,
        Kw::Gte => BinOpKind::Ge,
        Kw::Lt => BinOpKind::Lt,
        Kw::Lte => BinOpKind::Le,
        _ => return None,
    })
}

fn range_op(f: Func) -> Option<RangeOp> {
    Some(match f {
        Func::CountOverTime => RangeOp::CountOverTime,
        Func::Rate => RangeOp::Rate,
        Func::RateCounter => RangeOp::RateCounter,
        Func::BytesOverTime => RangeOp::BytesOverTime,
        Func::BytesRate => RangeOp::BytesRate,
        Func::AvgOverTime => RangeOp::AvgOverTime,
        Func::SumOverTime => RangeOp::SumOverTime,
        Func::MinOverTime => RangeOp::MinOverTime,
        Func::MaxOverTime => RangeOp::MaxOverTime,
        Func::StdvarOverTime => RangeOp::StdvarOverTime,
        Func::StddevOverTime => RangeOp::StddevOverTime,
        Func::QuantileOverTime => RangeOp::QuantileOverTime,
        Func::FirstOverTime => RangeOp::FirstOverTime,
        Func::LastOverTime => RangeOp::LastOverTime,
        Func::AbsentOverTime => RangeOp::AbsentOverTime,
        _ => return None,
    })
}

fn vector_op(f: Func) -> Option<VectorOp> {
    Some(match f {
        Func::Sum => VectorOp::Sum,
        Func::Avg => VectorOp::Avg,
        Func::Count => VectorOp::Count,
        Func::Max => VectorOp::Max,
        Func::Min => VectorOp::Min,
        Func::Stddev => VectorOp::Stddev,
        Func::Stdvar => VectorOp::Stdvar,
        Func::Bottomk => VectorOp::Bottomk,
        Func::Topk => VectorOp::Topk,
        Func::Sort => VectorOp::Sort,
        Func::SortDesc => VectorOp::SortDesc,
        Func::ApproxTopk => VectorOp::ApproxTopk,
        _ => return None,
    })
}

/// Loki's `newRangeAggregationExpr` and `validate`: the parameter value and
/// the first rule the aggregation breaks.
fn range_aggregation_checks(
    op: RangeOp,
    param: Option<&str>,
    range: &LogRange,
    grouping: Option<&Grouping>,
) -> (Option<f64>, Option<ParseError>) {
    let name = op.as_str();
    let err = |m: String| (None, Some(ParseError::validation(m)));
    let value = match param {
        Some(text) if op != RangeOp::QuantileOverTime => {
            return err(format!(
                "parameter {text} not supported for operation {name}"
            ));
        }
        Some(text) => match parse_go_float(text) {
            Ok(v) => Some(v),
            Err(e) => {
                return err(format!(
                    "invalid parameter for operation {name}: strconv.ParseFloat: parsing {}: {e}",
                    go_quote(text)
                ));
            }
        },
        None if op == RangeOp::QuantileOverTime => {
            return err(format!("parameter required for operation {name}"));
        }
        None => None,
    };
    if grouping.is_some() && !op.allows_grouping() {
        return err(format!("grouping not allowed for {name} aggregation"));
    }
    if range.unwrap.is_some() {
        if !op.allows_unwrap() {
            return err(format!("invalid aggregation {name} with unwrap"));
        }
    } else if !op.allows_lines() {
        return err(format!("invalid aggregation {name} without unwrap"));
    }
    (value, None)
}

/// Loki's `mustNewVectorAggregationExpr` checks: the parameter `k` and the
/// first error.
fn vector_param_checks(
    op: VectorOp,
    param: Option<&str>,
    grouping_written: bool,
) -> (Option<i64>, Option<ParseError>) {
    let name = op.as_str();
    let err = |m: String| (None, Some(ParseError::validation(m)));
    if !op.takes_param() {
        return match param {
            Some(p) => err(format!("unsupported parameter for operation {name}({p},")),
            None => (None, None),
        };
    }
    let Some(text) = param else {
        return err(format!("parameter required for operation {name}"));
    };
    let Ok(k) = text.parse::<i64>() else {
        return err(format!("invalid parameter {name}({text},"));
    };
    if k <= 0 {
        return err(format!(
            "invalid parameter (must be greater than 0) {name}({text}"
        ));
    }
    if op == VectorOp::ApproxTopk && grouping_written {
        return err(format!("grouping not allowed for {name} aggregation"));
    }
    (Some(k), None)
}

#[cfg(test)]
mod tests {
    use super::super::log::literal_value;
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold(BinOpKind::Gt, 1.0, 1.0), 0.0);
        assert_eq!(fold(BinOpKind::Le, 1.0, 1.0), 1.0);
        assert!(fold(BinOpKind::Div, 1.0, 0.0).is_nan());
        assert!(fold(BinOpKind::Mod, 1.0, 0.0).is_nan());
        assert_eq!(fold(BinOpKind::Mod, -7.0, 3.0), -1.0);
        assert_eq!(fold(BinOpKind::Pow, 2.0, 10.0), 1024.0);
    }

    #[test]
    fn literal_errors() {
        assert_eq!(
            literal_value("0x10", false).unwrap_err(),
            r#"unable to parse literal as a float: strconv.ParseFloat: parsing "0x10": invalid syntax"#
        );
        assert_eq!(literal_value("2", true), Ok(-2.0));
    }
}
