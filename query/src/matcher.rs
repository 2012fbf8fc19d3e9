//! Label matchers: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
//!
//! Regular expressions are RE2 syntax and fully anchored, as in Prometheus
//! and Loki: `app=~"api"` matches only the value `api`. Go's syntax is
//! accepted where it differs from Rust's (a literal `{`, `\Q...\E`), see
//! `larch_go::regex` (Go's syntax and ASCII classes).

use std::fmt;

use regex::Regex;

use larch_go::quote::go_quote as quote_go;

/// The four matcher operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl MatchOp {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

/// A label matcher with its regular expression compiled once.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// Literal value or regular expression source.
    pub value: String,
    re: Option<Regex>,
}

/// A matcher whose regular expression does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("error parsing regexp: {0}")]
pub struct MatcherError(pub String);

impl Matcher {
    /// Builds a matcher, compiling the anchored regular expression for
    /// `=~` and `!~`.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let value = value.into();
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                larch_go::regex::compile(&value, true).map_err(|e| MatcherError(e.to_string()))?,
            ),
            MatchOp::Eq | MatchOp::NotEq => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// Whether `value` (the label's value, `""` when absent) satisfies the
    /// matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => value == self.value,
            (MatchOp::NotEq, _) => value != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(value),
            (MatchOp::NotRe, Some(re)) => !re.is_match(value),
            // `new` always compiles a regex for the regex operators.
            (MatchOp::Re | MatchOp::NotRe, None) => false,
        }
    }

    /// Whether the matcher accepts the empty value, i.e. also matches
    /// streams that lack the label entirely.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.name,
            self.op.as_str(),
            quote_go(&self.value)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators() {
        let eq = Matcher::new("a", MatchOp::Eq, "x").unwrap();
        assert!(eq.matches("x") && !eq.matches("xy"));
        let ne = Matcher::new("a", MatchOp::NotEq, "x").unwrap();
        assert!(!ne.matches("x") && ne.matches(""));
        let re = Matcher::new("a", MatchOp::Re, "x|y.*").unwrap();
        assert!(re.matches("x") && re.matches("yz") && !re.matches("zx"));
        let nre = Matcher::new("a", MatchOp::NotRe, ".+").unwrap();
        assert!(nre.matches_empty() && !nre.matches("q"));
    }

    #[test]
    fn bad_regex_is_an_error() {
        let err = Matcher::new("a", MatchOp::Re, "(").unwrap_err();
        assert!(err.to_string().starts_with("error parsing regexp"));
    }

    #[test]
    fn display() {
        let m = Matcher::new("a", MatchOp::NotRe, "x\"y").unwrap();
        assert_eq!(m.to_string(), r#"a!~"x\"y""#);
    }
}
