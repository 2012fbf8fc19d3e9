//! Go `text/template`, as Loki's `line_format`/`label_format` and
//! Promtail's `template` stage use it.
//!
//! A template is parsed once ([`Template::parse`]) for a [`Dialect`] (which
//! functions exist, how missing data reads) and executed per entry
//! ([`Template::execute`]) against a [`Context`]: the data is a map of
//! strings (`{{.level}}`, `{{range $k, $v := .}}`); for Loki the entry's
//! labels, a missing one reading as `""` (`missingkey=zero`), for Promtail
//! the extracted values plus `Value` and `Entry`, a missing one printing
//! `<no value>`. Loki's functions `__line__` and `__timestamp__` see the
//! entry's line and time.
//!
//! Parsing resolves every function name to a [`Func`] and compiles regexes
//! given as literals (`regexReplaceAll "[0-9]+" …`), so execution neither
//! looks names up nor compiles.
//!
//! Everything here is our own implementation of the documented Go
//! semantics: parsing in `parse`, values in `value`, `printf` verbs in
//! `printf`, the functions in `funcs`, and Loki's plan-time syntax check of
//! template texts (with Loki's error texts, without building a tree) in
//! `check`.

mod check;
mod funcs;
mod parse;
mod printf;
mod prometheus;
mod value;

pub use check::{MAX_NESTING, check_syntax};
pub use funcs::{Dialect, Func};
use parse::{Arg, Command, Node, Pipeline};
use value::Value;

/// A template error: a parse error (`template: line:1: unclosed action`)
/// or an execution error (`template: line:1: executing "line" …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The source does not parse.
    #[error("{0}")]
    Parse(String),
    /// Execution failed for one entry.
    #[error("{0}")]
    Exec(String),
}

/// What a template reads while executing for one entry.
pub trait Context {
    /// The value of a label.
    fn label(&self, name: &str) -> Option<&str>;
    /// Every label, sorted by name.
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str));
    /// The entry's line (`__line__`).
    fn line(&self) -> &[u8];
    /// The entry's timestamp, Unix nanoseconds (`__timestamp__`).
    fn timestamp(&self) -> i64;
    /// Prometheus' alert templates ([`Dialect::PROMETHEUS`]): the alert's
    /// value (`.Value`, `$value`). Other dialects never ask.
    fn value(&self) -> f64 {
        f64::NAN
    }
    /// Prometheus' alert templates: the external labels
    /// (`.ExternalLabels`, `$externalLabels`), sorted by name.
    fn for_each_external_label(&self, f: &mut dyn FnMut(&str, &str)) {
        let _ = f;
    }
    /// Prometheus' alert templates: the external URL (`.ExternalURL`,
    /// `$externalURL`, `externalURL`, `pathPrefix`).
    fn external_url(&self) -> &str {
        ""
    }
}

/// What Prometheus defines before the text of every alert template; on the
/// template's first line, so that line numbers in messages stay the
/// user's.
const ALERT_DEFINITIONS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
    missing_zero: bool,
    alert: bool,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    name: &'a str,
    missing_zero: bool,
    ctx: &'a dyn Context,
    vars: Vec<(String, Value)>,
    labels_len: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 10_000;

impl Template {
    /// Parses `src` with the functions of `dialect`; `name` appears in
    /// messages (`line`, `label`, `pipeline_template`).
    pub fn parse(name: &str, src: &str, dialect: &Dialect) -> Result<Template, TemplateError> {
        let nodes = if dialect.alert() {
            parse::parse(name, &format!("{ALERT_DEFINITIONS}{src}"), dialect)?
        } else {
            parse::parse(name, src, dialect)?
        };
        Ok(Template {
            name: name.to_string(),
            nodes,
            missing_zero: dialect.missing_zero(),
            alert: dialect.alert(),
        })
    }

    /// For `{{.name}}` alone: the label name (executing it is just a
    /// lookup).
    pub fn simple_field(&self) -> Option<&str> {
        match self.nodes.as_slice() {
            [Node::Action(p)] if p.decl.is_empty() && p.cmds.len() == 1 => {
                match p.cmds[0].args.as_slice() {
                    [Arg::Field(f)] if f.len() == 1 => Some(&f[0]),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Label names the template reads with `.name`.
    pub fn fields(&self) -> Vec<String> {
        fn pipe(p: &Pipeline, out: &mut Vec<String>) {
            for c in &p.cmds {
                for a in &c.args {
                    match a {
                        Arg::Field(f) => out.extend(f.first().cloned()),
                        Arg::Pipe(p, _) => pipe(p, out),
                        _ => {}
                    }
                }
            }
        }
        fn nodes(ns: &[Node], out: &mut Vec<String>) {
            for n in ns {
                match n {
                    Node::Action(p) => pipe(p, out),
                    Node::If(p, a, b) | Node::With(p, a, b) | Node::Range(p, a, b) => {
                        pipe(p, out);
                        nodes(a, out);
                        nodes(b, out);
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        nodes(&self.nodes, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Executes the template, appending to `out`.
    pub fn execute(&self, ctx: &dyn Context, out: &mut Vec<u8>) -> Result<(), TemplateError> {
        let mut labels_len = 0;
        ctx.for_each_label(&mut |_, _| labels_len += 1);
        let root = if self.alert {
            alert_data(ctx)
        } else {
            Value::Labels
        };
        let mut ex = Exec {
            name: &self.name,
            missing_zero: self.missing_zero,
            ctx,
            vars: vec![("$".to_string(), root.clone())],
            labels_len,
            depth: 0,
        };
        let mut s = String::new();
        let r = ex.walk(&self.nodes, &root, &mut s);
        out.extend_from_slice(s.as_bytes());
        r.map(|_| ())
    }
}

/// Prometheus' alert template data: `Labels`, `ExternalLabels`,
/// `ExternalURL`, `Value` (fields in name order, as a map keeps them).
fn alert_data(ctx: &dyn Context) -> Value {
    let mut external = Vec::new();
    ctx.for_each_external_label(&mut |k, v| {
        external.push((k.to_string(), Value::Str(v.to_string())));
    });
    external.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Map(vec![
        ("ExternalLabels".to_string(), Value::Map(external)),
        (
            "ExternalURL".to_string(),
            Value::Str(ctx.external_url().to_string()),
        ),
        ("Labels".to_string(), Value::Labels),
        ("Value".to_string(), Value::Float(ctx.value())),
    ])
}

impl Exec<'_> {
    fn err(&self, at: &str, msg: impl std::fmt::Display) -> TemplateError {
        TemplateError::Exec(format!(
            "template: {}:1: executing {:?} at <{}>: {}",
            self.name, self.name, at, msg
        ))
    }

    fn to_s(&self, v: &Value) -> String {
        let mut out = String::new();
        let ctx = self.ctx;
        value::write_value(v, &|f| ctx.for_each_label(f), &mut out);
        out
    }

    fn truthy(&self, v: &Value) -> bool {
        v.truthy(self.labels_len == 0)
    }

    fn walk(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<Flow, TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("range", "exceeded maximum template depth"));
        }
        let r = self.walk_inner(nodes, dot, out);
        self.depth -= 1;
        r
    }

    fn walk_inner(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<Flow, TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&self.to_s(&v));
                    }
                }
                Node::If(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let flow = if self.truthy(&v) {
                        self.walk(a, dot, out)?
                    } else {
                        self.walk(b, dot, out)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let flow = if self.truthy(&v) {
                        self.walk(a, &v, out)?
                    } else {
                        self.walk(b, dot, out)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(p, a, b) => self.range(p, a, b, dot, out)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        p: &Pipeline,
        body: &[Node],
        else_body: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let decl = p.decl.clone();
        let plain = Pipeline {
            decl: Vec::new(),
            assign: false,
            cmds: p.cmds.clone(),
        };
        let v = self.pipeline(&plain, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, x)| (Value::Str(k.clone()), x.clone()))
                .collect(),
            Value::Labels => {
                let mut v = Vec::new();
                self.ctx.for_each_label(&mut |k, x| {
                    v.push((Value::Str(k.to_string()), Value::Str(x.to_string())))
                });
                v
            }
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err(self.err(
                    "range",
                    format!("range can't iterate over {}", self.to_s(other)),
                ));
            }
        };
        if items.is_empty() {
            self.walk(else_body, dot, out)?;
            self.vars.truncate(mark);
            return Ok(());
        }
        for (k, x) in items {
            self.vars.truncate(mark);
            match decl.as_slice() {
                [one] => self.vars.push((one.clone(), x.clone())),
                [kn, vn] => {
                    self.vars.push((kn.clone(), k));
                    self.vars.push((vn.clone(), x.clone()));
                }
                _ => {}
            }
            match self.walk(body, &x, out)? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut v: Option<Value> = None;
        for c in &p.cmds {
            v = Some(self.command(c, dot, v)?);
        }
        let v = v.unwrap_or(Value::Nil);
        match p.decl.as_slice() {
            [] => {}
            [name] if p.assign => match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v.clone(),
                None => return Err(self.err(name, format!("undefined variable: {name}"))),
            },
            [name] => self.vars.push((name.clone(), v.clone())),
            _ => {}
        }
        Ok(v)
    }

    fn command(
        &mut self,
        c: &Command,
        dot: &Value,
        last: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Some(first) = c.args.first() else {
            return Ok(Value::Nil);
        };
        if let Arg::Func(f) = first {
            let f = *f;
            let name = f.name();
            // and/or evaluate lazily and return the deciding value.
            if matches!(f, Func::And | Func::Or) {
                let want = f == Func::Or;
                let mut result = Value::Nil;
                let n = c.args.len() - 1 + last.is_some() as usize;
                if n == 0 {
                    return Err(self.err(
                        name,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                for a in &c.args[1..] {
                    result = self.arg(a, dot)?;
                    if self.truthy(&result) == want {
                        return Ok(result);
                    }
                }
                if let Some(l) = last {
                    result = l;
                }
                return Ok(result);
            }
            let mut args = Vec::with_capacity(c.args.len());
            for a in &c.args[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(l) = last {
                args.push(l);
            }
            let ctx = self.ctx;
            let labels_get = |n: &str| ctx.label(n).map(str::to_string);
            let to_s = |v: &Value| self.to_s(v);
            let env = funcs::Env {
                line: ctx.line(),
                ts: ctx.timestamp(),
                labels_get: &labels_get,
                labels_len: self.labels_len,
                to_s: &to_s,
                external_url: ctx.external_url(),
            };
            return funcs::call(f, &args, &env, c.pre.as_ref())
                .map_err(|e| self.err(name, format!("error calling {name}: {e}")));
        }
        if c.args.len() > 1 || last.is_some() {
            let at = describe(first);
            return Err(self.err(&at, format!("can't give argument to non-function {at}")));
        }
        self.arg(first, dot)
    }

    fn field_of(&self, v: Value, f: &str) -> Result<Value, TemplateError> {
        Ok(match v {
            Value::Labels => match self.ctx.label(f) {
                Some(v) => Value::Str(v.to_string()),
                None if self.missing_zero => Value::Str(String::new()),
                None => Value::Nil,
            },
            Value::Map(m) => m
                .into_iter()
                .find(|(k, _)| k == f)
                .map_or(Value::Nil, |(_, x)| x),
            Value::Nil => {
                return Err(self.err(&format!(".{f}"), "nil pointer evaluating interface {}"));
            }
            other => {
                return Err(self.err(
                    &format!(".{f}"),
                    format!("can't evaluate field {f} in type {}", other.type_name()),
                ));
            }
        })
    }

    fn fields(&self, mut v: Value, fields: &[String]) -> Result<Value, TemplateError> {
        for f in fields {
            v = self.field_of(v, f)?;
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(f) => self.fields(dot.clone(), f),
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.err(name, format!("undefined variable: {name}")))?;
                self.fields(v, f)
            }
            Arg::Pipe(p, f) => {
                let mark = self.vars.len();
                let v = self.pipeline(p, dot)?;
                self.vars.truncate(mark);
                self.fields(v, f)
            }
            Arg::Func(f) => {
                let c = Command {
                    args: vec![Arg::Func(*f)],
                    pre: None,
                };
                self.command(&c, dot, None)
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(i) => Ok(Value::Int(*i)),
            Arg::Float(f) => Ok(Value::Float(*f)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
        }
    }
}

/// An argument as Go's parse tree prints it in error messages.
fn describe(a: &Arg) -> String {
    let fields = |f: &[String]| f.iter().map(|x| format!(".{x}")).collect::<String>();
    match a {
        Arg::Dot => ".".to_string(),
        Arg::Field(f) => fields(f),
        Arg::Var(v, f) => format!("{v}{}", fields(f)),
        Arg::Pipe(p, f) => {
            let cmds: Vec<String> = p
                .cmds
                .iter()
                .map(|c| c.args.iter().map(describe).collect::<Vec<_>>().join(" "))
                .collect();
            format!("({}){}", cmds.join(" | "), fields(f))
        }
        Arg::Func(f) => f.name().to_string(),
        Arg::Str(s) => crate::quote::go_quote(s),
        Arg::Int(i) => i.to_string(),
        Arg::Float(x) => printf::format_float_v(*x),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx {
        labels: Vec<(&'static str, &'static str)>,
        line: &'static str,
        ts: i64,
    }

    impl Context for Ctx {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
        }
        fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
            let mut v = self.labels.clone();
            v.sort();
            for (k, x) in v {
                f(k, x);
            }
        }
        fn line(&self) -> &[u8] {
            self.line.as_bytes()
        }
        fn timestamp(&self) -> i64 {
            self.ts
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            labels: vec![
                ("level", "error"),
                ("method", "get"),
                ("status", "200"),
                ("msg", "hello"),
                ("path", "/api/v1"),
            ],
            line: "the line",
            ts: 1_673_798_889_902_000_000,
        }
    }

    fn run(src: &str) -> Result<String, TemplateError> {
        let t = Template::parse("line", src, &Dialect::LOKI)?;
        let mut out = Vec::new();
        t.execute(&ctx(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn fields_and_missing_labels() {
        assert_eq!(run("L={{.level}}").unwrap(), "L=error");
        assert_eq!(run("V={{.missing}}").unwrap(), "V=");
        assert_eq!(run("{{ .level | upper }}").unwrap(), "ERROR");
        assert_eq!(run("{{.method}}-ok").unwrap(), "get-ok");
        assert_eq!(
            Template::parse("line", "{{.level}}", &Dialect::LOKI)
                .unwrap()
                .simple_field(),
            Some("level")
        );
    }

    #[test]
    fn control_flow() {
        assert_eq!(
            run(
                r#"{{ if eq .level "error" }}E{{ else if eq .level "warn" }}W{{ else }}I{{ end }}"#
            )
            .unwrap(),
            "E"
        );
        assert_eq!(
            run("{{ range $k, $v := . }}{{$k}}={{$v}};{{ end }}").unwrap(),
            "level=error;method=get;msg=hello;path=/api/v1;status=200;"
        );
        assert_eq!(
            run("{{ with .missing }}x{{ else }}none{{ end }}").unwrap(),
            "none"
        );
        assert_eq!(run("{{ $x := .status }}{{ $x }}").unwrap(), "200");
        assert_eq!(run("a  {{- .level -}}  b").unwrap(), "aerrorb");
        assert_eq!(run("{{/* comment */}}x").unwrap(), "x");
        assert_eq!(
            run("{{ and .level .missing }}|{{ or .missing .level }}").unwrap(),
            "|error"
        );
        assert_eq!(
            run("{{ not .missing }} {{ len .level }} {{ index . \"method\" }}").unwrap(),
            "true 5 get"
        );
        assert_eq!(run("{{ range $i, $e := (fromJson `[1,2,3]`) }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $e }}{{ end }}").unwrap(), "13");
    }

    #[test]
    fn loki_functions() {
        assert_eq!(
            run(r#"{{ printf "\x1b[31m%s\x1b[0m" .msg }}"#).unwrap(),
            "\x1b[31mhello\x1b[0m"
        );
        assert_eq!(run(r#"{{ .path | replace "/" "_" }}"#).unwrap(), "_api_v1");
        assert_eq!(run(r#"{{ Replace .path "/" "." -1 }}"#).unwrap(), ".api.v1");
        assert_eq!(
            run(r#"{{ regexReplaceAll "(a)(p)" .path "${2}$1" }}"#).unwrap(),
            "/pai/v1"
        );
        assert_eq!(run("{{ .status | add 1 }}").unwrap(), "201");
        assert_eq!(run("{{ addf 1.1 2.2 }}").unwrap(), "3.3");
        assert_eq!(
            run("{{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 3 }}").unwrap(),
            "3 1 5"
        );
        assert_eq!(
            run(r#"{{ default "x" .missing }}{{ default "x" .level }}"#).unwrap(),
            "xerror"
        );
        assert_eq!(run("{{ __line__ }}").unwrap(), "the line");
        assert_eq!(
            run("{{ __timestamp__ | unixEpoch }}").unwrap(),
            "1673798889"
        );
        assert_eq!(
            run(r#"{{ __timestamp__ | date "2006-01-02" }}"#).unwrap(),
            "2023-01-15"
        );
        assert_eq!(
            run(r#"{{ toDate "2006-01-02" "2023-01-15" | unixEpochMillis }}"#).unwrap(),
            "1673740800000"
        );
        assert_eq!(
            run(r#"{{ alignLeft 5 .level }}|{{ alignRight 3 .level }}"#).unwrap(),
            "error|ror"
        );
        assert_eq!(run(r#"{{ "hello" | b64enc | b64dec }}"#).unwrap(), "hello");
        assert_eq!(
            run(r#"{{ "1.5KB" | bytes }} {{ "1m30s" | duration }}"#).unwrap(),
            "1500 90"
        );
        assert_eq!(
            run(r#"{{ trunc 3 .level }} {{ substr 1 3 .level }} {{ title "a b" }}"#).unwrap(),
            "err rr A B"
        );
        assert_eq!(
            run(r#"{{ (fromJson `{"a":{"b":"c"}}`).a.b }}"#).unwrap(),
            "c"
        );
        assert_eq!(
            run(r#"{{ count "l" "hello" }} {{ urlencode "a b" }}"#).unwrap(),
            "2 a+b"
        );
        assert_eq!(run("{{ 1.5 }} {{ 1e6 }} {{ 3 }}").unwrap(), "1.5 1e+06 3");
    }

    #[test]
    fn errors_read_like_go() {
        let e = Template::parse("line", "{{ nosuchfunc }}", &Dialect::LOKI).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: line:1: function \"nosuchfunc\" not defined"
        );
        let e = Template::parse("label", "{{", &Dialect::LOKI).unwrap_err();
        assert_eq!(e.to_string(), "template: label:1: unclosed action");
        assert!(Template::parse("line", "{{ if .a }}x", &Dialect::LOKI).is_err());
        assert!(Template::parse("line", "{{ end }}", &Dialect::LOKI).is_err());
        let deep = "{{ if 1 }}".repeat(200_000) + &"{{ end }}".repeat(200_000);
        assert!(
            Template::parse("line", &deep, &Dialect::LOKI)
                .unwrap_err()
                .to_string()
                .contains("nesting too deep")
        );
        let parens = "{{ ".to_string() + &"(".repeat(200_000) + "1" + &")".repeat(200_000) + " }}";
        assert!(Template::parse("line", &parens, &Dialect::LOKI).is_err());
        let e = run("{{ div 1 0 }}").unwrap_err();
        assert!(e.to_string().contains("integer divide by zero"), "{e}");
        let e = run(r#"{{ eq .status 200 }}"#).unwrap_err();
        assert!(
            e.to_string().contains("incompatible types for comparison"),
            "{e}"
        );
    }

    struct Alert;

    impl Context for Alert {
        fn label(&self, name: &str) -> Option<&str> {
            match name {
                "namespace" => Some("shop"),
                "pod" => Some("web-0"),
                _ => None,
            }
        }
        fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
            f("namespace", "shop");
            f("pod", "web-0");
        }
        fn line(&self) -> &[u8] {
            b""
        }
        fn timestamp(&self) -> i64 {
            0
        }
        fn value(&self) -> f64 {
            1234.5
        }
        fn for_each_external_label(&self, f: &mut dyn FnMut(&str, &str)) {
            f("cluster", "eu-1");
        }
        fn external_url(&self) -> &str {
            "http://grafana.example:3000/g"
        }
    }

    fn alert(src: &str) -> Result<String, TemplateError> {
        let t = Template::parse("__alert_Test", src, &Dialect::PROMETHEUS)?;
        let mut out = Vec::new();
        t.execute(&Alert, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn prometheus_alert_templates() {
        assert_eq!(
            alert("{{ $labels.namespace }}/{{ $labels.pod }} = {{ $value }}").unwrap(),
            "shop/web-0 = 1234.5"
        );
        assert_eq!(alert("[{{ $labels.missing }}]").unwrap(), "[]");
        assert_eq!(
            alert("{{ .Labels.pod }} {{ .Value | humanize }} {{ $externalLabels.cluster }}")
                .unwrap(),
            "web-0 1.234k eu-1"
        );
        assert_eq!(
            alert("{{ $externalURL }} {{ pathPrefix }} {{ externalURL }}").unwrap(),
            "http://grafana.example:3000/g /g http://grafana.example:3000/g"
        );
        assert_eq!(
            alert(r#"{{ humanizeDuration 899.99 }} {{ humanizePercentage 0.1234567 }} {{ humanize1024 1048576.0 }} {{ "2.5" | humanize }}"#)
                .unwrap(),
            "14m 59s 12.35% 1Mi 2.5"
        );
        assert_eq!(
            alert(r#"{{ if match "^web-" $labels.pod }}{{ reReplaceAll "web-(.*)" "w$1" $labels.pod | toUpper }}{{ end }}"#)
                .unwrap(),
            "W0"
        );
        assert_eq!(
            alert(r#"{{ humanizeTimestamp 1600000000.5 }} {{ parseDuration "1m30s" }} {{ title "a b" }}"#)
                .unwrap(),
            "2020-09-13 12:26:40.5 +0000 UTC 90 A B"
        );
        assert_eq!(
            alert(r#"{{ stripPort "a.b:80" }} {{ stripDomain "a.b:80" }} {{ (args 1 "x").arg1 }}"#)
                .unwrap(),
            "a.b a:80 x"
        );
        assert_eq!(
            alert("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}").unwrap(),
            "namespace=shop;pod=web-0;"
        );
        // Prometheus' functions are not Loki's, nor Loki's Prometheus'.
        let e = Template::parse("line", "{{ humanize 1 }}", &Dialect::LOKI).unwrap_err();
        assert!(e.to_string().contains("not defined"), "{e}");
        let e = Template::parse("x", "{{ upper .a }}", &Dialect::PROMETHEUS).unwrap_err();
        assert!(e.to_string().contains("not defined"), "{e}");
        let e = alert(r#"{{ humanize "x" }}"#).unwrap_err();
        assert!(e.to_string().contains("invalid syntax"), "{e}");
        let e = alert("{{ $labels.pod").unwrap_err();
        assert_eq!(e.to_string(), "template: __alert_Test:1: unclosed action");
    }
}
