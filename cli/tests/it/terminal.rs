//! Behaviour on a terminal: `larch` runs inside a pseudo-terminal made by
//! util-linux `script` (part of every Debian system), so stdout and stderr
//! are both TTYs, as for a person at a shell.

use std::process::{Command, Stdio};

use crate::fixture::fixture;
use crate::support::{SEC, StoreExt, base_time, secs, start_store_with};

/// Runs `larch args` in a pseudo-terminal; returns what the terminal
/// showed (stdout and stderr together, `\n` as `\r\n`) and the exit code.
fn in_terminal(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let mut cmd = quote(&larch_testkit::binary("larch").display().to_string());
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("TZ", "UTC")
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn colours_on_a_terminal_unless_no_color() {
    let f = fixture();
    let addr = f.store.addr();
    let (from, to) = (secs(f.base), secs(f.base + 60 * SEC));
    let args = [
        "query",
        "-q",
        "-z",
        "UTC",
        "--addr",
        &addr,
        "--from",
        &from,
        "--to",
        &to,
        r#"{app="web"}"#,
    ];
    let (code, shown) = in_terminal(&args, &[]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.starts_with(&format!("\x1b[34m{}\x1b[0m \x1b[", f.t(6))),
        "{shown:?}"
    );
    assert!(shown.ends_with("{}\x1b[0m rendered page\r\n"), "{shown:?}");

    let (code, shown) = in_terminal(&args, &[("NO_COLOR", "1")]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(shown, format!("{} {{}} rendered page\r\n", f.t(6)));
}

#[test]
fn progress_is_rewritten_in_place_and_erased() {
    let store = start_store_with("limits:\n  max_entries_limit_per_query: 5\n");
    let b = base_time();
    let lines: Vec<(i64, String)> = (0..12).map(|i| (b + i * SEC, format!("l{i:02}"))).collect();
    let values: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    store.push(None, &[(&[("app", "p")], &values)]);
    let addr = store.addr();
    let (from, to) = (secs(b), secs(b + 60 * SEC));
    let (code, shown) = in_terminal(
        &[
            "query",
            "-z",
            "UTC",
            "--addr",
            &addr,
            "--from",
            &from,
            "--to",
            &to,
            "--limit",
            "0",
            "--batch",
            "5",
            "--forward",
            "-o",
            "raw",
            r#"{app="p"}"#,
        ],
        &[],
    );
    assert_eq!(code, 0, "{shown}");
    // After the first batch: a progress line without a newline, erased
    // before the next batch's request line and lines.
    let first = format!(
        "\r\x1b[2K5 lines from 1 request, reached {}\r\x1b[2K",
        crate::support::rfc3339(b + 4 * SEC)
    );
    assert!(shown.contains(&first), "{shown:?}");
    assert!(
        shown.contains("\r\x1b[2K9 lines from 2 requests, reached "),
        "{shown:?}"
    );
    // Every line arrived once, and nothing is left on the progress line.
    let printed: Vec<&str> = shown
        .split("\r\n")
        .map(|l| l.rsplit("\x1b[2K").next().unwrap_or(l))
        .filter(|l| l.starts_with('l'))
        .collect();
    assert_eq!(
        printed,
        lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>()
    );
    assert!(shown.ends_with("l11\r\n"), "{shown:?}");
}
