//! The LogQL syntax tree.
//!
//! A query is either a log query ([`LogExpr`]: a stream selector and a
//! pipeline of [`Stage`]s) or a metric query ([`SampleExpr`]). The tree is
//! what the parser produces and what the engine compiles; it holds no
//! positions and no compiled state except the anchored regexes inside
//! [`Matcher`]s and [`LabelReplace`] ([`ReplaceRegex`]), which the parser
//! validates anyway.
//!
//! Normalisations the parser applies, so that equal meanings have equal
//! trees and printing then re-parsing gives the same tree back:
//! * A range written before or after the pipeline (`{a="b"}[5m] |= "x"` and
//!   `{a="b"} |= "x" [5m]`) is the same [`LogRange`].
//! * Negative line filters joined with `or` are split into separate filters,
//!   as Loki does: `!= "a" or "b"` is `!= "a" != "b"`. Positive ones keep
//!   their alternatives in one [`LineFilter`].
//! * Label filters joined by `and`, `,` or juxtaposition become
//!   [`LabelFilter::And`]; parentheses only group.
//! * Numeric, duration and bytes filters written with `=` or `==` both use
//!   [`CmpOp::Eq`].
//! * A vector aggregation without grouping has the grouping `by ()`
//!   ([`Grouping::default`]); `ignoring ()` without `group_left`/`group_right`
//!   is the default [`VectorMatching`]; `group_left ()` has no include labels.
//! * Binary operations between two literals are folded to a literal at
//!   parse time (`1 + 1` is `2`, `1 > 1` is `0`), as Loki does.

use std::fmt;

use regex::{Captures, Regex};

use crate::matcher::Matcher;

use larch_go::duration::Duration;
use larch_go::regex::RegexError;

/// A parsed query: a log query or a metric query.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A log query: selector and pipeline (`{app="api"} |= "error"`).
    Log(LogExpr),
    /// A metric query (`rate({app="api"}[5m])`).
    Sample(SampleExpr),
}

/// A stream selector followed by a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct LogExpr {
    /// The label matchers between the braces, in query order.
    pub matchers: Vec<Matcher>,
    /// The pipeline stages in query order (empty for a bare selector).
    pub stages: Vec<Stage>,
}

/// One stage of a log pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `|= "x"`, `!~ "re"`, `|> "<_> x"`, `|= ip("10.0.0.0/8")`, with `or`.
    LineFilter(LineFilter),
    /// `| json` (no params: every field) or `| json a="x.y", b`.
    Json {
        /// Labels to extract with their JSON paths; empty means all fields.
        params: Vec<LabelExtraction>,
    },
    /// `| logfmt [--strict] [--keep-empty] [a="k", b]`.
    Logfmt {
        /// `--strict`: stop at the first malformed pair and report an error.
        strict: bool,
        /// `--keep-empty`: keep standalone keys as labels with empty value.
        keep_empty: bool,
        /// Labels to extract; empty means all keys.
        params: Vec<LabelExtraction>,
    },
    /// `| regexp "(?P<name>re)"`: the expression as written (unanchored).
    Regexp(String),
    /// `| pattern "<a> - <_> <b>"`.
    Pattern(String),
    /// `| unpack`: JSON from Promtail's `pack` stage.
    Unpack,
    /// `| level="error"`, `| duration > 1s and size < 2KB`, ...
    LabelFilter(LabelFilter),
    /// `| line_format "{{.msg}}"`: the Go template text.
    LineFormat(String),
    /// `| label_format a=b, c="{{.d}}"`.
    LabelFormat(Vec<LabelFormat>),
    /// `| decolorize`: strip ANSI colour escapes from the line.
    Decolorize,
    /// `| drop a, b="v"`: remove labels (by name, or only when matching).
    Drop(Vec<NamedMatcher>),
    /// `| keep a, b="v"`: keep only these labels.
    Keep(Vec<NamedMatcher>),
}

/// A line filter with its `or` alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct LineFilter {
    /// The operator.
    pub op: LineFilterOp,
    /// The operand and its `or` alternatives, at least one. More than one
    /// only for positive operators (`|=`, `|~`, `|>`): the line passes when
    /// any alternative matches.
    pub values: Vec<LineFilterValue>,
}

/// The six line filter operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    /// `|=`: the line contains the text.
    Contains,
    /// `!=`: the line does not contain the text.
    NotContains,
    /// `|~`: the line matches the regex (RE2, unanchored).
    Regex,
    /// `!~`: the line does not match the regex.
    NotRegex,
    /// `|>`: the whole line matches the pattern (`<_>` wildcards).
    Pattern,
    /// `!>`: the line does not match the pattern.
    NotPattern,
}

impl LineFilterOp {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        }
    }

    /// Whether the operator keeps matching lines (`|=`, `|~`, `|>`).
    pub fn is_positive(self) -> bool {
        matches!(
            self,
            LineFilterOp::Contains | LineFilterOp::Regex | LineFilterOp::Pattern
        )
    }
}

/// An operand of a line filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LineFilterValue {
    /// A text, regex or pattern, depending on the operator.
    Text(String),
    /// `ip("...")`: a line containing an address in the given address,
    /// range (`a-b`) or CIDR. Meaningful only with `|=` and `!=`.
    Ip(String),
}

/// `label="json.path"` in `| json` and `| logfmt` parameters. A bare
/// `label` stands for `label="label"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelExtraction {
    /// The label to set.
    pub label: String,
    /// The JSON path (`a.b[0]`, `["k"]`) or logfmt key.
    pub expr: String,
}

/// A label filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelFilter {
    /// String comparison (`=`, `!=`, `=~`, `!~`); the only kind that can
    /// test `__error__`.
    Matcher(Matcher),
    /// `name = ip("...")` or `name != ip("...")`.
    Ip {
        /// Label name.
        name: String,
        /// [`CmpOp::Eq`] or [`CmpOp::NotEq`].
        op: CmpOp,
        /// Address, range or CIDR as written.
        pattern: String,
    },
    /// `name > 5`: the label value read as a float.
    Number {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Right-hand side.
        value: f64,
    },
    /// `name > 250ms`: the label value read as a Go duration.
    Duration {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Right-hand side.
        value: Duration,
    },
    /// `name > 2KiB`: the label value read as a byte size.
    Bytes {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Right-hand side in bytes.
        value: u64,
    },
    /// Both must hold (`and`, `,` or juxtaposition).
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// Either must hold (`or`).
    Or(Box<LabelFilter>, Box<LabelFilter>),
}

/// Comparison operators of numeric, duration, bytes and ip label filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    NotEq,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

impl CmpOp {
    /// The operator as Loki prints it (`==` for equality).
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::NotEq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// One assignment of `| label_format`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LabelFormat {
    /// `dst=src`: rename `src` to `dst` (`src` is removed).
    Rename {
        /// New label name.
        dst: String,
        /// Existing label name.
        src: String,
    },
    /// `dst="{{...}}"`: set `dst` to the rendered Go template.
    Template {
        /// Label name to set.
        dst: String,
        /// Template text.
        template: String,
    },
}

/// A label named in `| drop` or `| keep`.
#[derive(Clone, Debug, PartialEq)]
pub enum NamedMatcher {
    /// Just the name: applies whatever the value.
    Name(String),
    /// `name="v"` etc.: applies only when the value matches.
    Matcher(Matcher),
}

/// A metric query.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleExpr {
    /// `rate({..}[5m])`, `quantile_over_time(0.9, {..} | unwrap x [1m]) by (a)`.
    RangeAggregation(RangeAggregation),
    /// `sum by (a) (..)`, `topk(5, ..)`.
    VectorAggregation(VectorAggregation),
    /// `a + b`, `a > bool b`, `a and on (x) b`.
    BinOp(BinOp),
    /// A number (`1.5`, `-2`), possibly folded from literal arithmetic.
    Literal(f64),
    /// `vector(1)`.
    Vector(f64),
    /// `label_replace(v, "dst", "repl", "src", "regex")`.
    LabelReplace(LabelReplace),
}

/// A range aggregation over a log range.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeAggregation {
    /// The function.
    pub op: RangeOp,
    /// The φ of `quantile_over_time` (the only function with a parameter).
    pub param: Option<f64>,
    /// Selector, pipeline, range, offset and unwrap.
    pub range: LogRange,
    /// `by (..)` / `without (..)` after the call; only for functions over
    /// unwrapped values that aggregate within a series (avg, min, max,
    /// stddev, stdvar, quantile, first, last `_over_time`).
    pub grouping: Option<Grouping>,
}

/// The range aggregation functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeOp {
    /// `count_over_time`
    CountOverTime,
    /// `rate`
    Rate,
    /// `rate_counter`
    RateCounter,
    /// `bytes_over_time`
    BytesOverTime,
    /// `bytes_rate`
    BytesRate,
    /// `avg_over_time`
    AvgOverTime,
    /// `sum_over_time`
    SumOverTime,
    /// `min_over_time`
    MinOverTime,
    /// `max_over_time`
    MaxOverTime,
    /// `stdvar_over_time`
    StdvarOverTime,
    /// `stddev_over_time`
    StddevOverTime,
    /// `quantile_over_time`
    QuantileOverTime,
    /// `first_over_time`
    FirstOverTime,
    /// `last_over_time`
    LastOverTime,
    /// `absent_over_time`
    AbsentOverTime,
}

impl RangeOp {
    /// Every range function.
    pub const ALL: [RangeOp; 15] = [
        RangeOp::CountOverTime,
        RangeOp::Rate,
        RangeOp::RateCounter,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
        RangeOp::AvgOverTime,
        RangeOp::SumOverTime,
        RangeOp::MinOverTime,
        RangeOp::MaxOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::StddevOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
        RangeOp::AbsentOverTime,
    ];

    /// The function name.
    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
            RangeOp::AbsentOverTime => "absent_over_time",
        }
    }

    /// Whether the function accepts `by`/`without` after the call.
    pub fn allows_grouping(self) -> bool {
        matches!(
            self,
            RangeOp::AvgOverTime
                | RangeOp::StddevOverTime
                | RangeOp::StdvarOverTime
                | RangeOp::QuantileOverTime
                | RangeOp::MaxOverTime
                | RangeOp::MinOverTime
                | RangeOp::FirstOverTime
                | RangeOp::LastOverTime
        )
    }

    /// Whether the function works on lines (no unwrap).
    pub fn allows_lines(self) -> bool {
        matches!(
            self,
            RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::AbsentOverTime
        )
    }

    /// Whether the function works on unwrapped values.
    pub fn allows_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::BytesOverTime | RangeOp::BytesRate | RangeOp::CountOverTime
        )
    }
}

/// A log query over a time range: the argument of a range aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRange {
    /// Selector and pipeline.
    pub log: LogExpr,
    /// The range `[5m]` (Prometheus duration, millisecond resolution).
    pub range: Duration,
    /// `offset 1h` (zero when absent; may be negative).
    pub offset: Duration,
    /// `| unwrap label` with its conversion and post-filters.
    pub unwrap: Option<Unwrap>,
}

/// `| unwrap [conversion(]label[)]` and the label filters after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Unwrap {
    /// The label whose value becomes the sample.
    pub label: String,
    /// How the value is read; `None` reads a float.
    pub conversion: Option<UnwrapConversion>,
    /// `| filter` stages written after the unwrap (label filters only).
    pub post_filters: Vec<LabelFilter>,
}

/// Value conversions of `unwrap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnwrapConversion {
    /// `bytes(label)`: a byte size (`2KB`).
    Bytes,
    /// `duration(label)`: a Go duration, in seconds.
    Duration,
    /// `duration_seconds(label)`: the same as `duration`.
    DurationSeconds,
}

impl UnwrapConversion {
    /// The conversion's name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnwrapConversion::Bytes => "bytes",
            UnwrapConversion::Duration => "duration",
            UnwrapConversion::DurationSeconds => "duration_seconds",
        }
    }
}

/// A vector aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorAggregation {
    /// The aggregation.
    pub op: VectorOp,
    /// `k` of `topk`, `bottomk` and `approx_topk` (always present and
    /// positive for those, absent for the others).
    pub param: Option<i64>,
    /// `by (..)` / `without (..)`; `by ()` when none was written.
    pub grouping: Grouping,
    /// The aggregated expression.
    pub expr: Box<SampleExpr>,
}

/// The vector aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `count`
    Count,
    /// `max`
    Max,
    /// `min`
    Min,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `bottomk`
    Bottomk,
    /// `topk`
    Topk,
    /// `sort`
    Sort,
    /// `sort_desc`
    SortDesc,
    /// `approx_topk`
    ApproxTopk,
}

impl VectorOp {
    /// Every vector aggregation.
    pub const ALL: [VectorOp; 12] = [
        VectorOp::Sum,
        VectorOp::Avg,
        VectorOp::Count,
        VectorOp::Max,
        VectorOp::Min,
        VectorOp::Stddev,
        VectorOp::Stdvar,
        VectorOp::Bottomk,
        VectorOp::Topk,
        VectorOp::Sort,
        VectorOp::SortDesc,
        VectorOp::ApproxTopk,
    ];

    /// The operator's name.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Count => "count",
            VectorOp::Max => "max",
            VectorOp::Min => "min",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Bottomk => "bottomk",
            VectorOp::Topk => "topk",
            VectorOp::Sort => "sort",
            VectorOp::SortDesc => "sort_desc",
            VectorOp::ApproxTopk => "approx_topk",
        }
    }

    /// Whether the operator takes the parameter `k`.
    pub fn takes_param(self) -> bool {
        matches!(
            self,
            VectorOp::Bottomk | VectorOp::Topk | VectorOp::ApproxTopk
        )
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Grouping {
    /// `without` rather than `by`.
    pub without: bool,
    /// The label names in query order.
    pub labels: Vec<String>,
}

impl Grouping {
    /// Whether this is `by ()`, i.e. everything aggregated into one series.
    pub fn is_singleton(&self) -> bool {
        !self.without && self.labels.is_empty()
    }
}

/// A binary operation between two metric expressions.
#[derive(Clone, Debug, PartialEq)]
pub struct BinOp {
    /// The operator.
    pub op: BinOpKind,
    /// Left operand.
    pub lhs: Box<SampleExpr>,
    /// Right operand.
    pub rhs: Box<SampleExpr>,
    /// `bool` after a comparison: return 0/1 instead of filtering.
    pub return_bool: bool,
    /// `on`/`ignoring` and `group_left`/`group_right`.
    pub matching: VectorMatching,
}

/// Binary operators, lowest precedence first: `or`; `and unless`;
/// comparisons; `+ -`; `* / %`; `^` (right-associative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOpKind {
    /// `or`
    Or,
    /// `and`
    And,
    /// `unless`
    Unless,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl BinOpKind {
    /// Every binary operator.
    pub const ALL: [BinOpKind; 15] = [
        BinOpKind::Or,
        BinOpKind::And,
        BinOpKind::Unless,
        BinOpKind::Add,
        BinOpKind::Sub,
        BinOpKind::Mul,
        BinOpKind::Div,
        BinOpKind::Mod,
        BinOpKind::Pow,
        BinOpKind::Eq,
        BinOpKind::NotEq,
        BinOpKind::Gt,
        BinOpKind::Ge,
        BinOpKind::Lt,
        BinOpKind::Le,
    ];

    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOpKind::Or => "or",
            BinOpKind::And => "and",
            BinOpKind::Unless => "unless",
            BinOpKind::Add => "+",
            BinOpKind::Sub => "-",
            BinOpKind::Mul => "*",
            BinOpKind::Div => "/",
            BinOpKind::Mod => "%",
            BinOpKind::Pow => "^",
            BinOpKind::Eq => "==",
            BinOpKind::NotEq => "!=",
            BinOpKind::Gt => ">",
            BinOpKind::Ge => ">=",
            BinOpKind::Lt => "<",
            BinOpKind::Le => "<=",
        }
    }

    /// Binding strength, higher binds tighter (1 = `or` ... 6 = `^`).
    pub fn precedence(self) -> u8 {
        match self {
            BinOpKind::Or => 1,
            BinOpKind::And | BinOpKind::Unless => 2,
            BinOpKind::Eq
            | BinOpKind::NotEq
            | BinOpKind::Gt
            | BinOpKind::Ge
            | BinOpKind::Lt
            | BinOpKind::Le => 3,
            BinOpKind::Add | BinOpKind::Sub => 4,
            BinOpKind::Mul | BinOpKind::Div | BinOpKind::Mod => 5,
            BinOpKind::Pow => 6,
        }
    }

    /// Whether this is a comparison (`==` `!=` `>` `>=` `<` `<=`).
    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    /// Whether this is a set operation (`and` `or` `unless`).
    pub fn is_set_op(self) -> bool {
        self.precedence() <= 2
    }
}

/// How the series of the two sides of a binary operation are paired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VectorMatching {
    /// `on (..)` (true) or `ignoring (..)` (false).
    pub on: bool,
    /// The labels of `on`/`ignoring`.
    pub labels: Vec<String>,
    /// One-to-one, or many-to-one (`group_left`) / one-to-many
    /// (`group_right`).
    pub card: Cardinality,
    /// Labels of `group_left (..)`/`group_right (..)` copied from the "one"
    /// side.
    pub include: Vec<String>,
}

/// Matching cardinality of a binary operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cardinality {
    /// Each series pairs with at most one series.
    #[default]
    OneToOne,
    /// `group_left`: many on the left to one on the right.
    ManyToOne,
    /// `group_right`: one on the left to many on the right.
    OneToMany,
}

/// `label_replace(expr, "dst", "replacement", "src", "regex")`.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelReplace {
    /// The expression whose series are relabelled.
    pub expr: Box<SampleExpr>,
    /// Label to write.
    pub dst: String,
    /// Replacement with `$1`-style references.
    pub replacement: String,
    /// Label to read.
    pub src: String,
    /// Regex matched against the whole value of `src` (anchored).
    pub regex: ReplaceRegex,
}

/// `label_replace`'s regular expression: the text as written, and what
/// Loki compiles from it when the query is parsed, `^(?:text)$` with Go's
/// syntax and classes (`larch_go::regex`: octal `\101`, ASCII `\d`).
/// Compiled once, here; equal when the texts are equal.
#[derive(Clone)]
pub struct ReplaceRegex {
    text: String,
    /// `None` only in a tree the parser rejects (the text did not
    /// compile): such a tree never leaves the parser.
    re: Option<Regex>,
}

impl ReplaceRegex {
    /// Compiles `text` as Loki does; the error is Go's full message
    /// (`error parsing regexp: invalid escape sequence: `\q``).
    pub fn new(text: impl Into<String>) -> Result<ReplaceRegex, RegexError> {
        let text = text.into();
        let re = larch_go::regex::compile(&anchored(&text), false)?;
        Ok(ReplaceRegex { text, re: Some(re) })
    }

    /// Keeps a text that did not compile, for the node of a tree whose
    /// error the parser reports instead; it matches nothing.
    pub(crate) fn rejected(text: String) -> ReplaceRegex {
        ReplaceRegex { text, re: None }
    }

    /// The text as written in the query.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The groups of `value` when the whole of it matches.
    pub fn captures<'v>(&self, value: &'v str) -> Option<Captures<'v>> {
        self.re.as_ref()?.captures(value)
    }
}

/// Loki's anchoring of `label_replace`'s regex: the whole value, without
/// the `s` flag (`.` does not match a newline).
fn anchored(text: &str) -> String {
    format!("^(?:{text})$")
}

impl PartialEq for ReplaceRegex {
    fn eq(&self, other: &ReplaceRegex) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for ReplaceRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl Expr {
    /// The log query, if this is one.
    pub fn as_log(&self) -> Option<&LogExpr> {
        match self {
            Expr::Log(l) => Some(l),
            Expr::Sample(_) => None,
        }
    }

    /// The metric query, if this is one.
    pub fn as_sample(&self) -> Option<&SampleExpr> {
        match self {
            Expr::Sample(s) => Some(s),
            Expr::Log(_) => None,
        }
    }
}

impl SampleExpr {
    /// Calls `f` for every log range in the expression, left to right.
    pub fn for_each_range<'a>(&'a self, f: &mut dyn FnMut(&'a RangeAggregation)) {
        match self {
            SampleExpr::RangeAggregation(r) => f(r),
            SampleExpr::VectorAggregation(v) => v.expr.for_each_range(f),
            SampleExpr::BinOp(b) => {
                b.lhs.for_each_range(f);
                b.rhs.for_each_range(f);
            }
            SampleExpr::LabelReplace(l) => l.expr.for_each_range(f),
            SampleExpr::Literal(_) | SampleExpr::Vector(_) => {}
        }
    }
}
