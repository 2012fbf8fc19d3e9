//! Parse errors with Loki's exact wording.
//!
//! Loki reports every rejected query as `parse error at line L, col C: msg`
//! or, when the error has no position (validation errors found after the
//! syntax was read), `parse error : msg` (with the space before the colon).
//! Clients and Grafana show these texts as they are, and some tools match
//! on them, so [`ParseError`]'s `Display` is exactly Loki's.
//!
//! Positions follow Loki's lexer: lines from 1, columns from 1 counted in
//! characters, pointing at the start of the offending token. Like Loki, a
//! few tokens that the lexer reads in more than one step (ranges `[5m]`,
//! durations, byte sizes, two-character operators, parser flags) report
//! line 0 with the token's column.
//!
//! A few entry-point errors are not parse errors in Loki and carry no
//! prefix (`only log selector is supported`); see [`ParseError::plain`].

use std::fmt;

/// A query Loki would reject, with Loki's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line of the error (1-based; 0 when unknown or when Loki reports 0).
    pub line: u32,
    /// Column of the error in characters (1-based; 0 when unknown).
    pub col: u32,
    /// The message after the prefix.
    pub msg: String,
    plain: bool,
}

impl ParseError {
    /// An error at a position.
    pub fn at(line: u32, col: u32, msg: impl Into<String>) -> ParseError {
        ParseError {
            line,
            col,
            msg: msg.into(),
            plain: false,
        }
    }

    /// A validation error without position (`parse error : msg`).
    pub fn validation(msg: impl Into<String>) -> ParseError {
        ParseError::at(0, 0, msg)
    }

    /// An error Loki returns without the `parse error` prefix, such as
    /// `only sample expression supported`.
    pub fn plain(msg: impl Into<String>) -> ParseError {
        ParseError {
            line: 0,
            col: 0,
            msg: msg.into(),
            plain: true,
        }
    }

    /// Whether the error is one of Loki's parse errors (HTTP 400 with the
    /// `parse error` prefix) rather than a plain entry-point error.
    pub fn is_parse_error(&self) -> bool {
        !self.plain
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.plain {
            f.write_str(&self.msg)
        } else if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.msg)
        } else {
            write!(
                f,
                "parse error at line {}, col {}: {}",
                self.line, self.col, self.msg
            )
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_loki() {
        assert_eq!(
            ParseError::at(1, 15, "syntax error: unexpected $end").to_string(),
            "parse error at line 1, col 15: syntax error: unexpected $end"
        );
        assert_eq!(
            ParseError::at(0, 21, "missing closing ']' in duration").to_string(),
            "parse error at line 0, col 21: missing closing ']' in duration"
        );
        assert_eq!(
            ParseError::validation("grouping not allowed for rate aggregation").to_string(),
            "parse error : grouping not allowed for rate aggregation"
        );
        assert_eq!(
            ParseError::plain("only log selector is supported").to_string(),
            "only log selector is supported"
        );
    }
}
