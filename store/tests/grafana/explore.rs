//! Explore and dashboards: the data queries Grafana's backend sends
//! (`pkg/tsdb/loki/api.go` `makeDataRequest`), the queries the frontend
//! writes by itself (logs volume, log context, samples), and the response
//! shapes Grafana's parser needs (`pkg/promlib/converter/prom.go`,
//! `pkg/tsdb/loki/frame.go`).

use std::collections::BTreeMap;

use super::support::*;

/// `query_range` as `makeDataRequest` builds it: direction always, limit
/// when maxLines > 0, start/end in integer ns, step in integer ms.
fn range_path(query: &str, start: i64, end: i64, limit: Option<u32>, direction: &str) -> String {
    let mut p = vec![
        ("direction", direction.to_string()),
        ("query", query.to_string()),
        ("start", start.to_string()),
        ("end", end.to_string()),
        ("step", "15000ms".to_string()),
    ];
    if let Some(l) = limit {
        p.insert(1, ("limit", l.to_string()));
    }
    let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    format!("/loki/api/v1/query_range{}", query_string(&pairs))
}

/// Checks what `frame.go` and the converter read from a streams result.
fn check_streams_shape(body: &str, categorized: bool) -> serde_json::Value {
    let j: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["resultType"], "streams");
    // Key order: resultType, [encodingFlags,] result (Grafana applies the
    // flags only when seen before `result`).
    let rt = body.find("\"resultType\"").unwrap();
    let res = body.find("\"result\"").unwrap();
    assert!(rt < res, "resultType after result");
    match body.find("\"encodingFlags\"") {
        Some(ef) => {
            assert!(categorized, "flags echoed without the header");
            assert!(rt < ef && ef < res, "encodingFlags must come before result");
            assert_eq!(
                j["data"]["encodingFlags"],
                serde_json::json!(["categorize-labels"])
            );
        }
        None => assert!(!categorized, "categorize-labels not echoed"),
    }
    for s in j["data"]["result"].as_array().unwrap() {
        assert!(s["stream"].is_object());
        for v in s["values"].as_array().unwrap() {
            let v = v.as_array().unwrap();
            let ts = v[0].as_str().unwrap();
            assert!(
                ts.len() >= 19 && ts.bytes().all(|b| b.is_ascii_digit()),
                "{ts}"
            );
            assert!(v[1].is_string());
            if categorized {
                assert_eq!(v.len(), 3, "categorized values are 3-tuples: {v:?}");
                let third = v[2].as_object().unwrap();
                assert!(
                    third
                        .keys()
                        .all(|k| k == "structuredMetadata" || k == "parsed")
                );
            } else {
                assert_eq!(v.len(), 2, "plain values are pairs: {v:?}");
            }
        }
    }
    // Stats Grafana maps into the query inspector.
    let summary = &j["data"]["stats"]["summary"];
    for k in [
        "bytesProcessedPerSecond",
        "linesProcessedPerSecond",
        "totalBytesProcessed",
        "totalLinesProcessed",
        "execTime",
    ] {
        assert!(summary[k].is_number(), "stats.summary.{k}");
    }
    for k in [
        "totalChunksRef",
        "totalChunksDownloaded",
        "chunksDownloadTime",
    ] {
        assert!(j["data"]["stats"]["querier"]["store"][k].is_number(), "{k}");
        assert!(
            j["data"]["stats"]["ingester"]["store"][k].is_number(),
            "{k}"
        );
    }
    j
}

fn all_values(j: &serde_json::Value) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let mut out = Vec::new();
    for s in j["data"]["result"].as_array().unwrap() {
        for v in s["values"].as_array().unwrap() {
            out.push((
                v[0].as_str().unwrap().to_string(),
                v[1].clone(),
                s["stream"].clone(),
            ));
        }
    }
    out
}

#[test]
fn explore_log_queries_plain_and_categorized() {
    let store = start_store();
    let d = push_data(store.http);
    let (start, end) = (d.t0 - 60 * SEC, now_ns());
    let q = r#"{app="checkout"}"#;

    // Grafana 10.2-10.x without the structured-metadata toggle: no flags
    // header. Metadata (the `detected_level` the store found included) is
    // merged into the stream labels, one stream per distinct label set,
    // values are pairs.
    let r = get(
        store.http,
        &range_path(q, start, end, Some(1000), "backward"),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = check_streams_shape(&r.text(), false);
    let streams = j["data"]["result"].as_array().unwrap();
    assert_eq!(streams.len(), 6, "one stream per trace_id and level");
    assert!(streams.iter().all(|s| s["stream"]["trace_id"].is_string()));
    let mut levels: Vec<&str> = streams
        .iter()
        .map(|s| s["stream"]["detected_level"].as_str().unwrap())
        .collect();
    levels.sort();
    assert_eq!(levels, ["error", "error", "error", "info", "info", "info"]);
    let values = all_values(&j);
    assert_eq!(values.len(), 60);

    // Current Grafana: categorize-labels on every data query.
    let r = get(
        store.http,
        &range_path(q, start, end, Some(1000), "backward"),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = check_streams_shape(&r.text(), true);
    let streams = j["data"]["result"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(
        streams[0]["stream"],
        serde_json::json!({"app": "checkout", "env": "prod", "namespace": "shop",
            "pod": "checkout-7d9f", "service_name": "checkout"})
    );
    let v = streams[0]["values"].as_array().unwrap();
    assert_eq!(v.len(), 60);
    // Newest first; the metadata in the third element.
    assert_eq!(v[0][0], d.checkout[59].0.to_string());
    assert_eq!(v[0][1], d.checkout[59].1);
    assert_eq!(
        v[0][2],
        serde_json::json!({"structuredMetadata": {"detected_level": "error", "trace_id": "trace-2"}})
    );
    assert_eq!(
        v[1][2],
        serde_json::json!({"structuredMetadata": {"detected_level": "info", "trace_id": "trace-1"}})
    );

    // A parser adds parsed labels, still apart from the stream labels.
    let r = get(
        store.http,
        &range_path(
            r#"{app="checkout"} | logfmt | status="402""#,
            start,
            end,
            Some(5),
            "forward",
        ),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap();
    let j = check_streams_shape(&r.text(), true);
    let v = j["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(v.len(), 5);
    // Forward: oldest first.
    assert_eq!(v[0][1], d.checkout[4].1);
    assert_eq!(v[0][2]["parsed"]["status"], "402");
    assert_eq!(v[0][2]["parsed"]["msg"], "payment declined");
    assert_eq!(v[0][2]["structuredMetadata"]["trace_id"], "trace-1");
    assert!(v.windows(2).all(|w| w[0][0].as_str() < w[1][0].as_str()));

    // A bad query: 400 with Loki's plain-text message, which Grafana shows
    // as is (`makeLokiError`).
    let r = get(
        store.http,
        &range_path(r#"{app="checkout"} |= "#, start, end, Some(10), "backward"),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().starts_with("parse error"), "{}", r.text());
}

/// Sums a matrix by series (labels as sorted pairs).
fn totals(j: &serde_json::Value) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in j["data"]["result"].as_array().unwrap() {
        let m: BTreeMap<String, String> = serde_json::from_value(s["metric"].clone()).unwrap();
        let key = m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut sum = 0.0;
        for p in s["values"].as_array().unwrap() {
            // [<unix seconds as a number>, "<value>"]
            assert!(p[0].is_number());
            sum += p[1].as_str().unwrap().parse::<f64>().unwrap();
        }
        *out.entry(key).or_insert(0.0) += sum;
    }
    out
}

/// Logs volume (`datasource.ts` `getSupplementaryQuery`, Grafana 11/12):
/// `sum by (level, detected_level) (count_over_time(<expr> | drop
/// __error__ [$__auto]))` with `X-Query-Tags: Source=logvolhist`.
/// `detected_level` is what the store stored when the lines were pushed:
/// from a level label, a level field of the line, or a keyword, and
/// `unknown` otherwise, as Loki's distributor finds it.
#[test]
fn logs_volume_by_level_and_detected_level() {
    let store = start_store();
    let d = push_data(store.http);
    // Windows of one step tile the range, so every line counts once.
    let start = d.t0 - SEC;
    let end = d.t_end + 60 * SEC;
    let q = r#"sum by (level, detected_level) (count_over_time({namespace=~".+"} | drop __error__ [1m]))"#;
    let path = format!(
        "/loki/api/v1/query_range{}",
        query_string(&[
            ("direction", "backward"),
            ("limit", "1000"),
            ("query", q),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", "60000ms"),
        ])
    );
    let mut headers = GRAFANA_DATA_HEADERS.to_vec();
    headers.push(("X-Query-Tags", "Source=logvolhist"));
    let j = get(store.http, &path, &headers).unwrap().ok_json();
    assert_eq!(j["data"]["resultType"], "matrix");
    assert!(j["data"].get("encodingFlags").is_none());
    let t = totals(&j);
    let expect: BTreeMap<String, f64> = [
        // checkout: level field in logfmt lines; frontend: JSON field.
        ("detected_level=info", 48.0 + 20.0),
        // checkout errors, batch "ERROR" keyword lines.
        ("detected_level=error", 12.0 + 2.0),
        ("detected_level=warn", 10.0),
        // batch lines without any level.
        ("detected_level=unknown", 18.0),
        // payments: the stream's own level label.
        ("detected_level=error,level=error", 10.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(t, expect);

    // Grafana 10.x: `sum by (level) (count_over_time(<expr>[$__interval]))`.
    let q = r#"sum by (level) (count_over_time({namespace=~".+"}[1m]))"#;
    let path = format!(
        "/loki/api/v1/query_range{}",
        query_string(&[
            ("direction", "backward"),
            ("query", q),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", "60000ms"),
        ])
    );
    let t = totals(&get(store.http, &path, &headers).unwrap().ok_json());
    assert_eq!(t.get(""), Some(&(60.0 + 30.0 + 20.0)));
    assert_eq!(t.get("level=error"), Some(&10.0));
}

/// Log context (`LogContextProvider.ts`): the row's indexed labels as the
/// selector, `limit=10`, backward over [row-2h, row] and forward over
/// [row, row+2h] (start inclusive, so the anchor row comes back), and the
/// variant keeping the query's parser and parsed-label filter.
#[test]
fn log_context_queries() {
    let store = start_store();
    let d = push_data(store.http);
    let (row_ts, row_line) = d.checkout[30].clone();
    let sel = r#"{app="checkout", env="prod", namespace="shop", pod="checkout-7d9f", service_name="checkout"}"#;
    let hours2 = 2 * 3600 * SEC;

    let back = get(
        store.http,
        &range_path(sel, row_ts - hours2, row_ts, Some(10), "backward"),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap();
    let j = check_streams_shape(&back.text(), true);
    let v = all_values(&j);
    assert_eq!(v.len(), 10);
    let expect: Vec<String> = (20..30)
        .rev()
        .map(|i| d.checkout[i].0.to_string())
        .collect();
    assert_eq!(v.iter().map(|x| x.0.clone()).collect::<Vec<_>>(), expect);

    let fwd = get(
        store.http,
        &range_path(sel, row_ts, row_ts + hours2, Some(10), "forward"),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap();
    let j = check_streams_shape(&fwd.text(), true);
    let v = all_values(&j);
    assert_eq!(v.len(), 10);
    assert_eq!(v[0].0, row_ts.to_string());
    assert_eq!(v[0].1, row_line);

    // With the original query's parser and a parsed-label filter.
    let q = format!(r#"{sel} | logfmt | level="error""#);
    let j = check_streams_shape(
        &get(
            store.http,
            &range_path(&q, row_ts - hours2, row_ts, Some(10), "backward"),
            GRAFANA_DATA_HEADERS,
        )
        .unwrap()
        .text(),
        true,
    );
    let v = all_values(&j);
    // Errors are every 5th line (i % 5 == 4) before row 30: 29, 24, ...
    assert_eq!(v.len(), 6);
    assert_eq!(v[0].0, d.checkout[29].0.to_string());
    assert_eq!(v[5].0, d.checkout[4].0.to_string());
}

/// Logs sample for a metric query (`getLogQueryFromMetricsQuery`:
/// `sum(rate({..} |= "x" [5m]))` → `{..} |= "x"`, `limit=100`,
/// `Source=logsample`), data samples (`getDataSamples`, `limit=10`,
/// `Source=datasample`) and a panel's metric query (matrix shape).
#[test]
fn samples_and_metric_panels() {
    let store = start_store();
    let d = push_data(store.http);
    let (start, end) = (d.t0 - 60 * SEC, now_ns());
    let mut headers = GRAFANA_DATA_HEADERS.to_vec();
    headers.push(("X-Query-Tags", "Source=logsample"));
    let j = check_streams_shape(
        &get(
            store.http,
            &range_path(
                r#"{namespace="shop"} |= "declined""#,
                start,
                end,
                Some(100),
                "backward",
            ),
            &headers,
        )
        .unwrap()
        .text(),
        true,
    );
    assert_eq!(all_values(&j).len(), 12);

    headers[2] = ("X-Query-Tags", "Source=datasample");
    let j = check_streams_shape(
        &get(
            store.http,
            &range_path(r#"{app="frontend"}"#, start, end, Some(10), "backward"),
            &headers,
        )
        .unwrap()
        .text(),
        true,
    );
    let v = all_values(&j);
    assert_eq!(v.len(), 10);
    // Grafana detects the JSON parser from these lines.
    assert!(v.iter().all(|x| x.1.as_str().unwrap().starts_with('{')));

    // A dashboard panel: metric range query; Grafana still sends limit.
    let path = range_path(
        r#"sum by (status) (rate({app="checkout"} | logfmt | unwrap duration(duration) [1m]))"#,
        start,
        end,
        Some(1000),
        "backward",
    );
    let j = get(store.http, &path, GRAFANA_DATA_HEADERS)
        .unwrap()
        .ok_json();
    assert_eq!(j["data"]["resultType"], "matrix");
    let series = j["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{j}");
    for s in series {
        for p in s["values"].as_array().unwrap() {
            assert!(p[0].is_number());
            p[1].as_str().unwrap().parse::<f64>().unwrap();
        }
    }
    // Interpolated $__interval texts Grafana produces ([1d], [500ms]).
    for q in [
        r#"count_over_time({app="checkout"}[1d])"#,
        r#"count_over_time({app="checkout"}[500ms])"#,
    ] {
        let r = get(
            store.http,
            &range_path(q, start, end, None, "backward"),
            GRAFANA_DATA_HEADERS,
        )
        .unwrap();
        assert_eq!(r.status, 200, "{q}: {}", r.text());
    }
}
