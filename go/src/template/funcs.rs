//! Template functions: Go's builtins, Sprig's functions as Loki and
//! Promtail use them, and Loki's own, with their argument rules.
//!
//! Every function is a [`Func`]; a [`Dialect`] says which names a program
//! offers. The parser resolves each name to its `Func` once, so executing a
//! template never looks a name up. Where Loki and Promtail offer the same
//! Sprig function, both dialects share its one implementation.
//!
//! Argument conversion follows Go's reflection rules loosely: a `string`
//! parameter needs a string, an `int` parameter an integer; Sprig's
//! numeric functions take anything and convert it the way the `cast`
//! library does (`"12"` → 12, failures → 0). `and`/`or` are evaluated
//! lazily by the executor and are only named here.

use super::printf;
use super::value::Value;
use crate::time::{self, Time, Zone};

/// What a function sees besides its arguments.
pub(crate) struct Env<'a> {
    pub line: &'a [u8],
    pub ts: i64,
    pub labels_get: &'a dyn Fn(&str) -> Option<String>,
    pub labels_len: usize,
    pub to_s: &'a dyn Fn(&Value) -> String,
    /// Prometheus' `externalURL` (alert templates).
    pub external_url: &'a str,
}

macro_rules! catalogue {
    ($($v:ident = $n:literal,)*) => {
        /// A template function, resolved from its name when the template is
        /// parsed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Func {
            $(
                #[doc = concat!("`", $n, "`")]
                $v,
            )*
        }

        const CATALOGUE: &[(&str, Func)] = &[$(($n, Func::$v),)*];

        impl Func {
            /// The name templates call it by.
            pub fn name(self) -> &'static str {
                match self {
                    $(Func::$v => $n,)*
                }
            }
        }
    };
}

catalogue! {
    And = "and",
    Or = "or",
    Not = "not",
    Len = "len",
    Index = "index",
    Slice = "slice",
    Print = "print",
    Printf = "printf",
    Println = "println",
    Eq = "eq",
    Ne = "ne",
    Lt = "lt",
    Le = "le",
    Gt = "gt",
    Ge = "ge",
    Html = "html",
    Urlquery = "urlquery",
    ToLower = "ToLower",
    ToUpper = "ToUpper",
    Replace = "Replace",
    Trim = "Trim",
    TrimLeft = "TrimLeft",
    TrimRight = "TrimRight",
    TrimPrefix = "TrimPrefix",
    TrimSuffix = "TrimSuffix",
    TrimSpace = "TrimSpace",
    RegexReplaceAll = "regexReplaceAll",
    RegexReplaceAllLiteral = "regexReplaceAllLiteral",
    Count = "count",
    Urldecode = "urldecode",
    Urlencode = "urlencode",
    Bytes = "bytes",
    Duration = "duration",
    DurationSeconds = "duration_seconds",
    UnixEpochMillis = "unixEpochMillis",
    UnixEpochNanos = "unixEpochNanos",
    ToDateInZone = "toDateInZone",
    UnixToTime = "unixToTime",
    AlignLeft = "alignLeft",
    AlignRight = "alignRight",
    B64dec = "b64dec",
    Line = "__line__",
    Timestamp = "__timestamp__",
    B64enc = "b64enc",
    Lower = "lower",
    Upper = "upper",
    Title = "title",
    Trunc = "trunc",
    Substr = "substr",
    Contains = "contains",
    HasPrefix = "hasPrefix",
    HasSuffix = "hasSuffix",
    Indent = "indent",
    Nindent = "nindent",
    ReplaceSprig = "replace",
    Repeat = "repeat",
    TrimSprig = "trim",
    TrimAll = "trimAll",
    TrimSuffixSprig = "trimSuffix",
    TrimPrefixSprig = "trimPrefix",
    Int = "int",
    Float64 = "float64",
    Add = "add",
    Sub = "sub",
    Mul = "mul",
    Div = "div",
    Mod = "mod",
    Addf = "addf",
    Subf = "subf",
    Mulf = "mulf",
    Divf = "divf",
    Max = "max",
    Min = "min",
    Maxf = "maxf",
    Minf = "minf",
    Ceil = "ceil",
    Floor = "floor",
    Round = "round",
    FromJson = "fromJson",
    Date = "date",
    ToDate = "toDate",
    Now = "now",
    UnixEpoch = "unixEpoch",
    Default = "default",
    Quote = "quote",
    // Prometheus' alert templates only (see `prometheus`).
    Humanize = "humanize",
    Humanize1024 = "humanize1024",
    HumanizeDuration = "humanizeDuration",
    HumanizePercentage = "humanizePercentage",
    HumanizeTimestamp = "humanizeTimestamp",
    ToUpperProm = "toUpper",
    ToLowerProm = "toLower",
    Match = "match",
    ReReplaceAll = "reReplaceAll",
    SafeHtml = "safeHtml",
    Args = "args",
    StripPort = "stripPort",
    StripDomain = "stripDomain",
    ParseDuration = "parseDuration",
    ToTime = "toTime",
    PathPrefix = "pathPrefix",
    ExternalUrl = "externalURL",
}

use Func as F;

/// Which functions a program's templates may call, how they read missing
/// data, and what the data is.
#[derive(Debug)]
pub struct Dialect {
    funcs: &'static [Func],
    missing_zero: bool,
    alert: bool,
}

/// Functions only Promtail's `template` stage offers, beyond Go's
/// builtins: its own string functions and the Sprig functions both
/// programs share.
const PROMTAIL_FUNCS: &[Func] = &[
    // Go builtins.
    F::And,
    F::Or,
    F::Not,
    F::Len,
    F::Index,
    F::Slice,
    F::Print,
    F::Printf,
    F::Println,
    F::Eq,
    F::Ne,
    F::Lt,
    F::Le,
    F::Gt,
    F::Ge,
    F::Html,
    F::Urlquery,
    // Promtail's own.
    F::ToLower,
    F::ToUpper,
    F::Replace,
    F::Trim,
    F::TrimLeft,
    F::TrimRight,
    F::TrimPrefix,
    F::TrimSuffix,
    F::TrimSpace,
    F::RegexReplaceAll,
    F::RegexReplaceAllLiteral,
    // Sprig.
    F::B64enc,
    F::B64dec,
    F::Lower,
    F::Upper,
    F::Title,
    F::Trunc,
    F::Substr,
    F::Contains,
    F::HasPrefix,
    F::HasSuffix,
    F::Indent,
    F::Nindent,
    F::ReplaceSprig,
    F::Repeat,
    F::TrimSprig,
    F::TrimAll,
    F::TrimSuffixSprig,
    F::TrimPrefixSprig,
    F::Int,
    F::Float64,
    F::Add,
    F::Sub,
    F::Mul,
    F::Div,
    F::Mod,
    F::Addf,
    F::Subf,
    F::Mulf,
    F::Divf,
    F::Max,
    F::Min,
    F::Maxf,
    F::Minf,
    F::Ceil,
    F::Floor,
    F::Round,
    F::FromJson,
    F::Date,
    F::ToDate,
    F::ToDateInZone,
    F::Now,
    F::UnixEpoch,
    F::Default,
    F::Quote,
];

/// Functions of Prometheus' alert templates only.
const fn prometheus_only(f: Func) -> bool {
    matches!(
        f,
        F::Humanize
            | F::Humanize1024
            | F::HumanizeDuration
            | F::HumanizePercentage
            | F::HumanizeTimestamp
            | F::ToUpperProm
            | F::ToLowerProm
            | F::Match
            | F::ReReplaceAll
            | F::SafeHtml
            | F::Args
            | F::StripPort
            | F::StripDomain
            | F::ParseDuration
            | F::ToTime
            | F::PathPrefix
            | F::ExternalUrl
    )
}

const fn count_loki() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < CATALOGUE.len() {
        let f = CATALOGUE[i].1;
        if !matches!(f, F::Quote) && !prometheus_only(f) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// Loki's `line_format`/`label_format` functions: every function of the
/// catalogue but Sprig's `quote`, which Loki does not offer, and those of
/// Prometheus' alert templates.
const LOKI_FUNCS: &[Func] = &{
    let mut out = [F::And; count_loki()];
    let mut i = 0;
    let mut o = 0;
    while i < CATALOGUE.len() {
        let f = CATALOGUE[i].1;
        if !matches!(f, F::Quote) && !prometheus_only(f) {
            out[o] = f;
            o += 1;
        }
        i += 1;
    }
    out
};

/// Prometheus' alert-template functions: Go's builtins and Prometheus'
/// own (no Sprig).
const PROMETHEUS_FUNCS: &[Func] = &[
    // Go builtins.
    F::And,
    F::Or,
    F::Not,
    F::Len,
    F::Index,
    F::Slice,
    F::Print,
    F::Printf,
    F::Println,
    F::Eq,
    F::Ne,
    F::Lt,
    F::Le,
    F::Gt,
    F::Ge,
    F::Html,
    F::Urlquery,
    // Prometheus'.
    F::Title,
    F::Humanize,
    F::Humanize1024,
    F::HumanizeDuration,
    F::HumanizePercentage,
    F::HumanizeTimestamp,
    F::ToUpperProm,
    F::ToLowerProm,
    F::Match,
    F::ReReplaceAll,
    F::SafeHtml,
    F::Args,
    F::StripPort,
    F::StripDomain,
    F::ParseDuration,
    F::ToTime,
    F::PathPrefix,
    F::ExternalUrl,
];

impl Dialect {
    /// Loki's `line_format` and `label_format`: Go's builtins, Loki's
    /// functions and its Sprig subset; the data is `map[string]string`
    /// executed with `missingkey=zero`, so a missing label reads as `""`.
    pub const LOKI: Dialect = Dialect {
        funcs: LOKI_FUNCS,
        missing_zero: true,
        alert: false,
    };

    /// Promtail's `template` stage: Go's builtins, Promtail's string
    /// functions and Sprig's; the data is `map[string]interface{}` with
    /// Go's default missing-key rule, so a missing value prints as
    /// `<no value>`.
    pub const PROMTAIL: Dialect = Dialect {
        funcs: PROMTAIL_FUNCS,
        missing_zero: false,
        alert: false,
    };

    /// Prometheus' alert labels and annotations (as Loki's ruler expands
    /// them): Go's builtins and Prometheus' functions (`humanize`,
    /// `humanizeDuration`, `match`, `reReplaceAll`, `title`, `toUpper`,
    /// ...); the data is the alert (`.Labels`, `.ExternalLabels`,
    /// `.ExternalURL`, `.Value`, from [`Context`](super::Context)), and
    /// `$labels`, `$externalLabels`, `$externalURL` and `$value` are
    /// defined before the text, as Prometheus defines them; a missing label
    /// reads as `""` (`missingkey=zero`). The functions that run queries
    /// (`query`, `first`, `label`, `value`, `sortByLabel`, `strvalue`) and
    /// the links to Prometheus' own UI (`graphLink`, `tableLink`) are not
    /// offered.
    pub const PROMETHEUS: Dialect = Dialect {
        funcs: PROMETHEUS_FUNCS,
        missing_zero: true,
        alert: true,
    };

    /// The function `name` names in this dialect.
    pub fn function(&self, name: &str) -> Option<Func> {
        let f = CATALOGUE.iter().find(|(n, _)| *n == name)?.1;
        self.funcs.contains(&f).then_some(f)
    }

    /// Whether templates of this dialect can call `name`.
    pub fn has(&self, name: &str) -> bool {
        self.function(name).is_some()
    }

    /// Whether a missing key reads as `""` (`missingkey=zero`) rather than
    /// as no value.
    pub(crate) fn missing_zero(&self) -> bool {
        self.missing_zero
    }

    /// Whether the data is an alert (Prometheus' template data) rather
    /// than a map of labels.
    pub(crate) fn alert(&self) -> bool {
        self.alert
    }
}

/// Functions whose first argument is a regex: a literal one is compiled
/// when the template is parsed.
pub(crate) fn takes_regex(f: Func) -> bool {
    matches!(
        f,
        F::RegexReplaceAll | F::RegexReplaceAllLiteral | F::Count | F::Match | F::ReReplaceAll
    )
}

/// A regex compiled at parse time, or Go's message for why it did not
/// compile (reported when the function runs, as Go reports it).
pub(crate) type Precompiled = Result<regex::Regex, String>;

pub(crate) type R = Result<Value, String>;

pub(crate) fn want_str(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        // A missing key of an interface map (Promtail's data).
        Value::Nil => Err("invalid value; expected string".to_string()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn want_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Nil => Err("invalid value; expected int".to_string()),
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
            crate::strconv::parse_int(t).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Go's `s[lo:hi]` on a string's bytes: out-of-range bounds are Go's
/// runtime error (`None`); a cut inside a multi-byte character leaves the
/// broken bytes, shown as U+FFFD.
fn byte_slice(s: &str, lo: i64, hi: i64) -> Option<String> {
    let (lo, hi) = (usize::try_from(lo).ok()?, usize::try_from(hi).ok()?);
    let b = s.as_bytes().get(lo..hi)?;
    Some(String::from_utf8_lossy(b).into_owned())
}

/// `cast.ToFloat64`.
fn cast_float(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => crate::strconv::parse_float(s).unwrap_or(0.0),
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

pub(crate) fn query_escape(s: &str) -> String {
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

/// `fromJson`: Go's `encoding/json` into `interface{}` (numbers are
/// float64, objects maps with sorted keys, the last of repeated keys wins).
fn json_value(text: &str) -> Option<Value> {
    fn conv(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::List(a.into_iter().map(conv).collect()),
            serde_json::Value::Object(m) => {
                Value::Map(m.into_iter().map(|(k, v)| (k, conv(v))).collect())
            }
        }
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .map(conv)
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

pub(crate) fn nargs(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

pub(crate) fn min_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

pub(crate) fn s(v: String) -> R {
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

/// Calls `f` (never `and`/`or`, which the executor handles). `pre` is the
/// regex compiled at parse time for a literal first argument.
pub(crate) fn call(f: Func, a: &[Value], env: &Env<'_>, pre: Option<&Precompiled>) -> R {
    let to_s = env.to_s;
    let name = f.name();
    match f {
        F::Not => {
            nargs(name, a, 1)?;
            Ok(Value::Bool(!a[0].truthy(env.labels_len == 0)))
        }
        F::Len => {
            nargs(name, a, 1)?;
            match &a[0] {
                Value::Str(x) => Ok(Value::Int(x.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                Value::Labels => Ok(Value::Int(env.labels_len as i64)),
                other => Err(format!("len of type {}", other.type_name())),
            }
        }
        F::Index => {
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
        F::Slice => {
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
        F::Print | F::Println => {
            let mut out = String::new();
            for (i, v) in a.iter().enumerate() {
                if i > 0
                    && (f == F::Println
                        || !(matches!(v, Value::Str(_)) || matches!(a[i - 1], Value::Str(_))))
                {
                    out.push(' ');
                }
                out.push_str(&to_s(v));
            }
            if f == F::Println {
                out.push('\n');
            }
            s(out)
        }
        F::Printf => {
            min_args(name, a, 1)?;
            s(printf::sprintf(want_str(&a[0])?, &a[1..], to_s))
        }
        F::Eq => {
            min_args(name, a, 2)?;
            for b in &a[1..] {
                // Go compares a missing value with anything as unequal.
                if matches!(a[0], Value::Nil) != matches!(b, Value::Nil) {
                    continue;
                }
                if basic_cmp(&a[0], b)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        F::Ne | F::Lt | F::Le | F::Gt | F::Ge => {
            nargs(name, a, 2)?;
            if matches!(a[0], Value::Bool(_)) && f != F::Ne {
                return Err("invalid type for comparison".to_string());
            }
            if f == F::Ne && matches!(a[0], Value::Nil) != matches!(a[1], Value::Nil) {
                return Ok(Value::Bool(true));
            }
            let o = basic_cmp(&a[0], &a[1])?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match f {
                F::Ne => o != Equal,
                F::Lt => o == Less,
                F::Le => o != Greater,
                F::Gt => o == Greater,
                _ => o != Less,
            }))
        }
        F::Html => {
            let t: String = a.iter().map(to_s).collect();
            s(t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;"))
        }
        F::Urlquery => s(query_escape(&a.iter().map(to_s).collect::<String>())),
        F::ToLower | F::Lower => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_lowercase())
        }
        F::ToUpper | F::Upper => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_uppercase())
        }
        F::Title => {
            nargs(name, a, 1)?;
            s(go_title(want_str(&a[0])?))
        }
        F::Replace => {
            nargs(name, a, 4)?;
            let (src, old, new) = (want_str(&a[0])?, want_str(&a[1])?, want_str(&a[2])?);
            let n = want_int(&a[3])?;
            s(if n < 0 {
                src.replace(old, new)
            } else {
                src.replacen(old, new, n as usize)
            })
        }
        F::ReplaceSprig => {
            nargs(name, a, 3)?;
            s(want_str(&a[2])?.replace(want_str(&a[0])?, want_str(&a[1])?))
        }
        F::Trim | F::TrimLeft | F::TrimRight => {
            nargs(name, a, 2)?;
            let (x, set) = (want_str(&a[0])?, want_str(&a[1])?);
            s(trim_set(x, set, f != F::TrimRight, f != F::TrimLeft).to_string())
        }
        F::TrimAll => {
            nargs(name, a, 2)?;
            s(trim_set(want_str(&a[1])?, want_str(&a[0])?, true, true).to_string())
        }
        F::TrimPrefix => {
            nargs(name, a, 2)?;
            let (x, p) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_prefix(p).unwrap_or(x).to_string())
        }
        F::TrimSuffix => {
            nargs(name, a, 2)?;
            let (x, p) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_suffix(p).unwrap_or(x).to_string())
        }
        F::TrimPrefixSprig => {
            nargs(name, a, 2)?;
            let (p, x) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_prefix(p).unwrap_or(x).to_string())
        }
        F::TrimSuffixSprig => {
            nargs(name, a, 2)?;
            let (p, x) = (want_str(&a[0])?, want_str(&a[1])?);
            s(x.strip_suffix(p).unwrap_or(x).to_string())
        }
        F::TrimSpace | F::TrimSprig => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.trim().to_string())
        }
        F::RegexReplaceAll | F::RegexReplaceAllLiteral => {
            nargs(name, a, 3)?;
            let compiled;
            let re = match pre {
                Some(p) => p.as_ref().map_err(Clone::clone)?,
                None => {
                    compiled = compile_regex(want_str(&a[0])?)?;
                    &compiled
                }
            };
            let (x, repl) = (want_str(&a[1])?, want_str(&a[2])?);
            let out = if f == F::RegexReplaceAll {
                re.replace_all(x, repl)
            } else {
                re.replace_all(x, regex::NoExpand(repl))
            };
            s(out.into_owned())
        }
        F::Count => {
            nargs(name, a, 2)?;
            let compiled;
            let re = match pre {
                Some(p) => p.as_ref().map_err(Clone::clone)?,
                None => {
                    compiled = compile_regex(want_str(&a[0])?)?;
                    &compiled
                }
            };
            Ok(Value::Int(re.find_iter(want_str(&a[1])?).count() as i64))
        }
        F::Urldecode => {
            nargs(name, a, 1)?;
            s(query_unescape(want_str(&a[0])?)?)
        }
        F::Urlencode => {
            nargs(name, a, 1)?;
            s(query_escape(want_str(&a[0])?))
        }
        F::Bytes => {
            nargs(name, a, 1)?;
            crate::bytes::parse_bytes(want_str(&a[0])?)
                .map(|b| Value::Float(b as f64))
                .map_err(|e| e.to_string())
        }
        F::Duration | F::DurationSeconds => {
            nargs(name, a, 1)?;
            crate::duration::parse_go_duration(want_str(&a[0])?)
                .map(|d| Value::Float(crate::duration::seconds(d.as_nanos())))
                .map_err(|e| e.to_string())
        }
        F::UnixEpochMillis => {
            nargs(name, a, 1)?;
            s(want_time(&a[0])?.unix_millis().to_string())
        }
        F::UnixEpochNanos => {
            nargs(name, a, 1)?;
            s(want_time(&a[0])?.unix_nanos().to_string())
        }
        F::UnixEpoch => {
            nargs(name, a, 1)?;
            s(want_time(&a[0])?.secs.to_string())
        }
        F::ToDateInZone => {
            nargs(name, a, 3)?;
            let (layout, zone, v) = (want_str(&a[0])?, want_str(&a[1])?, want_str(&a[2])?);
            // Sprig falls back to UTC for an unknown zone, and to the zero
            // time for a value that does not parse.
            let zone = Zone::load(zone).unwrap_or(Zone::UTC);
            Ok(Value::Time(
                time::parse_in_zone(layout, v, zone).unwrap_or_else(|_| Time::zero()),
            ))
        }
        F::ToDate => {
            nargs(name, a, 2)?;
            let (layout, v) = (want_str(&a[0])?, want_str(&a[1])?);
            Ok(Value::Time(
                time::parse(layout, v).unwrap_or_else(|_| Time::zero()),
            ))
        }
        F::Date => {
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
        F::Now => {
            nargs(name, a, 0)?;
            Ok(Value::Time(now()))
        }
        F::UnixToTime => {
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
        F::AlignLeft | F::AlignRight => {
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
                return s(if f == F::AlignLeft {
                    format!("{x}{sp}")
                } else {
                    format!("{sp}{x}")
                });
            }
            s(if f == F::AlignLeft {
                chars[..n as usize].iter().collect()
            } else {
                chars[(l - n) as usize..].iter().collect()
            })
        }
        F::B64enc => {
            nargs(name, a, 1)?;
            s(b64enc(want_str(&a[0])?.as_bytes()))
        }
        F::B64dec => {
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
        F::Line => {
            nargs(name, a, 0)?;
            s(String::from_utf8_lossy(env.line).into_owned())
        }
        F::Timestamp => {
            nargs(name, a, 0)?;
            Ok(Value::Time(Time::from_unix_nanos(env.ts)))
        }
        F::Trunc => {
            nargs(name, a, 2)?;
            let (c, x) = (want_int(&a[0])?, want_str(&a[1])?);
            let l = x.len() as i64;
            let r = if c < 0 && l + c > 0 {
                byte_slice(x, l + c, l)
            } else if c >= 0 && l > c {
                byte_slice(x, 0, c)
            } else {
                Some(x.to_string())
            };
            r.map(Value::Str)
                .ok_or_else(|| "runtime error: slice bounds out of range".to_string())
        }
        F::Substr => {
            nargs(name, a, 3)?;
            let (st, en, x) = (want_int(&a[0])?, want_int(&a[1])?, want_str(&a[2])?);
            let l = x.len() as i64;
            let r = if st < 0 {
                byte_slice(x, 0, en)
            } else if en < 0 || en > l {
                byte_slice(x, st, l)
            } else {
                byte_slice(x, st, en)
            };
            r.map(Value::Str)
                .ok_or_else(|| "runtime error: slice bounds out of range".to_string())
        }
        F::Contains => {
            nargs(name, a, 2)?;
            Ok(Value::Bool(want_str(&a[1])?.contains(want_str(&a[0])?)))
        }
        F::HasPrefix => {
            nargs(name, a, 2)?;
            Ok(Value::Bool(want_str(&a[1])?.starts_with(want_str(&a[0])?)))
        }
        F::HasSuffix => {
            nargs(name, a, 2)?;
            Ok(Value::Bool(want_str(&a[1])?.ends_with(want_str(&a[0])?)))
        }
        F::Indent | F::Nindent => {
            nargs(name, a, 2)?;
            let (n, x) = (want_int(&a[0])?, want_str(&a[1])?);
            let pad = " ".repeat(n.max(0) as usize);
            let body = format!("{pad}{}", x.replace('\n', &format!("\n{pad}")));
            s(if f == F::Nindent {
                format!("\n{body}")
            } else {
                body
            })
        }
        F::Repeat => {
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
        F::Int => {
            nargs(name, a, 1)?;
            Ok(Value::Int(cast_int(&a[0])))
        }
        F::Float64 => {
            nargs(name, a, 1)?;
            Ok(Value::Float(cast_float(&a[0])))
        }
        F::Add => Ok(Value::Int(
            a.iter().fold(0i64, |acc, v| acc.wrapping_add(cast_int(v))),
        )),
        F::Mul => {
            min_args(name, a, 1)?;
            Ok(Value::Int(a[1..].iter().fold(cast_int(&a[0]), |acc, v| {
                acc.wrapping_mul(cast_int(v))
            })))
        }
        F::Sub | F::Div | F::Mod => {
            nargs(name, a, 2)?;
            let (x, y) = (cast_int(&a[0]), cast_int(&a[1]));
            Ok(Value::Int(match f {
                F::Sub => x.wrapping_sub(y),
                _ if y == 0 => return Err("runtime error: integer divide by zero".to_string()),
                F::Div => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            }))
        }
        F::Addf => Ok(Value::Float(
            a.iter()
                .fold(0.0, |acc, v| decimal_op(acc, cast_float(v), '+')),
        )),
        F::Mulf => {
            min_args(name, a, 1)?;
            Ok(Value::Float(
                a[1..].iter().fold(cast_float(&a[0]), |acc, v| {
                    decimal_op(acc, cast_float(v), '*')
                }),
            ))
        }
        F::Subf => {
            min_args(name, a, 1)?;
            Ok(Value::Float(
                a[1..].iter().fold(cast_float(&a[0]), |acc, v| {
                    decimal_op(acc, cast_float(v), '-')
                }),
            ))
        }
        F::Divf => {
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
        F::Max | F::Min => {
            min_args(name, a, 1)?;
            let it = a.iter().map(cast_int);
            Ok(Value::Int(if f == F::Max {
                it.max().unwrap_or(0)
            } else {
                it.min().unwrap_or(0)
            }))
        }
        F::Maxf | F::Minf => {
            min_args(name, a, 1)?;
            let mut acc = cast_float(&a[0]);
            for v in &a[1..] {
                let x = cast_float(v);
                acc = if f == F::Maxf { acc.max(x) } else { acc.min(x) };
            }
            Ok(Value::Float(acc))
        }
        F::Ceil => {
            nargs(name, a, 1)?;
            Ok(Value::Float(cast_float(&a[0]).ceil()))
        }
        F::Floor => {
            nargs(name, a, 1)?;
            Ok(Value::Float(cast_float(&a[0]).floor()))
        }
        F::Round => {
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
        F::FromJson => {
            nargs(name, a, 1)?;
            Ok(json_value(want_str(&a[0])?).unwrap_or(Value::Nil))
        }
        F::Default => {
            min_args(name, a, 1)?;
            match a.get(1) {
                Some(g) if !empty(g, env.labels_len) => Ok(g.clone()),
                _ => Ok(a[0].clone()),
            }
        }
        F::Quote => {
            let parts: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Value::Nil))
                .map(|v| crate::quote::go_quote(&to_s(v)))
                .collect();
            s(parts.join(" "))
        }
        F::And | F::Or => Err(format!("{name} is evaluated by the executor")),
        _ if prometheus_only(f) => super::prometheus::call(f, a, env, pre),
        _ => Err(format!("{name} is not a function of this dialect")),
    }
}

/// Compiles a regex given at run time, with Go's error text.
pub(crate) fn compile_regex(p: &str) -> Result<regex::Regex, String> {
    crate::regex::compile(p, false).map_err(|e| e.to_string())
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
