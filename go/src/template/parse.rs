//! Lexing and parsing Go `text/template` source into a tree.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` whitespace
//! trimming, comments, pipelines with `|`, parenthesised pipelines,
//! variables (`$x := …`, `$x = …`, `$`), fields (`.a.b`, `$x.a`,
//! `(…).a`), string/raw-string/char/number/bool/nil constants, and the
//! control structures `if`/`else if`/`else`, `range` (with one or two
//! variables, `else`, `break`, `continue`) and `with`/`else with`.
//! `define`, `template` and `block` are not supported (one template per
//! stage) and are reported as errors.
//!
//! Error texts follow Go's: `template: <name>:<line>: <message>`.

use super::TemplateError;
use super::funcs::{self, Dialect, Func, Precompiled};

/// A constant or reference inside a command.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    /// `.` (the current data).
    Dot,
    /// `.a.b` on dot.
    Field(Vec<String>),
    /// `$x.a.b` (`$` is the root).
    Var(String, Vec<String>),
    /// `(pipeline).a.b`.
    Pipe(Box<Pipeline>, Vec<String>),
    /// A function (called with the command's other args).
    Func(Func),
    /// String constant.
    Str(String),
    /// Integer constant.
    Int(i64),
    /// Float constant.
    Float(f64),
    /// `true`/`false`.
    Bool(bool),
    /// `nil`.
    Nil,
}

/// One command: a function call, or a single value.
#[derive(Clone, Debug)]
pub(crate) struct Command {
    pub args: Vec<Arg>,
    /// For a function whose first argument is a literal regex: that regex,
    /// compiled once here.
    pub pre: Option<Precompiled>,
}

impl Command {
    /// A command of `args`, with its literal regex compiled.
    pub fn new(args: Vec<Arg>) -> Command {
        let pre = match args.as_slice() {
            [Arg::Func(f), Arg::Str(re), ..] if funcs::takes_regex(*f) => {
                Some(crate::regex::compile(re, false).map_err(|e| e.to_string()))
            }
            _ => None,
        };
        Command { args, pre }
    }
}

/// `$a, $b := cmd | cmd`.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub decl: Vec<String>,
    /// `=` (assign) rather than `:=` (declare).
    pub assign: bool,
    pub cmds: Vec<Command>,
}

/// A node of the template tree.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Ident(String),
    Field(String),
    Var(String),
    Str(String),
    Char(char),
    Number(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Dot,
    Space,
}

struct Lexer<'a> {
    name: &'a str,
    src: &'a str,
    pos: usize,
    line: usize,
    toks: Vec<(Tok, usize)>,
}

impl<'a> Lexer<'a> {
    fn err(&self, line: usize, msg: impl std::fmt::Display) -> TemplateError {
        TemplateError::Parse(format!("template: {}:{}: {}", self.name, line, msg))
    }

    fn run(mut self) -> Result<Vec<(Tok, usize)>, TemplateError> {
        let b = self.src.as_bytes();
        loop {
            let rest = &self.src[self.pos..];
            let Some(open) = rest.find("{{") else {
                if !rest.is_empty() {
                    self.toks.push((Tok::Text(rest.to_string()), self.line));
                }
                break;
            };
            let mut text = &rest[..open];
            let after = self.pos + open + 2;
            let trim_left = b.get(after) == Some(&b'-')
                && b.get(after + 1).is_some_and(|c| c.is_ascii_whitespace());
            if trim_left {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                self.toks.push((Tok::Text(text.to_string()), self.line));
            }
            self.line += rest[..open].matches('\n').count();
            self.pos = if trim_left { after + 2 } else { after };
            // Comments.
            let inner = &self.src[self.pos..];
            let trimmed = inner.trim_start();
            if trimmed.starts_with("/*") {
                let Some(end) = inner.find("*/") else {
                    return Err(self.err(self.line, "unclosed comment"));
                };
                let mut p = self.pos + end + 2;
                let close = &self.src[p..];
                let close_trim = close.trim_start();
                let (trim_right, skip) = if let Some(r) = close_trim.strip_prefix("-}}") {
                    (true, close.len() - r.len())
                } else if let Some(r) = close_trim.strip_prefix("}}") {
                    (false, close.len() - r.len())
                } else {
                    return Err(self.err(self.line, "comment ends before closing delimiter"));
                };
                self.line += self.src[self.pos..p].matches('\n').count();
                p += skip;
                if trim_right {
                    let r = &self.src[p..];
                    p += r.len() - r.trim_start_matches([' ', '\t', '\r', '\n']).len();
                }
                self.pos = p;
                continue;
            }
            self.toks.push((Tok::Open, self.line));
            self.action()?;
        }
        Ok(self.toks)
    }

    fn action(&mut self) -> Result<(), TemplateError> {
        let b = self.src.as_bytes();
        let mut paren = 0i32;
        loop {
            let Some(&c) = b.get(self.pos) else {
                return Err(self.err(self.line, "unclosed action"));
            };
            // Close delimiter, optionally trimming.
            if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
                let rest = &self.src[self.pos..];
                let ws = rest.len() - rest.trim_start().len();
                if rest[ws..].starts_with("-}}") {
                    self.line += rest[..ws].matches('\n').count();
                    self.pos += ws + 3;
                    let r = &self.src[self.pos..];
                    let n = r.len() - r.trim_start_matches([' ', '\t', '\r', '\n']).len();
                    self.line += r[..n].matches('\n').count();
                    self.pos += n;
                    self.toks.push((Tok::Close, self.line));
                    return Ok(());
                }
                if c == b'\n' && paren == 0 {
                    // Newlines are allowed inside actions since Go 1.16.
                    self.line += 1;
                } else if c == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
                if !matches!(self.toks.last(), Some((Tok::Space, _))) {
                    self.toks.push((Tok::Space, self.line));
                }
                continue;
            }
            if self.src[self.pos..].starts_with("}}") {
                if paren > 0 {
                    return Err(self.err(self.line, "unclosed left paren"));
                }
                self.pos += 2;
                self.toks.push((Tok::Close, self.line));
                return Ok(());
            }
            let start = self.pos;
            match c {
                b'|' => {
                    self.pos += 1;
                    self.toks.push((Tok::Pipe, self.line));
                }
                b'(' => {
                    paren += 1;
                    self.pos += 1;
                    self.toks.push((Tok::LParen, self.line));
                }
                b')' => {
                    paren -= 1;
                    if paren < 0 {
                        return Err(self.err(self.line, "unexpected right paren"));
                    }
                    self.pos += 1;
                    self.toks.push((Tok::RParen, self.line));
                }
                b',' => {
                    self.pos += 1;
                    self.toks.push((Tok::Comma, self.line));
                }
                b':' => {
                    if b.get(self.pos + 1) != Some(&b'=') {
                        return Err(self.err(self.line, "expected :="));
                    }
                    self.pos += 2;
                    self.toks.push((Tok::Declare, self.line));
                }
                b'=' => {
                    self.pos += 1;
                    self.toks.push((Tok::Assign, self.line));
                }
                b'"' => {
                    let mut p = self.pos + 1;
                    loop {
                        match b.get(p) {
                            None | Some(b'\n') => {
                                return Err(self.err(self.line, "unterminated quoted string"));
                            }
                            Some(b'\\') => p += 2,
                            Some(b'"') => break,
                            _ => p += 1,
                        }
                    }
                    let raw = &self.src[self.pos + 1..p];
                    let s = crate::quote::unquote_body(raw).map_err(|e| self.err(self.line, e))?;
                    self.pos = p + 1;
                    self.toks.push((Tok::Str(s), self.line));
                }
                b'`' => {
                    let Some(end) = self.src[self.pos + 1..].find('`') else {
                        return Err(self.err(self.line, "unterminated raw quoted string"));
                    };
                    let s = &self.src[self.pos + 1..self.pos + 1 + end];
                    self.line += s.matches('\n').count();
                    self.toks.push((Tok::Str(s.to_string()), self.line));
                    self.pos += end + 2;
                }
                b'\'' => {
                    let Some(end) = self.src[self.pos + 1..].find('\'') else {
                        return Err(self.err(self.line, "unterminated character constant"));
                    };
                    let raw = &self.src[self.pos + 1..self.pos + 1 + end];
                    let s = crate::quote::unquote_body(raw).map_err(|e| self.err(self.line, e))?;
                    let mut cs = s.chars();
                    let (Some(ch), None) = (cs.next(), cs.next()) else {
                        return Err(self.err(self.line, "malformed character constant"));
                    };
                    self.pos += end + 2;
                    self.toks.push((Tok::Char(ch), self.line));
                }
                b'$' => {
                    let mut p = self.pos + 1;
                    while p < b.len() && (b[p].is_ascii_alphanumeric() || b[p] == b'_') {
                        p += 1;
                    }
                    self.toks
                        .push((Tok::Var(self.src[start..p].to_string()), self.line));
                    self.pos = p;
                }
                b'.' => {
                    let mut p = self.pos + 1;
                    if b.get(p).is_some_and(|c| c.is_ascii_digit()) {
                        self.number()?;
                        continue;
                    }
                    while p < b.len() && (b[p].is_ascii_alphanumeric() || b[p] == b'_') {
                        p += 1;
                    }
                    if p == self.pos + 1 {
                        self.toks.push((Tok::Dot, self.line));
                    } else {
                        self.toks
                            .push((Tok::Field(self.src[start + 1..p].to_string()), self.line));
                    }
                    self.pos = p;
                }
                b'0'..=b'9' | b'+' | b'-' => self.number()?,
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let mut p = self.pos;
                    while p < b.len() && (b[p].is_ascii_alphanumeric() || b[p] == b'_') {
                        p += 1;
                    }
                    self.toks
                        .push((Tok::Ident(self.src[start..p].to_string()), self.line));
                    self.pos = p;
                }
                _ => {
                    let ch = self.src[self.pos..].chars().next().unwrap_or('?');
                    return Err(self.err(self.line, format!("unexpected {:?} in command", ch)));
                }
            }
        }
    }

    fn number(&mut self) -> Result<(), TemplateError> {
        let b = self.src.as_bytes();
        let start = self.pos;
        let mut p = self.pos;
        if matches!(b.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        while p < b.len()
            && (b[p].is_ascii_alphanumeric()
                || b[p] == b'.'
                || b[p] == b'_'
                || ((b[p] == b'+' || b[p] == b'-')
                    && matches!(b[p - 1], b'e' | b'E' | b'p' | b'P')))
        {
            p += 1;
        }
        self.pos = p;
        self.toks
            .push((Tok::Number(self.src[start..p].to_string()), self.line));
        Ok(())
    }
}

fn parse_number(s: &str) -> Option<Arg> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let body_clean = body.replace('_', "");
    let int = if let Some(h) = body_clean
        .strip_prefix("0x")
        .or_else(|| body_clean.strip_prefix("0X"))
    {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body_clean
        .strip_prefix("0o")
        .or_else(|| body_clean.strip_prefix("0O"))
    {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bn) = body_clean
        .strip_prefix("0b")
        .or_else(|| body_clean.strip_prefix("0B"))
    {
        i64::from_str_radix(bn, 2).ok()
    } else if body_clean.len() > 1
        && body_clean.starts_with('0')
        && body_clean.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&body_clean[1..], 8).ok()
    } else {
        body_clean.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(Arg::Int(if neg { -i } else { i }));
    }
    let f: f64 = body_clean.parse().ok()?;
    Some(Arg::Float(if neg { -f } else { f }))
}

struct Parser<'a> {
    name: &'a str,
    /// Blocks and parentheses open around the current position.
    depth: usize,
    dialect: &'a Dialect,
    toks: Vec<(Tok, usize)>,
    i: usize,
}

#[derive(PartialEq)]
enum Stop {
    Eof,
    End,
    Else,
}

impl<'a> Parser<'a> {
    fn line(&self) -> usize {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map_or(1, |t| t.1)
    }

    fn err(&self, msg: impl std::fmt::Display) -> TemplateError {
        TemplateError::Parse(format!("template: {}:{}: {}", self.name, self.line(), msg))
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.i += 1;
        }
    }

    fn next_nonspace(&mut self) -> Option<Tok> {
        self.skip_space();
        let t = self.toks.get(self.i).map(|t| t.0.clone());
        self.i += 1;
        t
    }

    /// Parses nodes until `{{end}}`/`{{else}}`/EOF.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(t) = self.toks.get(self.i).map(|t| t.0.clone()) {
            self.i += 1;
            match t {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Open => {
                    let save = self.i;
                    match self.next_nonspace() {
                        Some(Tok::Ident(k)) if k == "end" => {
                            self.expect_close()?;
                            return Ok((nodes, Stop::End));
                        }
                        Some(Tok::Ident(k)) if k == "else" => {
                            // `else` alone or `else if`/`else with`: the
                            // caller handles the rest of the action.
                            return Ok((nodes, Stop::Else));
                        }
                        Some(Tok::Ident(k)) if k == "if" => nodes.push(self.branch("if")?),
                        Some(Tok::Ident(k)) if k == "with" => nodes.push(self.branch("with")?),
                        Some(Tok::Ident(k)) if k == "range" => nodes.push(self.branch("range")?),
                        Some(Tok::Ident(k)) if k == "break" => {
                            self.expect_close()?;
                            nodes.push(Node::Break);
                        }
                        Some(Tok::Ident(k)) if k == "continue" => {
                            self.expect_close()?;
                            nodes.push(Node::Continue);
                        }
                        Some(Tok::Ident(k)) if k == "define" || k == "template" || k == "block" => {
                            return Err(self.err(format!("unsupported action {k:?}")));
                        }
                        _ => {
                            self.i = save;
                            let p = self.pipeline(true)?;
                            nodes.push(Node::Action(p));
                        }
                    }
                }
                other => return Err(self.err(format!("unexpected {other:?}"))),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn expect_close(&mut self) -> Result<(), TemplateError> {
        match self.next_nonspace() {
            Some(Tok::Close) => Ok(()),
            Some(t) => Err(self.err(format!("unexpected {t:?} in end"))),
            None => Err(self.err("unclosed action")),
        }
    }

    fn branch(&mut self, kind: &str) -> Result<Node, TemplateError> {
        self.enter()?;
        let r = self.branch_inner(kind);
        self.depth -= 1;
        r
    }

    /// Bounds the recursion (Go has no limit; a template nested this deep
    /// is not a real one, and the parser and executor recurse). Blocks and
    /// parentheses count together here, so the bound is twice the one
    /// Loki's syntax check applies to each.
    fn enter(&mut self) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > 2 * super::MAX_NESTING {
            self.depth -= 1;
            return Err(self.err("nesting too deep"));
        }
        Ok(())
    }

    fn branch_inner(&mut self, kind: &str) -> Result<Node, TemplateError> {
        let pipe = self.pipeline(true)?;
        if pipe.cmds.is_empty() {
            return Err(self.err(format!("missing value for {kind}")));
        }
        let (body, end) = self.list()?;
        let mut else_body = Vec::new();
        match end {
            Stop::Eof => return Err(self.err("unexpected EOF")),
            Stop::End => {}
            Stop::Else => {
                self.skip_space();
                match self.peek() {
                    Some(Tok::Ident(k))
                        if (k == "if" && kind == "if") || (k == "with" && kind == "with") =>
                    {
                        // `{{else if …}}` nests and shares the `{{end}}`.
                        self.i += 1;
                        else_body.push(self.branch(kind)?);
                    }
                    _ => {
                        self.expect_close()?;
                        let (b, e) = self.list()?;
                        if e != Stop::End {
                            return Err(self.err("expected end; found else or EOF"));
                        }
                        else_body = b;
                    }
                }
            }
        }
        Ok(match kind {
            "if" => Node::If(pipe, body, else_body),
            "with" => Node::With(pipe, body, else_body),
            _ => Node::Range(pipe, body, else_body),
        })
    }

    /// Parses a pipeline up to `}}` (or `)` when not at top level).
    fn pipeline(&mut self, top: bool) -> Result<Pipeline, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x, $y :=`, `$x =`.
        let save = self.i;
        self.skip_space();
        if let Some(Tok::Var(v)) = self.peek().cloned() {
            self.i += 1;
            self.skip_space();
            match self.peek() {
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = self.peek() == Some(&Tok::Assign);
                    self.i += 1;
                    decl.push(v);
                }
                Some(Tok::Comma) => {
                    self.i += 1;
                    self.skip_space();
                    if let Some(Tok::Var(v2)) = self.peek().cloned() {
                        self.i += 1;
                        self.skip_space();
                        if matches!(self.peek(), Some(Tok::Declare) | Some(Tok::Assign)) {
                            assign = self.peek() == Some(&Tok::Assign);
                            self.i += 1;
                            decl.push(v);
                            decl.push(v2);
                        } else {
                            return Err(self.err("expected :="));
                        }
                    } else {
                        return Err(self.err("too many declarations"));
                    }
                }
                _ => self.i = save,
            }
        } else {
            self.i = save;
        }
        let mut cmds = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        loop {
            let tok = self.toks.get(self.i).map(|t| t.0.clone());
            self.i += 1;
            match tok {
                None => return Err(self.err("unclosed action")),
                Some(Tok::Space) => {}
                Some(Tok::Close) if top => break,
                Some(Tok::RParen) if !top => break,
                Some(Tok::Close) => return Err(self.err("unclosed left paren")),
                Some(Tok::RParen) => return Err(self.err("unexpected right paren")),
                Some(Tok::Pipe) => {
                    if args.is_empty() {
                        return Err(self.err("missing command"));
                    }
                    cmds.push(Command::new(std::mem::take(&mut args)));
                }
                Some(Tok::LParen) => {
                    self.enter()?;
                    let inner = self.pipeline(false);
                    self.depth -= 1;
                    let inner = inner?;
                    let fields = self.trailing_fields();
                    args.push(Arg::Pipe(Box::new(inner), fields));
                }
                Some(Tok::Dot) => args.push(Arg::Dot),
                Some(Tok::Field(f)) => {
                    let mut fields = vec![f];
                    fields.extend(self.trailing_fields());
                    args.push(Arg::Field(fields));
                }
                Some(Tok::Var(v)) => {
                    let fields = self.trailing_fields();
                    args.push(Arg::Var(v, fields));
                }
                Some(Tok::Str(s)) => args.push(Arg::Str(s)),
                Some(Tok::Char(c)) => args.push(Arg::Int(c as i64)),
                Some(Tok::Number(n)) => match parse_number(&n) {
                    Some(a) => args.push(a),
                    None => return Err(self.err(format!("bad number syntax: {:?}", n))),
                },
                Some(Tok::Ident(id)) => match id.as_str() {
                    "true" => args.push(Arg::Bool(true)),
                    "false" => args.push(Arg::Bool(false)),
                    "nil" => args.push(Arg::Nil),
                    _ => match self.dialect.function(&id) {
                        Some(f) => args.push(Arg::Func(f)),
                        None => return Err(self.err(format!("function {:?} not defined", id))),
                    },
                },
                Some(t) => return Err(self.err(format!("unexpected {t:?} in command"))),
            }
        }
        if !args.is_empty() {
            cmds.push(Command::new(args));
        } else if !cmds.is_empty() {
            return Err(self.err("missing command"));
        }
        if cmds.is_empty() && !top {
            return Err(self.err("missing value for parenthesized pipeline"));
        }
        if cmds.is_empty() && !decl.is_empty() {
            return Err(self.err("missing value for command"));
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    fn trailing_fields(&mut self) -> Vec<String> {
        let mut fields = Vec::new();
        while let Some(Tok::Field(f)) = self.peek().cloned() {
            self.i += 1;
            fields.push(f);
        }
        fields
    }
}

/// Parses `src` into a tree; `name` appears in error messages.
pub(crate) fn parse(name: &str, src: &str, dialect: &Dialect) -> Result<Vec<Node>, TemplateError> {
    let toks = Lexer {
        name,
        src,
        pos: 0,
        line: 1,
        toks: Vec::new(),
    }
    .run()?;
    let mut p = Parser {
        name,
        depth: 0,
        dialect,
        toks,
        i: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End => Err(p.err("unexpected {{end}}")),
        Stop::Else => Err(p.err("unexpected {{else}}")),
    }
}
