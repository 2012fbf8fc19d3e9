//! JSON string bodies as Go's `encoding/json` decodes them.
//!
//! Docker's json-file records (read by the agent) and the lines Loki's
//! `json` and `logfmt` parsers read were written or are read by Go, so an
//! escape means what `encoding/json` makes of it: `\uXXXX` pairs combine
//! into one character, and a lone or broken surrogate becomes U+FFFD
//! rather than an error. An unknown escape or a truncated one is an error.

/// Appends the unescaped form of a JSON string body (the bytes between the
/// quotes) to `out`; `false` on an invalid escape. Bytes outside escapes
/// are copied as they are (invalid UTF-8 included; callers that need text
/// replace it as Go does).
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < raw.len() {
        let Some(off) = raw[i..].iter().position(|&b| b == b'\\') else {
            out.extend_from_slice(&raw[i..]);
            return true;
        };
        out.extend_from_slice(&raw[i..i + off]);
        i += off + 1;
        let Some(&c) = raw.get(i) else {
            return false;
        };
        i += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(hi) = hex4(raw.get(i..)) else {
                    return false;
                };
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = match raw.get(i..i + 2) {
                        Some(b"\\u") => hex4(raw.get(i + 2..)),
                        _ => None,
                    };
                    match lo {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                .unwrap_or('\u{FFFD}')
                        }
                        _ => '\u{FFFD}',
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                }
            }
            _ => return false,
        };
        let mut tmp = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
    true
}

fn hex4(b: Option<&[u8]>) -> Option<u32> {
    let s = std::str::from_utf8(b?.get(..4)?).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(raw: &str) -> Option<String> {
        let mut out = Vec::new();
        unescape(raw.as_bytes(), &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn escapes_as_encoding_json() {
        assert_eq!(
            u(r#"say \"hi\"\tü \u00fc \ud83d\ude00\n"#).unwrap(),
            "say \"hi\"\tü ü 😀\n"
        );
        assert_eq!(u(r"a\/b\\c\b\f\r").unwrap(), "a/b\\c\u{8}\u{c}\r");
        assert_eq!(u(r"lone \ud83d here").unwrap(), "lone \u{FFFD} here");
        assert_eq!(u(r"\udc00").unwrap(), "\u{FFFD}");
        assert_eq!(u(r"\ud83d\u0041").unwrap(), "\u{FFFD}A");
        assert_eq!(u(r"\q"), None);
        assert_eq!(u(r"\u12"), None);
        assert_eq!(u(r"\u+123"), None);
        assert_eq!(u("\\"), None);
        assert_eq!(u("plain").unwrap(), "plain");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            let _ = unescape(&raw, &mut out);
        }
    }
}
