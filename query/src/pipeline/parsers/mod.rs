//! Parser stages: `json`, `logfmt`, `regexp`, `pattern`, `unpack`.
//!
//! Every parser adds labels in the parsed category through the labels
//! builder, with Loki's rules: names are sanitised, a name the stream or
//! the structured metadata already has becomes `<name>_extracted`, and the
//! first value a line gives for a name wins (a later duplicate key, or a
//! later parser, does not overwrite it). A parse failure never drops the
//! line: it sets `__error__` and `__error_details__`.

pub mod json;
pub mod logfmt;

use regex::bytes::Regex;

use super::labels_builder::{LabelCategory, LabelsBuilder};
use super::pattern::Pattern;

/// Reusable buffers for parsers, one set per stream pipeline.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Sanitised key.
    pub key: String,
    /// Value being built.
    pub value: String,
    /// `<name>_extracted`.
    pub name: String,
    /// Flattened JSON prefix.
    pub prefix: String,
}

/// Appends `key` sanitised to `[a-zA-Z0-9_]` (one `_` per other
/// character, trimmed, `_` before a leading digit when `out` is empty).
pub fn sanitize_into(key: &str, out: &mut String) {
    let key = key.trim();
    if key.is_empty() {
        return;
    }
    larch_go::labels::push_sanitized(key, out);
}

/// Loki's `sanitizeLabelKey(key, true)` into `out`.
pub fn sanitize_label_key(key: &str, out: &mut String) {
    out.clear();
    sanitize_into(key, out);
}

/// `| regexp "(?P<name>…)"`.
#[derive(Clone, Debug)]
pub struct RegexpParser {
    re: Regex,
    names: Vec<(usize, String)>,
}

/// Why a parser does not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParserError {
    /// Loki's text for a regexp without named groups.
    #[error("at least one named capture must be supplied")]
    MissingCapture,
    /// A named group used twice.
    #[error("duplicate extracted label name '{0}'")]
    Duplicate(String),
    /// A bad regexp.
    #[error("invalid regexp parser: {0}")]
    Regex(String),
    /// A bad pattern.
    #[error("invalid pattern parser: {0}")]
    Pattern(String),
    /// A bad JSON or logfmt parameter path.
    #[error("{0}")]
    Expression(String),
    /// A label name that is not valid.
    #[error("invalid extracted label name '{0}'")]
    InvalidName(String),
}

impl RegexpParser {
    /// Compiles the regexp; it must have at least one named group and no
    /// name twice.
    pub fn new(src: &str) -> Result<RegexpParser, ParserError> {
        // Go accepts a repeated group name and Loki then refuses it; Rust
        // refuses it while compiling, so look for it first.
        let mut seen: Vec<&str> = Vec::new();
        for (i, _) in src.match_indices("(?") {
            let rest = &src[i + 2..];
            let rest = rest.strip_prefix('P').unwrap_or(rest);
            if let Some(r) = rest.strip_prefix('<')
                && let Some(end) = r.find('>')
            {
                let name = &r[..end];
                if seen.contains(&name) {
                    return Err(ParserError::Duplicate(name.to_string()));
                }
                seen.push(name);
            }
        }
        let re = larch_go::regex::compile_bytes(src, false)
            .map_err(|e| ParserError::Regex(e.to_string()))?;
        let mut names: Vec<(usize, String)> = Vec::new();
        for (i, n) in re.capture_names().enumerate() {
            if let Some(n) = n {
                if names.iter().any(|(_, m)| m == n) {
                    return Err(ParserError::Duplicate(n.to_string()));
                }
                names.push((i, n.to_string()));
            }
        }
        if names.is_empty() {
            return Err(ParserError::MissingCapture);
        }
        Ok(RegexpParser { re, names })
    }

    /// Extracts the named groups of the first match.
    pub fn process(&self, line: &[u8], lb: &mut LabelsBuilder, sc: &mut Scratch) {
        let Some(caps) = self.re.captures(line) else {
            return;
        };
        for (i, name) in &self.names {
            let value = caps.get(*i).map_or(&[][..], |m| m.as_bytes());
            sanitize_label_key(name, &mut sc.key);
            if sc.key.is_empty() {
                continue;
            }
            let key = lb.parsed_name(&sc.key, &mut sc.name).to_string();
            if lb.extracted(&key) {
                continue;
            }
            lb.set(LabelCategory::Parsed, &key, &String::from_utf8_lossy(value));
        }
    }
}

/// `| pattern "<a> <_> <b>"`.
#[derive(Clone, Debug)]
pub struct PatternParser {
    pattern: Pattern,
}

impl PatternParser {
    /// Compiles the pattern.
    pub fn new(src: &str) -> Result<PatternParser, ParserError> {
        let pattern = Pattern::parser(src).map_err(|e| match e {
            super::pattern::PatternError::NoCapture => ParserError::Pattern(e.to_string()),
            other => ParserError::Pattern(other.to_string()),
        })?;
        Ok(PatternParser { pattern })
    }

    /// Extracts the captures.
    pub fn process(&self, line: &[u8], lb: &mut LabelsBuilder, sc: &mut Scratch) {
        let names = self.pattern.names();
        self.pattern.matches(line, |i, v| {
            let Some(n) = names.get(i) else { return };
            let key = lb.parsed_name(n, &mut sc.name).to_string();
            if lb.extracted(&key) {
                return;
            }
            lb.set(LabelCategory::Parsed, &key, &String::from_utf8_lossy(v));
        });
    }
}
