//! Go (RE2) regular expressions on Rust's regex engine: the one compiler
//! every Go regex in Larch goes through (LogQL `=~`/`!~` matchers, `|~`
//! line filters, label filters, the `regexp` parser, `label_replace`, the
//! template functions, the agent's selectors, stages and relabelling).
//!
//! Go's syntax and Rust's are nearly the same; the differences that change
//! what is accepted or matched are handled here:
//! * `\d`, `\w`, `\s`, `\b` (and their negations) are ASCII-only in Go and
//!   Unicode-aware in Rust: [`translate`] writes them as explicit ASCII
//!   classes (`(?-u:\b)` for word boundaries), so `\d` does not match
//!   Arabic-Indic digits, as in Go.
//! * Go reads a `{` that does not start a valid repetition (`{`, `{,3}`,
//!   `{a}`) as a literal brace, Rust rejects it: such braces are escaped.
//!   Go's `\Q...\E` literal spans are rewritten as escaped text.
//! * Inside a bracket class Go treats `[` and doubled `&&`/`~~` as plain
//!   characters; Rust reads them as nested classes and set operations, so
//!   they are escaped.
//! * Rust accepts escapes Go rejects (`\<`, `\>`, `\u0041`, `\U...`) and
//!   repetition counts above 1000; [`check`] rejects them with Go's
//!   messages. Go accepts octal escapes (`\101`); the Rust parser needs a
//!   flag.
//! * Go accepts duplicate capture group names; Rust does not. [`check`]
//!   reports them apart ([`RegexInfo::duplicate_name`]) so callers can
//!   decide (Loki's `regexp` stage rejects them with its own message).
//!
//! Error messages are Go's (`error parsing regexp: invalid escape
//! sequence: `\q``), mapped from `regex-syntax`'s error kinds; the quoted
//! fragment follows Go's choice (the whole expression for unbalanced
//! parentheses, the class for an unclosed `[`, the offending escape or
//! operator otherwise).

use std::borrow::Cow;

use regex_syntax::ast::ErrorKind as AstKind;
use regex_syntax::hir::{Hir, HirKind};

/// What a valid expression contains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegexInfo {
    /// Number of capture groups (named or not).
    pub groups: usize,
    /// Names of the named groups, in order.
    pub names: Vec<String>,
    /// A group name used twice (Go accepts this; Rust cannot compile it).
    pub duplicate_name: Option<String>,
}

/// A regex Go would refuse; displays as Go's full message
/// (`error parsing regexp: missing closing ): `(``).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RegexError(pub String);

/// Largest compiled program accepted (Rust's default is 10 MiB; Go has no
/// such limit, so ours is generous).
const SIZE_LIMIT: usize = 64 << 20;

/// Rewrites a Go regex into a Rust one that accepts and matches the same
/// texts (see the module docs). Returns the input when no rewrite is
/// needed.
pub fn translate(p: &str) -> Cow<'_, str> {
    let needs = p.contains(['{', '[', '\\']);
    if !needs {
        return Cow::Borrowed(p);
    }
    Cow::Owned(rewrite(p, true).0)
}

/// Checks `p` against Go's syntax, then parses the translated expression
/// into the syntax tree that literal analysis reads (bytes mode: the tree
/// may match invalid UTF-8, as a `regex::bytes::Regex` does).
pub fn parse_hir(p: &str) -> Result<Hir, RegexError> {
    check(p)?;
    regex_syntax::ParserBuilder::new()
        .octal(true)
        .utf8(false)
        .build()
        .parse(&translate(p))
        .map_err(|e| {
            RegexError(go_error(
                "invalid or unsupported Perl syntax",
                &e.to_string(),
            ))
        })
}

fn anchored_src(p: &str, anchored: bool) -> String {
    let t = translate(p);
    if anchored {
        // Prometheus and Loki anchor label regexes as `^(?s:…)$`.
        format!("^(?s:{t})$")
    } else {
        t.into_owned()
    }
}

/// Compiles a Go regex for searching bytes (log lines). `anchored`
/// matches whole values only, as label matchers and label filters do.
pub fn compile_bytes(p: &str, anchored: bool) -> Result<regex::bytes::Regex, RegexError> {
    check(p)?;
    regex::bytes::RegexBuilder::new(&anchored_src(p, anchored))
        .octal(true)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(build_error)
}

/// What Rust's compiler refuses after Go's syntax check passed: a program
/// over the size limit, or a duplicate group name (which Go allows).
fn build_error(e: regex::Error) -> RegexError {
    match e {
        regex::Error::CompiledTooBig(_) => RegexError(go_error("expression too large", "")),
        other => RegexError(format!("error parsing regexp: {other}")),
    }
}

/// Compiles a Go regex for searching text (label values, extracted
/// values). `anchored` as for [`compile_bytes`].
pub fn compile(p: &str, anchored: bool) -> Result<regex::Regex, RegexError> {
    check(p)?;
    regex::RegexBuilder::new(&anchored_src(p, anchored))
        .octal(true)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(build_error)
}

/// The ASCII class Go means by a Perl escape letter, outside a bracket
/// class and inside one.
fn perl_class(letter: u8) -> Option<(&'static str, &'static str)> {
    Some(match letter {
        b'd' => ("[0-9]", "0-9"),
        b'D' => ("[^0-9]", "[^0-9]"),
        b'w' => ("[0-9A-Za-z_]", "0-9A-Za-z_"),
        b'W' => ("[^0-9A-Za-z_]", "[^0-9A-Za-z_]"),
        b's' => ("[\\t\\n\\x0C\\r ]", "\\t\\n\\x0C\\r "),
        b'S' => ("[^\\t\\n\\x0C\\r ]", "[^\\t\\n\\x0C\\r ]"),
        _ => return None,
    })
}

/// The rewrite and the positions (in the output) of inserted backslashes.
/// `ascii` also rewrites Perl classes and word boundaries (for compiling;
/// the syntax check leaves them, so error offsets map back simply).
fn rewrite(p: &str, ascii: bool) -> (String, Vec<usize>) {
    let b = p.as_bytes();
    let mut out = String::with_capacity(p.len() + 8);
    let mut inserted = Vec::new();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => {
                let Some(&n) = b.get(i + 1) else {
                    out.push('\\');
                    i += 1;
                    continue;
                };
                if n == b'Q' && !in_class {
                    i += 2;
                    let end = p[i..].find("\\E").map_or(p.len(), |e| i + e);
                    for ch in p[i..end].chars() {
                        if ch.is_ascii_punctuation() || ch == ' ' {
                            out.push('\\');
                        }
                        out.push(ch);
                    }
                    i = (end + 2).min(p.len());
                    continue;
                }
                if ascii {
                    if let Some((outside, inside)) = perl_class(n) {
                        out.push_str(if in_class { inside } else { outside });
                        i += 2;
                        continue;
                    }
                    if !in_class && matches!(n, b'b' | b'B') {
                        out.push_str(if n == b'b' { "(?-u:\\b)" } else { "(?-u:\\B)" });
                        i += 2;
                        continue;
                    }
                }
                // Copy the escape; `\x{..}`, `\p{..}` keep their braces.
                let n_ch = p[i + 1..].chars().next().unwrap_or('\\');
                out.push('\\');
                out.push(n_ch);
                i += 1 + n_ch.len_utf8();
                if matches!(n, b'x' | b'p' | b'P')
                    && b.get(i) == Some(&b'{')
                    && let Some(close) = p[i..].find('}')
                {
                    out.push_str(&p[i..=i + close]);
                    i += close + 1;
                }
                continue;
            }
            b'[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                if b.get(i) == Some(&b'^') {
                    out.push('^');
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    out.push(']');
                    i += 1;
                }
                continue;
            }
            b'[' if in_class && b.get(i + 1) == Some(&b':') => {
                // A POSIX class `[:alpha:]` inside a bracket expression.
                if let Some(close) = p[i..].find(":]") {
                    out.push_str(&p[i..i + close + 2]);
                    i += close + 2;
                    continue;
                }
            }
            b']' if in_class => in_class = false,
            // Go reads these literally inside a class; Rust would see a
            // nested class or a set operation.
            b'[' if in_class => {
                inserted.push(out.len());
                out.push('\\');
            }
            b'&' | b'~' if in_class && b.get(i + 1) == Some(&c) => {
                out.push(c as char);
                inserted.push(out.len());
                out.push('\\');
                out.push(c as char);
                i += 2;
                continue;
            }
            b'{' if !in_class && repeat_len(&b[i..]).is_none() => {
                inserted.push(out.len());
                out.push('\\');
            }
            _ => {}
        }
        let ch = p[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, inserted)
}

/// Length of a valid Go repetition `{n}`, `{n,}`, `{n,m}` at the start of
/// `b`, if there is one.
fn repeat_len(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    let start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == start {
        return None;
    }
    if b.get(i) == Some(&b',') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    (b.get(i) == Some(&b'}')).then_some(i + 1)
}

/// Checks `p` against Go's regex syntax and says what it contains.
pub fn check(p: &str) -> Result<RegexInfo, RegexError> {
    check_go_regex(p).map_err(RegexError)
}

fn check_go_regex(p: &str) -> Result<RegexInfo, String> {
    let go_only = go_only_errors(p);
    let first = |rust_at: usize, rust_msg: String| match &go_only {
        Some((at, msg)) if *at < rust_at => msg.clone(),
        _ => rust_msg,
    };
    let (t, inserted) = rewrite(p, false);
    let quoted = p.contains("\\Q");
    let to_orig = |off: usize| -> usize {
        if quoted {
            return off.min(p.len());
        }
        off - inserted.iter().filter(|&&x| x < off).count()
    };
    let mut parser = regex_syntax::ParserBuilder::new().octal(true).build();
    match parser.parse(&t) {
        Ok(hir) => {
            let mut info = RegexInfo::default();
            collect_captures(&hir, &mut info);
            if let Some((_, msg)) = go_only {
                return Err(msg);
            }
            for n in &info.names {
                if !n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    return Err(go_error("invalid named capture", &format!("(?P<{n}>")));
                }
            }
            Ok(info)
        }
        Err(regex_syntax::Error::Parse(e)) => {
            let span = e.span();
            let (s, end) = (to_orig(span.start.offset), to_orig(span.end.offset));
            let frag = p.get(s..end.max(s)).unwrap_or("");
            let kind = e.kind();
            if let AstKind::GroupNameDuplicate { .. } = kind {
                // Go accepts duplicate names: check the rest without them.
                return check_with_renamed_duplicate(p, frag);
            }
            Err(first(s, map_ast_error(kind, p, s, frag)))
        }
        Err(regex_syntax::Error::Translate(e)) => {
            let span = e.span();
            let (s, end) = (to_orig(span.start.offset), to_orig(span.end.offset));
            let frag = p.get(s..end.max(s)).unwrap_or("");
            Err(first(s, go_error("invalid character class range", frag)))
        }
        Err(_) => Err(first(0, go_error("invalid or unsupported Perl syntax", p))),
    }
}

/// Renames every repeated group name apart (in one pass) and checks
/// again, reporting the first repeated name.
fn check_with_renamed_duplicate(p: &str, first_dup: &str) -> Result<RegexInfo, String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(p.len() + 16);
    let mut rest = p;
    let mut renamed = 0usize;
    while let Some(i) = rest.find("(?") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let prefix_len = if after.starts_with("P<") {
            2
        } else if after.starts_with('<') {
            1
        } else {
            0
        };
        let name_end = after[prefix_len..].find('>');
        match (prefix_len, name_end) {
            (1 | 2, Some(e)) => {
                let name = &after[prefix_len..prefix_len + e];
                out.push_str("(?P<");
                out.push_str(name);
                if seen.contains(&name) {
                    renamed += 1;
                    out.push_str(&format!("__dup{renamed}"));
                } else {
                    seen.push(name);
                }
                out.push('>');
                rest = &after[prefix_len + e + 1..];
            }
            _ => {
                out.push_str("(?");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let mut parser = regex_syntax::ParserBuilder::new().octal(true).build();
    let mut info = RegexInfo::default();
    match parser.parse(&rewrite(&out, false).0) {
        Ok(hir) => collect_captures(&hir, &mut info),
        // Anything else wrong shows without the duplicates too.
        Err(_) if out != p => {
            check_go_regex(&out)?;
        }
        Err(_) => {}
    }
    for n in &mut info.names {
        if let Some((base, _)) = n.split_once("__dup") {
            *n = base.to_string();
        }
    }
    info.duplicate_name = Some(first_dup.to_string());
    Ok(info)
}

fn collect_captures(h: &Hir, info: &mut RegexInfo) {
    match h.kind() {
        HirKind::Capture(c) => {
            info.groups += 1;
            if let Some(n) = &c.name {
                info.names.push(n.to_string());
            }
            collect_captures(&c.sub, info);
        }
        HirKind::Repetition(r) => collect_captures(&r.sub, info),
        HirKind::Concat(xs) | HirKind::Alternation(xs) => {
            for x in xs {
                collect_captures(x, info);
            }
        }
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => {}
    }
}

/// Escapes, counts and stacked repetitions that Rust accepts but Go
/// rejects: the first one with its offset.
fn go_only_errors(p: &str) -> Option<(usize, String)> {
    let b = p.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    // Start of the previous repetition operator and whether a `?` may
    // still follow it (making it lazy).
    let mut last_repeat: Option<(usize, bool)> = None;
    while i < b.len() {
        if !in_class {
            let op_len = match b[i] {
                b'*' | b'+' | b'?' => Some(1),
                b'{' => repeat_len(&b[i..]),
                _ => None,
            };
            if let Some(len) = op_len {
                if b[i] == b'{' {
                    let body = &p[i + 1..i + len - 1];
                    let too_big = body
                        .split(',')
                        .any(|n| !n.is_empty() && n.parse::<u32>().map_or(true, |v| v > 1000));
                    if too_big {
                        return Some((i, go_error("invalid repeat count", &p[i..i + len])));
                    }
                }
                match last_repeat {
                    Some((start, true)) if b[i] == b'?' => last_repeat = Some((start, false)),
                    Some((start, _)) => {
                        return Some((
                            start,
                            go_error("invalid nested repetition operator", &p[start..i + len]),
                        ));
                    }
                    None => last_repeat = Some((i, true)),
                }
                i += len;
                continue;
            }
        }
        last_repeat = None;
        match b[i] {
            b'\\' => {
                let single_digit_backref = matches!(b.get(i + 1), Some(b'1'..=b'7'))
                    && !matches!(b.get(i + 2), Some(b'0'..=b'7'));
                match b.get(i + 1) {
                    Some(b'<' | b'>' | b'u' | b'U' | b'8' | b'9') => {
                        return Some((i, go_error("invalid escape sequence", &p[i..i + 2])));
                    }
                    Some(_) if single_digit_backref => {
                        return Some((i, go_error("invalid escape sequence", &p[i..i + 2])));
                    }
                    Some(b'Q') if !in_class => {
                        i = p[i..].find("\\E").map_or(p.len(), |e| i + e + 2);
                        continue;
                    }
                    _ => {}
                }
                i += 2;
                continue;
            }
            b'[' if !in_class => {
                in_class = true;
                i += 1;
                if b.get(i) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    i += 1;
                }
                continue;
            }
            b']' if in_class => in_class = false,
            _ => {}
        }
        i += 1;
    }
    None
}

fn map_ast_error(kind: &AstKind, p: &str, start: usize, frag: &str) -> String {
    match kind {
        AstKind::GroupUnclosed => go_error("missing closing )", p),
        AstKind::GroupUnopened => go_error("unexpected )", p),
        AstKind::ClassUnclosed => {
            let upto = (start + 1).min(p.len());
            let from = p[..upto].rfind('[').unwrap_or(0);
            go_error("missing closing ]", &p[from..])
        }
        AstKind::ClassEscapeInvalid
        | AstKind::EscapeHexEmpty
        | AstKind::EscapeHexInvalid
        | AstKind::EscapeHexInvalidDigit
        | AstKind::EscapeUnrecognized
        | AstKind::UnsupportedBackreference => go_error("invalid escape sequence", frag),
        AstKind::EscapeUnexpectedEof => go_error("trailing backslash at end of expression", ""),
        AstKind::ClassRangeInvalid | AstKind::ClassRangeLiteral | AstKind::UnicodeClassInvalid => {
            go_error("invalid character class range", frag)
        }
        AstKind::RepetitionMissing => {
            let start = start.min(p.len());
            let op_len = match p[start..].chars().next() {
                Some('{') => p[start..].find('}').map_or(1, |e| e + 1),
                Some(c) => c.len_utf8(),
                None => 0,
            };
            let mut end = start + op_len;
            if p[end..].starts_with('?') {
                end += 1;
            }
            // Go calls a repetition of a repetition "nested".
            let prev = p[..start].chars().next_back();
            if matches!(prev, Some('*' | '+' | '?' | '}')) {
                let from = start - prev.map_or(0, char::len_utf8);
                go_error("invalid nested repetition operator", &p[from..end])
            } else {
                go_error("missing argument to repetition operator", &p[start..end])
            }
        }
        AstKind::DecimalEmpty
        | AstKind::DecimalInvalid
        | AstKind::RepetitionCountInvalid
        | AstKind::RepetitionCountDecimalEmpty
        | AstKind::RepetitionCountUnclosed => go_error("invalid repeat count", frag),
        AstKind::GroupNameEmpty | AstKind::GroupNameInvalid | AstKind::GroupNameUnexpectedEof => {
            let from = p[..start.min(p.len())].rfind('(').unwrap_or(0);
            let to = p[from..].find('>').map_or(p.len(), |e| from + e + 1);
            go_error("invalid named capture", &p[from..to])
        }
        AstKind::NestLimitExceeded(_) => go_error("expression nests too deeply", ""),
        AstKind::CaptureLimitExceeded => go_error("expression too large", ""),
        _ => {
            let from = p[..start.min(p.len())].rfind('(').unwrap_or(start);
            let to = (start + frag.len()).min(p.len()).max(from);
            go_error("invalid or unsupported Perl syntax", &p[from..to])
        }
    }
}

fn go_error(code: &str, frag: &str) -> String {
    format!("error parsing regexp: {code}: `{frag}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate_syntax(p: &str) -> String {
        rewrite(p, false).0
    }

    #[test]
    fn perl_classes_are_ascii() {
        let re = compile_bytes(r"^\d+$", false).unwrap();
        assert!(re.is_match(b"123"));
        assert!(!re.is_match("١٢".as_bytes()));
        let w = compile(r"^\w$", false).unwrap();
        assert!(!w.is_match("é"));
        let inside = compile(r"^[\d.]+$", false).unwrap();
        assert!(inside.is_match("1.2") && !inside.is_match("١"));
        let neg = compile(r"^[\Da]+$", false).unwrap();
        assert!(neg.is_match("١a") && !neg.is_match("1"));
        let b = compile(r"\bx\b", false).unwrap();
        assert!(b.is_match("a x b") && b.is_match("éxé"));
        let s = compile(r"^\s$", true).unwrap();
        assert!(s.is_match("\t") && !s.is_match("\u{a0}") && !s.is_match("\x0b"));
    }

    #[test]
    fn go_class_literals() {
        let re = compile_bytes(r"[[]x", false).unwrap();
        assert!(re.is_match(b"[x"));
        let re = compile_bytes(r"[a&&b]", false).unwrap();
        assert!(re.is_match(b"&"));
        let re = compile_bytes(r"[[:digit:]]", false).unwrap();
        assert!(re.is_match(b"5"));
        let re = compile_bytes(r"[]a]", false).unwrap();
        assert!(re.is_match(b"]"));
    }

    #[test]
    fn anchoring_and_octal() {
        let re = compile_bytes("al.*", true).unwrap();
        assert!(re.is_match(b"alpha") && !re.is_match(b"xalpha"));
        assert!(re.is_match(b"al\nx"));
        assert!(compile_bytes(r"\101", false).unwrap().is_match(b"A"));
        assert_eq!(
            compile("(", false).unwrap_err().to_string(),
            "error parsing regexp: missing closing ): `(`"
        );
    }

    #[test]
    fn go_messages() {
        let err = |p: &str| check_go_regex(p).unwrap_err();
        assert_eq!(
            err(r"^^^^x43\q"),
            r"error parsing regexp: invalid escape sequence: `\q`"
        );
        assert_eq!(err("("), "error parsing regexp: missing closing ): `(`");
        assert_eq!(err("a)"), "error parsing regexp: unexpected ): `a)`");
        assert_eq!(
            err("x[a-"),
            "error parsing regexp: missing closing ]: `[a-`"
        );
        assert_eq!(
            err("[z-a]"),
            "error parsing regexp: invalid character class range: `z-a`"
        );
        assert_eq!(
            err("*a"),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert_eq!(
            err("a**"),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
        assert_eq!(
            err("a\\"),
            "error parsing regexp: trailing backslash at end of expression: ``"
        );
        assert_eq!(
            err(r"\<"),
            r"error parsing regexp: invalid escape sequence: `\<`"
        );
        assert_eq!(
            err("a{1001}"),
            "error parsing regexp: invalid repeat count: `{1001}`"
        );
        assert_eq!(
            err("(?=x)"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
        );
    }

    #[test]
    fn go_only_syntax_is_accepted() {
        assert!(check_go_regex("{").is_ok());
        assert!(check_go_regex(r#"{"level":"x"}"#).is_ok());
        assert!(check_go_regex("a{,2}").is_ok());
        assert!(check_go_regex(r"\Q.*\E+").is_ok());
        assert_eq!(translate_syntax("a{b}"), r"a\{b}");
        assert_eq!(translate_syntax("a{2}"), "a{2}");
        assert_eq!(translate_syntax(r"\x{41}[{]"), r"\x{41}[{]");
        assert_eq!(translate_syntax(r"\Q.\E"), r"\.");
        assert!(check_go_regex(r"\101").is_ok());
        assert!(check_go_regex(r"\1").is_err());
        assert!(check_go_regex("[[a]").is_ok());
        assert!(check_go_regex("[a&&b~~c]").is_ok());
        let re = regex::Regex::new(&translate_syntax("^[[&&]+{$")).unwrap();
        assert!(re.is_match("[&&[{"));
        let re = regex::Regex::new(&translate_syntax(r#"^\{"a":\d+}$"#)).unwrap();
        assert!(re.is_match(r#"{"a":12}"#));
    }

    #[test]
    fn captures() {
        let info = check_go_regex("(?P<a>x)(y)(?P<b>z)").unwrap();
        assert_eq!(info.groups, 3);
        assert_eq!(info.names, vec!["a", "b"]);
        let many: String = (0..2000)
            .map(|i| format!("(?P<n{i}>a)(?<n{i}>b)"))
            .collect();
        assert_eq!(
            check_go_regex(&many).unwrap().duplicate_name.as_deref(),
            Some("n0")
        );
        assert!(check_go_regex("(?P<x>.)(?P<x>.)(").is_err());
        let dup = check_go_regex("(?P<x>.)(?P<x>.)").unwrap();
        assert_eq!(dup.duplicate_name.as_deref(), Some("x"));
        assert_eq!(dup.names, vec!["x", "x"]);
    }
}
