//! Per-tenant overrides in a runtime file, read again while the store
//! runs: a change takes effect without a restart, a broken file keeps the
//! last good overrides (and says so on /metrics and in the log), and
//! inline `overrides:` still apply beneath it.

use std::time::Duration;

use larch_testkit::{StoreProcess, now_ns, wait_for};

fn push(store: &StoreProcess, tenant: &str, line_len: usize) -> u16 {
    let body = serde_json::json!({"streams": [{"stream": {"app": "rt"}, "values": [[now_ns().to_string(), "y".repeat(line_len)]]}]});
    larch_testkit::http::request(
        store.http,
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
}

fn metric(store: &StoreProcess, name: &str) -> f64 {
    larch_testkit::metrics::scrape(store.http)
        .get(name)
        .copied()
        .unwrap_or(f64::NAN)
}

#[test]
fn overrides_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overrides.yaml");
    std::fs::write(&file, "overrides:\n  team-a:\n    max_line_size: 100B\n").unwrap();
    let store = StoreProcess::builder()
        .config(format!(
            "limits:\n  max_line_size: 1KB\noverrides:\n  team-b:\n    max_line_size: 50B\nruntime_config:\n  file: {}\n  period: 200ms\n",
            file.display()
        ))
        .env("LARCH_LOG", "info")
        .start();
    // The file's entry beneath the limits; the inline one for team-b.
    assert_eq!(push(&store, "team-a", 150), 400);
    assert_eq!(push(&store, "team-b", 80), 400);
    assert_eq!(push(&store, "team-c", 900), 204);

    std::fs::write(
        &file,
        "overrides:\n  team-a:\n    max_line_size: 2KB\n  team-b:\n    max_line_size: 3KB\n",
    )
    .unwrap();
    wait_for(Duration::from_secs(10), "the new overrides", || {
        push(&store, "team-a", 1500) == 204
    });
    // The runtime entry wins over the inline one, key by key.
    assert_eq!(push(&store, "team-b", 2500), 204);
    let r = larch_testkit::http::get(store.http, "/runtime_config", &[]).unwrap();
    assert_eq!(
        r.text(),
        "overrides:\n  team-a:\n    max_line_size: 2KB\n  team-b:\n    max_line_size: 3KB\n"
    );

    // A broken file: the last good overrides stay, the failure shows.
    std::fs::write(&file, "overrides:\n  team-a:\n    max_line_sise: 1B\n").unwrap();
    wait_for(
        Duration::from_secs(10),
        "the failed reload on /metrics",
        || metric(&store, "larch_runtime_config_last_reload_successful") == 0.0,
    );
    assert!(
        metric(
            &store,
            "larch_runtime_config_reloads_total{outcome=\"failure\"}"
        ) >= 1.0
    );
    assert_eq!(
        push(&store, "team-a", 1500),
        204,
        "last good overrides kept"
    );
    let log = store.stderr();
    assert_eq!(
        log.matches("Cannot reload the runtime configuration")
            .count(),
        1,
        "logged once per distinct error: {log}"
    );
    assert!(log.contains("max_line_sise"), "{log}");
    let services = larch_testkit::http::get(store.http, "/services", &[])
        .unwrap()
        .text();
    assert!(services.contains("runtime-config => Running"), "{services}");

    // Fixed again.
    std::fs::write(&file, "overrides: {}\n").unwrap();
    wait_for(Duration::from_secs(10), "the fixed file", || {
        metric(&store, "larch_runtime_config_last_reload_successful") == 1.0
    });
    assert_eq!(push(&store, "team-a", 1500), 400, "back to limits: 1KB");
}

#[test]
fn a_broken_runtime_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overrides.yaml");
    std::fs::write(&file, "overrides:\n  team-a:\n    ingestion_rate_mb: 0\n").unwrap();
    let cfg = dir.path().join("larch.yaml");
    std::fs::write(
        &cfg,
        format!("runtime_config:\n  file: {}\n", file.display()),
    )
    .unwrap();
    let out = std::process::Command::new(larch_testkit::binary("larch-store"))
        .args(["--config", &cfg.display().to_string(), "--check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("runtime_config overrides.team-a.ingestion_rate_mb: must be a positive number"),
        "{e}"
    );
}
