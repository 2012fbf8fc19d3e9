//! Loki's response JSON, written by hand so that key order is Loki's
//! (Grafana reads `encodingFlags` only when it comes before `result`):
//!
//! ```text
//! {"status":"success","data":{"resultType":"streams",["encodingFlags":[...],]
//!   "result":[...],"stats":{...}}}
//! ```
//! Stream values are `["<ns>","<line>"]`, or with `categorize-labels`
//! `["<ns>","<line>",{"structuredMetadata":{..},"parsed":{..}}]`; metric
//! values are `[<unix seconds>,"<value>"]` with Prometheus' number text
//! (`NaN`, `+Inf`, `-Inf`).

use std::fmt::Write as _;

use larch_query::LabelSet;
use larch_query::engine::{QueryStats, QueryValue, StreamResult};

/// Appends `s` as a JSON string. Only ASCII needs escaping (quotes,
/// backslashes and control characters), so the text is scanned as bytes
/// and copied in runs between them.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // `i` is an ASCII byte, so a character boundary.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a label set as a JSON object.
pub fn labels(out: &mut String, set: &LabelSet) {
    out.push('{');
    for (i, l) in set.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, &l.name);
        out.push(':');
        string(out, &l.value);
    }
    out.push('}');
}

fn pairs(out: &mut String, pairs: &[(String, String)]) {
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        string(out, v);
    }
    out.push('}');
}

/// A sample value as Prometheus writes it.
pub fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// A timestamp in ns as Unix seconds with millisecond precision
/// (`1588889221.5`).
pub fn seconds(out: &mut String, ns: i64) {
    let ms = ns.div_euclid(1_000_000);
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        let _ = write!(out, "{s}");
    } else {
        let f = format!("{frac:03}");
        let _ = write!(out, "{s}.{}", f.trim_end_matches('0'));
    }
}

fn point(out: &mut String, ts: i64, v: f64) {
    out.push('[');
    seconds(out, ts);
    out.push_str(",\"");
    out.push_str(&value_text(v));
    out.push_str("\"]");
}

/// Writes streams (`categorize` selects 3-tuples).
pub fn streams(out: &mut String, streams: &[StreamResult], categorize: bool) {
    out.push('[');
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        labels(out, &s.labels);
        out.push_str(",\"values\":[");
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[\"{}\",", e.ts);
            string(out, &e.line);
            if categorize {
                out.push_str(",{");
                let mut first = true;
                if !e.structured_metadata.is_empty() {
                    out.push_str("\"structuredMetadata\":");
                    pairs(out, &e.structured_metadata);
                    first = false;
                }
                if !e.parsed.is_empty() {
                    if !first {
                        out.push(',');
                    }
                    out.push_str("\"parsed\":");
                    pairs(out, &e.parsed);
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// Loki's legacy (v0) streams array, without the outer brackets:
/// `{"labels":"{..}","entries":[{"ts":"<RFC3339Nano>","line":".."}]},...`.
pub fn legacy_streams(out: &mut String, streams: &[StreamResult]) {
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"labels\":");
        string(out, &s.labels.to_string());
        out.push_str(",\"entries\":[");
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"ts\":");
            string(out, &crate::validate::rfc3339(e.ts));
            out.push_str(",\"line\":");
            string(out, &e.line);
            out.push('}');
        }
        out.push_str("]}");
    }
}

/// The `data` object's result type name.
pub fn result_type(v: &QueryValue) -> &'static str {
    match v {
        QueryValue::Streams(_) => "streams",
        QueryValue::Matrix(_) => "matrix",
        QueryValue::Vector(_) => "vector",
        QueryValue::Scalar { .. } => "scalar",
    }
}

/// Writes a result value (the `result` member).
pub fn result(out: &mut String, v: &QueryValue, categorize: bool) {
    match v {
        QueryValue::Streams(s) => streams(out, s, categorize),
        QueryValue::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, &(t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(out, t, v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(out, &s.labels);
                out.push_str(",\"value\":");
                point(out, s.ts, s.value);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Scalar { ts, value } => point(out, *ts, *value),
    }
}

/// The full query response.
pub fn query_response(v: &QueryValue, stats: &QueryStats, categorize: bool) -> String {
    let mut out = String::with_capacity(1024);
    let categorized = categorize && matches!(v, QueryValue::Streams(_));
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.push_str(result_type(v));
    out.push('"');
    if categorized {
        out.push_str(",\"encodingFlags\":[\"categorize-labels\"]");
    }
    out.push_str(",\"result\":");
    result(&mut out, v, categorized);
    out.push_str(",\"stats\":");
    stats_json(&mut out, stats);
    out.push_str("}}");
    out
}

/// Loki's `stats` object, with every key Grafana reads.
pub fn stats_json(out: &mut String, s: &QueryStats) {
    let exec = s.exec_seconds.max(0.0);
    let per_sec = |n: u64| {
        if exec > 0.0 {
            (n as f64 / exec) as u64
        } else {
            0
        }
    };
    let sc = &s.scan;
    let store = format!(
        concat!(
            "{{\"totalChunksRef\":{},\"totalChunksDownloaded\":{},\"chunksDownloadTime\":0,",
            "\"queryReferencedStructuredMetadata\":false,\"queryUsedV2Engine\":false,",
            "\"chunk\":{{\"headChunkBytes\":{},\"headChunkLines\":{},\"decompressedBytes\":{},",
            "\"decompressedLines\":{},\"compressedBytes\":{},\"totalDuplicates\":{},",
            "\"postFilterLines\":{},\"headChunkStructuredMetadataBytes\":0,",
            "\"decompressedStructuredMetadataBytes\":0}},",
            "\"chunkRefsFetchTime\":0,\"congestionControlLatency\":0,\"pipelineWrapperFilteredLines\":0}}"
        ),
        sc.chunks_ref,
        sc.chunks_downloaded,
        sc.head_chunk_bytes,
        sc.head_chunk_lines,
        sc.decompressed_bytes,
        sc.decompressed_lines,
        sc.compressed_bytes,
        sc.duplicates,
        s.post_filter_lines,
    );
    let cache = "{\"entriesFound\":0,\"entriesRequested\":0,\"entriesStored\":0,\"bytesReceived\":0,\"bytesSent\":0,\"requests\":0,\"downloadTime\":0,\"queryLengthServed\":0}";
    let _ = write!(
        out,
        concat!(
            "{{\"summary\":{{\"bytesProcessedPerSecond\":{},\"linesProcessedPerSecond\":{},",
            "\"totalBytesProcessed\":{},\"totalLinesProcessed\":{},\"execTime\":{},\"queueTime\":0,",
            "\"subqueries\":0,\"totalEntriesReturned\":{},\"splits\":0,\"shards\":0,",
            "\"totalPostFilterLines\":{},\"totalStructuredMetadataBytesProcessed\":0}},",
            "\"querier\":{{\"store\":{store}}},",
            "\"ingester\":{{\"totalReached\":0,\"totalChunksMatched\":0,\"totalBatches\":0,\"totalLinesSent\":0,",
            "\"store\":{empty_store}}},",
            "\"cache\":{{\"chunk\":{c},\"index\":{c},\"result\":{c},\"statsResult\":{c},\"volumeResult\":{c},",
            "\"seriesResult\":{c},\"labelResult\":{c},\"instantMetricResult\":{c}}},",
            "\"index\":{{\"totalChunks\":{},\"postFilterChunks\":{},\"shardsDuration\":0,\"usedBloomFilters\":{}}}}}"
        ),
        per_sec(s.total_bytes),
        per_sec(s.total_lines),
        s.total_bytes,
        s.total_lines,
        exec,
        s.entries_returned,
        s.post_filter_lines,
        sc.chunks_ref,
        sc.chunks_downloaded,
        sc.blocks_skipped > 0,
        store = store,
        empty_store = EMPTY_STORE,
        c = cache,
    );
}

const EMPTY_STORE: &str = "{\"totalChunksRef\":0,\"totalChunksDownloaded\":0,\"chunksDownloadTime\":0,\"queryReferencedStructuredMetadata\":false,\"queryUsedV2Engine\":false,\"chunk\":{\"headChunkBytes\":0,\"headChunkLines\":0,\"decompressedBytes\":0,\"decompressedLines\":0,\"compressedBytes\":0,\"totalDuplicates\":0,\"postFilterLines\":0,\"headChunkStructuredMetadataBytes\":0,\"decompressedStructuredMetadataBytes\":0},\"chunkRefsFetchTime\":0,\"congestionControlLatency\":0,\"pipelineWrapperFilteredLines\":0}";

/// `{"status":"success","data":<data>}` for metadata endpoints.
pub fn success(data: &str) -> String {
    let mut out = String::with_capacity(SUCCESS_START.len() + data.len() + SUCCESS_END.len());
    out.push_str(SUCCESS_START);
    out.push_str(data);
    out.push_str(SUCCESS_END);
    out
}

/// What comes before the data of a successful answer (see [`success`]),
/// for answers written piece by piece.
pub const SUCCESS_START: &str = "{\"status\":\"success\",\"data\":";

/// What closes a successful answer after its data.
pub const SUCCESS_END: &str = "}";

/// A JSON array of strings.
pub fn string_array(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, s.as_ref());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_query::engine::{LogEntry, Sample, Series};

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("invalid JSON {e}: {s}"))
    }

    proptest::proptest! {
        /// Any text reads back as itself.
        #[test]
        fn strings_read_back(s in "(?s).{0,40}|[\\x00-\\x20\"\\\\a-zé€😀]{0,40}") {
            let mut out = String::new();
            string(&mut out, &s);
            let back: String = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn strings_escape() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é<");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é<""#);
        assert_eq!(parse(&out), serde_json::json!("a\"b\\c\nd\u{1}é<"));
    }

    #[test]
    fn numbers_as_prometheus_writes_them() {
        assert_eq!(value_text(2.0), "2");
        assert_eq!(value_text(0.1), "0.1");
        assert_eq!(value_text(f64::NAN), "NaN");
        assert_eq!(value_text(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value_text(1e21), "1000000000000000000000");
        let mut s = String::new();
        seconds(&mut s, 1_588_889_221_500_000_000);
        assert_eq!(s, "1588889221.5");
        s.clear();
        seconds(&mut s, 4_000_000_000_000_000_000);
        assert_eq!(s, "4000000000");
    }

    #[test]
    fn streams_plain_and_categorized_key_order() {
        let v = QueryValue::Streams(vec![StreamResult {
            labels: LabelSet::from_pairs([("app", "a")]),
            entries: vec![
                LogEntry {
                    ts: 2,
                    line: "two".into(),
                    structured_metadata: vec![("trace_id".into(), "t".into())],
                    parsed: vec![],
                },
                LogEntry {
                    ts: 1,
                    line: "one".into(),
                    structured_metadata: vec![],
                    parsed: vec![],
                },
            ],
        }]);
        let plain = query_response(&v, &QueryStats::default(), false);
        assert!(plain.starts_with(r#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{"app":"a"},"values":[["2","two"],["1","one"]]}],"stats":{"summary""#), "{plain}");
        parse(&plain);
        let cat = query_response(&v, &QueryStats::default(), true);
        assert!(cat.starts_with(r#"{"status":"success","data":{"resultType":"streams","encodingFlags":["categorize-labels"],"result":[{"stream":{"app":"a"},"values":[["2","two",{"structuredMetadata":{"trace_id":"t"}}],["1","one",{}]]}]"#), "{cat}");
        let j = parse(&cat);
        for key in ["summary", "querier", "ingester", "cache", "index"] {
            assert!(j["data"]["stats"].get(key).is_some(), "stats lacks {key}");
        }
        assert!(j["data"]["stats"]["querier"]["store"]["chunk"]["decompressedLines"].is_number());
    }

    #[test]
    fn metric_shapes() {
        let m = QueryValue::Matrix(vec![Series {
            labels: LabelSet::new(),
            points: vec![(1_000_000_000, 1.5), (2_000_000_000, f64::INFINITY)],
        }]);
        let j = parse(&query_response(&m, &QueryStats::default(), true));
        assert_eq!(j["data"]["resultType"], "matrix");
        assert!(j["data"].get("encodingFlags").is_none());
        assert_eq!(
            j["data"]["result"][0]["values"],
            serde_json::json!([[1, "1.5"], [2, "+Inf"]])
        );
        let v = QueryValue::Vector(vec![Sample {
            labels: LabelSet::new(),
            ts: 4_000_000_000_000_000_000,
            value: 2.0,
        }]);
        let j = parse(&query_response(&v, &QueryStats::default(), false));
        assert_eq!(
            j["data"]["result"],
            serde_json::json!([{"metric": {}, "value": [4000000000u64, "2"]}])
        );
        let s = QueryValue::Scalar {
            ts: 1_000_000_000,
            value: 3.0,
        };
        let j = parse(&query_response(&s, &QueryStats::default(), false));
        assert_eq!(j["data"]["result"], serde_json::json!([1, "3"]));
    }
}
