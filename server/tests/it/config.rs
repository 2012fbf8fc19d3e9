//! The effective configuration as people see it: `--version`,
//! `--print-config`, `GET /config`, `GET /services`, and Loki's own
//! configuration files (single binary on local disk, and on S3) read with
//! Loki's flag spellings.

use std::path::Path;
use std::process::{Command, Output};

use larch_testkit::{StoreProcess, free_port};

fn store(args: &[&str]) -> Output {
    Command::new(larch_testkit::binary("larch-store"))
        .args(args)
        .env_remove("LARCH_CONFIG")
        .env_remove("LARCH_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn get(store: &StoreProcess, path: &str) -> (u16, String) {
    let r = larch_testkit::http::get(store.http, path, &[]).unwrap();
    (r.status, r.text())
}

#[test]
fn version_names_larch_and_the_loki_api() {
    let out = store(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!(
            "larch-store {} (Loki API 3.5.0)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn print_config_is_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("larch.yaml");
    std::fs::write(
        &cfg,
        "limits:\n  max_line_size: 1KB\nagent:\n  pods_dir: /p\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let out = store(&["--config", &cfg, "--max-tenants", "7", "--print-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    // Defaults filled in, the file's and the flags' values in place.
    for want in [
        "http_addr: 0.0.0.0:3100\n",
        "max_tenants: 7\n",
        "  max_line_size: 1KB\n",
        "  max_query_series: 500\n",
        "runtime_config:\n  file: \"\"\n  period: 10s\n",
        "agent:\n",
        "  pods_dir: /p\n",
    ] {
        assert!(printed.contains(want), "{want:?} missing from:\n{printed}");
    }
    // What it prints is a configuration the store reads back as the same.
    let again = dir.path().join("printed.yaml");
    std::fs::write(&again, &printed).unwrap();
    let out2 = store(&["--config", &again.display().to_string(), "--print-config"]);
    assert!(out2.status.success(), "{}", text(&out2.stderr));
    assert_eq!(text(&out2.stdout), printed);
}

#[test]
fn config_and_services_endpoints() {
    let s = StoreProcess::builder()
        .config("limits:\n  max_line_size: 2KB\n")
        .start();
    let (status, body) = get(&s, "/config?mode=diff");
    assert_eq!(status, 200);
    let diff: serde_json::Value = serde_saphyr::from_str(&body).unwrap();
    assert_eq!(diff["limits"], serde_json::json!({"max_line_size": "2KB"}));
    // The test kit's flags: addresses and data directory.
    assert!(
        diff["http_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(diff.get("grpc_addr").is_some() && diff.get("data_dir").is_some());
    assert_eq!(diff.as_object().unwrap().len(), 4, "{body}");
    let (_, full) = get(&s, "/config");
    assert!(
        full.contains("  max_line_size: 2KB\n") && full.contains("wal:\n"),
        "{full}"
    );
    let (_, defaults) = get(&s, "/config?mode=defaults");
    assert!(defaults.contains("http_addr: 0.0.0.0:3100\n"), "{defaults}");
    let (status, body) = get(&s, "/config?mode=everything");
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&s, "/services");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "server => Running\ndistributor => Running\ningester => Running\nquerier => Running\ncompactor => Running\nui => Running\nruler => Running\n"
    );
    let (status, body) = get(&s, "/runtime_config");
    assert_eq!((status, body.as_str()), (200, "overrides: {}\n"));
    // Larch's version on /metrics.
    let (_, metrics) = get(&s, "/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "larch_build_info{{version=\"{}\",",
            env!("CARGO_PKG_VERSION")
        )) && l.ends_with("program=\"larch-store\"} 1")),
        "{metrics}"
    );
}

/// Loki's single-binary local configuration, with its ports, paths and
/// runtime file moved to the test's own.
fn local_loki_config(dir: &Path, http: u16, grpc: u16) -> std::path::PathBuf {
    let runtime = dir.join("runtime.yaml");
    std::fs::write(&runtime, "overrides:\n  team-a:\n    max_line_size: 20KB\n").unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/loki/local.yaml"),
    )
    .unwrap()
    .replace(
        "http_listen_port: 3100",
        &format!("http_listen_port: {http}"),
    )
    .replace(
        "grpc_listen_port: 9096",
        &format!("grpc_listen_port: {grpc}"),
    )
    .replace("/etc/loki/runtime.yaml", &runtime.display().to_string())
    .replace("/tmp/loki", &dir.join("loki").display().to_string());
    let path = dir.join("loki.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_loki_single_binary_configuration_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let cfg = local_loki_config(dir.path(), http, grpc);
    let cfg = cfg.display().to_string();
    // Loki's spelling of the flags, and the one warning.
    let out = store(&[&format!("-config.file={cfg}"), "-verify-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "configuration is valid\n");
    assert_eq!(
        text(&out.stderr),
        "warning: Loki configuration keys with no effect in Larch: analytics, common.instance_addr, \
         common.ring, compactor.working_directory, frontend, limits_config.metric_aggregation_enabled, \
         pattern_ingester, query_range, ruler.ring, schema_config, server.grpc_server_max_concurrent_streams\n"
    );
    let out = store(&["--config.file", &cfg, "--print-config"]);
    let printed = text(&out.stdout);
    for want in [
        format!("http_addr: 0.0.0.0:{http}\n"),
        format!("grpc_addr: 0.0.0.0:{grpc}\n"),
        format!("data_dir: {}\n", dir.path().join("loki").display()),
        "auth_enabled: false\n".to_string(),
        "  max_line_size: 10KB\n".to_string(),
        "  retention_period: 3d\n".to_string(),
        "  reject_old_samples_max_age: 1d\n".to_string(),
        "compactor:\n  delete_max_interval: 1d\n  delete_request_cancel_period: 1d\n  deletion_delay: 10m\n  interval: 10m\n  retention_enabled: true\n"
            .to_string(),
        "  period: 5s\n".to_string(),
        "  discover_log_levels: false\n".to_string(),
        // The ruler: Loki's rule directory and Alertmanager.
        format!("  rule_path: {}\n", dir.path().join("loki/rules").display()),
        "  alertmanager_url:\n  - http://localhost:9093\n".to_string(),
        "  evaluation_interval: 30s\n".to_string(),
    ] {
        assert!(printed.contains(&want), "{want:?} missing from:\n{printed}");
    }

    // A rule group where Loki keeps them (`<rules_directory>/<tenant>/`).
    let ns = dir.path().join("loki/rules/fake");
    std::fs::create_dir_all(&ns).unwrap();
    std::fs::write(
        ns.join("shop.yaml"),
        "groups:\n  - name: errors\n    rules:\n      - alert: ManyErrors\n        expr: sum(count_over_time({app=\"x\"} |= \"error\" [5m])) > 10\n",
    )
    .unwrap();

    // And it serves: on Loki's ports, with the runtime file's overrides.
    let p = larch_testkit::ProcessBuilder::new("larch-store", larch_testkit::binary("larch-store"))
        .arg(format!("-config.file={cfg}"))
        .arg("-log.format=logfmt")
        .ready(http, "/ready")
        .start();
    let body = serde_json::json!({"streams": [{"stream": {"app": "x"}, "values": [[larch_testkit::now_ns().to_string(), "x".repeat(15_000)]]}]});
    let push = |tenant: &str| {
        larch_testkit::http::request(
            http,
            "POST",
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/json"),
                ("X-Scope-OrgID", tenant),
            ],
            body.to_string().as_bytes(),
        )
        .unwrap()
        .status
    };
    assert_eq!(push("team-a"), 204, "20KB lines for team-a");
    assert_eq!(push("team-b"), 400, "10KB lines for the others");
    // The rule group of the Loki rule directory is loaded.
    let r = larch_testkit::http::get(http, "/loki/api/v1/rules", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().starts_with("shop:\n"), "{}", r.text());
    assert!(r.text().contains("alert: ManyErrors"), "{}", r.text());
    let err = p.stderr();
    assert!(
        err.contains("level=warn")
            && err.contains("msg=\"Loki configuration keys with no effect in Larch.\""),
        "{err}"
    );
}

#[test]
fn a_loki_configuration_on_s3_is_translated() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/loki/s3.yaml");
    let cfg = cfg.display().to_string();
    let out = store(&["--config.file", &cfg, "--check-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = store(&["--config.file", &cfg, "--print-config"]);
    let printed = text(&out.stdout);
    for want in [
        "  backend: s3\n",
        "    bucket: my-loki-chunks\n",
        "    region: eu-west-1\n",
        "    secret_access_key: <secret>\n",
        "    force_path_style: false\n",
    ] {
        assert!(printed.contains(want), "{want:?} missing from:\n{printed}");
    }
    assert!(!printed.contains("very-secret"), "{printed}");
    // What is not translated is refused, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let gcs = dir.path().join("gcs.yaml");
    std::fs::write(
        &gcs,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("object_store: s3", "object_store: gcs"),
    )
    .unwrap();
    let out = store(&[
        "--config.file",
        &gcs.display().to_string(),
        "--check-config",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(
        e.starts_with(&format!(
            "larch-store: invalid configuration: schema_config.configs[0].object_store (Loki configuration {}): \
             chunks in gcs are not translated",
            gcs.display()
        )),
        "{e}"
    );
    assert!(!e.contains("very-secret"), "{e}");
}

/// `--config.expand-env` (Loki's flag): `${VAR}` and `${VAR:-default}` in
/// the file are expanded from the environment (the default); with
/// `--config.expand-env=false` the text is read as written.
#[test]
fn config_expand_env_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("loki.yaml");
    std::fs::write(
        &cfg,
        "server:\n  http_listen_port: ${LARCH_TEST_HTTP_PORT}\nlimits_config:\n  max_line_size: ${LARCH_TEST_UNSET:-2KB}\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let run = |expand: &str| {
        Command::new(larch_testkit::binary("larch-store"))
            .args([
                "--config.file",
                &cfg,
                &format!("--config.expand-env={expand}"),
                "--print-config",
            ])
            .env_remove("LARCH_CONFIG")
            .env_remove("LARCH_LOG")
            .env_remove("LARCH_TEST_UNSET")
            .env("LARCH_TEST_HTTP_PORT", "3999")
            .output()
            .unwrap()
    };
    let out = run("true");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("http_addr: 0.0.0.0:3999\n"), "{printed}");
    assert!(printed.contains("  max_line_size: 2KB\n"), "{printed}");
    // Not expanded: the reference is no port, and the store says so.
    let out = run("false");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("http_listen_port"),
        "{}",
        text(&out.stderr)
    );
}
