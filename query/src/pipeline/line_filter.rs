//! Line filters: `|=`, `!=`, `|~`, `!~`, `|>`, `!>`, `or` chains and
//! `ip()`, compiled into per-line predicates.
//!
//! A [`LineFilterSpec`] is one filter as written: an operator and one or
//! more `or`-ed arguments, all of which take the operator's type (Loki's
//! rule: `!= "a" or "b"` means `!= "a" != "b"`). A positive filter keeps a
//! line that matches any argument, a negative one keeps a line that
//! matches none.
//!
//! Regexes are simplified the way Loki simplifies them, which is also
//! what makes them fast: a plain literal (`|~ "error"`) becomes a
//! substring test, `(?i)literal` a case-insensitive one, `a|b` an or of
//! literals, `.*` always-true and `.+` non-empty. What stays a regex is
//! analysed for how the block matcher can search it (see
//! [`super::block`]): whether it has look-around assertions, and which
//! literals every match must start or end with.

use memchr::memmem;
use regex::bytes::Regex;
use regex_syntax::hir::{Hir, HirKind, literal};

use super::ip::{IpPattern, IpPatternError};
use super::pattern::{Pattern, PatternError};
use larch_go::regex::{self as goregex, RegexError};

/// Line filter operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    /// `|=`: contains.
    Contains,
    /// `!=`: does not contain.
    NotContains,
    /// `|~`: regex matches.
    Regex,
    /// `!~`: regex does not match.
    NotRegex,
    /// `|>`: pattern matches.
    Pattern,
    /// `!>`: pattern does not match.
    NotPattern,
}

impl LineFilterOp {
    /// Whether the operator keeps lines that do *not* match.
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        )
    }
}

/// One argument of a line filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineFilterArg {
    /// A string: substring, regex or pattern depending on the operator.
    Text(String),
    /// `ip("…")`: only with `|=` and `!=`.
    Ip(String),
}

/// A line filter as written: operator and `or`-ed arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineFilterSpec {
    /// The operator of the first argument, shared by every `or` operand.
    pub op: LineFilterOp,
    /// At least one argument.
    pub args: Vec<LineFilterArg>,
}

impl LineFilterSpec {
    /// A filter with a single text argument.
    pub fn new(op: LineFilterOp, text: impl Into<String>) -> LineFilterSpec {
        LineFilterSpec {
            op,
            args: vec![LineFilterArg::Text(text.into())],
        }
    }
}

/// Why a line filter does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineFilterError {
    /// A regex that does not parse.
    #[error(transparent)]
    Regex(#[from] RegexError),
    /// A bad `|>` pattern.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// A bad `ip()` pattern.
    #[error(transparent)]
    Ip(#[from] IpPatternError),
    /// `ip()` with an operator other than `|=`/`!=`.
    #[error("ip: invalid operation")]
    IpOperation,
    /// A filter without arguments.
    #[error("line filter without an argument")]
    Empty,
}

/// How the block matcher may search a regex over a whole buffer.
#[derive(Clone, Debug)]
pub(crate) struct RegexInfo {
    /// No anchors or word boundaries: a match inside an entry is a match
    /// of the buffer at the same place and vice versa.
    pub buffer_safe: bool,
    /// Literals one of which starts (or ends) every match, each at least
    /// two bytes; empty when none are known.
    pub required: Vec<Vec<u8>>,
}

/// One `or` operand, compiled.
#[derive(Clone, Debug)]
pub(crate) enum Alt {
    /// Matches every line.
    True,
    /// Matches every non-empty line (`.+`).
    NonEmpty,
    /// Substring.
    Literal(Box<memmem::Finder<'static>>),
    /// Case-insensitive substring; the needle is lowercased.
    Lower(Vec<u8>),
    /// A regex that could not be simplified.
    Regex(Regex, RegexInfo),
    /// A `|>` pattern.
    Pattern(Pattern),
    /// `ip()`.
    Ip(IpPattern),
}

impl Alt {
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        match self {
            Alt::True => true,
            Alt::NonEmpty => !line.is_empty(),
            Alt::Literal(f) => f.find(line).is_some(),
            Alt::Lower(n) => contains_lower(line, n),
            Alt::Regex(re, _) => re.is_match(line),
            Alt::Pattern(p) => p.test(line),
            Alt::Ip(ip) => ip.matches(line),
        }
    }
}

/// A compiled line filter.
#[derive(Clone, Debug)]
pub struct LineFilter {
    pub(crate) negated: bool,
    pub(crate) alts: Vec<Alt>,
}

impl LineFilter {
    /// Compiles a filter.
    pub fn new(spec: &LineFilterSpec) -> Result<LineFilter, LineFilterError> {
        if spec.args.is_empty() {
            return Err(LineFilterError::Empty);
        }
        let mut alts = Vec::new();
        for arg in &spec.args {
            match (spec.op, arg) {
                (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterArg::Ip(p)) => {
                    alts.push(Alt::Ip(IpPattern::new(p)?))
                }
                (_, LineFilterArg::Ip(_)) => return Err(LineFilterError::IpOperation),
                (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterArg::Text(t)) => {
                    alts.push(literal_alt(t.as_bytes()))
                }
                (LineFilterOp::Regex | LineFilterOp::NotRegex, LineFilterArg::Text(t)) => {
                    compile_regex(t, &mut alts)?
                }
                (LineFilterOp::Pattern | LineFilterOp::NotPattern, LineFilterArg::Text(t)) => {
                    alts.push(Alt::Pattern(Pattern::line_filter(t)?))
                }
            }
        }
        // Loki's `or` drops always-true operands when others remain.
        if alts.len() > 1 && alts.iter().any(|a| !matches!(a, Alt::True)) {
            alts.retain(|a| !matches!(a, Alt::True));
        }
        Ok(LineFilter {
            negated: spec.op.is_negative(),
            alts,
        })
    }

    /// Whether `line` passes the filter.
    pub fn matches(&self, line: &[u8]) -> bool {
        self.alts.iter().any(|a| a.matches(line)) != self.negated
    }

    /// Whether the filter passes every line.
    pub(crate) fn is_always_true(&self) -> bool {
        !self.negated && self.alts.iter().any(|a| matches!(a, Alt::True))
    }

    /// Whether the filter passes no line.
    pub(crate) fn is_always_false(&self) -> bool {
        self.negated && self.alts.iter().any(|a| matches!(a, Alt::True))
    }
}

fn literal_alt(needle: &[u8]) -> Alt {
    if needle.is_empty() {
        Alt::True
    } else {
        Alt::Literal(Box::new(memmem::Finder::new(needle).into_owned()))
    }
}

fn compile_regex(src: &str, alts: &mut Vec<Alt>) -> Result<(), LineFilterError> {
    let hir = goregex::parse_hir(src)?;
    // `(?i)literal` and `(?i)a|b`: Loki's case-insensitive substring test.
    if let Some(rest) = src.strip_prefix("(?i)")
        && !rest.contains("(?")
    {
        let inner = goregex::parse_hir(rest)?;
        if let Some(simple) = simplify(&inner) {
            for a in simple {
                alts.push(match a {
                    Alt::Literal(f) => Alt::Lower(lower_needle(f.needle())),
                    other => other,
                });
            }
            return Ok(());
        }
    }
    if let Some(simple) = simplify(&hir) {
        alts.extend(simple);
        return Ok(());
    }
    let re = goregex::compile_bytes(src, false)?;
    let buffer_safe = hir.properties().look_set().is_empty();
    if buffer_safe && re.is_match(b"") {
        // Without assertions, a regex matching "" matches every line.
        alts.push(Alt::True);
        return Ok(());
    }
    let required = required_literals(&hir);
    alts.push(Alt::Regex(
        re,
        RegexInfo {
            buffer_safe,
            required,
        },
    ));
    Ok(())
}

fn is_dot_star(h: &Hir, min: u32) -> bool {
    match h.kind() {
        HirKind::Repetition(r) => {
            r.min == min
                && r.max.is_none()
                && matches!(r.sub.kind(), HirKind::Class(_))
                && !r.sub.properties().is_literal()
                && class_is_any_but_newline(&r.sub)
        }
        HirKind::Capture(c) => is_dot_star(&c.sub, min),
        _ => false,
    }
}

fn class_is_any_but_newline(h: &Hir) -> bool {
    // `.` without (?s): every byte/char except `\n`.
    let dot = Hir::dot(regex_syntax::hir::Dot::AnyCharExceptLF);
    let dot_bytes = Hir::dot(regex_syntax::hir::Dot::AnyByteExceptLF);
    *h == dot || *h == dot_bytes
}

/// Loki's regex simplifier: an alternation of literals (optionally
/// surrounded by `.*`), `.*`, `.+` or the empty regex.
fn simplify(h: &Hir) -> Option<Vec<Alt>> {
    match h.kind() {
        HirKind::Empty => Some(vec![Alt::True]),
        HirKind::Literal(l) => Some(vec![literal_alt(&l.0)]),
        HirKind::Capture(c) => simplify(&c.sub),
        HirKind::Alternation(subs) => {
            let mut out = Vec::new();
            for s in subs {
                out.extend(simplify(s)?);
            }
            Some(out)
        }
        HirKind::Repetition(_) if is_dot_star(h, 0) => Some(vec![Alt::True]),
        HirKind::Repetition(_) if is_dot_star(h, 1) => Some(vec![Alt::NonEmpty]),
        HirKind::Concat(subs) => {
            let mut core: &[Hir] = subs;
            while let Some((first, rest)) = core.split_first() {
                if is_dot_star(first, 0) {
                    core = rest;
                } else {
                    break;
                }
            }
            while let Some((last, rest)) = core.split_last() {
                if is_dot_star(last, 0) {
                    core = rest;
                } else {
                    break;
                }
            }
            match core {
                [one] => match one.kind() {
                    HirKind::Literal(l) => Some(vec![literal_alt(&l.0)]),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// Literals (each ≥ 2 bytes) one of which every match starts or ends with.
fn required_literals(h: &Hir) -> Vec<Vec<u8>> {
    for kind in [literal::ExtractKind::Prefix, literal::ExtractKind::Suffix] {
        let mut ex = literal::Extractor::new();
        ex.kind(kind);
        let mut seq = ex.extract(h);
        seq.optimize_for_prefix_by_preference();
        if let Some(lits) = seq.literals()
            && !lits.is_empty()
            && lits.iter().all(|l| l.len() >= 2)
            && lits.len() <= 64
        {
            return lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        }
    }
    Vec::new()
}

/// Go's `unicode.ToLower` for one character.
pub(crate) fn lower_char(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Lowercases a needle the way Go's `bytes.ToLower` does.
pub(crate) fn lower_needle(n: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(n) {
        Ok(s) => s.chars().map(lower_char).collect::<String>().into_bytes(),
        Err(_) => n.to_ascii_lowercase(),
    }
}

fn decode_char(b: &[u8]) -> Option<(char, usize)> {
    let len = match b.first()? {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(b.get(..len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

/// Loki's case-insensitive substring test: `needle` is lowercase; each
/// character of the line is lowered before comparing. The first byte of a
/// match is compared ASCII-lowered, as Loki does.
pub(crate) fn contains_lower(line: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    if needle.len() > line.len() {
        return false;
    }
    let max = line.len() - needle.len();
    let mut i = 0;
    while i <= max {
        if line[i].to_ascii_lowercase() != first {
            i += 1;
            continue;
        }
        let (mut lp, mut np) = (i, 0);
        let mut ok = true;
        while lp < line.len() && np < needle.len() {
            let (c, s) = (line[lp], needle[np]);
            if c < 0x80 && s < 0x80 {
                if c.to_ascii_lowercase() != s {
                    ok = false;
                    break;
                }
                lp += 1;
                np += 1;
                continue;
            }
            let Some((lr, ll)) = decode_char(&line[lp..]) else {
                if c.to_ascii_lowercase() != s {
                    ok = false;
                    break;
                }
                lp += 1;
                np += 1;
                continue;
            };
            let Some((nr, nl)) = decode_char(&needle[np..]) else {
                ok = false;
                break;
            };
            if lower_char(lr) != nr {
                ok = false;
                break;
            }
            lp += ll;
            np += nl;
        }
        if ok && np == needle.len() {
            return true;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: LineFilterOp, args: &[&str]) -> LineFilter {
        LineFilter::new(&LineFilterSpec {
            op,
            args: args
                .iter()
                .map(|a| LineFilterArg::Text(a.to_string()))
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn contains_and_not() {
        let c = f(LineFilterOp::Contains, &["err"]);
        assert!(c.matches(b"req id=1 err=connrefused"));
        assert!(!c.matches(b"req id=2 ok"));
        assert!(!f(LineFilterOp::Contains, &["ERR"]).matches(b"err"));
        assert!(f(LineFilterOp::Contains, &[""]).matches(b"anything"));
        let n = f(LineFilterOp::NotContains, &["err"]);
        assert!(!n.matches(b"err") && n.matches(b"ok"));
        // `!= ""` keeps nothing, as in Loki.
        assert!(!f(LineFilterOp::NotContains, &[""]).matches(b"x"));
    }

    #[test]
    fn or_chains_inherit_the_operator() {
        let p = f(LineFilterOp::Contains, &["error", "warn"]);
        assert!(p.matches(b"level=warn") && !p.matches(b"level=info"));
        let n = f(LineFilterOp::NotContains, &["error", "warn"]);
        assert!(!n.matches(b"level=warn") && n.matches(b"level=info"));
        let r = f(LineFilterOp::NotRegex, &["err.r", "wa.n"]);
        assert!(r.matches(b"level=info z") && !r.matches(b"level=error"));
        // An empty operand is dropped from an or chain.
        let e = f(LineFilterOp::NotContains, &["", "x"]);
        assert!(e.matches(b"y") && !e.matches(b"x"));
    }

    #[test]
    fn regexes_and_simplification() {
        let r = f(LineFilterOp::Regex, &["code=5.."]);
        assert!(r.matches(b"code=500 fail") && !r.matches(b"CODE=503"));
        let ci = f(LineFilterOp::Regex, &["(?i)code=5.."]);
        assert!(ci.matches(b"CODE=503 down"));
        let lit = f(LineFilterOp::Regex, &["(?i)error"]);
        assert!(matches!(lit.alts[0], Alt::Lower(_)));
        assert!(lit.matches(b"an ERROR here") && !lit.matches(b"erro"));
        let alt = f(LineFilterOp::Regex, &["foo|bar"]);
        assert_eq!(alt.alts.len(), 2);
        assert!(f(LineFilterOp::Regex, &[".*"]).is_always_true());
        assert!(f(LineFilterOp::NotRegex, &[".*"]).is_always_false());
        let plus = f(LineFilterOp::Regex, &[".+"]);
        assert!(plus.matches(b"\n") && !plus.matches(b""));
        let dotted = f(LineFilterOp::Regex, &[".*foo.*"]);
        assert!(matches!(dotted.alts[0], Alt::Literal(_)));
        let bounded = f(LineFilterOp::Regex, &[r"\bERROR\b"]);
        match &bounded.alts[0] {
            Alt::Regex(_, info) => {
                assert!(!info.buffer_safe);
                assert_eq!(info.required, vec![b"ERROR".to_vec()]);
            }
            other => panic!("{other:?}"),
        }
        let e = LineFilter::new(&LineFilterSpec::new(LineFilterOp::Regex, "(")).unwrap_err();
        assert!(e.to_string().starts_with("error parsing regexp"));
    }

    #[test]
    fn patterns_and_ips() {
        let p = f(LineFilterOp::Pattern, &["GET <_> 200"]);
        assert!(p.matches(b"GET /api 200") && !p.matches(b"POST /api 500"));
        let ip = LineFilter::new(&LineFilterSpec {
            op: LineFilterOp::Contains,
            args: vec![
                LineFilterArg::Ip("192.168.1.0/24".into()),
                LineFilterArg::Text("special".into()),
            ],
        })
        .unwrap();
        assert!(ip.matches(b"src 192.168.1.10 ok") && ip.matches(b"special no ip"));
        assert!(!ip.matches(b"src 10.0.0.9"));
        let bad = LineFilter::new(&LineFilterSpec {
            op: LineFilterOp::Regex,
            args: vec![LineFilterArg::Ip("10.0.0.0/8".into())],
        });
        assert_eq!(bad.unwrap_err().to_string(), "ip: invalid operation");
        let bad = LineFilter::new(&LineFilterSpec {
            op: LineFilterOp::Contains,
            args: vec![LineFilterArg::Ip("".into())],
        });
        assert!(
            bad.unwrap_err()
                .to_string()
                .starts_with("ip: invalid pattern")
        );
    }

    #[test]
    fn lower_contains_follows_loki() {
        assert!(contains_lower(b"Hello WORLD", b"world"));
        assert!(contains_lower("ÉCOLE".as_bytes(), "école".as_bytes()));
        assert!(contains_lower("xİy".as_bytes(), b"xiy"));
        assert!(contains_lower("a\u{212A}b".as_bytes(), b"akb"));
        assert!(!contains_lower(b"abc", b"abd"));
        assert!(contains_lower(b"", b""));
    }
}
