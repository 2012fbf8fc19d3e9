//! The syntax of `pattern` expressions (`| pattern "<ip> - <_> <status>"`
//! and the `|>`/`!>` line filters).
//!
//! A pattern is literal text with captures `<name>` (a name is an ASCII
//! letter or `_` followed by letters, digits or `_`) and wildcards `<_>`.
//! Anything else, including `<` not starting a capture, is literal. Loki
//! checks patterns when the query is parsed (`| pattern`) or planned
//! (`|>`), with the rules below; this module applies the same rules and
//! hands the pieces to whoever executes patterns.

/// A piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternNode<'a> {
    /// Literal text to match as is.
    Literal(&'a str),
    /// `<name>`, or `<_>` (name `_`) for a wildcard.
    Capture(&'a str),
}

/// Splits a pattern into literals and captures (adjacent literal text is
/// one node).
pub fn parse_pattern(p: &str) -> Vec<PatternNode<'_>> {
    let mut nodes = Vec::new();
    let b = p.as_bytes();
    let mut lit_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<'
            && let Some(len) = capture_len(&b[i..])
        {
            if lit_start < i {
                nodes.push(PatternNode::Literal(&p[lit_start..i]));
            }
            nodes.push(PatternNode::Capture(&p[i + 1..i + len - 1]));
            i += len;
            lit_start = i;
            continue;
        }
        i += 1;
    }
    if lit_start < b.len() {
        nodes.push(PatternNode::Literal(&p[lit_start..]));
    }
    nodes
}

fn capture_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let mut i = 2;
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        i += 1;
    }
    (b.get(i) == Some(&b'>')).then_some(i + 1)
}

/// Why a pattern was refused (Loki's texts).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The parser needs at least one named capture.
    #[error("at least one capture is required")]
    NoCapture,
    /// Two captures with nothing between them (`<a><b>`).
    #[error("found consecutive capture '{0}': invalid expression")]
    Consecutive(String),
    /// A capture name used twice.
    #[error("duplicate capture name ({0}): invalid expression")]
    Duplicate(String),
    /// Line filters may only use `<_>`.
    #[error("named captures are not allowed: found '<{0}>'")]
    NamedCapture(String),
}

/// Checks the pieces of a `| pattern` expression like Loki: at least one
/// named capture, no two captures side by side, no name twice.
pub fn check_parser(nodes: &[PatternNode<'_>]) -> Result<(), PatternError> {
    if !nodes
        .iter()
        .any(|n| matches!(n, PatternNode::Capture(c) if *c != "_"))
    {
        return Err(PatternError::NoCapture);
    }
    check_no_consecutive(nodes)?;
    let mut seen: Vec<&str> = Vec::new();
    for n in nodes {
        if let PatternNode::Capture(c) = n
            && *c != "_"
        {
            if seen.contains(c) {
                return Err(PatternError::Duplicate(c.to_string()));
            }
            seen.push(c);
        }
    }
    Ok(())
}

/// Checks the pieces of a `|>`/`!>` filter pattern like Loki: only `<_>`
/// wildcards, not side by side. The empty pattern is allowed.
pub fn check_filter(nodes: &[PatternNode<'_>]) -> Result<(), PatternError> {
    check_no_consecutive(nodes)?;
    for n in nodes {
        if let PatternNode::Capture(c) = n
            && *c != "_"
        {
            return Err(PatternError::NamedCapture(c.to_string()));
        }
    }
    Ok(())
}

fn check_no_consecutive(nodes: &[PatternNode<'_>]) -> Result<(), PatternError> {
    for w in nodes.windows(2) {
        if let [PatternNode::Capture(a), PatternNode::Capture(b)] = w {
            return Err(PatternError::Consecutive(format!("<{a}><{b}>")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            parse_pattern("<ip> - <_> [<1x>]"),
            vec![
                PatternNode::Capture("ip"),
                PatternNode::Literal(" - "),
                PatternNode::Capture("_"),
                PatternNode::Literal(" [<1x>]"),
            ]
        );
        assert_eq!(parse_pattern(""), vec![]);
    }

    fn check_pattern_parser(p: &str) -> Result<(), String> {
        check_parser(&parse_pattern(p)).map_err(|e| e.to_string())
    }

    fn check_pattern_filter(p: &str) -> Result<(), String> {
        check_filter(&parse_pattern(p)).map_err(|e| e.to_string())
    }

    #[test]
    fn checks() {
        assert!(check_pattern_parser("<a> <b>").is_ok());
        assert_eq!(
            check_pattern_parser("no captures here").unwrap_err(),
            "at least one capture is required"
        );
        assert_eq!(
            check_pattern_parser("<_> x").unwrap_err(),
            "at least one capture is required"
        );
        assert!(
            check_pattern_parser("<a><b>")
                .unwrap_err()
                .contains("consecutive")
        );
        assert!(
            check_pattern_parser("<a> <a>")
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(check_pattern_filter("").is_ok());
        assert!(check_pattern_filter("<_> foo <_>").is_ok());
        assert_eq!(
            check_pattern_filter("<verb> /api").unwrap_err(),
            "named captures are not allowed: found '<verb>'"
        );
    }
}
