//! Issue 14: logcli's TLS, credential and proxy flags and environment
//! variables, each against a store that requires a client certificate
//! (mTLS) and a token.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use larch_testkit::http::Tls;
use larch_testkit::pki::Pki;

use super::support::*;

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

struct Secure {
    _dir: tempfile::TempDir,
    store: StoreProcess,
    pki: Pki,
    token: String,
    token_file: PathBuf,
}

fn secure_store() -> Secure {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki"));
    let (token, entry) = new_token("cli", "team-a,team-c", "read-write");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("tokens:\n{entry}")).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let store = StoreProcess::builder()
        .data_dir(dir.path().join("data"))
        .config(format!(
            "auth:\n  tokens_file: {}\ntls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
            tokens.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ))
        .tls(Tls::new(&pki.ca).with_client(&pki.client_cert, &pki.client_key))
        .start();
    Secure {
        _dir: dir,
        store,
        pki,
        token,
        token_file,
    }
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn logcli_flags_and_variables_against_a_tls_and_token_store() {
    let s = secure_store();
    let addr = s.store.addr();
    assert!(addr.starts_with("https://"));
    let (ca, cert, key) = (p(&s.pki.ca), p(&s.pki.client_cert), p(&s.pki.client_key));
    let tls = ["--ca-cert", ca, "--cert", cert, "--key", key];
    let bearer = ["--bearer-token", s.token.as_str()];
    let org = ["--org-id", "team-a"];
    let run = |args: &[&[&str]]| {
        let mut all: Vec<&str> = vec!["-q", "--addr", &addr];
        for a in args {
            all.extend_from_slice(a);
        }
        larch(&all)
    };
    // Push with larch push over TLS with the token, then read it back.
    let r = run(&[
        &tls,
        &bearer,
        &org,
        &["push", "--labels", "{app=\"cli-tls\"}"],
    ])
    .stdin("one line over tls\n")
    .run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let labels_ok = |r: Run, what: &str| {
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert!(r.stdout.lines().any(|l| l == "app"), "{what}: {}", r.stdout);
    };
    labels_ok(run(&[&tls, &bearer, &org, &["labels"]]).run(), "flags");
    let q = run(&[
        &tls,
        &bearer,
        &org,
        &["query", "--since", "1h", "-o", "raw", "{app=\"cli-tls\"}"],
    ])
    .run();
    assert_eq!(
        (q.code, q.stdout.as_str()),
        (0, "one line over tls\n"),
        "{}",
        q.stderr
    );
    labels_ok(
        run(&[
            &tls,
            &["--bearer-token-file", p(&s.token_file)],
            &org,
            &["labels"],
        ])
        .run(),
        "--bearer-token-file",
    );
    labels_ok(
        run(&[
            &tls,
            &["--username", "me", "--password", &s.token],
            &org,
            &["labels"],
        ])
        .run(),
        "--username/--password",
    );
    labels_ok(
        run(&[
            &tls,
            &["--auth-header", "Authorization"],
            &bearer,
            &org,
            &["labels"],
        ])
        .run(),
        "--auth-header",
    );
    labels_ok(
        run(&[
            &["--tls-skip-verify", "--cert", cert, "--key", key],
            &bearer,
            &org,
            &["labels"],
        ])
        .run(),
        "--tls-skip-verify",
    );
    // logcli's --colored-output: colours even into a pipe.
    let q = run(&[
        &tls,
        &bearer,
        &org,
        &[
            "query",
            "--colored-output",
            "--since",
            "1h",
            "{app=\"cli-tls\"}",
        ],
    ])
    .run();
    assert_eq!(q.code, 0, "--colored-output: {}", q.stderr);
    assert!(
        q.stdout.contains("one line over tls") && q.stdout.contains("\x1b["),
        "--colored-output: {:?}",
        q.stdout
    );
    // The same through the environment variables.
    let env = |l: Larch| {
        l.env("LOKI_CA_CERT_PATH", ca)
            .env("LOKI_CLIENT_CERT_PATH", cert)
            .env("LOKI_CLIENT_KEY_PATH", key)
            .env("LOKI_ORG_ID", "team-a")
    };
    labels_ok(
        env(run(&[&["labels"]]))
            .env("LOKI_BEARER_TOKEN", &s.token)
            .run(),
        "LOKI_BEARER_TOKEN",
    );
    labels_ok(
        env(run(&[&["labels"]]))
            .env("LOKI_BEARER_TOKEN_FILE", p(&s.token_file))
            .run(),
        "LOKI_BEARER_TOKEN_FILE",
    );
    labels_ok(
        env(run(&[&["labels"]]))
            .env("LOKI_USERNAME", "me")
            .env("LOKI_PASSWORD", &s.token)
            .run(),
        "LOKI_USERNAME/LOKI_PASSWORD",
    );
    labels_ok(
        run(&[&["--cert", cert, "--key", key], &bearer, &org, &["labels"]])
            .env("LOKI_TLS_SKIP_VERIFY", "true")
            .run(),
        "LOKI_TLS_SKIP_VERIFY",
    );

    // What each of them guards against.
    let fails = |r: Run, what: &str, text: &str| {
        assert_eq!(r.code, 1, "{what}: {}", r.stdout);
        assert!(r.stderr.contains(text), "{what}: {}", r.stderr);
    };
    fails(run(&[&tls, &org, &["labels"]]).run(), "no token", "401");
    fails(
        run(&[&tls, &bearer, &["--org-id", "team-b", "labels"]]).run(),
        "other tenant",
        "forbidden: token 'cli' may not act for tenant 'team-b'",
    );
    fails(
        run(&[&tls, &bearer, &["labels"]]).run(),
        "two tenants, none named",
        "no org id",
    );
    fails(
        run(&[
            &tls,
            &["--auth-header", "X-Token"],
            &bearer,
            &org,
            &["labels"],
        ])
        .run(),
        "another header",
        "401",
    );
    fails(
        run(&[&["--ca-cert", ca], &bearer, &org, &["labels"]]).run(),
        "no client certificate",
        "",
    );
    fails(
        run(&[&["--cert", cert, "--key", key], &bearer, &org, &["labels"]]).run(),
        "unknown CA",
        "",
    );
    fails(
        run(&[
            &[
                "--ca-cert",
                p(&s.pki.rogue_cert),
                "--cert",
                cert,
                "--key",
                key,
            ],
            &bearer,
            &org,
            &["labels"],
        ])
        .run(),
        "wrong CA",
        "",
    );

    // Through an HTTP proxy (CONNECT).
    let proxy = Proxy::start();
    let url = format!("http://127.0.0.1:{}", proxy.port);
    labels_ok(
        run(&[&tls, &bearer, &org, &["--proxy-url", &url, "labels"]]).run(),
        "--proxy-url",
    );
    assert!(
        proxy.tunnels.load(Ordering::SeqCst) >= 1,
        "nothing went through the proxy"
    );
}

/// A minimal HTTP proxy: `CONNECT host:port` tunnels to 127.0.0.1 only.
struct Proxy {
    port: u16,
    tunnels: Arc<AtomicUsize>,
}

impl Proxy {
    fn start() -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let count = tunnels.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut client) = conn else { return };
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut b).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    if !head.starts_with("CONNECT ") || !target.starts_with("127.0.0.1:") {
                        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
                        return;
                    }
                    let Ok(upstream) = TcpStream::connect(&target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    let (mut c2, mut u2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c1, mut u1) = (client, upstream);
                    let a = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c1, &mut u1);
                        let _ = u1.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                    let _ = a.join();
                });
            }
        });
        Proxy { port, tunnels }
    }
}
