//! The README's "Store and agent together" example, as written: the agent
//! starts with its defaults (10 s rescans, 1 s batches) and relative paths,
//! and is up before `pods/` exists; the pod's directory and lines are written right
//! after, and two seconds later the store has the lines. Only the ports
//! differ, so that tests can run side by side.

use std::time::Duration;

use super::support::*;

#[test]
fn the_readme_example_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = start_store(&dir.path().join("data"));
    let http = free_port();
    let args: Vec<String> = [
        "--pods-dir",
        "./pods",
        "--store",
        &format!("http://127.0.0.1:{}", store.http),
        "--positions",
        "./agent-positions.yaml",
        "--http-addr",
        &format!("127.0.0.1:{http}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The README does not wait for the agent, which may or may not be up
    // when `mkdir` runs; waiting makes the case that once failed (the
    // agent running before `pods/` exists) certain.
    let _agent = AgentProcess::builder()
        .http_port(http)
        .args(args)
        .current_dir(dir.path())
        .start();
    // mkdir -p pods/demo_hello-0_0000/app; three echo >> 0.log
    let p = PodDir::new(&dir.path().join("pods"), "demo", "hello-0", "0000", "app");
    for i in 1..=3 {
        append(
            &p.log(),
            format!("{} stdout F hello larch {i}\n", rfc3339(now_ns())).as_bytes(),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let got = store.query("fake", ("namespace", "demo"));
    let lines: Vec<&str> = got.iter().map(|(_, _, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        ["hello larch 1", "hello larch 2", "hello larch 3"],
        "{got:?}"
    );
    assert!(got[0].0.contains(r#"pod="hello-0""#), "{got:?}");
}
