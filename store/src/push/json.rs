//! JSON pushes.
//!
//! v1 (`/loki/api/v1/push`):
//! `{"streams":[{"stream":{"k":"v"},"values":[["<ns>","line"],["<ns>","line",{"k":"v"}]]}]}`
//! — timestamps are strings of Unix nanoseconds; the optional third element
//! is structured metadata; 2- and 3-tuples may be mixed; unknown keys are
//! ignored.
//!
//! v0 (`/api/prom/push`):
//! `{"streams":[{"labels":"{k=\"v\"}","entries":[{"ts":"<RFC3339>","line":"..."}]}]}`.
//!
//! Memory: before parsing, one pass over the bytes counts the containers
//! and object members ([`Shape`]); every structure the parser can build
//! hangs off one of them, so their count times the largest such structure
//! (doubled for vector growth), plus the body's size for the strings it can
//! copy, bounds what parsing allocates and is charged first. Lines are
//! borrowed from the body where they have no escapes and copied into the
//! push under the line limit afterwards, each copy charged exactly.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::meter::Meter;
use super::{DecodeError, Line, Push, PushEntry, PushStream, StreamLabels};

/// What a JSON text can make a parser allocate, counted without parsing
/// it: the containers (`[`, `{`) and object members (`:`) outside strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Arrays and objects.
    pub containers: usize,
    /// Object members.
    pub members: usize,
    /// Array elements and object members after the first (`,`).
    pub commas: usize,
}

impl Shape {
    /// Scans `text` (which need not be valid JSON).
    pub fn of(text: &[u8]) -> Shape {
        let mut shape = Shape::default();
        let (mut in_string, mut escaped) = (false, false);
        for &c in text {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                }
                continue;
            }
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => shape.containers += 1,
                b':' => shape.members += 1,
                b',' => shape.commas += 1,
                _ => {}
            }
        }
        shape
    }

    /// An upper bound of what parsing into structures of at most
    /// `per_container` bytes per container and `per_member` bytes per
    /// member allocates, strings included (at most the text's length).
    pub fn bound(&self, text_len: usize, per_container: usize, per_member: usize) -> usize {
        self.containers
            .saturating_mul(per_container.saturating_mul(2))
            .saturating_add(self.members.saturating_mul(per_member.saturating_mul(2)))
            .saturating_add(text_len)
    }
}

fn parse_error(e: serde_json::Error) -> DecodeError {
    DecodeError::bad(format!("failed to parse push request JSON: {e}"))
}

#[derive(Deserialize)]
struct V1Request<'a> {
    #[serde(default, borrow)]
    streams: Vec<V1Stream<'a>>,
}

#[derive(Deserialize)]
struct V1Stream<'a> {
    #[serde(default, deserialize_with = "string_map")]
    stream: Vec<(String, String)>,
    #[serde(default, borrow)]
    values: Vec<V1Value<'a>>,
}

struct V1Value<'a> {
    ts: i64,
    line: Cow<'a, str>,
    metadata: Vec<(String, String)>,
}

/// A line: borrowed from the body when it has no escapes.
struct LineText<'a>(Cow<'a, str>);

/// Decodes a v1 JSON body.
pub fn decode_v1(body: &[u8], meter: &mut Meter) -> Result<Push, DecodeError> {
    let per_container = size_of::<V1Stream>().max(size_of::<V1Value>());
    meter.charge(Shape::of(body).bound(
        body.len(),
        per_container,
        size_of::<(String, String)>(),
    ))?;
    let req: V1Request = serde_json::from_slice(body).map_err(parse_error)?;
    let mut streams = Vec::with_capacity(req.streams.len());
    meter.charge_items::<PushStream>(req.streams.len())?;
    for s in req.streams {
        meter.charge_items::<PushEntry>(s.values.len())?;
        let mut entries = Vec::with_capacity(s.values.len());
        for v in s.values {
            let (line, omitted) = line(v.line, meter)?;
            entries.push(PushEntry {
                ts: v.ts,
                line,
                metadata: v.metadata,
                omitted,
            });
        }
        streams.push(PushStream {
            labels: StreamLabels::Pairs(s.stream),
            entries,
        });
    }
    Ok(Push::new(streams))
}

/// A line of the push, under the meter's line limit.
fn line(text: Cow<'_, str>, meter: &mut Meter) -> Result<(Line, usize), DecodeError> {
    let (line, omitted) = match text {
        Cow::Borrowed(t) => meter.line(t)?,
        // Copied while parsing, and charged with the body's size.
        Cow::Owned(t) => meter.clip_line(t),
    };
    Ok((line.into(), omitted))
}

#[derive(Deserialize)]
struct V0Request<'a> {
    #[serde(default, borrow)]
    streams: Vec<V0Stream<'a>>,
}

#[derive(Deserialize)]
struct V0Stream<'a> {
    #[serde(default)]
    labels: String,
    #[serde(default, borrow)]
    entries: Vec<V0Entry<'a>>,
}

#[derive(Deserialize)]
struct V0Entry<'a> {
    #[serde(alias = "timestamp")]
    ts: String,
    #[serde(borrow)]
    line: LineText<'a>,
}

/// Decodes a legacy v0 JSON body.
pub fn decode_v0(body: &[u8], meter: &mut Meter) -> Result<Push, DecodeError> {
    let per_container = size_of::<V0Stream>().max(size_of::<V0Entry>());
    meter.charge(Shape::of(body).bound(body.len(), per_container, 0))?;
    let req: V0Request = serde_json::from_slice(body).map_err(parse_error)?;
    meter.charge_items::<PushStream>(req.streams.len())?;
    let mut streams = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        meter.charge_items::<PushEntry>(s.entries.len())?;
        let mut entries = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            let ts = parse_rfc3339(&e.ts)?;
            let (line, omitted) = line(e.line.0, meter)?;
            entries.push(PushEntry {
                ts,
                line,
                metadata: Vec::new(),
                omitted,
            });
        }
        streams.push(PushStream {
            labels: StreamLabels::Text(s.labels),
            entries,
        });
    }
    Ok(Push::new(streams))
}

/// Reads a v0 entry's `ts` as Go's `time.Time` JSON decoding does
/// (`time.Parse(time.RFC3339, …)`, fractional seconds allowed) to Unix ns.
pub fn parse_rfc3339(text: &str) -> Result<i64, DecodeError> {
    use larch_go::time::{Rfc3339, parse_rfc3339};
    let t = parse_rfc3339(text.as_bytes(), Rfc3339::Seconds)
        .map_err(|e| DecodeError::bad(format!("invalid timestamp {text:?}: {e}")))?;
    t.checked_unix_nanos()
        .ok_or_else(|| DecodeError::bad(format!("timestamp {text:?} is out of range")))
}

fn parse_ns(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("invalid timestamp {text:?}: expected a string of Unix nanoseconds"))
}

fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of string label values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_any(MapVisitor)
}

impl<'de: 'a, 'a> Deserialize<'de> for LineText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = LineText<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(LineText(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LineText(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(LineText(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for V1Value<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TupleVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TupleVisitor<'a> {
            type Value = V1Value<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V1Value<'a>, A::Error> {
                let ts: Cow<'de, str> = seq
                    .next_element::<LineText<'de>>()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?
                    .0;
                let ts = parse_ns(&ts).map_err(de::Error::custom)?;
                let line = seq
                    .next_element::<LineText<'a>>()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?
                    .0;
                let metadata = match seq.next_element::<Metadata>()? {
                    Some(m) => m.0,
                    None => Vec::new(),
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(V1Value { ts, line, metadata })
            }
        }
        d.deserialize_seq(TupleVisitor(PhantomData))
    }
}

struct Metadata(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_map(d).map(Metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::meter::LineLimit;

    fn v1(body: &[u8]) -> Result<Push, DecodeError> {
        decode_v1(body, &mut Meter::unlimited())
    }

    fn v0(body: &[u8]) -> Result<Push, DecodeError> {
        decode_v0(body, &mut Meter::unlimited())
    }

    #[test]
    fn shape_counts_structure_outside_strings() {
        let s = Shape::of(br#"{"a":["x,[{:","y\"[{"],"b":{}}"#);
        assert_eq!(
            s,
            Shape {
                containers: 3,
                members: 2,
                commas: 2
            }
        );
        assert_eq!(Shape::of(b"\"unterminated [ {"), Shape::default());
    }

    fn owned(lines: &[(&str, usize)]) -> Vec<(String, usize)> {
        lines.iter().map(|&(l, n)| (l.to_string(), n)).collect()
    }

    #[test]
    fn lines_are_borrowed_then_limited() {
        let body = br#"{"streams":[{"stream":{"a":"b"},"values":[["1","abcdefgh"],["2","ab\"cdefgh"],["3","ok"]]}]}"#;
        let limit = |truncate| Meter::standalone(1 << 20, 1 << 20, LineLimit { max: 5, truncate });
        let p = decode_v1(body, &mut limit(false)).unwrap();
        let got: Vec<_> = p.streams[0]
            .entries
            .iter()
            .map(|e| (e.line.text().into_owned(), e.omitted))
            .collect();
        assert_eq!(got, owned(&[("", 8), ("", 9), ("ok", 0)]));
        let p = decode_v1(body, &mut limit(true)).unwrap();
        let got: Vec<_> = p.streams[0]
            .entries
            .iter()
            .map(|e| (e.line.text().into_owned(), e.omitted))
            .collect();
        assert_eq!(got, owned(&[("abcde", 3), ("ab\"cd", 4), ("ok", 0)]));
        let v0_body = br#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"2026-01-01T00:00:00Z","line":"abcdefgh"}]}]}"#;
        let p = decode_v0(v0_body, &mut limit(false)).unwrap();
        assert_eq!(p.streams[0].entries[0].omitted, 8);
    }

    #[test]
    fn many_tiny_entries_are_charged_before_parsing() {
        let mut body = String::from(r#"{"streams":[{"stream":{"a":"b"},"values":["#);
        for i in 0..10_000 {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r#"["1",""]"#);
        }
        body.push_str("]}]}");
        let mut m = Meter::standalone(256 << 10, usize::MAX, LineLimit::NONE);
        assert!(matches!(
            decode_v1(body.as_bytes(), &mut m),
            Err(DecodeError::TooLarge(_))
        ));
        let mut m = Meter::unlimited();
        decode_v1(body.as_bytes(), &mut m).unwrap();
        assert!(m.held() > 10_000 * size_of::<PushEntry>());
    }

    #[test]
    fn v1_mixed_tuples_and_unknown_keys() {
        let body = br#"{"streams":[
            {"stream":{"app":"a"},"values":[["1","one"],["2","two",{"trace_id":"t"}]],"extra":true},
            {"stream":{"app":"a"},"values":[["3","three",{}]],"loki_metadata":{"x":1}}
        ],"other":[1,2]}"#;
        let p = v1(body).unwrap();
        assert_eq!(p.streams.len(), 2);
        assert_eq!(p.entry_count(), 3);
        assert_eq!(
            p.streams[0].labels,
            StreamLabels::Pairs(vec![("app".into(), "a".into())])
        );
        assert_eq!(
            p.streams[0].entries[1].metadata,
            vec![("trace_id".into(), "t".into())]
        );
        assert_eq!(p.streams[1].entries[0].ts, 3);
    }

    #[test]
    fn v1_rejects_numeric_and_bad_timestamps() {
        let e = v1(br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to parse push request JSON"),
            "{e}"
        );
        let e = v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["abc","x"]]}]}"#).unwrap_err();
        assert!(e.to_string().contains("invalid timestamp \"abc\""), "{e}");
        assert!(v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#).is_err());
        assert!(v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{},4]]}]}"#).is_err());
        assert!(v1(br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#).is_err());
        assert!(v1(b"{not json").is_err());
        assert!(v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":2}]]}]}"#).is_err());
    }

    #[test]
    fn v0_legacy() {
        let body = br#"{"streams":[{"labels":"{app=\"py\"}","entries":[{"ts":"2026-11-23T08:53:42.274353+00:00","line":"hi"}]}]}"#;
        let p = v0(body).unwrap();
        assert_eq!(
            p.streams[0].labels,
            StreamLabels::Text(r#"{app="py"}"#.into())
        );
        assert_eq!(p.streams[0].entries[0].ts, 1_795_424_022_274_353_000);
        let bad =
            br#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"yesterday","line":"hi"}]}]}"#;
        let e = v0(bad).unwrap_err().to_string();
        assert!(
            e.contains(r#"invalid timestamp "yesterday": parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006""#),
            "{e}"
        );
        // chrono would read a space for the `T`; Go's time.Time does not.
        let spaced = br#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"2026-11-23 08:53:42Z","line":"hi"}]}]}"#;
        let e = v0(spaced).unwrap_err().to_string();
        assert!(e.contains(r#"cannot parse " 08:53:42Z" as "T""#), "{e}");
    }
}
