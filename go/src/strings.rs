//! Go's Unicode case rules, where they reach ASCII.
//!
//! Go compares and lowercases text rune by rune with simple case mappings
//! (`strings.EqualFold`, `strings.ToLower`). For ASCII words this is ASCII
//! case-insensitivity plus three non-ASCII characters that Go maps onto
//! ASCII letters: `ſ` (U+017F, folds with `s`), `K` (U+212A, Kelvin sign,
//! folds with `k` and lowercases to it) and `İ` (U+0130, lowercases to
//! `i`). Invalid UTF-8 never equals an ASCII letter. Both functions work
//! on bytes and allocate nothing.

/// The Kelvin sign, U+212A.
const KELVIN: &[u8] = "\u{212A}".as_bytes();
/// Latin small letter long s, U+017F.
const LONG_S: &[u8] = "\u{017F}".as_bytes();
/// Latin capital letter I with dot above, U+0130.
const DOTTED_I: &[u8] = "\u{0130}".as_bytes();

/// `strings.EqualFold(s, word)` for an ASCII `word`: whether `s` spells
/// `word` in any case, `ſ` counting as `s` and `K` as `k`.
pub fn equal_fold_ascii(s: &[u8], word: &[u8]) -> bool {
    let mut i = 0;
    for &w in word {
        let w = w.to_ascii_lowercase();
        match s.get(i) {
            Some(&c) if c < 0x80 && c.to_ascii_lowercase() == w => i += 1,
            _ if w == b's' && s[i..].starts_with(LONG_S) => i += LONG_S.len(),
            _ if w == b'k' && s[i..].starts_with(KELVIN) => i += KELVIN.len(),
            _ => return false,
        }
    }
    i == s.len()
}

/// Whether `s` ends with something [`equal_fold_ascii`] takes for the
/// ASCII `word` (`ſ` counting as `s` and `K` as `k`).
pub fn ends_with_fold_ascii(s: &[u8], word: &[u8]) -> bool {
    let mut end = s.len();
    for &w in word.iter().rev() {
        let w = w.to_ascii_lowercase();
        let head = &s[..end];
        match head.last() {
            Some(&c) if c < 0x80 && c.to_ascii_lowercase() == w => end -= 1,
            _ if w == b's' && head.ends_with(LONG_S) => end -= LONG_S.len(),
            _ if w == b'k' && head.ends_with(KELVIN) => end -= KELVIN.len(),
            _ => return false,
        }
    }
    true
}

/// The ASCII byte that `strings.ToLower` turns the character starting
/// `s` into, with that character's length in bytes: every ASCII byte
/// (letters lowercased), `İ` as `i` and `K` as `k`. `None` for any other
/// character, whose lowercase form is never ASCII.
pub fn lower_ascii_prefix(s: &[u8]) -> Option<(u8, usize)> {
    match s.first()? {
        &c if c < 0x80 => Some((c.to_ascii_lowercase(), 1)),
        0xC4 if s.starts_with(DOTTED_I) => Some((b'i', DOTTED_I.len())),
        0xE2 if s.starts_with(KELVIN) => Some((b'k', KELVIN.len())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_as_go_does() {
        assert!(equal_fold_ascii(b"LeVeL", b"level"));
        assert!(equal_fold_ascii(b"level", b"LEVEL"));
        assert!(equal_fold_ascii("\u{17F}everity".as_bytes(), b"severity"));
        assert!(equal_fold_ascii("\u{212A}ind".as_bytes(), b"kind"));
        assert!(equal_fold_ascii(b"", b""));
        assert!(!equal_fold_ascii(b"levels", b"level"));
        assert!(!equal_fold_ascii(b"leve", b"level"));
        assert!(!equal_fold_ascii(b"log_level", b"log.level"));
        assert!(!equal_fold_ascii("\u{130}nfo".as_bytes(), b"info"));
        assert!(!equal_fold_ascii(b"\xFFnfo", b"info"));
    }

    #[test]
    fn suffixes_fold_as_whole_words_do() {
        assert!(ends_with_fold_ascii(b"x LeVeL", b"level"));
        assert!(ends_with_fold_ascii(b"level", b"level"));
        assert!(ends_with_fold_ascii(
            "a \u{17F}everity".as_bytes(),
            b"severity"
        ));
        assert!(ends_with_fold_ascii("\u{212A}ind".as_bytes(), b"kind"));
        assert!(ends_with_fold_ascii(b"anything", b""));
        assert!(!ends_with_fold_ascii(b"evel", b"level"));
        assert!(!ends_with_fold_ascii(b"levels", b"level"));
        assert!(!ends_with_fold_ascii(b"\xFFevel", b"level"));
        // Every word `equal_fold_ascii` accepts is a suffix too.
        for (s, w) in [
            (&b"LEVEL"[..], &b"level"[..]),
            ("\u{17F}everity".as_bytes(), b"severity"),
        ] {
            assert!(equal_fold_ascii(s, w) && ends_with_fold_ascii(s, w));
        }
    }

    #[test]
    fn lowercases_as_go_does() {
        assert_eq!(lower_ascii_prefix(b"Ab"), Some((b'a', 1)));
        assert_eq!(lower_ascii_prefix(b"["), Some((b'[', 1)));
        assert_eq!(lower_ascii_prefix("\u{130}".as_bytes()), Some((b'i', 2)));
        assert_eq!(lower_ascii_prefix("\u{212A}".as_bytes()), Some((b'k', 3)));
        assert_eq!(lower_ascii_prefix("\u{17F}".as_bytes()), None);
        assert_eq!(lower_ascii_prefix("é".as_bytes()), None);
        assert_eq!(lower_ascii_prefix(b"\xC4"), None);
        assert_eq!(lower_ascii_prefix(b""), None);
    }
}
