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

/// Checks a `| pattern` expression like Loki: at least one named capture,
/// no two captures side by side, no name twice.
pub(crate) fn check_pattern_parser(p: &str) -> Result<(), String> {
    let nodes = parse_pattern(p);
    if !nodes
        .iter()
        .any(|n| matches!(n, PatternNode::Capture(c) if *c != "_"))
    {
        return Err("at least one capture is required".into());
    }
    check_no_consecutive(&nodes)?;
    let mut seen: Vec<&str> = Vec::new();
    for n in &nodes {
        if let PatternNode::Capture(c) = n
            && *c != "_"
        {
            if seen.contains(c) {
                return Err(format!("duplicate capture name ({c}): invalid expression"));
            }
            seen.push(c);
        }
    }
    Ok(())
}

/// Checks a `|>`/`!>` filter pattern like Loki: only `<_>` wildcards, not
/// side by side. The empty pattern is allowed.
pub(crate) fn check_pattern_filter(p: &str) -> Result<(), String> {
    let nodes = parse_pattern(p);
    check_no_consecutive(&nodes)?;
    for n in &nodes {
        if let PatternNode::Capture(c) = n
            && *c != "_"
        {
            return Err(format!("named captures are not allowed: found '<{c}>'"));
        }
    }
    Ok(())
}

fn check_no_consecutive(nodes: &[PatternNode<'_>]) -> Result<(), String> {
    for w in nodes.windows(2) {
        if let [PatternNode::Capture(a), PatternNode::Capture(b)] = w {
            return Err(format!(
                "found consecutive capture '<{a}><{b}>': invalid expression"
            ));
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
