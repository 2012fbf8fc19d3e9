//! `| json`, `| json a="x.y"` and `| unpack`.
//!
//! The scanner reads JSON the way Loki's jsonparser does, which is more
//! lenient than the JSON grammar (numbers are whatever runs to the next
//! delimiter, text after the closing brace is ignored) and reports the
//! same error texts, so `__error_details__` reads the same.
//!
//! `| json` flattens nested objects into `outer_inner` names, skips arrays
//! and nulls, turns numbers and booleans into their text, sanitises names
//! to `[a-zA-Z0-9_]` (a leading digit gets a `_`), keeps the first of
//! duplicated keys, and renames a clash with a stream label or structured
//! metadata to `<name>_extracted`. Fields before a syntax error are kept;
//! the error sets `__error__="JSONParserErr"`.

use super::super::labels_builder::{LabelCategory, LabelsBuilder};
use super::{Scratch, sanitize_into};

/// jsonparser's errors, with its texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Unbalanced or missing braces.
    #[error("Value looks like object, but can't find closing '}}' symbol")]
    MalformedObject,
    /// Structure error.
    #[error("Malformed JSON error")]
    MalformedJson,
    /// Unterminated string.
    #[error("Value is string, but can't find closing '\"' symbol")]
    MalformedString,
    /// Unterminated array.
    #[error("Value is array, but can't find closing ']' symbol")]
    MalformedArray,
    /// Unknown token.
    #[error("Unknown value type")]
    UnknownValueType,
    /// Bad escape in a key.
    #[error("Encountered an invalid escape sequence in a string")]
    MalformedStringEscape,
}

/// JSON value kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string; the value slice excludes the quotes and is still escaped.
    String,
    /// A number, as written.
    Number,
    /// An object, braces included.
    Object,
    /// An array, brackets included.
    Array,
    /// `true` or `false`.
    Boolean,
    /// `null`.
    Null,
}

fn next_token(b: &[u8], i: usize) -> Option<usize> {
    b.get(i..)?
        .iter()
        .position(|c| !matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        .map(|p| i + p)
}

/// From just after an opening quote: index after the closing quote and
/// whether the string has escapes.
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' => {
                // Count the backslashes before the quote.
                let mut k = j;
                let mut n = 0;
                while k > i && b[k - 1] == b'\\' {
                    n += 1;
                    k -= 1;
                }
                if n % 2 == 0 {
                    return Some((j + 1, escaped));
                }
            }
            b'\\' => escaped = true,
            _ => {}
        }
        j += 1;
    }
    None
}

/// From an opening bracket: index after the matching closing bracket.
fn block_end(b: &[u8], i: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' => {
                let (e, _) = string_end(b, j + 1)?;
                j = e;
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

fn token_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .map_or(b.len(), |p| i + p)
}

/// The value starting at or after `i`: kind, value range, and the index
/// just past it.
pub fn value_at(b: &[u8], i: usize) -> Result<(Kind, usize, usize, usize), JsonError> {
    let start = next_token(b, i).ok_or(JsonError::MalformedJson)?;
    match b[start] {
        b'"' => {
            let (end, _) = string_end(b, start + 1).ok_or(JsonError::MalformedString)?;
            Ok((Kind::String, start + 1, end - 1, end))
        }
        b'{' => {
            let end = block_end(b, start, b'{', b'}').ok_or(JsonError::MalformedObject)?;
            Ok((Kind::Object, start, end, end))
        }
        b'[' => {
            let end = block_end(b, start, b'[', b']').ok_or(JsonError::MalformedArray)?;
            Ok((Kind::Array, start, end, end))
        }
        c => {
            let end = token_end(b, start);
            let v = &b[start..end];
            let kind = match c {
                b't' | b'f' if v == b"true" || v == b"false" => Kind::Boolean,
                b'n' | b'u' if v == b"null" => Kind::Null,
                b'0'..=b'9' | b'-' => Kind::Number,
                _ => return Err(JsonError::UnknownValueType),
            };
            Ok((kind, start, end, end))
        }
    }
}

/// A callback over object members: `(key, kind, raw value)`.
pub type MemberFn<'a, 'f> = dyn FnMut(&str, Kind, &'a [u8]) -> Result<(), JsonError> + 'f;

/// Calls `f(key, kind, value)` for each member of the object in `b`
/// (keys unescaped), stopping at the first error.
pub fn object_each<'a>(
    b: &'a [u8],
    key_buf: &mut String,
    f: &mut MemberFn<'a, '_>,
) -> Result<(), JsonError> {
    let mut i = next_token(b, 0).ok_or(JsonError::MalformedObject)?;
    if b[i] != b'{' {
        return Err(JsonError::MalformedObject);
    }
    i += 1;
    i = next_token(b, i).ok_or(JsonError::MalformedJson)?;
    if b[i] == b'}' {
        return Ok(());
    }
    while i < b.len() {
        match b[i] {
            b'"' => i += 1,
            b'}' => return Ok(()),
            _ => return Err(JsonError::MalformedObject),
        }
        let (end, escaped) = string_end(b, i).ok_or(JsonError::MalformedJson)?;
        let raw_key = &b[i..end - 1];
        i = end;
        key_buf.clear();
        if escaped {
            if !unescape_into(raw_key, key_buf) {
                return Err(JsonError::MalformedStringEscape);
            }
        } else {
            key_buf.push_str(&String::from_utf8_lossy(raw_key));
        }
        i = next_token(b, i).ok_or(JsonError::MalformedJson)?;
        if b[i] != b':' {
            return Err(JsonError::MalformedJson);
        }
        i += 1;
        let (kind, vs, ve, after) = value_at(b, i)?;
        let key = std::mem::take(key_buf);
        let r = f(&key, kind, &b[vs..ve]);
        *key_buf = key;
        r?;
        i = next_token(b, after).ok_or(JsonError::MalformedArray)?;
        match b[i] {
            b'}' => return Ok(()),
            b',' => i += 1,
            _ => return Err(JsonError::MalformedObject),
        }
        i = next_token(b, i).ok_or(JsonError::MalformedArray)?;
    }
    Err(JsonError::MalformedObject)
}

/// JSON string unescaping with Go's `encoding/json` rules
/// (`larch_go::json`); false on a bad escape. Invalid UTF-8 becomes U+FFFD.
pub fn unescape_into(raw: &[u8], out: &mut String) -> bool {
    let mut bytes: Vec<u8> = Vec::with_capacity(raw.len());
    if !larch_go::json::unescape(raw, &mut bytes) {
        return false;
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
    true
}

/// Loki's string value: unescaped (empty on a bad escape), with U+FFFD
/// replaced by spaces.
pub fn string_value(raw: &[u8], out: &mut String) {
    out.clear();
    if !raw.contains(&b'\\') {
        match std::str::from_utf8(raw) {
            Ok(s) => out.push_str(s),
            Err(_) => out.push_str(&String::from_utf8_lossy(raw)),
        }
    } else if !unescape_into(raw, out) {
        out.clear();
    }
    if out.contains('\u{FFFD}') {
        *out = out.replace('\u{FFFD}', " ");
    }
}

/// The `| json` stage without parameters.
pub fn parse_all(line: &[u8], lb: &mut LabelsBuilder, sc: &mut Scratch) {
    let mut prefix = std::mem::take(&mut sc.prefix);
    prefix.clear();
    let mut key_buf = std::mem::take(&mut sc.key);
    let r = walk(line, &mut prefix, &mut key_buf, lb, sc);
    sc.prefix = prefix;
    sc.key = key_buf;
    if let Err(e) = r {
        lb.set_err("JSONParserErr");
        lb.set_err_details(&e.to_string());
    }
}

fn walk(
    obj: &[u8],
    prefix: &mut String,
    key_buf: &mut String,
    lb: &mut LabelsBuilder,
    sc: &mut Scratch,
) -> Result<(), JsonError> {
    let mut inner_key = String::new();
    object_each(obj, key_buf, &mut |key, kind, value| {
        let mark = prefix.len();
        if !key.trim().is_empty() {
            if !prefix.is_empty() {
                prefix.push('_');
            }
            sanitize_into(key, prefix);
        }
        let r = match kind {
            Kind::Object => walk(value, prefix, &mut inner_key, lb, sc),
            Kind::String | Kind::Number | Kind::Boolean if !prefix.is_empty() => {
                let name = lb.parsed_name(prefix, &mut sc.name).to_string();
                if !lb.extracted(&name) {
                    match kind {
                        Kind::String => {
                            string_value(value, &mut sc.value);
                            lb.set(LabelCategory::Parsed, &name, &sc.value);
                        }
                        _ => lb.set(
                            LabelCategory::Parsed,
                            &name,
                            std::str::from_utf8(value).unwrap_or(""),
                        ),
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        };
        prefix.truncate(mark);
        r
    })
}

/// One element of a `| json a="x.y[0]"` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathElem {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Parses Loki's JSON path subset: `a.b`, `a["b c"]`, `list[0]`.
pub fn parse_path(expr: &str) -> Result<Vec<PathElem>, String> {
    let err = |m: &str| format!("cannot parse expression [{expr}]: syntax error: {m}");
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut expect_dot_field = false;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let c = b[i];
        if c == b'.' && !out.is_empty() {
            i += 1;
            skip_ws(&mut i);
            expect_dot_field = true;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            if !out.is_empty() && !expect_dot_field {
                return Err(err("unexpected FIELD"));
            }
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(PathElem::Key(expr[s..i].to_string()));
            expect_dot_field = false;
            continue;
        }
        if expect_dot_field {
            return Err(err("expecting FIELD"));
        }
        if c != b'[' {
            return Err(err(&format!("unexpected char {}", c as char)));
        }
        i += 1;
        skip_ws(&mut i);
        match b.get(i) {
            Some(b'"') => {
                i += 1;
                let s = i;
                while i < b.len() && b[i] != b'"' && b[i] != b']' {
                    i += 1;
                }
                out.push(PathElem::Key(expr[s..i].to_string()));
                if b.get(i) == Some(&b'"') {
                    i += 1;
                }
            }
            Some(d) if d.is_ascii_digit() => {
                let s = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    return Err(err("cannot use float as array index"));
                }
                let n = expr[s..i].parse().map_err(|_| err("bad index"))?;
                out.push(PathElem::Index(n));
            }
            _ => return Err(err("unexpected end or token after '['")),
        }
        skip_ws(&mut i);
        if b.get(i) != Some(&b']') {
            return Err(err("expecting ]"));
        }
        i += 1;
    }
    if out.is_empty() || expect_dot_field {
        return Err(err("unexpected $end"));
    }
    Ok(out)
}

fn lookup<'a>(mut b: &'a [u8], path: &[PathElem]) -> Option<(Kind, &'a [u8])> {
    let (mut kind, s, e, _) = value_at(b, 0).ok()?;
    b = &b[s..e];
    let mut key_buf = String::new();
    for p in path {
        let mut found: Option<(Kind, &'a [u8])> = None;
        match (p, kind) {
            (PathElem::Key(k), Kind::Object) => {
                let _ = object_each(b, &mut key_buf, &mut |key, kd, v| {
                    if found.is_none() && key == k {
                        found = Some((kd, v));
                    }
                    Ok(())
                });
            }
            (PathElem::Index(n), Kind::Array) => {
                let mut i = 1;
                let mut idx = 0;
                while let Some(t) = next_token(b, i) {
                    if b[t] == b']' {
                        break;
                    }
                    let Ok((kd, vs, ve, after)) = value_at(b, t) else {
                        break;
                    };
                    if idx == *n {
                        found = Some((kd, &b[vs..ve]));
                        break;
                    }
                    idx += 1;
                    let Some(t) = next_token(b, after) else { break };
                    if b[t] != b',' {
                        break;
                    }
                    i = t + 1;
                }
            }
            _ => return None,
        }
        let (k, v) = found?;
        kind = k;
        b = v;
    }
    Some((kind, b))
}

/// The `| json a="path", …` stage.
pub fn parse_paths(
    line: &[u8],
    params: &[(String, Vec<PathElem>)],
    lb: &mut LabelsBuilder,
    sc: &mut Scratch,
) {
    let Some(&first) = line.first() else {
        return;
    };
    if !matches!(first, b'"' | b'{' | b'[') {
        lb.set_err("JSONParserErr");
        return;
    }
    for (id, path) in params {
        let Some((kind, v)) = lookup(line, path) else {
            continue;
        };
        let name = lb.parsed_name(id, &mut sc.name).to_string();
        match kind {
            Kind::Null => lb.set(LabelCategory::Parsed, &name, ""),
            Kind::Object => lb.set(LabelCategory::Parsed, &name, &String::from_utf8_lossy(v)),
            _ => {
                string_value(v, &mut sc.value);
                lb.set(LabelCategory::Parsed, &name, &sc.value);
            }
        }
    }
    for (id, _) in params {
        if lb.get(id).is_none() {
            lb.set(LabelCategory::Parsed, id, "");
        }
    }
}

/// The `| unpack` stage: string fields become labels and `_entry`
/// replaces the line; both only when `_entry` is present. Returns the
/// new line in `out` (true when replaced).
pub fn unpack(line: &[u8], lb: &mut LabelsBuilder, sc: &mut Scratch, out: &mut Vec<u8>) -> bool {
    if line.is_empty() {
        return false;
    }
    if line[0] != b'{' {
        lb.set_err("JSONParserErr");
        lb.set_err_details("expecting json object(6), but it is not");
        return false;
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut entry: Option<String> = None;
    let mut key_buf = std::mem::take(&mut sc.key);
    let r = object_each(line, &mut key_buf, &mut |key, kind, v| {
        if kind != Kind::String {
            return Ok(());
        }
        if key == "_entry" {
            let mut s = String::new();
            if !unescape_into(v, &mut s) {
                return Err(JsonError::MalformedStringEscape);
            }
            entry = Some(s);
            return Ok(());
        }
        let name = lb.parsed_name(key, &mut sc.name).to_string();
        if lb.extracted(&name) {
            return Ok(());
        }
        let mut sanitized = String::new();
        super::sanitize_label_key(&name, &mut sanitized);
        let mut value = String::new();
        string_value(v, &mut value);
        pairs.push((sanitized, value));
        Ok(())
    });
    sc.key = key_buf;
    if let Err(e) = r {
        lb.set_err("JSONParserErr");
        lb.set_err_details(&e.to_string());
        return false;
    }
    let Some(entry) = entry else {
        return false;
    };
    for (n, v) in &pairs {
        lb.set(LabelCategory::Parsed, n, v);
    }
    out.clear();
    out.extend_from_slice(entry.as_bytes());
    true
}
