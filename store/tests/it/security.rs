//! Issue 14: tokens mapped to tenants on every endpoint (HTTP, gRPC and
//! the WebSocket tail), the tokens file reloaded without a restart, TLS
//! and mTLS on the HTTP and gRPC ports and certificates rotated in place.
//! (The agent's and the CLI's sides are tested in their crates.)

use std::time::{Duration, Instant};

use larch_testkit::http::{Tls, request_tls};
use larch_testkit::pki::Pki;
use prost::Message;

use super::support::*;

pub use larch_testkit::tokens::new_token;

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
        push_on(channel, headers, body).await
    })
}

/// A push over TLS, with the client certificate `tls` holds if any: the
/// error of the connection or of the call, as text.
fn grpc_push_tls(
    port: u16,
    tls: &larch_store::tls_client::ClientTls,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .connect_with_connector(tls.grpc_connector())
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        push_on(channel, headers, body)
            .await
            .map_err(|e| format!("push: {e:?}"))
    })
}

async fn push_on(
    channel: tonic::transport::Channel,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
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
    // The admin token acts for its own tenants only: deleting or changing
    // rules for another tenant is refused as any other token would be.
    let auth = bearer(&t.admin);
    for (m, p) in [
        ("POST", "/loki/api/v1/delete"),
        ("POST", "/loki/api/v1/rules/ns"),
    ] {
        let r = call(
            m,
            &format!("{p}{q}"),
            &[("X-Scope-OrgID", "team-b"), ("Authorization", &auth)],
            b"",
        );
        assert_eq!(
            r.status,
            403,
            "{m} {p} by an admin for team-b: {}",
            r.text()
        );
        assert_eq!(
            r.text(),
            "forbidden: token 'admin' may not act for tenant 'team-b'\n"
        );
    }
    live_tail_takes_a_token(port, &t);

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

/// A live tail is a WebSocket session: the upgrade is refused without a
/// token (401) or for another tenant (403); with the reader's token the
/// session opens and a line pushed afterwards arrives on it.
fn live_tail_takes_a_token(port: u16, t: &Tokens) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};
    let url = format!("ws://127.0.0.1:{port}/loki/api/v1/tail?query=%7Bapp%3D%22live%22%7D");
    let open = |auth: Option<String>, org: Option<&str>| {
        let mut req = url.as_str().into_client_request().unwrap();
        if let Some(a) = auth {
            req.headers_mut()
                .insert("authorization", a.parse().unwrap());
        }
        if let Some(o) = org {
            req.headers_mut()
                .insert("x-scope-orgid", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let refused = |r: Result<_, WsError>| match r {
            Err(WsError::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("the upgrade failed otherwise: {e}"),
            Ok(_) => panic!("the tail opened"),
        };
        assert_eq!(refused(open(None, Some("team-a")).await), 401);
        assert_eq!(
            refused(open(Some(bearer(&t.reader_a)), Some("team-b")).await),
            403
        );
        let (mut ws, _) = open(Some(bearer(&t.reader_a)), None)
            .await
            .expect("the reader's tail opens");
        let body = protobuf_lines("{app=\"live\"}", now_ns(), &["tailed live".to_string()]);
        let auth = bearer(&t.writer_a);
        let r = request(
            port,
            "POST",
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Authorization", &auth),
            ],
            &body,
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let msg = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("the pushed line reaches the tail within 10s")
                .expect("the tail stays open")
                .expect("a frame");
            if let Message::Text(text) = msg
                && text.as_str().contains("tailed live")
            {
                break;
            }
        }
    });
}

/// The web UI with tokens on: its page and files answer anyone (they hold
/// no data), and the API calls the page makes need the token it sends as
/// a bearer token.
#[test]
fn the_web_ui_works_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, e1) = new_token("ui-reader", "team-a", "read");
    let (writer, e2) = new_token("ui-writer", "team-a", "write");
    let tokens_file = dir.path().join("tokens.yaml");
    std::fs::write(&tokens_file, format!("tokens:\n{e1}{e2}")).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!("auth:\n  tokens_file: {}\n", tokens_file.display()))
        .start();
    let port = store.http;
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(bearer);
        let mut headers = vec![];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        request(port, "GET", path, &headers, b"").unwrap()
    };

    // The page and its files, without a token.
    let page = get("/", None);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("/ui/main.js"));
    for file in ["/ui/main.js", "/ui/api.js", "/ui/style.css"] {
        let r = get(file, None);
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        assert!(r.header("content-security-policy").is_some(), "{file}");
    }
    // Public means the UI's own files, nothing near them.
    assert_eq!(get("/ui/nothing.js", None).status, 404);
    for path in [
        "/ui/",
        "/ui/a/main.js",
        "/uimain.js",
        "/config",
        "/runtime_config",
    ] {
        assert_eq!(get(path, None).status, 401, "{path} without a token");
    }
    assert_eq!(
        get("/config", Some(&reader)).status,
        403,
        "/config is an administrator's"
    );

    // A line of team-a's, pushed with the writer's token.
    let now = now_ns();
    let auth = bearer(&writer);
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Authorization", &auth),
        ],
        &protobuf_lines(
            "{app=\"ui\"}",
            now,
            &["level=warn seen by the page".to_string()],
        ),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());

    // The calls the page makes: completion, the log query, the level
    // histogram. 401 without the token (the page then asks for one), 200
    // with it; the token implies the tenant.
    let enc = |q: &str| q.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let range = format!(
        "&start={}&end={}",
        now - 60_000_000_000,
        now + 1_000_000_000
    );
    let calls = [
        "/loki/api/v1/labels".to_string(),
        "/loki/api/v1/label/app/values".to_string(),
        format!(
            "/loki/api/v1/query_range?query={}{range}&limit=100",
            enc("{app=\"ui\"}")
        ),
        format!(
            "/loki/api/v1/query_range?query={}{range}&step=1m",
            enc("sum by (detected_level) (count_over_time({app=\"ui\"} [1m]))")
        ),
    ];
    for path in &calls {
        let r = get(path, None);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"larch\""));
        let r = get(path, Some(&reader));
        assert_eq!(r.status, 200, "{path} with the token: {}", r.text());
    }
    let values = get(&calls[1], Some(&reader)).text();
    assert!(values.contains("\"ui\""), "{values}");
    let lines = get(&calls[2], Some(&reader)).text();
    assert!(lines.contains("level=warn seen by the page"), "{lines}");
    let histogram = get(&calls[3], Some(&reader)).text();
    assert!(
        histogram.contains("\"detected_level\":\"warn\""),
        "{histogram}"
    );
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

/// The subject of the certificate the server on `port` presents now,
/// to a client offering `alpn` (`h2` on the gRPC port).
fn served_subject(port: u16, pki: &Pki, alpn: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-alpn",
            alpn,
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

/// TLS with mTLS on the HTTP and the gRPC port: a client without a
/// certificate, or with one of another CA, is refused; a rotated
/// certificate is served on both ports without a restart; plain HTTP and
/// plain gRPC get no answer; refusals are counted per listener.
#[test]
fn mtls_and_rotation_on_http_and_grpc() {
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
    // The gRPC port: a push with the client certificate goes through; with
    // the CA but no certificate, with another CA's, or in the clear, it is
    // refused.
    let g = store.grpc;
    let grpc_client = |cert: Option<(&std::path::Path, &std::path::Path)>| {
        larch_store::tls_client::ClientTls::load(
            &larch_store::tls_client::ClientTlsConfig {
                tls_enabled: true,
                tls_ca_path: Some(pki.ca.clone()),
                tls_cert_path: cert.map(|c| c.0.to_path_buf()),
                tls_key_path: cert.map(|c| c.1.to_path_buf()),
                tls_server_name: String::new(),
            },
            "test",
            larch_store::tls_client::Roots::Required,
            Duration::from_secs(60),
        )
        .unwrap()
    };
    let with_cert = grpc_client(Some((pki.client_cert.as_path(), pki.client_key.as_path())));
    grpc_push_tls(g, &with_cert, &[], protobuf_body_raw(now_ns())).unwrap();
    let no_cert = grpc_client(None);
    // Refused in the handshake: the client sees the server's alert, a
    // failed connection or, when the server closes first, a broken pipe;
    // never an answer from the service.
    let e = grpc_push_tls(g, &no_cert, &[], protobuf_body_raw(now_ns())).unwrap_err();
    assert!(
        ["CertificateRequired", "connect", "transport error"]
            .iter()
            .any(|t| e.contains(t)),
        "{e}"
    );
    let rogue = grpc_client(Some((pki.rogue_cert.as_path(), pki.rogue_key.as_path())));
    grpc_push_tls(g, &rogue, &[], protobuf_body_raw(now_ns())).unwrap_err();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain_refused = rt.block_on(async {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{g}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5));
        match ep.connect().await {
            Ok(ch) => push_on(ch, &[], protobuf_body_raw(now_ns())).await.is_err(),
            Err(_) => true,
        }
    });
    assert!(plain_refused, "plain gRPC was answered");
    // Rotation in place, seen on both ports.
    let before = served_subject(port, &pki, "http/1.1");
    assert!(before.ends_with("CN=larch-store"), "{before}");
    let before = served_subject(g, &pki, "h2");
    assert!(before.ends_with("CN=larch-store"), "{before}");
    pki.rotate_server("larch-store-rotated");
    wait_until("the rotated certificate is served", || {
        served_subject(port, &pki, "http/1.1").ends_with("CN=larch-store-rotated")
    });
    wait_until("the rotated certificate is served on the gRPC port", || {
        served_subject(g, &pki, "h2").ends_with("CN=larch-store-rotated")
    });
    let r = store.request("GET", "/ready", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    // A new gRPC connection checks the rotated certificate against the CA.
    grpc_push_tls(g, &with_cert, &[], protobuf_body_raw(now_ns())).unwrap();
    let m = store.request("GET", "/metrics", &[], b"").unwrap().text();
    assert!(
        m.contains("larch_auth_reloads_total{file=\"tls\",result=\"success\"}"),
        "{m}"
    );
    for listener in ["http", "grpc"] {
        assert!(
            m.contains(&format!(
                "larch_tls_handshake_failures_total{{listener=\"{listener}\"}}"
            )),
            "{listener}: {m}"
        );
    }
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
    // A stream with a `__tenant_id__` of its own keeps it as
    // `original___tenant_id__`, and is selected by it.
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Scope-OrgID", "team-b"),
            ("Authorization", &auth),
        ],
        &protobuf_lines(
            "{app=\"legacy\", __tenant_id__=\"old-tenant\"}",
            now,
            &["line of legacy".to_string()],
        ),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    for q in [
        "{app=\"legacy\"}",
        "{original___tenant_id__=\"old-tenant\"}",
        "{app=~\".+\", original___tenant_id__=~\"old-.*\", __tenant_id__=\"team-b\"}",
    ] {
        let v = query("team-a|team-b", &both, q).ok_json();
        let result = v["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 1, "{q}: {v}");
        assert_eq!(
            result[0]["stream"],
            serde_json::json!({"app": "legacy", "__tenant_id__": "team-b", "original___tenant_id__": "old-tenant", "service_name": "legacy", "detected_level": "unknown"}),
            "{q}"
        );
        assert_eq!(result[0]["values"][0][1], "line of legacy");
    }
    let v = query(
        "team-a|team-b",
        &both,
        "{original___tenant_id__=\"team-b\"}",
    )
    .ok_json();
    assert_eq!(v["data"]["result"], serde_json::json!([]), "{v}");
    // Alone, the tenant's own label is the stream's, unrenamed.
    let v = query("team-b", &both, "{app=\"legacy\"}").ok_json();
    assert_eq!(
        v["data"]["result"][0]["stream"],
        serde_json::json!({"app": "legacy", "__tenant_id__": "old-tenant", "service_name": "legacy", "detected_level": "unknown"})
    );
    let get = |path: &str| {
        request(
            store.http,
            "GET",
            path,
            &[("X-Scope-OrgID", "team-a|team-b"), ("Authorization", &auth)],
            b"",
        )
        .unwrap()
        .ok_json()
    };
    let names = get("/loki/api/v1/labels");
    assert!(
        names["data"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("original___tenant_id__")),
        "{names}"
    );
    assert_eq!(
        get("/loki/api/v1/label/original___tenant_id__/values")["data"],
        serde_json::json!(["old-tenant"])
    );
    assert_eq!(
        get("/loki/api/v1/series?match[]=%7Bapp%3D%22legacy%22%7D")["data"],
        serde_json::json!([{"__tenant_id__": "team-b", "app": "legacy", "original___tenant_id__": "old-tenant", "service_name": "legacy"}])
    );
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

/// The failed-attempt limit applies to failures only: past the limit, an
/// address's bad and missing tokens get 429 (with Retry-After), while a
/// valid token from the same address still reads and writes, over HTTP and
/// gRPC, as clients sharing one gateway need.
#[test]
fn failure_limit_spares_valid_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens();
    let tokens_file = dir.path().join("tokens.yaml");
    std::fs::write(&tokens_file, &t.file).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "auth:\n  tokens_file: {}\n  max_failures_per_minute: 3\n",
            tokens_file.display()
        ))
        .start();
    let call = |p: &str, h: &[(&str, &str)]| request(store.http, "GET", p, h, b"").unwrap();
    let labels = "/loki/api/v1/labels";
    let guess = bearer("not-a-token");
    for i in 0..3 {
        let r = call(labels, &[("Authorization", &guess)]);
        assert_eq!(r.status, 401, "guess {i}: {}", r.text());
    }
    // Over the limit: bad and missing credentials are answered 429.
    let r = call(labels, &[("Authorization", &guess)]);
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(r.text().contains("too many failed authentication attempts"));
    assert_eq!(call(labels, &[]).status, 429);
    // A valid token from the same address (127.0.0.1) still works.
    let reader = bearer(&t.reader_a);
    let r = call(labels, &[("Authorization", &reader)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let writer = bearer(&t.writer_a);
    let r = request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Authorization", &writer),
        ],
        &protobuf_lines("{app=\"limit\"}", now_ns(), &["after the block".into()]),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    grpc_push(
        store.grpc,
        &[("authorization", writer.clone())],
        protobuf_body_raw(now_ns()),
    )
    .unwrap();
    let e = grpc_push(
        store.grpc,
        &[("authorization", guess.clone())],
        protobuf_body_raw(now_ns()),
    )
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // A valid token refused for its tenant keeps its own answer, and the
    // block still holds for guesses after the valid requests.
    let r = call(
        labels,
        &[("Authorization", &reader), ("X-Scope-OrgID", "team-b")],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(call(labels, &[("Authorization", &guess)]).status, 429);
    let metrics = call("/metrics", &[]).text();
    for (reason, protocol) in [
        ("invalid_credentials", "http"),
        ("rate_limited", "http"),
        ("rate_limited", "grpc"),
    ] {
        assert!(
            metrics.contains(&format!(
                "larch_auth_denied_requests_total{{reason=\"{reason}\",protocol=\"{protocol}\"}}"
            )),
            "{reason} {protocol}: {metrics}"
        );
    }
    assert!(
        metrics.contains("larch_auth_allowed_requests_total{token=\"reader-a\",action=\"read\"} 1"),
        "{metrics}"
    );
}

/// `/metrics` closed (left out of `auth.unauthenticated_paths`): Prometheus
/// scrapes it with any token that reads, not only an administrator's; a
/// write-only token and no token are refused.
#[test]
fn closed_metrics_take_a_read_token() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens();
    let tokens_file = dir.path().join("tokens.yaml");
    std::fs::write(&tokens_file, &t.file).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "auth:\n  tokens_file: {}\n  unauthenticated_paths: [/ready]\n",
            tokens_file.display()
        ))
        .start();
    let get = |auth: Option<&str>| {
        let h: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        request(store.http, "GET", "/metrics", &h, b"").unwrap()
    };
    assert_eq!(get(None).status, 401);
    let r = get(Some(&bearer(&t.reader_a)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("larch_build_info"), "{}", r.text());
    // A read-write token of two tenants needs no X-Scope-OrgID here.
    assert_eq!(get(Some(&bearer(&t.rw_ab))).status, 200);
    assert_eq!(get(Some(&bearer(&t.admin))).status, 200);
    let r = get(Some(&bearer(&t.writer_a)));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("has write access"), "{}", r.text());
    assert_eq!(
        request(store.http, "GET", "/ready", &[], b"")
            .unwrap()
            .status,
        200
    );
}

/// `labels`, `label/{name}/values` and `series` for `X-Scope-OrgID: a|b`,
/// as Loki's multi-tenant querier answers them: the union of the tenants'
/// label names plus `__tenant_id__`, the tenants as the values of
/// `__tenant_id__`, every series with its tenant; a matcher on
/// `__tenant_id__` chooses tenants. The token must hold every tenant.
#[test]
fn multi_tenant_metadata() {
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
    for (tenant, labels) in [
        ("team-a", "{app=\"web\", only_a=\"x\"}"),
        ("team-b", "{app=\"db\"}"),
        ("team-b", "{app=\"web\"}"),
    ] {
        let r = request(
            store.http,
            "POST",
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("X-Scope-OrgID", tenant),
                ("Authorization", &auth),
            ],
            &protobuf_lines(labels, now, &["a line".to_string()]),
        )
        .unwrap();
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let get = |path: &str, params: &[(&str, &str)], org: &str, token: &str| {
        let a = bearer(token);
        let start = (now - 3_600_000_000_000).to_string();
        let end = (now + 60_000_000_000).to_string();
        let mut all = vec![("start", start.as_str()), ("end", end.as_str())];
        all.extend_from_slice(params);
        request(
            store.http,
            "GET",
            &format!("{path}{}", larch_testkit::http::query_string(&all)),
            &[("X-Scope-OrgID", org), ("Authorization", &a)],
            b"",
        )
        .unwrap()
    };
    let strings = |r: Response| -> Vec<String> {
        let v = r.ok_json();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let ab = "team-a|team-b";
    assert_eq!(
        strings(get("/loki/api/v1/labels", &[], ab, &both)),
        ["__tenant_id__", "app", "only_a", "service_name"]
    );
    // One tenant: its own names, no __tenant_id__ (service_name is the
    // store's, from app, as Loki's discover_service_name).
    assert_eq!(
        strings(get("/loki/api/v1/labels", &[], "team-b", &both)),
        ["app", "service_name"]
    );
    assert_eq!(
        strings(get("/loki/api/v1/label/app/values", &[], ab, &both)),
        ["db", "web"]
    );
    assert_eq!(
        strings(get(
            "/loki/api/v1/label/app/values",
            &[("query", "{__tenant_id__=\"team-a\"}")],
            ab,
            &both
        )),
        ["web"]
    );
    assert_eq!(
        strings(get(
            "/loki/api/v1/label/__tenant_id__/values",
            &[],
            ab,
            &both
        )),
        ["team-a", "team-b"]
    );
    let series = |params: &[(&str, &str)]| -> Vec<String> {
        let v = get("/loki/api/v1/series", params, ab, &both).ok_json();
        let mut out: Vec<String> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        series(&[("match[]", "{app=\"web\"}")]),
        [
            r#"{"__tenant_id__":"team-a","app":"web","only_a":"x","service_name":"web"}"#,
            r#"{"__tenant_id__":"team-b","app":"web","service_name":"web"}"#,
        ]
    );
    assert_eq!(
        series(&[("match[]", "{app=~\".+\", __tenant_id__=~\"team-b\"}")]),
        [
            r#"{"__tenant_id__":"team-b","app":"db","service_name":"db"}"#,
            r#"{"__tenant_id__":"team-b","app":"web","service_name":"web"}"#,
        ]
    );
    // Every tenant named must be the token's, on each endpoint.
    for path in [
        "/loki/api/v1/labels",
        "/loki/api/v1/label/app/values",
        "/loki/api/v1/series",
    ] {
        assert_eq!(get(path, &[], ab, &only_a).status, 403, "{path}");
    }
}
