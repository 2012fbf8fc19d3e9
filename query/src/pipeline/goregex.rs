//! Go (RE2) regular expressions on Rust's regex engine.
//!
//! LogQL regexes are Go's. Rust's `regex` crate accepts nearly the same
//! syntax, with three differences that change results and are translated
//! here before compiling:
//! * `\d`, `\w`, `\s`, `\b` are ASCII-only in Go and Unicode-aware in Rust;
//!   they become explicit ASCII classes (`(?-u:\b)` for word boundaries).
//! * Inside a bracket class Go treats `[` and doubled `&&`/`~~` as plain
//!   characters; Rust reads them as nested classes and set operations, so
//!   they are escaped.
//! * Go accepts octal escapes (`\101`); the Rust parser needs a flag.
//!
//! Compile errors are reported in Go's shape: `error parsing regexp: …`.

use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::Hir;

/// A regex that does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("error parsing regexp: {msg}: `{pattern}`")]
pub struct RegexError {
    /// What is wrong.
    pub msg: String,
    /// The pattern as written.
    pub pattern: String,
}

/// Rewrites Go syntax into equivalent Rust syntax (see module docs).
pub fn translate(go: &str) -> String {
    let mut out = String::with_capacity(go.len() + 8);
    let mut chars = go.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(e) = chars.next() else {
                out.push('\\');
                break;
            };
            let repl = match (in_class, e) {
                (false, 'd') => Some("[0-9]"),
                (false, 'D') => Some("[^0-9]"),
                (false, 'w') => Some("[0-9A-Za-z_]"),
                (false, 'W') => Some("[^0-9A-Za-z_]"),
                (false, 's') => Some("[\\t\\n\\x0C\\r ]"),
                (false, 'S') => Some("[^\\t\\n\\x0C\\r ]"),
                (false, 'b') => Some("(?-u:\\b)"),
                (false, 'B') => Some("(?-u:\\B)"),
                (true, 'd') => Some("0-9"),
                (true, 'w') => Some("0-9A-Za-z_"),
                (true, 's') => Some("\\t\\n\\x0C\\r "),
                _ => None,
            };
            match repl {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(e);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if !class_start => in_class = false,
                '[' => {
                    // POSIX classes `[:alpha:]` are the same in both.
                    let rest: String = chars.clone().take(12).collect();
                    if rest.starts_with(':') && rest[1..].contains(":]") {
                        out.push('[');
                        class_start = false;
                        continue;
                    }
                    out.push_str("\\[");
                    class_start = false;
                    continue;
                }
                '&' | '~' if chars.peek() == Some(&c) => {
                    out.push('\\');
                }
                _ => {}
            }
            out.push(c);
            if !(class_start && c == '^') {
                class_start = false;
            }
            continue;
        }
        if c == '[' {
            in_class = true;
            class_start = true;
            out.push('[');
            if chars.peek() == Some(&'^') {
                out.push('^');
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn error(pattern: &str, err: &regex_syntax::Error) -> RegexError {
    let msg = match err {
        regex_syntax::Error::Parse(e) => e.kind().to_string(),
        regex_syntax::Error::Translate(e) => e.kind().to_string(),
        other => other.to_string(),
    };
    RegexError {
        msg,
        pattern: pattern.to_string(),
    }
}

/// Parses a Go regex into the syntax tree our literal analysis reads.
pub fn parse_hir(go: &str) -> Result<Hir, RegexError> {
    let translated = translate(go);
    regex_syntax::ParserBuilder::new()
        .octal(true)
        .utf8(false)
        .build()
        .parse(&translated)
        .map_err(|e| error(go, &e))
}

/// Compiles a Go regex for searching bytes; `anchored` wraps it as
/// `^(?:…)$` (label filters match whole values).
pub fn compile(go: &str, anchored: bool) -> Result<Regex, RegexError> {
    // Parse first so syntax errors get the short Go-style message.
    parse_hir(go)?;
    let translated = translate(go);
    let src = if anchored {
        format!("^(?:{translated})$")
    } else {
        translated
    };
    RegexBuilder::new(&src)
        .octal(true)
        .size_limit(64 << 20)
        .build()
        .map_err(|e| RegexError {
            msg: e.to_string(),
            pattern: go.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii() {
        let re = compile(r"^\d+$", false).unwrap();
        assert!(re.is_match(b"123"));
        assert!(!re.is_match("١٢".as_bytes()));
        let w = compile(r"^\w$", false).unwrap();
        assert!(!w.is_match("é".as_bytes()));
        let inside = compile(r"^[\d.]+$", false).unwrap();
        assert!(inside.is_match(b"1.2"));
    }

    #[test]
    fn go_class_literals() {
        let re = compile(r"[[]x", false).unwrap();
        assert!(re.is_match(b"[x"));
        let re = compile(r"[a&&b]", false).unwrap();
        assert!(re.is_match(b"&"));
        let re = compile(r"[[:digit:]]", false).unwrap();
        assert!(re.is_match(b"5"));
        let re = compile(r"[]a]", false).unwrap();
        assert!(re.is_match(b"]"));
    }

    #[test]
    fn errors_read_like_go() {
        let e = compile("(", false).unwrap_err();
        assert!(e.to_string().starts_with("error parsing regexp: "), "{e}");
        assert!(e.to_string().ends_with("`(`"));
    }

    #[test]
    fn anchoring_and_octal() {
        let re = compile("al.*", true).unwrap();
        assert!(re.is_match(b"alpha") && !re.is_match(b"xalpha"));
        assert!(compile(r"\101", false).unwrap().is_match(b"A"));
    }
}
