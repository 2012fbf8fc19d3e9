//! Go string quoting, as LogQL prints strings.
//!
//! Loki prints every string of a query with Go's `strconv.Quote`: printable
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
    out.push('"');
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
    out
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
}
