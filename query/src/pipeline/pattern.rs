//! Loki's pattern language: literal text with `<name>` captures and `<_>`
//! wildcards, used by the `| pattern "…"` parser and the `|> "…"` /
//! `!> "…"` line filters.
//!
//! A capture is `<` + `[A-Za-z_][A-Za-z0-9_]*` + `>`; anything else is
//! literal text, and adjacent literal characters form one literal. The
//! parser ([`Pattern::matches`]) anchors the first literal at the line
//! start and lets each capture run to the next occurrence of the literal
//! after it; when that literal is missing, the capture takes the rest of
//! the line and extraction stops. The filter ([`Pattern::test`]) requires
//! every literal in order, non-empty text between consecutive literals,
//! and — when the pattern ends in a literal — that nothing follows it.

use memchr::memmem;

/// One element of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Literal(Vec<u8>),
    /// A capture name; `_` is the unnamed wildcard.
    Capture(String),
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    nodes: Vec<Node>,
    finders: Vec<Option<memmem::Finder<'static>>>,
    names: Vec<String>,
}

pub use larch_go::pattern::PatternError;
use larch_go::pattern::{PatternNode, check_filter, check_parser, parse_pattern};

/// The pieces of a pattern (`larch_go::pattern` is the one lexer).
fn lex(text: &str) -> Vec<Node> {
    parse_pattern(text)
        .into_iter()
        .map(|n| match n {
            PatternNode::Literal(l) => Node::Literal(l.as_bytes().to_vec()),
            PatternNode::Capture(c) => Node::Capture(c.to_string()),
        })
        .collect()
}

impl Pattern {
    fn build(nodes: Vec<Node>) -> Pattern {
        let finders = nodes
            .iter()
            .map(|n| match n {
                Node::Literal(l) => Some(memmem::Finder::new(l).into_owned()),
                Node::Capture(_) => None,
            })
            .collect();
        let names = nodes
            .iter()
            .filter_map(|n| match n {
                Node::Capture(c) if c != "_" => Some(c.clone()),
                _ => None,
            })
            .collect();
        Pattern {
            nodes,
            finders,
            names,
        }
    }

    /// Compiles a pattern for the `| pattern` parser: at least one named
    /// capture, no two captures in a row, no name twice.
    pub fn parser(text: &str) -> Result<Pattern, PatternError> {
        check_parser(&parse_pattern(text))?;
        Ok(Pattern::build(lex(text)))
    }

    /// Compiles a pattern for `|>`/`!>`: only `<_>` wildcards.
    pub fn line_filter(text: &str) -> Result<Pattern, PatternError> {
        check_filter(&parse_pattern(text))?;
        Ok(Pattern::build(lex(text)))
    }

    /// Names of the named captures, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The literal parts, in order (each one is in every matching line).
    pub fn literals(&self) -> impl Iterator<Item = &[u8]> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Literal(l) => Some(l.as_slice()),
            Node::Capture(_) => None,
        })
    }

    fn find(&self, idx: usize, hay: &[u8]) -> Option<usize> {
        self.finders
            .get(idx)
            .and_then(|f| f.as_ref())
            .and_then(|f| f.find(hay))
    }

    /// Extracts captures: calls `out(capture_index, value)` for each named
    /// capture that receives a value (leading captures only, when the line
    /// is short). Nothing is extracted when the leading literal is absent.
    pub fn matches<'l>(&self, line: &'l [u8], mut out: impl FnMut(usize, &'l [u8])) {
        if line.is_empty() || self.nodes.is_empty() {
            return;
        }
        let mut rest = line;
        let mut i = 0;
        if let Node::Literal(l) = &self.nodes[0] {
            if !rest.starts_with(l) {
                return;
            }
            rest = &rest[l.len()..];
            i = 1;
        }
        let mut named = 0;
        while i < self.nodes.len() {
            let Node::Capture(name) = &self.nodes[i] else {
                return;
            };
            let unnamed = name == "_";
            if i + 1 == self.nodes.len() {
                if !unnamed {
                    out(named, rest);
                }
                return;
            }
            let Node::Literal(lit) = &self.nodes[i + 1] else {
                return;
            };
            match self.find(i + 1, rest) {
                None => {
                    if !unnamed {
                        out(named, rest);
                    }
                    return;
                }
                Some(at) => {
                    if !unnamed {
                        out(named, &rest[..at]);
                        named += 1;
                    }
                    rest = &rest[at + lit.len()..];
                }
            }
            i += 2;
        }
    }

    /// The `|>` verdict for one line.
    pub fn test(&self, line: &[u8]) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let mut off = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let Node::Literal(lit) = n else { continue };
            let Some(j) = self.find(i, &line[off..]) else {
                return false;
            };
            if i != 0 && j == 0 {
                return false;
            }
            off += j + lit.len();
        }
        let ends_on_capture = matches!(self.nodes.last(), Some(Node::Capture(_)));
        ends_on_capture == (off != line.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &Pattern, line: &str) -> Vec<(String, String)> {
        let mut v = Vec::new();
        p.matches(line.as_bytes(), |i, val| {
            v.push((
                p.names()[i].clone(),
                String::from_utf8_lossy(val).into_owned(),
            ))
        });
        v
    }

    #[test]
    fn parser_extracts_and_skips() {
        let p = Pattern::parser("<method> <path> <status>").unwrap();
        assert_eq!(
            caps(&p, "GET /home 200"),
            vec![
                ("method".into(), "GET".into()),
                ("path".into(), "/home".into()),
                ("status".into(), "200".into())
            ]
        );
        let p = Pattern::parser("<method> <_> <status>").unwrap();
        assert_eq!(caps(&p, "GET /home 200").len(), 2);
        // A short line fills only the leading capture.
        let p = Pattern::parser("<method> <path>").unwrap();
        assert_eq!(caps(&p, "POST"), vec![("method".into(), "POST".into())]);
        // The leading literal anchors at the line start.
        let p = Pattern::parser("ts=<ts> msg").unwrap();
        assert!(caps(&p, "x ts=1 msg").is_empty());
        assert_eq!(caps(&p, "ts=1 msg"), vec![("ts".into(), "1".into())]);
    }

    #[test]
    fn parser_validation() {
        assert_eq!(
            Pattern::parser("no captures here").unwrap_err(),
            PatternError::NoCapture
        );
        assert!(matches!(
            Pattern::parser("<a><b>").unwrap_err(),
            PatternError::Consecutive(_)
        ));
        assert!(matches!(
            Pattern::parser("<a> <a>").unwrap_err(),
            PatternError::Duplicate(_)
        ));
        // `<1x>` and `<>` are literal text.
        let p = Pattern::parser("<1x> <a>").unwrap();
        assert_eq!(p.names(), ["a"]);
    }

    #[test]
    fn line_filter_verdicts() {
        let p = Pattern::line_filter("GET <_> 200").unwrap();
        assert!(p.test(b"GET /api 200"));
        assert!(!p.test(b"POST /api 500"));
        let whole = Pattern::line_filter("GET /api").unwrap();
        assert!(!whole.test(b"GET /api 200"));
        assert!(whole.test(b"GET /api"));
        let p = Pattern::line_filter("<_> bar <_>").unwrap();
        assert!(!p.test(b" bar "));
        assert!(p.test(b"foo bar baz"));
        assert!(Pattern::line_filter("<_>bar<_>").unwrap().test(b" bar "));
        assert!(
            !Pattern::line_filter("<_> bar")
                .unwrap()
                .test(b"foo bar baz")
        );
        assert!(matches!(
            Pattern::line_filter("<verb> /api 200").unwrap_err(),
            PatternError::NamedCapture(_)
        ));
        let empty = Pattern::line_filter("").unwrap();
        assert!(empty.test(b"") && !empty.test(b"x"));
    }
}
