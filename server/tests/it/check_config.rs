//! The `larch-store` binary's configuration as a user meets it:
//! `--check-config` on files with the store's keys and the embedded
//! agent's section, flags overriding the file, and errors that name the
//! key and its line. (The store and the embedded agent at work are tested
//! in `store/tests/it/process.rs`.)

use std::path::Path;
use std::process::{Command, Output};

fn check(config: Option<&Path>, flags: &[&str]) -> Output {
    let mut cmd = Command::new(larch_testkit::binary("larch-store"));
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(flags)
        .arg("--check-config")
        .env_remove("LARCH_CONFIG")
        .output()
        .unwrap()
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("larch.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn valid_files_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configuration is valid\n"
    );
    // The repository's own all-in-one file.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../larch.yaml");
    let out = check(Some(&repo), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = write(
        dir.path(),
        "http_addr: 127.0.0.1:3999\nagent:\n  pods_dir: /tmp/pods\n  batch_wait: 100ms\nlimits:\n  max_line_size: 1KB\n",
    );
    let out = check(
        Some(&cfg),
        &["--max-tenants", "3", "--agent-pods-dir", "/tmp/other"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn unknown_keys_are_errors_with_their_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, wanted) in [
        (
            "http_addr: 127.0.0.1:3999\nagent:\n  pods_dir: /tmp/pods\nhtp_addr: x\n",
            "unknown field `htp_addr`",
        ),
        (
            "agent:\n  pods_dir: /tmp/pods\nlimits:\n  max_lines: 3\n",
            "limits.max_lines: unknown field `max_lines`",
        ),
        (
            "agent:\n  pods_dir: /tmp/pods\n  batch_wiat: 1s\n",
            "agent.batch_wiat: unknown field `batch_wiat`",
        ),
    ] {
        let cfg = write(dir.path(), text);
        let out = check(Some(&cfg), &[]);
        assert!(!out.status.success(), "{text:?} was accepted");
        let e = stderr(&out);
        assert!(e.contains(wanted), "{text:?}: {e}");
        let line = text.lines().count();
        assert!(
            e.contains(&format!("at line {line} column")),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn invalid_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "limits:\n  ingestion_rate_mb: 0\n");
    let out = check(Some(&cfg), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("limits.ingestion_rate_mb"),
        "{}",
        stderr(&out)
    );
    let cfg = write(dir.path(), "agent:\n  batch_size: 0\n");
    let out = check(Some(&cfg), &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("invalid configuration: agent:") && e.contains("batch_size"),
        "{e}"
    );
}
