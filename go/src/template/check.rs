//! Loki's plan-time syntax check of `line_format` and `label_format`
//! templates.
//!
//! Loki parses these Go `text/template` texts when it builds the pipeline
//! and rejects the query if one does not parse (`unclosed action`,
//! `function "x" not defined`). We check the same things before execution
//! starts, so that a bad template is a 400 with Loki's words: delimiters
//! and comments, quoted strings inside actions, the control structure
//! (`if`/`range`/`with`/`block`/`define` ... `end`, `else` placement) and
//! that every function called is one Loki provides. Evaluating templates is
//! the pipeline's business; this module does not build a template tree.
//!
//! Messages follow Go's: `template: <name>:<line>: <message>`.

/// Deepest nesting of blocks (`if`, `range`, ...) or parentheses inside
/// an action that the check accepts. Go has no limit; a template that
/// deep is not a real one, and refusing it here keeps the evaluator's
/// recursion bounded.
pub const MAX_NESTING: usize = 100;

/// Whether `name` is a function Loki's templates provide.
fn is_template_function(name: &str) -> bool {
    // The executor's functions, plus two Go built-ins that parse but that
    // Loki's templates cannot use (`call` needs a function value, `js`
    // escapes for JavaScript); running them fails as Go's would.
    super::Dialect::LOKI.has(name) || matches!(name, "call" | "js")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    If,
    Range,
    With,
    Define,
    Named,
}

/// Checks a Loki template named `name` (`line` for `line_format`, `label`
/// for `label_format`), returning Go's error text.
pub fn check_syntax(name: &str, text: &str) -> Result<(), String> {
    let err = |line: usize, msg: &str| Err(format!("template: {name}:{line}: {msg}"));
    let b = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut stack: Vec<(Block, bool)> = Vec::new(); // (kind, seen else)
    while i < b.len() {
        // Byte-wise: `i` steps through multi-byte characters one byte at
        // a time outside actions.
        if !b[i..].starts_with(b"{{") {
            if b[i] == b'\n' {
                line += 1;
            }
            i += 1;
            continue;
        }
        let action_line = line;
        i += 2;
        // Left trim marker: "{{- " (the dash must be followed by space).
        if b.get(i) == Some(&b'-') && b.get(i + 1).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        let rest = text[i..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        if rest.starts_with("/*") {
            let start = text.len() - rest.len() + 2;
            let Some(end) = text[start..].find("*/") else {
                return err(action_line, "unclosed comment");
            };
            let after = start + end + 2;
            let tail = text[after..].trim_start_matches(|c: char| c.is_ascii_whitespace());
            let tail = tail.strip_prefix('-').unwrap_or(tail);
            if !tail.starts_with("}}") {
                return err(action_line, "comment ends before closing delimiter");
            }
            line += text[i..after].matches('\n').count();
            i = text.len() - tail.len() + 2;
            continue;
        }
        // Lex the action up to "}}".
        let mut words: Vec<&str> = Vec::new();
        let mut closed = false;
        let mut parens = 0usize;
        while i < b.len() {
            let c = b[i];
            match c {
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    i += 2;
                    closed = true;
                    break;
                }
                b'\n' => {
                    line += 1;
                    i += 1;
                }
                b'(' => {
                    parens += 1;
                    if parens > MAX_NESTING {
                        return err(line, "expression nests too deeply");
                    }
                    i += 1;
                }
                b')' => {
                    parens = parens.saturating_sub(1);
                    i += 1;
                }
                b'"' | b'\'' => {
                    i += 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                let what = if c == b'"' {
                                    "unterminated quoted string"
                                } else {
                                    "unterminated character constant"
                                };
                                return err(line, what);
                            }
                            Some(b'\\') => i += 2,
                            Some(&q) if q == c => {
                                i += 1;
                                break;
                            }
                            _ => i += 1,
                        }
                    }
                }
                b'`' => {
                    let Some(end) = text[i + 1..].find('`') else {
                        return err(line, "unterminated raw quoted string");
                    };
                    line += text[i..i + 1 + end].matches('\n').count();
                    i += end + 2;
                }
                c if c == b'_' || c.is_ascii_alphabetic() => {
                    let start = i;
                    while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                        i += 1;
                    }
                    // A word right after `.` or `$` is a field or variable.
                    let prev = if start > 0 { b[start - 1] } else { b' ' };
                    if prev != b'.' && prev != b'$' {
                        words.push(&text[start..i]);
                    }
                }
                // Everything else, bytes of multi-byte characters included,
                // is one byte of no interest here.
                _ => i += 1,
            }
        }
        if !closed {
            return err(action_line, "unclosed action");
        }
        let first = words.first().copied().unwrap_or("");
        match first {
            "if" | "range" | "with" | "define" | "block" => {
                let kind = match first {
                    "if" => Block::If,
                    "range" => Block::Range,
                    "with" => Block::With,
                    "define" => Block::Define,
                    _ => Block::Named,
                };
                stack.push((kind, false));
                if stack.len() > MAX_NESTING {
                    return err(action_line, "blocks nest too deeply");
                }
            }
            "else" => match stack.last_mut() {
                Some((Block::If | Block::Range | Block::With, seen)) if !*seen => {
                    // `else if` / `else with` chains continue the block.
                    if !matches!(words.get(1), Some(&"if") | Some(&"with")) {
                        *seen = true;
                    }
                }
                _ => return err(action_line, "unexpected {{else}}"),
            },
            // The guard pops the innermost block; an `end` with none open fails.
            "end" if stack.pop().is_none() => {
                return err(action_line, "unexpected {{end}}");
            }
            "break" | "continue" if !stack.iter().any(|(k, _)| *k == Block::Range) => {
                return err(
                    action_line,
                    &format!("{{{{{first}}}}} outside {{{{range}}}}"),
                );
            }
            _ => {}
        }
        for w in &words {
            let keyword = matches!(
                *w,
                "if" | "else"
                    | "end"
                    | "range"
                    | "with"
                    | "define"
                    | "block"
                    | "template"
                    | "break"
                    | "continue"
                    | "nil"
                    | "true"
                    | "false"
            );
            if !keyword && !is_template_function(w) {
                return err(action_line, &format!("function \"{w}\" not defined"));
            }
        }
    }
    if !stack.is_empty() {
        return err(line, "unexpected EOF");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loki_templates() {
        for t in [
            "{{.foo}}",
            "blip{{ .foo }}blop {{.status_code}}",
            "{{ if eq .level \"error\" }}E{{ else if .x }}X{{ else }}-{{ end }}",
            "{{ range $i, $e := .list }}{{ $e }}{{ end }}",
            "{{ __line__ | ToUpper }} {{ __timestamp__ | date \"2006\" }}",
            "{{/* comment */}}{{- .a -}}",
            "{{ printf \"%s}}\" .a }}",
            "{{ `raw }}` }}",
            "{{ default \"x\" .y | trunc 3 }}",
            "plain text",
        ] {
            assert_eq!(check_syntax("line", t), Ok(()), "{t}");
        }
    }

    #[test]
    fn rejects_like_go() {
        assert_eq!(
            check_syntax("label", "{{").unwrap_err(),
            "template: label:1: unclosed action"
        );
        assert_eq!(
            check_syntax("line", "{{ nosuchfunc }}").unwrap_err(),
            "template: line:1: function \"nosuchfunc\" not defined"
        );
        assert_eq!(
            check_syntax("line", "a\n{{ end }}").unwrap_err(),
            "template: line:2: unexpected {{end}}"
        );
        assert_eq!(
            check_syntax("line", "{{ if .a }}x").unwrap_err(),
            "template: line:1: unexpected EOF"
        );
        assert!(check_syntax("line", "{{ \"x }}").is_err());
        // Multi-byte characters inside and outside actions.
        assert_eq!(check_syntax("line", "ܞ{ {{ .a }}ܞ{{ \"ü\" }}é"), Ok(()));

        let deep = "{{ if .a }}".repeat(500) + &"{{ end }}".repeat(500);
        assert!(
            check_syntax("line", &deep)
                .unwrap_err()
                .contains("too deeply")
        );
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
        assert!(
            check_syntax("line", &deep)
                .unwrap_err()
                .contains("too deeply")
        );
        assert!(check_syntax("line", "{{/* x }}").is_err());
    }
}
