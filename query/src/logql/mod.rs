//! LogQL: syntax tree, parser and printer.
//!
//! This module reads LogQL exactly as Loki 3 does (the grammar of Loki's
//! `syntax.y`, the lexer rules of its `lex.go`, the checks of its
//! `parser.go` and AST constructors) and reports rejected queries with
//! Loki's own error texts and positions. The tree ([`Expr`]) is what the
//! engine compiles; [`std::fmt::Display`] on it prints Loki's canonical form.
//!
//! Layout:
//! * `ast`: the tree. Stable: the pipeline and the engine build on it.
//! * `print`: canonical text (`Display`).
//! * `duration`: Prometheus and Go durations, byte sizes (also used by the
//!   query API for `step`, `since` and the like).
//! * `quote`: Go string quoting.
//! * `error`: [`ParseError`] with Loki's wording.

mod ast;
mod duration;
mod error;
mod print;
mod quote;

pub use ast::{
    BinOp, BinOpKind, Cardinality, CmpOp, Expr, Grouping, LabelExtraction, LabelFilter,
    LabelFormat, LabelReplace, LineFilter, LineFilterOp, LineFilterValue, LogExpr, LogRange,
    NamedMatcher, RangeAggregation, RangeOp, SampleExpr, Stage, Unwrap, UnwrapConversion,
    VectorAggregation, VectorMatching, VectorOp,
};
pub use duration::{
    BytesError, Duration, DurationError, format_bytes, format_bytes_exact, parse_bytes,
    parse_duration, parse_go_duration, parse_prometheus_duration,
};
pub use error::ParseError;
pub use quote::go_quote;
