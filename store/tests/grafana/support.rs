//! The suite's harness: a `larch-store` process (the test kit's) with the
//! suite's limits, the headers Grafana's backend sends, and the data set
//! every module pushes through the real push API.

pub use larch_testkit::http::{get, percent, query_string, request};
pub use larch_testkit::{SEC, StoreProcess, now_ns};

/// Starts a store with ingestion limits high enough for the suite and
/// without fsync (the suite is about the query API).
pub fn start_store() -> StoreProcess {
    StoreProcess::builder()
        .config(
            "limits:\n  ingestion_rate_mb: 1000\n  ingestion_burst_size_mb: 1000\nwal:\n  fsync: false\n",
        )
        .start()
}

/// The headers Grafana's backend puts on every data query
/// (`pkg/tsdb/loki/api.go`, `makeDataRequest`).
pub const GRAFANA_DATA_HEADERS: &[(&str, &str)] = &[
    ("X-Loki-Response-Encoding-Flags", "categorize-labels"),
    ("User-Agent", "Grafana/12.0.0"),
];

/// RFC3339 with milliseconds, as Logs Drilldown sends times.
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap()
    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    .to_string()
}

/// A JSON v1 push (`/loki/api/v1/push`); values may carry structured
/// metadata as a third element.
pub fn push_json(port: u16, body: &serde_json::Value) {
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// A snappy protobuf push of `(ts, line)` entries on one stream.
pub fn push_proto(port: u16, labels: &str, entries: &[(i64, String)]) {
    let body = larch_testkit::push::protobuf([(labels, entries.iter().cloned())]);
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[larch_testkit::push::PROTOBUF],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The data set: four services, lines with and without level fields.
///
/// | stream | lines | format | levels |
/// |---|---|---|---|
/// | `{app="checkout", env="prod", namespace="shop", pod="checkout-7d9f"}` | 60, every 2 s | logfmt, `trace_id` metadata | 48 info, 12 error (in the line) |
/// | `{app="payments", env="prod", namespace="shop", level="error"}` | 10 | text | `level` label |
/// | `{app="frontend", env="prod", namespace="web"}` | 30 | JSON (protobuf push) | 20 info, 10 warn |
/// | `{app="batch", namespace="jobs"}` | 20 | plain text | 2 with "ERROR", 18 none |
pub struct Data {
    /// First entry's time.
    pub t0: i64,
    /// One past the last entry's time.
    pub t_end: i64,
    /// The checkout lines (ts, line), oldest first.
    pub checkout: Vec<(i64, String)>,
}

/// Held by tests that measure latency or flood the store, so that they
/// do not run at the same time (the suite's tests run in parallel on
/// machines with few cores).
pub static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes [`TIMING`] (a failed test does not poison it for the others).
pub async fn timing() -> tokio::sync::MutexGuard<'static, ()> {
    TIMING.lock().await
}

pub fn push_data(port: u16) -> Data {
    let t0 = now_ns() - 5 * 60 * SEC;
    let checkout: Vec<(i64, String)> = (0..60)
        .map(|i| {
            let line = if i % 5 == 4 {
                format!(
                    "level=error msg=\"payment declined\" order_id={} duration={}ms status=402",
                    1000 + i,
                    10 + i % 7
                )
            } else {
                format!(
                    "level=info msg=\"order placed\" order_id={} duration={}ms status=200",
                    1000 + i,
                    10 + i % 7
                )
            };
            (t0 + i * 2 * SEC, line)
        })
        .collect();
    let values: Vec<serde_json::Value> = checkout
        .iter()
        .enumerate()
        .map(|(i, (ts, l))| serde_json::json!([ts.to_string(), l, {"trace_id": format!("trace-{}", i % 3)}]))
        .collect();
    push_json(
        port,
        &serde_json::json!({"streams": [{
            "stream": {"app": "checkout", "env": "prod", "namespace": "shop", "pod": "checkout-7d9f"},
            "values": values,
        }]}),
    );
    let payments: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!([
                (t0 + SEC / 2 + i * 10 * SEC).to_string(),
                format!("card rejected code=51 amount={i}.50")
            ])
        })
        .collect();
    push_json(
        port,
        &serde_json::json!({"streams": [{
            "stream": {"app": "payments", "env": "prod", "namespace": "shop", "level": "error"},
            "values": payments,
        }]}),
    );
    let frontend: Vec<(i64, String)> = (0..30)
        .map(|i| {
            let level = if i % 3 == 0 { "warn" } else { "info" };
            let path = if i % 2 == 0 { "/cart" } else { "/checkout" };
            let status = if i % 5 == 0 { 503 } else { 200 };
            (
                t0 + SEC / 4 + i * 4 * SEC,
                format!(
                    r#"{{"level":"{level}","msg":"request served","req":{{"path":"{path}","status":{status},"took":"{}ms"}},"user-agent":"Mozilla/5.0"}}"#,
                    100 + i
                ),
            )
        })
        .collect();
    push_proto(
        port,
        r#"{app="frontend", env="prod", namespace="web"}"#,
        &frontend,
    );
    let batch: Vec<(i64, String)> = (0..20)
        .map(|i| {
            let line = if i % 10 == 9 {
                format!("job {i} failed: ERROR timeout after 30s")
            } else {
                format!("processed {} records in {}s", 100 + i, 3 + i % 4)
            };
            (t0 + SEC / 8 + i * 6 * SEC, line)
        })
        .collect();
    push_proto(port, r#"{app="batch", namespace="jobs"}"#, &batch);
    Data {
        t0,
        t_end: t0 + 120 * SEC + SEC,
        checkout,
    }
}
