//! Reading `.logqltest` scripts (format: `testdata/README.md`).
//!
//! A script is a list of commands: `clear`, `load` with indented entry
//! lines, and `eval` with indented expectations. Comments start with `#`
//! outside quotes; blank lines separate nothing in particular.

use std::fmt;

/// One entry line of a `load` block, expanded by its `repeat`.
#[derive(Debug, Clone)]
pub struct LoadEntry {
    /// Stream selector text as written (`{app="foo"}`).
    pub labels: String,
    /// Timestamp in ns from the epoch.
    pub ts: i64,
    /// The line (`{{.i}}` already substituted).
    pub line: String,
    /// Structured metadata pairs.
    pub metadata: Vec<(String, String)>,
}

/// When an `eval` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// `eval instant at <t>`.
    Instant(i64),
    /// `eval range from <t0> to <t1> step <s>`.
    Range(i64, i64, i64),
}

/// What an `eval` expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Series (or one scalar) with values.
    Result {
        /// `expect ordered`.
        ordered: bool,
        /// Expected series.
        series: Vec<ExpectedSeries>,
        /// A bare number: a scalar result.
        scalar: Option<f64>,
    },
    /// `expect empty`.
    Empty,
    /// `expect fail`, optionally with `msg:` (substring) or `regex:`.
    Fail(FailCheck),
}

/// How an expected failure's message is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum FailCheck {
    /// Any error.
    Any,
    /// The message contains this.
    Msg(String),
    /// The message matches this regex.
    Regex(String),
}

/// One expected series: labels text and a value per step (`None` = `_`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedSeries {
    /// Labels as written.
    pub labels: String,
    /// Values.
    pub values: Vec<Option<f64>>,
}

/// A command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Forget all data.
    Clear,
    /// Add entries.
    Load(Vec<LoadEntry>),
    /// Evaluate a query.
    Eval {
        /// 1-based line of the `eval`.
        line: usize,
        /// When.
        when: When,
        /// The LogQL text.
        query: String,
        /// Expectation.
        expect: Expect,
    },
}

/// A script error with its line.
#[derive(Debug)]
pub struct ScriptError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError {
        line,
        msg: msg.into(),
    })
}

/// Strips a `#` comment outside quotes (double quotes and backticks).
fn strip_comment(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '`' => quote = Some(c),
                '#' => return &s[..i],
                _ => {}
            },
        }
    }
    s
}

/// A Go duration with an optional sign (`90s`, `1m30s`, `500ms`, `-5m`).
pub fn duration_ns(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let ns = larch_query::pipeline::parse_go_duration(body).ok()?;
    Some(if neg { -ns } else { ns })
}

/// A value of an expected line: a float, `_`, or `a[+-b]xN`.
fn values(tok: &str, line: usize) -> Result<Vec<Option<f64>>, ScriptError> {
    if tok == "_" {
        return Ok(vec![None]);
    }
    if let Some(v) = number(tok) {
        return Ok(vec![Some(v)]);
    }
    // `_xN`, `a+bxN`, `a-bxN`, `axN`.
    let Some((head, count)) = tok.rsplit_once('x') else {
        return err(line, format!("bad value {tok:?}"));
    };
    let Ok(count) = count.parse::<usize>() else {
        return err(line, format!("bad repeat count in {tok:?}"));
    };
    if head == "_" {
        return Ok(vec![None; count + 1]);
    }
    // Split `a+b` / `a-b` at the sign that is not the leading one.
    let split = head
        .char_indices()
        .skip(1)
        .find(|&(i, c)| (c == '+' || c == '-') && !head[..i].ends_with(['e', 'E']));
    let (base, delta) = match split {
        Some((i, _)) => (&head[..i], &head[i..]),
        None => (head, "0"),
    };
    let (Some(base), Some(delta)) = (number(base), number(delta.trim_start_matches('+'))) else {
        return err(line, format!("bad value {tok:?}"));
    };
    Ok((0..=count).map(|i| Some(base + delta * i as f64)).collect())
}

fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Splits a labels text `{...}` off the front of `s` (quotes respected).
fn split_labels(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with('{') {
        return None;
    }
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '`' => quote = Some(c),
                '}' => return Some((&s[..=i], &s[i + 1..])),
                _ => {}
            },
        }
    }
    None
}

/// A quoted line: `"..."` (taken as written, no unescaping) or `` `...` ``.
fn split_quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next()?;
    if q != '"' && q != '`' {
        return None;
    }
    let body = &s[1..];
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some((&body[..i], &body[i + 1..]));
        }
    }
    None
}

/// `k="v" j="w"` (values may hold spaces).
fn metadata_pairs(mut s: &str, line: usize) -> Result<Vec<(String, String)>, ScriptError> {
    let mut text = String::from("{");
    loop {
        s = s.trim_start();
        if s.is_empty() {
            break;
        }
        let Some(eq) = s.find('=') else {
            return err(line, format!("bad metadata {s:?}"));
        };
        let name = s[..eq].trim();
        let Some((value, rest)) = split_quoted(&s[eq + 1..]) else {
            return err(line, format!("bad metadata value in {s:?}"));
        };
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str(name);
        text.push('=');
        text.push_str(&s[eq + 1..eq + 1 + value.len() + 2]);
        s = rest;
    }
    text.push('}');
    larch_query::parse_labels(&text).map_err(|e| ScriptError {
        line,
        msg: format!("bad metadata {text:?}: {e}"),
    })
}

fn load_line(text: &str, line: usize) -> Result<Vec<LoadEntry>, ScriptError> {
    let s = strip_comment(text).trim();
    let Some((labels, rest)) = split_labels(s) else {
        return err(line, "load line must start with a selector");
    };
    let Some((body, rest)) = split_quoted(rest.trim_start()) else {
        return err(line, "load line needs a quoted line");
    };
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix('@') else {
        return err(line, "load line needs `@ <offset>`");
    };
    let rest = rest.trim_start();
    let (at, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let Some(at) = duration_ns(at) else {
        return err(line, format!("bad offset {at:?}"));
    };
    let mut every = 0i64;
    let mut count = 1usize;
    let mut metadata = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let Some(inner) = rest.strip_prefix('[') else {
            return err(line, format!("unexpected {rest:?}"));
        };
        let Some(close) = inner.find(']') else {
            return err(line, "unterminated [");
        };
        let clause = inner[..close].trim();
        rest = &inner[close + 1..];
        let words: Vec<&str> = clause.split_whitespace().collect();
        match words.as_slice() {
            ["repeat", "every", step, "for", n] => {
                let (Some(step), Ok(n)) = (duration_ns(step), n.parse::<usize>()) else {
                    return err(line, format!("bad repeat clause {clause:?}"));
                };
                every = step;
                count = n;
            }
            ["metadata", ..] => {
                metadata = metadata_pairs(clause["metadata".len()..].trim(), line)?;
            }
            _ => return err(line, format!("unknown clause {clause:?}")),
        }
    }
    Ok((0..count)
        .map(|i| LoadEntry {
            labels: labels.to_string(),
            ts: at + every * i as i64,
            line: body.replace("{{.i}}", &i.to_string()),
            metadata: metadata.clone(),
        })
        .collect())
}

fn eval_header(text: &str, line: usize) -> Result<(When, String), ScriptError> {
    let words: Vec<&str> = text.splitn(8, char::is_whitespace).collect();
    let d = |s: &str| {
        duration_ns(s).ok_or_else(|| ScriptError {
            line,
            msg: format!("bad time {s:?}"),
        })
    };
    match words.as_slice() {
        ["eval", "instant", "at", t, rest @ ..] => {
            Ok((When::Instant(d(t)?), rest.join(" ").trim().to_string()))
        }
        ["eval", "range", "from", t0, "to", t1, "step", rest] => {
            let (s, q) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Ok((When::Range(d(t0)?, d(t1)?, d(s)?), q.trim().to_string()))
        }
        _ => err(line, format!("bad eval line {text:?}")),
    }
}

fn expectation(lines: &[(usize, &str)], eval_line: usize) -> Result<Expect, ScriptError> {
    let mut ordered = false;
    let mut series = Vec::new();
    let mut scalar = None;
    for &(ln, raw) in lines {
        let t = strip_comment(raw).trim();
        if t.is_empty() {
            continue;
        }
        if t == "expect empty" {
            return Ok(Expect::Empty);
        }
        if let Some(f) = raw.trim().strip_prefix("expect fail") {
            let f = f.trim();
            return Ok(Expect::Fail(if let Some(m) = f.strip_prefix("msg:") {
                FailCheck::Msg(m.trim().to_string())
            } else if let Some(r) = f.strip_prefix("regex:") {
                FailCheck::Regex(r.trim().to_string())
            } else {
                FailCheck::Any
            }));
        }
        if t.starts_with("skip ") {
            // Loki skips value checks on its sharded deployment; we run the
            // direct engine, where the values are exact.
            continue;
        }
        if t == "expect ordered" {
            ordered = true;
            continue;
        }
        if let Some((labels, rest)) = split_labels(t) {
            let mut vals = Vec::new();
            for tok in rest.split_whitespace() {
                vals.extend(values(tok, ln)?);
            }
            series.push(ExpectedSeries {
                labels: labels.to_string(),
                values: vals,
            });
            continue;
        }
        match number(t) {
            Some(v) => scalar = Some(v),
            None => return err(ln, format!("bad expectation {t:?}")),
        }
    }
    if series.is_empty() && scalar.is_none() {
        return err(eval_line, "eval without expectation");
    }
    Ok(Expect::Result {
        ordered,
        series,
        scalar,
    })
}

/// Parses a whole script.
pub fn parse(text: &str) -> Result<Vec<Command>, ScriptError> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (ln, raw) = lines[i];
        let t = strip_comment(raw).trim();
        i += 1;
        if t.is_empty() {
            continue;
        }
        if raw.starts_with(char::is_whitespace) {
            return err(ln, "indented line outside a block");
        }
        // The indented block that follows.
        let start = i;
        while i < lines.len() && lines[i].1.starts_with(char::is_whitespace) {
            i += 1;
        }
        let block = &lines[start..i];
        if t == "clear" {
            out.push(Command::Clear);
        } else if t == "load" {
            let mut entries = Vec::new();
            for &(bl, b) in block {
                if strip_comment(b).trim().is_empty() {
                    continue;
                }
                entries.extend(load_line(b, bl)?);
            }
            out.push(Command::Load(entries));
        } else if t.starts_with("eval ") {
            // The query keeps its own comments: LogQL reads `#` itself.
            let (when, query) = eval_header(raw.trim(), ln)?;
            out.push(Command::Eval {
                line: ln,
                when,
                query,
                expect: expectation(block, ln)?,
            });
        } else {
            return err(ln, format!("unknown command {t:?}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expand() {
        assert_eq!(
            values("2+3x2", 1).unwrap(),
            vec![Some(2.0), Some(5.0), Some(8.0)]
        );
        assert_eq!(values("4x3", 1).unwrap(), vec![Some(4.0); 4]);
        assert_eq!(values("-1-1x1", 1).unwrap(), vec![Some(-1.0), Some(-2.0)]);
        assert_eq!(values("_x1", 1).unwrap(), vec![None, None]);
        assert!(values("-Inf", 1).unwrap()[0].unwrap().is_infinite());
    }

    #[test]
    fn a_small_script() {
        let s = "clear\nload\n  {app=\"a\"} \"x {{.i}}\" @ 10s [repeat every 5s for 3] [metadata k=\"v\" j=\"w\"]   # c\n\neval range from 0s to 10s step 5s count_over_time({app=\"a\"}[5s]) # note\n  {app=\"a\"} _ 1 1 # trailing\neval instant at 1m 1+1\n  expect fail msg: nope\n";
        let c = parse(s).unwrap();
        assert_eq!(c.len(), 4);
        let Command::Load(e) = &c[1] else { panic!() };
        assert_eq!(e.len(), 3);
        assert_eq!(e[2].ts, 20_000_000_000);
        assert_eq!(e[2].line, "x 2");
        assert_eq!(e[0].metadata.len(), 2);
        let Command::Eval {
            when,
            query,
            expect,
            ..
        } = &c[2]
        else {
            panic!()
        };
        assert_eq!(*when, When::Range(0, 10_000_000_000, 5_000_000_000));
        assert!(query.starts_with("count_over_time"));
        assert_eq!(
            *expect,
            Expect::Result {
                ordered: false,
                series: vec![ExpectedSeries {
                    labels: "{app=\"a\"}".into(),
                    values: vec![None, Some(1.0), Some(1.0)]
                }],
                scalar: None
            }
        );
    }
}
