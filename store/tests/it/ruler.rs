//! The ruler through the real `larch-store` process: the rules API as
//! Grafana and rule tools use it, Prometheus' JSON shapes, and end to end
//! with a real Prometheus and Alertmanager (Debian's packages, installed
//! when missing): alerts fire, reach Alertmanager, survive a restart and
//! resolve; recording rules reach Prometheus by remote write; Prometheus
//! scrapes the store and the agent with the shipped scrape configuration.

use std::path::Path;
use std::time::{Duration, Instant};

use larch_testkit::prometheus::{AlertmanagerProcess, PrometheusProcess};
use larch_testkit::{AgentProcess, free_port, now_ns, wait_for};
use serde_json::{Value, json};

use larch_testkit::StoreBuilder;

use super::support::{StoreProcess, request};

const GROUP: &str = r#"name: checkout
interval: 1s
rules:
  - alert: CheckoutErrors
    expr: sum by (namespace, app) (count_over_time({namespace="shop", app="checkout"} |= "error" [3s])) > 0
    for: 2s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.app }} in {{ $labels.namespace }}: {{ $value }} errors in 3s"
      cluster: "{{ $externalLabels.cluster }}"
  - record: shop:log_lines:count10m
    expr: sum by (app) (count_over_time({namespace="shop"}[10m]))
"#;

/// Pushes `lines` to one stream (JSON); the status.
fn push(port: u16, labels: Value, lines: &[&str]) -> Option<u16> {
    let now = now_ns();
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(now + i as i64).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": labels, "values": values}]}).to_string();
    request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .ok()
    .map(|r| r.status)
}

/// A store whose ruler evaluates its groups and polls for rule files
/// every second; `ruler` adds keys under `ruler:` (indented by two
/// spaces), `rest` top-level keys.
fn ruler_node(ruler: &str, rest: &str) -> StoreBuilder {
    StoreProcess::builder().config(format!(
        "ruler:\n  evaluation_interval: 1s\n  poll_interval: 1s\n{ruler}{rest}"
    ))
}

/// The `ruler:` keys of a ruler evaluating its rules through the query
/// API at `address`; `extra` adds keys under `query_frontend:` (indented
/// by six spaces).
fn remote_evaluation(address: &str, extra: &str) -> String {
    format!(
        "  evaluation:\n    mode: remote\n    query_frontend:\n      address: {address}\n{extra}"
    )
}

/// A request to the rules API as `tenant` (a YAML body): the status and
/// body.
fn with_tenant(port: u16, method: &str, path: &str, tenant: &str, body: &str) -> (u16, String) {
    let r = request(
        port,
        method,
        path,
        &[
            ("X-Scope-OrgID", tenant),
            ("Content-Type", "application/yaml"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    (r.status, r.text())
}

/// Posts a rule group to namespace `ns` (as it goes in the path) of
/// `tenant`: the status and body.
fn post_group(port: u16, ns: &str, body: &str, tenant: &str) -> (u16, String) {
    with_tenant(
        port,
        "POST",
        &format!("/loki/api/v1/rules/{ns}"),
        tenant,
        body,
    )
}

/// Posts a rule group to namespace `ns` of tenant `fake`, which must be
/// taken (202).
fn post_ok(port: u16, ns: &str, group: &str) {
    let (s, t) = post_group(port, ns, group, "fake");
    assert_eq!(s, 202, "{t}");
}

fn get(port: u16, path: &str) -> larch_testkit::http::Response {
    larch_testkit::http::get(port, path, &[]).unwrap()
}

fn ruler_alerts(port: u16) -> Vec<Value> {
    let r = get(port, "/prometheus/api/v1/alerts").ok_json();
    r["data"]["alerts"].as_array().cloned().unwrap_or_default()
}

/// Checks `v` is an object with exactly `keys`, each of the JSON type
/// named (`s`tring, `n`umber, `a`rray, `o`bject).
fn shape(v: &Value, keys: &[(&str, char)], what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    want.sort_unstable();
    assert_eq!(got, want, "{what}: keys of {v}");
    for (k, t) in keys {
        let x = &obj[*k];
        let ok = match t {
            's' => x.is_string(),
            'n' => x.is_number(),
            'a' => x.is_array(),
            'o' => x.is_object(),
            _ => unreachable!(),
        };
        assert!(ok, "{what}.{k} should be of type {t}: {x}");
    }
}

fn rfc3339(s: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(s.as_str().unwrap())
        .unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"))
}

#[test]
fn rules_api_speaks_lokis_and_prometheus_shapes() {
    let store = ruler_node("", "").start();
    let port = store.http;
    // Grafana's discovery: a 404 whose text says the ruler is there.
    let r = get(port, "/loki/api/v1/rules");
    assert_eq!((r.status, r.text()), (404, "no rule groups found\n".into()));
    let r = get(port, "/api/prom/rules/test/test");
    assert_eq!((r.status, r.text()), (404, "group does not exist\n".into()));
    let r = get(port, "/loki/api/v1/rules/test");
    assert_eq!((r.status, r.text()), (404, "no rule groups found\n".into()));
    // Bad groups, with Loki's words.
    let (s, t) = post_group(
        port,
        "shop",
        "name: g\nrules:\n  - alert: A\n    expr: 'sum(rate({a=\"1\"}[1m])'\n",
        "fake",
    );
    assert_eq!(s, 400);
    assert!(
        t.starts_with("could not parse expression for alert 'A' in group 'g': parse error"),
        "{t}"
    );
    let (s, t) = post_group(
        port,
        "shop",
        "name: g\nrules:\n  - expr: vector(1)\n  - record: r\n    for: 1m\n    expr: vector(1)\n",
        "fake",
    );
    assert_eq!(s, 400);
    assert_eq!(
        t,
        "one of 'record' or 'alert' must be set, invalid field 'for' in recording rule\n"
    );
    let (s, t) = post_group(port, "%2E%2E", GROUP, "fake");
    assert_eq!(
        (s, t.as_str()),
        (400, "invalid namespace: path traversal not allowed\n")
    );
    let (s, _) = post_group(port, "shop", "name: [\n", "fake");
    assert_eq!(s, 400);
    // A good group.
    let group = "name: vec\ninterval: 1s\nrules:\n  - alert: Always\n    expr: vector(2) > 1\n    labels: {severity: info}\n    annotations: {summary: \"value {{ $value }}\"}\n  - record: two\n    expr: vector(2)\n";
    let (s, t) = post_group(port, "team%20a", group, "fake");
    assert_eq!(
        (s, t.as_str()),
        (
            202,
            r#"{"status":"success","data":null,"errorType":"","error":""}"#
        )
    );
    assert!(store.data_dir().join("rules/fake/team a.yaml").exists());
    let r = get(port, "/loki/api/v1/rules");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/yaml"));
    let ns = larch_rules::read_namespaces(&r.text()).unwrap();
    assert_eq!(ns["team a"], vec![larch_rules::read_group(group).unwrap()]);
    let r = get(port, "/loki/api/v1/rules/team%20a/vec");
    assert_eq!(larch_rules::read_group(&r.text()).unwrap().name, "vec");
    let r = get(port, "/api/prom/rules/team%20a");
    assert!(
        larch_rules::read_namespaces(&r.text())
            .unwrap()
            .contains_key("team a")
    );
    // Another tenant sees nothing of it.
    let r = larch_testkit::http::get(port, "/loki/api/v1/rules", &[("X-Scope-OrgID", "other")])
        .unwrap();
    assert_eq!(r.status, 404);

    // A file edited by hand is picked up at the next poll.
    let hand = store.data_dir().join("rules/fake/hand.yaml");
    std::fs::write(&hand, "groups:\n  - name: byhand\n    interval: 1s\n    rules:\n      - record: three\n        expr: vector(3)\n").unwrap();
    let mut groups = Vec::new();
    wait_for(Duration::from_secs(15), "both groups evaluated", || {
        let body = get(port, "/prometheus/api/v1/rules").ok_json();
        groups = body["data"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        groups.len() == 2
            && groups
                .iter()
                .all(|g| g["lastEvaluation"] != "0001-01-01T00:00:00Z")
            && groups.iter().any(|g| {
                g["rules"].as_array().is_some_and(|rs| {
                    rs.iter()
                        .any(|r| r["alerts"].as_array().is_some_and(|a| !a.is_empty()))
                })
            })
    });
    // Prometheus' documented shape, field by field (Grafana reads it).
    let body = get(port, "/prometheus/api/v1/rules").ok_json();
    shape(
        &body,
        &[
            ("status", 's'),
            ("data", 'o'),
            ("errorType", 's'),
            ("error", 's'),
        ],
        "envelope",
    );
    assert_eq!(body["status"], "success");
    let g = body["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "vec")
        .unwrap()
        .clone();
    shape(
        &g,
        &[
            ("name", 's'),
            ("file", 's'),
            ("rules", 'a'),
            ("interval", 'n'),
            ("limit", 'n'),
            ("lastEvaluation", 's'),
            ("evaluationTime", 'n'),
        ],
        "group",
    );
    assert_eq!(g["file"], "team a");
    assert_eq!(g["interval"], 1.0);
    rfc3339(&g["lastEvaluation"]);
    let alerting = &g["rules"][0];
    shape(
        alerting,
        &[
            ("state", 's'),
            ("name", 's'),
            ("query", 's'),
            ("duration", 'n'),
            ("keepFiringFor", 'n'),
            ("labels", 'o'),
            ("annotations", 'o'),
            ("alerts", 'a'),
            ("health", 's'),
            ("lastError", 's'),
            ("type", 's'),
            ("lastEvaluation", 's'),
            ("evaluationTime", 'n'),
        ],
        "alerting rule",
    );
    assert_eq!(
        (
            alerting["type"].as_str(),
            alerting["state"].as_str(),
            alerting["health"].as_str()
        ),
        (Some("alerting"), Some("firing"), Some("ok"))
    );
    assert_eq!(alerting["name"], "Always");
    assert_eq!(alerting["query"], "vector(2) > 1");
    assert_eq!(alerting["labels"], json!({"severity": "info"}));
    let alert = &alerting["alerts"][0];
    shape(
        alert,
        &[
            ("labels", 'o'),
            ("annotations", 'o'),
            ("state", 's'),
            ("activeAt", 's'),
            ("value", 's'),
        ],
        "alert",
    );
    assert_eq!(
        alert["labels"],
        json!({"alertname": "Always", "severity": "info"})
    );
    assert_eq!(alert["annotations"], json!({"summary": "value 2"}));
    assert_eq!(alert["value"], "2e+00");
    rfc3339(&alert["activeAt"]);
    let recording = &g["rules"][1];
    shape(
        recording,
        &[
            ("name", 's'),
            ("query", 's'),
            ("labels", 'o'),
            ("health", 's'),
            ("lastError", 's'),
            ("type", 's'),
            ("lastEvaluation", 's'),
            ("evaluationTime", 'n'),
        ],
        "recording rule",
    );
    assert_eq!(recording["type"], "recording");
    // Filters, and Prometheus' error envelope.
    let only = get(port, "/prometheus/api/v1/rules?type=record").ok_json();
    for g in only["data"]["groups"].as_array().unwrap() {
        assert!(
            g["rules"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["type"] == "recording")
        );
    }
    let only = get(
        port,
        "/prometheus/api/v1/rules?file[]=hand&rule_name[]=three",
    )
    .ok_json();
    assert_eq!(only["data"]["groups"].as_array().unwrap().len(), 1);
    let r = get(port, "/prometheus/api/v1/rules?type=bogus");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"status": "error", "data": null, "errorType": "bad_data", "error": "not supported value \"bogus\""})
    );
    let alerts = get(port, "/prometheus/api/v1/alerts").ok_json();
    shape(&alerts["data"], &[("alerts", 'a')], "alerts data");
    shape(
        &alerts["data"]["alerts"][0],
        &[
            ("labels", 'o'),
            ("annotations", 'o'),
            ("state", 's'),
            ("activeAt", 's'),
            ("value", 's'),
        ],
        "alert",
    );
    // Deletes.
    let del = |path: &str| request(port, "DELETE", path, &[], b"").unwrap();
    let r = del("/loki/api/v1/rules/team%20a/vec");
    assert_eq!(r.status, 202);
    let r = del("/loki/api/v1/rules/team%20a/vec");
    assert_eq!((r.status, r.text()), (404, "group does not exist\n".into()));
    let r = del("/loki/api/v1/rules/nothing");
    assert_eq!(
        (r.status, r.text()),
        (404, "group namespace does not exist\n".into())
    );
    let r = del("/loki/api/v1/rules/hand");
    assert_eq!(r.status, 202);
    assert!(!hand.exists());
    let r = get(port, "/prometheus/api/v1/rules").ok_json();
    assert_eq!(r["data"]["groups"], json!([]));
    assert_eq!(
        get(port, "/prometheus/api/v1/alerts").ok_json()["data"]["alerts"],
        json!([])
    );
    // The ruler's metrics are served.
    let m = larch_testkit::metrics::scrape(port);
    assert!(
        m.get("larch_ruler_evaluations_total{tenant=\"fake\"}")
            .is_some_and(|v| *v >= 2.0),
        "{m:?}"
    );
    assert!(store.terminate().success());
}

/// The shipped Prometheus configuration with Kubernetes discovery swapped
/// for a file of targets carrying the same `__meta_kubernetes_*` labels
/// (Debian's Prometheus has no Kubernetes discovery), the shipped alert
/// rules loaded, everything every second.
fn prometheus_config(repo: &Path) -> String {
    let text = std::fs::read_to_string(repo.join("deploy/prometheus/prometheus.yml")).unwrap();
    let mut cfg: Value = larch_config::yaml::from_str(&text).unwrap();
    cfg["global"] = json!({"scrape_interval": "1s", "evaluation_interval": "1s"});
    cfg.as_object_mut().unwrap().remove("alerting");
    cfg["rule_files"] = json!([repo
        .join("deploy/helm/larch/files/prometheus/larch-alerts.yaml")
        .to_string_lossy()]);
    for job in cfg["scrape_configs"].as_array_mut().unwrap() {
        let job = job.as_object_mut().unwrap();
        assert_eq!(
            job.remove("kubernetes_sd_configs"),
            Some(json!([{"role": "pod"}]))
        );
        job.insert(
            "file_sd_configs".into(),
            json!([{"files": ["{dir}/targets.json"], "refresh_interval": "1s"}]),
        );
    }
    cfg.to_string()
}

fn target(port: u16, pod: &str, component: &str, port_name: &str) -> Value {
    json!({"targets": [format!("127.0.0.1:{port}")], "labels": {
        "__meta_kubernetes_namespace": "larch",
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_node_name": "node-1",
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "larch",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_name": component,
    }})
}

/// Waits for `promql`'s single value to be `want`.
fn wait_value(prom: &PrometheusProcess, promql: &str, want: f64) {
    let mut last = None;
    wait_for(
        Duration::from_secs(30),
        &format!("{promql} == {want}"),
        || {
            last = prom.scalar(promql);
            last == Some(want)
        },
    );
}

#[test]
fn ruler_end_to_end_with_prometheus_and_alertmanager() {
    let started = Instant::now();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let am = AlertmanagerProcess::start(
        "route:\n  receiver: sink\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: sink\n",
    );
    let (store_port, agent_port) = (free_port(), free_port());
    let prom = PrometheusProcess::start(&prometheus_config(&repo));
    // Written whole (renamed into place): discovery reads it as it appears.
    let tmp = prom.dir().join("targets.tmp");
    std::fs::write(
        &tmp,
        json!([
            target(store_port, "larch-store-0", "store", "http"),
            target(agent_port, "larch-agent-x1", "agent", "http-metrics"),
        ])
        .to_string(),
    )
    .unwrap();
    std::fs::rename(&tmp, prom.dir().join("targets.json")).unwrap();
    let ruler = format!(
        "  alertmanager_url: {}\n  external_labels:\n    cluster: e2e\n  remote_write:\n    enabled: true\n    url: {}/api/v1/write\n",
        am.addr(),
        prom.addr()
    );
    let store = ruler_node(&ruler, "").http_port(store_port).start();
    post_ok(store_port, "shop", GROUP);

    let shop = |app: &str| json!({"namespace": "shop", "app": app});
    assert_eq!(push(store_port, shop("cart"), &["a"; 7]), Some(204));
    // Errors every 300 ms until Alertmanager has the alert.
    let mut checkout = 0u64;
    let push_error = |n: &mut u64| {
        if push(
            store_port,
            shop("checkout"),
            &["level=error msg=\"payment failed\""],
        ) == Some(204)
        {
            *n += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let firing = |am: &AlertmanagerProcess| {
        am.alerts().into_iter().find(|a| {
            a["labels"]["alertname"] == "CheckoutErrors" && a["status"]["state"] == "active"
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let sent = loop {
        push_error(&mut checkout);
        if let Some(a) = firing(&am) {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no alert reached Alertmanager:\n{}",
            store.stderr()
        );
    };
    assert_eq!(
        sent["labels"],
        json!({"alertname": "CheckoutErrors", "app": "checkout", "namespace": "shop", "severity": "page", "cluster": "e2e"})
    );
    let summary = sent["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("checkout in shop: ") && summary.ends_with(" errors in 3s"),
        "{summary}"
    );
    assert_eq!(sent["annotations"]["cluster"], "e2e");
    let starts_at = sent["startsAt"].clone();
    assert!(rfc3339(&sent["endsAt"]) > chrono::Utc::now(), "{sent}");
    let before = ruler_alerts(store_port);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["state"], "firing");
    let active_at = before[0]["activeAt"].clone();

    // kill -9 while it fires (after the state file caught up), and back.
    for _ in 0..5 {
        push_error(&mut checkout);
    }
    let accepted_before_restart = checkout;
    store.kill9();
    store.restart();
    let mut after_restart = 0u64;
    // For longer than `for`: every answer shows the same firing alert,
    // never a pending one that would fire (and page) again.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let now = ruler_alerts(store_port);
        assert_eq!(now.len(), 1, "after the restart: {now:?}");
        assert_eq!(now[0]["state"], "firing", "{now:?}");
        assert_eq!(now[0]["activeAt"], active_at, "{now:?}");
        push_error(&mut after_restart);
    }
    let still = firing(&am).expect("the alert stays active in Alertmanager across the restart");
    assert_eq!(still["startsAt"], starts_at);
    assert!(rfc3339(&still["endsAt"]) > chrono::Utc::now(), "{still}");
    checkout += after_restart;

    // The errors stop: the alert resolves, in the ruler and in Alertmanager.
    wait_for(Duration::from_secs(20), "the alert resolved", || {
        ruler_alerts(store_port).is_empty()
            && am.alerts().iter().all(|a| {
                a["labels"]["alertname"] != "CheckoutErrors"
                    || rfc3339(&a["endsAt"]) <= chrono::Utc::now()
            })
    });

    // The recording rule's series in Prometheus: what was pushed.
    wait_value(
        &prom,
        r#"shop:log_lines:count10m{app="cart", cluster="e2e"}"#,
        7.0,
    );
    wait_value(
        &prom,
        r#"shop:log_lines:count10m{app="checkout"}"#,
        checkout as f64,
    );
    wait_value(
        &prom,
        r#"max_over_time(ALERTS{alertname="CheckoutErrors", alertstate="firing"}[10m])"#,
        1.0,
    );
    assert!(accepted_before_restart > 0 && after_restart > 0);

    // An agent ships a pod's log; Prometheus scrapes both with the shipped
    // scrape job and sees what was sent.
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("pods/shop_web-0_0000/app");
    std::fs::create_dir_all(&logs).unwrap();
    let ts = larch_store::validate::rfc3339(now_ns());
    let text: String = (0..5)
        .map(|i| format!("{ts} stdout F agent line {i}\n"))
        .collect();
    std::fs::write(logs.join("0.log"), text).unwrap();
    let store_url = store.addr();
    let agent = AgentProcess::builder()
        .http_port(agent_port)
        .args([
            "--pods-dir".as_ref(),
            dir.path().join("pods").as_os_str(),
            "--positions".as_ref(),
            dir.path().join("positions.yaml").as_os_str(),
        ])
        .args([
            "--store",
            &store_url,
            "--node-name",
            "node-1",
            "--batch-wait",
            "100ms",
        ])
        .env("KUBERNETES_SERVICE_HOST", "")
        .start();
    agent.wait_sent(5, Duration::from_secs(30));
    wait_value(
        &prom,
        r#"sum(larch_agent_sent_entries_total{job="larch-agent", namespace="larch"})"#,
        5.0,
    );
    // The store restarted, so its counter holds what came after.
    wait_value(
        &prom,
        r#"sum(larch_distributor_lines_received_total{job="larch-store", pod="larch-store-0"})"#,
        (after_restart + 5) as f64,
    );
    // The dashboards and alerts tell the processes apart by container.
    for (job, container) in [("larch-store", "store"), ("larch-agent", "agent")] {
        wait_value(
            &prom,
            &format!(r#"count(larch_build_info{{job="{job}", container="{container}"}} == 1)"#),
            1.0,
        );
        wait_value(
            &prom,
            &format!(r#"count(process_resident_memory_bytes{{container="{container}"}} > 1e6)"#),
            1.0,
        );
        wait_value(
            &prom,
            &format!(r#"count(process_open_fds{{container="{container}"}} > 0)"#),
            1.0,
        );
    }
    // The shipped alert rules evaluate against the real series.
    let rules = larch_testkit::http::get(prom.port, "/api/v1/rules", &[])
        .unwrap()
        .ok_json();
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_ne!(r["health"], "err", "{r}");
        }
    }
    assert!(store.terminate().success());
    eprintln!("end-to-end ruler test took {:?}", started.elapsed());
}

/// A metric's value on the store's `/metrics` (0 when absent).
fn metric(port: u16, series: &str) -> f64 {
    larch_testkit::metrics::scrape(port)
        .get(series)
        .copied()
        .unwrap_or(0.0)
}

#[test]
fn alerts_go_to_every_alertmanager_and_a_refusing_one_is_counted() {
    let config = "route:\n  receiver: sink\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: sink\n";
    let (a, b) = (
        AlertmanagerProcess::start(config),
        AlertmanagerProcess::start(config),
    );
    // A port nothing listens on: every post is refused.
    let refused = format!("http://127.0.0.1:{}", free_port());
    let ruler = format!(
        "  notification_timeout: 2s\n  alertmanager_url: {}, {refused}, {}\n",
        a.addr(),
        b.addr()
    );
    let store = ruler_node(&ruler, "").start();
    let group = "name: always\ninterval: 1s\nrules:\n  - alert: AlwaysOn\n    expr: vector(3) > 1\n    labels: {severity: info}\n    annotations: {summary: \"value {{ $value }}\"}\n";
    post_ok(store.http, "ops", group);
    for am in [&a, &b] {
        wait_for(
            Duration::from_secs(20),
            "the alert in every Alertmanager",
            || {
                am.alerts().iter().any(|x| {
                    x["labels"] == json!({"alertname": "AlwaysOn", "severity": "info"})
                        && x["annotations"] == json!({"summary": "value 3"})
                        && x["status"]["state"] == "active"
                })
            },
        );
    }
    // Each reachable Alertmanager counts what it took; the refusing one
    // counts failures, and did not keep the others from being served.
    let port = store.http;
    let sent = |url: &str| {
        metric(
            port,
            &format!("larch_ruler_notifications_sent_total{{alertmanager=\"{url}\"}}"),
        )
    };
    wait_for(Duration::from_secs(20), "the refused posts counted", || {
        metric(
            port,
            &format!("larch_ruler_notification_errors_total{{alertmanager=\"{refused}\"}}"),
        ) >= 1.0
    });
    assert!(sent(&a.addr()) >= 1.0 && sent(&b.addr()) >= 1.0);
    assert_eq!(sent(&refused), 0.0);
    assert!(
        store.stderr().contains("Alertmanager did not take alerts"),
        "{}",
        store.stderr()
    );
    assert!(store.terminate().success());
}

#[test]
fn remote_write_retries_with_backoff_until_the_receiver_is_back() {
    let prom = PrometheusProcess::start("global:\n  scrape_interval: 1m\n");
    // The receiver is down from the start: every request is refused.
    prom.terminate();
    let ruler = format!(
        "  remote_write:\n    enabled: true\n    clients:\n      prom:\n        url: {}/api/v1/write\n        queue_config:\n          min_backoff: 50ms\n          max_backoff: 400ms\n",
        prom.addr()
    );
    let store = ruler_node(&ruler, "").start();
    let port = store.http;
    post_ok(
        port,
        "ops",
        "name: rec\ninterval: 1s\nrules:\n  - record: larch_test:seven\n    expr: vector(7)\n",
    );
    let retries = || {
        metric(
            port,
            "larch_ruler_remote_write_retries_total{client=\"prom\"}",
        )
    };
    let queued = || {
        metric(
            port,
            "larch_ruler_remote_write_queue_length{client=\"prom\"}",
        )
    };
    let sent = || {
        metric(
            port,
            "larch_ruler_remote_write_samples_sent_total{client=\"prom\"}",
        )
    };
    // Three evaluations' samples wait, retried with growing pauses.
    wait_for(
        Duration::from_secs(20),
        "samples waiting while retries go on",
        || queued() >= 2.0 && retries() >= 4.0,
    );
    let (r1, t1) = (retries(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let per_second = (retries() - r1) / t1.elapsed().as_secs_f64();
    // Backoff, not a busy loop: at most one retry per 400 ms (plus the
    // request in flight) once the pause has grown to max_backoff.
    assert!(
        per_second > 0.5 && per_second <= 4.0,
        "{per_second} retries per second"
    );
    assert_eq!(sent(), 0.0);
    let outage_end_s = chrono::Utc::now().timestamp();
    // Recorded while it was down, as the ruler's own count tells.
    let recorded_in_outage = metric(port, "larch_ruler_evaluations_total{tenant=\"fake\"}");
    assert!(recorded_in_outage >= 3.0);
    prom.restart();
    wait_for(Duration::from_secs(20), "the queue drained", || {
        queued() == 0.0 && sent() >= recorded_in_outage
    });
    // Every sample recorded during the outage reached Prometheus, with its
    // own timestamp.
    let promql = format!("count_over_time(larch_test:seven[10m] @ {outage_end_s})");
    wait_for(
        Duration::from_secs(10),
        "the outage's samples in Prometheus",
        || {
            prom.scalar(&promql)
                .is_some_and(|n| n >= recorded_in_outage - 1.0)
        },
    );
    assert_eq!(prom.scalar("larch_test:seven"), Some(7.0));
    // Nothing was dropped.
    let m = larch_testkit::metrics::scrape(port);
    assert!(
        m.keys().all(
            |k| !k.starts_with("larch_ruler_remote_write_samples_failed_total") || m[k] == 0.0
        ),
        "{m:?}"
    );
    assert!(store.terminate().success());
}

#[test]
fn a_group_that_overruns_its_interval_counts_missed_evaluations() {
    let store = ruler_node("", "").start();
    let port = store.http;
    let missed = || metric(port, "larch_ruler_iterations_missed_total{tenant=\"fake\"}");
    // A cheap group at 1 s misses nothing.
    post_ok(
        port,
        "ops",
        "name: quick\ninterval: 1s\nrules:\n  - record: one\n    expr: vector(1)\n",
    );
    wait_for(Duration::from_secs(15), "three evaluations", || {
        metric(port, "larch_ruler_evaluations_total{tenant=\"fake\"}") >= 3.0
    });
    assert_eq!(missed(), 0.0);
    // Lines enough that one evaluation, parsing each of them, takes longer
    // than two of its 2 ms turns.
    let lines: Vec<String> = (0..20_000)
        .map(|i| format!("level=info id={i} msg=\"request served in {i}ms\""))
        .collect();
    for chunk in lines.chunks(1000) {
        let r = request(
            port,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &larch_testkit::push::protobuf_lines("{app=\"slow\"}", now_ns(), chunk),
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    post_ok(
        port,
        "ops",
        "name: slow\ninterval: 2ms\nrules:\n  - record: served\n    expr: sum(count_over_time({app=\"slow\"} | logfmt | id > 10 [1h]))\n",
    );
    wait_for(
        Duration::from_secs(15),
        "missed evaluations counted",
        || missed() >= 1.0,
    );
    // The group kept running, and its evaluations do take longer than
    // its interval.
    let body = get(port, "/prometheus/api/v1/rules").ok_json();
    let slow = body["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "slow")
        .cloned()
        .unwrap();
    assert_eq!(slow["interval"], 0.002);
    assert_eq!(slow["rules"][0]["health"], "ok", "{slow}");
    assert!(slow["evaluationTime"].as_f64().unwrap() > 0.004, "{slow}");
    assert!(store.terminate().success());
}

#[test]
fn a_ruler_without_data_evaluates_through_another_nodes_query_api() {
    // The node that holds the lines runs no ruler: no rules API, and
    // /services does not list one.
    let data = StoreProcess::builder()
        .config("ruler:\n  enabled: false\nlimits:\n  max_query_series: 1\n")
        .start();
    let r = get(data.http, "/loki/api/v1/rules");
    assert_eq!(r.status, 404);
    assert_ne!(r.text(), "no rule groups found\n", "no ruler answers");
    assert!(!get(data.http, "/services").text().contains("ruler"));
    let (s, _) = post_group(data.http, "ops", GROUP, "fake");
    assert_eq!(s, 404);
    // The ruler's node holds nothing and asks the other one.
    let ruler = ruler_node(&remote_evaluation(&data.addr(), ""), "").start();
    assert!(
        get(ruler.http, "/services")
            .text()
            .contains("ruler => Running\n")
    );
    // Broken: two series where the other node allows one.
    let group = "name: remote\ninterval: 1s\nrules:\n  - alert: ShopErrors\n    expr: sum(count_over_time({namespace=\"shop\"} |= \"error\" [1m])) > 2\n    labels: {team: shop}\n    annotations: {summary: \"{{ $value }} errors\"}\n  - record: shop:lines:count1m\n    expr: sum(count_over_time({namespace=\"shop\"}[1m]))\n  - alert: Broken\n    expr: count_over_time({namespace=\"shop\"}[1m]) > 0\n";
    post_ok(ruler.http, "shop", group);
    assert_eq!(
        push(
            data.http,
            json!({"namespace": "shop", "app": "cart"}),
            &["error a", "error b", "error c", "fine"]
        ),
        Some(204)
    );
    assert_eq!(
        push(
            data.http,
            json!({"namespace": "shop", "app": "web"}),
            &["ok"]
        ),
        Some(204)
    );
    let mut alerts = Vec::new();
    wait_for(
        Duration::from_secs(20),
        "the alert from the other node's lines",
        || {
            alerts = ruler_alerts(ruler.http);
            alerts
                .iter()
                .any(|a| a["labels"]["alertname"] == "ShopErrors")
        },
    );
    let a = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "ShopErrors")
        .unwrap();
    assert_eq!(
        a["labels"],
        json!({"alertname": "ShopErrors", "team": "shop"})
    );
    assert_eq!(a["annotations"], json!({"summary": "3 errors"}));
    // A query the other node refuses: the rule's health says why, in the
    // query API's words.
    let body = get(ruler.http, "/prometheus/api/v1/rules").ok_json();
    let rules = body["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let by_name = |n: &str| rules.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by_name("shop:lines:count1m")["health"], "ok");
    let broken = by_name("Broken");
    assert_eq!(broken["health"], "err", "{broken}");
    assert!(
        broken["lastError"]
            .as_str()
            .unwrap()
            .starts_with("400: maximum number of series (1) reached for a single query"),
        "{broken}"
    );
    assert!(
        metric(
            ruler.http,
            "larch_ruler_evaluation_failures_total{tenant=\"fake\"}"
        ) >= 1.0
    );
    // The ruler's node got no lines of its own.
    let q = get(
        ruler.http,
        "/loki/api/v1/query?query=count_over_time(%7Bnamespace%3D%22shop%22%7D%5B5m%5D)",
    )
    .ok_json();
    assert_eq!(q["data"]["result"], json!([]));
    // The other node stopped: evaluations fail and say so, nothing panics.
    assert!(data.terminate().success());
    wait_for(
        Duration::from_secs(20),
        "failures while the node is gone",
        || {
            let body = get(ruler.http, "/prometheus/api/v1/rules").ok_json();
            body["data"]["groups"][0]["rules"][1]["health"] == "err"
        },
    );
    assert!(ruler.terminate().success());
}

// --- rule groups in the bucket, the rules API on read nodes --------------------

const BUCKET_GROUP: &str = "name: always\ninterval: 1s\nrules:\n  - alert: Always\n    expr: vector(1)\n    for: 2s\n    labels: {severity: page}\n";

/// A store on the S3 server's bucket with the ruler keeping its groups
/// and state there; `extra` adds keys.
fn bucket_node(
    s3: &larch_testkit::s3::S3Server,
    target: &str,
    ruler: &str,
    http: Option<u16>,
) -> StoreProcess {
    let mut b = StoreProcess::builder()
        .config(format!(
            "target: {target}\n{}ruler:\n{ruler}",
            s3.storage_yaml("larch")
        ))
        .env("AWS_ACCESS_KEY_ID", larch_testkit::s3::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", larch_testkit::s3::SECRET_KEY);
    if let Some(p) = http {
        b = b.http_port(p);
    }
    b.start()
}

fn firing(port: u16) -> Option<Value> {
    ruler_alerts(port)
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "Always" && a["state"] == "firing")
}

#[test]
fn rule_groups_and_alert_state_live_in_the_bucket() {
    let s3 = larch_testkit::s3::S3Server::start("larch");
    let ruler_cfg = "  storage:\n    type: bucket\n  instance_id: ruler-a\n  evaluation_interval: 1s\n  poll_interval: 1s\n";
    let ruler_port = free_port();
    let a = bucket_node(&s3, "all", ruler_cfg, Some(ruler_port));
    // Another node with its own ruler on the same bucket sees what is
    // posted to the first (its API reads the bucket).
    let b = bucket_node(
        &s3,
        "read",
        "  storage:\n    type: bucket\n  instance_id: ruler-b\n  poll_interval: 1s\n",
        None,
    );
    // A read node without a ruler forwards the rules API to the first.
    let c = bucket_node(
        &s3,
        "read",
        &format!(
            "  enabled: false\n  api_forward_url: http://127.0.0.1:{ruler_port}\n  api_forward_timeout: 5s\n"
        ),
        None,
    );
    post_ok(a.http, "ops%20team", BUCKET_GROUP);
    assert!(
        s3.root.join("larch/rules/fake/ops=20team.yaml").exists(),
        "the group is an object of the bucket"
    );
    let (s, listed_a) = with_tenant(a.http, "GET", "/loki/api/v1/rules", "fake", "");
    assert_eq!(s, 200);
    assert!(
        listed_a.contains("ops team:") && listed_a.contains("alert: Always"),
        "{listed_a}"
    );
    let (s, listed_b) = with_tenant(b.http, "GET", "/loki/api/v1/rules", "fake", "");
    assert_eq!((s, &listed_b), (200, &listed_a), "the other node lists it");
    // The read node answers every rules route with the ruler's body.
    wait_for(Duration::from_secs(10), "the alert firing", || {
        firing(a.http).is_some()
    });
    for path in [
        "/loki/api/v1/rules",
        "/api/prom/rules/ops%20team",
        "/loki/api/v1/rules/ops%20team/always",
        "/loki/api/v1/rules/nothing",
        "/prometheus/api/v1/rules?type=alert",
        "/prometheus/api/v1/alerts",
    ] {
        let mut last = None;
        let same = (0..20).any(|_| {
            let want = get(a.http, path);
            let got = get(c.http, path);
            let same = (
                want.status,
                want.text(),
                want.header("content-type").map(str::to_string),
            ) == (
                got.status,
                got.text(),
                got.header("content-type").map(str::to_string),
            );
            last = Some((want.status, want.text(), got.status, got.text()));
            same
        });
        assert!(same, "{path}: {last:?}");
    }
    // Changes go through the read node too, for the caller's tenant.
    let (s, t) = post_group(c.http, "team-b", BUCKET_GROUP, "team-b");
    assert_eq!(s, 202, "{t}");
    let (s, t) = with_tenant(
        a.http,
        "GET",
        "/loki/api/v1/rules/team-b/always",
        "team-b",
        "",
    );
    assert_eq!(s, 200, "{t}");
    let (s, t) = with_tenant(a.http, "GET", "/loki/api/v1/rules/team-b", "fake", "");
    assert_eq!((s, t.as_str()), (404, "no rule groups found\n"));
    let (s, _) = with_tenant(c.http, "DELETE", "/loki/api/v1/rules/team-b", "team-b", "");
    assert_eq!(s, 202);
    let (s, t) = with_tenant(c.http, "DELETE", "/loki/api/v1/rules/team-b", "team-b", "");
    assert_eq!((s, t.as_str()), (404, "group namespace does not exist\n"));

    // The ruler node restarts with an empty data directory: its groups
    // and its firing alert come back from the bucket, still firing since
    // the same time.
    let before = firing(a.http).unwrap();
    let state = s3.root.join("larch/ruler-state/ruler-a.json");
    wait_for(Duration::from_secs(10), "the state in the bucket", || {
        std::fs::read_to_string(&state)
            .is_ok_and(|t| t.contains("\"firing\"") || t.contains("Firing"))
    });
    std::thread::sleep(Duration::from_millis(1200));
    a.kill9();
    // Meanwhile the read node says the ruler does not answer.
    let r = get(c.http, "/loki/api/v1/rules");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("did not answer"), "{}", r.text());
    let r = get(c.http, "/prometheus/api/v1/alerts");
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["errorType"], "unavailable");
    drop(a);
    let a = bucket_node(&s3, "all", ruler_cfg, Some(ruler_port));
    let after = firing(a.http).expect("the alert is firing at once after the restart");
    assert_eq!(after["activeAt"], before["activeAt"], "{before} {after}");
    let (s, listed) = with_tenant(c.http, "GET", "/loki/api/v1/rules", "fake", "");
    assert_eq!((s, &listed), (200, &listed_a));
    // It keeps being evaluated.
    let evaluated = |p: u16| {
        get(p, "/prometheus/api/v1/rules").ok_json()["data"]["groups"][0]["lastEvaluation"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = evaluated(a.http);
    wait_for(Duration::from_secs(10), "a new evaluation", || {
        let now = evaluated(a.http);
        !now.starts_with("0001") && now != first
    });
    assert!(firing(a.http).is_some());

    // The bucket goes down: a change is refused with the bucket's error
    // and the group stays as it was.
    s3.kill();
    let changed = BUCKET_GROUP.replace("vector(1)", "vector(2)");
    let (s, t) = with_tenant(
        a.http,
        "POST",
        "/loki/api/v1/rules/ops%20team",
        "fake",
        &changed,
    );
    assert_eq!(s, 500, "{t}");
    assert!(
        t.contains("rules/fake/") && t.contains("S3 error"),
        "the bucket's error, naming the key: {t}"
    );
    s3.restart();
    let (s, listed) = with_tenant(a.http, "GET", "/loki/api/v1/rules", "fake", "");
    assert_eq!((s, &listed), (200, &listed_a), "the old group is kept");
    post_ok(a.http, "ops%20team", &changed);
    let (_, listed) = with_tenant(b.http, "GET", "/loki/api/v1/rules", "fake", "");
    assert!(listed.contains("vector(2)"), "{listed}");
}

// --- the ruler's clients over TLS ------------------------------------------------

/// A scalable store's ruler behind TLS with client certificates: the
/// ruler node evaluates through a data node that requires a client
/// certificate (`evaluation.query_frontend.tls_*`), and a node without
/// the ruler forwards the rules API to the ruler node over https
/// (`api_forward_client`). Without the client certificate the data node
/// refuses the ruler, and the rule's health says so.
#[test]
fn the_ruler_reaches_nodes_behind_tls_with_client_certificates() {
    use larch_testkit::http::Tls;
    use larch_testkit::pki::Pki;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki"));
    let client = Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key);
    let server_tls = format!(
        "tls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    let client_keys = |indent: &str| {
        format!(
            "{indent}tls_ca_path: {}\n{indent}tls_cert_path: {}\n{indent}tls_key_path: {}\n",
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        )
    };
    let data = StoreProcess::builder()
        .config(format!("ruler:\n  enabled: false\n{server_tls}"))
        .tls(client.clone())
        .start();
    let frontend_tls = format!("      tls_enabled: true\n{}", client_keys("      "));
    let ruler = ruler_node(&remote_evaluation(&data.addr(), &frontend_tls), &server_tls)
        .tls(client.clone())
        .start();
    // The read node serves plain HTTP here (its own listener is not what
    // is tested) and forwards over https with a client certificate.
    let read = StoreProcess::builder()
        .config(format!(
            "ruler:\n  enabled: false\n  api_forward_url: {}\n  api_forward_client:\n{}",
            ruler.addr(),
            client_keys("    ")
        ))
        .start();
    let group = "name: tls\ninterval: 1s\nrules:\n  - alert: TlsErrors\n    expr: sum(count_over_time({app=\"tls\"} |= \"error\" [1m])) > 1\n";
    post_ok(read.http, "secure", group);
    let now = now_ns();
    let body = json!({"streams": [{"stream": {"app": "tls"}, "values": [
        [now.to_string(), "error one"], [(now + 1).to_string(), "error two"]
    ]}]})
    .to_string();
    let r = data
        .request(
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    // The alert, read through the read node: forwarded over https to the
    // ruler, which got its value from the data node over mTLS.
    wait_for(Duration::from_secs(20), "the alert through TLS", || {
        ruler_alerts(read.http)
            .iter()
            .any(|a| a["labels"]["alertname"] == "TlsErrors" && a["state"] == "firing")
    });
    let r = get(read.http, "/loki/api/v1/rules/secure");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("TlsErrors"), "{}", r.text());
    // A ruler without the client certificate is refused by the data node:
    // the rule's health says the query failed, and nothing else happens.
    let frontend = format!(
        "      timeout: 3s\n      tls_ca_path: {}\n",
        pki.ca.display()
    );
    let bare = ruler_node(&remote_evaluation(&data.addr(), &frontend), "").start();
    post_ok(bare.http, "secure", group);
    wait_for(Duration::from_secs(20), "the refused evaluation", || {
        let body = get(bare.http, "/prometheus/api/v1/rules").ok_json();
        body["data"]["groups"][0]["rules"][0]["health"] == "err"
    });
    assert!(ruler_alerts(bare.http).is_empty());
    for p in [bare, read, ruler, data] {
        assert!(p.terminate().success());
    }
}
