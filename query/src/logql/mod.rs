//! LogQL: syntax tree, parser, printer and plan-time checks.
//!
//! This module reads LogQL exactly as Loki 3 does (the grammar of Loki's
//! `syntax.y`, the lexer rules of its `lex.go`, the checks of its
//! `parser.go` and AST constructors) and reports rejected queries with
//! Loki's own error texts and positions. The tree ([`Expr`]) is what the
//! engine compiles; [`std::fmt::Display`] on it prints Loki's canonical form
//! (what `/loki/api/v1/format_query` returns).
//!
//! Entry points mirror Loki's: [`parse_expr`] (any query, validated),
//! [`parse_sample_expr`] (metric queries), [`parse_log_selector`] (log
//! queries, optionally validated), [`parse_matchers`] (bare selectors, for
//! the series and label APIs). [`check_expr`] adds the checks Loki's engine
//! makes when it builds a pipeline (regexes of line filters, `ip()`
//! patterns, JSON paths, templates), so a query API that calls both refuses
//! everything Loki refuses before reading data.
//!
//! Layout, one concern per module:
//! * `ast`: the tree. Stable: the pipeline and the engine build on it.
//! * `lexer`: tokens with Loki's rules on top of Go's scanner.
//! * `parser`: recursive descent and precedence climbing; Loki's
//!   validation order for deferred errors.
//! * `check`: plan-time checks of pipeline stages.
//! * `print`: canonical text (`Display`).
//!
//! Go's syntax rules that LogQL embeds (regexes, patterns, templates,
//! durations, byte sizes, number and string literals) are checked with
//! `larch-go`, re-exported here where callers of this crate need them.
//! * `error`: [`ParseError`] with Loki's wording.
//! * `fuzz`: the property the fuzz target (`query/fuzz`) checks.

mod ast;
mod check;
mod error;
mod fuzz;
mod lexer;
mod parser;
mod print;

pub use ast::{
    BinOp, BinOpKind, Cardinality, CmpOp, Expr, Grouping, LabelExtraction, LabelFilter,
    LabelFormat, LabelReplace, LineFilter, LineFilterOp, LineFilterValue, LogExpr, LogRange,
    NamedMatcher, RangeAggregation, RangeOp, ReplaceRegex, SampleExpr, Stage, Unwrap,
    UnwrapConversion, VectorAggregation, VectorMatching, VectorOp,
};
pub use check::check_expr;
pub use error::ParseError;
#[doc(hidden)]
pub use fuzz::fuzz_one;
pub use larch_go::bytes::{BytesError, format_bytes, format_bytes_exact, parse_bytes};
pub use larch_go::duration::{
    Duration, DurationError, parse_duration, parse_go_duration, parse_prometheus_duration,
};
pub use larch_go::pattern::{PatternNode, parse_pattern};
pub use larch_go::quote::go_quote;
pub use larch_go::regex::translate as go_regex_to_rust;
pub use parser::{
    MAX_DEPTH, MAX_QUERY_BYTES, parse_expr, parse_expr_bytes, parse_log_selector, parse_matchers,
    parse_sample_expr,
};

/// `strconv.ParseFloat` for LogQL's number texts; the error is Go's reason
/// (`invalid syntax`, `value out of range`), which the parser puts in
/// Loki's sentence.
fn parse_go_float(s: &str) -> Result<f64, larch_go::strconv::FloatKind> {
    larch_go::strconv::parse_float(s).map_err(|e| e.kind)
}

/// A Go regex's syntax check, with Go's full message.
fn check_go_regex(p: &str) -> Result<larch_go::regex::RegexInfo, String> {
    larch_go::regex::check(p).map_err(|e| e.0)
}
