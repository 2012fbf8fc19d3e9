//! Template functions: Go's builtins and the functions Loki adds (its
//! own, and its subset of Sprig), with their argument rules.
//!
//! Argument conversion follows Go's reflection rules loosely: a `string`
//! parameter needs a string, an `int` parameter an integer; Sprig's
//! numeric functions take anything and convert it the way the `cast`
//! library does (`"12"` → 12, failures → 0). `and`/`or` are evaluated
//! lazily by the executor and are only named here.

use super::printf;
use super::time::{self, Time};
use super::value::Value;
use crate::pipeline::goregex;

/// What a function sees besides its arguments.
pub(crate) struct Env<'a> {
    pub line: &'a [u8],
    pub ts: i64,
    pub labels_get: &'a dyn Fn(&str) -> Option<String>,
    pub labels_len: usize,
    pub to_s: &'a dyn Fn(&Value) -> String,
}

const NAMES: &[&str] = &[
    // Go builtins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "urlquery",
    // Loki.
    "ToLower",
    "ToUpper",
    "Replace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "count",
    "urldecode",
    "urlencode",
    "bytes",
    "duration",
    "duration_seconds",
    "unixEpochMillis",
    "unixEpochNanos",
    "toDateInZone",
    "unixToTime",
    "alignLeft",
    "alignRight",
    "b64dec",
    "__line__",
    "__timestamp__",
    // Sprig subset.
    "b64enc",
    "lower",
    "upper",
    "title",
    "trunc",
    "substr",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "indent",
    "nindent",
    "replace",
    "repeat",
    "trim",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "int",
    "float64",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "fromJson",
    "date",
    "toDate",
    "now",
    "unixEpoch",
    "default",
];

/// Whether `name` is a known function.
pub(crate) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

type R = Result<Value, String>;

fn want_str(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn want_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

fn want_time(v: &Value) -> Result<Time, String> {
    match v {
        Value::Time(t) => Ok(*t),
        other => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            other.type_name()
        )),
    }
}

/// `cast.ToInt64`.
fn cast_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => *b as i64,
        Value::Str(s) => {
            let mut t = s.as_str();
            if let Some(dot) = t.find('.')
                && t[dot + 1..].bytes().all(|b| b == b'0')
            {
                t = &t[..dot];
            }
            parse_go_int(t).unwrap_or(0)
        }
        _ => 0,
    }
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, b) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = b.to_ascii_lowercase();
    let (radix, digits) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h.to_string())
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o.to_string())
    } else if let Some(bb) = lower.strip_prefix("0b") {
        (2, bb.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    let digits = if radix != 10 {
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// `cast.ToFloat64`.
fn cast_float(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => crate::pipeline::convert::parse_go_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// A float in shortest decimal form as (coefficient, exponent).
fn to_decimal(f: f64) -> Option<(i128, i32)> {
    if !f.is_finite() {
        return None;
    }
    let s = format!("{:e}", f);
    let (m, e) = s.split_once('e')?;
    let e: i32 = e.parse().ok()?;
    let neg = m.starts_with('-');
    let m = m.trim_start_matches('-');
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    let digits = format!("{int}{frac}");
    let c: i128 = digits.parse().ok()?;
    Some((if neg { -c } else { c }, e - frac.len() as i32))
}

fn from_decimal(c: i128, e: i32) -> f64 {
    format!("{c}e{e}").parse().unwrap_or(f64::NAN)
}

fn decimal_exact(a: f64, b: f64, op: char) -> Option<f64> {
    let (ca, ea) = to_decimal(a)?;
    let (cb, eb) = to_decimal(b)?;
    match op {
        '+' | '-' => {
            let e = ea.min(eb);
            let x = ca.checked_mul(10i128.checked_pow(u32::try_from(ea - e).ok()?)?)?;
            let y = cb.checked_mul(10i128.checked_pow(u32::try_from(eb - e).ok()?)?)?;
            let c = if op == '+' {
                x.checked_add(y)?
            } else {
                x.checked_sub(y)?
            };
            Some(from_decimal(c, e))
        }
        _ => Some(from_decimal(ca.checked_mul(cb)?, ea + eb)),
    }
}

/// Exact decimal `a op b` as Sprig's decimal arithmetic does.
fn decimal_op(a: f64, b: f64, op: char) -> f64 {
    decimal_exact(a, b, op).unwrap_or(match op {
        '+' => a + b,
        '-' => a - b,
        _ => a * b,
    })
}

fn decimal_div(a: f64, b: f64) -> f64 {
    let q = a / b;
    if !q.is_finite() {
        return q;
    }
    format!("{q:.16}").parse().unwrap_or(q)
}

fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphanumeric()) && (c.is_whitespace() || !c.is_alphabetic())
        };
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64enc(b: &[u8]) -> String {
    let mut out = String::new();
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= ch.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64dec(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(format!(
            "illegal base64 data at input byte {}",
            b.len() / 4 * 4
        ));
    }
    let mut out = Vec::new();
    for (ci, ch) in b.chunks(4).enumerate() {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in ch.iter().enumerate() {
            let v = if c == b'=' && i >= 2 {
                pad += 1;
                0
            } else if pad > 0 {
                return Err(format!("illegal base64 data at input byte {}", ci * 4 + i));
            } else {
                match B64.iter().position(|&x| x == c) {
                    Some(p) => p as u32,
                    None => {
                        return Err(format!("illegal base64 data at input byte {}", ci * 4 + i));
                    }
                }
            };
            n = n << 6 | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
        if pad > 0 && ci + 1 != b.len() / 4 {
            return Err(format!("illegal base64 data at input byte {}", ci * 4 + 4));
        }
    }
    Ok(out)
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(h) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {:?}", bad));
                };
                out.push(u8::from_str_radix(h, 16).map_err(|e| e.to_string())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn trim_set<'s>(s: &'s str, set: &str, left: bool, right: bool) -> &'s str {
    let mut r = s;
    if left {
        r = r.trim_start_matches(|c| set.contains(c));
    }
    if right {
        r = r.trim_end_matches(|c| set.contains(c));
    }
    r
}

fn json_value(b: &[u8]) -> Option<Value> {
    use crate::pipeline::parsers::json::{Kind, object_each, string_value, value_at};
    let (kind, s, e, _) = value_at(b, 0).ok()?;
    let v = &b[s..e];
    Some(match kind {
        Kind::String => {
            let mut out = String::new();
            string_value(v, &mut out);
            Value::Str(out)
        }
        Kind::Number => Value::Float(std::str::from_utf8(v).ok()?.parse().ok()?),
        Kind::Boolean => Value::Bool(v == b"true"),
        Kind::Null => Value::Nil,
        Kind::Object => {
            let mut m: Vec<(String, Value)> = Vec::new();
            let mut kb = String::new();
            object_each(v, &mut kb, &mut |k, _, _| {
                m.push((k.to_string(), Value::Nil));
                Ok(())
            })
            .ok()?;
            // Re-walk to convert values (object_each gives raw slices).
            let mut vals = Vec::new();
            object_each(v, &mut kb, &mut |_, kd, raw| {
                let full = match kd {
                    Kind::String => {
                        let mut out = String::new();
                        string_value(raw, &mut out);
                        Value::Str(out)
                    }
                    _ => json_value(raw).unwrap_or(Value::Nil),
                };
                vals.push(full);
                Ok(())
            })
            .ok()?;
            for (slot, val) in m.iter_mut().zip(vals) {
                slot.1 = val;
            }
            m.sort_by(|a, b| a.0.cmp(&b.0));
            m.dedup_by(|a, b| a.0 == b.0);
            Value::Map(m)
        }
        Kind::Array => {
            let mut items = Vec::new();
            let mut i = 1;
            loop {
                let t = v.get(i..)?.iter().position(|c| !c.is_ascii_whitespace())? + i;
                if v[t] == b']' {
                    break;
                }
                let (kd, vs, ve, after) = value_at(v, t).ok()?;
                items.push(match kd {
                    Kind::String => {
                        let mut out = String::new();
                        string_value(&v[vs..ve], &mut out);
                        Value::Str(out)
                    }
                    _ => json_value(&v[vs..ve])?,
                });
                let n = v
                    .get(after..)?
                    .iter()
                    .position(|c| !c.is_ascii_whitespace())?
                    + after;
                match v[n] {
                    b',' => i = n + 1,
                    b']' => break,
                    _ => return None,
                }
            }
            Value::List(items)
        }
    })
}

/// Sprig's `empty`.
fn empty(v: &Value, labels_len: usize) -> bool {
    !v.truthy(labels_len == 0)
}

fn basic_cmp(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Equal)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Time(x), Value::Time(y)) => Ok(x.cmp(y)),
        _ => Err("incompatible types for comparison".to_string()),
    }
}

fn nargs(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn min_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn s(v: String) -> R {
    Ok(Value::Str(v))
}

fn now() -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time {
        secs: d.as_secs() as i64,
        nanos: d.subsec_nanos(),
    }
}

/// Calls `name` (never `and`/`or`, which the executor handles).
pub(crate) fn call(name: &str, a: &[Value], env: &Env<'_>) -> R {
    let to_s = env.to_s;
    match name {
        "not" => {
            nargs(name, a, 1)?;
            Ok(Value::Bool(!a[0].truthy(env.labels_len == 0)))
        }
        "len" => {
            nargs(name, a, 1)?;
            match &a[0] {
                Value::Str(x) => Ok(Value::Int(x.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                Value::Labels => Ok(Value::Int(env.labels_len as i64)),
                other => Err(format!("len of type {}", other.type_name())),
            }
        }
        "index" => {
            min_args(name, a, 1)?;
            let mut cur = a[0].clone();
            for k in &a[1..] {
                cur = match (&cur, k) {
                    (Value::Labels, Value::Str(key)) => {
                        Value::Str((env.labels_get)(key).unwrap_or_default())
                    }
                    (Value::Map(m), Value::Str(key)) => m
                        .iter()
                        .find(|(n, _)| n == key)
                        .map_or(Value::Nil, |(_, v)| v.clone()),
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| format!("index out of range: {i}"))?)
                        .cloned()
                        .ok_or_else(|| format!("index out of range: {i}"))?,
                    (Value::Str(st), Value::Int(i)) => Value::Int(
                        *st.as_bytes()
                            .get(
                                usize::try_from(*i)
                                    .map_err(|_| format!("index out of range: {i}"))?,
                            )
                            .ok_or_else(|| format!("index out of range: {i}"))?
                            as i64,
                    ),
                    (Value::Nil, _) => {
                        return Err("index of untyped nil".to_string());
                    }
                    (c, k) => {
                        return Err(format!(
                            "cannot index {} with {}",
                            c.type_name(),
                            k.type_name()
                        ));
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            min_args(name, a, 1)?;
            let idx: Vec<i64> = a[1..].iter().map(want_int).collect::<Result<_, _>>()?;
            match &a[0] {
                Value::Str(x) => {
                    let lo = *idx.first().unwrap_or(&0) as usize;
                    let hi = idx.get(1).map_or(x.len(), |h| *h as usize);
                    x.get(lo..hi)
                        .map(|t| Value::Str(t.to_string()))
                        .ok_or_else(|| format!("index out of range: {hi}"))
                }
                Value::List(l) => {
                    let lo = *idx.first().unwrap_or(&0) as usize;
                    let hi = idx.get(1).map_or(l.len(), |h| *h as usize);
                    l.get(lo..hi)
                        .map(|t| Value::List(t.to_vec()))
                        .ok_or_else(|| format!("index out of range: {hi}"))
                }
                other => Err(format!("can't slice item of type {}", other.type_name())),
            }
        }
        "print" | "println" => {
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0
                    && (name == "println"
                        || !(matches!(v, Value::Str(_)) || matches!(a[i - 1], Value::Str(_))))
                {
                    out.push(' ');
                }
                out.push_str(&to_s(v));
            }
            if name == "println" {
                out.push('\n');
            }
            s(out)
        }
        "printf" => {
            min_args(name, a, 1)?;
            s(printf::sprintf(want_str(&a[0])?, &a[1..], to_s))
        }
        "eq" => {
            min_args(name, a, 2)?;
            for b in &a[1..] {
                if basic_cmp(&a[0], b)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            nargs(name, a, 2)?;
            if matches!(a[0], Value::Bool(_)) && name != "ne" {
                return Err("invalid type for comparison".to_string());
            }
            let o = basic_cmp(&a[0], &a[1])?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "html" => {
            let t: String = a.iter().map(to_s).collect();
            s(t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;"))
        }
        "urlquery" => s(query_escape(&a.iter().map(to_s).collect::<String>())),
        "ToLower" | "lower" => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_lowercase())
        }
        "ToUpper" | "upper" => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_uppercase())
        }
        "title" => {
            nargs(name, a, 1)?;
            s(go_title(want_str(&a[0])?))
        }
        "Replace" => {
            nargs(name, a, 4)?;
            let (src, old, new) = (want_str(&a[0])?, want_str(&a[1])?, want_str(&a[2])?);
            let n = want_int(&a[3])?;
            s(if n < 0 {
                src.replace(old, new)
            } else {
                src.replacen(old, new, n as usize)
            })
        }
        "replace" => {
            nargs(name, a, 3)?;
            s(want_str(&a[2])?.replace(want_str(&a[0])?, want_str(&a[1])?))
        }
        "Trim" | "TrimLeft" | "TrimRight" => {
            nargs(name, a, 2)?;
            let (x, set) = (want_str(&a[0])?, want_str(&a[1])?);
            s(trim_set(x, set, name != "TrimRight", name != "TrimLeft").to_string())
        }
        "trimAll" => {
            nargs(name, a, 2)?;
            s(trim_set(want_str(&a[1])?, want_str(&a[0])?, true, true).to_string())
        }
        "TrimPrefix" => {
            nargs(name, a, 2)?;
            let (x, p) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_prefix(p).unwrap_or(x).to_string())
        }
        "TrimSuffix" => {
            nargs(name, a, 2)?;
            let (x, p) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_suffix(p).unwrap_or(x).to_string())
        }
        "trimPrefix" => {
            nargs(name, a, 2)?;
            let (p, x) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_prefix(p).unwrap_or(x).to_string())
        }
        "trimSuffix" => {
            nargs(name, a, 2)?;
            let (p, x) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_suffix(p).unwrap_or(x).to_string())
        }
        "TrimSpace" | "trim" => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.trim().to_string())
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            nargs(name, a, 3)?;
            let re = goregex::compile(want_str(&a[0])?, false).map_err(|e| e.to_string())?;
            let (x, repl) = (want_str(&a[1])?, want_str(&a[2])?);
            let out = if name == "regexReplaceAll" {
                re.replace_all(x.as_bytes(), repl.as_bytes())
            } else {
                re.replace_all(x.as_bytes(), regex::bytes::NoExpand(repl.as_bytes()))
            };
            s(String::from_utf8_lossy(&out).into_owned())
        }
        "count" => {
            nargs(name, a, 2)?;
            let re = goregex::compile(want_str(&a[0])?, false).map_err(|e| e.to_string())?;
            Ok(Value::Int(
                re.find_iter(want_str(&a[1])?.as_bytes()).count() as i64,
            ))
        }
        "urldecode" => {
            nargs(name, a, 1)?;
            s(query_unescape(want_str(&a[0])?)?)
        }
        "urlencode" => {
            nargs(name, a, 1)?;
            s(query_escape(want_str(&a[0])?))
        }
        "bytes" => {
            nargs(name, a, 1)?;
            crate::pipeline::convert::parse_bytes(want_str(&a[0])?).map(|b| Value::Float(b as f64))
        }
        "duration" | "duration_seconds" => {
            nargs(name, a, 1)?;
            crate::pipeline::convert::parse_go_duration(want_str(&a[0])?)
                .map(|d| Value::Float(crate::pipeline::convert::duration_seconds(d)))
        }
        "unixEpochMillis" => {
            nargs(name, a, 1)?;
            s(want_time(&a[0])?.unix_millis().to_string())
        }
        "unixEpochNanos" => {
            nargs(name, a, 1)?;
            s(want_time(&a[0])?.unix_nanos().to_string())
        }
        "unixEpoch" => {
            nargs(name, a, 1)?;
            s(want_time(&a[0])?.secs.to_string())
        }
        "toDateInZone" => {
            nargs(name, a, 3)?;
            let (layout, _zone, v) = (want_str(&a[0])?, want_str(&a[1])?, want_str(&a[2])?);
            Ok(Value::Time(
                time::parse(layout, v).unwrap_or_else(|_| Time::zero()),
            ))
        }
        "toDate" => {
            nargs(name, a, 2)?;
            let (layout, v) = (want_str(&a[0])?, want_str(&a[1])?);
            Ok(Value::Time(
                time::parse(layout, v).unwrap_or_else(|_| Time::zero()),
            ))
        }
        "date" => {
            nargs(name, a, 2)?;
            let layout = want_str(&a[0])?;
            let t = match &a[1] {
                Value::Time(t) => *t,
                Value::Int(secs) => Time {
                    secs: *secs,
                    nanos: 0,
                },
                _ => now(),
            };
            s(time::format(t, layout))
        }
        "now" => {
            nargs(name, a, 0)?;
            Ok(Value::Time(now()))
        }
        "unixToTime" => {
            nargs(name, a, 1)?;
            let e = want_str(&a[0])?;
            let err = || format!("unable to parse time '{e}'");
            let i: i64 = e.parse().map_err(|_| err())?;
            let t = match e.len() {
                5 => Time {
                    secs: i * 86_400,
                    nanos: 0,
                },
                10 => Time { secs: i, nanos: 0 },
                13 => Time::from_unix_nanos(i * 1_000_000),
                16 => Time::from_unix_nanos(i * 1_000),
                19 => Time::from_unix_nanos(i),
                _ => return Err(err()),
            };
            Ok(Value::Time(t))
        }
        "alignLeft" | "alignRight" => {
            nargs(name, a, 2)?;
            let (n, x) = (want_int(&a[0])?, want_str(&a[1])?);
            let chars: Vec<char> = x.chars().collect();
            let l = chars.len() as i64;
            if n < 0 || n == l {
                return s(x.to_string());
            }
            let pad = n - l;
            if pad > 0 {
                let sp = " ".repeat(pad as usize);
                return s(if name == "alignLeft" {
                    format!("{x}{sp}")
                } else {
                    format!("{sp}{x}")
                });
            }
            s(if name == "alignLeft" {
                chars[..n as usize].iter().collect()
            } else {
                chars[(l - n) as usize..].iter().collect()
            })
        }
        "b64enc" => {
            nargs(name, a, 1)?;
            s(b64enc(want_str(&a[0])?.as_bytes()))
        }
        "b64dec" => {
            nargs(name, a, 1)?;
            let mut v = want_str(&a[0])?.to_string();
            let rem = v.len() % 4;
            if rem != 0 && rem != 1 {
                v.push_str(&"=".repeat(4 - rem));
            }
            s(match b64dec(&v) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e,
            })
        }
        "__line__" => {
            nargs(name, a, 0)?;
            s(String::from_utf8_lossy(env.line).into_owned())
        }
        "__timestamp__" => {
            nargs(name, a, 0)?;
            Ok(Value::Time(Time::from_unix_nanos(env.ts)))
        }
        "trunc" => {
            nargs(name, a, 2)?;
            let (c, x) = (want_int(&a[0])?, want_str(&a[1])?);
            let l = x.len() as i64;
            let r = if c < 0 && l + c > 0 {
                x.get((l + c) as usize..)
            } else if c >= 0 && l > c {
                x.get(..c as usize)
            } else {
                Some(x)
            };
            r.map(|t| Value::Str(t.to_string()))
                .ok_or_else(|| "runtime error: slice bounds out of range".to_string())
        }
        "substr" => {
            nargs(name, a, 3)?;
            let (st, en, x) = (want_int(&a[0])?, want_int(&a[1])?, want_str(&a[2])?);
            let l = x.len() as i64;
            let r = if st < 0 {
                usize::try_from(en).ok().and_then(|e| x.get(..e))
            } else if en < 0 || en > l {
                x.get(st as usize..)
            } else {
                x.get(st as usize..en as usize)
            };
            r.map(|t| Value::Str(t.to_string()))
                .ok_or_else(|| "runtime error: slice bounds out of range".to_string())
        }
        "contains" => {
            nargs(name, a, 2)?;
            Ok(Value::Bool(want_str(&a[1])?.contains(want_str(&a[0])?)))
        }
        "hasPrefix" => {
            nargs(name, a, 2)?;
            Ok(Value::Bool(want_str(&a[1])?.starts_with(want_str(&a[0])?)))
        }
        "hasSuffix" => {
            nargs(name, a, 2)?;
            Ok(Value::Bool(want_str(&a[1])?.ends_with(want_str(&a[0])?)))
        }
        "indent" | "nindent" => {
            nargs(name, a, 2)?;
            let (n, x) = (want_int(&a[0])?, want_str(&a[1])?);
            let pad = " ".repeat(n.max(0) as usize);
            let body = format!("{pad}{}", x.replace('\n', &format!("\n{pad}")));
            s(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "repeat" => {
            nargs(name, a, 2)?;
            let (n, x) = (want_int(&a[0])?, want_str(&a[1])?);
            if n < 0 {
                return Err("strings: negative Repeat count".to_string());
            }
            if (n as u128) * (x.len() as u128) > 64 << 20 {
                return Err("strings: Repeat output length overflow".to_string());
            }
            s(x.repeat(n as usize))
        }
        "int" => {
            nargs(name, a, 1)?;
            Ok(Value::Int(cast_int(&a[0])))
        }
        "float64" => {
            nargs(name, a, 1)?;
            Ok(Value::Float(cast_float(&a[0])))
        }
        "add" => Ok(Value::Int(
            a.iter().fold(0i64, |acc, v| acc.wrapping_add(cast_int(v))),
        )),
        "mul" => {
            min_args(name, a, 1)?;
            Ok(Value::Int(a[1..].iter().fold(cast_int(&a[0]), |acc, v| {
                acc.wrapping_mul(cast_int(v))
            })))
        }
        "sub" | "div" | "mod" => {
            nargs(name, a, 2)?;
            let (x, y) = (cast_int(&a[0]), cast_int(&a[1]));
            Ok(Value::Int(match name {
                "sub" => x.wrapping_sub(y),
                _ if y == 0 => return Err("runtime error: integer divide by zero".to_string()),
                "div" => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            }))
        }
        "addf" => Ok(Value::Float(
            a.iter()
                .fold(0.0, |acc, v| decimal_op(acc, cast_float(v), '+')),
        )),
        "mulf" => {
            min_args(name, a, 1)?;
            Ok(Value::Float(
                a[1..].iter().fold(cast_float(&a[0]), |acc, v| {
                    decimal_op(acc, cast_float(v), '*')
                }),
            ))
        }
        "subf" => {
            min_args(name, a, 1)?;
            Ok(Value::Float(
                a[1..].iter().fold(cast_float(&a[0]), |acc, v| {
                    decimal_op(acc, cast_float(v), '-')
                }),
            ))
        }
        "divf" => {
            min_args(name, a, 1)?;
            let mut acc = cast_float(&a[0]);
            for v in &a[1..] {
                let d = cast_float(v);
                if d == 0.0 {
                    return Err("decimal division by 0".to_string());
                }
                acc = decimal_div(acc, d);
            }
            Ok(Value::Float(acc))
        }
        "max" | "min" => {
            min_args(name, a, 1)?;
            let it = a.iter().map(cast_int);
            Ok(Value::Int(if name == "max" {
                it.max().unwrap_or(0)
            } else {
                it.min().unwrap_or(0)
            }))
        }
        "maxf" | "minf" => {
            min_args(name, a, 1)?;
            let mut acc = cast_float(&a[0]);
            for v in &a[1..] {
                let x = cast_float(v);
                acc = if name == "maxf" {
                    acc.max(x)
                } else {
                    acc.min(x)
                };
            }
            Ok(Value::Float(acc))
        }
        "ceil" => {
            nargs(name, a, 1)?;
            Ok(Value::Float(cast_float(&a[0]).ceil()))
        }
        "floor" => {
            nargs(name, a, 1)?;
            Ok(Value::Float(cast_float(&a[0]).floor()))
        }
        "round" => {
            min_args(name, a, 2)?;
            let on = a.get(2).map_or(0.5, cast_float);
            let val = cast_float(&a[0]);
            let pow = 10f64.powf(want_int(&a[1])? as f64);
            let digit = pow * val;
            let frac = digit.fract();
            let r = if frac >= on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Ok(Value::Float(r / pow))
        }
        "fromJson" => {
            nargs(name, a, 1)?;
            Ok(json_value(want_str(&a[0])?.as_bytes()).unwrap_or(Value::Nil))
        }
        "default" => {
            min_args(name, a, 1)?;
            match a.get(1) {
                Some(g) if !empty(g, env.labels_len) => Ok(g.clone()),
                _ => Ok(a[0].clone()),
            }
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_float_math() {
        assert_eq!(decimal_op(1.1, 2.2, '+'), 3.3);
        assert_eq!(decimal_op(0.3, 0.1, '-'), 0.2);
        assert_eq!(decimal_op(1.1, 3.0, '*'), 3.3);
        assert_eq!(decimal_div(1.0, 3.0), 0.3333333333333333);
    }

    #[test]
    fn casts_and_helpers() {
        assert_eq!(cast_int(&Value::Str("200.0".into())), 200);
        assert_eq!(cast_int(&Value::Str("0x10".into())), 16);
        assert_eq!(cast_int(&Value::Str("oops".into())), 0);
        assert_eq!(cast_float(&Value::Str("1.5".into())), 1.5);
        assert_eq!(go_title("hello wide-world"), "Hello Wide-World");
        assert_eq!(b64enc(b"hello"), "aGVsbG8=");
        assert_eq!(b64dec("aGVsbG8=").unwrap(), b"hello");
        assert!(b64dec("a!==").is_err());
        assert_eq!(query_escape("a b&c"), "a+b%26c");
        assert_eq!(query_unescape("a+b%26c").unwrap(), "a b&c");
        assert!(query_unescape("%zz").is_err());
    }
}
