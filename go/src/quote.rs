//! Go string quoting and unquoting (`strconv.Quote`, `strconv.Unquote`).
//!
//! Loki prints every string of a query, and Prometheus every label value,
//! with Go's `strconv.Quote`: printable
//! characters stay as they are, `"` and `\` are escaped, control characters
//! use `\n`-style or `\xNN` escapes, and other non-printable characters
//! `\uNNNN` / `\UNNNNNNNN`. The parser reads all of these back, so printed
//! queries parse to the same tree.
//!
//! Go decides "printable" with Unicode tables (`unicode.IsPrint`). We carry
//! no tables: control characters, non-ASCII spaces, the format characters
//! in common use (soft hyphen, zero-width and direction marks, byte order
//! mark) and private-use characters count as non-printable. Unassigned code
//! points are printed as they are, which Go would escape; both forms read
//! back to the same string.

use std::fmt::Write as _;

/// Quotes `s` like Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

/// Appends `s` quoted like Go's `strconv.Quote` to `out` (no allocation
/// when `out` has room).
pub fn quote_into(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Decodes one escape (the text after its backslash, already validated
/// for shape by the caller's scanner) into `out`, with the value checks of
/// Go's `strconv.Unquote`: octal escapes up to `\377`, `\xNN` as one
/// byte, `\u`/`\U` as a code point (surrogates become U+FFFD as Go's
/// `utf8.EncodeRune` makes them). The error is Go's `invalid syntax`.
pub fn decode_escape(esc: &str, out: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut chars = esc.chars();
    let Some(c) = chars.next() else {
        return Err("invalid syntax");
    };
    let rest = chars.as_str();
    match c {
        'a' => out.push(0x07),
        'b' => out.push(0x08),
        'f' => out.push(0x0c),
        'n' => out.push(b'\n'),
        'r' => out.push(b'\r'),
        't' => out.push(b'\t'),
        'v' => out.push(0x0b),
        '\\' => out.push(b'\\'),
        '"' => out.push(b'"'),
        '\'' => out.push(b'\''),
        '0'..='7' => {
            if esc.len() != 3 {
                return Err("invalid syntax");
            }
            let v = u32::from_str_radix(esc, 8).map_err(|_| "invalid syntax")?;
            if v > 255 {
                return Err("invalid syntax");
            }
            out.push(v as u8);
        }
        'x' => {
            if rest.len() != 2 {
                return Err("invalid syntax");
            }
            let v = u8::from_str_radix(rest, 16).map_err(|_| "invalid syntax")?;
            out.push(v);
        }
        'u' | 'U' => {
            if rest.len() != if c == 'u' { 4 } else { 8 } {
                return Err("invalid syntax");
            }
            let v = u32::from_str_radix(rest, 16).map_err(|_| "invalid syntax")?;
            if v > 0x10FFFF {
                return Err("invalid syntax");
            }
            let ch = char::from_u32(v).unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        _ => return Err("invalid syntax"),
    }
    Ok(())
}

/// Decodes the inside of a double-quoted Go string literal (the text
/// between the quotes, escapes still in it), as `strconv.Unquote` does.
/// Escaped bytes may form multi-byte characters (`\xc3\xa9` is `é`); a
/// result that is not UTF-8 is refused with `invalid UTF-8 encoding`.
pub fn unquote_body(raw: &str) -> Result<String, &'static str> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let after = &rest[i + 1..];
        let Some(c) = after.chars().next() else {
            return Err("invalid syntax");
        };
        let len = match c {
            '0'..='7' => 3,
            'x' => 3,
            'u' => 5,
            'U' => 9,
            c => c.len_utf8(),
        };
        let esc = after.get(..len).ok_or("invalid syntax")?;
        decode_escape(esc, &mut out)?;
        rest = &after[len..];
    }
    out.extend_from_slice(rest.as_bytes());
    String::from_utf8(out).map_err(|_| "invalid UTF-8 encoding")
}

/// Whether Go would print `c` as it is (see the module docs for the
/// approximation).
fn is_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD
        | 0x600..=0x605
        | 0x61C
        | 0x6DD
        | 0x70F
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF
        | 0xF0000..=0x10FFFF
        | 0xFFFE
        | 0xFFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\r\x07\x00\x7f"), r#""\n\t\r\a\x00\x7f""#);
        assert_eq!(go_quote("é😀"), "\"é😀\"");
        assert_eq!(
            go_quote("\u{a0}\u{200b}\u{feff}"),
            r#""\u00a0\u200b\ufeff""#
        );
        assert_eq!(go_quote("\u{10ffff}"), r#""\U0010ffff""#);
        assert_eq!(go_quote("`"), "\"`\"");
    }

    #[test]
    fn unquotes_like_go() {
        assert_eq!(unquote_body(r"\x41\u00e9\101\t").unwrap(), "AéA\t");
        assert_eq!(unquote_body(r"\xc3\xa9").unwrap(), "é");
        assert_eq!(unquote_body(r"\q"), Err("invalid syntax"));
        assert_eq!(unquote_body(r"\x4"), Err("invalid syntax"));
        assert_eq!(unquote_body(r"\400"), Err("invalid syntax"));
        assert_eq!(unquote_body(r"\xff"), Err("invalid UTF-8 encoding"));
        assert_eq!(unquote_body(r"\ud800").unwrap(), "\u{FFFD}");
        assert_eq!(unquote_body("plain é"), Ok("plain é".to_string()));
    }

    proptest::proptest! {
        #[test]
        fn quote_then_unquote_is_identity(s in "\\PC*|[\\x00-\\x7f]*") {
            let q = go_quote(&s);
            proptest::prop_assert_eq!(unquote_body(&q[1..q.len() - 1]), Ok(s));
        }
    }
}
