//! Issue 14: the agent against a store that serves TLS, requires a client
//! certificate and a token: `https://` and `grpcs://` with a CA file, a
//! client certificate, a bearer token file and basic auth; and a token
//! revoked for a while costs no line.

use std::path::Path;
use std::time::Duration;

use larch_testkit::http::Tls;
use larch_testkit::pki::Pki;

use super::support::*;

const MINUTE: Duration = Duration::from_secs(60);

fn new_token(name: &str, tenants: &str, access: &str) -> (String, String) {
    let out = std::process::Command::new(larch_testkit::binary("larch-store"))
        .args([
            "token",
            "new",
            "--name",
            name,
            "--tenants",
            tenants,
            "--access",
            access,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (token, entry) = text.split_once('\n').unwrap();
    (token.to_string(), entry.to_string())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn https_and_grpcs_with_a_client_certificate_and_a_token() {
    let e = env();
    let dir = e.data.parent().unwrap().to_path_buf();
    let pki = Pki::create(&dir.join("pki"));
    let (writer, we) = new_token("agents", "team-a", "write");
    let (reader, re) = new_token("grafana", "team-a", "read");
    let tokens = dir.join("tokens.yaml");
    write(&tokens, &format!("tokens:\n{we}{re}"));
    let (http, grpc) = (free_port(), free_port());
    let store = StoreProcess::builder()
        .data_dir(&e.data)
        .http_port(http)
        .grpc_port(grpc)
        .config(format!(
            "auth:\n  tokens_file: {}\ntls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\nlimits:\n  max_entries_limit_per_query: 1000000\n  discover_log_levels: false\n",
            tokens.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ))
        .tls(Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key))
        .start();
    let token_file = dir.join("token");
    write(&token_file, &format!("{writer}\n"));
    let tls = format!(
        "tls_ca_file: {}\ntls_cert_file: {}\ntls_key_file: {}\n",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    // One agent over HTTPS with a bearer token file, one over gRPC with
    // TLS and basic auth (the token as password), naming the server as
    // its certificate does.
    let https_cfg = dir.join("https.yaml");
    write(
        &https_cfg,
        &format!("{tls}bearer_token_file: {}\n", token_file.display()),
    );
    let grpcs_cfg = dir.join("grpcs.yaml");
    write(
        &grpcs_cfg,
        &format!(
            "{tls}tls_server_name: localhost\ntenant_id: team-a\nbasic_auth:\n  username: agent\n  password_file: {}\n",
            token_file.display()
        ),
    );
    let mut want = Entries::new();
    let mut files = Vec::new();
    let mut agents = Vec::new();
    for (name, url, cfg) in [
        ("https", format!("https://127.0.0.1:{http}"), &https_cfg),
        ("grpcs", format!("grpcs://127.0.0.1:{grpc}"), &grpcs_cfg),
    ] {
        let pods = e.pods.join(name);
        let p = PodDir::new(&pods, "ns", name, "uid", "c");
        let l = lines(name, 50);
        expect(
            &mut want,
            &labels("ns", name, "c", "stdout"),
            &p.cri("stdout", now_ns() - 5_000_000_000, &l),
            &l,
        );
        files.push((p.log(), dir.join(format!("{name}-positions.yaml"))));
        agents.push(start_agent(
            &pods,
            &dir.join(format!("{name}-positions.yaml")),
            &url,
            &["--config", cfg.to_str().unwrap()],
        ));
    }
    for (log, positions) in &files {
        wait_caught_up(positions, std::slice::from_ref(log), MINUTE);
    }
    for a in &agents {
        assert_eq!(a.metric("larch_agent_sent_entries_total"), 50.0);
    }
    want.sort();
    let auth = format!("Bearer {reader}");
    assert_same(
        &store.query_with("team-a", ("namespace", "ns"), &[("Authorization", &auth)]),
        &want,
    );
}

/// The store revokes the agent's token (401 for a while), then takes it
/// back: the agent keeps its batches and positions, shows the failures on
/// its metrics, and every line arrives once.
#[test]
fn a_revoked_token_costs_no_line() {
    let e = env();
    let dir = e.data.parent().unwrap().to_path_buf();
    let (writer, we) = new_token("agents", "team-a", "write");
    let (reader, re) = new_token("reader", "team-a", "read");
    let tokens = dir.join("tokens.yaml");
    write(&tokens, &format!("tokens:\n{we}{re}"));
    let store = StoreProcess::builder()
        .data_dir(&e.data)
        .config(format!(
            "auth:\n  tokens_file: {}\n  reload_interval: 100ms\nlimits:\n  max_entries_limit_per_query: 1000000\n  discover_log_levels: false\n",
            tokens.display()
        ))
        .start();
    let token_file = dir.join("token");
    write(&token_file, &writer);
    let p = PodDir::new(&e.pods, "ns", "rev", "uid", "c");
    let lab = labels("ns", "rev", "c", "stdout");
    let mut want = Entries::new();
    let l = lines("before", 40);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", now_ns() - 20_000_000_000, &l),
        &l,
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &store.addr(),
        &["--bearer-token-file", token_file.to_str().unwrap()],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    // Revoked: once the store has reloaded its file (the writer's token
    // is then unknown, 401, rather than not allowed to read, 403).
    write(&tokens, &format!("tokens:\n{re}"));
    let auth_w = format!("Bearer {writer}");
    let store_ref = &store;
    let probe = |status: u16| {
        let auth = auth_w.clone();
        move || {
            store_ref
                .request(
                    "GET",
                    "/loki/api/v1/labels",
                    &[("Authorization", &auth)],
                    b"",
                )
                .is_ok_and(|r| r.status == status)
        }
    };
    wait_for(MINUTE, "the token is revoked", probe(401));
    let l = lines("during", 60);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", now_ns() - 10_000_000_000, &l),
        &l,
    );
    wait_for(MINUTE, "several 401s", || {
        agent.metric(r#"larch_agent_push_failures_total{status_code="401"}"#) >= 3.0
    });
    assert_eq!(agent.metric("larch_agent_sent_entries_total"), 40.0);
    // Restored.
    write(&tokens, &format!("tokens:\n{we}{re}"));
    wait_for(MINUTE, "the token is restored", probe(403));
    let l = lines("after", 30);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", now_ns() - 5_000_000_000, &l),
        &l,
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    assert_eq!(agent.metric("larch_agent_sent_entries_total"), 130.0);
    let m = agent.metrics();
    assert!(
        !m.keys()
            .any(|k| k.starts_with("larch_agent_dropped_entries_total")),
        "{m:?}"
    );
    want.sort();
    let auth = format!("Bearer {reader}");
    assert_same(
        &store.query_with("team-a", ("namespace", "ns"), &[("Authorization", &auth)]),
        &want,
    );
}
