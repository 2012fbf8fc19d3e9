//! `| logfmt`, with `--strict`, `--keep-empty` and `name="key"` params.
//!
//! The decoder follows Loki's logfmt decoder byte for byte: keys run to
//! `=` or whitespace, values are bare (to whitespace; `=` or `"` inside is
//! an error) or double-quoted with JSON escapes. A standalone key has no
//! value and is kept (as `""`) only with `--keep-empty`, like an empty
//! value. Without `--strict` a malformed pair is skipped and parsing goes
//! on; with it parsing stops there and `__error__="LogfmtParserErr"` is
//! set.

use super::super::labels_builder::{LabelCategory, LabelsBuilder};
use super::{Scratch, sanitize_label_key};

/// Loki's logfmt decoder over one line.
pub struct Decoder<'a> {
    line: &'a [u8],
    pos: usize,
    key: &'a [u8],
    value: Option<std::borrow::Cow<'a, [u8]>>,
    err: Option<String>,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `line`.
    pub fn new(line: &'a [u8]) -> Decoder<'a> {
        Decoder {
            line,
            pos: 0,
            key: &[],
            value: None,
            err: None,
        }
    }

    /// Whether the line is consumed.
    pub fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The current key.
    pub fn key(&self) -> &[u8] {
        self.key
    }

    /// The current value (empty when none).
    pub fn value(&self) -> &[u8] {
        self.value.as_deref().unwrap_or(&[])
    }

    /// The last syntax error.
    pub fn err(&self) -> Option<&str> {
        self.err.as_deref()
    }

    fn syntax_error(&mut self, msg: &str) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : {msg}",
            self.pos + 1
        ));
    }

    fn unexpected(&mut self, c: u8) {
        let q = larch_go::quote::go_quote(&(c as char).to_string());
        let q = format!("'{}'", &q[1..q.len() - 1]);
        self.syntax_error(&format!("unexpected {q}"));
    }

    fn skip_value(&mut self) -> bool {
        let line = self.line;
        match line[self.pos..].iter().position(|&c| c <= b' ') {
            Some(p) => self.pos += p,
            None => self.pos = line.len(),
        }
        false
    }

    fn key_has_bad_utf8(&self, multibyte: bool) -> bool {
        multibyte && std::str::from_utf8(self.key).is_err()
    }

    /// Scans the next pair; false when it is malformed (or none is left).
    pub fn scan(&mut self) -> bool {
        self.key = &[];
        self.value = None;
        let line = self.line;
        match line[self.pos..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = line.len();
                return false;
            }
        }
        let start = self.pos;
        let mut multibyte = false;
        let mut p = self.pos;
        loop {
            if p >= line.len() {
                self.pos = line.len();
                if self.pos > start {
                    self.key = &line[start..self.pos];
                    if self.key_has_bad_utf8(multibyte) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                }
                return true;
            }
            let c = line[p];
            if c == b'=' {
                self.pos = p;
                if self.pos > start {
                    self.key = &line[start..self.pos];
                    if self.key_has_bad_utf8(multibyte) {
                        self.syntax_error("invalid key");
                        return self.skip_value();
                    }
                }
                if self.key.is_empty() {
                    self.unexpected(c);
                    return self.skip_value();
                }
                break;
            } else if c == b'"' {
                self.pos = p;
                self.unexpected(c);
                return self.skip_value();
            } else if c <= b' ' {
                self.pos = p;
                if self.pos > start {
                    self.key = &line[start..self.pos];
                    if self.key_has_bad_utf8(multibyte) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                }
                return true;
            } else if c >= 0x80 {
                multibyte = true;
            }
            p += 1;
        }
        // At '='.
        self.pos += 1;
        if self.pos >= line.len() {
            return true;
        }
        let c = line[self.pos];
        if c <= b' ' {
            return true;
        }
        if c == b'"' {
            return self.quoted();
        }
        let start = self.pos;
        let mut p = self.pos;
        while p < line.len() {
            let c = line[p];
            if c == b'=' || c == b'"' {
                self.pos = p;
                self.unexpected(c);
                return self.skip_value();
            }
            if c <= b' ' {
                self.pos = p;
                if self.pos > start {
                    self.value = Some(std::borrow::Cow::Borrowed(&line[start..p]));
                }
                return true;
            }
            p += 1;
        }
        self.pos = line.len();
        if self.pos > start {
            self.value = Some(std::borrow::Cow::Borrowed(&line[start..]));
        }
        true
    }

    fn quoted(&mut self) -> bool {
        let line = self.line;
        let start = self.pos;
        let mut has_esc = false;
        let mut esc = false;
        let mut p = start + 1;
        while p < line.len() {
            let c = line[p];
            if esc {
                esc = false;
            } else if c == b'\\' {
                has_esc = true;
                esc = true;
            } else if c == b'"' {
                self.pos = p + 1;
                if has_esc {
                    let mut s = String::new();
                    if !unquote(&line[start + 1..p], &mut s) {
                        self.syntax_error("invalid quoted value");
                        return false;
                    }
                    self.value = Some(std::borrow::Cow::Owned(s.into_bytes()));
                } else if p > start + 1 {
                    self.value = Some(std::borrow::Cow::Borrowed(&line[start + 1..p]));
                }
                return true;
            }
            p += 1;
        }
        self.pos = line.len();
        self.syntax_error("unterminated quoted value");
        false
    }
}

fn unquote(raw: &[u8], out: &mut String) -> bool {
    // JSON escapes plus `\'`.
    let fixed: Vec<u8>;
    let raw = if raw.windows(2).any(|w| w == b"\\'") {
        fixed = raw
            .iter()
            .enumerate()
            .filter(|&(i, &b)| !(b == b'\\' && raw.get(i + 1) == Some(&b'\'')))
            .map(|(_, &b)| b)
            .collect();
        &fixed[..]
    } else {
        raw
    };
    super::json::unescape_into(raw, out)
}

/// The `| logfmt` stage without parameters.
pub fn parse_all(
    line: &[u8],
    strict: bool,
    keep_empty: bool,
    lb: &mut LabelsBuilder,
    sc: &mut Scratch,
) {
    let mut dec = Decoder::new(line);
    while !dec.eol() {
        if !dec.scan() {
            if strict {
                break;
            }
            continue;
        }
        let key = String::from_utf8_lossy(dec.key());
        sanitize_label_key(&key, &mut sc.key);
        if sc.key.is_empty() {
            continue;
        }
        let name = lb.parsed_name(&sc.key, &mut sc.name).to_string();
        if lb.extracted(&name) {
            continue;
        }
        let val = dec.value();
        if !keep_empty && val.is_empty() {
            continue;
        }
        sc.value.clear();
        sc.value
            .push_str(&String::from_utf8_lossy(val).replace('\u{FFFD}', " "));
        lb.set(LabelCategory::Parsed, &name, &sc.value);
    }
    if strict && let Some(e) = dec.err() {
        lb.set_err("LogfmtParserErr");
        lb.set_err_details(e);
    }
}

/// The `| logfmt a="key", b` stage: each identifier gets the value of its
/// key (`""` when absent).
pub fn parse_params(
    line: &[u8],
    params: &[(String, String)],
    strict: bool,
    lb: &mut LabelsBuilder,
    sc: &mut Scratch,
) {
    for (id, _) in params {
        if !lb.base_has(id) && !lb.has_in(id, LabelCategory::StructuredMetadata) {
            lb.set(LabelCategory::Parsed, id, "");
        }
    }
    let mut dec = Decoder::new(line);
    while !dec.eol() {
        if !dec.scan() {
            if strict {
                break;
            }
            continue;
        }
        let key = String::from_utf8_lossy(dec.key());
        sanitize_label_key(&key, &mut sc.key);
        let Some((id, _)) = params.iter().find(|(_, k)| *k == sc.key) else {
            continue;
        };
        let val = dec.value();
        let val = if std::str::from_utf8(val).is_ok() {
            val
        } else {
            &[]
        };
        let name = lb.parsed_name(id, &mut sc.name).to_string();
        sc.value.clear();
        sc.value.push_str(&String::from_utf8_lossy(val));
        lb.set(LabelCategory::Parsed, &name, &sc.value);
    }
    if strict && let Some(e) = dec.err() {
        lb.set_err("LogfmtParserErr");
        lb.set_err_details(e);
    }
}
