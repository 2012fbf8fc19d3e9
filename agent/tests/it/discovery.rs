//! Discovery: files in directories created while the agent runs are read
//! at once, not at the next periodic rescan (set to a minute here, so only
//! file-system events can explain a quick delivery), including a pods
//! directory that did not exist when the agent started and pods deleted
//! seconds after they were created.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::support::*;

const MINUTE: Duration = Duration::from_secs(60);
const SLOW_RESCAN: [&str; 2] = ["--rescan-interval", "1m"];

#[test]
fn a_pods_directory_created_after_the_start_is_watched() {
    let e = env();
    let store = start_store(&e.data);
    std::fs::remove_dir(&e.pods).unwrap();
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &SLOW_RESCAN,
    );
    std::thread::sleep(Duration::from_millis(300));
    // `mkdir -p` of the whole tree and the first lines right after it.
    let started = Instant::now();
    let p = PodDir::new(&e.pods, "late", "p", "uid", "c");
    let l = lines("late", 10);
    let mut want = Entries::new();
    expect(
        &mut want,
        &labels("late", "p", "c", "stdout"),
        &p.cri("stdout", now_ns() - 1_000_000_000, &l),
        &l,
    );
    agent.wait_sent(10, MINUTE);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // More pods with nested directories made in one go, repeatedly.
    let started = Instant::now();
    for i in 0..20 {
        let pod = format!("p{i}");
        let p = PodDir::new(&e.pods, "late", &pod, &format!("uid{i}"), "c");
        let l = lines(&pod, 5);
        expect(
            &mut want,
            &labels("late", &pod, "c", "stdout"),
            &p.cri("stdout", now_ns() - 1_000_000_000, &l),
            &l,
        );
    }
    agent.wait_sent(110, MINUTE);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "late")), &want);
}

#[test]
fn a_pod_deleted_a_second_after_it_was_created_is_read() {
    let e = env();
    let store = start_store(&e.data);
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &SLOW_RESCAN,
    );
    let mut want = Entries::new();
    for i in 0..3 {
        let pod = format!("job-{i}");
        let p = PodDir::new(&e.pods, "jobs", &pod, "uid", "c");
        let l = lines(&pod, 50);
        expect(
            &mut want,
            &labels("jobs", &pod, "c", "stdout"),
            &p.cri("stdout", now_ns() - 1_000_000_000, &l),
            &l,
        );
        std::thread::sleep(Duration::from_millis(1000));
        std::fs::remove_dir_all(e.pods.join(format!("jobs_{pod}_uid"))).unwrap();
    }
    agent.wait_sent(150, MINUTE);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "jobs")), &want);
}

#[test]
fn pods_come_and_go_while_the_store_is_unreachable() {
    let e = env();
    let store = start_store(&e.data);
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let gw = Gateway::start(store.http, move |_| {
        if gate.load(Ordering::SeqCst) {
            Verdict::Forward
        } else {
            Verdict::Answer(503)
        }
    });
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", gw.port),
        &[
            "--batch-size",
            "16KiB",
            "--max-in-flight",
            "1",
            "--rescan-interval",
            "1m",
        ],
    );
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Entries::new();
    let busy = PodDir::new(&e.pods, "out", "busy", "uid", "c");
    let l = lines("busy", 20_000);
    expect(
        &mut want,
        &labels("out", "busy", "c", "stdout"),
        &busy.cri("stdout", t0, &l),
        &l,
    );
    wait_for(MINUTE, "reading paused", || {
        agent.metric("larch_agent_reading_paused") == 1.0
    });
    // A short-lived pod while nothing can be sent: the agent opens its
    // file at once and keeps it open after the pod directory is removed.
    let brief = PodDir::new(&e.pods, "out", "brief", "uid", "c");
    let l = lines("brief", 30);
    expect(
        &mut want,
        &labels("out", "brief", "c", "stdout"),
        &brief.cri("stdout", t0, &l),
        &l,
    );
    wait_for(MINUTE, "the new file opened", || {
        agent.metric("larch_agent_files_tailed") == 2.0
    });
    std::fs::remove_dir_all(e.pods.join("out_brief_uid")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    open.store(true, Ordering::SeqCst);
    agent.wait_sent(20_030, MINUTE);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "out")), &want);
}

#[test]
fn files_in_nested_directories_made_in_one_go_are_read_at_once() {
    // `mkdir -p <pod>/<container>` and the log file right after, for many
    // pods, some made while the agent is busy listing the previous ones.
    let e = env();
    let store = start_store(&e.data);
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &SLOW_RESCAN,
    );
    let mut want = Entries::new();
    let started = Instant::now();
    for i in 0..60 {
        let pod = format!("n{i}");
        let p = PodDir::new(&e.pods, "nest", &pod, "uid", &format!("c{i}"));
        let l = lines(&pod, 3);
        expect(
            &mut want,
            &labels("nest", &pod, &format!("c{i}"), "stdout"),
            &p.cri("stdout", now_ns() - 1_000_000_000, &l),
            &l,
        );
        std::thread::sleep(Duration::from_millis(i % 7));
    }
    agent.wait_sent(180, Duration::from_secs(5));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "nest")), &want);
}
