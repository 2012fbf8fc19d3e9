//! Seed inputs for the fuzz targets, made with the real encoders (the ones
//! clients, the ingester and the flusher use), so that fuzzing starts from
//! inputs that reach deep into every decoder. The test suite checks that
//! each seed goes all the way through its harness, and writes them into
//! `store/fuzz/corpus/<target>/seed-<name>` when asked to (see the store's
//! `fuzz` integration tests).

use std::io::Write;

use larch_proto::{logproto, otlp as proto};
use larch_query::LabelSet;
use prost::Message;

use super::NOW;
use crate::chunk::{ChunkHeader, Codec, EncodedBlock, Encoding, HeadBlock, encode_chunk, filter};
use crate::encoding::put_bytes;
use crate::index::{ChunkRef, Handles, IndexLog, IndexRecord};
use crate::push::protobuf::encode_http;
use crate::wal::record::{WalEntry, encode_push, encode_push_into, finish_frame};
use crate::wal::{Wal, list_segments};

/// A named seed.
pub type Seed = (&'static str, Vec<u8>);

/// Seeds for every target, by target name.
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("push", push()),
        ("chunk", chunk()),
        ("wal", wal()),
        ("index_log", index_log()),
        ("filter", filter()),
    ]
}

fn with(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(rest.len() + 1);
    v.push(first);
    v.extend_from_slice(rest);
    v
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = w.write_all(b);
    w.finish().unwrap_or_default()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = w.write_all(b);
    w.finish().unwrap_or_default()
}

fn snappy_framed(b: &[u8]) -> Vec<u8> {
    let mut w = snap::write::FrameEncoder::new(Vec::new());
    let _ = w.write_all(b);
    w.into_inner().unwrap_or_default()
}

fn ts(seconds_ago: i64) -> i64 {
    NOW - seconds_ago * 1_000_000_000
}

/// Push bodies in every format and content encoding.
pub fn push() -> Vec<Seed> {
    let stamp = |secs_ago: i64| {
        let t = ts(secs_ago);
        Some(logproto::Timestamp {
            seconds: t.div_euclid(1_000_000_000),
            nanos: t.rem_euclid(1_000_000_000) as i32,
        })
    };
    let req = logproto::PushRequest {
        streams: vec![
            logproto::Stream {
                labels: r#"{app="checkout", namespace="shop", pod="checkout-7d9f-x2"}"#.into(),
                entries: vec![
                    logproto::Entry {
                        timestamp: stamp(3),
                        line: "level=info msg=\"order placed\" id=42".into(),
                        structured_metadata: vec![logproto::LabelPair {
                            name: "trace_id".into(),
                            value: "4bf92f3577b34da6".into(),
                        }],
                        parsed: vec![],
                    },
                    logproto::Entry {
                        timestamp: stamp(2),
                        line: "level=error msg=\"payment failed\"\nretrying".into(),
                        structured_metadata: vec![],
                        parsed: vec![],
                    },
                ],
                hash: 0,
            },
            logproto::Stream {
                labels: r#"{app="db", level="warn"}"#.into(),
                entries: vec![logproto::Entry {
                    timestamp: stamp(1),
                    line: r#"{"query":"select 1","ms":12.5}"#.into(),
                    structured_metadata: vec![],
                    parsed: vec![],
                }],
                hash: 0,
            },
        ],
        format: String::new(),
    };
    let plain = req.encode_to_vec();
    let http = encode_http(&req);

    let v1 = format!(
        r#"{{"streams":[{{"stream":{{"app":"web","env":"prod"}},"values":[["{}","GET /index.html 200"],["{}","POST /api 500",{{"trace_id":"abc","user":"u1"}}]]}},{{"stream":{{"app":"worker"}},"values":[["{}","job done"]]}}]}}"#,
        ts(5),
        ts(4),
        ts(3)
    );
    let v0 = r#"{"streams":[{"labels":"{app=\"legacy\", host=\"h1\"}","entries":[{"ts":"2025-12-31T23:59:58.5Z","line":"hello from v0"},{"timestamp":"2025-12-31T23:59:59+00:00","line":"second"}]}]}"#;

    let any = |v: proto::any_value::Value| Some(proto::AnyValue { value: Some(v) });
    let kv = |k: &str, v: proto::any_value::Value| proto::KeyValue {
        key: k.into(),
        value: any(v),
    };
    use proto::any_value::Value as V;
    let otlp_req = proto::ExportLogsServiceRequest {
        resource_logs: vec![proto::ResourceLogs {
            resource: Some(proto::Resource {
                attributes: vec![
                    kv("service.name", V::StringValue("cart".into())),
                    kv("k8s.namespace.name", V::StringValue("shop".into())),
                    kv("host.name", V::StringValue("node-1".into())),
                    kv(
                        "process",
                        V::KvlistValue(proto::KeyValueList {
                            values: vec![kv("pid", V::IntValue(7))],
                        }),
                    ),
                ],
                dropped_attributes_count: 0,
            }),
            scope_logs: vec![proto::ScopeLogs {
                scope: Some(proto::InstrumentationScope {
                    name: "cart.logger".into(),
                    version: "1.0".into(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                }),
                log_records: vec![
                    proto::LogRecord {
                        time_unix_nano: ts(2) as u64,
                        observed_time_unix_nano: ts(1) as u64,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: any(V::StringValue("item added".into())),
                        attributes: vec![
                            kv("user.id", V::IntValue(12)),
                            kv("ratio", V::DoubleValue(0.5)),
                            kv("ok", V::BoolValue(true)),
                        ],
                        dropped_attributes_count: 0,
                        flags: 1,
                        trace_id: vec![0x4b; 16],
                        span_id: vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
                        event_name: String::new(),
                    },
                    proto::LogRecord {
                        time_unix_nano: 0,
                        observed_time_unix_nano: ts(1) as u64,
                        body: any(V::ArrayValue(proto::ArrayValue {
                            values: vec![
                                proto::AnyValue {
                                    value: Some(V::StringValue("a".into())),
                                },
                                proto::AnyValue {
                                    value: Some(V::IntValue(1)),
                                },
                            ],
                        })),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let otlp_pb = otlp_req.encode_to_vec();
    let otlp_json = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api"}}}},{{"key":"cloud.region","value":{{"stringValue":"eu-west-1"}}}},{{"key":"labels","value":{{"kvlistValue":{{"values":[{{"key":"team","value":{{"stringValue":"core"}}}}]}}}}}}]}},"scopeLogs":[{{"scope":{{"name":"api","version":"2"}},"logRecords":[{{"timeUnixNano":"{}","severityNumber":"SEVERITY_NUMBER_WARN","severityText":"WARN","body":{{"stringValue":"slow request"}},"attributes":[{{"key":"ms","value":{{"intValue":"1200"}}}},{{"key":"tags","value":{{"arrayValue":{{"values":[{{"stringValue":"x"}},{{"doubleValue":1.5}}]}}}}}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}}]}}]}}]}}"#,
        ts(1)
    );

    // Selector: low nibble = format, bits 4-5 = content encoding
    // (0 none, 1 gzip, 2 deflate, 3 snappy).
    vec![
        ("protobuf", with(0x00, &http)),
        ("protobuf-framed-snappy", with(0x00, &snappy_framed(&plain))),
        ("protobuf-gzip", with(0x10, &gzip(&http))),
        ("json-v1", with(0x01, v1.as_bytes())),
        ("json-v1-deflate", with(0x21, &zlib(v1.as_bytes()))),
        ("json-v0", with(0x02, v0.as_bytes())),
        ("otlp-protobuf", with(0x03, &otlp_pb)),
        ("otlp-protobuf-gzip", with(0x13, &gzip(&otlp_pb))),
        ("otlp-json", with(0x04, otlp_json.as_bytes())),
        ("grpc", with(0x05, &plain)),
        ("grpc-snappy-header", with(0x35, &plain)),
    ]
}

fn metadata(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in pairs {
        put_bytes(&mut b, n.as_bytes());
        put_bytes(&mut b, v.as_bytes());
    }
    b
}

fn blocks(codec: Codec) -> Vec<EncodedBlock> {
    let mut h = HeadBlock::with_encoding(Encoding::new(codec));
    let mut out = Vec::new();
    for i in 0..12 {
        let meta = if i % 3 == 0 {
            metadata(&[("trace_id", "4bf92f35"), ("user", "u1")])
        } else {
            Vec::new()
        };
        let line = format!("ts={i} level=info caller=cart.go:{i} msg=\"item {i} added\"");
        h.append(ts(100 - i), line.as_bytes(), &meta);
    }
    out.push(h.cut());
    // Out of order, an empty line, a line with a newline.
    h.append(ts(10), b"Connection reset by peer", b"");
    h.append(ts(20), b"", b"");
    h.append(ts(15), b"panic: index out of range\n\tat main.go:12", b"");
    out.push(h.cut());
    out
}

/// Chunk files as the flusher writes them (snappy, the default, and a
/// file per other codec).
pub fn chunk() -> Vec<Seed> {
    let snappy = blocks(Codec::Snappy);
    let refs: Vec<&EncodedBlock> = snappy.iter().collect();
    let two = encode_chunk(
        &ChunkHeader {
            labels: r#"{app="cart", namespace="shop"}"#.into(),
            fingerprint: 0x1234_5678_9abc_def0,
            min_seq: 3,
            max_seq: 17,
            replaces: Vec::new(),
        },
        &refs,
    );
    let one = encode_chunk(
        &ChunkHeader {
            labels: r#"{app="x"}"#.into(),
            fingerprint: 7,
            min_seq: 0,
            max_seq: 20,
            replaces: vec!["0000000000000011-0a1b2c3d".into()],
        },
        &refs[1..],
    );
    let mut out = vec![
        ("two-blocks", with(0, &two)),
        ("two-blocks-repair", with(1, &two)),
        ("one-block-repair", with(1, &one)),
    ];
    for (codec, name, repair) in [
        (Codec::Lz4, "two-blocks-lz4", "two-blocks-lz4-repair"),
        (Codec::Zstd, "two-blocks-zstd", "two-blocks-zstd-repair"),
        (Codec::None, "two-blocks-none", "two-blocks-none-repair"),
    ] {
        let coded = blocks(codec);
        let refs: Vec<&EncodedBlock> = coded.iter().collect();
        let file = encode_chunk(
            &ChunkHeader {
                labels: r#"{app="cart", namespace="shop"}"#.into(),
                fingerprint: 0x1234_5678_9abc_def0,
                min_seq: 3,
                max_seq: 17,
                replaces: Vec::new(),
            },
            &refs,
        );
        out.push((name, with(0, &file)));
        out.push((repair, with(1, &file)));
    }
    out
}

fn wal_frame(seq: u64, streams: &[(LabelSet, Vec<WalEntry>)]) -> Vec<u8> {
    let mut f = encode_push("tenant-a", streams.iter().map(|(l, e)| (l, e.as_slice())));
    finish_frame(&mut f, seq);
    f
}

/// WAL segments as the WAL writes them, and a bare record payload.
pub fn wal() -> Vec<Seed> {
    let entry = |t: i64, line: &str, meta: &[(&str, &str)]| WalEntry {
        ts: t,
        line: line.into(),
        meta: metadata(meta).into(),
    };
    let f1 = wal_frame(
        1,
        &[
            (
                LabelSet::from_pairs([("app", "cart"), ("ns", "shop")]),
                vec![
                    entry(ts(3), "order placed", &[("trace_id", "abc")]),
                    entry(ts(2), "multi\nline", &[]),
                    entry(ts(4), "retrying", &[("detected_level", "warn")]),
                    entry(ts(5), "done", &[("detected_level", "info")]),
                ],
            ),
            (
                LabelSet::from_pairs([("app", "db")]),
                vec![entry(ts(1), "slow query", &[])],
            ),
        ],
    );
    let f2 = wal_frame(
        2,
        &[(
            LabelSet::from_pairs([("app", "cart"), ("ns", "shop")]),
            vec![entry(ts(0), "", &[])],
        )],
    );
    let f3 = body_frame(3);
    let segment = written_segment(&[&f1, &f2, &f3]);
    let mut torn = segment.clone();
    torn.truncate(torn.len() - 5);
    vec![
        ("payload", with(0, &f1[8..])),
        ("payload-kind-3", with(0, &f3[8..])),
        ("segment", with(0, &segment)),
        // Records of kind 1, as stores wrote them until 2026-12-05.
        (
            "segment-kind-1",
            with(0, include_bytes!("../../tests/fixtures/wal-v1.wal")),
        ),
        ("segment-repair-twice", with(3, &segment)),
        ("segment-torn", with(2, &torn)),
    ]
}

/// A kind 3 frame: a snappy protobuf push decoded as the HTTP handler
/// decodes it, validated, its record holding the body (its lines, alike
/// as log lines are, take more bytes than the compressed body).
fn body_frame(seq: u64) -> Vec<u8> {
    let lines: Vec<String> = (0..24)
        .map(|i| match i % 4 {
            0 => format!("order {i} placed for customer {}", i * 7),
            1 => String::new(),
            2 => format!("level=warn retrying payment {i} after {}ms", i * 10),
            _ => format!("payment {i} ok"),
        })
        .collect();
    let req = logproto::PushRequest {
        streams: vec![logproto::Stream {
            labels: r#"{app="cart", namespace="shop"}"#.into(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| logproto::Entry {
                    timestamp: Some(logproto::Timestamp {
                        seconds: ts(30 - i as i64) / 1_000_000_000,
                        nanos: 0,
                    }),
                    line: l.clone(),
                    structured_metadata: Vec::new(),
                    parsed: Vec::new(),
                })
                .collect(),
            hash: 0,
        }],
        format: String::new(),
    };
    let body = bytes::Bytes::from(encode_http(&req));
    let mut meter = crate::push::meter::Meter::unlimited();
    let Ok(push) = crate::push::protobuf::decode_http_kept(&body, &mut meter) else {
        return Vec::new();
    };
    let v = crate::validate::validate(push, &crate::config::Limits::default(), NOW, "tenant-a");
    let mut f = encode_push_into(
        Vec::new(),
        "tenant-a",
        v.source.as_ref(),
        v.streams.iter().map(|s| (&*s.labels, s.entries.as_slice())),
    );
    debug_assert_eq!(f.get(8), Some(&crate::wal::record::KIND_PUSH_BODY));
    finish_frame(&mut f, seq);
    f
}

/// A segment file written through [`Wal`].
fn written_segment(frames: &[&[u8]]) -> Vec<u8> {
    let dir = super::scratch("seeds", "wal");
    let _ = std::fs::remove_dir_all(&dir);
    let mut bytes = Vec::new();
    if let Ok(mut w) = Wal::open(&dir, 1 << 20, false, Vec::new()) {
        for (i, f) in frames.iter().enumerate() {
            let _ = w.append(f, i as u64 + 1);
        }
        drop(w);
        if let Some(&first) = list_segments(&dir).unwrap_or_default().first() {
            bytes = std::fs::read(dir.join(format!("{first:020}.wal"))).unwrap_or_default();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Index logs as the ingester writes them.
pub fn index_log() -> Vec<Seed> {
    let labels = LabelSet::from_pairs([("app", "cart"), ("namespace", "shop")]);
    let fp = labels.fingerprint();
    let records = vec![
        IndexRecord::Stream { fp, labels },
        IndexRecord::Chunk {
            fp,
            chunk: ChunkRef {
                id: "0000018f2a3b4c5d-9e8f7a6b".into(),
                mint: ts(100),
                maxt: ts(1),
                entries: 15,
                bytes: 2048,
                raw_bytes: 4096,
                max_seq: 2,
            },
        },
        IndexRecord::Delete {
            fp,
            id: "0000018f2a3b4c5d-9e8f7a6b".into(),
        },
    ];
    let path = super::scratch("seeds", "index.log");
    let _ = std::fs::remove_file(&path);
    let mut bytes = Vec::new();
    let mut log = IndexLog::new(&path, Handles::new(1));
    if log.append(&records).is_ok() {
        drop(log);
        bytes = std::fs::read(&path).unwrap_or_default();
    }
    let _ = std::fs::remove_file(&path);
    let mut torn = bytes.clone();
    torn.truncate(torn.len().saturating_sub(3));
    vec![
        ("log", with(0, &bytes)),
        ("log-repair", with(1, &bytes)),
        ("log-torn", with(0, &torn)),
    ]
}

/// Lines with needles inside them, and built filters with needles.
pub fn filter() -> Vec<Seed> {
    let lines = b"level=error msg=\"Connection refused\" host=db-1\nGET /api/v1/items 200 12ms\n";
    let pick = |needle: &[u8]| -> Vec<u8> {
        let start = lines
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or(0);
        let mut v = vec![1];
        v.extend_from_slice(lines);
        v.push(start as u8);
        v.push(needle.len() as u8);
        v
    };
    let raw = |needle: &[u8]| -> Vec<u8> {
        let mut v = vec![0, needle.len() as u8];
        v.extend_from_slice(needle);
        v.extend_from_slice(&filter::build(lines));
        v
    };
    vec![
        ("build-words", pick(b"Connection refused")),
        ("build-mid-run", pick(b"nnection")),
        ("build-path", pick(b"/api/v1/items")),
        ("raw-present", raw(b"refused\" host")),
        ("raw-case", raw(b"CONNECTION")),
    ]
}
