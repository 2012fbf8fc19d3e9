//! `${VAR}` in configuration files: expanded from the environment in the
//! file's text, before it is parsed, so that every value can take one
//! (`access_key_id: ${AWS_ACCESS_KEY_ID}`), as Loki's
//! `-config.expand-env=true` does.
//!
//! * `${VAR}` is the variable's value, or nothing when it is unset;
//! * `${VAR:-default}` is `default` when `VAR` is unset or empty;
//! * `$${` is a literal `${`;
//! * `${` followed by a digit is kept as it is: it is a capture group of
//!   a regex replacement (`replacement: ${1}` in relabelling rules), never
//!   a variable;
//! * any other `$` is kept as it is (regexes such as `foo$` need no
//!   escape).
//!
//! A `${` without its `}`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*`,
//! is an error naming the line. Values are inserted as they are, so a
//! value holding YAML syntax (a newline, `: `) changes the document; quote
//! the reference (`"${VAR}"`) where that matters.

/// A reference that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExpandError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// `text` with every `${...}` replaced by `lookup`'s answer.
pub fn expand_with(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let line_of = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_start) = after
            .strip_prefix("${")
            .filter(|b| !b.starts_with(|c: char| c.is_ascii_digit()))
        else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(ExpandError {
                line: line_of(after),
                message: "`${` without its closing `}`".to_string(),
            });
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ExpandError {
                line: line_of(after),
                message: format!(
                    "`${{{body}}}` is not a variable reference: names are letters, digits and `_`"
                ),
            });
        }
        let value = lookup(name).filter(|v| !(default.is_some() && v.is_empty()));
        match (value, default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {}
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` with every `${...}` replaced from the process environment.
pub fn expand_env(text: &str) -> Result<String, ExpandError> {
    expand_with(text, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("AKIA123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn references() {
        let e = |t: &str| expand_with(t, env).unwrap();
        assert_eq!(e("k: ${KEY}\n"), "k: AKIA123\n");
        assert_eq!(e("k: ${UNSET}"), "k: ");
        assert_eq!(e("k: ${UNSET:-dflt}"), "k: dflt");
        assert_eq!(e("k: ${EMPTY:-dflt}"), "k: dflt");
        assert_eq!(e("k: ${KEY:-dflt}"), "k: AKIA123");
        assert_eq!(e("re: 'a$' $x $$ $${KEY}"), "re: 'a$' $x $$ ${KEY}");
        assert_eq!(e("replacement: ${1}-${2}x"), "replacement: ${1}-${2}x");
        let err = expand_with("a: 1\nb: ${KEY", env).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(expand_with("${X-1}", env).is_err());
        assert!(expand_with("${}", env).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Text without `${` is returned unchanged; no input panics.
        #[test]
        fn text_without_references_is_unchanged(s in "[^{]*") {
            prop_assert_eq!(expand_with(&s, env).unwrap(), s);
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = expand_with(&s, env);
        }
    }
}
