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

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::{DecodeError, Push, PushEntry, PushStream, StreamLabels};

#[derive(Deserialize)]
struct V1Request {
    #[serde(default)]
    streams: Vec<V1Stream>,
}

#[derive(Deserialize)]
struct V1Stream {
    #[serde(default, deserialize_with = "string_map")]
    stream: Vec<(String, String)>,
    #[serde(default)]
    values: Vec<V1Value>,
}

struct V1Value(PushEntry);

/// Decodes a v1 JSON body.
pub fn decode_v1(body: &[u8]) -> Result<Push, DecodeError> {
    let req: V1Request = serde_json::from_slice(body)
        .map_err(|e| DecodeError::bad(format!("failed to parse push request JSON: {e}")))?;
    Ok(Push {
        streams: req
            .streams
            .into_iter()
            .map(|s| PushStream {
                labels: StreamLabels::Pairs(s.stream),
                entries: s.values.into_iter().map(|v| v.0).collect(),
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct V0Request {
    #[serde(default)]
    streams: Vec<V0Stream>,
}

#[derive(Deserialize)]
struct V0Stream {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    entries: Vec<V0Entry>,
}

#[derive(Deserialize)]
struct V0Entry {
    #[serde(alias = "timestamp")]
    ts: String,
    line: String,
}

/// Decodes a legacy v0 JSON body.
pub fn decode_v0(body: &[u8]) -> Result<Push, DecodeError> {
    let req: V0Request = serde_json::from_slice(body)
        .map_err(|e| DecodeError::bad(format!("failed to parse push request JSON: {e}")))?;
    let mut streams = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let mut entries = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            entries.push(PushEntry {
                ts: parse_rfc3339(&e.ts)?,
                line: e.line,
                metadata: Vec::new(),
            });
        }
        streams.push(PushStream {
            labels: StreamLabels::Text(s.labels),
            entries,
        });
    }
    Ok(Push { streams })
}

/// Parses RFC3339 (with or without fractional seconds) to Unix ns.
pub fn parse_rfc3339(text: &str) -> Result<i64, DecodeError> {
    let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        DecodeError::bad(format!(
            "invalid timestamp {text:?}: expected RFC3339 ({e})"
        ))
    })?;
    t.timestamp_nanos_opt()
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

impl<'de> Deserialize<'de> for V1Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TupleVisitor;
        impl<'de> Visitor<'de> for TupleVisitor {
            type Value = V1Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}]"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V1Value, A::Error> {
                let ts: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let ts = parse_ns(&ts).map_err(de::Error::custom)?;
                let line: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let metadata = match seq.next_element::<Metadata>()? {
                    Some(m) => m.0,
                    None => Vec::new(),
                };
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(V1Value(PushEntry { ts, line, metadata }))
            }
        }
        d.deserialize_seq(TupleVisitor)
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

    #[test]
    fn v1_mixed_tuples_and_unknown_keys() {
        let body = br#"{"streams":[
            {"stream":{"app":"a"},"values":[["1","one"],["2","two",{"trace_id":"t"}]],"extra":true},
            {"stream":{"app":"a"},"values":[["3","three",{}]],"loki_metadata":{"x":1}}
        ],"other":[1,2]}"#;
        let p = decode_v1(body).unwrap();
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
        let e = decode_v1(br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("failed to parse push request JSON"),
            "{e}"
        );
        let e =
            decode_v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["abc","x"]]}]}"#).unwrap_err();
        assert!(e.to_string().contains("invalid timestamp \"abc\""), "{e}");
        assert!(decode_v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#).is_err());
        assert!(
            decode_v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{},4]]}]}"#).is_err()
        );
        assert!(decode_v1(br#"{"streams":[{"stream":{"a":1},"values":[]}]}"#).is_err());
        assert!(decode_v1(b"{not json").is_err());
        assert!(
            decode_v1(br#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":2}]]}]}"#)
                .is_err()
        );
    }

    #[test]
    fn v0_legacy() {
        let body = br#"{"streams":[{"labels":"{app=\"py\"}","entries":[{"ts":"2026-11-23T08:53:42.274353+00:00","line":"hi"}]}]}"#;
        let p = decode_v0(body).unwrap();
        assert_eq!(
            p.streams[0].labels,
            StreamLabels::Text(r#"{app="py"}"#.into())
        );
        assert_eq!(p.streams[0].entries[0].ts, 1_795_424_022_274_353_000);
        let bad =
            br#"{"streams":[{"labels":"{a=\"b\"}","entries":[{"ts":"yesterday","line":"hi"}]}]}"#;
        assert!(decode_v0(bad).is_err());
    }
}
