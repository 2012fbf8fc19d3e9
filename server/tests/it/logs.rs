//! The binaries' own logs: ANSI colours only on a terminal (never in a
//! file or a pipe), and `--log-format logfmt|json` on the store and the
//! agent.

use larch_testkit::{AgentProcess, StoreProcess};

#[test]
fn the_store_writes_plain_text_logfmt_or_json_to_a_file() {
    let text = StoreProcess::builder().env("LARCH_LOG", "info").start();
    let err = text.stderr();
    assert!(err.contains("Larch store is ready."), "{err}");
    assert!(!err.contains('\u{1b}'), "colours in a file: {err:?}");

    let logfmt = StoreProcess::builder()
        .env("LARCH_LOG", "info")
        .args(["--log-format", "logfmt"])
        .start();
    let err = logfmt.stderr();
    let ready = err
        .lines()
        .find(|l| l.contains("Larch store is ready."))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(ready.starts_with("level=info ts="), "{ready}");
    assert!(
        ready.contains(" target=larch_store msg=\"Larch store is ready.\" http=127.0.0.1:"),
        "{ready}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");

    let json = StoreProcess::builder()
        .env("LARCH_LOG", "info")
        .args(["--log-format", "json"])
        .start();
    let err = json.stderr();
    let ready: serde_json::Value = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["fields"]["message"] == "Larch store is ready.")
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(ready["level"], "INFO");
}

#[test]
fn the_agent_takes_the_same_formats() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::builder()
        .args([
            "--pods-dir",
            &dir.path().join("pods").display().to_string(),
            "--positions",
            &dir.path().join("positions.yaml").display().to_string(),
            "--store",
            "http://127.0.0.1:9",
            "--log-format",
            "logfmt",
            "--log-level",
            "info",
        ])
        .start();
    let err = agent.stderr();
    let start = err
        .lines()
        .find(|l| l.contains("Starting larch-agent."))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(start.starts_with("level=info ts="), "{start}");
    assert!(!err.contains('\u{1b}'), "{err:?}");

    let out = std::process::Command::new(larch_testkit::binary("larch-agent"))
        .args(["--log-format", "xml", "--check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("log_format must be text, logfmt or json"), "{e}");
}
