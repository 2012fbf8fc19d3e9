//! Decoding container log lines: CRI, docker json-file and plain, with the
//! joining of split lines.
//!
//! * CRI (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F> <text>`.
//!   The runtime splits long lines into `P` (partial) records ended by an
//!   `F` record; the [`Joiner`] concatenates them per stream, up to a
//!   maximum size.
//! * docker json-file: `{"log":"text\n","stream":"stdout","time":"…"}`.
//!   Docker splits lines over 16 KiB into records without the trailing
//!   `\n`; they are joined the same way (Promtail does not).
//! * plain: the line is the entry, stamped with the time it was read.
//!
//! [`detect`] picks the format of a file from its first line. Decoding
//! borrows the text from the line when it can (CRI) and unescapes into a
//! reused buffer otherwise (docker), so no line allocates.

use crate::time::{Nanos, parse_rfc3339};

/// A container output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl StreamKind {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
    fn index(self) -> usize {
        match self {
            StreamKind::Stdout => 0,
            StreamKind::Stderr => 1,
        }
    }
}

/// One decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When the runtime wrote it.
    pub ts: Nanos,
    /// Which stream.
    pub stream: StreamKind,
    /// True if more of the same line follows in the next record.
    pub partial: bool,
    /// The text (without the record's newline).
    pub text: &'a [u8],
}

/// Parses a CRI record.
pub fn parse_cri(line: &[u8]) -> Option<Record<'_>> {
    let sp1 = memchr::memchr(b' ', line)?;
    let ts = parse_rfc3339(&line[..sp1])?;
    let rest = &line[sp1 + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        (StreamKind::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        (StreamKind::Stderr, r)
    } else {
        return None;
    };
    // The tag is `P` or `F`, possibly followed by `:`-separated fields.
    let tag_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let tag = &rest[..tag_end];
    let partial = match tag.first() {
        Some(b'P') => true,
        Some(b'F') => false,
        _ => return None,
    };
    if tag.len() > 1 && tag[1] != b':' {
        return None;
    }
    let text = if tag_end < rest.len() {
        &rest[tag_end + 1..]
    } else {
        &[][..]
    };
    Some(Record {
        ts,
        stream,
        partial,
        text,
    })
}

/// Decodes docker json-file records, unescaping `log` into a reused buffer.
#[derive(Default)]
pub struct DockerDecoder {
    text: Vec<u8>,
}

impl DockerDecoder {
    /// Parses one record; `None` if the line is not a docker record.
    pub fn parse<'a>(&'a mut self, line: &[u8]) -> Option<Record<'a>> {
        let mut p = JsonScan { b: line, i: 0 };
        p.ws();
        p.eat(b'{')?;
        let mut log = None;
        let mut stream = None;
        let mut time = None;
        p.ws();
        if p.peek() == Some(b'}') {
            return None;
        }
        loop {
            p.ws();
            let key = p.string_raw()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            match key {
                b"log" => log = Some(p.string_raw()?),
                b"stream" => stream = Some(p.string_raw()?),
                b"time" => time = Some(p.string_raw()?),
                _ => p.skip_value(0)?,
            }
            p.ws();
            match p.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        let log = log?;
        let stream = match stream? {
            b"stdout" => StreamKind::Stdout,
            b"stderr" => StreamKind::Stderr,
            _ => return None,
        };
        let ts = parse_rfc3339(time?)?;
        self.text.clear();
        unescape_json(log, &mut self.text)?;
        let partial = self.text.last() != Some(&b'\n');
        if !partial {
            self.text.pop();
            if self.text.last() == Some(&b'\r') {
                self.text.pop();
            }
        }
        Some(Record {
            ts,
            stream,
            partial,
            text: &self.text,
        })
    }
}

struct JsonScan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> JsonScan<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    /// A string's raw bytes between the quotes (escapes left in place).
    fn string_raw(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            let off = memchr::memchr2(b'"', b'\\', &self.b[self.i..])?;
            self.i += off;
            if self.b[self.i] == b'\\' {
                self.i += 2;
                if self.i > self.b.len() {
                    return None;
                }
            } else {
                let s = &self.b[start..self.i];
                self.i += 1;
                return Some(s);
            }
        }
    }
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > 64 {
            return None;
        }
        match self.peek()? {
            b'"' => self.string_raw().map(|_| ()),
            b'{' | b'[' => {
                let close = if self.next()? == b'{' { b'}' } else { b']' };
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if close == b'}' {
                        self.string_raw()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        c if c == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => {
                let start = self.i;
                while self.i < self.b.len()
                    && !matches!(
                        self.b[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'
                    )
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

/// Appends the unescaped form of a JSON string body to `out`
/// (`larch_go::json`: Go's `encoding/json` rules, a lone surrogate is
/// U+FFFD); `None` on an invalid escape, and the caller treats the record
/// as undecodable.
pub fn unescape_json(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    larch_go::json::unescape(raw, out).then_some(())
}

/// The format of a file's lines, as decided by [`detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// CRI records.
    Cri,
    /// docker json-file records.
    Docker,
    /// Anything else.
    Plain,
}

/// Guesses the format from a file's first line.
pub fn detect(first_line: &[u8]) -> LineFormat {
    if parse_cri(first_line).is_some() {
        LineFormat::Cri
    } else if first_line.first() == Some(&b'{')
        && DockerDecoder::default().parse(first_line).is_some()
    {
        LineFormat::Docker
    } else {
        LineFormat::Plain
    }
}

/// What the joiner did with a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// A complete entry is ready: `take()` it.
    Ready {
        /// Timestamp of its first part.
        ts: Nanos,
        /// True if parts were cut at the maximum size.
        truncated: bool,
    },
    /// The record was a part; more must follow.
    Pending,
}

/// Joins partial records per stream, up to `max` bytes.
pub struct Joiner {
    max: usize,
    max_parts: usize,
    parts: [Part; 2],
    out: Vec<u8>,
}

#[derive(Default)]
struct Part {
    buf: Vec<u8>,
    ts: Nanos,
    start: Option<u64>,
    count: usize,
    truncated: bool,
}

impl Joiner {
    /// A joiner keeping at most `max` bytes per entry and flushing after
    /// `max_parts` parts (Promtail's `max_partial_lines`).
    pub fn new(max: usize, max_parts: usize) -> Self {
        Joiner {
            max,
            max_parts: max_parts.max(1),
            parts: Default::default(),
            out: Vec::new(),
        }
    }

    /// Adds a record found at byte `start` of the file. On
    /// [`Joined::Ready`], the entry's text is [`Joiner::text`].
    pub fn push(&mut self, rec: &Record<'_>, start: u64) -> Joined {
        let part = &mut self.parts[rec.stream.index()];
        if part.start.is_none() && !rec.partial {
            // The common case: a whole line in one record.
            self.out.clear();
            let n = rec.text.len().min(self.max);
            self.out.extend_from_slice(&rec.text[..n]);
            return Joined::Ready {
                ts: rec.ts,
                truncated: n < rec.text.len(),
            };
        }
        if part.start.is_none() {
            part.start = Some(start);
            part.ts = rec.ts;
            part.buf.clear();
            part.count = 0;
            part.truncated = false;
        }
        let room = self.max.saturating_sub(part.buf.len());
        let n = rec.text.len().min(room);
        part.buf.extend_from_slice(&rec.text[..n]);
        part.truncated |= n < rec.text.len();
        part.count += 1;
        if rec.partial && part.count < self.max_parts {
            return Joined::Pending;
        }
        std::mem::swap(&mut self.out, &mut part.buf);
        part.start = None;
        if part.buf.capacity() > 64 * 1024 {
            part.buf = Vec::new();
        }
        Joined::Ready {
            ts: part.ts,
            truncated: part.truncated,
        }
    }

    /// True when no partial record of `stream` is waiting.
    pub fn is_idle(&self, stream: StreamKind) -> bool {
        self.parts[stream.index()].start.is_none()
    }

    /// The text of the entry made ready by the last `push`.
    pub fn text(&self) -> &[u8] {
        &self.out
    }

    /// Earliest file offset of a part still waiting for its end.
    pub fn pending_start(&self) -> Option<u64> {
        match (self.parts[0].start, self.parts[1].start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets waiting parts (the file was truncated).
    pub fn reset(&mut self) {
        for p in &mut self.parts {
            p.start = None;
            p.buf.clear();
        }
    }

    /// Emits a waiting part as an entry even though its end never came
    /// (the file is finished). Returns the stream, timestamp and whether it
    /// was cut; the text is then [`Joiner::text`].
    pub fn flush_one(&mut self) -> Option<(StreamKind, Nanos, bool)> {
        for (i, kind) in [(0, StreamKind::Stdout), (1, StreamKind::Stderr)] {
            let part = &mut self.parts[i];
            if part.start.is_some() {
                part.start = None;
                std::mem::swap(&mut self.out, &mut part.buf);
                return Some((kind, part.ts, part.truncated));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_records() {
        let r = parse_cri(b"2024-01-01T00:00:00.000000001Z stdout F hello world").unwrap();
        assert_eq!(r.ts, 1_704_067_200_000_000_001);
        assert_eq!(r.stream, StreamKind::Stdout);
        assert!(!r.partial);
        assert_eq!(r.text, b"hello world");
        let r = parse_cri(b"2024-01-01T00:00:00Z stderr P part").unwrap();
        assert!(r.partial);
        assert_eq!(r.stream, StreamKind::Stderr);
        assert_eq!(
            parse_cri(b"2024-01-01T00:00:00Z stdout F").unwrap().text,
            b""
        );
        assert_eq!(
            parse_cri(b"2024-01-01T00:00:00Z stdout F ").unwrap().text,
            b""
        );
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdout F:x y").is_some());
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdin F x").is_none());
        assert!(parse_cri(b"2024-01-01T00:00:00Z stdout X x").is_none());
        assert!(parse_cri(b"hello world").is_none());
    }

    #[test]
    fn parses_docker_records() {
        let mut d = DockerDecoder::default();
        let r = d
            .parse(r#"{"log":"say \"hi\"\tü \u00fc \ud83d\ude00\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"}"#.as_bytes())
            .unwrap();
        assert_eq!(std::str::from_utf8(r.text).unwrap(), "say \"hi\"\tü ü 😀");
        assert_eq!(r.stream, StreamKind::Stderr);
        assert!(!r.partial);
        assert_eq!(r.ts, 1_704_067_200_500_000_000);
        let r = d
            .parse(br#"{"time":"2024-01-01T00:00:00Z","attrs":{"a":[1,{"b":null}]},"stream":"stdout","log":"part"}"#)
            .unwrap();
        assert!(r.partial);
        assert_eq!(r.text, b"part");
        assert!(d.parse(br#"{"log":"x\n","stream":"stdout"}"#).is_none());
        assert!(
            d.parse(br#"{"log":"\x","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#)
                .is_none()
        );
        assert!(d.parse(b"{").is_none());
        assert!(d.parse(b"[]").is_none());
    }

    #[test]
    fn detects_formats() {
        assert_eq!(detect(b"2024-01-01T00:00:00Z stdout F x"), LineFormat::Cri);
        assert_eq!(
            detect(br#"{"log":"x\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#),
            LineFormat::Docker
        );
        assert_eq!(detect(br#"{"level":"info"}"#), LineFormat::Plain);
        assert_eq!(detect(b"plain"), LineFormat::Plain);
    }

    #[test]
    fn joins_partials_per_stream_up_to_max() {
        let mut j = Joiner::new(10, 100);
        let p = |s: StreamKind, partial: bool, text: &'static [u8], ts| Record {
            ts,
            stream: s,
            partial,
            text,
        };
        assert_eq!(
            j.push(&p(StreamKind::Stdout, true, b"abc", 1), 0),
            Joined::Pending
        );
        assert_eq!(j.pending_start(), Some(0));
        assert_eq!(
            j.push(&p(StreamKind::Stderr, false, b"err", 2), 50),
            Joined::Ready {
                ts: 2,
                truncated: false
            }
        );
        assert_eq!(j.text(), b"err");
        assert_eq!(
            j.push(&p(StreamKind::Stdout, true, b"def", 3), 100),
            Joined::Pending
        );
        assert_eq!(
            j.push(&p(StreamKind::Stdout, false, b"ghijkl", 4), 150),
            Joined::Ready {
                ts: 1,
                truncated: true
            }
        );
        assert_eq!(j.text(), b"abcdefghij");
        assert_eq!(j.pending_start(), None);
        assert_eq!(
            j.push(&p(StreamKind::Stdout, false, b"0123456789xyz", 5), 200),
            Joined::Ready {
                ts: 5,
                truncated: true
            }
        );
        assert_eq!(
            j.push(&p(StreamKind::Stderr, true, b"tail", 6), 300),
            Joined::Pending
        );
        assert_eq!(j.flush_one(), Some((StreamKind::Stderr, 6, false)));
        assert_eq!(j.text(), b"tail");
        assert_eq!(j.flush_one(), None);
    }

    #[test]
    fn too_many_parts_flush() {
        let mut j = Joiner::new(1000, 2);
        let r = Record {
            ts: 1,
            stream: StreamKind::Stdout,
            partial: true,
            text: b"a",
        };
        assert_eq!(j.push(&r, 0), Joined::Pending);
        assert_eq!(
            j.push(&r, 10),
            Joined::Ready {
                ts: 1,
                truncated: false
            }
        );
        assert_eq!(j.text(), b"aa");
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_cri(&line);
            let _ = DockerDecoder::default().parse(&line);
            let mut out = Vec::new();
            let _ = unescape_json(&line, &mut out);
            let _ = detect(&line);
        }

        #[test]
        fn cri_round_trips(ts in 0i64..4_000_000_000_000_000_000, text in "[ -~]{0,80}", partial in proptest::prelude::any::<bool>()) {
            let line = format!("{} stderr {} {text}", crate::time::format_rfc3339(ts), if partial { "P" } else { "F" });
            let r = parse_cri(line.as_bytes()).unwrap();
            proptest::prop_assert_eq!(r.ts, ts);
            proptest::prop_assert_eq!(r.partial, partial);
            proptest::prop_assert_eq!(r.text, text.as_bytes());
        }

        #[test]
        fn docker_round_trips(text in "\\PC{0,60}") {
            let json = serde_json::to_string(&format!("{text}\n")).unwrap();
            let line = format!(r#"{{"log":{json},"stream":"stdout","time":"2024-01-01T00:00:00Z"}}"#);
            let mut d = DockerDecoder::default();
            let r = d.parse(line.as_bytes()).unwrap();
            let want = text.strip_suffix('\r').unwrap_or(&text);
            proptest::prop_assert_eq!(r.text, want.as_bytes());
        }
    }
}
