//! The LogQL lexer: Loki's token rules, Go's scanner underneath.
//!
//! Loki lexes with Go's `text/scanner` (Go identifiers, numbers, strings,
//! raw strings, character literals, `//` and `/* */` comments) and adds its
//! own rules on top; we follow both so that the same text yields the same
//! tokens and the same errors:
//! * `#` starts a comment to the end of the line.
//! * `[` starts a range, read raw up to `]` and parsed as a Prometheus
//!   duration (`[5m]` is one RANGE token).
//! * A number directly followed by duration characters is a DURATION
//!   (`250ms`, `1h30m`, `1.5s`), else by byte-size characters a BYTES
//!   (`10MB`, `2KiB`), else a NUMBER. `-` followed by a duration is a
//!   negative DURATION; `--strict` and `--keep-empty` are parser flags.
//! * Keywords are case-insensitive. Function names (`rate`, `sum`, `bytes`,
//!   `ip`, ...) are keywords only when followed by `(`, or by `by`/`without`
//!   and then `(`; otherwise they are identifiers and so usable as label
//!   names. The other keywords (`by`, `or`, `json`, `offset`, ...) are
//!   always keywords.
//! * Any other character becomes an IDENTIFIER token of its own (that is
//!   what Loki's lexer does), so it fails in the parser with
//!   `unexpected IDENTIFIER`.
//!
//! Tokens carry Loki's error position: the token's start, except that the
//! tokens Loki's lexer finishes by stepping its scanner by hand (ranges,
//! durations, byte sizes, flags, two-character operators) report line 0,
//! a quirk of `text/scanner` that Loki's error texts show.
//!
//! The lexer never allocates per character and looks ahead a bounded
//! number of characters, so lexing is linear in the query length.

use super::error::ParseError;
use larch_go::bytes::parse_bytes;
use larch_go::duration::{Duration, parse_duration, parse_prometheus_duration};

/// Longest run of digits and unit characters read as a duration or byte
/// size after a number.
const MAX_SUFFIX_CHARS: usize = 128;

/// A token kind. Names in errors follow Loki (see [`Tok::name`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    Number(String),
    Duration(Duration),
    Bytes(u64),
    Range(Duration),
    Flag(String),
    Kw(Kw),
    Func(Func),
    Eof,
}

/// Tokens of Loki's plain token table: always keywords or punctuation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kw {
    Comma,
    Dot,
    LBrace,
    RBrace,
    Eq,
    Neq,
    Re,
    Nre,
    Npa,
    PipeExact,
    PipeMatch,
    PipePattern,
    Pipe,
    Unwrap,
    LParen,
    RParen,
    By,
    Without,
    Bool,
    RBracket,
    Offset,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Or,
    And,
    Unless,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    CmpEq,
    Gt,
    Gte,
    Lt,
    Lte,
    Json,
    Regexp,
    Logfmt,
    Unpack,
    Pattern,
    LabelFmt,
    LineFmt,
    Decolorize,
    Drop,
    Keep,
}

impl Kw {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Kw::Comma => ",",
            Kw::Dot => ".",
            Kw::LBrace => "{",
            Kw::RBrace => "}",
            Kw::Eq => "=",
            Kw::Neq => "!=",
            Kw::Re => "=~",
            Kw::Nre => "!~",
            Kw::Npa => "!>",
            Kw::PipeExact => "|=",
            Kw::PipeMatch => "|~",
            Kw::PipePattern => "|>",
            Kw::Pipe => "|",
            Kw::Unwrap => "unwrap",
            Kw::LParen => "(",
            Kw::RParen => ")",
            Kw::By => "by",
            Kw::Without => "without",
            Kw::Bool => "bool",
            Kw::RBracket => "]",
            Kw::Offset => "offset",
            Kw::On => "on",
            Kw::Ignoring => "ignoring",
            Kw::GroupLeft => "group_left",
            Kw::GroupRight => "group_right",
            Kw::Or => "or",
            Kw::And => "and",
            Kw::Unless => "unless",
            Kw::Add => "+",
            Kw::Sub => "-",
            Kw::Mul => "*",
            Kw::Div => "/",
            Kw::Mod => "%",
            Kw::Pow => "^",
            Kw::CmpEq => "==",
            Kw::Gt => ">",
            Kw::Gte => ">=",
            Kw::Lt => "<",
            Kw::Lte => "<=",
            Kw::Json => "json",
            Kw::Regexp => "regexp",
            Kw::Logfmt => "logfmt",
            Kw::Unpack => "unpack",
            Kw::Pattern => "pattern",
            Kw::LabelFmt => "label_format",
            Kw::LineFmt => "line_format",
            Kw::Decolorize => "decolorize",
            Kw::Drop => "drop",
            Kw::Keep => "keep",
        }
    }

    fn from_word(lower: &str) -> Option<Kw> {
        Some(match lower {
            "unwrap" => Kw::Unwrap,
            "by" => Kw::By,
            "without" => Kw::Without,
            "bool" => Kw::Bool,
            "offset" => Kw::Offset,
            "on" => Kw::On,
            "ignoring" => Kw::Ignoring,
            "group_left" => Kw::GroupLeft,
            "group_right" => Kw::GroupRight,
            "or" => Kw::Or,
            "and" => Kw::And,
            "unless" => Kw::Unless,
            "json" => Kw::Json,
            "regexp" => Kw::Regexp,
            "logfmt" => Kw::Logfmt,
            "unpack" => Kw::Unpack,
            "pattern" => Kw::Pattern,
            "label_format" => Kw::LabelFmt,
            "line_format" => Kw::LineFmt,
            "decolorize" => Kw::Decolorize,
            "drop" => Kw::Drop,
            "keep" => Kw::Keep,
            _ => return None,
        })
    }

    fn from_pair(a: char, b: char) -> Option<Kw> {
        Some(match (a, b) {
            ('|', '=') => Kw::PipeExact,
            ('|', '~') => Kw::PipeMatch,
            ('|', '>') => Kw::PipePattern,
            ('!', '=') => Kw::Neq,
            ('!', '~') => Kw::Nre,
            ('!', '>') => Kw::Npa,
            ('=', '~') => Kw::Re,
            ('=', '=') => Kw::CmpEq,
            ('>', '=') => Kw::Gte,
            ('<', '=') => Kw::Lte,
            _ => return None,
        })
    }

    fn from_char(c: char) -> Option<Kw> {
        Some(match c {
            ',' => Kw::Comma,
            '.' => Kw::Dot,
            '{' => Kw::LBrace,
            '}' => Kw::RBrace,
            '=' => Kw::Eq,
            '|' => Kw::Pipe,
            '(' => Kw::LParen,
            ')' => Kw::RParen,
            ']' => Kw::RBracket,
            '+' => Kw::Add,
            '-' => Kw::Sub,
            '*' => Kw::Mul,
            '/' => Kw::Div,
            '%' => Kw::Mod,
            '^' => Kw::Pow,
            '>' => Kw::Gt,
            '<' => Kw::Lt,
            _ => return None,
        })
    }
}

/// Words that are keywords only in function position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Rate,
    RateCounter,
    CountOverTime,
    BytesRate,
    BytesOverTime,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    StdvarOverTime,
    StddevOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
    AbsentOverTime,
    Vector,
    Sum,
    Avg,
    Max,
    Min,
    Count,
    Stddev,
    Stdvar,
    Bottomk,
    Topk,
    Sort,
    SortDesc,
    ApproxTopk,
    LabelReplace,
    BytesConv,
    DurationConv,
    DurationSecondsConv,
    Ip,
}

impl Func {
    /// The name Loki's parser uses for the token in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Func::Rate => "RATE",
            Func::RateCounter => "RATE_COUNTER",
            Func::CountOverTime => "COUNT_OVER_TIME",
            Func::BytesRate => "BYTES_RATE",
            Func::BytesOverTime => "BYTES_OVER_TIME",
            Func::AvgOverTime => "AVG_OVER_TIME",
            Func::SumOverTime => "SUM_OVER_TIME",
            Func::MinOverTime => "MIN_OVER_TIME",
            Func::MaxOverTime => "MAX_OVER_TIME",
            Func::StdvarOverTime => "STDVAR_OVER_TIME",
            Func::StddevOverTime => "STDDEV_OVER_TIME",
            Func::QuantileOverTime => "QUANTILE_OVER_TIME",
            Func::FirstOverTime => "FIRST_OVER_TIME",
            Func::LastOverTime => "LAST_OVER_TIME",
            Func::AbsentOverTime => "ABSENT_OVER_TIME",
            Func::Vector => "VECTOR",
            Func::Sum => "SUM",
            Func::Avg => "AVG",
            Func::Max => "MAX",
            Func::Min => "MIN",
            Func::Count => "COUNT",
            Func::Stddev => "STDDEV",
            Func::Stdvar => "STDVAR",
            Func::Bottomk => "BOTTOMK",
            Func::Topk => "TOPK",
            Func::Sort => "SORT",
            Func::SortDesc => "SORT_DESC",
            Func::ApproxTopk => "APPROX_TOPK",
            // These two are also in Loki's plain token table, which gives
            // them their lower-case names.
            Func::LabelReplace => "label_replace",
            Func::Ip => "ip",
            Func::BytesConv => "BYTES_CONV",
            Func::DurationConv => "DURATION_CONV",
            Func::DurationSecondsConv => "DURATION_SECONDS_CONV",
        }
    }

    fn from_word(lower: &str) -> Option<Func> {
        Some(match lower {
            "rate" => Func::Rate,
            "rate_counter" => Func::RateCounter,
            "count_over_time" => Func::CountOverTime,
            "bytes_rate" => Func::BytesRate,
            "bytes_over_time" => Func::BytesOverTime,
            "avg_over_time" => Func::AvgOverTime,
            "sum_over_time" => Func::SumOverTime,
            "min_over_time" => Func::MinOverTime,
            "max_over_time" => Func::MaxOverTime,
            "stdvar_over_time" => Func::StdvarOverTime,
            "stddev_over_time" => Func::StddevOverTime,
            "quantile_over_time" => Func::QuantileOverTime,
            "first_over_time" => Func::FirstOverTime,
            "last_over_time" => Func::LastOverTime,
            "absent_over_time" => Func::AbsentOverTime,
            "vector" => Func::Vector,
            "sum" => Func::Sum,
            "avg" => Func::Avg,
            "max" => Func::Max,
            "min" => Func::Min,
            "count" => Func::Count,
            "stddev" => Func::Stddev,
            "stdvar" => Func::Stdvar,
            "bottomk" => Func::Bottomk,
            "topk" => Func::Topk,
            "sort" => Func::Sort,
            "sort_desc" => Func::SortDesc,
            "approx_topk" => Func::ApproxTopk,
            "label_replace" => Func::LabelReplace,
            "bytes" => Func::BytesConv,
            "duration" => Func::DurationConv,
            "duration_seconds" => Func::DurationSecondsConv,
            "ip" => Func::Ip,
            _ => return None,
        })
    }
}

impl Tok {
    /// The token's name in Loki's syntax errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Bytes(_) => "BYTES",
            Tok::Range(_) => "RANGE",
            Tok::Flag(_) => "FUNCTION_FLAG",
            Tok::Kw(k) => k.text(),
            Tok::Func(f) => f.name(),
            Tok::Eof => "$end",
        }
    }
}

/// A token with Loki's error position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: u32,
    pub(crate) col: u32,
}

/// Reads tokens from a query text.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    /// Byte offset of a character that stands for invalid UTF-8 in the
    /// original input (see [`Lexer::with_invalid_utf8_at`]).
    invalid_at: Option<usize>,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 1,
            col: 1,
            invalid_at: None,
        }
    }

    /// A lexer over text decoded lossily from bytes whose first invalid
    /// UTF-8 sequence was replaced at byte offset `at`: reading that
    /// character fails with `invalid UTF-8 encoding`, as in Loki.
    pub(crate) fn with_invalid_utf8_at(src: &'a str, at: usize) -> Lexer<'a> {
        Lexer {
            invalid_at: Some(at),
            ..Lexer::new(src)
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Produces the next token.
    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        let token_start_before = self.pos;
        let result = self.lex();
        // Go's scanner refuses NUL wherever it reads one, strings and
        // comments included.
        if self.src[token_start_before..self.pos].contains('\0') {
            let (line, col) = match &result {
                Ok(t) => (t.line, t.col),
                Err(e) => (e.line, e.col),
            };
            return Err(ParseError::at(line, col, "invalid character NUL"));
        }
        if let Some(at) = self.invalid_at
            && at >= token_start_before
            && at <= self.pos
        {
            let (line, col) = match &result {
                Ok(t) => (t.line, t.col),
                Err(e) => (e.line, e.col),
            };
            return Err(ParseError::at(line, col, "invalid UTF-8 encoding"));
        }
        result
    }

    fn lex(&mut self) -> Result<Token, ParseError> {
        loop {
            self.skip_space_and_go_comments()?;
            let (line, col) = (self.line, self.col);
            let tok = |tok: Tok| Ok(Token { tok, line, col });
            let line0 = |tok: Tok| Ok(Token { tok, line: 0, col });
            let err = |msg: &str| Err(ParseError::at(line, col, msg));
            let Some(c) = self.peek() else {
                return tok(Tok::Eof);
            };
            if c == '\0' {
                return err("invalid character NUL");
            }
            if c == '_' || c.is_alphabetic() {
                return self.word(line, col);
            }
            if c.is_ascii_digit()
                || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit()))
            {
                let start = self.pos;
                self.go_number().map_err(|m| ParseError::at(line, col, m))?;
                let text = &self.src[start..self.pos];
                if let Some(d) = self.try_suffix(text, is_duration_rune, |s| parse_duration(s).ok())
                {
                    return line0(Tok::Duration(d));
                }
                if let Some(b) = self.try_suffix(text, is_bytes_rune, |s| parse_bytes(s).ok()) {
                    return line0(Tok::Bytes(b));
                }
                return tok(Tok::Number(text.to_string()));
            }
            match c {
                '"' => {
                    self.bump();
                    let v = self.go_string(line, col)?;
                    return tok(Tok::Str(v));
                }
                '`' => {
                    self.bump();
                    let start = self.pos;
                    loop {
                        match self.bump() {
                            Some('`') => break,
                            Some(_) => {}
                            None => return err("literal not terminated"),
                        }
                    }
                    return tok(Tok::Str(self.src[start..self.pos - 1].to_string()));
                }
                '\'' => {
                    // A Go character literal: Loki hands it to the parser as
                    // an identifier.
                    let start = self.pos;
                    self.bump();
                    let mut n = 0;
                    loop {
                        match self.peek() {
                            Some('\'') => {
                                self.bump();
                                break;
                            }
                            Some('\n') | None => return err("literal not terminated"),
                            Some('\\') => {
                                self.bump();
                                self.go_escape('\'')
                                    .map_err(|m| ParseError::at(line, col, m))?;
                            }
                            Some(_) => {
                                self.bump();
                            }
                        }
                        n += 1;
                    }
                    if n != 1 {
                        return err("invalid char literal");
                    }
                    return tok(Tok::Ident(self.src[start..self.pos].to_string()));
                }
                '#' => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                    continue;
                }
                '[' => {
                    self.bump();
                    let start = self.pos;
                    loop {
                        match self.bump() {
                            Some(']') => break,
                            Some(_) => {}
                            None => {
                                return Err(ParseError::at(
                                    0,
                                    col,
                                    "missing closing ']' in duration",
                                ));
                            }
                        }
                    }
                    let text = &self.src[start..self.pos - 1];
                    return match parse_prometheus_duration(text) {
                        Ok(d) => line0(Tok::Range(d)),
                        Err(e) => Err(ParseError::at(0, col, e.0)),
                    };
                }
                '-' => {
                    if self.peek_at(1) == Some('-')
                        && let Some(flag) = self.try_flag()
                    {
                        return line0(Tok::Flag(flag));
                    }
                    // `-5m` is a negative duration; `-1` is a minus sign.
                    let save = (self.pos, self.line, self.col);
                    self.bump();
                    if let Some(d) =
                        self.try_suffix("-", is_duration_rune, |s| parse_duration(s).ok())
                    {
                        return line0(Tok::Duration(d));
                    }
                    (self.pos, self.line, self.col) = save;
                }
                _ => {}
            }
            self.bump();
            if let Some(next) = self.peek()
                && let Some(kw) = Kw::from_pair(c, next.to_ascii_lowercase())
            {
                self.bump();
                return line0(Tok::Kw(kw));
            }
            if let Some(kw) = Kw::from_char(c) {
                return tok(Tok::Kw(kw));
            }
            return tok(Tok::Ident(c.to_string()));
        }
    }

    /// An identifier, keyword or function word.
    fn word(&mut self, line: u32, col: u32) -> Result<Token, ParseError> {
        let start = self.pos;
        self.bump();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_alphabetic() || c.is_numeric() {
                self.bump();
            } else {
                break;
            }
        }
        let text = &self.src[start..self.pos];
        let lower = text.to_lowercase();
        let tok = if let Some(f) = Func::from_word(&lower) {
            if self.followed_by_call() {
                Tok::Func(f)
            } else {
                Tok::Ident(text.to_string())
            }
        } else if let Some(kw) = Kw::from_word(&lower) {
            Tok::Kw(kw)
        } else {
            Tok::Ident(text.to_string())
        };
        Ok(Token { tok, line, col })
    }

    /// Loki's `isFunction`: after optional whitespace, `(` follows, or
    /// `by`/`without` then optional whitespace then `(`.
    fn followed_by_call(&self) -> bool {
        let rest = self.src[self.pos..].trim_start_matches(char::is_whitespace);
        if rest.starts_with('(') {
            return true;
        }
        let mut chars = rest.chars();
        let first2: String = chars
            .by_ref()
            .take(2)
            .flat_map(char::to_lowercase)
            .collect();
        let after = if first2 == "by" {
            let n: usize = rest.chars().take(2).map(char::len_utf8).sum();
            &rest[n..]
        } else {
            let first7: String = rest.chars().take(7).flat_map(char::to_lowercase).collect();
            if first7 != "without" {
                return false;
            }
            let n: usize = rest.chars().take(7).map(char::len_utf8).sum();
            &rest[n..]
        };
        after
            .trim_start_matches(char::is_whitespace)
            .starts_with('(')
    }

    /// Loki's `tryScanDuration` / `tryScanBytes`: extends `prefix` with the
    /// following run of digits, `.` and unit characters (up to whitespace)
    /// and consumes it if `parse` accepts the whole text.
    fn try_suffix<T>(
        &mut self,
        prefix: &str,
        unit_rune: fn(char) -> bool,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let rest = &self.src[self.pos..];
        let mut len = 0;
        let mut chars = 0;
        for c in rest.chars() {
            if c.is_whitespace() || !(c.is_numeric() || unit_rune(c) || c == '.') {
                break;
            }
            chars += 1;
            if chars > MAX_SUFFIX_CHARS {
                // Longer than any duration or size anyone writes; giving up
                // here keeps lexing linear (a failed scan is re-read by the
                // next token).
                return None;
            }
            len += c.len_utf8();
        }
        if len == 0 {
            return None;
        }
        let mut text = String::with_capacity(prefix.len() + len);
        text.push_str(prefix);
        text.push_str(&rest[..len]);
        let v = parse(&text)?;
        let end = self.pos + len;
        while self.pos < end {
            self.bump();
        }
        Some(v)
    }

    /// `--strict` or `--keep-empty` at the cursor (which is on the first
    /// `-`), consumed only if it is one of them.
    fn try_flag(&mut self) -> Option<String> {
        // A flag is at most 12 characters; looking further could only
        // show it is not one, and would make runs of dashes quadratic.
        let rest = &self.src[self.pos + 1..];
        let len: usize = rest
            .chars()
            .take_while(|&c| c.is_alphabetic() || c == '-')
            .take(12)
            .map(char::len_utf8)
            .sum();
        let flag = &self.src[self.pos..self.pos + 1 + len];
        if flag != "--strict" && flag != "--keep-empty" {
            return None;
        }
        let flag = flag.to_string();
        for _ in 0..flag.chars().count() {
            self.bump();
        }
        Some(flag)
    }

    /// Skips Go whitespace (space, tab, newline, carriage return) and Go
    /// comments, which Go's scanner drops before Loki sees them.
    fn skip_space_and_go_comments(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('/') if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let (line, col) = (self.line, self.col);
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => {
                                return Err(ParseError::at(line, col, "comment not terminated"));
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// A double-quoted string after its opening quote, with Go escapes;
    /// returns the value.
    fn go_string(&mut self, line: u32, col: u32) -> Result<String, ParseError> {
        let mut out: Vec<u8> = Vec::new();
        let err = |m: &str| ParseError::at(line, col, m);
        loop {
            match self.bump() {
                Some('"') => break,
                Some('\n') | None => return Err(err("literal not terminated")),
                Some('\\') => {
                    let esc_start = self.pos;
                    self.go_escape('"').map_err(err)?;
                    // Decode the escape just validated.
                    larch_go::quote::decode_escape(&self.src[esc_start..self.pos], &mut out)
                        .map_err(err)?;
                }
                Some(c) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(out).map_err(|_| err("invalid UTF-8 encoding"))
    }

    /// Validates one escape after its backslash (Go's `scanEscape`).
    fn go_escape(&mut self, quote: char) -> Result<(), &'static str> {
        let Some(c) = self.peek() else {
            return Err("literal not terminated");
        };
        match c {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => {
                self.bump();
                Ok(())
            }
            c if c == quote => {
                self.bump();
                Ok(())
            }
            '0'..='7' => self.escape_digits(8, 3),
            'x' | 'u' | 'U' => {
                self.bump();
                let n = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                self.escape_digits(16, n)
            }
            _ => Err("invalid char escape"),
        }
    }

    fn escape_digits(&mut self, base: u32, n: usize) -> Result<(), &'static str> {
        for _ in 0..n {
            match self.peek() {
                Some(c) if c.is_digit(base) => {
                    self.bump();
                }
                _ => return Err("invalid char escape"),
            }
        }
        Ok(())
    }

    /// A Go number literal (the scanner's `scanNumber`), with its errors.
    fn go_number(&mut self) -> Result<(), String> {
        let start = self.pos;
        let mut base = 10;
        let mut prefix = '\0';
        let mut has_digits = false;
        let mut has_sep = false;
        let mut invalid: Option<char> = None;
        let mut is_float = false;
        if self.peek() == Some('.') {
            self.bump();
            is_float = true;
        } else {
            if self.peek() == Some('0') {
                self.bump();
                match self.peek().map(|c| c.to_ascii_lowercase()) {
                    Some('x') => {
                        self.bump();
                        base = 16;
                        prefix = 'x';
                    }
                    Some('o') => {
                        self.bump();
                        base = 8;
                        prefix = 'o';
                    }
                    Some('b') => {
                        self.bump();
                        base = 2;
                        prefix = 'b';
                    }
                    _ => {
                        base = 8;
                        prefix = '0';
                        has_digits = true;
                    }
                }
            }
            self.go_digits(base, &mut invalid, &mut has_digits, &mut has_sep);
            if self.peek() == Some('.') {
                self.bump();
                is_float = true;
            }
        }
        if is_float {
            if prefix == 'o' || prefix == 'b' {
                return Err(format!("invalid radix point in {}", lit_name(prefix)));
            }
            self.go_digits(base, &mut invalid, &mut has_digits, &mut has_sep);
        }
        if !has_digits {
            return Err(format!("{} has no digits", lit_name(prefix)));
        }
        let e = self.peek().map(|c| c.to_ascii_lowercase());
        if e == Some('e') || e == Some('p') {
            let ch = self.peek().unwrap_or('e');
            if e == Some('e') && prefix != '\0' && prefix != '0' {
                return Err(format!("'{ch}' exponent requires decimal mantissa"));
            }
            if e == Some('p') && prefix != 'x' {
                return Err(format!("'{ch}' exponent requires hexadecimal mantissa"));
            }
            self.bump();
            is_float = true;
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            let mut exp_digits = false;
            let mut none = None;
            self.go_digits(10, &mut none, &mut exp_digits, &mut has_sep);
            if !exp_digits {
                return Err("exponent has no digits".into());
            }
        } else if prefix == 'x' && is_float {
            return Err("hexadecimal mantissa requires a 'p' exponent".into());
        }
        if !is_float && let Some(d) = invalid {
            return Err(format!("invalid digit '{d}' in {}", lit_name(prefix)));
        }
        if has_sep {
            // Go requires `_` to sit between digits (or after a prefix).
            if !separators_ok(&self.src[start..self.pos]) {
                return Err("'_' must separate successive digits".into());
            }
        }
        Ok(())
    }

    fn go_digits(
        &mut self,
        base: u32,
        invalid: &mut Option<char>,
        has_digits: &mut bool,
        has_sep: &mut bool,
    ) {
        while let Some(c) = self.peek() {
            if c == '_' {
                *has_sep = true;
            } else if base <= 10 && c.is_ascii_digit() {
                if c.to_digit(10).unwrap_or(0) >= base && invalid.is_none() {
                    *invalid = Some(c);
                }
                *has_digits = true;
            } else if base == 16 && c.is_ascii_hexdigit() {
                *has_digits = true;
            } else {
                break;
            }
            self.bump();
        }
    }
}

fn lit_name(prefix: char) -> &'static str {
    match prefix {
        'x' => "hexadecimal literal",
        'o' | '0' => "octal literal",
        'b' => "binary literal",
        _ => "decimal literal",
    }
}

/// Go's rule for digit separators: each `_` follows a digit or the base
/// prefix and is followed by a digit.
fn separators_ok(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    // A base prefix counts as a digit for the rule.
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b') {
        i = 2;
    }
    let mut prev_digit = i == 2;
    while i < b.len() {
        let c = b[i];
        if c == b'_' {
            if !prev_digit {
                return false;
            }
            let next_ok = b.get(i + 1).is_some_and(|n| n.is_ascii_hexdigit());
            if !next_ok {
                return false;
            }
            prev_digit = false;
        } else {
            prev_digit = c.is_ascii_hexdigit();
        }
        i += 1;
    }
    true
}

fn is_duration_rune(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut lx = Lexer::new(s);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap();
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    fn lex_err(s: &str) -> String {
        let mut lx = Lexer::new(s);
        loop {
            match lx.next_token() {
                Ok(t) if t.tok == Tok::Eof => panic!("no error in {s:?}"),
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
    }

    #[test]
    fn selectors_and_filters() {
        assert_eq!(
            toks(r#"{foo="bar", a=~`x\y`} |= "a\tb" != "c""#),
            vec![
                Tok::Kw(Kw::LBrace),
                Tok::Ident("foo".into()),
                Tok::Kw(Kw::Eq),
                Tok::Str("bar".into()),
                Tok::Kw(Kw::Comma),
                Tok::Ident("a".into()),
                Tok::Kw(Kw::Re),
                Tok::Str("x\\y".into()),
                Tok::Kw(Kw::RBrace),
                Tok::Kw(Kw::PipeExact),
                Tok::Str("a\tb".into()),
                Tok::Kw(Kw::Neq),
                Tok::Str("c".into()),
            ]
        );
    }

    #[test]
    fn functions_only_before_parens() {
        assert_eq!(
            toks("rate(x) rate sum by (a) (x) SUM without(x) bytes"),
            vec![
                Tok::Func(Func::Rate),
                Tok::Kw(Kw::LParen),
                Tok::Ident("x".into()),
                Tok::Kw(Kw::RParen),
                Tok::Ident("rate".into()),
                Tok::Func(Func::Sum),
                Tok::Kw(Kw::By),
                Tok::Kw(Kw::LParen),
                Tok::Ident("a".into()),
                Tok::Kw(Kw::RParen),
                Tok::Kw(Kw::LParen),
                Tok::Ident("x".into()),
                Tok::Kw(Kw::RParen),
                Tok::Func(Func::Sum),
                Tok::Kw(Kw::Without),
                Tok::Kw(Kw::LParen),
                Tok::Ident("x".into()),
                Tok::Kw(Kw::RParen),
                Tok::Ident("bytes".into()),
            ]
        );
        assert_eq!(toks("JSON Or"), vec![Tok::Kw(Kw::Json), Tok::Kw(Kw::Or)]);
    }

    #[test]
    fn numbers_durations_bytes() {
        assert_eq!(
            toks("5 1.5 250ms 1h30m 1.5s 10MB 2KiB -5m - 1 1mb 0x1A"),
            vec![
                Tok::Number("5".into()),
                Tok::Number("1.5".into()),
                Tok::Duration(Duration::from_millis(250)),
                Tok::Duration(Duration::from_secs(5400)),
                Tok::Duration(Duration::from_millis(1500)),
                Tok::Bytes(10_000_000),
                Tok::Bytes(2048),
                Tok::Duration(Duration::from_secs(-300)),
                Tok::Kw(Kw::Sub),
                Tok::Number("1".into()),
                Tok::Duration(Duration::from_secs(60)),
                Tok::Ident("b".into()),
                Tok::Number("0x1A".into()),
            ]
        );
    }

    #[test]
    fn ranges_flags_comments() {
        assert_eq!(
            toks("[5m] --strict --keep-empty # x\n/* y */ a // z"),
            vec![
                Tok::Range(Duration::from_secs(300)),
                Tok::Flag("--strict".into()),
                Tok::Flag("--keep-empty".into()),
                Tok::Ident("a".into()),
            ]
        );
    }

    #[test]
    fn positions() {
        let mut lx = Lexer::new("{a=\"b\"}\n  |= x");
        let mut last = None;
        for _ in 0..7 {
            last = Some(lx.next_token().unwrap());
        }
        let t = last.unwrap();
        assert_eq!((t.line, t.col), (2, 6));
        let mut lx = Lexer::new("a |= b");
        lx.next_token().unwrap();
        let t = lx.next_token().unwrap();
        assert_eq!((t.tok, t.line, t.col), (Tok::Kw(Kw::PipeExact), 0, 3));
    }

    #[test]
    fn errors() {
        assert_eq!(
            lex_err(r#"{foo="bar}"#),
            "parse error at line 1, col 6: literal not terminated"
        );
        assert_eq!(
            lex_err("rate({ foo = \"bar\" }[5minutes])"),
            r#"parse error at line 0, col 21: unknown unit "minutes" in duration "5minutes""#
        );
        assert_eq!(
            lex_err("x[5"),
            "parse error at line 0, col 2: missing closing ']' in duration"
        );
        assert_eq!(
            lex_err(r#"a "\q""#),
            "parse error at line 1, col 3: invalid char escape"
        );
        assert_eq!(
            lex_err("a 09"),
            "parse error at line 1, col 3: invalid digit '9' in octal literal"
        );
        assert_eq!(
            lex_err("1e"),
            "parse error at line 1, col 1: exponent has no digits"
        );
        assert_eq!(
            lex_err("/* x"),
            "parse error at line 1, col 1: comment not terminated"
        );
        assert_eq!(
            lex_err("a \"x\0y\""),
            "parse error at line 1, col 3: invalid character NUL"
        );
        assert_eq!(
            lex_err(r#""\400""#),
            "parse error at line 1, col 1: invalid syntax"
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            toks(r#""\x41\101\u00e9\U0001F600\"\\""#),
            vec![Tok::Str("AAé😀\"\\".into())]
        );
        assert_eq!(toks("'a'"), vec![Tok::Ident("'a'".into())]);
    }
}
