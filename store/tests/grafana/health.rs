//! "Save & test": both of Grafana's data source health checks.

use super::support::*;

/// Grafana >= 10.2, `pkg/tsdb/loki/healthcheck.go` (`CheckHealth`): an
/// instant query `vector(1)+vector(1)` over From=1s, To=4s, sent through
/// the normal data path, so `time` is the range end as a 10-digit number
/// and the usual headers are on. Success needs one frame with one row
/// whose value is 2.
#[test]
fn health_check_new_instant_vector_query() {
    let store = start_store();
    let r = get(
        store.http,
        &format!(
            "/loki/api/v1/query?direction=backward&query={}&time=4000000000",
            percent("vector(1)+vector(1)")
        ),
        GRAFANA_DATA_HEADERS,
    )
    .unwrap();
    let j = r.ok_json();
    assert_eq!(j["status"], "success");
    assert_eq!(j["data"]["resultType"], "vector");
    let result = j["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{}", r.text());
    assert_eq!(result[0]["metric"], serde_json::json!({}));
    // [<unix seconds>, "<value>"]: the time the check asked for, value 2.
    assert_eq!(result[0]["value"][0], serde_json::json!(4_000_000_000u64));
    assert_eq!(result[0]["value"][1], "2");
    // The flag is echoed only on stream results.
    assert!(j["data"].get("encodingFlags").is_none());
}

/// Grafana <= 10.1, `public/app/plugins/datasource/loki/datasource.ts`
/// (`testDatasource`): `GET labels` over the last 10 minutes; the check
/// passes only when `data` is a non-empty array. On an empty store it
/// fails with "Data source connected, but no labels were received", as
/// it does against an empty Loki.
#[test]
fn health_check_old_labels_last_10_minutes() {
    let store = start_store();
    let path = || {
        let now = now_ns();
        format!(
            "/loki/api/v1/labels{}",
            query_string(&[
                ("start", &(now - 600 * SEC).to_string()),
                ("end", &now.to_string())
            ])
        )
    };
    let empty = get(store.http, &path(), &[]).unwrap().ok_json();
    assert_eq!(empty, serde_json::json!({"status": "success", "data": []}));
    push_data(store.http);
    let j = get(store.http, &path(), &[]).unwrap().ok_json();
    assert_eq!(j["status"], "success");
    let labels = j["data"].as_array().unwrap();
    assert!(!labels.is_empty());
    assert!(labels.contains(&serde_json::json!("app")));
}
