//! LogQL stream selectors with line filters, as the `match` stage uses
//! them: `{app="api", level=~"warn|error"} |= "timeout" != "retry"`.
//!
//! Label matchers are `=`, `!=`, `=~`, `!~` (regexes fully anchored, a
//! missing label compares as the empty string, as in Prometheus); line
//! filters are `|=`, `!=`, `|~`, `!~`. The agent keeps this small parser of
//! its own rather than depending on the query engine, so that the agent
//! depends on the wire types only.

use regex::Regex;

use crate::labels::Labels;

#[derive(Debug)]
enum LabelOp {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug)]
enum LineOp {
    Contains(String),
    NotContains(String),
    Re(Regex),
    NotRe(Regex),
}

/// A compiled selector.
#[derive(Debug)]
pub struct Selector {
    matchers: Vec<(String, LabelOp)>,
    filters: Vec<LineOp>,
}

struct P<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> P<'a> {
    fn err(&self, msg: &str) -> String {
        format!("parse error at line 1, col {}: {msg}", self.i + 1)
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s.as_bytes()[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Result<&'a str, String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() {
            let c = self.s.as_bytes()[self.i];
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.i += 1;
            } else {
                break;
            }
        }
        if start == self.i || self.s.as_bytes()[start].is_ascii_digit() {
            return Err(self.err("syntax error: unexpected character, expecting IDENTIFIER"));
        }
        Ok(&self.s[start..self.i])
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let q = self.s.as_bytes().get(self.i).copied();
        match q {
            Some(b'`') => {
                let end = self.s[self.i + 1..]
                    .find('`')
                    .ok_or_else(|| self.err("syntax error: unterminated raw string"))?;
                let out = self.s[self.i + 1..self.i + 1 + end].to_string();
                self.i += end + 2;
                Ok(out)
            }
            Some(b'"') => {
                // The body up to the closing quote, then Go's unquoting.
                let b = self.s.as_bytes();
                let start = self.i + 1;
                let mut j = start;
                loop {
                    match b.get(j) {
                        None | Some(b'\n') => {
                            return Err(self.err("syntax error: unterminated string"));
                        }
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                let raw = self
                    .s
                    .get(start..j)
                    .ok_or_else(|| self.err("syntax error: unterminated string"))?;
                let out = larch_go::quote::unquote_body(raw)
                    .map_err(|e| self.err(&format!("syntax error: {e}")))?;
                self.i = j + 1;
                Ok(out)
            }
            _ => Err(self.err("syntax error: unexpected character, expecting STRING")),
        }
    }
}

/// A Go regex (label matchers are anchored as Loki anchors them).
fn regex(p: &P<'_>, pat: &str, anchored: bool) -> Result<Regex, String> {
    larch_go::regex::compile(pat, anchored).map_err(|e| p.err(&e.to_string()))
}

impl Selector {
    /// Parses a selector with optional line filters.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut p = P { s, i: 0 };
        if !p.eat("{") {
            return Err(p.err("syntax error: unexpected character, expecting {"));
        }
        let mut matchers = Vec::new();
        if !p.eat("}") {
            loop {
                let name = p.ident()?.to_string();
                let op = if p.eat("=~") {
                    let v = p.string()?;
                    LabelOp::Re(regex(&p, &v, true)?)
                } else if p.eat("!~") {
                    let v = p.string()?;
                    LabelOp::NotRe(regex(&p, &v, true)?)
                } else if p.eat("!=") {
                    LabelOp::Ne(p.string()?)
                } else if p.eat("=") {
                    LabelOp::Eq(p.string()?)
                } else {
                    return Err(
                        p.err("syntax error: unexpected character, expecting = or != or =~ or !~")
                    );
                };
                matchers.push((name, op));
                if p.eat("}") {
                    break;
                }
                if !p.eat(",") {
                    return Err(p.err("syntax error: unexpected character, expecting , or }"));
                }
            }
        }
        if matchers.is_empty() {
            return Err(p.err("syntax error: unexpected }, expecting IDENTIFIER"));
        }
        let mut filters = Vec::new();
        loop {
            p.ws();
            if p.i == s.len() {
                break;
            }
            let f = if p.eat("|=") {
                LineOp::Contains(p.string()?)
            } else if p.eat("!=") {
                LineOp::NotContains(p.string()?)
            } else if p.eat("|~") {
                let v = p.string()?;
                LineOp::Re(regex(&p, &v, false)?)
            } else if p.eat("!~") {
                let v = p.string()?;
                LineOp::NotRe(regex(&p, &v, false)?)
            } else {
                return Err(
                    p.err("syntax error: unexpected character, expecting |= or != or |~ or !~")
                );
            };
            filters.push(f);
        }
        Ok(Selector { matchers, filters })
    }

    /// True if the labels match every matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|(name, op)| {
            let v = labels.get(name).unwrap_or("");
            match op {
                LabelOp::Eq(x) => v == x,
                LabelOp::Ne(x) => v != x,
                LabelOp::Re(r) => r.is_match(v),
                LabelOp::NotRe(r) => !r.is_match(v),
            }
        })
    }

    /// True if the line passes every filter.
    pub fn matches_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| match f {
            LineOp::Contains(s) => line.contains(s.as_str()),
            LineOp::NotContains(s) => !line.contains(s.as_str()),
            LineOp::Re(r) => r.is_match(line),
            LineOp::NotRe(r) => !r.is_match(line),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let s = Selector::parse(r#"{app="api", level=~"warn|error", env!="dev", x!~"a.*"} |= "time" != `retry` |~ "t.me""#).unwrap();
        let l = Labels::from_pairs([("app", "api"), ("level", "warn")]);
        assert!(s.matches_labels(&l));
        assert!(s.matches_line("timeout"));
        assert!(!s.matches_line("timeout, retry"));
        let l2 = Labels::from_pairs([("app", "api"), ("level", "warning")]);
        assert!(!s.matches_labels(&l2), "regexes are anchored");
        // Go's string escapes and Go's ASCII \d.
        let s = Selector::parse(r#"{app="\x41\u00e9", n=~"\\d+"}"#).unwrap();
        assert!(s.matches_labels(&Labels::from_pairs([("app", "Aé"), ("n", "42")])));
        assert!(!s.matches_labels(&Labels::from_pairs([("app", "Aé"), ("n", "٤٢")])));
        assert!(Selector::parse(r#"{app="\q"}"#).is_err());
    }

    #[test]
    fn errors_say_where() {
        assert!(Selector::parse("app=\"x\"").unwrap_err().contains("col 1"));
        assert!(
            Selector::parse("{}")
                .unwrap_err()
                .contains("expecting IDENTIFIER")
        );
        assert!(
            Selector::parse("{a=\"x\"")
                .unwrap_err()
                .contains("expecting , or }")
        );
        assert!(
            Selector::parse("{a=~\"(\"}")
                .unwrap_err()
                .contains("error parsing regexp")
        );
        assert!(
            Selector::parse("{a=\"x\"} |> \"y\"")
                .unwrap_err()
                .contains("expecting |=")
        );
        assert!(
            Selector::parse("{a=\"x}")
                .unwrap_err()
                .contains("unterminated")
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,60}") {
            let _ = Selector::parse(&s);
        }

        #[test]
        fn parser_never_panics_on_near_selectors(s in r#"\{[a-z=~!", ]{0,20}\}( ?[|!]?[=~] ?"[a-z(]{0,5}")*"#) {
            let _ = Selector::parse(&s);
        }
    }
}
