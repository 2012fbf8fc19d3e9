//! `detected_level`: the level Loki gives an entry when it is pushed.
//!
//! Loki's distributor (with `discover_log_levels`, on by default) works out
//! each pushed entry's level and stores it as the structured metadata pair
//! `detected_level`, so it becomes part of metric series and of log
//! results. The store calls [`LevelDetector::detect`] for every entry it
//! accepts; this module holds the rules, which are Loki's:
//!
//! 1. An entry that already carries `detected_level` metadata keeps it,
//!    only [normalised](normalize) (the store does this itself).
//! 2. A stream label named in [`LEVEL_FIELDS`], the first in that list's
//!    order: its value, normalised. So a stream with `level="WARNING"`
//!    gets `detected_level="warn"`, and a value that is no known level
//!    (`notice`) is kept as it is.
//! 3. Else a structured metadata pair named in [`LEVEL_FIELDS`], the same
//!    way. Loki drops metadata with an empty value and renames the rest to
//!    valid label names before it looks, so empty values are passed over
//!    and names compared in that form (`severity.text` counts as
//!    `severity_text`; `log.level` becomes `log_level` and never counts).
//! 4. Else OTLP's `severity_number` metadata: 1-4 `trace`, 5-8 `debug`,
//!    9-12 `info`, 13-16 `warn`, 17-20 `error`, 21-24 `fatal`, 0 or above
//!    24 `unknown`, below 0 `trace`, not an integer `info`.
//! 5. Else the line. A line whose first and last non-space characters
//!    are `{` and `}` is read as JSON: the first string member named in
//!    [`LEVEL_FIELDS`] (exactly, case included), in document order,
//!    looking into nested objects down to [`JSON_MAX_DEPTH`] levels and
//!    never into arrays, reading up to the first syntax error. Any other
//!    line with a `=` is read as logfmt: the member whose name matches the
//!    earliest entry of [`LEVEL_FIELDS`] in any case (the first such
//!    member), reading up to the first malformed pair. A value found there
//!    counts only if it is a known level word; otherwise, and for every
//!    other line, the line's first level word decides (see
//!    [`level_in_line`]), else `unknown`.
//!
//! Normalising maps, in any case, `trace`/`trc` to `trace`,
//! `debug`/`dbg` to `debug`, `info`/`inf`/`information` to `info`,
//! `warn`/`wrn`/`warning` to `warn`, `error`/`err` to `error`, `critical`
//! and `fatal` to themselves; nothing is trimmed.
//!
//! The work per entry is bounded by the line's length: one pass for the
//! level word, the JSON scanner and the logfmt decoder each at most one
//! pass (nesting bounded by [`JSON_MAX_DEPTH`]). The result borrows from
//! the stream's labels or the metadata, or is one of the fixed words, so
//! detecting allocates nothing (a logfmt value with escapes is the one
//! exception, as in the `| logfmt` stage).

use larch_go::strings::{ends_with_fold_ascii, equal_fold_ascii, lower_ascii_prefix};

use crate::labels::LabelSet;
use crate::pipeline::parsers::json::{JsonError, Kind, object_each};
use crate::pipeline::parsers::logfmt::Decoder;

/// The structured metadata name of the level.
pub const DETECTED_LEVEL: &str = "detected_level";

/// The level of an entry nothing tells the level of.
pub const UNKNOWN: &str = "unknown";

/// OTLP's severity number, as the push decoder stores it.
const SEVERITY_NUMBER: &str = "severity_number";

/// Names whose value is a level, in order of precedence (Loki's
/// `log_level_fields` default).
pub const LEVEL_FIELDS: [&str; 14] = [
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

/// How many levels of JSON objects are searched for a level field: the
/// line's own members and those of objects directly inside it (Loki's
/// `log_level_from_json_max_depth` default).
pub const JSON_MAX_DEPTH: usize = 2;

/// The known levels and their spellings (compared in any case).
const SPELLINGS: [(&str, &[&str]); 7] = [
    ("trace", &["trace", "trc"]),
    ("debug", &["debug", "dbg"]),
    ("info", &["info", "inf", "information"]),
    ("warn", &["warn", "wrn", "warning"]),
    ("error", &["error", "err"]),
    ("critical", &["critical"]),
    ("fatal", &["fatal"]),
];

/// The words looked for in a line, with their levels. When two start at
/// the same place the earlier one in this list wins (the boundary rules
/// make that impossible for these words, but the order is Loki's).
const LINE_WORDS: [(&[u8], &str); 9] = [
    (b"trace", "trace"),
    (b"debug", "debug"),
    (b"fatal", "fatal"),
    (b"critical", "critical"),
    (b"error", "error"),
    (b"err", "error"),
    (b"warning", "warn"),
    (b"warn", "warn"),
    (b"info", "info"),
];

/// The known level `value` spells, in any case.
pub fn known_level(value: &[u8]) -> Option<&'static str> {
    SPELLINGS
        .iter()
        .find(|(_, spellings)| {
            spellings
                .iter()
                .any(|s| equal_fold_ascii(value, s.as_bytes()))
        })
        .map(|(level, _)| *level)
}

/// `value` as a level: the known level it spells, or itself.
pub fn normalize(value: &str) -> &str {
    known_level(value.as_bytes()).unwrap_or(value)
}

/// The level of an OTLP `severity_number` value.
pub fn severity_level(number: &str) -> &'static str {
    match larch_go::strconv::atoi(number) {
        None => "info",
        Some(0) => UNKNOWN,
        Some(i64::MIN..=4) => "trace",
        Some(5..=8) => "debug",
        Some(9..=12) => "info",
        Some(13..=16) => "warn",
        Some(17..=20) => "error",
        Some(21..=24) => "fatal",
        Some(_) => UNKNOWN,
    }
}

/// Whether a metadata `name` is `field` once made a valid label name the
/// way Loki makes it (every run of characters other than ASCII letters
/// and digits becomes one `_`). `field` is one of [`LEVEL_FIELDS`] or
/// `severity_number`.
fn metadata_name_is(name: &str, field: &str) -> bool {
    let mut want = field.bytes();
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if want.next() != Some(c as u8) {
                return false;
            }
            in_run = false;
        } else if !in_run {
            if want.next() != Some(b'_') {
                return false;
            }
            in_run = true;
        }
    }
    want.next().is_none()
}

/// A byte before a level word that lets it count (`:` does not: in
/// `misc:error` the word is part of a compound).
const fn opens_word(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'[' | b'(' | b'{' | b'"' | b'\'' | b'=' | b'|'
    )
}

/// A byte after a level word that lets it count (`debug:` counts).
fn closes_word(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'['
            | b']'
            | b'('
            | b')'
            | b'{'
            | b'}'
            | b':'
            | b','
            | b'!'
            | b'"'
            | b'\''
            | b'='
            | b'|'
    )
}

/// Whether `b` can start a line word (after lowercasing; `0xC4` starts
/// `İ`, which lowercases to `i`).
const fn starts_word(b: u8) -> bool {
    matches!(b | 0x20, b't' | b'd' | b'f' | b'c' | b'e' | b'w' | b'i') || b == 0xC4
}

/// Where `word` ends if the line spells it at `at` once lowercased as Go
/// lowercases.
fn word_at(line: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    let mut p = at;
    for &w in word {
        let (c, n) = lower_ascii_prefix(&line[p..])?;
        if c != w {
            return None;
        }
        p += n;
    }
    Some(p)
}

/// The level of the first level word in `line`, else `unknown`.
///
/// A level word is one of `trace`, `debug`, `fatal`, `critical`, `error`,
/// `err`, `warning`, `warn`, `info` in any case, standing at the start of
/// the line or after a space, tab, newline, `[`, `(`, `{`, `"`, `'`, `=`
/// or `|`, and followed by the end of the line, one of those characters,
/// or one of `]`, `)`, `}`, `:`, `,`, `!`. So
/// `ERROR 1234`, `[warn]`, `level='info'` and `debug:` count;
/// `errors`, `error_code`, `misc:error` and `terror` do not. The whole
/// line is searched, and the leftmost word wins, whatever its level.
///
/// The line is read 16 bytes at a time: comparisons the compiler turns
/// into vector instructions mark where an opening byte (or the line's
/// start) is followed by a byte a word can start with, and the words are
/// tried only there, about once in every forty bytes of the loghub
/// samples. The last bytes, fewer than 16, take one table lookup each.
pub fn level_in_line(line: &[u8]) -> &'static str {
    let (chunks, _) = line.as_chunks::<CHUNK>();
    for (n, chunk) in chunks.iter().enumerate() {
        let at = n * CHUNK;
        // The bytes before the chunk's: a space before the line, whose
        // start counts as an opening.
        let mut prev = [b' '; CHUNK];
        match at.checked_sub(1).and_then(|p| line.get(p..p + CHUNK)) {
            Some(before) => prev.copy_from_slice(before),
            None => prev[1..].copy_from_slice(&chunk[..CHUNK - 1]),
        }
        let mut marks = candidates(&prev, chunk);
        while marks != 0 {
            let byte = marks.trailing_zeros() / 8;
            marks &= !(0xFF << (byte * 8));
            if let Some(level) = word_here(line, at + byte as usize) {
                return level;
            }
        }
    }
    let at = chunks.len() * CHUNK;
    let mut prev = match at.checked_sub(1) {
        Some(p) => BYTE_CLASS[usize::from(line[p])],
        None => OPENS,
    };
    for (i, &b) in line.iter().enumerate().skip(at) {
        let class = BYTE_CLASS[usize::from(b)];
        if prev & (class >> 1) != 0
            && let Some(level) = word_here(line, i)
        {
            return level;
        }
        prev = class;
    }
    UNKNOWN
}

/// Bytes [`level_in_line`] examines at once.
const CHUNK: usize = 16;

/// Byte `i` (little-endian) 1 where `chunk[i]` can start a word
/// ([`starts_word`]) and `prev[i]`, the byte before it, opens one
/// ([`opens_word`]); 0 elsewhere. Written as the same comparisons on
/// every byte of fixed-size arrays, with no early exit and no table, so
/// that the compiler tests all of them at once with vector instructions.
#[inline]
fn candidates(prev: &[u8; CHUNK], chunk: &[u8; CHUNK]) -> u128 {
    let mut marks = [0u8; CHUNK];
    for i in 0..CHUNK {
        let (p, b) = (prev[i], chunk[i]);
        let opens = (p == b' ')
            | (p == b'\t')
            | (p == b'\n')
            | (p == b'[')
            | (p == b'(')
            | (p == b'{')
            | (p == b'"')
            | (p == b'\'')
            | (p == b'=')
            | (p == b'|');
        let l = b | 0x20;
        let starts = (l == b't')
            | (l == b'd')
            | (l == b'f')
            | (l == b'c')
            | (l == b'e')
            | (l == b'w')
            | (l == b'i')
            | (b == 0xC4);
        marks[i] = u8::from(opens & starts);
    }
    u128::from_le_bytes(marks)
}

/// The level of the level word at `i`, if one stands there (the byte
/// before it opens a word, so only the word itself and the byte after it
/// are checked): the words that can start with its first byte, in the
/// order of [`LINE_WORDS`]. Where the line is ASCII, a word is compared
/// byte by byte in any case; only a non-ASCII byte needs [`word_at`]'s
/// lowercasing of characters (`İnfo` spells `info`).
#[inline]
fn word_here(line: &[u8], i: usize) -> Option<&'static str> {
    let first = *line.get(i)?;
    let words = words_starting(first);
    // The words that can start here share their second letter, where most
    // places fail; an ASCII letter is one byte, so an ASCII byte after it
    // is the second character.
    if first.is_ascii() {
        match line.get(i + 1) {
            Some(&c)
                if c.is_ascii()
                    && words
                        .first()
                        .is_some_and(|(w, _)| w.get(1) != Some(&(c | 0x20))) =>
            {
                return None;
            }
            None => return None,
            _ => {}
        }
    }
    words.iter().find_map(|&(word, level)| {
        let end = match line.get(i..i + word.len()) {
            Some(here) if here.eq_ignore_ascii_case(word) => i + word.len(),
            Some(here) if here.is_ascii() => return None,
            None if line[i..].is_ascii() => return None,
            _ => word_at(line, i, word)?,
        };
        line.get(end)
            .is_none_or(|&c| closes_word(c))
            .then_some(level)
    })
}

/// [`BYTE_CLASS`] bit: [`opens_word`] holds.
const OPENS: u8 = 1;
/// [`BYTE_CLASS`] bit: [`starts_word`] holds (one above [`OPENS`], so
/// that `prev & (class >> 1)` tests "opening byte, then starting byte").
const STARTS: u8 = 2;

/// [`opens_word`] and [`starts_word`] of every byte, as [`OPENS`] and
/// [`STARTS`] bits.
static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        if opens_word(b as u8) {
            table[b] |= OPENS;
        }
        if starts_word(b as u8) {
            table[b] |= STARTS;
        }
        b += 1;
    }
    table
};

/// The entries of [`LINE_WORDS`] whose first letter the character
/// starting with byte `b` can lowercase to, in their order there (`b`
/// passed [`starts_word`]).
fn words_starting(b: u8) -> &'static [(&'static [u8], &'static str)] {
    match b | 0x20 {
        b't' => &LINE_WORDS[0..1],
        b'd' => &LINE_WORDS[1..2],
        b'f' => &LINE_WORDS[2..3],
        b'c' => &LINE_WORDS[3..4],
        b'e' => &LINE_WORDS[4..6],
        b'w' => &LINE_WORDS[6..8],
        // `i`, `I`, and the first byte of `İ`.
        _ => &LINE_WORDS[8..9],
    }
}

/// Whether Go's `unicode.IsSpace` holds for `c`.
fn go_space(c: char) -> bool {
    c.is_whitespace()
}

/// Whether the line is taken for JSON: its first non-space character
/// (decoded as UTF-8) is `{` and its last non-space byte (each byte taken
/// as a Latin-1 character, as Loki reads it) is `}`.
fn looks_like_json(line: &[u8]) -> bool {
    let last = line
        .iter()
        .rev()
        .map(|&b| char::from(b))
        .find(|&c| !go_space(c));
    if last != Some('}') {
        return false;
    }
    for (i, &b) in line.iter().enumerate() {
        if b < 0x80 {
            if go_space(char::from(b)) {
                continue;
            }
            return b == b'{';
        }
        // A non-ASCII character: decode it (invalid UTF-8 is not a space).
        return match line[i..].utf8_chunks().next() {
            Some(chunk) => match chunk.valid().chars().find(|&c| !go_space(c)) {
                Some(c) => c == '{',
                None => false,
            },
            None => false,
        };
    }
    false
}

/// The first string member named in [`LEVEL_FIELDS`] of the object `obj`
/// and of the objects inside it, one level deeper per buffer in `keys`,
/// into `found`. A syntax error anywhere ends the whole search (and so
/// does finding the member: the error returned then means nothing).
fn json_field<'a>(
    obj: &'a [u8],
    keys: &mut [String],
    found: &mut Option<&'a [u8]>,
) -> Result<(), JsonError> {
    let Some((key_buf, deeper)) = keys.split_first_mut() else {
        return Ok(());
    };
    object_each(obj, key_buf, &mut |key, kind, raw| match kind {
        Kind::String if LEVEL_FIELDS.contains(&key) => {
            *found = Some(raw);
            Err(JsonError::MalformedJson)
        }
        Kind::Object => {
            json_field(raw, deeper, found)?;
            if found.is_some() {
                Err(JsonError::MalformedJson)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    })
}

/// The precedence of a logfmt key: the index of the first entry of
/// [`LEVEL_FIELDS`] it spells in any case.
fn logfmt_rank(key: &[u8]) -> Option<usize> {
    // Every field starts with `l` or `s` (which `ſ`, first byte 0xC5,
    // also folds with): other keys are passed over without comparing.
    match key.first() {
        Some(&c) if matches!(c | 0x20, b'l' | b's') || c == 0xC5 => {}
        _ => return None,
    }
    LEVEL_FIELDS
        .iter()
        .position(|f| equal_fold_ascii(key, f.as_bytes()))
}

/// The names of [`LEVEL_FIELDS`] in any case, those that end another
/// left out (`log.level` ends with `level`).
const LEVEL_FIELD_ENDS: [&[u8]; 5] = [
    b"level",
    b"lvl",
    b"severity",
    b"severitytext",
    b"severity_text",
];

/// Whether the logfmt decoder could find a level in the line: whether
/// some `=` follows a name that ends like one of [`LEVEL_FIELDS`]. A
/// field gives a known level only with a value, so only with its `=`
/// right after it; without one, `logfmt_field` can give no level and the
/// decoder's pass over the whole line is spared. (Its answer for a name
/// without a value, a field without a level, leads to the same line
/// search as no field.) Every name ends in `l`, `y` or `t`, which most
/// `=` fail at once.
fn may_have_logfmt_level(line: &[u8]) -> bool {
    memchr::memchr_iter(b'=', line).any(|p| {
        let key = &line[..p];
        matches!(key.last(), Some(&c) if matches!(c | 0x20, b'l' | b'y' | b't'))
            && LEVEL_FIELD_ENDS
                .iter()
                .any(|f| ends_with_fold_ascii(key, f))
    })
}

/// The known level a logfmt line's level field gives, if any.
fn logfmt_level(line: &[u8]) -> Option<&'static str> {
    if !may_have_logfmt_level(line) {
        return None;
    }
    logfmt_field(line).flatten()
}

/// The level field of a logfmt line: `Some(level)` when one was found,
/// with `level` the known level its value spells (if any).
fn logfmt_field(line: &[u8]) -> Option<Option<&'static str>> {
    let mut d = Decoder::new(line);
    let mut best: Option<(usize, Option<&'static str>)> = None;
    while !d.eol() && d.scan() {
        let Some(rank) = logfmt_rank(d.key()) else {
            continue;
        };
        if best.is_none_or(|(b, _)| rank < b) {
            best = Some((rank, known_level(d.value())));
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, level)| level)
}

/// The level every entry of a stream with these labels gets (rule 2):
/// its first level label, normalised; `None` without one. Worth working
/// out once per stream.
pub fn stream_level(stream: &LabelSet) -> Option<&str> {
    LEVEL_FIELDS
        .iter()
        .find_map(|f| stream.get(f))
        .map(normalize)
        .filter(|v| !v.is_empty())
}

/// Detects entries' levels, with buffers reused from entry to entry.
#[derive(Debug, Default)]
pub struct LevelDetector {
    /// One key buffer per JSON object level searched.
    keys: [String; JSON_MAX_DEPTH],
}

impl LevelDetector {
    /// A detector.
    pub fn new() -> LevelDetector {
        LevelDetector::default()
    }

    /// The `detected_level` of an entry of the stream `stream` with this
    /// `metadata` (which holds no `detected_level`) and `line`, by the
    /// rules in the module docs (2 to 5). `None` only when a level field
    /// is empty, which Loki's input never has; the entry then gets no
    /// level.
    pub fn detect<'a>(
        &mut self,
        stream: &'a LabelSet,
        metadata: &'a [(String, String)],
        line: &[u8],
    ) -> Option<&'a str> {
        match stream_level(stream) {
            Some(level) => Some(level),
            None => self.entry_level(metadata, line),
        }
    }

    /// [`detect`](LevelDetector::detect) for an entry of a stream without
    /// a level label (rules 3 to 5).
    pub fn entry_level<'a>(
        &mut self,
        metadata: &'a [(String, String)],
        line: &[u8],
    ) -> Option<&'a str> {
        let found = LEVEL_FIELDS.iter().find_map(|f| {
            metadata
                .iter()
                .find(|(n, v)| !v.is_empty() && metadata_name_is(n, f))
                .map(|(_, v)| v.as_str())
        });
        if let Some(value) = found {
            return Some(normalize(value)).filter(|v| !v.is_empty());
        }
        if let Some((_, number)) = metadata
            .iter()
            .find(|(n, v)| metadata_name_is(n, SEVERITY_NUMBER) && !v.is_empty())
        {
            return Some(severity_level(number));
        }
        Some(self.line_level(line))
    }

    /// The level the line alone gives (rule 5).
    pub fn line_level(&mut self, line: &[u8]) -> &'static str {
        let field = if looks_like_json(line) {
            let mut found = None;
            let _ = json_field(line, &mut self.keys, &mut found);
            found.and_then(known_level)
        } else if memchr::memchr(b'=', line).is_some() {
            logfmt_level(line)
        } else {
            None
        };
        field.unwrap_or_else(|| level_in_line(line))
    }
}

#[cfg(test)]
mod tests {
    //! Cases from Loki's distributor tests (field detection), as facts.
    use super::*;

    fn detect(stream: &[(&str, &str)], meta: &[(&str, &str)], line: &str) -> Option<String> {
        let s = LabelSet::from_pairs(stream.iter().copied());
        let m: Vec<(String, String)> = meta
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        LevelDetector::new()
            .detect(&s, &m, line.as_bytes())
            .map(str::to_string)
    }

    fn entry(meta: &[(&str, &str)], line: &str) -> String {
        detect(&[("foo", "bar")], meta, line).unwrap()
    }

    #[test]
    fn normalises_known_words_and_keeps_others() {
        for (v, want) in [
            ("WaRn", "warn"),
            ("Wrn", "warn"),
            ("WARNING", "warn"),
            ("InFo", "info"),
            ("inf", "info"),
            ("Information", "info"),
            ("CRITICAL", "critical"),
            ("Debug", "debug"),
            ("dbg", "debug"),
            ("FaTaL", "fatal"),
            ("tRaCe", "trace"),
            ("trc", "trace"),
            ("ERROR", "error"),
            ("err", "error"),
            ("informational", "informational"),
            ("notice", "notice"),
            (" warn", " warn"),
            ("", ""),
        ] {
            assert_eq!(normalize(v), want, "{v:?}");
        }
    }

    #[test]
    fn stream_label_wins_over_everything_but_pushed_metadata() {
        for (v, want) in [
            ("ERROR", "error"),
            ("WaRn", "warn"),
            ("InFo", "info"),
            ("CRITICAL", "critical"),
            ("Debug", "debug"),
            ("FaTaL", "fatal"),
            ("tRaCe", "trace"),
            ("informational", "informational"),
            ("notice", "notice"),
        ] {
            let got = detect(
                &[("foo", "bar"), ("level", v)],
                &[],
                "log message without level",
            );
            assert_eq!(got.as_deref(), Some(want), "{v:?}");
        }
        // A stream label beats OTLP severity and a JSON level field.
        let got = detect(
            &[("foo", "bar"), ("SeverityText", "debug")],
            &[("severity_number", "13")],
            r#"{"msg":"this is a test message", "level":"error"}"#,
        );
        assert_eq!(got.as_deref(), Some("debug"));
        let got = detect(
            &[("foo", "bar"), ("SeverityText", "debug")],
            &[("severity_text", "info")],
            r#"{"msg":"this is another message", "level":"trace"}"#,
        );
        assert_eq!(got.as_deref(), Some("debug"));
        // List order decides between two level labels.
        let got = detect(&[("lvl", "info"), ("severity", "error")], &[], "x");
        assert_eq!(got.as_deref(), Some("error"));
    }

    #[test]
    fn metadata_level_fields() {
        assert_eq!(entry(&[("severity", "warn")], "error here"), "warn");
        assert_eq!(entry(&[("lvl", "dbg")], "error here"), "debug");
        assert_eq!(entry(&[("severity_text", "Warning")], "x"), "warn");
        assert_eq!(entry(&[("severity_text", "W")], "error"), "W");
        // Renamed as Loki renames metadata before looking.
        assert_eq!(entry(&[("severity.text", "error")], "info"), "error");
        assert_eq!(entry(&[("Severity--Text", "error")], "info"), "error");
        assert_eq!(entry(&[("log.level", "error")], "info"), "info");
        assert_eq!(entry(&[("xlevel", "error")], "info"), "info");
        // Metadata level fields beat OTLP's severity number.
        assert_eq!(
            entry(&[("severity_number", "5"), ("severity_text", "ERROR")], "x"),
            "error"
        );
        // Empty values are passed over, as Loki drops them first.
        assert_eq!(entry(&[("level", ""), ("lvl", "warn")], "error"), "warn");
        assert_eq!(entry(&[("level", "")], "error"), "error");
        assert_eq!(entry(&[("severity_number", "")], "error"), "error");
    }

    #[test]
    fn otlp_severity_number() {
        for (n, want) in [
            ("1", "trace"),
            ("4", "trace"),
            ("5", "debug"),
            ("6", "debug"),
            ("8", "debug"),
            ("9", "info"),
            ("12", "info"),
            ("13", "warn"),
            ("16", "warn"),
            ("17", "error"),
            ("20", "error"),
            ("21", "fatal"),
            ("24", "fatal"),
            ("0", "unknown"),
            ("25", "unknown"),
            ("100", "unknown"),
            ("-3", "trace"),
            ("+9", "info"),
            ("foo", "info"),
            ("9.0", "info"),
            (" 9", "info"),
            ("99999999999999999999", "info"),
        ] {
            assert_eq!(entry(&[("severity_number", n)], "error"), want, "{n:?}");
        }
        // The severity number decides before the line.
        assert_eq!(entry(&[("severity_number", "7")], "error"), "debug");
    }

    #[test]
    fn json_and_logfmt_lines() {
        for (line, want) in [
            (
                r#"{"foo":"bar","msg":"message with keyword error but it should not get picked up","level":"critical"}"#,
                "critical",
            ),
            (
                r#"{"FOO":"bar","MSG":"message with keyword error but it should not get picked up","LEVEL":"Critical"}"#,
                "critical",
            ),
            (
                r#"{"foo":"bar","msg":"message with keyword warn but it should not get picked up","level":"warn"}"#,
                "warn",
            ),
            (
                r#"{"foo":"bar","msg":"message with keyword warn but it should not get picked up","SEVERITY":"FATAL"}"#,
                "fatal",
            ),
            (
                r#"{"foo":"bar","msg":"message with keyword warn but it should not get picked up","level":"ERR"}"#,
                "error",
            ),
            (
                r#"{"foo":"bar","msg":"message with keyword INFO get picked up"}"#,
                "info",
            ),
            (
                r#"foo=bar msg="message with info and not level should get picked up""#,
                "info",
            ),
            (
                r#"foo=bar msg="message with keyword error but it should not get picked up" level=warn"#,
                "warn",
            ),
            (
                r#"foo=bar msg="message with keyword error but it should not get picked up" level=Warn"#,
                "warn",
            ),
            (
                r#"foo=bar msg="message with keyword error but it should not get picked up" level=Trace"#,
                "trace",
            ),
            (
                r#"foo=bar msg="message with keyword but it should not get picked up" level=NA"#,
                "unknown",
            ),
            (
                r#"foo=bar msg="message with keyword but it should not get picked up" severity=critical"#,
                "critical",
            ),
            (
                r#"Foo=bar MSG="Message with keyword but it should not get picked up" Severity=critical"#,
                "critical",
            ),
            (
                r#"foo=bar msg="message with keyword error but it should not get picked up" level=inFO"#,
                "info",
            ),
            (
                r#"FOO=bar MSG="message with keyword error but it should not get picked up" LEVEL=inFO"#,
                "info",
            ),
            (
                r#"FOO=bar MSG="message that should qualify to unknown when there is no level defined" LEVEL=Inf"#,
                "info",
            ),
            (
                r#"FOO=bar MSG="message that should qualify to unknown when there is no level defined" LEVEL=Information"#,
                "info",
            ),
            // From the distributor's push tests.
            ("msg=an error occurred 0000 severity=warn", "warn"),
            ("msg=an error occurred 0000 severity=Wrn", "warn"),
            ("msg=an error occurred 0000 severity=WARNING", "warn"),
            ("this is a warning log", "warn"),
            ("foo", "unknown"),
            ("", "unknown"),
        ] {
            assert_eq!(entry(&[], line), want, "{line}");
        }
    }

    #[test]
    fn logfmt_precedence_and_case() {
        // `level` (any case) ends the search; later names lose to earlier
        // ones whatever their place in the line.
        assert_eq!(entry(&[], "lvl=debug severity=error"), "error");
        assert_eq!(entry(&[], "severity=error LeVeL=info lvl=debug"), "info");
        assert_eq!(entry(&[], "Severity_Text=warn lvl=error"), "error");
        assert_eq!(entry(&[], "\u{17F}everity=warn msg=x"), "warn");
        // The first of equal names counts.
        assert_eq!(entry(&[], "severity=warn SEVERITY=error"), "warn");
        // Quoted values are unquoted; values that are no level fall back
        // to the line's words.
        assert_eq!(entry(&[], r#"level="w\u0061rn" x=1"#), "warn");
        assert_eq!(entry(&[], "level= msg=debug"), "debug");
        // The decoder stops at the first malformed pair.
        assert_eq!(entry(&[], "msg=warning level=info"), "info");
        assert_eq!(entry(&[], r#"a"b=1 msg=warning level=info"#), "warn");
        // Single quotes are no logfmt quotes: the words decide.
        assert_eq!(
            entry(
                &[],
                "event='User logged in' level='info' timestamp='2022-10-13T16:29:27Z'"
            ),
            "info"
        );
        assert_eq!(
            entry(
                &[],
                "event='Connection refused' level='error' timestamp='2022-10-13T16:30:01Z' host='db.internal'"
            ),
            "error"
        );
    }

    fn json(line: &str, depth: usize) -> Option<String> {
        let mut keys = vec![String::new(); depth];
        let mut found = None;
        let _ = json_field(line.as_bytes(), &mut keys, &mut found);
        found.map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn json_fields() {
        for (line, depth, want) in [
            (r#"{"level": "error"}"#, 2, Some("error")),
            (r#"{"a": {"level": "info"}}"#, 2, Some("info")),
            (r#"{"a": {"b": {"c": {"level": "warn"}}}}"#, 4, Some("warn")),
            (r#"{"a": {"b": {"c": {"level": "warn"}}}}"#, 2, None),
            (
                r#"{"severity": "error", "level": "info"}"#,
                2,
                Some("error"),
            ),
            (
                r#"{"a": {"level": "error"}, "b": {"level": "info"}}"#,
                2,
                Some("error"),
            ),
            (
                r#"{"arr": [{"level": "debug"}], "level": "info"}"#,
                2,
                Some("info"),
            ),
            (r#"{"level": 123, "severity": "warn"}"#, 2, Some("warn")),
            (r#"{"foo": "bar"}"#, 2, None),
            (r#"{"foo": "bar""#, 2, None),
            (
                r#"{"a": {"level": "debug"}, "level": "info"}"#,
                1,
                Some("info"),
            ),
            (r#"{"a": {"level": "debug"}}"#, 1, None),
            // Keys are unescaped, values are compared as written.
            (r#"{"lev\u0065l": "w\u0061rn"}"#, 2, Some(r"w\u0061rn")),
            // Members after a syntax error are not read.
            (r#"{"a": x, "level": "warn"}"#, 2, None),
            (r#"{"level": "warn", "a": x}"#, 2, Some("warn")),
            (r#"{"a": {"b" 1}, "level": "warn"}"#, 2, None),
        ] {
            assert_eq!(
                json(line, depth).as_deref(),
                want,
                "{line} at depth {depth}"
            );
        }
        // Through the detector: an escaped or unknown value falls back to
        // the line's words.
        assert_eq!(entry(&[], r#"{"level":"w\u0061rn","m":"error"}"#), "error");
        assert_eq!(entry(&[], r#"{"level":"NA"}"#), "unknown");
        assert_eq!(entry(&[], r#" {"level":"debug"} "#), "debug");
        assert_eq!(entry(&[], "{\"m\":\"error\",\"level\":\"debug\"}"), "debug");
        assert_eq!(
            entry(&[], "{\"m\":\"error\",\"level\":\"debug\"}\u{a0}"),
            "error"
        );
        assert_eq!(entry(&[], r#"{"level":"debug"} x"#), "debug");
        assert_eq!(entry(&[], r#"x {"level":"warn"}"#), "warn");
    }

    #[test]
    fn json_detection_needs_braces_at_both_ends() {
        assert!(looks_like_json(b"{}"));
        assert!(looks_like_json(b" \t{ } \n"));
        assert!(looks_like_json(b"\x0b{}\x0c"));
        assert!(looks_like_json("\u{3000}{}".as_bytes()));
        // Loki reads the end byte by byte: U+0085's second byte is a space
        // in Latin-1, U+00A0's is too, but their first bytes are not.
        assert!(looks_like_json(b"{}\x85"));
        assert!(!looks_like_json("{}\u{a0}".as_bytes()));
        assert!(!looks_like_json(b"{"));
        assert!(!looks_like_json(b"x{}"));
        assert!(!looks_like_json(b"\xff{}"));
        assert!(!looks_like_json(b""));
        assert!(!looks_like_json(b"   "));
    }

    /// Every level word in the shapes Loki's tests put it in.
    #[test]
    fn words_in_lines() {
        for (word, level) in [
            ("trace", "trace"),
            ("debug", "debug"),
            ("info", "info"),
            ("warn", "warn"),
            ("warning", "warn"),
            ("error", "error"),
            ("err", "error"),
            ("fatal", "fatal"),
            ("critical", "critical"),
            ("unknown", "unknown"),
        ] {
            let up = word.to_ascii_uppercase();
            for line in [
                format!("this is a {word} message"),
                format!("this is a {up} message"),
                format!("{word} occurred"),
                format!("an {word}"),
                format!("this is an {word} message"),
                format!("{word}: something happened"),
                format!("{word}, something happened"),
                format!("{word}! something happened"),
                format!("({word}) something happened"),
                format!("[{word}] something happened"),
                format!("2024-01-01T10:00:00Z {word}: connection failed"),
                format!("[{word}] connection failed"),
                format!("[{up}] connection failed"),
            ] {
                assert_eq!(level_in_line(line.as_bytes()), level, "{line}");
            }
        }
    }

    #[test]
    fn words_need_boundaries() {
        for (line, want) in [
            ("this is a terror attack", "unknown"),
            ("there were multiple errors", "unknown"),
            ("error123 occurred", "unknown"),
            ("123error occurred", "unknown"),
            ("errorCode is invalid", "unknown"),
            ("myError occurred", "unknown"),
            ("debugging the issue", "unknown"),
            ("debugger attached", "unknown"),
            ("information is available", "unknown"),
            ("informative message", "unknown"),
            ("warnings issued", "unknown"),
            ("criticality assessment", "unknown"),
            ("fatalism philosophy", "unknown"),
            ("tracer bullet", "unknown"),
            ("traced the issue", "unknown"),
            ("", "unknown"),
            ("this is a regular log message", "unknown"),
            (r#"{"message": "error occurred"}"#, "error"),
            (r#"{"error": "something"}"#, "error"),
            (r#"{"errorCode": 123}"#, "unknown"),
            (r#"msg="error occurred""#, "error"),
            ("errorCode=123", "unknown"),
            ("error=something", "error"),
            ("level=error", "error"),
            ("[terror] attack occurred", "unknown"),
            ("[errors] occurred", "unknown"),
            ("[errorCode] is invalid", "unknown"),
            ("[debugging] the issue", "unknown"),
            ("[information] is available", "unknown"),
            (r#"{"message": "[error] occurred"}"#, "error"),
            (r#"msg="[error] occurred""#, "error"),
            ("error_code is 500", "unknown"),
            ("log_error function called", "unknown"),
            ("trace_id is abc123", "unknown"),
            ("stack_trace printed", "unknown"),
            ("some_error_code is invalid", "unknown"),
            // Go lowercases `İ` to `i`; `ı` stays apart.
            ("\u{130}NFO ready", "info"),
            ("\u{131}nfo ready", "unknown"),
            ("\u{e9}error", "unknown"),
            ("\u{e9} error", "error"),
        ] {
            assert_eq!(level_in_line(line.as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn the_leftmost_word_wins() {
        for (line, want) in [
            (
                "2024-01-01T10:00:00Z info request failed -l warning --log-level misc:error",
                "info",
            ),
            ("warning: degraded, info follows", "warn"),
            ("[error] something went wrong, info available", "error"),
            ("component=misc:error [info] processed", "info"),
            ("fooerror [error] message", "error"),
            ("fooerror errorbar misc:error error_code", "unknown"),
            (
                "2024/01/01 10:00:00 [error] 1234#1234: *1 connect() failed (111: Connection refused) while connecting to upstream",
                "error",
            ),
            (
                "2024/01/01 10:00:00 [warn] 1234#1234: upstream server temporarily disabled while reading response header from upstream",
                "warn",
            ),
            (
                r#"192.168.1.1 - - [01/Jan/2024:10:00:00 +0000] "GET /api/error-handler HTTP/1.1" 500 1234 "-" "curl/7.68.0""#,
                "unknown",
            ),
            (
                "[Mon Jan 01 10:00:00.000000 2024] [error] [pid 1234] File does not exist: /var/www/html/favicon.ico",
                "error",
            ),
            (
                "[Mon Jan 01 10:00:00.000000 2024] [warn] [pid 1234] RSA server certificate CommonName does not match",
                "warn",
            ),
            (
                "2024-01-01 10:00:00.000  INFO 1234 --- [main] com.example.App : Starting application on host",
                "info",
            ),
            (
                "2024-01-01 10:00:00.000 ERROR 1234 --- [main] com.example.App : Application startup failed due to connection error",
                "error",
            ),
            (
                "2024-01-01 10:00:00.000  INFO 1234 --- [main] com.example.ErrorController : Handling request for /api/error-resource",
                "info",
            ),
            (
                "2024-01-01 10:00:00,000 WARN  com.example.service.UserService - Failed to load user preferences, using defaults",
                "warn",
            ),
            (
                "2024-01-01 10:00:00,000 ERROR com.example.service.DatabaseService - Connection failed after error: timeout",
                "error",
            ),
            (
                "2024-01-01T10:00:00.000000Z\twarn\tads\tcluster update: warning threshold exceeded, error_rate=0.05",
                "warn",
            ),
            (
                "2024-01-01T10:00:00.000000Z    info    Envoy command: [-c /etc/envoy.json -l warning --component-log-level misc:error --concurrency 2]",
                "info",
            ),
            (
                "Tue Mar 24 2026 19:49:19 GMT+0000 (Coordinated Universal Time)|INFO|Integration|core-api-service:server|undefined|Received request from API GW",
                "info",
            ),
        ] {
            assert_eq!(level_in_line(line.as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn metadata_names_as_loki_renames_them() {
        assert!(metadata_name_is("level", "level"));
        assert!(metadata_name_is("severity.text", "severity_text"));
        assert!(metadata_name_is("severity__text", "severity_text"));
        assert!(metadata_name_is("severity\u{e9}text", "severity_text"));
        assert!(!metadata_name_is("log.level", "log.level"));
        assert!(metadata_name_is("log.level", "log_level"));
        assert!(!metadata_name_is("_level", "level"));
        assert!(!metadata_name_is("level_", "level"));
        assert!(!metadata_name_is("levels", "level"));
        assert!(!metadata_name_is("leve", "level"));
    }

    /// The line search trying every word at every candidate, as the
    /// module docs state the rule.
    fn level_in_line_all_words(line: &[u8]) -> &'static str {
        let mut after_opening = true;
        for (i, &b) in line.iter().enumerate() {
            if after_opening && starts_word(b) {
                for (word, level) in LINE_WORDS {
                    if let Some(end) = word_at(line, i, word)
                        && line.get(end).is_none_or(|&c| closes_word(c))
                    {
                        return level;
                    }
                }
            }
            after_opening = opens_word(b);
        }
        UNKNOWN
    }

    /// The line search as it was written first: every byte tested with
    /// [`opens_word`] and [`starts_word`], no table.
    fn level_in_line_bytewise(line: &[u8]) -> &'static str {
        let mut after_opening = true;
        for (i, &b) in line.iter().enumerate() {
            if after_opening && starts_word(b) {
                for &(word, level) in words_starting(b) {
                    if let Some(end) = word_at(line, i, word)
                        && line.get(end).is_none_or(|&c| closes_word(c))
                    {
                        return level;
                    }
                }
            }
            after_opening = opens_word(b);
        }
        UNKNOWN
    }

    use proptest::strategy::Strategy as _;

    #[test]
    fn words_are_found_across_chunk_boundaries() {
        // Every place a word and the byte before it can fall relative to
        // the chunks the search reads, including the tail after them.
        for pad in 0..3 * CHUNK {
            let x = "x".repeat(pad);
            for (line, want) in [
                (format!("{x} error"), "error"),
                (format!("{x}[WARN]"), "warn"),
                (format!("{x} \u{130}nfo:"), "info"),
                (
                    format!("{x}error"),
                    if pad == 0 { "error" } else { UNKNOWN },
                ),
                (format!("{x} errors"), UNKNOWN),
                (format!("{x}:debug"), UNKNOWN),
                (format!("{x} deb"), UNKNOWN),
            ] {
                assert_eq!(level_in_line(line.as_bytes()), want, "{line:?}");
                assert_eq!(level_in_line_bytewise(line.as_bytes()), want, "{line:?}");
            }
        }
    }

    #[test]
    fn byte_table_agrees_with_the_tests_for_every_byte() {
        for b in 0..=255u8 {
            let class = BYTE_CLASS[usize::from(b)];
            assert_eq!(class & OPENS != 0, opens_word(b), "{b:#x}");
            assert_eq!(class & STARTS != 0, starts_word(b), "{b:#x}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn chunked_search_gives_the_bytewise_answer(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "trace", "TRACE", "debug", "Fatal", "critical", "ERROR", "err", "errors",
                        "warning", "WARN", "wrn", "info", "\u{130}nfo", "\u{212A}", "inf",
                        " ", "[", "(", "{", "'", "]", ":", "=", "|", "\"", "x", "é", "\t", "\n",
                    ]).prop_map(str::to_string),
                    "[ -~]{0,12}",
                ],
                0..16,
            ),
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let line = parts.concat();
            proptest::prop_assert_eq!(
                level_in_line(line.as_bytes()),
                level_in_line_bytewise(line.as_bytes())
            );
            proptest::prop_assert_eq!(level_in_line(&raw), level_in_line_bytewise(&raw));
        }

        #[test]
        fn logfmt_prefilter_never_changes_the_answer(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "level", "LEVEL", "LeVel", "log.level", "lvl", "LVL", "severity",
                        "\u{17F}everity", "SEVERITY", "SeverityText", "severity_text",
                        "Severity_Text", "xlevel", "levels", "=", "=", "=", " ", " ", "\"",
                        "\\", "error", "WARN", "info", "debug", "foo", "t", "y", "l", "é",
                        "\u{212A}", "\t",
                    ]).prop_map(str::to_string),
                    "[ -~]{0,8}",
                ],
                0..16,
            ),
        ) {
            let line = parts.concat();
            proptest::prop_assert_eq!(
                logfmt_level(line.as_bytes()),
                logfmt_field(line.as_bytes()).flatten(),
                "{:?}", line
            );
        }

        #[test]
        fn line_search_tries_only_words_that_can_match(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "trace", "TRACE", "debug", "Fatal", "critical", "ERROR", "err", "errors",
                    "warning", "WARN", "wrn", "info", "\u{130}nfo", "\u{130}NFO", "\u{212A}", "inf",
                    " ", "[", "]", ":", "=", "|", "\"", "x", "dEbUg", "é", "\t",
                ]),
                0..12,
            )
        ) {
            let line = parts.concat();
            proptest::prop_assert_eq!(
                level_in_line(line.as_bytes()),
                level_in_line_all_words(line.as_bytes())
            );
        }
    }
}
