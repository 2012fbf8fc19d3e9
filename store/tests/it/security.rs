//! Issue 14: tokens mapped to tenants on every endpoint (HTTP and gRPC),
//! the tokens file reloaded without a restart, TLS and mTLS on the HTTP
//! port and certificates rotated in place. (The agent's and the CLI's
//! sides, and gRPC over TLS, are tested in their crates.)

use std::time::{Duration, Instant};

use larch_testkit::http::{Tls, request_tls};
use larch_testkit::pki::Pki;
use prost::Message;

use super::support::*;

/// `larch-store token new`: the token and its YAML entry.
pub fn new_token(name: &str, tenants: &str, access: &str) -> (String, String) {
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (token, rest) = text.split_once('\n').unwrap();
    let entry: String = rest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(entry.contains(&format!("name: \"{name}\"")), "{entry}");
    assert!(!entry.contains(token), "the entry holds the token itself");
    (token.to_string(), entry)
}

struct Tokens {
    reader_a: String,
    writer_a: String,
    rw_ab: String,
    admin: String,
    file: String,
}

fn tokens() -> Tokens {
    let (reader_a, e1) = new_token("reader-a", "team-a", "read");
    let (writer_a, e2) = new_token("writer-a", "team-a", "write");
    let (rw_ab, e3) = new_token("rw-ab", "team-a,team-b", "read-write");
    let (admin, e4) = new_token("admin", "team-a", "admin");
    Tokens {
        reader_a,
        writer_a,
        rw_ab,
        admin,
        file: format!("tokens:\n{e1}{e2}{e3}{e4}"),
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn grpc_push(
    port: u16,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<(), tonic::Status> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let mut req = tonic::Request::new(body);
        for (k, v) in headers {
            req.metadata_mut().insert(*k, v.parse().unwrap());
        }
        grpc.unary(
            req,
            "/logproto.Pusher/Push".parse().unwrap(),
            super::hostile_push::RawBytes,
        )
        .await
        .map(|_| ())
    })
}

/// Every endpoint that reads or writes: no token 401, team-a's token
/// naming team-b 403, a read-only token pushing 403, and the right token
/// let through (whatever the handler then says).
#[test]
fn tokens_guard_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens();
    let tokens_file = dir.path().join("tokens.yaml");
    std::fs::write(&tokens_file, &t.file).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "auth:\n  tokens_file: {}\n  reload_interval: 200ms\n",
            tokens_file.display()
        ))
        .start();
    let port = store.http;
    let now = now_ns();
    let push_body = protobuf_lines("{app=\"sec\"}", now, &["secret of team-a".to_string()]);
    let otlp = larch_proto::otlp::ExportLogsServiceRequest::default().encode_to_vec();
    let pb = ("Content-Type", "application/x-protobuf");
    let json = ("Content-Type", "application/json");
    let q = "?query=%7Bapp%3D%22sec%22%7D";
    let reads: Vec<(&str, String)> = [
        "/loki/api/v1/query",
        "/loki/api/v1/query_range",
        "/api/prom/query",
        "/loki/api/v1/labels",
        "/loki/api/v1/label",
        "/loki/api/v1/label/app/values",
        "/loki/api/v1/series",
        "/loki/api/v1/index/stats",
        "/loki/api/v1/index/volume",
        "/loki/api/v1/index/volume_range",
        "/loki/api/v1/detected_labels",
        "/loki/api/v1/detected_fields",
        "/loki/api/v1/detected_field/app/values",
        "/loki/api/v1/patterns",
        "/loki/api/v1/tail",
        "/api/prom/tail",
        "/loki/api/v1/rules",
        "/prometheus/api/v1/rules",
    ]
    .into_iter()
    .map(|p| ("GET", format!("{p}{q}")))
    .collect();
    type Write<'a> = (&'a str, &'a str, (&'a str, &'a str), Vec<u8>);
    let writes: Vec<Write> = vec![
        ("POST", "/loki/api/v1/push", pb, push_body.clone()),
        (
            "POST",
            "/api/prom/push",
            json,
            br#"{"streams":[]}"#.to_vec(),
        ),
        ("POST", "/otlp/v1/logs", pb, otlp),
    ];
    let admin: Vec<(&str, &str)> = vec![
        ("POST", "/loki/api/v1/delete"),
        ("POST", "/loki/api/v1/rules/ns"),
        ("DELETE", "/loki/api/v1/rules/ns/group"),
        ("POST", "/flush"),
    ];
    let call =
        |m: &str, p: &str, h: &[(&str, &str)], body: &[u8]| request(port, m, p, h, body).unwrap();

    // The writer pushes to its own tenant (implied: it holds one).
    let auth = bearer(&t.writer_a);
    let r = call(
        "POST",
        "/loki/api/v1/push",
        &[pb, ("Authorization", &auth)],
        &push_body,
    );
    assert_eq!(r.status, 204, "{}", r.text());

    for (m, p) in &reads {
        let r = call(m, p, &[("X-Scope-OrgID", "team-a")], b"");
        assert_eq!(r.status, 401, "{m} {p} without a token: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"larch\""));
        let auth = bearer(&t.reader_a);
        let r = call(
            m,
            p,
            &[("X-Scope-OrgID", "team-b"), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 403, "{m} {p} for another tenant: {}", r.text());
        assert_eq!(
            r.text(),
            "forbidden: token 'reader-a' may not act for tenant 'team-b'\n"
        );
        let r = call(
            m,
            p,
            &[("X-Scope-OrgID", "team-a|team-b"), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(
            r.status,
            403,
            "{m} {p} naming another tenant too: {}",
            r.text()
        );
        let r = call(
            m,
            p,
            &[("X-Scope-OrgID", "team-a"), ("Authorization", &auth)],
            b"",
        );
        assert!(
            ![401, 403].contains(&r.status),
            "{m} {p} with the right token: {} {}",
            r.status,
            r.text()
        );
        // A writer cannot read.
        let w = bearer(&t.writer_a);
        let r = call(m, p, &[("Authorization", &w)], b"");
        assert_eq!(r.status, 403, "{m} {p} by a writer: {}", r.text());
    }
    // The read-only token cannot push, to its own tenant or another.
    for (m, p, ct, body) in &writes {
        let r = call(m, p, &[*ct, ("X-Scope-OrgID", "team-a")], body);
        assert_eq!(r.status, 401, "{p} without a token: {}", r.text());
        let auth = bearer(&t.reader_a);
        let r = call(
            m,
            p,
            &[*ct, ("X-Scope-OrgID", "team-a"), ("Authorization", &auth)],
            body,
        );
        assert_eq!(r.status, 403, "{p} by a reader: {}", r.text());
        assert!(r.text().contains("has read access"), "{}", r.text());
        let auth = bearer(&t.writer_a);
        let r = call(
            m,
            p,
            &[*ct, ("X-Scope-OrgID", "team-b"), ("Authorization", &auth)],
            body,
        );
        assert_eq!(r.status, 403, "{p} for another tenant: {}", r.text());
        let r = call(m, p, &[*ct, ("Authorization", &auth)], body);
        assert!(
            r.status < 300,
            "{p} by its writer: {} {}",
            r.status,
            r.text()
        );
    }
    for (m, p) in &admin {
        let r = call(m, p, &[("X-Scope-OrgID", "team-a")], b"");
        assert_eq!(r.status, 401, "{m} {p} without a token");
        for tok in [&t.reader_a, &t.writer_a, &t.rw_ab] {
            let auth = bearer(tok);
            let r = call(
                m,
                p,
                &[("X-Scope-OrgID", "team-a"), ("Authorization", &auth)],
                b"",
            );
            assert_eq!(r.status, 403, "{m} {p} without admin access: {}", r.text());
        }
        let auth = bearer(&t.admin);
        let r = call(
            m,
            p,
            &[("X-Scope-OrgID", "team-a"), ("Authorization", &auth)],
            b"",
        );
        assert!(
            ![401, 403].contains(&r.status),
            "{m} {p} by an admin: {}",
            r.status
        );
    }
    // The secret is readable by its tenant's reader, over basic auth too.
    let basic = format!(
        "Basic {}",
        base64_encode(format!("grafana:{}", t.reader_a).as_bytes())
    );
    let r = call(
        "GET",
        &format!("/loki/api/v1/query_range{q}"),
        &[("Authorization", &basic)],
        b"",
    );
    assert!(r.ok_json().to_string().contains("secret of team-a"));
    // A token of two tenants must name one.
    let auth = bearer(&t.rw_ab);
    let r = call(
        "GET",
        &format!("/loki/api/v1/labels{q}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (401, "no org id\n"));
    // Probes and Prometheus need no token.
    assert_eq!(call("GET", "/ready", &[], b"").status, 200);
    let metrics = call("GET", "/metrics", &[], b"").text();
    assert_eq!(
        call("GET", "/loki/api/v1/status/buildinfo", &[], b"").status,
        200
    );
    for reason in [
        "missing_credentials",
        "tenant_not_allowed",
        "action_not_allowed",
        "no_org_id",
    ] {
        assert!(
            metrics.contains(&format!(
                "larch_auth_denied_requests_total{{reason=\"{reason}\",protocol=\"http\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    assert!(
        metrics.contains("larch_auth_allowed_requests_total{token=\"writer-a\",action=\"write\"}")
    );

    // gRPC: the same rules on metadata.
    let g = store.grpc;
    let body = protobuf_body_raw(now);
    let e = grpc_push(g, &[], body.clone()).unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = grpc_push(g, &[("authorization", bearer(&t.reader_a))], body.clone()).unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = grpc_push(
        g,
        &[
            ("authorization", bearer(&t.writer_a)),
            ("x-scope-orgid", "team-b".into()),
        ],
        body.clone(),
    )
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    grpc_push(g, &[("authorization", bearer(&t.writer_a))], body.clone()).unwrap();
    grpc_push(
        g,
        &[
            ("authorization", bearer(&t.rw_ab)),
            ("x-scope-orgid", "team-b".into()),
        ],
        body,
    )
    .unwrap();

    // A token added to the file works within seconds; a removed one stops.
    let (late, entry) = new_token("late", "team-b", "read");
    let auth_late = bearer(&late);
    let labels = |auth: &str| {
        call(
            "GET",
            "/loki/api/v1/labels",
            &[("Authorization", auth)],
            b"",
        )
        .status
    };
    assert_eq!(labels(&auth_late), 401);
    let without_reader: String = {
        let f = t.file.clone();
        let start = f.find("  - name: \"reader-a\"").unwrap();
        let end = start + f[start..].find("  - name: \"writer-a\"").unwrap();
        format!("{}{}{entry}", &f[..start], &f[end..])
    };
    std::fs::write(&tokens_file, &without_reader).unwrap();
    wait_until("the added token works", || labels(&auth_late) == 200);
    assert_eq!(
        labels(&bearer(&t.reader_a)),
        401,
        "a removed token still works"
    );
    // A broken file keeps the last good one.
    std::fs::write(&tokens_file, "tokens: [not: valid").unwrap();
    wait_until("the failed reload is counted", || {
        call("GET", "/metrics", &[], b"")
            .text()
            .contains("larch_auth_reloads_total{file=\"tokens\",result=\"failure\"} 1")
    });
    assert_eq!(labels(&auth_late), 200);
    // No token reaches the logs.
    let logs = format!("{}{}", store.stdout(), store.stderr());
    for tok in [&t.reader_a, &t.writer_a, &t.rw_ab, &t.admin, &late] {
        assert!(!logs.contains(tok.as_str()), "a token in the logs");
    }
}

fn protobuf_body_raw(ts: i64) -> Vec<u8> {
    // gRPC carries the protobuf uncompressed.
    snap::raw::Decoder::new()
        .decompress_vec(&protobuf_lines(
            "{app=\"grpc\"}",
            ts,
            &["over grpc".to_string()],
        ))
        .unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The subject of the certificate the server on `port` presents now.
fn served_subject(port: u16, pki: &Pki) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(&pki.ca)
        .arg("-cert")
        .arg(&pki.client_cert)
        .arg("-key")
        .arg(&pki.client_key)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // `subject=CN = larch-store` (OpenSSL 3) or `subject=CN=larch-store`.
    text.lines()
        .find(|l| l.starts_with("subject="))
        .map(|l| l.replace(' ', ""))
        .unwrap_or_else(|| format!("no certificate: {text}"))
}

/// TLS on the HTTP port with mTLS: a client without a certificate, or
/// with one of another CA, is refused; a rotated certificate is served
/// without a restart; plain HTTP gets no answer.
#[test]
fn mtls_on_http_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki"));
    let client = Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key);
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "auth:\n  reload_interval: 200ms\ntls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ))
        .tls(client.clone())
        .start();
    assert!(store.addr().starts_with("https://"));
    let port = store.http;
    let r = store
        .request(
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &protobuf_lines("{app=\"tls\"}", now_ns(), &["over tls".to_string()]),
        )
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let r = store
        .request(
            "GET",
            "/loki/api/v1/query_range?query=%7Bapp%3D%22tls%22%7D",
            &[],
            b"",
        )
        .unwrap();
    assert!(r.ok_json().to_string().contains("over tls"));
    // No certificate, another CA's, or plain HTTP: refused.
    let none = Tls::new(&pki.ca);
    assert!(request_tls(port, &none, "GET", "/ready", &[], b"").is_err());
    let rogue = Tls::new(&pki.ca).with_client(&pki.rogue_cert, &pki.rogue_key);
    assert!(request_tls(port, &rogue, "GET", "/ready", &[], b"").is_err());
    assert!(request(port, "GET", "/ready", &[], b"").map_or(true, |r| r.status != 200));
    // A client that does not trust the CA refuses the server.
    let other = Tls::new(&pki.rogue_cert).with_client(&pki.client_cert, &pki.client_key);
    assert!(request_tls(port, &other, "GET", "/ready", &[], b"").is_err());
    // Rotation in place.
    let before = served_subject(port, &pki);
    assert!(before.ends_with("CN=larch-store"), "{before}");
    pki.rotate_server("larch-store-rotated");
    wait_until("the rotated certificate is served", || {
        served_subject(port, &pki).ends_with("CN=larch-store-rotated")
    });
    let r = store.request("GET", "/ready", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let m = store.request("GET", "/metrics", &[], b"").unwrap().text();
    assert!(
        m.contains("larch_auth_reloads_total{file=\"tls\",result=\"success\"}"),
        "{m}"
    );
    assert!(
        m.contains("larch_tls_handshake_failures_total{listener=\"http\"}"),
        "{m}"
    );
}

/// `X-Scope-OrgID: a|b` with `multi_tenant_queries_enabled`: streams carry
/// `__tenant_id__`, a matcher on it chooses tenants, and a token must hold
/// every tenant named.
#[test]
fn multi_tenant_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (both, e1) = new_token("both", "team-a,team-b", "read-write");
    let (only_a, e2) = new_token("only-a", "team-a", "read");
    let tokens_file = dir.path().join("tokens.yaml");
    std::fs::write(&tokens_file, format!("tokens:\n{e1}{e2}")).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "multi_tenant_queries_enabled: true\nauth:\n  tokens_file: {}\n",
            tokens_file.display()
        ))
        .start();
    let auth = bearer(&both);
    let now = now_ns();
    for (tenant, line) in [("team-a", "line of a"), ("team-b", "line of b")] {
        let r = request(
            store.http,
            "POST",
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("X-Scope-OrgID", tenant),
                ("Authorization", &auth),
            ],
            &protobuf_lines("{app=\"m\"}", now, &[line.to_string()]),
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let query = |org: &str, token: &str, q: &str| {
        let a = bearer(token);
        request(
            store.http,
            "GET",
            &format!(
                "/loki/api/v1/query_range{}",
                larch_testkit::http::query_string(&[
                    ("query", q),
                    ("start", &(now - 3_600_000_000_000).to_string()),
                    ("end", &(now + 60_000_000_000).to_string()),
                    ("step", "60"),
                ])
            ),
            &[("X-Scope-OrgID", org), ("Authorization", &a)],
            b"",
        )
        .unwrap()
    };
    let streams = |r: Response| -> Vec<(String, String)> {
        let v = r.ok_json();
        let mut out: Vec<(String, String)> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["stream"]["__tenant_id__"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                    s["values"][0][1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let pair = |t: &str, l: &str| (t.to_string(), l.to_string());
    assert_eq!(
        streams(query("team-a|team-b", &both, "{app=\"m\"}")),
        [pair("team-a", "line of a"), pair("team-b", "line of b")]
    );
    assert_eq!(
        streams(query(
            "team-a|team-b",
            &both,
            "{app=\"m\", __tenant_id__=\"team-b\"}"
        )),
        [pair("team-b", "line of b")]
    );
    assert_eq!(
        streams(query("team-a|team-b", &both, "{__tenant_id__=~\"team-a\"}")),
        [pair("team-a", "line of a")]
    );
    // One tenant: no label, as before.
    assert_eq!(
        streams(query("team-a", &both, "{app=\"m\"}")),
        [pair("-", "line of a")]
    );
    // A metric grouped by tenant.
    let v = query(
        "team-a|team-b",
        &both,
        "sum by (__tenant_id__) (count_over_time({app=\"m\"}[1h]))",
    )
    .ok_json();
    let mut groups: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["__tenant_id__"].as_str().unwrap().to_string())
        .collect();
    groups.sort();
    assert_eq!(groups, ["team-a", "team-b"]);
    // A token of one of them may not ask for both.
    assert_eq!(query("team-a|team-b", &only_a, "{app=\"m\"}").status, 403);
}

/// Without `multi_tenant_queries_enabled`, `a|b` is refused as Loki
/// refuses it.
#[test]
fn several_tenants_need_multi_tenant_queries_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let r = request(
        store.http,
        "GET",
        "/loki/api/v1/query_range?query=%7Bapp%3D%22m%22%7D",
        &[("X-Scope-OrgID", "a|b")],
        b"",
    )
    .unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "multiple org IDs present\n")
    );
}
