//! The command line: `--check-config` exit codes and messages, flags
//! mirroring YAML keys.

use std::process::Command;

fn agent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(larch_testkit::binary("larch-agent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_good_files_and_explains_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "pods_dir: /var/log/pods\nstore: grpc://larch-store:9095\nbatch_size: 512KiB\npipeline_stages:\n- cri: {}\n- json:\n    expressions: {level: }\n- labels: {level: }\n",
    )
    .unwrap();
    let (code, out, _) = agent(&["--check-config", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("valid"), "{out}");

    let cases = [
        (
            "typo.yaml",
            "batch_sise: 1MiB\n",
            "unknown field `batch_sise`",
        ),
        ("unit.yaml", "batch_wait: 10\n", "missing unit"),
        (
            "store.yaml",
            "store: ftp://x\n",
            "must start with http://, https://, grpc:// or grpcs://",
        ),
        (
            "stage.yaml",
            "pipeline_stages:\n- regex:\n    expression: '(unclosed'\n",
            "pipeline stage 0 (regex)",
        ),
        (
            "relabel.yaml",
            "relabel_configs:\n- action: keep\n",
            "relabel_configs[0]",
        ),
    ];
    for (name, text, want) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let (code, _, err) = agent(&["--check-config", "--config", f.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(want) && err.contains(name), "{name}: {err}");
    }
    let (code, _, err) = agent(&["--check-config", "--config", "/nonexistent/agent.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/agent.yaml"), "{err}");
}

#[test]
fn flags_override_the_file_and_print_config_shows_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("agent.yaml");
    std::fs::write(&f, "batch_wait: 2s\ntenant: a\n").unwrap();
    let (code, out, err) = agent(&[
        "--print-config",
        "--config",
        f.to_str().unwrap(),
        "--tenant",
        "b",
        "--node-name",
        "n9",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("batch_wait: 2s")
            && out.contains("tenant_id: b")
            && out.contains("node_name: n9"),
        "{out}"
    );
    let (code, _, err) = agent(&["--batch-wait", "soon"]);
    assert_eq!(code, 2, "clap usage error: {err}");
}

/// Issue 11: a bad value on line 2 was reported at `line 1 column 1`.
/// Every configuration error names the key path and the line and column
/// of the value at fault, also inside pipeline stages.
#[test]
fn issue_11_config_errors_give_the_line_of_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "store: http://127.0.0.1:3100\nbatch_size: -3\n",
            "batch_size: ",
            "at line 2 column 13",
        ),
        (
            "store: http://127.0.0.1:3100\nbatch_wait: 10\n",
            "batch_wait: ",
            "at line 2 column 13",
        ),
        (
            "labels:\n  stream: true\n  filename: yes\n",
            "labels.filename: ",
            "at line 3 column 13",
        ),
        (
            "pipeline_stages:\n- cri: {}\n- drop:\n    source: level\n    older_than: 10\n",
            "pipeline_stages[1].drop.older_than: ",
            "at line 5 column 17",
        ),
        (
            "pipeline_stages:\n- match:\n    selector: '{app=\"a\"}'\n    stages:\n    - json:\n        expresions: {a: b}\n",
            "pipeline_stages[0].match.stages[0].json.expresions: unknown field `expresions`",
            "at line 6 column 9",
        ),
    ];
    for (i, (text, key, at)) in cases.into_iter().enumerate() {
        let f = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let (code, _, err) = agent(&["--check-config", "--config", f.to_str().unwrap()]);
        assert_eq!(code, 1, "{text:?}: {err}");
        assert!(
            err.contains(key) && err.trim_end().ends_with(at),
            "{text:?}: {err}"
        );
    }
}
