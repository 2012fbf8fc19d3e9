//! Logs Drilldown (grafana/logs-drilldown) and the newer core data
//! source features built on the same endpoints: `drilldown-limits`,
//! `status/buildinfo`, `detected_labels`, `detected_fields`,
//! `detected_field/<name>/values`, `patterns`, and the metric queries
//! Drilldown writes (`src/services/expressions.ts`, `fields.ts`).
//! Drilldown sends times as RFC3339 and tags its calls with
//! `X-Query-Tags: Source=grafana-lokiexplore-app`.

use super::support::*;

const TAG: (&str, &str) = ("X-Query-Tags", "Source=grafana-lokiexplore-app");

fn call(port: u16, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
    get(
        port,
        &format!("/loki/api/v1/{path}{}", query_string(params)),
        &[TAG],
    )
    .unwrap()
    .ok_json()
}

fn field<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == name)
        .unwrap_or_else(|| panic!("no field {name}: {j}"))
}

/// `src/services/datasource.ts` reads the limits once a day and hides the
/// patterns tab unless `pattern_ingester_enabled`; `buildinfo` gives the
/// version it gates features on.
#[test]
fn drilldown_config_and_version() {
    let store = start_store();
    let j = call(store.http, "drilldown-limits", &[]);
    assert_eq!(j["pattern_ingester_enabled"], true);
    assert_eq!(j["limits"]["volume_enabled"], true);
    assert_eq!(j["limits"]["discover_log_levels"], true);
    assert!(j["version"].as_str().unwrap().starts_with('3'));
    let j = call(store.http, "status/buildinfo", &[]);
    assert!(j["version"].as_str().unwrap().starts_with('3'));
}

#[test]
fn detected_labels_fields_and_values() {
    let store = start_store();
    let d = push_data(store.http);
    let p = store.http;
    let (start, end) = (rfc3339(d.t0 - 60 * SEC), rfc3339(now_ns()));

    // Labels tab: Drilldown sends an empty query rather than `{}`.
    let j = call(
        p,
        "detected_labels",
        &[("query", ""), ("start", &start), ("end", &end)],
    );
    let labels: Vec<(String, u64)> = j["detectedLabels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["label"].as_str().unwrap().to_string(),
                l["cardinality"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        vec![
            ("app".to_string(), 4),
            ("env".to_string(), 1),
            ("level".to_string(), 1),
            ("namespace".to_string(), 3),
            ("pod".to_string(), 1),
            ("service_name".to_string(), 4),
        ]
    );
    let j = call(
        p,
        "detected_labels",
        &[
            ("query", r#"{service_name="batch"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    assert_eq!(
        j,
        serde_json::json!({"detectedLabels": [
            {"label": "app", "cardinality": 1},
            {"label": "namespace", "cardinality": 1},
            {"label": "service_name", "cardinality": 1},
        ]})
    );

    // Fields tab / query builder: JSON fields with their paths.
    let front = [
        ("query", r#"{service_name="frontend"}"#),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("limit", "1000"),
        ("line_limit", "1000"),
        ("step", "10s"),
    ];
    let j = call(p, "detected_fields", &front);
    assert_eq!(j["limit"], 1000);
    let st = field(&j, "req_status");
    assert_eq!(st["type"], "int");
    assert_eq!(st["cardinality"], 2);
    assert_eq!(st["parsers"], serde_json::json!(["json"]));
    // Drilldown reads a jsonPath as "Loki 3.5 or newer".
    assert_eq!(st["jsonPath"], serde_json::json!(["req", "status"]));
    assert_eq!(field(&j, "req_took")["type"], "duration");
    assert_eq!(
        field(&j, "user_agent")["jsonPath"],
        serde_json::json!(["user-agent"])
    );
    assert_eq!(field(&j, "level")["cardinality"], 2);
    let lvl = field(&j, "detected_level");
    assert!(lvl["parsers"].is_null());
    assert_eq!(lvl["cardinality"], 2);

    // logfmt fields and structured metadata.
    let j = call(
        p,
        "detected_fields",
        &[
            ("query", r#"{service_name="checkout"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    assert_eq!(field(&j, "order_id")["type"], "int");
    assert_eq!(field(&j, "order_id")["cardinality"], 60);
    assert_eq!(field(&j, "duration")["type"], "duration");
    assert_eq!(field(&j, "msg")["parsers"], serde_json::json!(["logfmt"]));
    assert!(field(&j, "msg").get("jsonPath").is_none());
    let tr = field(&j, "trace_id");
    assert!(tr["parsers"].is_null());
    assert_eq!(tr["cardinality"], 3);

    // Field value autocomplete.
    let j = call(p, "detected_field/req_path/values", &front);
    assert_eq!(
        j,
        serde_json::json!({"values": ["/cart", "/checkout"], "limit": 1000})
    );
    let j = call(
        p,
        "detected_field/detected_level/values",
        &[
            ("query", r#"{namespace=~".+"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    assert_eq!(
        j["values"],
        serde_json::json!(["error", "info", "unknown", "warn"])
    );

    // The query is required and must be a valid log query.
    let r = get(
        p,
        &format!(
            "/loki/api/v1/detected_fields{}",
            query_string(&[("query", "{}")])
        ),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = get(
        p,
        &format!(
            "/loki/api/v1/detected_fields{}",
            query_string(&[("query", r#"{app="x"}"#), ("line_limit", "100000")])
        ),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("max entries limit per query exceeded"),
        "{}",
        r.text()
    );
}

/// The Patterns tab: `patterns?query&start&end&step` (RFC3339, step as
/// Grafana's interval text), then a click adds the pattern as a `|>`
/// filter to Drilldown's queries.
#[test]
fn patterns_and_pattern_filters() {
    let store = start_store();
    let d = push_data(store.http);
    let p = store.http;
    let (start_ns, end_ns) = (d.t0 - 60 * SEC, now_ns());
    let (start, end) = (rfc3339(start_ns), rfc3339(end_ns));
    let j = call(
        p,
        "patterns",
        &[
            ("query", r#"{service_name="checkout"}"#),
            ("start", &start),
            ("end", &end),
            ("step", "30s"),
        ],
    );
    assert_eq!(j["status"], "success");
    let data = j["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{j}");
    let mut seen = Vec::new();
    for pat in data {
        let text = pat["pattern"].as_str().unwrap();
        assert!(text.contains("<_>"), "{text}");
        let mut total = 0;
        for s in pat["samples"].as_array().unwrap() {
            let t = s[0].as_i64().unwrap();
            // Step-aligned bucket starts within the range, in seconds.
            assert_eq!(t % 30, 0);
            assert!(t * SEC >= start_ns - 30 * SEC && t * SEC <= end_ns, "{t}");
            total += s[1].as_u64().unwrap();
        }
        seen.push((
            pat["level"].as_str().unwrap().to_string(),
            total,
            text.to_string(),
        ));
    }
    assert_eq!(seen[0].0, "info");
    assert_eq!(seen[0].1, 48);
    assert_eq!(
        seen[0].2,
        r#"level=info msg="order placed" order_id=<_> duration=<_> status=<_>"#
    );
    assert_eq!((seen[1].0.as_str(), seen[1].1), ("error", 12));

    // The pattern as Drilldown uses it: a `|>` line filter, here in the
    // logs panel's volume query (expressions.ts).
    let q = format!(
        r#"sum(count_over_time({{service_name="checkout"}} |> "{}" | drop __error__ [10m]))"#,
        seen[0].2.replace('"', r#"\""#)
    );
    let j = get(
        p,
        &format!(
            "/loki/api/v1/query{}",
            query_string(&[("query", &q), ("time", &end_ns.to_string())])
        ),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["data"]["result"][0]["value"][1], "48", "{j}");
    // And excluded with `!>`.
    let q = format!(
        r#"{{service_name="checkout"}} !> "{}""#,
        seen[0].2.replace('"', r#"\""#)
    );
    let j = get(
        p,
        &format!(
            "/loki/api/v1/query_range{}",
            query_string(&[
                ("query", &q),
                ("start", &start_ns.to_string()),
                ("end", &end_ns.to_string()),
                ("limit", "1000"),
            ])
        ),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap()
    .ok_json();
    let n: usize = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 12);

    // A metric query is not a pattern query.
    let r = get(
        p,
        &format!(
            "/loki/api/v1/patterns{}",
            query_string(&[("query", r#"rate({app="x"}[1m])"#)])
        ),
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 400);
}

/// Metric queries Drilldown writes (`expressions.ts`, `fields.ts`,
/// `LokiFieldDistribution.tsx`), run as range or instant queries.
#[test]
fn drilldown_metric_queries() {
    let store = start_store();
    let d = push_data(store.http);
    let p = store.http;
    let (start, end) = (d.t0 - SEC, d.t_end + 60 * SEC);
    let range = |q: &str, step: &str| -> serde_json::Value {
        get(
            p,
            &format!(
                "/loki/api/v1/query_range{}",
                query_string(&[
                    ("query", q),
                    ("start", &start.to_string()),
                    ("end", &end.to_string()),
                    ("step", step),
                ])
            ),
            &[TAG],
        )
        .unwrap()
        .ok_json()
    };
    let sum_by = |j: &serde_json::Value, label: &str| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = j["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let total = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
                    .sum();
                (s["metric"][label].as_str().unwrap_or("").to_string(), total)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };

    // Service view histogram by level.
    let j = range(
        r#"sum by (detected_level) (count_over_time({service_name="checkout"} | drop __error__ [1m]))"#,
        "60s",
    );
    assert_eq!(
        sum_by(&j, "detected_level"),
        vec![("error".to_string(), 12.0), ("info".to_string(), 48.0)]
    );

    // A field breakdown with a numeric field filter (post `by` form).
    let j = range(
        r#"sum(count_over_time({service_name="frontend"} | json | drop __error__, __error_details__ | req_status >= 500 [1m])) by (req_path)"#,
        "60s",
    );
    assert_eq!(
        sum_by(&j, "req_path"),
        vec![("/cart".to_string(), 3.0), ("/checkout".to_string(), 3.0)]
    );

    // Field distribution over the whole range (instant, `[$__range]`).
    let j = get(
        p,
        &format!(
            "/loki/api/v1/query{}",
            query_string(&[
                (
                    "query",
                    r#"sum by (req_path) (count_over_time({service_name="frontend"} | json | keep req_path [10m]))"#
                ),
                ("time", &end.to_string()),
            ])
        ),
        &[TAG],
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["data"]["resultType"], "vector");
    assert_eq!(j["data"]["result"].as_array().unwrap().len(), 2);

    // Numeric field panel: avg_over_time of an unwrapped duration.
    let j = range(
        r#"avg_over_time({service_name="frontend"} | json | unwrap duration(req_took) | __error__="" [1m])"#,
        "60s",
    );
    assert_eq!(j["data"]["resultType"], "matrix");
    assert!(!j["data"]["result"].as_array().unwrap().is_empty());
}
