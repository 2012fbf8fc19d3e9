//! Label filters: `| name="v"`, `| status >= 500`, `| took > 1s`,
//! `| size > 2KiB`, `| addr = ip("…")`, combined with `and` (also `,` and
//! whitespace) and `or`, `and` binding tighter (the parser builds the
//! tree; this module evaluates it).
//!
//! Semantics, as in Loki:
//! * A string filter reads an absent label as `""`; `__error__` reads the
//!   entry's error. Regexes are anchored (`^(?:re)$`).
//! * A number, duration or bytes filter drops an entry without the label.
//!   A value that does not convert keeps the entry and sets
//!   `__error__="LabelFilterErr"` with the conversion error as details,
//!   unless an error is already set (the first failure wins).
//! * An `ip()` filter keeps every entry that already carries an error.
//! * `or` skips its right side when the left passes; `and` always runs
//!   both (so both can fail a conversion).

use regex::bytes::Regex;

use super::convert::{parse_bytes, parse_go_duration, parse_go_float};
use super::ip::{IpPattern, IpPatternError};
use super::labels_builder::{ERROR_LABEL, LabelsBuilder};
use crate::matcher::MatchOp;
use larch_go::regex::RegexError;

/// Comparison of number, duration and bytes filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
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
    fn eval<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// A label filter as written.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelFilterSpec {
    /// Both sides must pass.
    And(Box<LabelFilterSpec>, Box<LabelFilterSpec>),
    /// Either side passes.
    Or(Box<LabelFilterSpec>, Box<LabelFilterSpec>),
    /// `name op "value"` with a selector-style operator.
    String {
        /// Label name.
        name: String,
        /// Operator.
        op: MatchOp,
        /// Value or regex.
        value: String,
    },
    /// `name op 1.5`.
    Number {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// The literal.
        value: f64,
    },
    /// `name op 250ms` (the literal in nanoseconds).
    Duration {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// The literal, in nanoseconds.
        value_ns: i64,
    },
    /// `name op 2KiB` (the literal in bytes).
    Bytes {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// The literal, in bytes.
        value: u64,
    },
    /// `name = ip("…")` or `name != ip("…")`.
    Ip {
        /// Label name.
        name: String,
        /// `!=`.
        negated: bool,
        /// The pattern.
        pattern: String,
    },
}

/// Why a label filter does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelFilterError {
    /// A bad regex.
    #[error(transparent)]
    Regex(#[from] RegexError),
    /// A bad `ip()` pattern.
    #[error(transparent)]
    Ip(#[from] IpPatternError),
}

#[derive(Clone, Debug)]
enum StrTest {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

/// A compiled label filter.
#[derive(Clone, Debug)]
pub struct LabelFilter(Node);

#[derive(Clone, Debug)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Str(String, StrTest),
    Number(String, CmpOp, f64),
    Duration(String, CmpOp, i64),
    Bytes(String, CmpOp, u64),
    Ip(String, bool, IpPattern),
}

const LABEL_FILTER_ERR: &str = "LabelFilterErr";

impl LabelFilter {
    /// Compiles a filter tree.
    pub fn new(spec: &LabelFilterSpec) -> Result<LabelFilter, LabelFilterError> {
        Ok(LabelFilter(Node::new(spec)?))
    }

    /// Whether the entry passes; may set `__error__`.
    pub fn process(&self, lb: &mut LabelsBuilder) -> bool {
        self.0.process(lb)
    }
}

impl Node {
    fn new(spec: &LabelFilterSpec) -> Result<Node, LabelFilterError> {
        Ok(match spec {
            LabelFilterSpec::And(a, b) => {
                Node::And(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterSpec::Or(a, b) => Node::Or(Box::new(Self::new(a)?), Box::new(Self::new(b)?)),
            LabelFilterSpec::String { name, op, value } => {
                let t = match op {
                    MatchOp::Eq => StrTest::Eq(value.clone()),
                    MatchOp::NotEq => StrTest::Ne(value.clone()),
                    MatchOp::Re => StrTest::Re(larch_go::regex::compile_bytes(value, true)?),
                    MatchOp::NotRe => StrTest::NotRe(larch_go::regex::compile_bytes(value, true)?),
                };
                Node::Str(name.clone(), t)
            }
            LabelFilterSpec::Number { name, op, value } => Node::Number(name.clone(), *op, *value),
            LabelFilterSpec::Duration { name, op, value_ns } => {
                Node::Duration(name.clone(), *op, *value_ns)
            }
            LabelFilterSpec::Bytes { name, op, value } => Node::Bytes(name.clone(), *op, *value),
            LabelFilterSpec::Ip {
                name,
                negated,
                pattern,
            } => Node::Ip(name.clone(), *negated, IpPattern::new(pattern)?),
        })
    }

    fn convert_failed(lb: &mut LabelsBuilder, details: &str) -> bool {
        if !lb.has_err() {
            lb.set_err(LABEL_FILTER_ERR);
            lb.set_err_details(details);
        }
        true
    }

    fn process(&self, lb: &mut LabelsBuilder) -> bool {
        match self {
            Node::And(a, b) => {
                let l = a.process(lb);
                let r = b.process(lb);
                l && r
            }
            Node::Or(a, b) => a.process(lb) || b.process(lb),
            Node::Str(name, t) => {
                let v = if name == ERROR_LABEL {
                    lb.err()
                } else {
                    lb.get(name).unwrap_or("")
                };
                match t {
                    StrTest::Eq(x) => v == x,
                    StrTest::Ne(x) => v != x,
                    StrTest::Re(re) => re.is_match(v.as_bytes()),
                    StrTest::NotRe(re) => !re.is_match(v.as_bytes()),
                }
            }
            Node::Number(name, op, want) => {
                let Some(v) = lb.get(name) else { return false };
                match parse_go_float(v) {
                    Ok(x) => op.eval(x, *want),
                    Err(e) => Self::convert_failed(lb, &e),
                }
            }
            Node::Duration(name, op, want) => {
                let Some(v) = lb.get(name) else { return false };
                match parse_go_duration(v) {
                    Ok(x) => op.eval(x, *want),
                    Err(e) => Self::convert_failed(lb, &e),
                }
            }
            Node::Bytes(name, op, want) => {
                let Some(v) = lb.get(name) else { return false };
                match parse_bytes(v) {
                    Ok(x) => op.eval(x, *want),
                    Err(e) => Self::convert_failed(lb, &e),
                }
            }
            Node::Ip(name, negated, ip) => {
                if lb.has_err() {
                    return true;
                }
                let Some(v) = lb.get(name) else { return false };
                ip.matches(v.as_bytes()) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::labels::LabelSet;
    use crate::pipeline::labels_builder::LabelCategory;

    fn lb(parsed: &[(&str, &str)]) -> LabelsBuilder {
        let mut b = LabelsBuilder::new(Arc::new(LabelSet::from_pairs([("app", "a")])));
        for (k, v) in parsed {
            b.set(LabelCategory::Parsed, k, v);
        }
        b
    }

    fn num(name: &str, op: CmpOp, v: f64) -> LabelFilterSpec {
        LabelFilterSpec::Number {
            name: name.into(),
            op,
            value: v,
        }
    }

    fn dur(name: &str, op: CmpOp, s: i64) -> LabelFilterSpec {
        LabelFilterSpec::Duration {
            name: name.into(),
            op,
            value_ns: s * 1_000_000_000,
        }
    }

    fn string(name: &str, op: MatchOp, v: &str) -> LabelFilterSpec {
        LabelFilterSpec::String {
            name: name.into(),
            op,
            value: v.into(),
        }
    }

    fn run(spec: &LabelFilterSpec, b: &mut LabelsBuilder) -> bool {
        LabelFilter::new(spec).unwrap().process(b)
    }

    #[test]
    fn strings_and_absent_labels() {
        let mut b = lb(&[("name", "alpha")]);
        assert!(run(&string("name", MatchOp::Eq, "alpha"), &mut b));
        assert!(!run(&string("name", MatchOp::Re, "alph"), &mut b));
        assert!(run(&string("name", MatchOp::Re, "(?i)ALPHA"), &mut b));
        assert!(run(&string("missing", MatchOp::Eq, ""), &mut b));
        assert!(!run(&string("missing", MatchOp::Re, ".+"), &mut b));
        assert!(run(&string("__error__", MatchOp::Eq, ""), &mut b));
    }

    #[test]
    fn numbers_durations_bytes() {
        let mut b = lb(&[("status", "500"), ("took", "1h30m"), ("size", "3mb")]);
        assert!(run(&num("status", CmpOp::Ge, 500.0), &mut b));
        assert!(!run(&num("status", CmpOp::Lt, 300.0), &mut b));
        assert!(run(&dur("took", CmpOp::Eq, 5400), &mut b));
        assert!(run(
            &LabelFilterSpec::Bytes {
                name: "size".into(),
                op: CmpOp::Gt,
                value: 1_000_000
            },
            &mut b
        ));
        // Absent label: dropped, no error.
        assert!(!run(&num("missing", CmpOp::Gt, 0.0), &mut b));
        assert!(!b.has_err());
    }

    #[test]
    fn conversion_errors_keep_the_line_and_the_first_error_wins() {
        let mut b = lb(&[("x", "nope"), ("y", "90")]);
        let spec = LabelFilterSpec::And(
            Box::new(dur("x", CmpOp::Gt, 1)),
            Box::new(dur("y", CmpOp::Gt, 1)),
        );
        assert!(run(&spec, &mut b));
        assert_eq!(b.err(), "LabelFilterErr");
        assert_eq!(b.err_details(), "time: invalid duration \"nope\"");
        let mut b = lb(&[("x", "nope"), ("y", "90")]);
        let spec = LabelFilterSpec::And(
            Box::new(dur("y", CmpOp::Gt, 1)),
            Box::new(dur("x", CmpOp::Gt, 1)),
        );
        run(&spec, &mut b);
        assert_eq!(b.err_details(), "time: missing unit in duration \"90\"");
    }

    #[test]
    fn or_short_circuits() {
        let mut b = lb(&[("lvl", "error"), ("took", "oops")]);
        let spec = LabelFilterSpec::Or(
            Box::new(string("lvl", MatchOp::Eq, "error")),
            Box::new(dur("took", CmpOp::Gt, 1)),
        );
        assert!(run(&spec, &mut b));
        assert!(!b.has_err());
        let spec = LabelFilterSpec::Or(
            Box::new(dur("took", CmpOp::Gt, 1)),
            Box::new(string("lvl", MatchOp::Eq, "error")),
        );
        assert!(run(&spec, &mut b));
        assert_eq!(b.err(), "LabelFilterErr");
    }

    #[test]
    fn ip_filters() {
        let ip = |negated, p: &str| LabelFilterSpec::Ip {
            name: "addr".into(),
            negated,
            pattern: p.into(),
        };
        let mut b = lb(&[("addr", "client 10.0.0.7:80")]);
        assert!(run(&ip(false, "10.0.0.0/8"), &mut b));
        assert!(!run(&ip(true, "10.0.0.0/8"), &mut b));
        let mut none = lb(&[]);
        assert!(!run(&ip(true, "10.0.0.0/8"), &mut none));
        none.set_err("JSONParserErr");
        assert!(run(&ip(false, "1.2.3.0/24"), &mut none));
        assert!(LabelFilter::new(&ip(false, "bogus")).is_err());
    }
}
