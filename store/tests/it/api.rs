//! The query API against a store process: shapes, parameters, errors.

use larch_testkit::http::percent;

use super::support::*;

fn get(port: u16, path: &str) -> (u16, serde_json::Value, String) {
    let r = request(port, "GET", path, &[], b"").unwrap();
    let text = r.text();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (r.status, json, text)
}

#[test]
fn query_api_shapes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let p = store.http;
    let t0 = now_ns() - 60_000_000_000;
    let lines: Vec<String> = (0..10)
        .map(|i| format!("level=info msg=\"hello {i}\" status={}", 200 + i % 2))
        .collect();
    let r = request(
        p,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        &protobuf_lines(r#"{app="api", env="test"}"#, t0, &lines),
    )
    .unwrap();
    assert_eq!(r.status, 204);

    // Log query, newest first, limit honoured.
    let (s, j, t) = get(
        p,
        &format!(
            "/loki/api/v1/query_range?query={}&limit=3",
            percent(r#"{app="api"} |= "hello""#)
        ),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(j["data"]["resultType"], "streams");
    let values = j["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[0][1], lines[9]);
    assert_eq!(values[0][0], (t0 + 9).to_string());

    // Metric range query with a parser, forward direction param ignored.
    let (s, j, t) = get(
        p,
        &format!(
            "/loki/api/v1/query_range?query={}&step=60&direction=FORWARD",
            percent(r#"sum by (status) (count_over_time({app="api"} | logfmt [5m]))"#)
        ),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(j["data"]["resultType"], "matrix");
    assert_eq!(j["data"]["result"].as_array().unwrap().len(), 2);

    // Grafana's health check: an instant query at a 10-digit time.
    let (s, j, t) = get(
        p,
        &format!(
            "/loki/api/v1/query?query={}&time=4000000000",
            percent("vector(1)+vector(1)")
        ),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(j["data"]["resultType"], "vector");
    assert_eq!(j["data"]["result"][0]["value"][1], "2");

    // Labels, values, series, stats.
    let (_, j, _) = get(p, "/loki/api/v1/labels");
    assert_eq!(j["data"], serde_json::json!(["app", "env", "service_name"]));
    let (_, j, _) = get(
        p,
        &format!(
            "/loki/api/v1/label/env/values?query={}",
            percent(r#"{app="api"}"#)
        ),
    );
    assert_eq!(j["data"], serde_json::json!(["test"]));
    let (_, j, _) = get(
        p,
        &format!("/loki/api/v1/series?match[]={}", percent(r#"{env=~"t.*"}"#)),
    );
    assert_eq!(
        j["data"],
        serde_json::json!([{"app": "api", "env": "test", "service_name": "api"}])
    );
    let (_, j, t) = get(
        p,
        &format!(
            "/loki/api/v1/index/stats?query={}",
            percent(r#"{app="api"}"#)
        ),
    );
    assert_eq!(j["streams"], 1, "{t}");
    assert_eq!(j["entries"], 10, "{t}");
    let (_, j, t) = get(
        p,
        &format!(
            "/loki/api/v1/index/volume?query={}",
            percent(r#"{app=~".+"}"#)
        ),
    );
    assert_eq!(
        j["data"]["result"][0]["metric"],
        serde_json::json!({"app": "api"}),
        "{t}"
    );

    // Errors in Loki's words.
    let (s, _, t) = get(
        p,
        &format!(
            "/loki/api/v1/query_range?query={}",
            percent(r#"{app="api""#)
        ),
    );
    assert_eq!(s, 400);
    assert!(
        t.starts_with("parse error at line 1, col 11: syntax error: unexpected $end"),
        "{t}"
    );
    let (s, _, t) = get(
        p,
        &format!("/loki/api/v1/query?query={}", percent(r#"{app="api"}"#)),
    );
    assert_eq!(s, 400);
    assert!(
        t.starts_with("log queries are not supported as an instant query type"),
        "{t}"
    );
    let (s, _, t) = get(
        p,
        &format!(
            "/loki/api/v1/query_range?query={}&limit=100000",
            percent(r#"{app="api"}"#)
        ),
    );
    assert_eq!(s, 400);
    assert!(t.starts_with("max entries limit per query exceeded"), "{t}");
    let (s, _, t) = get(
        p,
        &format!(
            "/loki/api/v1/query_range?query={}&start=abc",
            percent(r#"{app="api"}"#)
        ),
    );
    assert_eq!(s, 400);
    assert!(t.starts_with("could not parse 'start' parameter"), "{t}");

    // Canonical form.
    let (_, j, _) = get(
        p,
        &format!(
            "/loki/api/v1/format_query?query={}",
            percent(r#"{ app = "api" }|="x""#)
        ),
    );
    assert_eq!(j["data"], r#"{app="api"} |= "x""#);
}
