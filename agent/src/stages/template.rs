//! The `template` stage and the Go-template subset it runs.
//!
//! A template is text with actions in `{{ }}` (`{{-`/`-}}` trim spaces).
//! Actions are pipelines (`.Value | ToUpper | trimPrefix "X"`, where a
//! piped value becomes the last argument, as in Go) and `if` / `else if` /
//! `else` / `end`. Data: `.Value` is the source value, `.Entry` the line,
//! `.<name>` any extracted value. Functions: Promtail's (`ToLower`,
//! `ToUpper`, `Replace`, `Trim`, `TrimLeft`, `TrimRight`, `TrimPrefix`,
//! `TrimSuffix`, `TrimSpace`, `regexReplaceAll`, `regexReplaceAllLiteral`)
//! and the Sprig ones logs use (`lower`, `upper`, `trim`, `trimAll`,
//! `trimPrefix`, `trimSuffix`, `replace`, `contains`, `hasPrefix`,
//! `hasSuffix`, `default`, `eq`, `ne`, `not`, `and`, `or`, `quote`,
//! `substr`, `trunc`, `repeat`). Unknown functions and syntax errors are
//! configuration errors.
//!
//! The result replaces the extracted value `source` (it is created if
//! missing), as in Promtail.

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Entry, FileState, Stage};

/// Settings of the `template` stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Extracted value read as `.Value` and replaced by the result.
    pub source: String,
    /// The template.
    pub template: String,
}

#[derive(Clone, Debug)]
enum Arg {
    Field(String),
    Dot,
    Str(String),
    Bool(bool),
    Sub(Box<Pipe>),
}

#[derive(Clone, Debug)]
enum Cmd {
    Arg(Arg),
    Call(Func, Vec<Arg>),
}

type Pipe = Vec<Cmd>;

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Out(Pipe),
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Lower,
    Upper,
    Replace,
    SprigReplace,
    Trim,
    TrimLeft,
    TrimRight,
    TrimPrefix,
    TrimSuffix,
    TrimSpace,
    SprigTrimAll,
    SprigTrimPrefix,
    SprigTrimSuffix,
    RegexReplaceAll,
    RegexReplaceAllLiteral,
    Contains,
    HasPrefix,
    HasSuffix,
    Default,
    Eq,
    Ne,
    Not,
    And,
    Or,
    Quote,
    Substr,
    Trunc,
    Repeat,
}

fn func(name: &str) -> Option<(Func, usize)> {
    use Func::*;
    Some(match name {
        "ToLower" | "lower" => (Lower, 1),
        "ToUpper" | "upper" => (Upper, 1),
        "Replace" => (Replace, 4),
        "replace" => (SprigReplace, 3),
        "Trim" => (Trim, 2),
        "TrimLeft" => (TrimLeft, 2),
        "TrimRight" => (TrimRight, 2),
        "TrimPrefix" => (TrimPrefix, 2),
        "TrimSuffix" => (TrimSuffix, 2),
        "TrimSpace" | "trim" => (TrimSpace, 1),
        "trimAll" => (SprigTrimAll, 2),
        "trimPrefix" => (SprigTrimPrefix, 2),
        "trimSuffix" => (SprigTrimSuffix, 2),
        "regexReplaceAll" => (RegexReplaceAll, 3),
        "regexReplaceAllLiteral" => (RegexReplaceAllLiteral, 3),
        "contains" => (Contains, 2),
        "hasPrefix" => (HasPrefix, 2),
        "hasSuffix" => (HasSuffix, 2),
        "default" => (Default, 2),
        "eq" => (Eq, 2),
        "ne" => (Ne, 2),
        "not" => (Not, 1),
        "and" => (And, 2),
        "or" => (Or, 2),
        "quote" => (Quote, 1),
        "substr" => (Substr, 3),
        "trunc" => (Trunc, 2),
        "repeat" => (Repeat, 2),
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Bool(bool),
    Nil,
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Str(s) => !s.is_empty(),
            Val::Bool(b) => *b,
            Val::Nil => false,
        }
    }
    fn text(&self) -> &str {
        match self {
            Val::Str(s) => s,
            Val::Bool(true) => "true",
            Val::Bool(false) => "false",
            Val::Nil => "",
        }
    }
}

/// A compiled template.
#[derive(Debug)]
pub(crate) struct Template {
    nodes: Vec<Node>,
    regexes: HashMap<String, Regex>,
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Lexer<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s.as_bytes()[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }
    fn word(&mut self) -> &'a str {
        let start = self.i;
        while self.i < self.s.len() {
            let c = self.s.as_bytes()[self.i];
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
                self.i += 1;
            } else {
                break;
            }
        }
        &self.s[start..self.i]
    }
}

fn parse_string(l: &mut Lexer<'_>) -> Result<String, String> {
    let q = l.peek().ok_or("unexpected end")?;
    l.i += 1;
    let mut out = String::new();
    loop {
        let c = l.s[l.i..].chars().next().ok_or("unterminated string")?;
        l.i += c.len_utf8();
        if c as u32 == q as u32 {
            return Ok(out);
        }
        if c == '\\' && q == b'"' {
            let e = l.s[l.i..].chars().next().ok_or("unterminated string")?;
            l.i += e.len_utf8();
            out.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            });
        } else {
            out.push(c);
        }
    }
}

fn parse_arg(
    l: &mut Lexer<'_>,
    regexes: &mut HashMap<String, Regex>,
) -> Result<Option<Arg>, String> {
    l.ws();
    match l.peek() {
        None | Some(b'|') | Some(b')') => Ok(None),
        Some(b'"') | Some(b'`') => Ok(Some(Arg::Str(parse_string(l)?))),
        Some(b'(') => {
            l.i += 1;
            let p = parse_pipe(l, regexes)?;
            l.ws();
            if l.peek() != Some(b')') {
                return Err("missing )".into());
            }
            l.i += 1;
            Ok(Some(Arg::Sub(Box::new(p))))
        }
        Some(b'.') => {
            let w = l.word();
            if w == "." {
                Ok(Some(Arg::Dot))
            } else if w[1..].contains('.') {
                Err(format!("nested field {w} is not supported"))
            } else {
                Ok(Some(Arg::Field(w[1..].to_string())))
            }
        }
        Some(c) if c.is_ascii_digit() || c == b'-' => {
            let start = l.i;
            l.i += 1;
            while l.peek().is_some_and(|c| c.is_ascii_digit()) {
                l.i += 1;
            }
            Ok(Some(Arg::Str(l.s[start..l.i].to_string())))
        }
        Some(_) => {
            let w = l.word();
            match w {
                "true" => Ok(Some(Arg::Bool(true))),
                "false" => Ok(Some(Arg::Bool(false))),
                "" => Err(format!("unexpected {:?}", &l.s[l.i..])),
                _ => Err(format!(
                    "function {w:?} used as an argument; wrap it in ( )"
                )),
            }
        }
    }
}

fn parse_cmd(
    l: &mut Lexer<'_>,
    regexes: &mut HashMap<String, Regex>,
    piped: bool,
) -> Result<Cmd, String> {
    l.ws();
    let start = l.i;
    let c = l.peek().ok_or("empty command")?;
    if c.is_ascii_alphabetic() {
        let name = l.word();
        if name != "true" && name != "false" {
            let (f, arity) = func(name).ok_or_else(|| format!("function {name:?} not defined"))?;
            let mut args = Vec::new();
            while let Some(a) = parse_arg(l, regexes)? {
                args.push(a);
            }
            let given = args.len() + usize::from(piped);
            if given != arity {
                return Err(format!(
                    "wrong number of args for {name}: want {arity} got {given}"
                ));
            }
            if matches!(f, Func::RegexReplaceAll | Func::RegexReplaceAllLiteral)
                && let Some(Arg::Str(re)) = args.first()
            {
                let compiled =
                    Regex::new(re).map_err(|e| format!("invalid regex in {name}: {e}"))?;
                regexes.insert(re.clone(), compiled);
            }
            return Ok(Cmd::Call(f, args));
        }
        l.i = start;
    }
    let a = parse_arg(l, regexes)?.ok_or("empty command")?;
    if piped {
        return Err("only a function can receive a piped value".into());
    }
    Ok(Cmd::Arg(a))
}

fn parse_pipe(l: &mut Lexer<'_>, regexes: &mut HashMap<String, Regex>) -> Result<Pipe, String> {
    let mut cmds = vec![parse_cmd(l, regexes, false)?];
    loop {
        l.ws();
        if l.peek() == Some(b'|') {
            l.i += 1;
            cmds.push(parse_cmd(l, regexes, true)?);
        } else {
            return Ok(cmds);
        }
    }
}

enum Tok {
    Text(String),
    Action(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let (trim_left, after) = match after.strip_prefix("- ") {
            Some(a) => (true, a),
            None => (false, after),
        };
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            out.push(Tok::Text(text.to_string()));
        }
        let close = after.find("}}").ok_or("unclosed action {{")?;
        let mut action = &after[..close];
        trim_next = false;
        if let Some(a) = action.strip_suffix(" -") {
            action = a;
            trim_next = true;
        }
        out.push(Tok::Action(action.trim().to_string()));
        rest = &after[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Tok::Text(text.to_string()));
    }
    Ok(out)
}

fn parse_nodes(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    regexes: &mut HashMap<String, Regex>,
    in_if: bool,
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(t) = toks.next() {
        match t {
            Tok::Text(s) => nodes.push(Node::Text(s)),
            Tok::Action(a) => {
                if a == "end" || a == "else" || a.starts_with("else if ") {
                    if !in_if {
                        return Err(format!("unexpected {{{{{a}}}}}"));
                    }
                    return Ok((nodes, Some(a)));
                }
                if let Some(cond) = a.strip_prefix("if ") {
                    let mut branches = Vec::new();
                    let mut cond = cond.to_string();
                    let mut otherwise = Vec::new();
                    loop {
                        let mut l = Lexer { s: &cond, i: 0 };
                        let pipe = parse_pipe(&mut l, regexes)?;
                        l.ws();
                        if l.i != cond.len() {
                            return Err(format!("unexpected {:?} in if", &cond[l.i..]));
                        }
                        let (body, end) = parse_nodes(toks, regexes, true)?;
                        branches.push((pipe, body));
                        match end.as_deref() {
                            Some("end") => break,
                            Some("else") => {
                                let (body, end) = parse_nodes(toks, regexes, true)?;
                                if end.as_deref() != Some("end") {
                                    return Err("missing {{end}} after {{else}}".into());
                                }
                                otherwise = body;
                                break;
                            }
                            Some(e) if e.starts_with("else if ") => {
                                cond = e["else if ".len()..].to_string()
                            }
                            _ => return Err("missing {{end}}".into()),
                        }
                    }
                    nodes.push(Node::If(branches, otherwise));
                } else {
                    let mut l = Lexer { s: &a, i: 0 };
                    let pipe = parse_pipe(&mut l, regexes)?;
                    l.ws();
                    if l.i != a.len() {
                        return Err(format!("unexpected {:?} in action", &a[l.i..]));
                    }
                    nodes.push(Node::Out(pipe));
                }
            }
        }
    }
    if in_if {
        return Err("missing {{end}}".into());
    }
    Ok((nodes, None))
}

/// The data a template reads.
pub(crate) struct Data<'a> {
    pub value: Option<&'a str>,
    pub entry: &'a Entry,
}

impl Template {
    /// Parses a template.
    pub fn parse(src: &str) -> Result<Template, String> {
        let mut regexes = HashMap::new();
        let mut toks = tokenize(src)?.into_iter().peekable();
        let (nodes, _) =
            parse_nodes(&mut toks, &mut regexes, false).map_err(|e| format!("template: {e}"))?;
        Ok(Template { nodes, regexes })
    }

    /// Renders into `out`.
    pub fn render(&mut self, data: &Data<'_>, out: &mut String) {
        out.clear();
        let nodes = std::mem::take(&mut self.nodes);
        self.render_nodes(&nodes, data, out);
        self.nodes = nodes;
    }

    fn render_nodes(&mut self, nodes: &[Node], data: &Data<'_>, out: &mut String) {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Out(p) => {
                    let v = self.eval_pipe(p, data);
                    out.push_str(v.text());
                }
                Node::If(branches, otherwise) => {
                    let mut taken = false;
                    for (cond, body) in branches {
                        if self.eval_pipe(cond, data).truthy() {
                            self.render_nodes(body, data, out);
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.render_nodes(otherwise, data, out);
                    }
                }
            }
        }
    }

    fn eval_arg(&mut self, a: &Arg, data: &Data<'_>) -> Val {
        match a {
            Arg::Dot => data.value.map_or(Val::Nil, |v| Val::Str(v.to_string())),
            Arg::Field(f) if f == "Value" => {
                data.value.map_or(Val::Nil, |v| Val::Str(v.to_string()))
            }
            Arg::Field(f) if f == "Entry" => Val::Str(data.entry.line.clone()),
            Arg::Field(f) => data
                .entry
                .extracted
                .get(f)
                .map_or(Val::Nil, |v| Val::Str(v.to_string())),
            Arg::Str(s) => Val::Str(s.clone()),
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Sub(p) => self.eval_pipe(p, data),
        }
    }

    fn eval_pipe(&mut self, p: &Pipe, data: &Data<'_>) -> Val {
        let mut piped: Option<Val> = None;
        for cmd in p {
            let v = match cmd {
                Cmd::Arg(a) => self.eval_arg(a, data),
                Cmd::Call(f, args) => {
                    let mut vals: Vec<Val> = args.iter().map(|a| self.eval_arg(a, data)).collect();
                    if let Some(pv) = piped.take() {
                        vals.push(pv);
                    }
                    self.call(*f, &vals)
                }
            };
            piped = Some(v);
        }
        piped.unwrap_or(Val::Nil)
    }

    fn regex(&mut self, pat: &str) -> Option<&Regex> {
        if !self.regexes.contains_key(pat) {
            // Patterns computed at run time are compiled once and cached.
            let re = Regex::new(pat).ok()?;
            if self.regexes.len() > 64 {
                self.regexes.clear();
            }
            self.regexes.insert(pat.to_string(), re);
        }
        self.regexes.get(pat)
    }

    fn call(&mut self, f: Func, v: &[Val]) -> Val {
        let s = |i: usize| v.get(i).map_or("", |x| x.text());
        let n = |i: usize| s(i).parse::<i64>().unwrap_or(0);
        let str_ = |x: String| Val::Str(x);
        match f {
            Func::Lower => str_(s(0).to_lowercase()),
            Func::Upper => str_(s(0).to_uppercase()),
            Func::Replace => {
                let count = n(3);
                if count < 0 {
                    str_(s(0).replace(s(1), s(2)))
                } else {
                    str_(s(0).replacen(s(1), s(2), count as usize))
                }
            }
            Func::SprigReplace => str_(s(2).replace(s(0), s(1))),
            Func::Trim => str_(s(0).trim_matches(|c| s(1).contains(c)).to_string()),
            Func::TrimLeft => str_(s(0).trim_start_matches(|c| s(1).contains(c)).to_string()),
            Func::TrimRight => str_(s(0).trim_end_matches(|c| s(1).contains(c)).to_string()),
            Func::TrimPrefix => str_(s(0).strip_prefix(s(1)).unwrap_or(s(0)).to_string()),
            Func::TrimSuffix => str_(s(0).strip_suffix(s(1)).unwrap_or(s(0)).to_string()),
            Func::TrimSpace => str_(s(0).trim().to_string()),
            Func::SprigTrimAll => str_(s(1).trim_matches(|c| s(0).contains(c)).to_string()),
            Func::SprigTrimPrefix => str_(s(1).strip_prefix(s(0)).unwrap_or(s(1)).to_string()),
            Func::SprigTrimSuffix => str_(s(1).strip_suffix(s(0)).unwrap_or(s(1)).to_string()),
            Func::RegexReplaceAll | Func::RegexReplaceAllLiteral => {
                let (pat, input, repl) = (s(0).to_string(), s(1).to_string(), s(2).to_string());
                let literal = f == Func::RegexReplaceAllLiteral;
                match self.regex(&pat) {
                    Some(re) if literal => {
                        str_(re.replace_all(&input, regex::NoExpand(&repl)).into_owned())
                    }
                    Some(re) => str_(re.replace_all(&input, repl.as_str()).into_owned()),
                    None => str_(input),
                }
            }
            Func::Contains => Val::Bool(s(1).contains(s(0))),
            Func::HasPrefix => Val::Bool(s(1).starts_with(s(0))),
            Func::HasSuffix => Val::Bool(s(1).ends_with(s(0))),
            Func::Default => {
                if v.get(1).is_some_and(|x| x.truthy()) {
                    v[1].clone()
                } else {
                    v.first().cloned().unwrap_or(Val::Nil)
                }
            }
            Func::Eq => Val::Bool(s(0) == s(1)),
            Func::Ne => Val::Bool(s(0) != s(1)),
            Func::Not => Val::Bool(!v.first().is_some_and(|x| x.truthy())),
            Func::And => Val::Bool(v.iter().all(|x| x.truthy())),
            Func::Or => Val::Bool(v.iter().any(|x| x.truthy())),
            Func::Quote => str_(format!("{:?}", s(0))),
            Func::Substr => {
                let text: Vec<char> = s(2).chars().collect();
                let start = n(0).clamp(0, text.len() as i64) as usize;
                let end = if n(1) < 0 {
                    text.len()
                } else {
                    (n(1) as usize).clamp(start, text.len())
                };
                str_(text[start..end].iter().collect())
            }
            Func::Trunc => {
                let text: Vec<char> = s(1).chars().collect();
                let k = n(0);
                let out: String = if k >= 0 {
                    text.iter().take(k as usize).collect()
                } else {
                    let skip = text.len().saturating_sub((-k) as usize);
                    text[skip..].iter().collect()
                };
                str_(out)
            }
            Func::Repeat => str_(s(1).repeat(n(0).clamp(0, 1024) as usize)),
        }
    }
}

pub(crate) struct TemplateStage {
    source: String,
    template: Template,
    out: String,
}

impl TemplateStage {
    pub fn new(c: &TemplateConfig) -> Result<Self, String> {
        if c.source.is_empty() {
            return Err("source must not be empty".into());
        }
        Ok(TemplateStage {
            source: c.source.clone(),
            template: Template::parse(&c.template)?,
            out: String::new(),
        })
    }
}

impl Stage for TemplateStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let data = Data {
            value: e.extracted.get(&self.source),
            entry: e,
        };
        self.template.render(&data, &mut self.out);
        e.extracted.set(&self.source, &self.out);
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn render(t: &str, value: &str, extracted: &[(&str, &str)]) -> String {
        let mut tpl = Template::parse(t).unwrap();
        let mut e = entry("the line", &[]);
        for (k, v) in extracted {
            e.extracted.set(k, v);
        }
        let mut out = String::new();
        tpl.render(
            &Data {
                value: Some(value),
                entry: &e,
            },
            &mut out,
        );
        out
    }

    #[test]
    fn renders_go_templates() {
        assert_eq!(render("{{ .Value | ToUpper }}", "warn", &[]), "WARN");
        assert_eq!(render("{{ ToLower .Value }}!", "WARN", &[]), "warn!");
        assert_eq!(
            render(r#"{{ Replace .Value "a" "o" -1 }}"#, "banana", &[]),
            "bonono"
        );
        assert_eq!(
            render(r#"{{ .Value | replace "a" "o" }}"#, "banana", &[]),
            "bonono"
        );
        assert_eq!(
            render(
                r#"{{ regexReplaceAll "(\\d+)" .Value "<$1>" }}"#,
                "a1b22",
                &[]
            ),
            "a<1>b<22>"
        );
        assert_eq!(
            render(
                r#"{{ if eq .Value "WARN" }}warning{{ else if eq .Value "ERR" }}error{{ else }}other{{ end }}"#,
                "ERR",
                &[]
            ),
            "error"
        );
        assert_eq!(
            render(
                "{{ .app }}/{{ .Value }} {{ .Entry }}",
                "v",
                &[("app", "cart")]
            ),
            "cart/v the line"
        );
        assert_eq!(render("a  {{- .Value -}}  b", "X", &[]), "aXb");
        assert_eq!(
            render(r#"{{ .missing | default "none" }}"#, "v", &[]),
            "none"
        );
        assert_eq!(
            render(
                r#"{{ TrimPrefix .Value "pre-" | TrimSpace }}"#,
                "pre- x ",
                &[]
            ),
            "x"
        );
        assert_eq!(
            render(
                r#"{{ substr 1 3 .Value }} {{ trunc 2 .Value }}"#,
                "hello",
                &[]
            ),
            "el he"
        );
        assert_eq!(
            render(
                r#"{{ if and (contains "b" .Value) (not (hasPrefix "x" .Value)) }}y{{ end }}"#,
                "abc",
                &[]
            ),
            "y"
        );
    }

    #[test]
    fn template_errors_are_config_errors() {
        assert!(
            Template::parse("{{ nosuch .Value }}")
                .unwrap_err()
                .contains("not defined")
        );
        assert!(
            Template::parse("{{ if .Value }}x")
                .unwrap_err()
                .contains("missing {{end}}")
        );
        assert!(
            Template::parse("{{ .Value ")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            Template::parse("{{ ToUpper }}")
                .unwrap_err()
                .contains("wrong number of args")
        );
        assert!(Template::parse("{{ end }}").is_err());
        assert!(
            Template::parse(r#"{{ regexReplaceAll "(" .Value "" }}"#)
                .unwrap_err()
                .contains("invalid regex")
        );
    }

    #[test]
    fn stage_writes_back_to_source() {
        let (mut p, _) = pipeline(
            "- regex:\n    expression: '(?P<level>\\w+)'\n- template:\n    source: level\n    template: '{{ ToUpper .Value }}'\n- labels:\n    level:\n",
        );
        let out = run_lines(&mut p, vec![entry("warn x", &[])]);
        assert_eq!(out[0].labels.get("level"), Some("WARN"));
    }

    proptest::proptest! {
        #[test]
        fn parser_and_renderer_never_panic(t in r#"[a-z {}|."()-]{0,40}"#, v in "\\PC{0,20}") {
            if let Ok(mut tpl) = Template::parse(&t) {
                let e = entry("line", &[]);
                let mut out = String::new();
                tpl.render(&Data { value: Some(&v), entry: &e }, &mut out);
            }
        }
    }
}
