//! Tenants as a real process sees them (issue 10): the allow-list, the
//! maximum number of tenants, bounded `tenant` label values on `/metrics`,
//! and per-tenant overrides that inherit the configured limits.

use std::path::Path;

use larch_testkit::procfs;

use super::support::*;

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");

fn push_as(port: u16, tenant: &str, labels: &str, lines: &[String]) -> Response {
    request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[PB, ("X-Scope-OrgID", tenant)],
        &protobuf_lines(labels, now_ns(), lines),
    )
    .unwrap()
}

fn start_with(dir: &Path, yaml: &str) -> StoreProcess {
    let cfg = dir.join("store.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    StoreProcess::start(&dir.join("data"), &["--config", cfg.to_str().unwrap()])
}

fn metrics(port: u16) -> String {
    let r = request(port, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    r.text()
}

/// A query of `tenant` answers 200 with no streams.
fn assert_empty_query(port: u16, tenant: &str) {
    let r = request(
        port,
        "GET",
        "/loki/api/v1/query_range?query=%7Bapp%3D%22x%22%7D&limit=10",
        &[("X-Scope-OrgID", tenant)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["data"]["result"], serde_json::json!([]), "{}", r.text());
    for path in ["/loki/api/v1/labels", "/loki/api/v1/label/app/values"] {
        let r = request(port, "GET", path, &[("X-Scope-OrgID", tenant)], b"").unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
}

/// Nothing on disk names `tenant`: reads and refused pushes create nothing.
fn assert_no_files(data: &Path, tenant: &str) {
    assert!(!data.join("index").join(format!("{tenant}.idx")).exists());
    assert!(!data.join("chunks").join(tenant).exists());
}

#[test]
fn tenant_allow_list_refuses_others_with_401() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_with(dir.path(), "tenant_allow_list: [team-a, team-b]\n");
    let lines = vec!["hello".to_string()];
    let r = push_as(store.http, "team-a", r#"{app="x"}"#, &lines);
    assert_eq!(r.status, 204, "{}", r.text());
    let r = push_as(store.http, "intruder", r#"{app="x"}"#, &lines);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.text(),
        "tenant 'intruder' is not allowed to push to this store: it is not in tenant_allow_list, ask your Larch administrator to add it\n"
    );
    // Without the header the tenant is `fake`, which is not listed either.
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[PB],
        &protobuf_lines(r#"{app="x"}"#, now_ns(), &lines),
    )
    .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    // Reads of an unknown tenant answer empty and create nothing.
    assert_empty_query(store.http, "intruder");
    let data = dir.path().join("data");
    assert_no_files(&data, "intruder");
    assert_no_files(&data, "fake");
    let m = metrics(store.http);
    assert!(
        m.contains(r#"larch_ingester_refused_tenant_pushes_total{reason="not_allowed"} 2"#),
        "{m}"
    );
    assert!(m.contains("larch_ingester_tenants 1"), "{m}");
    assert!(
        !m.contains("intruder"),
        "refused tenants get no series: {m}"
    );
    assert!(store.terminate().success());
}

#[test]
fn max_tenants_refuses_new_tenants_with_429_and_keeps_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines = vec!["hello".to_string()];
    let store = start_with(dir.path(), "max_tenants: 2\n");
    for t in ["t1", "t2"] {
        let r = push_as(store.http, t, r#"{app="x"}"#, &lines);
        assert_eq!(r.status, 204, "{t}: {}", r.text());
    }
    let r = push_as(store.http, "t3", r#"{app="x"}"#, &lines);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        r.text(),
        "maximum number of tenants exceeded when trying to create tenant 't3' (limit: 2), contact your Larch administrator to see if the max_tenants limit can be increased\n"
    );
    // Existing tenants keep pushing; reads of t3 create nothing.
    let r = push_as(store.http, "t1", r#"{app="y"}"#, &lines);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_empty_query(store.http, "t3");
    assert_no_files(&data, "t3");
    // Reads of an unknown tenant do not count towards the limit either.
    assert_empty_query(store.http, "t4");
    let m = metrics(store.http);
    assert!(m.contains("larch_ingester_tenants 2"), "{m}");
    assert!(
        m.contains(r#"larch_ingester_refused_tenant_pushes_total{reason="max_tenants"} 1"#),
        "{m}"
    );
    assert!(store.terminate().success());

    // A lower limit after a restart: the tenants that exist stay usable.
    let store = start_with(dir.path(), "max_tenants: 1\n");
    for t in ["t1", "t2"] {
        let r = push_as(store.http, t, r#"{app="z"}"#, &lines);
        assert_eq!(r.status, 204, "{t}: {}", r.text());
    }
    let r = push_as(store.http, "t3", r#"{app="x"}"#, &lines);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(store.terminate().success());
    assert_no_files(&data, "t3");
}

/// Issue 10: with `limits.max_line_size: 100B` and an override of team-a
/// that only sets `ingestion_rate_mb`, team-a's 200-byte lines were
/// accepted. The override now inherits the configured limit.
#[test]
fn issue_10_override_inherits_max_line_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_with(
        dir.path(),
        "limits:\n  max_line_size: 100B\noverrides:\n  team-a:\n    ingestion_rate_mb: 10\n",
    );
    let long = vec!["x".repeat(200)];
    for t in ["team-a", "team-b"] {
        let r = push_as(store.http, t, r#"{app="x"}"#, &long);
        assert_eq!(r.status, 400, "{t}: {}", r.text());
        assert!(
            r.text().starts_with("max entry size '100' bytes exceeded"),
            "{t}: {}",
            r.text()
        );
    }
    let r = push_as(store.http, "team-a", r#"{app="x"}"#, &["short".to_string()]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(store.terminate().success());
}

/// Issue 10: every new `X-Scope-OrgID` added series to `/metrics` (and
/// opened files). Pushes from 2,000 tenants all succeed, and `/metrics`
/// keeps a bounded number of `tenant` label values.
#[test]
fn two_thousand_tenants_keep_metrics_bounded() {
    const TENANTS: usize = 2000;
    const IN_METRICS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = start_with(
        dir.path(),
        &format!(
            "max_tenants_in_metrics: {IN_METRICS}\noverrides:\n  configured:\n    max_line_size: 1KB\n"
        ),
    );
    let fds_before = procfs::open_fds(store.pid());
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let port = store.http;
            std::thread::spawn(move || {
                for i in (w..TENANTS).step_by(8) {
                    let tenant = format!("tenant-{i:04}");
                    // Lines from 1970 are too old: 400, and discard
                    // series with a tenant label as well.
                    let lines = vec![format!("old line of {tenant}"); 2];
                    let body = protobuf_lines(r#"{app="many"}"#, 1_000, &lines);
                    let r = request(
                        port,
                        "POST",
                        "/loki/api/v1/push",
                        &[PB, ("X-Scope-OrgID", &tenant)],
                        &body,
                    )
                    .unwrap();
                    assert_eq!(r.status, 400, "{tenant}: {}", r.text());
                    let lines = vec![format!("line of {tenant}")];
                    let r = push_as(port, &tenant, r#"{app="many"}"#, &lines);
                    assert_eq!(r.status, 204, "{tenant}: {}", r.text());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let r = push_as(
        store.http,
        "configured",
        r#"{app="many"}"#,
        &["x".to_string()],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let pushed_in = started.elapsed();
    // Printed, not asserted: each tenant's index log stays open for now,
    // so descriptors still grow by one per tenant; bounding them is the
    // lazy opening of index logs, whose tests assert it.
    let fds_after = procfs::open_fds(store.pid());

    let text = metrics(store.http);
    let mut values = std::collections::BTreeSet::new();
    let mut tenant_series = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(start) = line.find("tenant=\"") {
            tenant_series += 1;
            let rest = &line[start + 8..];
            values.insert(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    eprintln!(
        "{TENANTS} tenants pushed in {pushed_in:?}; /metrics: {} bytes, {} series with a tenant label, {} values; open fds {fds_before} before, {fds_after} after",
        text.len(),
        tenant_series,
        values.len()
    );
    // The named tenant, the first IN_METRICS others, and "<other>".
    assert_eq!(values.len(), IN_METRICS + 2, "{values:?}");
    assert!(values.contains("<other>") && values.contains("configured"));
    // Each family has at most one series per value (two reasons for
    // discards), so the size does not grow with the tenants.
    assert!(tenant_series <= 10 * values.len(), "{tenant_series}");
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    // Every one of them is counted, under its own value or "<other>".
    let received: f64 = text
        .lines()
        .filter(|l| l.starts_with("larch_distributor_lines_received_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(received, (TENANTS * 3 + 1) as f64);
    let m = text
        .lines()
        .find(|l| l.starts_with("larch_ingester_tenants "))
        .unwrap();
    assert_eq!(m, format!("larch_ingester_tenants {}", TENANTS + 1));

    // Every push is readable through the API.
    for i in [0, 999, TENANTS - 1] {
        let tenant = format!("tenant-{i:04}");
        let r = request(
            store.http,
            "GET",
            "/loki/api/v1/query_range?query=%7Bapp%3D%22many%22%7D&since=1h",
            &[("X-Scope-OrgID", &tenant)],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.text().contains(&format!("line of {tenant}")),
            "{}",
            r.text()
        );
    }
    assert!(store.terminate().success());
}
