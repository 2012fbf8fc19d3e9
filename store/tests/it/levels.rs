//! `detected_level` as Loki stores it (issue 19): found when a line is
//! pushed, kept as the entry's structured metadata, and so part of metric
//! series and log results whatever the query says. Every test runs the
//! real `larch-store` process and talks to it over HTTP.

use std::collections::BTreeMap;

use larch_testkit::http::{Response, get, query_string, request};
use larch_testkit::{SEC, StoreProcess, now_ns};

const CATEGORIZE: (&str, &str) = ("X-Loki-Response-Encoding-Flags", "categorize-labels");

fn store(yaml: &str) -> StoreProcess {
    StoreProcess::builder()
        .config(format!("wal:\n  fsync: false\n{yaml}"))
        .start()
}

fn push(s: &StoreProcess, tenant: &str, content_type: &str, path: &str, body: &[u8]) {
    let r = request(
        s.http,
        "POST",
        path,
        &[("Content-Type", content_type), ("X-Scope-OrgID", tenant)],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// A JSON v1 push of one stream; values are `(ts, line, metadata)`.
fn push_stream(
    s: &StoreProcess,
    tenant: &str,
    labels: serde_json::Value,
    values: &[serde_json::Value],
) {
    let body = serde_json::json!({"streams": [{"stream": labels, "values": values}]});
    push(
        s,
        tenant,
        "application/json",
        "/loki/api/v1/push",
        body.to_string().as_bytes(),
    );
}

fn api(
    s: &StoreProcess,
    tenant: &str,
    path: &str,
    params: &[(&str, &str)],
    categorize: bool,
) -> serde_json::Value {
    let mut headers = vec![("X-Scope-OrgID", tenant)];
    if categorize {
        headers.push(CATEGORIZE);
    }
    let r: Response = get(
        s.http,
        &format!("/loki/api/v1/{path}{}", query_string(params)),
        &headers,
    )
    .unwrap();
    r.ok_json()
}

/// An instant metric query at `t`: each series' labels as `k=v,...` and
/// its value.
fn instant(s: &StoreProcess, tenant: &str, q: &str, t: i64) -> BTreeMap<String, f64> {
    let t = t.to_string();
    let j = api(s, tenant, "query", &[("query", q), ("time", &t)], false);
    assert_eq!(j["data"]["resultType"], "vector", "{j}");
    j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels: Vec<String> = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            (
                labels.join(","),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// A log query over `[start, end)`: per entry, its line and its
/// `structuredMetadata` (categorised) or its stream labels (plain).
fn entries(
    s: &StoreProcess,
    tenant: &str,
    q: &str,
    (start, end): (i64, i64),
    categorize: bool,
) -> BTreeMap<String, serde_json::Value> {
    let (start, end) = (start.to_string(), end.to_string());
    let j = api(
        s,
        tenant,
        "query_range",
        &[
            ("query", q),
            ("start", &start),
            ("end", &end),
            ("limit", "1000"),
        ],
        categorize,
    );
    let mut out = BTreeMap::new();
    for stream in j["data"]["result"].as_array().unwrap() {
        for v in stream["values"].as_array().unwrap() {
            let what = if categorize {
                // Loki leaves the key out when there is no metadata.
                v[2].get("structuredMetadata")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({}))
            } else {
                stream["stream"].clone()
            };
            out.insert(v[1].as_str().unwrap().to_string(), what);
        }
    }
    out
}

fn series(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The issue's example: `count_over_time({namespace="dev"} |= "retrying"
/// [10m])` has one series per level, thresholds pick among them, and
/// `sum by` or `drop` remove the label; naming it changes nothing.
#[test]
fn metric_queries_split_by_level_unless_aggregated_or_dropped() {
    let s = store("");
    let t0 = now_ns() - 5 * 60 * SEC;
    let mut values = Vec::new();
    let mut n = 0i64;
    let mut add = |count: usize, line: &str| {
        for _ in 0..count {
            values.push(serde_json::json!([
                (t0 + n * SEC).to_string(),
                format!("{line} {n}")
            ]));
            n += 1;
        }
    };
    add(30, "level=debug msg=retrying attempt=");
    add(26, "level=info msg=retrying attempt=");
    add(10, "WARN retrying in 5s, attempt");
    add(5, "[error] retrying connection, attempt");
    add(7, "connected, attempt");
    push_stream(
        &s,
        "fake",
        serde_json::json!({"namespace": "dev", "app": "worker"}),
        &values,
    );
    let at = now_ns();
    let q = r#"count_over_time({namespace="dev"} |= "retrying" [10m])"#;
    let stream = "app=worker,detected_level";
    let by_level = series(&[
        (
            &format!("{stream}=debug,namespace=dev,service_name=worker"),
            30.0,
        ),
        (
            &format!("{stream}=error,namespace=dev,service_name=worker"),
            5.0,
        ),
        (
            &format!("{stream}=info,namespace=dev,service_name=worker"),
            26.0,
        ),
        (
            &format!("{stream}=warn,namespace=dev,service_name=worker"),
            10.0,
        ),
    ]);
    assert_eq!(instant(&s, "fake", q, at), by_level);
    assert_eq!(
        instant(&s, "fake", &format!("{q} > 25"), at),
        series(&[
            (
                &format!("{stream}=debug,namespace=dev,service_name=worker"),
                30.0
            ),
            (
                &format!("{stream}=info,namespace=dev,service_name=worker"),
                26.0
            ),
        ])
    );
    assert_eq!(
        instant(&s, "fake", &format!("sum by (namespace) ({q})"), at),
        series(&[("namespace=dev", 71.0)])
    );
    assert_eq!(
        instant(&s, "fake", &format!("sum by (detected_level) ({q})"), at),
        series(&[
            ("detected_level=debug", 30.0),
            ("detected_level=error", 5.0),
            ("detected_level=info", 26.0),
            ("detected_level=warn", 10.0),
        ])
    );
    assert_eq!(
        instant(
            &s,
            "fake",
            r#"count_over_time({namespace="dev"} |= "retrying" | drop detected_level [10m])"#,
            at
        ),
        series(&[("app=worker,namespace=dev,service_name=worker", 71.0)])
    );
    // A query that names the label sees the same series as one that
    // does not.
    assert_eq!(
        instant(
            &s,
            "fake",
            r#"count_over_time({namespace="dev"} |= "retrying" | detected_level=~".+" [10m])"#,
            at
        ),
        by_level
    );
    // Without the line filter the lines without a level word count as
    // `unknown`.
    let all = instant(
        &s,
        "fake",
        r#"sum by (detected_level) (count_over_time({namespace="dev"}[10m]))"#,
        at,
    );
    assert_eq!(all["detected_level=unknown"], 7.0);
}

/// Log queries carry the level: in `structuredMetadata` with
/// categorize-labels, among the stream labels without. A stream's own
/// `level` label decides its lines' level (and stays as it was sent); a
/// level the client sent is kept, normalised.
#[test]
fn log_queries_return_the_level_as_structured_metadata() {
    let s = store("");
    let t0 = now_ns() - 60 * SEC;
    push_stream(
        &s,
        "fake",
        serde_json::json!({"app": "api"}),
        &[
            serde_json::json!([t0.to_string(), r#"{"level":"Warning","msg":"slow"}"#]),
            serde_json::json!([(t0 + 1).to_string(), "GET /x 500 error: boom"]),
            serde_json::json!([(t0 + 2).to_string(), "no level here", {"trace_id": "t1"}]),
            serde_json::json!([(t0 + 3).to_string(), "error but sent", {"detected_level": "CRITICAL"}]),
            serde_json::json!([(t0 + 4).to_string(), "sent as is", {"detected_level": "notice"}]),
            serde_json::json!([(t0 + 5).to_string(), "metadata decides", {"severity": "dbg"}]),
        ],
    );
    push_stream(
        &s,
        "fake",
        serde_json::json!({"app": "labelled", "level": "WARNING"}),
        &[serde_json::json!([
            (t0 + 6).to_string(),
            "level=error this line says error"
        ])],
    );
    push_stream(
        &s,
        "fake",
        serde_json::json!({"app": "labelled", "level": "notice"}),
        &[serde_json::json!([(t0 + 7).to_string(), "ERROR here too"])],
    );
    let range = (t0 - SEC, t0 + 10 * SEC);
    let got = entries(&s, "fake", r#"{app=~"api|labelled"}"#, range, true);
    let want: BTreeMap<String, serde_json::Value> = [
        (
            r#"{"level":"Warning","msg":"slow"}"#,
            serde_json::json!({"detected_level": "warn"}),
        ),
        (
            "GET /x 500 error: boom",
            serde_json::json!({"detected_level": "error"}),
        ),
        (
            "no level here",
            serde_json::json!({"detected_level": "unknown", "trace_id": "t1"}),
        ),
        (
            "error but sent",
            serde_json::json!({"detected_level": "critical"}),
        ),
        (
            "sent as is",
            serde_json::json!({"detected_level": "notice"}),
        ),
        (
            "metadata decides",
            serde_json::json!({"detected_level": "debug", "severity": "dbg"}),
        ),
        (
            "level=error this line says error",
            serde_json::json!({"detected_level": "warn"}),
        ),
        (
            "ERROR here too",
            serde_json::json!({"detected_level": "notice"}),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);
    // Without the flag, metadata is part of the stream's labels; the
    // stream keeps its own `level` label as sent.
    let plain = entries(&s, "fake", r#"{app="labelled"}"#, range, false);
    assert_eq!(
        plain["level=error this line says error"],
        serde_json::json!({"app": "labelled", "detected_level": "warn", "level": "WARNING", "service_name": "labelled"})
    );
    // A filter on the level selects by the stored value.
    let errors = entries(
        &s,
        "fake",
        r#"{app=~".+"} | detected_level="error""#,
        range,
        true,
    );
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["GET /x 500 error: boom"]
    );
}

/// OTLP records get the level of their severity as Loki maps it: the
/// severity text when it names a level (or any text: it is a level
/// field), else the severity number's band, else the body's words.
#[test]
fn otlp_severity_maps_as_lokis() {
    let s = store("");
    let t0 = now_ns() - 60 * SEC;
    let records: Vec<serde_json::Value> = [
        (1, "", "number 1"),
        (5, "", "number 5"),
        (10, "", "number 10"),
        (16, "", "number 16"),
        (17, "", "number 17"),
        (24, "", "number 24"),
        (25, "", "number 25"),
        (9, "Warning", "text Warning beats number 9"),
        (17, "E", "text E beats number 17"),
        (0, "", "error: no severity at all"),
        (0, "fatal", "text fatal without number"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (number, text, body))| {
        let mut r = serde_json::json!({
            "timeUnixNano": (t0 + i as i64).to_string(),
            "body": {"stringValue": body},
        });
        if *number != 0 {
            r["severityNumber"] = serde_json::json!(number);
        }
        if !text.is_empty() {
            r["severityText"] = serde_json::json!(text);
        }
        r
    })
    .collect();
    let body = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "otel-app"}}]},
        "scopeLogs": [{"logRecords": records}],
    }]});
    push(
        &s,
        "fake",
        "application/json",
        "/otlp/v1/logs",
        body.to_string().as_bytes(),
    );
    let got = entries(
        &s,
        "fake",
        r#"{service_name="otel-app"}"#,
        (t0 - SEC, t0 + SEC),
        true,
    );
    let level = |line: &str| got[line]["detected_level"].as_str().unwrap().to_string();
    for (line, want) in [
        ("number 1", "trace"),
        ("number 5", "debug"),
        ("number 10", "info"),
        ("number 16", "warn"),
        ("number 17", "error"),
        ("number 24", "fatal"),
        ("number 25", "unknown"),
        ("text Warning beats number 9", "warn"),
        ("text E beats number 17", "E"),
        ("error: no severity at all", "error"),
        ("text fatal without number", "fatal"),
    ] {
        assert_eq!(level(line), want, "{line}: {:?}", got[line]);
    }
    assert_eq!(got["number 10"]["severity_number"], "10");
}

/// `discover_log_levels` per tenant: `limits` sets it for everyone, an
/// override only for its tenant, and an override that does not set it
/// inherits it from `limits`.
#[test]
fn discovery_is_a_per_tenant_limit() {
    let s = store(
        "limits:\n  discover_log_levels: false\noverrides:\n  loud:\n    discover_log_levels: true\n  quiet:\n    max_line_size: 1MB\n",
    );
    let t0 = now_ns() - 60 * SEC;
    let range = (t0 - SEC, t0 + SEC);
    for tenant in ["loud", "quiet", "other"] {
        push_stream(
            &s,
            tenant,
            serde_json::json!({"app": "a"}),
            &[
                serde_json::json!([t0.to_string(), "level=error failed"]),
                serde_json::json!([(t0 + 1).to_string(), "kept as sent", {"detected_level": "WARNING"}]),
            ],
        );
    }
    let loud = entries(&s, "loud", r#"{app="a"}"#, range, true);
    assert_eq!(
        loud["level=error failed"],
        serde_json::json!({"detected_level": "error"})
    );
    assert_eq!(
        loud["kept as sent"],
        serde_json::json!({"detected_level": "warn"})
    );
    for tenant in ["quiet", "other"] {
        let got = entries(&s, tenant, r#"{app="a"}"#, range, true);
        // No level found, and the one sent is stored untouched.
        assert_eq!(got["level=error failed"], serde_json::json!({}), "{tenant}");
        assert_eq!(
            got["kept as sent"],
            serde_json::json!({"detected_level": "WARNING"}),
            "{tenant}"
        );
        // So a metric query has the stream's series only, as in Loki.
        assert_eq!(
            instant(
                &s,
                tenant,
                r#"count_over_time({app="a"} |= "failed" [1m])"#,
                t0 + 30 * SEC
            ),
            series(&[("app=a,service_name=a", 1.0)]),
            "{tenant}"
        );
    }
    // Drilldown reads the tenant's setting.
    let limits = |tenant: &str| api(&s, tenant, "drilldown-limits", &[], false);
    assert_eq!(limits("loud")["limits"]["discover_log_levels"], true);
    assert_eq!(limits("quiet")["limits"]["discover_log_levels"], false);
    assert_eq!(
        limits("quiet")["limits"]["log_level_fields"][7],
        "SeverityText"
    );
}

/// The level is data: it comes back from the WAL after a crash and from
/// chunk files after a flush, and Drilldown's endpoints read it.
#[test]
fn levels_live_in_the_wal_and_chunks_and_drilldown_reads_them() {
    let s = store("ingester:\n  flush_on_shutdown: true\n");
    let t0 = now_ns() - 60 * SEC;
    let lines: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            let line = match i % 4 {
                0 => format!("level=warn msg=\"disk almost full\" used={i}"),
                1 => format!("level=info msg=\"request served\" took={i}ms"),
                2 => format!("ERROR cannot open file {i}"),
                _ => format!("heartbeat {i}"),
            };
            serde_json::json!([(t0 + i * SEC / 10).to_string(), line])
        })
        .collect();
    push_stream(&s, "fake", serde_json::json!({"app": "disk"}), &lines);
    let range = (t0 - SEC, t0 + 10 * SEC);
    let levels = |s: &StoreProcess| -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for m in entries(s, "fake", r#"{app="disk"}"#, range, true).values() {
            *out.entry(m["detected_level"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        out
    };
    let want: BTreeMap<String, usize> =
        [("error", 10), ("info", 10), ("unknown", 10), ("warn", 10)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    assert_eq!(levels(&s), want);
    s.kill9();
    s.restart();
    assert_eq!(levels(&s), want, "after WAL replay");
    s.terminate();
    let chunks = walk(&s.data_dir().join("chunks"));
    assert!(!chunks.is_empty(), "the shutdown flushed chunks");
    s.restart();
    assert_eq!(levels(&s), want, "from chunk files");

    // Drilldown: the field and its values, and patterns grouped by level.
    let (start, end) = (range.0.to_string(), range.1.to_string());
    let p = [
        ("query", r#"{app="disk"}"#),
        ("start", &start),
        ("end", &end),
    ];
    let fields = api(&s, "fake", "detected_fields", &p, false);
    let field = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == "detected_level")
        .unwrap_or_else(|| panic!("{fields}"));
    assert_eq!(field["cardinality"], 4);
    let values = api(
        &s,
        "fake",
        "detected_field/detected_level/values",
        &p,
        false,
    );
    assert_eq!(
        values["values"],
        serde_json::json!(["error", "info", "unknown", "warn"])
    );
    let mut pp = p.to_vec();
    pp.push(("step", "10s"));
    let patterns = api(&s, "fake", "patterns", &pp, false);
    let mut got: Vec<(String, String)> = patterns["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["level"].as_str().unwrap().to_string(),
                p["pattern"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let levels: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(levels, ["error", "info", "unknown", "warn"], "{got:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
