//! Checks Loki makes when it builds a query's pipeline, before any data is
//! read.
//!
//! Loki's parser accepts some queries that its engine then refuses while
//! turning the stages into executable form: a line filter regex that does
//! not compile, `ip()` with a bad address or with `|~`, a named capture in a
//! `|>` pattern, a bad JSON path in `| json a="x["`, a template that does
//! not parse, a label formatted twice. The error comes back as
//! `parse error : stage '<stage>' : <reason>`, where `<stage>` is the
//! stage's canonical text. [`check_expr`] makes the same checks on a parsed
//! query, in Loki's order (which follows its reordering of line filters to
//! the front of each pipeline segment), so that the query API can refuse
//! such queries up front with Loki's text.

use super::ast::{
    Expr, LabelExtraction, LabelFilter, LabelFormat, LineFilter, LineFilterOp, LineFilterValue,
    LogExpr, SampleExpr, Stage,
};
use super::check_go_regex;
use super::error::ParseError;
use larch_go::pattern::{check_filter, parse_pattern};
use larch_go::template::check_syntax as check_template;

fn check_pattern_filter(p: &str) -> Result<(), String> {
    check_filter(&parse_pattern(p)).map_err(|e| e.to_string())
}

/// Runs Loki's pipeline-building checks on every pipeline of `expr`.
pub fn check_expr(expr: &Expr) -> Result<(), ParseError> {
    match expr {
        Expr::Log(l) => check_pipeline(l),
        Expr::Sample(s) => check_sample(s),
    }
}

fn check_sample(s: &SampleExpr) -> Result<(), ParseError> {
    let mut result = Ok(());
    s.for_each_range(&mut |r| {
        if result.is_ok() {
            result = check_pipeline(&r.range.log);
        }
    });
    result
}

/// A stage in Loki's execution order: adjacent line filters of a segment
/// run first, as one combined stage.
enum Planned<'a> {
    LineFilters(Vec<&'a LineFilter>),
    Other(&'a Stage),
}

/// Loki's `reorderStages`: line filters move ahead of parsers and other
/// stages, but not across label filters, `line_format` or `unpack`, which
/// change what later filters see.
fn plan(stages: &[Stage]) -> Vec<Planned<'_>> {
    fn flush<'a>(out: &mut Vec<Planned<'a>>, f: &mut Vec<&'a LineFilter>, o: &mut Vec<&'a Stage>) {
        if !f.is_empty() {
            out.push(Planned::LineFilters(std::mem::take(f)));
        }
        out.extend(o.drain(..).map(Planned::Other));
    }
    let mut out = Vec::new();
    let mut filters: Vec<&LineFilter> = Vec::new();
    let mut others: Vec<&Stage> = Vec::new();
    for s in stages {
        match s {
            Stage::LabelFilter(_) => {
                flush(&mut out, &mut filters, &mut others);
                out.push(Planned::Other(s));
            }
            Stage::LineFilter(f) => filters.push(f),
            Stage::LineFormat(_) | Stage::Unpack => {
                others.push(s);
                flush(&mut out, &mut filters, &mut others);
            }
            _ => others.push(s),
        }
    }
    flush(&mut out, &mut filters, &mut others);
    out
}

fn check_pipeline(l: &LogExpr) -> Result<(), ParseError> {
    for p in plan(&l.stages) {
        let (text, result) = match p {
            Planned::LineFilters(fs) => {
                let text = fs
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                // Loki builds the combined filter from the last one back.
                let result = fs.iter().rev().try_for_each(|f| check_line_filter(f));
                (text, result)
            }
            Planned::Other(s) => (s.to_string(), check_stage(s)),
        };
        if let Err(reason) = result {
            return Err(ParseError::validation(format!("stage '{text}' : {reason}")));
        }
    }
    Ok(())
}

fn check_line_filter(f: &LineFilter) -> Result<(), String> {
    for v in &f.values {
        match v {
            LineFilterValue::Ip(p) => {
                if !matches!(f.op, LineFilterOp::Contains | LineFilterOp::NotContains) {
                    return Err("ip: invalid operation".into());
                }
                check_ip_pattern(p)?;
            }
            LineFilterValue::Text(t) => match f.op {
                LineFilterOp::Regex | LineFilterOp::NotRegex => {
                    check_go_regex(t)?;
                }
                LineFilterOp::Pattern | LineFilterOp::NotPattern => check_pattern_filter(t)?,
                LineFilterOp::Contains | LineFilterOp::NotContains => {}
            },
        }
    }
    Ok(())
}

fn check_stage(s: &Stage) -> Result<(), String> {
    match s {
        Stage::Json { params } => params
            .iter()
            .try_for_each(|p| check_json_path(&p.expr).map_err(|e| cannot_parse(p, &e))),
        Stage::Logfmt { params, .. } => params
            .iter()
            .try_for_each(|p| check_logfmt_expr(&p.expr).map_err(|e| cannot_parse(p, &e))),
        Stage::LabelFilter(LabelFilter::Ip { pattern, .. }) => check_ip_pattern(pattern),
        Stage::LineFormat(t) => {
            check_template("line", t).map_err(|e| format!("invalid line template: {e}"))
        }
        Stage::LabelFormat(fmts) => {
            let mut seen: Vec<&str> = Vec::new();
            for f in fmts {
                let dst = match f {
                    LabelFormat::Rename { dst, .. } | LabelFormat::Template { dst, .. } => dst,
                };
                if dst == "__error__" {
                    return Err(format!("{dst} cannot be formatted"));
                }
                if seen.contains(&dst.as_str()) {
                    return Err(format!(
                        "multiple label name '{dst}' not allowed in a single format operation"
                    ));
                }
                seen.push(dst);
            }
            for f in fmts {
                if let LabelFormat::Template { dst, template } = f {
                    check_template("label", template)
                        .map_err(|e| format!("invalid template for label '{dst}': {e}"))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn cannot_parse(p: &LabelExtraction, err: &str) -> String {
    format!("cannot parse expression [{}]: {err}", p.expr)
}

/// Loki's `ip()` patterns: an address, a CIDR prefix or a range `a-b`.
fn check_ip_pattern(p: &str) -> Result<(), String> {
    use std::net::IpAddr;
    let addr = |s: &str| s.parse::<IpAddr>().ok();
    let ok = if let Some((a, b)) = p.split_once('-') {
        match (addr(a), addr(b)) {
            (Some(a), Some(b)) => a.is_ipv4() == b.is_ipv4() && a <= b,
            _ => false,
        }
    } else if let Some((a, bits)) = p.split_once('/') {
        match (addr(a), bits.parse::<u8>()) {
            (Some(a), Ok(n)) => n <= if a.is_ipv4() { 32 } else { 128 } && n.to_string() == bits,
            _ => false,
        }
    } else {
        addr(p).is_some()
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "ip: invalid pattern: {}",
            larch_go::quote::go_quote(p)
        ))
    }
}

/// Loki's JSON path grammar for `| json label="path"`: a field, `["key"]`
/// or `[index]`, then any number of `.field`, `["key"]` and `[index]`.
fn check_json_path(p: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum T {
        Field,
        Lsb,
        Rsb,
        Dot,
        Str,
        Index,
    }
    let mut toks = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'.' | b']') {
                    if !b[i].is_ascii_digit() {
                        return Err(format!(
                            "non-integer value: {}",
                            p[i..].chars().next().unwrap_or(' ')
                        ));
                    }
                    i += 1;
                }
                if b.get(i) == Some(&b'.') && i > start {
                    return Err("cannot use float as array index".into());
                }
                toks.push(T::Index);
            }
            b'[' => {
                toks.push(T::Lsb);
                i += 1;
            }
            b']' => {
                toks.push(T::Rsb);
                i += 1;
            }
            b'.' => {
                toks.push(T::Dot);
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b']' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'"' {
                    i += 1;
                } else if i < b.len() {
                    // Loki's lexer ends the string at `]` and consumes it.
                    i += 1;
                }
                toks.push(T::Str);
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                toks.push(T::Field);
            }
            _ => {
                return Err(format!(
                    "unexpected char {}",
                    p[i..].chars().next().unwrap_or(' ')
                ));
            }
        }
    }
    // values := (field | access) (access | . field)*
    let mut k = 0;
    let access = |k: &mut usize| -> bool {
        if toks.get(*k) == Some(&T::Lsb)
            && matches!(toks.get(*k + 1), Some(T::Str | T::Index))
            && toks.get(*k + 2) == Some(&T::Rsb)
        {
            *k += 3;
            true
        } else {
            false
        }
    };
    if toks.first() == Some(&T::Field) {
        k = 1;
    } else if !access(&mut k) {
        return Err("syntax error".into());
    }
    while k < toks.len() {
        if toks[k] == T::Dot && toks.get(k + 1) == Some(&T::Field) {
            k += 2;
        } else if !access(&mut k) {
            return Err("syntax error".into());
        }
    }
    Ok(())
}

/// Loki's logfmt parameter grammar: a key, or quoted strings.
fn check_logfmt_expr(p: &str) -> Result<(), String> {
    let b = p.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'_' || c.is_ascii_alphabetic() {
            if n > 0 {
                return Err("syntax error".into());
            }
            while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                i += 1;
            }
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' && b[i] != b']' {
                i += 1;
            }
            i += 1;
        } else {
            return Err(format!(
                "unexpected char {}",
                p[i..].chars().next().unwrap_or(' ')
            ));
        }
        n += 1;
    }
    if n == 0 {
        return Err("syntax error".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse_expr;
    use super::*;

    fn check(q: &str) -> Result<(), String> {
        let e = parse_expr(q).map_err(|e| e.to_string())?;
        check_expr(&e).map_err(|e| e.to_string())
    }

    #[test]
    fn stage_errors() {
        assert_eq!(
            check(r#"{a="b"} |= "x" | json |~ "(""#).unwrap_err(),
            "parse error : stage '|= \"x\" |~ \"(\"' : error parsing regexp: missing closing ): `(`"
        );
        assert!(
            check(r#"{a="b"} |~ ip("1.2.3.4")"#)
                .unwrap_err()
                .contains("ip: invalid operation")
        );
        assert!(
            check(r#"{a="b"} |= ip("x")"#)
                .unwrap_err()
                .contains("ip: invalid pattern")
        );
        assert!(
            check(r#"{a="b"} |> "<a> x""#)
                .unwrap_err()
                .contains("named captures are not allowed")
        );
        assert!(
            check(r#"{a="b"} | json x="a[" "#)
                .unwrap_err()
                .contains("cannot parse expression")
        );
        assert!(
            check(r#"{a="b"} | line_format "{{ f }}""#)
                .unwrap_err()
                .contains("not defined")
        );
        assert!(
            check(r#"{a="b"} | label_format a=b, a="x""#)
                .unwrap_err()
                .contains("multiple label name")
        );
        assert!(
            check(r#"{a="b"} | x = ip("bogus")"#)
                .unwrap_err()
                .contains("ip: invalid pattern")
        );
    }

    #[test]
    fn valid_stages() {
        for q in [
            r#"{a="b"} |= ip("10.0.0.0/8") != ip("1.1.1.1-1.1.1.9") |= ip("::1")"#,
            r#"{a="b"} | json a="x.y[0]", b=`x["k"]`, c"#,
            r#"{a="b"} | logfmt a="k", b"#,
            r#"{a="b"} | line_format "{{.a | ToUpper}}" | label_format x="{{.y}}", z=w"#,
            r#"sum(rate({a="b"} |~ "a{2}|{" [1m]))"#,
        ] {
            assert_eq!(check(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn json_paths() {
        for p in [
            "a",
            "a.b",
            "a[0]",
            r#"a["k"].b"#,
            r#"["k"]"#,
            "[0]",
            "a.b[1][2]",
        ] {
            assert_eq!(check_json_path(p), Ok(()), "{p}");
        }
        for p in ["", "a[", "a..b", "a b", "0", "a[1.5]", "a[x]", ".a"] {
            assert!(check_json_path(p).is_err(), "{p}");
        }
    }
}
