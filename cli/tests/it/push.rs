//! `larch push`: lines from stdin into the store, batched, with tenants,
//! timestamps, and clear errors.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{SEC, base_time, larch, rfc3339, secs, start_store};

#[test]
fn pushed_lines_come_back() {
    let store = start_store();
    let addr = store.addr();
    let b = base_time();
    let input = format!(
        "{} first line\n{} second line\n{}.25 third line\n",
        secs(b + SEC),
        rfc3339(b + 2 * SEC),
        secs(b + 3 * SEC)
    );
    let r = larch(&[
        "push",
        "--addr",
        &addr,
        "--labels",
        r#"{app="cli", source="stdin"}"#,
        "--with-timestamps",
    ])
    .stdin(&input)
    .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "Pushed 3 lines (31 B) in 1 request.\n");

    let (from, to) = (secs(b), secs(b + 60 * SEC));
    let q = |extra: &[&str]| {
        let mut args = vec![
            "query", "-q", "--addr", &addr, "-z", "UTC", "--from", &from, "--to", &to,
        ];
        args.extend_from_slice(extra);
        args.push(r#"{app="cli"}"#);
        larch(&args).run()
    };
    let r = q(&[
        "--forward",
        "--include-common-labels",
        "--output-timestamp-format",
        "rfc3339nano",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let t3 = rfc3339(b + 3 * SEC).replace('Z', ".25Z");
    assert_eq!(
        r.stdout,
        format!(
            "{} {{app=\"cli\", service_name=\"cli\", source=\"stdin\"}} first line\n\
             {} {{app=\"cli\", service_name=\"cli\", source=\"stdin\"}} second line\n\
             {t3} {{app=\"cli\", service_name=\"cli\", source=\"stdin\"}} third line\n",
            rfc3339(b + SEC),
            rfc3339(b + 2 * SEC),
        )
    );
    // jsonl carries nanoseconds.
    let r = q(&["-o", "jsonl", "--limit", "1", "--no-labels"]);
    assert_eq!(
        r.stdout,
        format!("{{\"line\":\"third line\",\"timestamp\":\"{t3}\"}}\n")
    );
}

#[test]
fn identical_lines_get_distinct_timestamps_and_batches_split() {
    let store = start_store();
    let addr = store.addr();
    // Five identical 10-byte lines, sent in batches of at most 20 bytes.
    let r = larch(&[
        "push",
        "--addr",
        &addr,
        "--labels",
        r#"{app="same"}"#,
        "--batch-size",
        "20B",
    ])
    .stdin("0123456789\n0123456789\n0123456789\n0123456789\n0123456789\n")
    .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "Pushed 5 lines (50 B) in 3 requests.\n");
    let r = larch(&[
        "query",
        "-q",
        "--addr",
        &addr,
        "--since",
        "5m",
        "-o",
        "raw",
        r#"{app="same"}"#,
    ])
    .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "0123456789\n".repeat(5));

    // Empty input pushes nothing and says so.
    let r = larch(&["push", "--addr", &addr, "--labels", r#"{app="same"}"#]).run();
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, "Pushed 0 lines (0 B) in 0 requests.\n")
    );
}

#[test]
fn a_waiting_batch_is_sent_after_batch_wait() {
    let store = start_store();
    let addr = store.addr();
    let mut child = larch(&[
        "push",
        "--addr",
        &addr,
        "--labels",
        r#"{app="slow"}"#,
        "--batch-wait",
        "200ms",
    ])
    .spawn();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"early line\n").unwrap();
    stdin.flush().unwrap();
    // stdin stays open: the line must arrive because of the timer.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = larch(&[
            "query",
            "-q",
            "--addr",
            &addr,
            "--since",
            "5m",
            "-o",
            "raw",
            r#"{app="slow"}"#,
        ])
        .run();
        if r.stdout == "early line\n" {
            break;
        }
        assert!(Instant::now() < deadline, "the line never arrived: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Pushed 1 lines (10 B) in 1 request.\n"
    );
}

#[test]
fn tenants_flags_and_environment() {
    let store = start_store();
    let addr = store.addr();
    let r = larch(&[
        "push",
        "-q",
        "--labels",
        r#"{app="t"}"#,
        "--org-id",
        "team-a",
    ])
    .env("LARCH_ADDR", &addr)
    .stdin("for team a\n")
    .run();
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{r:?}");
    let query = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["query", "-q", "--since", "5m", "-o", "raw"];
        args.extend_from_slice(extra);
        args.push(r#"{app="t"}"#);
        let mut l = larch(&args);
        for (k, v) in env {
            l = l.env(k, v);
        }
        l.run()
    };
    // Another tenant, and no tenant, see nothing.
    let r = query(&["--addr", &addr, "--org-id", "team-b"], &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let r = query(&["--addr", &addr], &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    // LOKI_* variables are the fallback of LARCH_* ones.
    let r = query(&[], &[("LOKI_ADDR", &addr), ("LOKI_ORG_ID", "team-a")]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "for team a\n"), "{r:?}");
    let r = query(
        &[],
        &[
            ("LARCH_ADDR", &addr),
            ("LARCH_ORG_ID", "team-a"),
            ("LOKI_ORG_ID", "team-b"),
        ],
    );
    assert_eq!(r.stdout, "for team a\n");
    let r = query(
        &[],
        &[("LARCH_ADDR", "http://127.0.0.1:1"), ("LOKI_ADDR", &addr)],
    );
    assert_eq!(r.code, 1, "LARCH_ADDR wins over LOKI_ADDR: {r:?}");
    // The flag wins over the environment.
    let r = query(
        &["--org-id", "team-a", "--addr", &addr],
        &[("LARCH_ADDR", "http://127.0.0.1:1")],
    );
    assert_eq!(r.stdout, "for team a\n");
}

#[test]
fn bad_input_is_a_clear_error() {
    let store = start_store();
    let addr = store.addr();
    let r = larch(&["push", "--addr", &addr, "--labels", "app=x"])
        .stdin("x\n")
        .run();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: invalid --labels \"app=x\": parse error at line 1, col 1: syntax error: unexpected 'a', expecting {\n"
    );

    // A line without a timestamp: what came before is pushed, the rest is not.
    let b = base_time();
    let input = format!("{} good\nbad line\n{} never sent\n", secs(b), secs(b + SEC));
    let r = larch(&[
        "push",
        "--addr",
        &addr,
        "--labels",
        r#"{app="bad"}"#,
        "--with-timestamps",
    ])
    .stdin(&input)
    .run();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(
            "Error: line 2: no timestamp at the start: cannot read time \"bad\": use RFC 3339"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .ends_with("; it and the lines after it were not pushed\n"),
        "{}",
        r.stderr
    );
    let r = larch(&[
        "query",
        "-q",
        "--addr",
        &addr,
        "--since",
        "1h",
        "-o",
        "raw",
        r#"{app="bad"}"#,
    ])
    .run();
    assert_eq!(r.stdout, "good\n");

    // The store refuses a line that is too old: its message, exit 1.
    let r = larch(&[
        "push",
        "--addr",
        &addr,
        "--labels",
        r#"{app="old"}"#,
        "--with-timestamps",
    ])
    .stdin("2001-01-01T00:00:00Z ancient\n")
    .run();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with(
            "Error: pushing lines 1 to 1; 0 lines were pushed before: 400 Bad Request: "
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("has timestamp too old"), "{}", r.stderr);

    // A line that is not UTF-8 is kept, its bad byte replaced, with a
    // warning.
    let r = larch(&["push", "--addr", &addr, "--labels", r#"{app="bytes"}"#])
        .stdin_bytes(b"ok\xff\n")
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stderr,
        "warning: 1 lines were not valid UTF-8; their invalid bytes were replaced by U+FFFD\n\
         Pushed 1 lines (5 B) in 1 request.\n"
    );
    let r = larch(&[
        "query",
        "-q",
        "--addr",
        &addr,
        "--since",
        "1h",
        "-o",
        "raw",
        r#"{app="bytes"}"#,
    ])
    .run();
    assert_eq!(r.stdout, "ok\u{FFFD}\n");
}
