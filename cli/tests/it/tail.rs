//! `larch query --tail`: a real WebSocket to the store's
//! `/loki/api/v1/tail`; lines pushed while it runs must appear promptly.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{StoreExt, larch, now_ns, rfc3339, start_store};

/// The lines a running `larch` writes to stdout, as they come.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no line for {what} within 10 s"))
}

fn interrupt(child: &Child) {
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
}

#[test]
fn history_then_new_lines_until_interrupted() {
    let store = start_store();
    let addr = store.addr();
    let t0 = now_ns() - 60_000_000_000;
    store.push(
        None,
        &[(
            &[("app", "live"), ("pod", "a")],
            &[(t0, "old one"), (t0 + 1, "old two")],
        )],
    );

    let mut child = larch(&[
        "query",
        "--tail",
        "-q",
        "-z",
        "UTC",
        "--addr",
        &addr,
        r#"{app="live"}"#,
    ])
    .spawn();
    let rx = stdout_lines(&mut child);
    // The recent history comes first, oldest first, with full labels.
    assert_eq!(
        next(&rx, "history"),
        format!(
            "{} {{app=\"live\", pod=\"a\", service_name=\"live\"}} old one",
            rfc3339(t0)
        )
    );
    assert_eq!(
        next(&rx, "history"),
        format!(
            "{} {{app=\"live\", pod=\"a\", service_name=\"live\"}} old two",
            rfc3339(t0 + 1)
        )
    );
    // New lines of two streams, and a line of another app that must not show.
    for i in 0..3 {
        let t = now_ns();
        store.push(
            None,
            &[
                (
                    &[("app", "live"), ("pod", "b")],
                    &[(t, &format!("new {i}"))],
                ),
                (&[("app", "other")], &[(t, "not for this tail")]),
            ],
        );
        let got = next(&rx, "a new line");
        assert_eq!(
            got,
            format!(
                "{} {{app=\"live\", pod=\"b\", service_name=\"live\"}} new {i}",
                rfc3339(t)
            )
        );
    }
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn raw_and_jsonl_while_tailing() {
    let store = start_store();
    let addr = store.addr();
    for (mode, want) in [
        ("raw", "  spaced line".to_string()),
        ("jsonl", String::new()),
    ] {
        let mut child = larch(&[
            "query",
            "--tail",
            "-q",
            "-z",
            "UTC",
            "-o",
            mode,
            "--since",
            "1s",
            "--addr",
            &addr,
            &format!("{{app=\"fmt-{mode}\"}}"),
        ])
        .spawn();
        let rx = stdout_lines(&mut child);
        // Push until the tail is connected and the line comes through.
        let app = format!("fmt-{mode}");
        let mut got = None;
        for _ in 0..50 {
            let t = now_ns();
            store.push(None, &[(&[("app", app.as_str())], &[(t, "  spaced line")])]);
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                got = Some((t, line));
                break;
            }
        }
        let (t, line) = got.expect("the tail never delivered a line");
        if mode == "raw" {
            assert_eq!(line, want);
        } else {
            let ts = chrono::DateTime::from_timestamp_nanos(t)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["line"], "  spaced line");
            assert_eq!(v["labels"]["app"], app.as_str());
            // Same instant as pushed (the text may differ in trailing zeros).
            let parsed =
                chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
            assert_eq!(parsed.timestamp_nanos_opt(), Some(t), "{ts} vs {line}");
        }
        interrupt(&child);
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn tail_errors() {
    let store = start_store();
    let addr = store.addr();
    // A bad query is refused before the WebSocket starts: the store's text.
    let q = r#"{app="x"} |="#;
    let r = larch(&["query", "--tail", "-q", "--addr", &addr, q]).run();
    assert_eq!(r.code, 1, "{r:?}");
    let want = larch_query::logql::parse_expr(q).unwrap_err();
    assert_eq!(r.stderr, format!("Error: 400 Bad Request: {want}\n"));

    // The store shutting down ends the tail with its reason and exit 1.
    let mut child = larch(&["query", "--tail", "-q", "--addr", &addr, r#"{app="x"}"#]).spawn();
    let rx = stdout_lines(&mut child);
    // Wait until the tail is up: a pushed line arrives.
    let mut up = false;
    for _ in 0..50 {
        store.push(None, &[(&[("app", "x")], &[(now_ns(), "ping")])]);
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            up = true;
            break;
        }
    }
    assert!(up, "the tail never delivered a line");
    store.terminate();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: the live tail ended: the store is shutting down (1001)\n"
    );
}
