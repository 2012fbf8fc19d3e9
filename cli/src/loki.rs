//! The JSON bodies of Loki's query API, as `larch` reads them.
//!
//! Log results are decoded into owned [`Stream`]s straight from the bytes
//! (no intermediate JSON tree), because a paging query may read millions of
//! lines. Metric results (matrix, vector, scalar) and statistics stay
//! [`serde_json::Value`]s: `larch` prints them back as JSON, the way logcli
//! does, without needing to understand them.
//!
//! Shapes (Loki's `pkg/util/marshal`):
//! ```text
//! {"status":"success","data":{"resultType":"streams","result":[
//!    {"stream":{"app":"api"},"values":[["<ns>","<line>"(,{metadata})?],...]}],
//!  "stats":{...}}}
//! tail frame: {"streams":[...],"dropped_entries":[{"timestamp":"<ns>","labels":{...}}]}
//! ```
//! A value may carry a third element (structured metadata and parsed
//! labels, with `categorize-labels`); `larch` never asks for that encoding
//! and skips the element if a server sends it anyway.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A stream's labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix nanoseconds.
    pub ts: i64,
    /// The line.
    pub line: String,
}

/// The lines of one label set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Stream {
    /// Stream labels.
    #[serde(rename = "stream", default)]
    pub labels: Labels,
    /// Entries in the order the server sent them.
    #[serde(rename = "values", default)]
    pub entries: Vec<Entry>,
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// Log lines.
    Streams(Vec<Stream>),
    /// A metric result: `resultType` and `result` as sent.
    Metric {
        /// `matrix`, `vector`, `scalar` or another type.
        result_type: String,
        /// The `result` value.
        result: Value,
    },
}

/// The body of `query` and `query_range`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    /// The result.
    pub result: QueryResult,
    /// `data.stats`, if sent.
    pub stats: Option<Value>,
}

/// `{"status":"success", "data": ...}` around a metadata answer (errors
/// come as non-2xx statuses, so `status` is not read).
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    /// The payload; Loki leaves it out when a list is empty.
    pub data: Option<T>,
}

/// `index/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IndexStats {
    /// Streams matched.
    #[serde(default)]
    pub streams: u64,
    /// Chunks referenced.
    #[serde(default)]
    pub chunks: u64,
    /// Uncompressed bytes.
    #[serde(default)]
    pub bytes: u64,
    /// Entries.
    #[serde(default)]
    pub entries: u64,
}

/// A WebSocket message of `tail`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TailFrame {
    /// New lines.
    #[serde(default)]
    pub streams: Vec<Stream>,
    /// Lines the server could not send because the client was too slow.
    #[serde(default)]
    pub dropped_entries: Option<Vec<DroppedEntry>>,
}

/// A line the server dropped while tailing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DroppedEntry {
    /// Unix nanoseconds, as text.
    #[serde(deserialize_with = "ns_string")]
    pub timestamp: i64,
    /// The stream's labels.
    #[serde(default)]
    pub labels: Labels,
}

fn ns_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = String::deserialize(d)?;
    parse_ns(&s).map_err(de::Error::custom)
}

fn parse_ns(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("timestamp {s:?} is not integer nanoseconds"))
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a log value ["<ns>", "<line>"]"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                let ts: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Entry {
                    ts: parse_ns(&ts).map_err(de::Error::custom)?,
                    line,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for QueryResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<QueryResponse, D::Error> {
        #[derive(Deserialize)]
        struct Outer {
            data: QueryResponse2,
        }
        Outer::deserialize(d).map(|o| o.data.0)
    }
}

/// `data` of a query response. Loki writes `resultType` before `result`,
/// so streams are decoded directly; if a server sends them the other way
/// round the result goes through a JSON tree first.
struct QueryResponse2(QueryResponse);

impl<'de> Deserialize<'de> for QueryResponse2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<QueryResponse2, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = QueryResponse2;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a query result object with resultType and result")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueryResponse2, A::Error> {
                let mut result_type: Option<String> = None;
                let mut result: Option<QueryResult> = None;
                let mut early: Option<Value> = None;
                let mut stats = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "resultType" => result_type = Some(map.next_value()?),
                        "result" => match result_type.as_deref() {
                            Some("streams") => {
                                result = Some(QueryResult::Streams(map.next_value()?))
                            }
                            Some(t) => {
                                result = Some(QueryResult::Metric {
                                    result_type: t.to_string(),
                                    result: map.next_value()?,
                                })
                            }
                            None => early = Some(map.next_value()?),
                        },
                        "stats" => stats = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let result_type =
                    result_type.ok_or_else(|| de::Error::missing_field("resultType"))?;
                let result = match (result, early) {
                    (Some(r), _) => r,
                    (None, Some(v)) if result_type == "streams" => {
                        QueryResult::Streams(serde_json::from_value(v).map_err(de::Error::custom)?)
                    }
                    (None, Some(v)) => QueryResult::Metric {
                        result_type,
                        result: v,
                    },
                    (None, None) => return Err(de::Error::missing_field("result")),
                };
                Ok(QueryResponse2(QueryResponse { result, stats }))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_with_two_and_three_tuples() {
        let body = r#"{"status":"success","data":{"resultType":"streams","result":[
            {"stream":{"app":"api","env":"prod"},"values":[["1700000000000000001","hello"],
             ["1700000000000000000","x",{"structuredMetadata":{"t":"1"}}]]}],
            "stats":{"summary":{"execTime":0.1}}}}"#;
        let r: QueryResponse = serde_json::from_str(body).unwrap();
        let QueryResult::Streams(s) = &r.result else {
            panic!("{r:?}")
        };
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(
            s[0].entries,
            vec![
                Entry {
                    ts: 1_700_000_000_000_000_001,
                    line: "hello".into()
                },
                Entry {
                    ts: 1_700_000_000_000_000_000,
                    line: "x".into()
                }
            ]
        );
        assert!(r.stats.is_some());
    }

    #[test]
    fn result_before_result_type() {
        let body = r#"{"data":{"result":[{"stream":{"a":"b"},"values":[["5","l"]]}],"resultType":"streams"}}"#;
        let r: QueryResponse = serde_json::from_str(body).unwrap();
        assert!(matches!(&r.result, QueryResult::Streams(s) if s[0].entries[0].ts == 5));
        let body = r#"{"data":{"result":[1.5,"2"],"resultType":"scalar"}}"#;
        let r: QueryResponse = serde_json::from_str(body).unwrap();
        assert!(
            matches!(&r.result, QueryResult::Metric { result_type, .. } if result_type == "scalar")
        );
    }

    #[test]
    fn metric_results_are_kept_as_json() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[4000000000,"2"]}]}}"#;
        let r: QueryResponse = serde_json::from_str(body).unwrap();
        match r.result {
            QueryResult::Metric {
                result_type,
                result,
            } => {
                assert_eq!(result_type, "vector");
                assert_eq!(result[0]["value"][1], "2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_bodies_are_errors() {
        for body in [
            r#"{"data":{"resultType":"streams","result":[{"stream":{},"values":[["x","l"]]}]}}"#,
            r#"{"data":{"resultType":"streams","result":[{"stream":{},"values":[["1"]]}]}}"#,
            r#"{"data":{"result":[]}}"#,
            r#"{"data":{"resultType":"streams"}}"#,
            r#"{"status":"success"}"#,
            "[]",
        ] {
            assert!(
                serde_json::from_str::<QueryResponse>(body).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn tail_frames() {
        let f: TailFrame = serde_json::from_str(
            r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x"]]}],"dropped_entries":[{"timestamp":"7","labels":{"a":"b"}}]}"#,
        )
        .unwrap();
        assert_eq!(f.streams[0].entries[0].line, "x");
        assert_eq!(f.dropped_entries.unwrap()[0].timestamp, 7);
        let f: TailFrame =
            serde_json::from_str(r#"{"streams":[],"dropped_entries":null}"#).unwrap();
        assert!(f.streams.is_empty());
    }

    #[test]
    fn envelopes_and_stats() {
        let e: Envelope<Vec<String>> =
            serde_json::from_str(r#"{"status":"success","data":["a","b"]}"#).unwrap();
        assert_eq!(e.data.unwrap(), vec!["a", "b"]);
        let e: Envelope<Vec<String>> = serde_json::from_str(r#"{"status":"success"}"#).unwrap();
        assert!(e.data.is_none());
        let s: IndexStats =
            serde_json::from_str(r#"{"streams":2,"chunks":3,"bytes":4096,"entries":10}"#).unwrap();
        assert_eq!(s.bytes, 4096);
    }
}
