//! Real Loki push clients, installed from npm and PyPI by
//! `scripts/install-test-deps`, push to a `larch-store` process; every
//! line must come back exactly once through the query API, with the
//! client's labels, for the client's tenant only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use larch_testkit::http::percent;
use larch_testkit::{StoreProcess, now_ns};

const COUNT: usize = 50;

fn deps() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.test-deps");
    assert!(
        d.join("node/node_modules/winston-loki").is_dir() && d.join("py/logging_loki").is_dir(),
        "the real push clients are missing from {}: run scripts/install-test-deps",
        d.display()
    );
    d
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Runs a client script against the store with `COUNT` lines tagged `run`.
fn run_client(store: &StoreProcess, program: &str, file: &str, tenant: &str, run: &str) {
    run_client_with(store, program, file, tenant, run, &[]);
}

/// [`run_client`] with extra environment variables.
fn run_client_with(
    store: &StoreProcess,
    program: &str,
    file: &str,
    tenant: &str,
    run: &str,
    env: &[(&str, String)],
) {
    let d = deps();
    let out = Command::new(program)
        .arg(script(file))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("LOKI_URL", store.addr())
        .env("GRPC_ADDR", format!("127.0.0.1:{}", store.grpc))
        .env("TENANT", tenant)
        .env("RUN", run)
        .env("COUNT", COUNT.to_string())
        .env("NODE_PATH", d.join("node/node_modules"))
        .env("PYTHONPATH", d.join("py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{file} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every (labels, line) the query API returns for `selector` in the last
/// hour, forward, for `tenant`.
fn query(
    store: &StoreProcess,
    tenant: &str,
    selector: &str,
) -> Vec<(BTreeMap<String, String>, String)> {
    query_with(store, tenant, selector, &[])
}

/// [`query`] with extra request headers (a token).
fn query_with(
    store: &StoreProcess,
    tenant: &str,
    selector: &str,
    headers: &[(&str, &str)],
) -> Vec<(BTreeMap<String, String>, String)> {
    let end = now_ns() + 60_000_000_000;
    let start = end - 2 * 3_600_000_000_000;
    let path = format!(
        "/loki/api/v1/query_range?query={}&start={start}&end={end}&limit=5000&direction=forward",
        percent(selector)
    );
    let mut h = vec![("X-Scope-OrgID", tenant)];
    h.extend_from_slice(headers);
    let r = store.request("GET", &path, &h, b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "streams");
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let labels: BTreeMap<String, String> = s["stream"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        for e in s["values"].as_array().unwrap() {
            out.push((labels.clone(), e[1].as_str().unwrap().to_string()));
        }
    }
    out
}

/// Waits until the query returns `COUNT` lines (clients flush
/// asynchronously), then checks each token `run-i` appears exactly once.
fn expect_all(
    store: &StoreProcess,
    tenant: &str,
    selector: &str,
    run: &str,
) -> Vec<(BTreeMap<String, String>, String)> {
    expect_all_with(store, tenant, selector, run, &[])
}

/// [`expect_all`] with extra request headers.
fn expect_all_with(
    store: &StoreProcess,
    tenant: &str,
    selector: &str,
    run: &str,
    headers: &[(&str, &str)],
) -> Vec<(BTreeMap<String, String>, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = query_with(store, tenant, selector, headers);
    while got.len() < COUNT && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got = query_with(store, tenant, selector, headers);
    }
    let mut seen = vec![0usize; COUNT];
    for (_, line) in &got {
        let i: usize = line
            .split(&format!("{run}-"))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("line without a token: {line}"));
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "each line exactly once: {seen:?}\n{got:?}"
    );
    got
}

fn run_id(name: &str) -> String {
    format!("{name}{}", now_ns() % 1_000_000_007)
}

#[test]
fn winston_loki_protobuf_snappy() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let run = run_id("w");
    run_client(&store, "node", "winston.js", "tenant-w", &run);
    let got = expect_all(
        &store,
        "tenant-w",
        &format!(r#"{{app="winston", run="{run}"}}"#),
        &run,
    );
    assert!(
        got.iter()
            .all(|(l, _)| l["app"] == "winston" && l["service_name"] == "winston")
    );
    // Another tenant sees none of it.
    assert!(query(&store, "someone-else", r#"{app="winston"}"#).is_empty());
}

/// Issue 14: a real client over TLS with a CA file, a client certificate
/// (the store requires one) and a token as basic auth password.
#[test]
fn winston_loki_over_mtls_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = larch_testkit::pki::Pki::create(&dir.path().join("pki"));
    let token = |name: &str, access: &str| {
        let out = Command::new(larch_testkit::binary("larch-store"))
            .args([
                "token",
                "new",
                "--name",
                name,
                "--tenants",
                "tenant-t",
                "--access",
                access,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (t, e) = text.split_once('\n').unwrap();
        (t.to_string(), e.to_string())
    };
    let (writer, we) = token("winston", "write");
    let (reader, re) = token("reader", "read");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("tokens:\n{we}{re}")).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "auth:\n  tokens_file: {}\ntls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
            tokens.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ))
        .tls(larch_testkit::http::Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key))
        .start();
    let run = run_id("t");
    let p = |p: &std::path::Path| p.display().to_string();
    run_client_with(
        &store,
        "node",
        "winston.js",
        "tenant-t",
        &run,
        &[
            ("CA_FILE", p(&pki.ca)),
            ("CERT_FILE", p(&pki.client_cert)),
            ("KEY_FILE", p(&pki.client_key)),
            ("BASIC_AUTH", format!("winston:{writer}")),
        ],
    );
    let auth = format!("Bearer {reader}");
    expect_all_with(
        &store,
        "tenant-t",
        &format!(r#"{{app="winston", run="{run}"}}"#),
        &run,
        &[("Authorization", &auth)],
    );
}

#[test]
fn pino_loki_json_mixed_tuples() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let run = run_id("p");
    run_client(&store, "node", "pino.js", "tenant-p", &run);
    let got = expect_all(
        &store,
        "tenant-p",
        &format!(r#"{{app="pino", run="{run}"}}"#),
        &run,
    );
    // Structured metadata comes back merged into the labels of its lines.
    let with_trace = got
        .iter()
        .filter(|(l, _)| l.contains_key("trace_id"))
        .count();
    assert_eq!(with_trace, COUNT / 2, "{got:?}");
}

#[test]
fn loki_grpc_client() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let run = run_id("g");
    run_client(&store, "node", "grpc.js", "tenant-g", &run);
    expect_all(
        &store,
        "tenant-g",
        &format!(r#"{{app="grpc", run="{run}"}}"#),
        &run,
    );
}

#[test]
fn python_logging_loki_legacy_push() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let run = run_id("l");
    run_client(&store, "python3", "pll.py", "tenant-l", &run);
    let got = expect_all(
        &store,
        "tenant-l",
        &format!(r#"{{app="pll", run="{run}"}}"#),
        &run,
    );
    assert!(
        got.iter()
            .all(|(l, _)| l["severity"] == "info" && l["logger"] == "pll")
    );
}

#[test]
fn loki_logger_handler_gzip_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let run = run_id("h");
    run_client(&store, "python3", "llh.py", "tenant-h", &run);
    let got = expect_all(
        &store,
        "tenant-h",
        &format!(r#"{{app="llh", run="{run}"}}"#),
        &run,
    );
    assert!(
        got.iter()
            .all(|(l, _)| l.get("env").map(String::as_str) == Some("test")),
        "{got:?}"
    );
}

#[test]
fn opentelemetry_otlp_http_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let run = run_id("o");
    run_client(&store, "python3", "otlp.py", "tenant-o", &run);
    let got = expect_all(
        &store,
        "tenant-o",
        &format!(r#"{{service_name="otlp-{run}"}}"#),
        &run,
    );
    for (l, _) in &got {
        assert_eq!(l["k8s_namespace_name"], "shop");
        assert_eq!(
            l["host_name"], "node-1",
            "other resource attributes are structured metadata"
        );
        assert!(l.contains_key("order_id"));
        // The SDK's INFO record: severity text `INFO`, number 9.
        assert_eq!(l["detected_level"], "info", "the level from the severity");
    }
}
