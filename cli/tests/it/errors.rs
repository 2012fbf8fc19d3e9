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

#[test]
fn log_format_shapes_errors_retries_and_request_urls() {
    let f = fixture();
    // text: logcli's lines (the default, and said outright).
    let text = f
        .ranged(&["query", "--log-format", "text", r#"{app="api""#])
        .run();
    assert_eq!(text.code, 1);
    assert!(
        text.stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("Error: 400 Bad Request: parse error"),
        "{}",
        text.stderr
    );
    // json: one object per line, the request first, then the error.
    let r = f
        .ranged(&["query", "--log-format", "json", r#"{app="api""#])
        .run();
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(events.len(), 2, "{}", r.stderr);
    assert_eq!(events[0]["level"], "INFO");
    assert_eq!(events[0]["fields"]["message"], "Request.");
    assert!(
        events[0]["fields"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/loki/api/v1/query_range?", f.store.addr())),
        "{}",
        events[0]
    );
    assert_eq!(events[1]["level"], "ERROR");
    assert_eq!(events[1]["fields"]["message"], "The command failed.");
    let want = larch_query::logql::parse_expr(r#"{app="api""#).unwrap_err();
    assert_eq!(
        events[1]["fields"]["error"],
        format!("400 Bad Request: {want}")
    );
    // logfmt: retries of a refused connection, then the error, each a
    // key=value line as the store writes them.
    let addr = format!("http://127.0.0.1:{}", free_port());
    let r = larch(&[
        "labels",
        "--addr",
        &addr,
        "--retries",
        "1",
        "--log-format",
        "logfmt",
    ])
    .run();
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stderr);
    for l in &lines {
        assert!(l.starts_with("level="), "{l}");
        assert!(l.contains(" ts="), "{l}");
    }
    assert!(
        lines[0].starts_with("level=info ") && lines[0].contains(" msg=Request. url="),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("level=warn ")
            && lines[1].contains(r#"msg="A request failed; retrying." error="cannot connect to"#)
            && lines[1].contains(" attempt=1 retries=1"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("level=error ")
            && lines[2].contains(r#"msg="The command failed." error="cannot connect to"#),
        "{}",
        lines[2]
    );
    // Not a format.
    let r = larch(&["labels", "--log-format", "yaml"]).run();
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("invalid log format \"yaml\": expected text, logfmt or json"),
        "{}",
        r.stderr
    );
}
