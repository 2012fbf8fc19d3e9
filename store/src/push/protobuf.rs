//! Protobuf pushes: `logproto.PushRequest`, snappy-compressed (raw block
//! format) over HTTP, plain over gRPC.

use larch_proto::logproto;
use prost::Message;

use super::body::{MAX_DECOMPRESSED, too_large};
use super::{DecodeError, Push, PushEntry, PushStream, StreamLabels};

/// The magic that starts snappy's *framed* format. Loki clients send the
/// block format; a few tools send framed, which we accept too.
const SNAPPY_FRAME_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decodes an HTTP protobuf body: snappy, then protobuf.
pub fn decode_http(body: &[u8]) -> Result<Push, DecodeError> {
    let raw = snappy_decompress(body)?;
    decode_plain(&raw)
}

/// Undoes snappy (block format; framed format recognised by its magic).
pub fn snappy_decompress(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if body.starts_with(SNAPPY_FRAME_MAGIC) {
        let mut out = Vec::new();
        let reader = snap::read::FrameDecoder::new(body);
        use std::io::Read;
        reader
            .take(MAX_DECOMPRESSED as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| DecodeError::bad(format!("snappy: {e}")))?;
        if out.len() > MAX_DECOMPRESSED {
            return Err(too_large(MAX_DECOMPRESSED));
        }
        return Ok(out);
    }
    let len =
        snap::raw::decompress_len(body).map_err(|_| DecodeError::bad("snappy: corrupt input"))?;
    if len > MAX_DECOMPRESSED {
        return Err(too_large(MAX_DECOMPRESSED));
    }
    if !crate::encoding::snappy_len_plausible(body.len(), len) {
        return Err(DecodeError::bad("snappy: corrupt input"));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|_| DecodeError::bad("snappy: corrupt input"))
}

/// Decodes an uncompressed `PushRequest`.
pub fn decode_plain(raw: &[u8]) -> Result<Push, DecodeError> {
    let req = logproto::PushRequest::decode(raw)
        .map_err(|e| DecodeError::bad(format!("failed to parse push request protobuf: {e}")))?;
    from_proto(req)
}

/// Converts a decoded request, moving its strings.
pub fn from_proto(req: logproto::PushRequest) -> Result<Push, DecodeError> {
    let mut streams = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let mut entries = Vec::with_capacity(s.entries.len());
        for e in s.entries {
            let ts = match e.timestamp {
                Some(t) => t
                    .seconds
                    .checked_mul(1_000_000_000)
                    .and_then(|ns| ns.checked_add(i64::from(t.nanos)))
                    .ok_or_else(|| {
                        DecodeError::bad(format!(
                            "timestamp out of range: {}s {}ns",
                            t.seconds, t.nanos
                        ))
                    })?,
                None => 0,
            };
            entries.push(PushEntry {
                ts,
                line: e.line,
                metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            });
        }
        streams.push(PushStream {
            labels: StreamLabels::Text(s.labels),
            entries,
        });
    }
    Ok(Push { streams })
}

/// Encodes a push as a client would (used by tests, benches and tools).
pub fn encode_http(req: &logproto::PushRequest) -> Vec<u8> {
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> logproto::PushRequest {
        logproto::PushRequest {
            streams: vec![logproto::Stream {
                labels: r#"{app="a"}"#.to_string(),
                entries: vec![logproto::Entry {
                    timestamp: Some(logproto::Timestamp {
                        seconds: 1,
                        nanos: 5,
                    }),
                    line: "hello".to_string(),
                    structured_metadata: vec![logproto::LabelPair {
                        name: "trace_id".to_string(),
                        value: "t".to_string(),
                    }],
                    parsed: vec![],
                }],
                hash: 0,
            }],
            format: String::new(),
        }
    }

    #[test]
    fn round_trip() {
        let push = decode_http(&encode_http(&sample())).unwrap();
        assert_eq!(push.streams.len(), 1);
        let e = &push.streams[0].entries[0];
        assert_eq!(e.ts, 1_000_000_005);
        assert_eq!(e.line, "hello");
        assert_eq!(e.metadata, vec![("trace_id".to_string(), "t".to_string())]);
    }

    #[test]
    fn framed_snappy_is_accepted() {
        use std::io::Write;
        let raw = sample().encode_to_vec();
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(&raw).unwrap();
        let framed = w.into_inner().unwrap();
        assert_eq!(decode_http(&framed).unwrap().entry_count(), 1);
    }

    #[test]
    fn corrupt_inputs_are_errors() {
        assert_eq!(
            decode_http(b"\xff\xff\xff\xff\xff")
                .unwrap_err()
                .to_string(),
            "snappy: corrupt input"
        );
        let body = encode_http(&sample());
        let raw = snappy_decompress(&body).unwrap();
        // Truncated protobuf.
        let cut = snap::raw::Encoder::new()
            .compress_vec(&raw[..raw.len() - 3])
            .unwrap();
        assert!(
            decode_http(&cut)
                .unwrap_err()
                .to_string()
                .starts_with("failed to parse push request protobuf")
        );
        // Not snappy at all (JSON sent with a protobuf content type).
        assert!(decode_http(br#"{"streams":[]}"#).is_err());
    }

    #[test]
    fn overflowing_timestamp_is_an_error() {
        let mut req = sample();
        req.streams[0].entries[0].timestamp = Some(logproto::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        assert!(decode_http(&encode_http(&req)).is_err());
    }
}
