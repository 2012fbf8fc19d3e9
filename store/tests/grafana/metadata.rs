//! Metadata resource calls (`pkg/tsdb/loki/loki.go` `callResource`
//! forwards them as `GET <url>/loki/api/v1/<path>?<params>`), made by the
//! label browser and query builder (`LanguageProvider.ts`), the query
//! size hint (`index/stats`), query splitting (`shardQuerySplitting.ts`)
//! and Logs Drilldown's service selection (`index/volume`).

use super::support::*;

#[test]
fn label_browser_series_stats_and_volume() {
    let store = start_store();
    let d = push_data(store.http);
    let p = store.http;
    let (start, end) = ((d.t0 - 60 * SEC).to_string(), now_ns().to_string());
    let range = [("start", start.as_str()), ("end", end.as_str())];

    // LanguageProvider.ts `fetchLabels`: start/end in ns.
    let j = get(
        p,
        &format!("/loki/api/v1/labels{}", query_string(&range)),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(
        j["data"],
        serde_json::json!(["app", "env", "level", "namespace", "pod", "service_name"])
    );
    // Newest backends: `GET labels` with no params at all (schema.go).
    let j = get(p, "/loki/api/v1/labels", &[]).unwrap().ok_json();
    assert!(
        j["data"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("app"))
    );
    // With `query` when the lokiLabelNamesQueryApi toggle narrows the list.
    let mut narrowed = range.to_vec();
    narrowed.push(("query", r#"{namespace="jobs"}"#));
    let j = get(
        p,
        &format!("/loki/api/v1/labels{}", query_string(&narrowed)),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(
        j["data"],
        serde_json::json!(["app", "namespace", "service_name"])
    );

    // `fetchLabelValues`, with and without a selector.
    let j = get(
        p,
        &format!("/loki/api/v1/label/app/values{}", query_string(&range)),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(
        j["data"],
        serde_json::json!(["batch", "checkout", "frontend", "payments"])
    );
    let mut with_query = range.to_vec();
    with_query.push(("query", r#"{namespace="shop"}"#));
    let j = get(
        p,
        &format!("/loki/api/v1/label/app/values{}", query_string(&with_query)),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["data"], serde_json::json!(["checkout", "payments"]));

    // shardQuerySplitting.ts asks for `__stream_shard__` values first; an
    // empty list makes it fall back to plain querying.
    let j = get(
        p,
        &format!(
            "/loki/api/v1/label/__stream_shard__/values{}",
            query_string(&with_query)
        ),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["data"], serde_json::json!([]));

    // `series` with `match[]` (Grafana) and `match` (logcli).
    for key in ["match[]", "match"] {
        let mut m = range.to_vec();
        m.push((key, r#"{namespace="shop"}"#));
        let j = get(p, &format!("/loki/api/v1/series{}", query_string(&m)), &[])
            .unwrap()
            .ok_json();
        assert_eq!(j["status"], "success");
        let data = j["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{key}: {j}");
        assert!(data.iter().all(|s| s["namespace"] == "shop"));
        assert!(
            data.iter()
                .any(|s| s["app"] == "payments" && s["level"] == "error")
        );
    }

    // Query editor's size hint: one call per selector, no status wrapper.
    let mut s = range.to_vec();
    s.push(("query", r#"{namespace="shop"}"#));
    let j = get(
        p,
        &format!("/loki/api/v1/index/stats{}", query_string(&s)),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["streams"], 2);
    assert_eq!(j["entries"], 70);
    assert!(j["chunks"].as_u64().unwrap() >= 2);
    assert!(j["bytes"].as_u64().unwrap() > 0);
    assert!(j.get("status").is_none());

    // Drilldown's ServiceSelectionScene: volume per service, RFC3339 times.
    let (s3, e3) = (rfc3339(d.t0 - 60 * SEC), rfc3339(now_ns()));
    let j = get(
        p,
        &format!(
            "/loki/api/v1/index/volume{}",
            query_string(&[
                ("query", r#"{service_name=~".+"}"#),
                ("start", &s3),
                ("end", &e3),
                ("limit", "5000"),
            ])
        ),
        &[("X-Query-Tags", "Source=grafana-lokiexplore-app")],
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["resultType"], "vector");
    let result = j["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 4);
    for r in result {
        assert_eq!(r["metric"].as_object().unwrap().len(), 1, "{r}");
        assert!(r["metric"]["service_name"].is_string());
        assert!(r["value"][0].is_number());
        assert!(r["value"][1].as_str().unwrap().parse::<u64>().unwrap() > 0);
    }
    let j = get(
        p,
        &format!(
            "/loki/api/v1/index/volume_range{}",
            query_string(&[
                ("query", r#"{service_name=~".+"}"#),
                ("start", &s3),
                ("end", &e3),
                ("step", "60"),
                ("targetLabels", "namespace"),
            ])
        ),
        &[],
    )
    .unwrap()
    .ok_json();
    assert_eq!(j["data"]["resultType"], "matrix");
    let namespaces: Vec<&str> = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces.len(), 3);
    for ns in ["shop", "web", "jobs"] {
        assert!(namespaces.contains(&ns));
    }
}
