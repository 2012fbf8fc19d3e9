//! Failures: the server's message and exit 1; unusable addresses; the
//! command line itself.

use crate::fixture::fixture;
use std::time::Duration;

use crate::support::{free_port, larch, start_store_on};

#[test]
fn bad_queries_show_the_servers_parse_error() {
    let f = fixture();
    for q in [
        r#"{app="api""#,
        r#"{app="api"} |= "x" | json |"#,
        "sum(rate({app=\"api\"}))",
    ] {
        let r = f.ranged(&["query", "-q", q]).run();
        assert_eq!(r.code, 1, "{q}: {r:?}");
        assert_eq!(r.stdout, "");
        let want = larch_query::logql::parse_expr(q).unwrap_err();
        assert_eq!(r.stderr, format!("Error: 400 Bad Request: {want}\n"), "{q}");
        assert!(r.stderr.contains("parse error"), "{}", r.stderr);
    }
    // Without -q the request is shown first.
    let r = f.ranged(&["query", "{"]).run();
    assert_eq!(r.code, 1);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(lines[0].starts_with(&format!(
        "{}/loki/api/v1/query_range?query=%7B&",
        f.store.addr()
    )));
    assert!(
        lines[1].starts_with("Error: 400 Bad Request: parse error at line 1, col 2: "),
        "{}",
        r.stderr
    );
}

#[test]
fn unreachable_and_unsupported_addresses() {
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["query", "-q", "--addr", &addr, r#"{a="b"}"#],
        vec!["labels", "-q", "--addr", &addr],
        vec!["query", "-q", "--tail", "--addr", &addr, r#"{a="b"}"#],
    ] {
        let r = larch(&args).run();
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .starts_with(&format!("Error: cannot connect to {addr}/loki/api/v1/")),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
        assert!(
            r.stderr
                .ends_with("(is the store running there? set --addr or LARCH_ADDR)\n"),
            "{}",
            r.stderr
        );
    }
    // https:// is spoken: a closed port is a connection error like any.
    let port = free_port();
    let r = larch(&["labels", "--addr", &format!("https://127.0.0.1:{port}")]).run();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "Error: cannot connect to https://127.0.0.1:{port}/loki/api/v1/labels: "
        )),
        "{}",
        r.stderr
    );
    let r = larch(&["labels", "--addr", "localhost:3100"]).run();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("must start with http://"), "{}", r.stderr);
}

#[test]
fn command_line_mistakes() {
    // clap's usage errors exit 2.
    let r = larch(&["query"]).run();
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("<QUERY>"), "{}", r.stderr);
    let r = larch(&["frobnicate"]).run();
    assert_eq!(r.code, 2);

    // Our own checks exit 1 with the reason, before any request.
    for (args, msg) in [
        (
            vec!["query", "--since", "5 minutes", "{a=\"b\"}"],
            "Error: --since: cannot read duration \"5 minutes\"",
        ),
        (
            vec!["query", "--from", "yesterday", "{a=\"b\"}"],
            "Error: --from: cannot read time \"yesterday\"",
        ),
        (
            vec![
                "query",
                "--from",
                "2024-01-02",
                "--to",
                "2024-01-01",
                "{a=\"b\"}",
            ],
            "Error: the range is empty",
        ),
        (
            vec!["query", "--batch", "0", "{a=\"b\"}"],
            "Error: --batch must be at least 1",
        ),
        (
            vec!["labels", "-z", "Mars"],
            "Error: --timezone: unknown timezone \"Mars\"",
        ),
        (
            vec!["labels", "--header", "nocolon"],
            "Error: invalid header \"nocolon\"",
        ),
        (
            vec!["push", "--labels", "{}"],
            "Error: invalid --labels \"{}\": at least one label",
        ),
        (
            vec!["push", "--labels", "{a=\"b\"}", "--batch-size", "lots"],
            "Error: --batch-size \"lots\"",
        ),
    ] {
        let r = larch(&args).run();
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with(msg), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn help_has_examples() {
    let r = larch(&["--help"]).run();
    assert_eq!(r.code, 0);
    for want in [
        "Examples:",
        "larch query --tail",
        "LOKI_ADDR",
        "instant-query",
        "volume_range",
        "push",
    ] {
        assert!(
            r.stdout.contains(want),
            "{want} missing from:\n{}",
            r.stdout
        );
    }
    let r = larch(&["query", "--help"]).run();
    assert_eq!(r.code, 0);
    for want in [
        "--batch",
        "--tail",
        "--since",
        "--forward",
        "--output",
        "--org-id",
        "--include-label",
        "Examples:",
    ] {
        assert!(
            r.stdout.contains(want),
            "{want} missing from:\n{}",
            r.stdout
        );
    }
    let r = larch(&["push", "--help"]).run();
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("Examples:\n  larch push --labels"),
        "{}",
        r.stdout
    );
}

#[test]
fn retries_wait_for_a_store_that_is_starting() {
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let child = larch(&["labels", "--since", "1m", "--retries", "6", "--addr", &addr]).spawn();
    std::thread::sleep(Duration::from_millis(700));
    let store = start_store_on(port, "");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot connect to {addr}/loki/api/v1/labels: Connection refused (os error 111) \
             (is the store running there? set --addr or LARCH_ADDR); retrying in 500ms (1/6)"
        )),
        "{stderr}"
    );
    drop(store);

    // Without retries the first failure is final.
    let r = larch(&["labels", "-q", "--addr", &addr]).run();
    assert_eq!(r.code, 1, "{r:?}");
}
