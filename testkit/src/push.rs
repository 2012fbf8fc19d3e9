//! Loki push bodies: snappy-compressed protobuf (`logproto.PushRequest`,
//! what Promtail and the agent send) and JSON v1.

use larch_proto::logproto;
use prost::Message;

/// The header of a protobuf push.
pub const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");

/// The header of a JSON push.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// An entry at `ts` (Unix ns) without structured metadata.
pub fn entry(ts: i64, line: impl Into<String>) -> logproto::Entry {
    logproto::Entry {
        timestamp: Some(timestamp(ts)),
        line: line.into(),
        structured_metadata: vec![],
        parsed: vec![],
    }
}

/// Unix ns as a protobuf timestamp.
pub fn timestamp(ts: i64) -> logproto::Timestamp {
    logproto::Timestamp {
        seconds: ts.div_euclid(1_000_000_000),
        // In 0..1e9, so it fits.
        nanos: ts.rem_euclid(1_000_000_000) as i32,
    }
}

/// A push request body as sent over HTTP: the protobuf, snappy
/// block-compressed.
pub fn encode(req: &logproto::PushRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compresses any buffer")
}

/// A protobuf body of several streams: (labels text, `(ts, line)`s).
pub fn protobuf<L, E, S>(streams: impl IntoIterator<Item = (L, E)>) -> Vec<u8>
where
    L: Into<String>,
    E: IntoIterator<Item = (i64, S)>,
    S: Into<String>,
{
    encode(&logproto::PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| logproto::Stream {
                labels: labels.into(),
                entries: entries
                    .into_iter()
                    .map(|(ts, line)| entry(ts, line))
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: String::new(),
    })
}

/// A protobuf body of one stream whose `lines` are 1 ns apart from
/// `first_ts` on.
pub fn protobuf_lines(labels: &str, first_ts: i64, lines: &[String]) -> Vec<u8> {
    protobuf([(
        labels,
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (first_ts + i as i64, l.as_str())),
    )])
}

/// A stream of a JSON push: its label pairs and `(ts, line)` values.
pub type JsonStream<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, &'a str)]);

/// A JSON v1 body of `streams`.
pub fn json(streams: &[JsonStream<'_>]) -> serde_json::Value {
    serde_json::json!({
        "streams": streams.iter().map(|(labels, values)| {
            serde_json::json!({
                "stream": labels.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                    .collect::<serde_json::Map<_, _>>(),
                "values": values.iter().map(|(ts, l)| serde_json::json!([ts.to_string(), l]))
                    .collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protobuf_body_decodes_back() {
        let body = protobuf_lines(r#"{app="a"}"#, -1, &["x".into(), "y".into()]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = logproto::PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.streams.len(), 1);
        assert_eq!(req.streams[0].labels, r#"{app="a"}"#);
        let e = &req.streams[0].entries;
        assert_eq!((e[0].line.as_str(), e[1].line.as_str()), ("x", "y"));
        assert_eq!(
            e[0].timestamp,
            Some(logproto::Timestamp {
                seconds: -1,
                nanos: 999_999_999
            })
        );
        assert_eq!(e[1].timestamp, Some(timestamp(0)));
    }

    #[test]
    fn a_json_body() {
        let v = json(&[(&[("app", "a")], &[(5, "x")])]);
        assert_eq!(
            v,
            serde_json::json!({"streams": [{"stream": {"app": "a"}, "values": [["5", "x"]]}]})
        );
    }
}
