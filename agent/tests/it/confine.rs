//! Symbolic links: a log file is read only if it resolves inside the pods
//! directory or `allowed_log_dirs`, whatever links lead there (real links
//! on disk, the real agent, the real store).

use std::os::unix::fs::symlink;
use std::time::Duration;

use super::support::*;

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn links_out_of_the_allowed_directories_are_refused_and_counted() {
    let e = env();
    let root = e.pods.parent().unwrap().to_path_buf();
    let store = start_store(&e.data);
    // What an attacker would like shipped: a token and a host file.
    let secrets = root.join("secrets");
    std::fs::create_dir_all(secrets.join("app")).unwrap();
    let t = rfc3339(now_ns() - 1_000_000_000);
    std::fs::write(secrets.join("token"), format!("{t} stdout F TOKEN-1\n")).unwrap();
    std::fs::write(secrets.join("app/0.log"), format!("{t} stdout F TOKEN-2\n")).unwrap();
    // Docker's json-file directory, allowed by the configuration.
    let docker = root.join("docker/containers/abc");
    std::fs::create_dir_all(&docker).unwrap();
    let cfg = root.join("agent.yaml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_log_dirs: [{}]\n",
            root.join("docker/containers").display()
        ),
    )
    .unwrap();

    let mut want = Entries::new();
    let t0 = now_ns() - 10_000_000_000;
    let ok = PodDir::new(&e.pods, "shop", "ok", "u1", "c");
    let l = lines("ok", 20);
    expect(
        &mut want,
        &labels("shop", "ok", "c", "stdout"),
        &ok.cri("stdout", t0, &l),
        &l,
    );
    let dk = PodDir::new(&e.pods, "shop", "dk", "u2", "c");
    let body: String = (0..10)
        .map(|i| {
            format!(
                "{{\"log\":\"docker {i}\\n\",\"stream\":\"stdout\",\"time\":\"{}\"}}\n",
                rfc3339(t0 + i)
            )
        })
        .collect();
    append(&docker.join("abc-json.log"), body.as_bytes());
    symlink(docker.join("abc-json.log"), dk.log()).unwrap();
    for i in 0..10 {
        want.push((
            labels("shop", "dk", "c", "stdout"),
            t0 + i,
            format!("docker {i}"),
        ));
    }
    // Links out: the file itself, through a relative path, and a whole
    // pod directory.
    let evil = PodDir::new(&e.pods, "kube-system", "evil", "u3", "c");
    symlink(secrets.join("token"), evil.log()).unwrap();
    symlink("../../../secrets/token", evil.dir.join("1.log")).unwrap();
    symlink(&secrets, e.pods.join("kube-system_linked_u4")).unwrap();

    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--config", cfg.to_str().unwrap()],
    );
    agent.wait_sent(30, MINUTE);
    let refused = r#"larch_agent_refused_files_total{reason="outside_allowed_dirs"}"#;
    assert_eq!(agent.metric(refused), 3.0);
    // A link planted while the agent runs is refused as well, once.
    let later = PodDir::new(&e.pods, "kube-system", "later", "u5", "c");
    symlink(secrets.join("token"), later.log()).unwrap();
    wait_for(MINUTE, "the new link refused", || {
        agent.metric(refused) == 4.0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(agent.metric(refused), 4.0, "each refusal is counted once");
    assert_eq!(agent.metric("larch_agent_files_tailed"), 2.0);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("node_name", "node-1")), &want);
}
