//! Label sets: the identity of a stream.
//!
//! A [`LabelSet`] is a list of `name="value"` pairs sorted by name with
//! unique names. Its text form is Prometheus' (`{app="api", pod="p-1"}`),
//! which is also what Loki push clients send as a stream's labels; the
//! [`parse_labels`] function reads that form with Go string escapes.

use std::fmt;
use std::fmt::Write as _;

/// One `name="value"` pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// The label name, `[a-zA-Z_][a-zA-Z0-9_]*` for stream labels.
    pub name: String,
    /// The label value, any UTF-8.
    pub value: String,
}

/// A set of labels sorted by name, each name at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSet {
    labels: Vec<Label>,
}

impl LabelSet {
    /// An empty set.
    pub fn new() -> LabelSet {
        LabelSet { labels: Vec::new() }
    }

    /// Builds a set from pairs in any order. On duplicate names the last
    /// value wins; use [`LabelSet::from_unique_pairs`] to reject them.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> LabelSet {
        let mut set = LabelSet::new();
        for (n, v) in pairs {
            set.insert(n.into(), v.into());
        }
        set
    }

    /// Builds a set from pairs, failing with the first duplicated name.
    pub fn from_unique_pairs(pairs: Vec<(String, String)>) -> Result<LabelSet, String> {
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(name, value)| Label { name, value })
            .collect();
        labels.sort();
        for w in labels.windows(2) {
            if w[0].name == w[1].name {
                return Err(w[0].name.clone());
            }
        }
        Ok(LabelSet { labels })
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn insert(&mut self, name: String, value: String) {
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(&name)) {
            Ok(i) => self.labels[i].value = value,
            Err(i) => self.labels.insert(i, Label { name, value }),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => Some(self.labels.remove(i).value),
            Err(_) => None,
        }
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].value.as_str())
    }

    /// Removes every label whose value is empty (Loki drops them on push).
    pub fn remove_empty(&mut self) {
        self.labels.retain(|l| !l.value.is_empty());
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A 64-bit hash of the set, stable across processes and versions: it
    /// names streams on disk, so it must never change.
    pub fn fingerprint(&self) -> u64 {
        fingerprint_pairs(
            self.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )
    }
}

/// [`LabelSet::fingerprint`] of the set of `pairs`, which must be sorted
/// by name, each name once (as a set iterates them), computed without
/// building the set.
pub fn fingerprint_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, value) in pairs {
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

impl<'a> IntoIterator for &'a LabelSet {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.labels.iter()
    }
}

impl fmt::Display for LabelSet {
    /// Prometheus text: `{a="1", b="x\"y"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&l.name)?;
            f.write_char('=')?;
            f.write_str(&larch_go::quote::go_quote(&l.value))?;
        }
        f.write_char('}')
    }
}

/// Why a label text could not be read. The message follows LogQL's parse
/// errors: `parse error at line 1, col 4: literal not terminated`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {col}: {msg}")]
pub struct LabelsError {
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in characters) of the offending character.
    pub col: usize,
    /// What was wrong.
    pub msg: String,
}

/// Reads Prometheus label text, `{name="value", ...}`.
///
/// Values are double-quoted Go strings (or backtick raw strings); names are
/// `[a-zA-Z_][a-zA-Z0-9_]*`. Duplicate names are reported by the caller
/// (through [`LabelSet::from_unique_pairs`]) because Loki words that error
/// differently. Empty values are kept; push removes them afterwards.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, LabelsError> {
    let mut p = Cursor::new(text);
    p.skip_ws();
    if !p.eat('{') {
        return Err(p.error_here(unexpected(p.peek(), "{")));
    }
    let mut pairs = Vec::new();
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let name = p.ident()?;
        p.skip_ws();
        if !p.eat('=') {
            return Err(p.error_here(unexpected(p.peek(), "=")));
        }
        p.skip_ws();
        let value = p.string()?;
        pairs.push((name, value));
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        if p.eat('}') {
            break;
        }
        return Err(p.error_here(unexpected(p.peek(), ", or }")));
    }
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.error_here(format!("syntax error: unexpected {c:?} after }}")));
    }
    Ok(pairs)
}

fn unexpected(found: Option<char>, expecting: &str) -> String {
    match found {
        Some(c) => format!("syntax error: unexpected {c:?}, expecting {expecting}"),
        None => format!("syntax error: unexpected $end, expecting {expecting}"),
    }
}

/// A character cursor that tracks line and column for error messages.
struct Cursor<'a> {
    rest: std::str::Chars<'a>,
    line: usize,
    col: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            rest: text.chars(),
            line: 1,
            col: 1,
        }
    }

    fn peek(&self) -> Option<char> {
        self.rest.clone().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.rest.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        if self.peek() == Some(want) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.bump();
        }
    }

    fn error_here(&self, msg: String) -> LabelsError {
        LabelsError {
            line: self.line,
            col: self.col,
            msg,
        }
    }

    fn ident(&mut self) -> Result<String, LabelsError> {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
            other => return Err(self.error_here(unexpected(other, "label name"))),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.bump();
            } else {
                break;
            }
        }
        Ok(name)
    }

    fn string(&mut self) -> Result<String, LabelsError> {
        let (line, col) = (self.line, self.col);
        let err = |msg: &str| LabelsError {
            line,
            col,
            msg: msg.to_string(),
        };
        match self.peek() {
            Some('`') => {
                self.bump();
                let mut out = String::new();
                loop {
                    match self.bump() {
                        Some('`') => return Ok(out),
                        Some(c) => out.push(c),
                        None => return Err(err("literal not terminated")),
                    }
                }
            }
            Some('"') => {
                self.bump();
                let mut raw = String::new();
                loop {
                    match self.bump() {
                        Some('"') => break,
                        Some('\\') => {
                            raw.push('\\');
                            match self.bump() {
                                Some(c) => raw.push(c),
                                None => return Err(err("literal not terminated")),
                            }
                        }
                        Some('\n') | None => return Err(err("literal not terminated")),
                        Some(c) => raw.push(c),
                    }
                }
                larch_go::quote::unquote_body(&raw).map_err(err)
            }
            other => Err(self.error_here(unexpected(other, "STRING"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let pairs = parse_labels(r#"{app="api", ns = "prod" ,esc="a\"b\n"}"#).unwrap();
        let set = LabelSet::from_unique_pairs(pairs).unwrap();
        assert_eq!(set.to_string(), r#"{app="api", esc="a\"b\n", ns="prod"}"#);
        assert_eq!(set.get("ns"), Some("prod"));
    }

    #[test]
    fn empty_and_trailing_comma() {
        assert!(parse_labels("{}").unwrap().is_empty());
        assert_eq!(parse_labels(r#"{a="b",}"#).unwrap().len(), 1);
    }

    #[test]
    fn reports_unterminated_value_with_position() {
        let err = parse_labels(r#"{a="b}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parse error at line 1, col 4: literal not terminated"
        );
    }

    #[test]
    fn rejects_bad_names_and_garbage() {
        assert!(parse_labels(r#"{1a="b"}"#).is_err());
        assert!(parse_labels(r#"{a-b="c"}"#).is_err());
        assert!(parse_labels(r#"a="b""#).is_err());
        assert!(parse_labels(r#"{a="b"} x"#).is_err());
        assert!(parse_labels(r#"{a=b}"#).is_err());
        assert!(parse_labels("").is_err());
    }

    #[test]
    fn duplicates_are_reported() {
        let pairs = parse_labels(r#"{a="1", a="2"}"#).unwrap();
        assert_eq!(LabelSet::from_unique_pairs(pairs), Err("a".to_string()));
    }

    #[test]
    fn fingerprint_ignores_insertion_order() {
        let a = LabelSet::from_pairs([("x", "1"), ("y", "2")]);
        let b = LabelSet::from_pairs([("y", "2"), ("x", "1")]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = LabelSet::from_pairs([("x", "12")]);
        let d = LabelSet::from_pairs([("x", "1"), ("2", "")]);
        assert_ne!(c.fingerprint(), d.fingerprint());
    }

    #[test]
    fn go_escapes() {
        let pairs = parse_labels(r#"{a="\x41\u00e9\101\t"}"#).unwrap();
        assert_eq!(pairs[0].1, "AéA\t");
        assert!(parse_labels(r#"{a="\q"}"#).is_err());
        let set = LabelSet::from_pairs([("a", "a\"\\\u{1}")]);
        assert_eq!(set.to_string(), r#"{a="a\"\\\x01"}"#);
    }
}
