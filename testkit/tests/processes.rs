//! The kit's process guards against the real binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use larch_testkit::{AgentProcess, StoreProcess, http, now_ns, push};

#[test]
fn a_store_takes_a_push_and_serves_it_back() {
    let store = StoreProcess::builder()
        .config("wal:\n  fsync: false\n")
        .start();
    let r = http::request(
        store.http,
        "POST",
        "/loki/api/v1/push",
        &[push::PROTOBUF],
        &push::protobuf_lines(
            r#"{app="kit"}"#,
            now_ns() - 1_000_000_000,
            &["a".into(), "b".into()],
        ),
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let path = format!(
        "/loki/api/v1/query_range?query={}&direction=forward",
        http::percent(r#"{app="kit"}"#)
    );
    let v = http::get(store.http, &path, &[]).unwrap().json();
    assert_eq!(v["data"]["result"][0]["values"][1][1], "b", "{v}");
    assert!(store.data_dir().starts_with(store.dir()));
    assert!(store.terminate().success());
}

#[test]
fn an_agent_is_ready_and_exposes_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::builder()
        .args(["--pods-dir", dir.path().to_str().unwrap()])
        .args(["--positions", dir.path().join("p.yaml").to_str().unwrap()])
        .args(["--store", "http://127.0.0.1:1"])
        .start();
    assert!(agent.metrics().contains_key("larch_agent_files_tailed"));
    agent.kill9();
    agent.restart();
    assert!(agent.metrics().contains_key("larch_agent_files_tailed"));
}
