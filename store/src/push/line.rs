//! [`Line`]: a log line as the write path carries it, usually a slice of
//! the decoded push body rather than a copy.
//!
//! A protobuf push is decompressed into one buffer, and every line of it
//! is a reference-counted slice of that buffer ([`bytes::Bytes`]): the
//! decoder, validation, the WAL encoder, the head append and forwarding
//! read the bytes where they arrived, with no allocation or copy per line.
//! The price is that a slice keeps its whole buffer alive. That is bounded
//! by where lines go: the push (charged to the request's decode meter
//! along with the buffer it points into, see [`super::Push::held_body`])
//! lives until the WAL writer has applied it, and the head blocks copy the
//! bytes into their own block buffers; the only holders that may outlive
//! a request (live-tail events, buffered per subscriber) take a compact
//! copy first ([`Line::detached`]).

use std::fmt;

use bytes::Bytes;

/// UTF-8 text in shared bytes. Every constructor takes a `str` or a
/// `String`, so the bytes are always valid UTF-8; the write path reads
/// them as bytes and only the few consumers that need text decode them
/// ([`Line::text`]).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Line(Bytes);

impl Line {
    /// An empty line.
    pub const fn new() -> Line {
        Line(Bytes::new())
    }

    /// A line of static text (no allocation).
    pub const fn from_static(text: &'static str) -> Line {
        Line(Bytes::from_static(text.as_bytes()))
    }

    /// `text`, a part of `buf`, as a slice sharing `buf` (no copy).
    ///
    /// Invariant: `text` lies within `buf` (the decoders take it from
    /// `buf`); `Bytes::slice_ref` panics otherwise, since that would be a
    /// bug in the caller, never a property of the input.
    pub fn slice_of(buf: &Bytes, text: &str) -> Line {
        if text.is_empty() {
            return Line::new();
        }
        Line(buf.slice_ref(text.as_bytes()))
    }

    /// The line's bytes (valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The line as text: borrowed, since the bytes are valid UTF-8 (the
    /// lossy decoding never replaces anything; it only spares a panic
    /// path).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the line is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Cuts the line to at most `max` bytes, at a character boundary (the
    /// last one at or before `max`).
    pub fn truncate(&mut self, max: usize) {
        if max >= self.0.len() {
            return;
        }
        let mut cut = max;
        // A byte of the form 10xxxxxx continues a character.
        while cut > 0 && self.0[cut] & 0xc0 == 0x80 {
            cut -= 1;
        }
        self.0.truncate(cut);
    }

    /// The same text in a buffer of its own, so that holding it does not
    /// keep the push body it was sliced from alive.
    pub fn detached(&self) -> Line {
        Line(Bytes::copy_from_slice(&self.0))
    }
}

impl From<String> for Line {
    fn from(s: String) -> Line {
        Line(Bytes::from(s))
    }
}

impl From<&str> for Line {
    fn from(s: &str) -> Line {
        Line(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl PartialEq<str> for Line {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for Line {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text(), f)
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_the_buffer() {
        let buf = Bytes::from_static("xxhello".as_bytes());
        let text = std::str::from_utf8(&buf[2..]).unwrap();
        let l = Line::slice_of(&buf, text);
        assert_eq!(l, "hello");
        assert_eq!(l.as_bytes().as_ptr(), buf[2..].as_ptr());
        let d = l.detached();
        assert_eq!(d, "hello");
        assert_ne!(d.as_bytes().as_ptr(), buf[2..].as_ptr());
        assert!(Line::slice_of(&buf, "").is_empty());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let cut = |s: &str, max| {
            let mut l = Line::from(s);
            l.truncate(max);
            l.text().into_owned()
        };
        assert_eq!(cut("abcdé", 4), "abcd");
        assert_eq!(cut("abcé", 4), "abc");
        assert_eq!(cut("abcé", 5), "abcé");
        assert_eq!(cut("abcé", 50), "abcé");
        assert_eq!(cut("é", 1), "");
        assert_eq!(cut("a€b", 3), "a");
        assert_eq!(cut("a€b", 4), "a€");
    }

    #[test]
    fn truncation_agrees_with_str_for_every_cut() {
        let s = "aé€😀b\u{7ff}\u{800}z";
        for max in 0..=s.len() + 1 {
            let mut want = max.min(s.len());
            while !s.is_char_boundary(want) {
                want -= 1;
            }
            let mut l = Line::from(s);
            l.truncate(max);
            assert_eq!(l, &s[..want], "max {max}");
        }
    }
}
