//! Log queries: selectors, pipeline stages, label filters, log ranges.

use crate::matcher::{MatchOp, Matcher};

use super::super::ast::{
    CmpOp, LabelExtraction, LabelFilter, LabelFormat, LineFilter, LineFilterOp, LineFilterValue,
    LogExpr, LogRange, NamedMatcher, Stage, Unwrap, UnwrapConversion,
};
use super::super::error::ParseError;
use super::super::lexer::{Func, Kw, Tok};
use super::super::{check_go_regex, parse_go_float};
use super::{MAX_DEPTH, Parser};
use larch_go::duration::Duration;

impl Parser<'_> {
    /// `{ name op "value", ... }` at `{`.
    pub(super) fn selector(&mut self) -> Result<Vec<Matcher>, ParseError> {
        self.bump()?;
        let mut ms = Vec::new();
        if self.is_kw(Kw::RBrace) {
            self.bump()?;
            return Ok(ms);
        }
        let mut expected: &[&str] = &["IDENTIFIER", "}"];
        loop {
            let name = self.expect_ident(expected)?;
            ms.push(self.matcher_rest(name)?);
            if self.is_kw(Kw::Comma) {
                self.bump()?;
                expected = &["IDENTIFIER"];
                continue;
            }
            self.expect_kw(Kw::RBrace, &["}", ","])?;
            return Ok(ms);
        }
    }

    /// The operator and value of a matcher whose name was just read.
    fn matcher_rest(&mut self, name: String) -> Result<Matcher, ParseError> {
        let op = match self.tok.tok {
            Tok::Kw(Kw::Eq) => MatchOp::Eq,
            Tok::Kw(Kw::Neq) => MatchOp::NotEq,
            Tok::Kw(Kw::Re) => MatchOp::Re,
            Tok::Kw(Kw::Nre) => MatchOp::NotRe,
            _ => return Err(self.unexpected(&["=", "=~", "!~", "!="])),
        };
        self.bump()?;
        let value = self.expect_str(&["STRING"])?;
        new_matcher(name, op, value)
    }

    /// Pipeline stages. Stops at anything that is not a stage; with
    /// `unwrap_ok`, also before `| unwrap`.
    pub(super) fn stages(
        &mut self,
        out: &mut Vec<Stage>,
        unwrap_ok: bool,
    ) -> Result<(), ParseError> {
        loop {
            if let Tok::Kw(k) = self.tok.tok
                && let Some(op) = line_filter_op(k)
            {
                self.bump()?;
                self.line_filter(op, out)?;
                continue;
            }
            if !self.is_kw(Kw::Pipe) {
                return Ok(());
            }
            if unwrap_ok && *self.peek2()? == Tok::Kw(Kw::Unwrap) {
                return Ok(());
            }
            self.bump()?;
            let stage = self.stage_after_pipe()?;
            out.push(stage);
        }
    }

    /// The operands of a line filter after its operator, with `or`.
    fn line_filter(&mut self, op: LineFilterOp, out: &mut Vec<Stage>) -> Result<(), ParseError> {
        let mut values = vec![self.line_filter_value()?];
        while self.is_kw(Kw::Or) {
            self.bump()?;
            values.push(self.line_filter_value()?);
        }
        if op.is_positive() {
            out.push(Stage::LineFilter(LineFilter { op, values }));
        } else {
            // `!= "a" or "b"` means `!= "a" != "b"`.
            for v in values {
                out.push(Stage::LineFilter(LineFilter {
                    op,
                    values: vec![v],
                }));
            }
        }
        Ok(())
    }

    fn line_filter_value(&mut self) -> Result<LineFilterValue, ParseError> {
        match self.tok.tok {
            Tok::Str(_) => Ok(LineFilterValue::Text(self.expect_str(&[])?)),
            Tok::Func(Func::Ip) => Ok(LineFilterValue::Ip(self.ip_call()?)),
            _ => Err(self.unexpected(&["STRING", "ip"])),
        }
    }

    /// `ip("...")` at `ip`.
    fn ip_call(&mut self) -> Result<String, ParseError> {
        self.bump()?;
        self.expect_kw(Kw::LParen, &["("])?;
        let s = self.expect_str(&["STRING"])?;
        self.expect_kw(Kw::RParen, &[")"])?;
        Ok(s)
    }

    /// The stage after a `|`.
    fn stage_after_pipe(&mut self) -> Result<Stage, ParseError> {
        let kw = match self.tok.tok {
            Tok::Ident(_) | Tok::Kw(Kw::LParen) => {
                return Ok(Stage::LabelFilter(self.label_filter(0, false)?.0));
            }
            Tok::Kw(kw) => kw,
            _ => return Err(self.unexpected(&[])),
        };
        match kw {
            Kw::Json => {
                self.bump()?;
                let params = self.extractions()?;
                Ok(Stage::Json { params })
            }
            Kw::Logfmt => {
                self.bump()?;
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(f) = &self.tok.tok {
                    if f == "--strict" {
                        strict = true;
                    } else {
                        keep_empty = true;
                    }
                    self.bump()?;
                }
                let params = self.extractions()?;
                Ok(Stage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                })
            }
            Kw::Regexp => {
                self.bump()?;
                let re = self.expect_str(&["STRING"])?;
                check_regexp_stage(&re)
                    .map_err(|m| ParseError::validation(format!("invalid regexp parser: {m}")))?;
                Ok(Stage::Regexp(re))
            }
            Kw::Pattern => {
                self.bump()?;
                let p = self.expect_str(&["STRING"])?;
                larch_go::pattern::check_parser(&larch_go::pattern::parse_pattern(&p))
                    .map_err(|m| ParseError::validation(format!("invalid pattern parser: {m}")))?;
                Ok(Stage::Pattern(p))
            }
            Kw::Unpack => {
                self.bump()?;
                Ok(Stage::Unpack)
            }
            Kw::Decolorize => {
                self.bump()?;
                Ok(Stage::Decolorize)
            }
            Kw::LineFmt => {
                self.bump()?;
                Ok(Stage::LineFormat(self.expect_str(&["STRING"])?))
            }
            Kw::LabelFmt => {
                self.bump()?;
                let mut fmts = Vec::new();
                loop {
                    let dst = self.expect_ident(&["IDENTIFIER"])?;
                    self.expect_kw(Kw::Eq, &["="])?;
                    let f = match self.tok.tok {
                        Tok::Ident(_) => LabelFormat::Rename {
                            dst,
                            src: self.expect_ident(&[])?,
                        },
                        Tok::Str(_) => LabelFormat::Template {
                            dst,
                            template: self.expect_str(&[])?,
                        },
                        _ => return Err(self.unexpected(&["IDENTIFIER", "STRING"])),
                    };
                    fmts.push(f);
                    if !self.is_kw(Kw::Comma) {
                        return Ok(Stage::LabelFormat(fmts));
                    }
                    self.bump()?;
                }
            }
            Kw::Drop | Kw::Keep => {
                self.bump()?;
                let mut names = Vec::new();
                loop {
                    let name = self.expect_ident(&["IDENTIFIER"])?;
                    let m = match self.tok.tok {
                        Tok::Kw(Kw::Eq | Kw::Neq | Kw::Re | Kw::Nre) => {
                            NamedMatcher::Matcher(self.matcher_rest(name)?)
                        }
                        _ => NamedMatcher::Name(name),
                    };
                    names.push(m);
                    if !self.is_kw(Kw::Comma) {
                        break;
                    }
                    self.bump()?;
                }
                Ok(if kw == Kw::Drop {
                    Stage::Drop(names)
                } else {
                    Stage::Keep(names)
                })
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    /// Optional `a="path", b` parameters of `json` and `logfmt`.
    fn extractions(&mut self) -> Result<Vec<LabelExtraction>, ParseError> {
        let mut out = Vec::new();
        if !matches!(self.tok.tok, Tok::Ident(_)) {
            return Ok(out);
        }
        loop {
            let label = self.expect_ident(&["IDENTIFIER"])?;
            let expr = if self.is_kw(Kw::Eq) {
                self.bump()?;
                self.expect_str(&["STRING"])?
            } else {
                label.clone()
            };
            out.push(LabelExtraction { label, expr });
            if !self.is_kw(Kw::Comma) {
                return Ok(out);
            }
            self.bump()?;
        }
    }

    /// A label filter expression with binding power at least `min_bp`.
    /// `after_op` says whether it follows `and`/`or`/`,`/`(` (which
    /// changes the expected tokens in errors). Returns the filter and the
    /// height of its tree.
    pub(super) fn label_filter(
        &mut self,
        min_bp: u8,
        after_op: bool,
    ) -> Result<(LabelFilter, u32), ParseError> {
        self.enter()?;
        let (mut lhs, mut depth) = self.label_filter_atom(after_op)?;
        loop {
            // `and` binds tighter than `or`; `,` and juxtaposition are
            // always taken and extend to the right end.
            let (lbp, rbp, consume, or) = match self.tok.tok {
                Tok::Kw(Kw::Or) => (1, 2, true, true),
                Tok::Kw(Kw::And) => (3, 4, true, false),
                Tok::Kw(Kw::Comma) => (u8::MAX, 0, true, false),
                Tok::Ident(_) | Tok::Kw(Kw::LParen) => (u8::MAX, 0, false, false),
                _ => break,
            };
            if lbp < min_bp {
                break;
            }
            if consume {
                self.bump()?;
            }
            let (rhs, rdepth) = self.label_filter(rbp, consume)?;
            depth = 1 + depth.max(rdepth);
            if depth > MAX_DEPTH {
                return Err(self.too_deep());
            }
            lhs = if or {
                LabelFilter::Or(Box::new(lhs), Box::new(rhs))
            } else {
                LabelFilter::And(Box::new(lhs), Box::new(rhs))
            };
        }
        self.leave();
        Ok((lhs, depth))
    }

    fn label_filter_atom(&mut self, after_op: bool) -> Result<(LabelFilter, u32), ParseError> {
        if self.is_kw(Kw::LParen) {
            self.bump()?;
            let inner = self.label_filter(0, true)?;
            self.expect_kw(Kw::RParen, &[])?;
            return Ok(inner);
        }
        let expected: &[&str] = if after_op { &["IDENTIFIER", "("] } else { &[] };
        let name = self.expect_ident(expected)?;
        let op_kw = match self.tok.tok {
            Tok::Kw(k) => k,
            _ => return Err(self.unexpected(&[])),
        };
        let f = match op_kw {
            Kw::Re | Kw::Nre => LabelFilter::Matcher(self.matcher_rest(name)?),
            Kw::Eq | Kw::Neq => {
                self.bump()?;
                let (mop, op) = if op_kw == Kw::Eq {
                    (MatchOp::Eq, CmpOp::Eq)
                } else {
                    (MatchOp::NotEq, CmpOp::NotEq)
                };
                match self.tok.tok {
                    Tok::Str(_) => {
                        let value = self.expect_str(&[])?;
                        LabelFilter::Matcher(new_matcher(name, mop, value)?)
                    }
                    Tok::Func(Func::Ip) => {
                        let pattern = self.ip_call()?;
                        LabelFilter::Ip { name, op, pattern }
                    }
                    _ => self.value_filter(name, op)?,
                }
            }
            Kw::CmpEq | Kw::Gt | Kw::Gte | Kw::Lt | Kw::Lte => {
                self.bump()?;
                let op = match op_kw {
                    Kw::CmpEq => CmpOp::Eq,
                    Kw::Gt => CmpOp::Gt,
                    Kw::Gte => CmpOp::Ge,
                    Kw::Lt => CmpOp::Lt,
                    _ => CmpOp::Le,
                };
                self.value_filter(name, op)?
            }
            _ => return Err(self.unexpected(&[])),
        };
        Ok((f, 1))
    }

    /// The duration, bytes or number after a comparison operator.
    fn value_filter(&mut self, name: String, op: CmpOp) -> Result<LabelFilter, ParseError> {
        match self.tok.tok {
            Tok::Duration(value) => {
                self.bump()?;
                Ok(LabelFilter::Duration { name, op, value })
            }
            Tok::Bytes(value) => {
                self.bump()?;
                Ok(LabelFilter::Bytes { name, op, value })
            }
            Tok::Number(_) | Tok::Kw(Kw::Add | Kw::Sub) => {
                let value = self.number_literal()?.map_err(ParseError::validation)?;
                Ok(LabelFilter::Number { name, op, value })
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `NUMBER`, `+NUMBER` or `-NUMBER` at the current token. The inner
    /// result is Loki's literal error, which callers report at once or
    /// defer.
    pub(super) fn number_literal(&mut self) -> Result<Result<f64, String>, ParseError> {
        let neg = match self.tok.tok {
            Tok::Kw(Kw::Sub) => true,
            Tok::Kw(Kw::Add) => false,
            _ => {
                let text = self.number_text(&[])?;
                return Ok(literal_value(&text, false));
            }
        };
        self.bump()?;
        let text = self.number_text(&["NUMBER"])?;
        Ok(literal_value(&text, neg))
    }

    pub(super) fn number_text(&mut self, expected: &[&str]) -> Result<String, ParseError> {
        if let Tok::Number(_) = self.tok.tok
            && let Tok::Number(t) = self.bump()?.tok
        {
            return Ok(t);
        }
        Err(self.unexpected(expected))
    }

    /// A log range at `{` or `(`, the argument of a range aggregation.
    pub(super) fn log_range(&mut self, expected: &[&str]) -> Result<LogRange, ParseError> {
        match self.tok.tok {
            Tok::Kw(Kw::LBrace) => {
                let matchers = self.selector()?;
                self.range_after_selector(matchers)
            }
            Tok::Kw(Kw::LParen) => {
                self.bump()?;
                self.enter()?;
                let r = self.parenthesised_range()?;
                self.leave();
                Ok(r)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// After `(` in a log range: `( selector ... ) [range]` or
    /// `( log-range )`.
    fn parenthesised_range(&mut self) -> Result<LogRange, ParseError> {
        if self.is_kw(Kw::LParen) {
            let r = self.log_range(&[])?;
            self.expect_kw(Kw::RParen, &[")"])?;
            return Ok(r);
        }
        if !self.is_kw(Kw::LBrace) {
            return Err(self.unexpected(&["{", "("]));
        }
        let matchers = self.selector()?;
        if let Tok::Range(_) = self.tok.tok {
            let r = self.range_after_selector(matchers)?;
            self.expect_kw(Kw::RParen, &[")"])?;
            return Ok(r);
        }
        let mut stages = Vec::new();
        self.stages(&mut stages, true)?;
        let (mut unwrap, after_unwrap) = self.opt_unwrap()?;
        if let Tok::Range(_) = self.tok.tok {
            let r = self.range_tail(LogExpr { matchers, stages }, unwrap)?;
            self.expect_kw(Kw::RParen, &[")"])?;
            return Ok(r);
        }
        if !self.is_kw(Kw::RParen) {
            return Err(self.unexpected(after_unwrap));
        }
        self.bump()?;
        let range = self.expect_range(&["RANGE"])?;
        let offset = self.opt_offset()?;
        if stages.is_empty() && unwrap.is_none() && self.is_kw(Kw::Pipe) {
            // Only an unwrap may follow `( selector ) [range]`.
            if *self.peek2()? != Tok::Kw(Kw::Unwrap) {
                self.bump()?;
                return Err(self.unexpected(&["unwrap"]));
            }
            unwrap = self.opt_unwrap()?.0;
        }
        Ok(LogRange {
            log: LogExpr { matchers, stages },
            range,
            offset,
            unwrap,
        })
    }

    /// The rest of a log range after its selector (no parentheses).
    fn range_after_selector(
        &mut self,
        matchers: Vec<crate::matcher::Matcher>,
    ) -> Result<LogRange, ParseError> {
        let mut stages = Vec::new();
        if let Tok::Range(_) = self.tok.tok {
            // `{..}[5m] [offset d] [| stages] [| unwrap x]`
            let range = self.expect_range(&[])?;
            let offset = self.opt_offset()?;
            self.stages(&mut stages, true)?;
            let unwrap = self.opt_unwrap()?.0;
            return Ok(LogRange {
                log: LogExpr { matchers, stages },
                range,
                offset,
                unwrap,
            });
        }
        // `{..} [| stages] [| unwrap x] [5m] [offset d]`
        self.stages(&mut stages, true)?;
        let (unwrap, after_unwrap) = self.opt_unwrap()?;
        if !matches!(self.tok.tok, Tok::Range(_)) {
            return Err(self.unexpected(after_unwrap));
        }
        self.range_tail(LogExpr { matchers, stages }, unwrap)
    }

    /// `RANGE [offset]` after the pipeline.
    fn range_tail(&mut self, log: LogExpr, unwrap: Option<Unwrap>) -> Result<LogRange, ParseError> {
        let range = self.expect_range(&[])?;
        let offset = self.opt_offset()?;
        Ok(LogRange {
            log,
            range,
            offset,
            unwrap,
        })
    }

    fn expect_range(&mut self, expected: &[&str]) -> Result<Duration, ParseError> {
        if let Tok::Range(d) = self.tok.tok {
            self.bump()?;
            return Ok(d);
        }
        Err(self.unexpected(expected))
    }

    fn opt_offset(&mut self) -> Result<Duration, ParseError> {
        if !self.is_kw(Kw::Offset) {
            return Ok(Duration::ZERO);
        }
        self.bump()?;
        if let Tok::Duration(d) = self.tok.tok {
            self.bump()?;
            return Ok(d);
        }
        Err(self.unexpected(&["DURATION"]))
    }

    /// `| unwrap ...` if it comes next. Also returns the tokens Loki
    /// expects after what was read, for the error when no range follows.
    fn opt_unwrap(&mut self) -> Result<(Option<Unwrap>, &'static [&'static str]), ParseError> {
        if !self.is_kw(Kw::Pipe) || *self.peek2()? != Tok::Kw(Kw::Unwrap) {
            return Ok((None, &[]));
        }
        self.bump()?;
        self.bump()?;
        let (label, conversion) = match self.tok.tok {
            Tok::Ident(_) => (self.expect_ident(&[])?, None),
            Tok::Func(f @ (Func::BytesConv | Func::DurationConv | Func::DurationSecondsConv)) => {
                self.bump()?;
                self.expect_kw(Kw::LParen, &["("])?;
                let label = self.expect_ident(&["IDENTIFIER"])?;
                self.expect_kw(Kw::RParen, &[")"])?;
                let conv = match f {
                    Func::BytesConv => UnwrapConversion::Bytes,
                    Func::DurationConv => UnwrapConversion::Duration,
                    _ => UnwrapConversion::DurationSeconds,
                };
                (label, Some(conv))
            }
            _ => {
                return Err(self.unexpected(&[
                    "IDENTIFIER",
                    "BYTES_CONV",
                    "DURATION_CONV",
                    "DURATION_SECONDS_CONV",
                ]));
            }
        };
        let mut post_filters = Vec::new();
        while self.is_kw(Kw::Pipe) {
            self.bump()?;
            post_filters.push(self.label_filter(0, true)?.0);
        }
        let expected: &'static [&'static str] = if post_filters.is_empty() {
            &["RANGE", "|"]
        } else {
            &[]
        };
        Ok((
            Some(Unwrap {
                label,
                conversion,
                post_filters,
            }),
            expected,
        ))
    }
}

fn line_filter_op(k: Kw) -> Option<LineFilterOp> {
    Some(match k {
        Kw::PipeExact => LineFilterOp::Contains,
        Kw::Neq => LineFilterOp::NotContains,
        Kw::PipeMatch => LineFilterOp::Regex,
        Kw::Nre => LineFilterOp::NotRegex,
        Kw::PipePattern => LineFilterOp::Pattern,
        Kw::Npa => LineFilterOp::NotPattern,
        _ => return None,
    })
}

/// Loki's `mustNewMatcher`: a bad regex fails the parse at once.
pub(super) fn new_matcher(name: String, op: MatchOp, value: String) -> Result<Matcher, ParseError> {
    if matches!(op, MatchOp::Re | MatchOp::NotRe) {
        check_go_regex(&value).map_err(ParseError::validation)?;
    }
    Matcher::new(name, op, value).map_err(|e| ParseError::validation(e.to_string()))
}

/// Loki's checks of a `regexp` stage expression.
fn check_regexp_stage(re: &str) -> Result<(), String> {
    let info = check_go_regex(re)?;
    if info.groups == 0 {
        return Err("at least one named capture must be supplied".into());
    }
    if let Some(d) = info.duplicate_name {
        return Err(format!("duplicate extracted label name '{d}'"));
    }
    if info.names.is_empty() {
        return Err("at least one named capture must be supplied".into());
    }
    Ok(())
}

/// Loki's `mustNewLiteralExpr`: the value, or the error text.
pub(super) fn literal_value(text: &str, neg: bool) -> Result<f64, String> {
    match parse_go_float(text) {
        Ok(v) => Ok(if neg { -v } else { v }),
        Err(e) => Err(format!(
            "unable to parse literal as a float: strconv.ParseFloat: parsing {}: {e}",
            larch_go::quote::go_quote(text)
        )),
    }
}
