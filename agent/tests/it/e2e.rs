//! End to end: real pod log files, a real `larch-store` process and the
//! real `larch-agent` binary; every line written must be in the store
//! exactly once, with the right labels.

use std::time::{Duration, Instant};

use larch_testkit::procfs;

use super::support::*;

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn new_and_deleted_pods_are_discovered() {
    let e = env();
    let store = start_store(&e.data);
    let a = PodDir::new(&e.pods, "shop", "cart-1", "uid-a", "app");
    let t0 = now_ns() - 60_000_000_000;
    let la = lines("a", 100);
    let mut want = Entries::new();
    expect(
        &mut want,
        &labels("shop", "cart-1", "app", "stdout"),
        &a.cri("stdout", t0, &la),
        &la,
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &[],
    );
    agent.wait_sent(100, MINUTE);

    // A pod that appears while the agent runs is picked up within a second.
    let b = PodDir::new(&e.pods, "shop", "web-1", "uid-b", "nginx");
    let lb = lines("b", 50);
    let started = Instant::now();
    expect(
        &mut want,
        &labels("shop", "web-1", "nginx", "stderr"),
        &b.cri("stderr", t0 + 1_000_000_000, &lb),
        &lb,
    );
    agent.wait_sent(150, MINUTE);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "new pod took {took:?} to be delivered"
    );

    // Last words of a deleted pod are still read, then the file is forgotten.
    let la2 = lines("a-last", 20);
    expect(
        &mut want,
        &labels("shop", "cart-1", "app", "stdout"),
        &a.cri("stdout", t0 + 2_000_000_000, &la2),
        &la2,
    );
    std::fs::remove_dir_all(e.pods.join("shop_cart-1_uid-a")).unwrap();
    agent.wait_sent(170, MINUTE);
    wait_for(MINUTE, "deleted pod's file closed and forgotten", || {
        agent.metric("larch_agent_files_tailed") == 1.0
            && larch_agent::positions::load(&e.positions).is_ok_and(|p| p.len() == 1)
    });
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("node_name", "node-1")), &want);
}

#[test]
fn cri_partial_lines_are_joined_across_reads_and_restarts() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "p", "uid", "c");
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--max-line-size", "1KiB"],
    );
    let t = now_ns() - 10_000_000_000;
    let ts = |i: i64| rfc3339(t + i * 1000);
    let out = labels("ns", "p", "c", "stdout");
    let err = labels("ns", "p", "c", "stderr");
    let mut want = Entries::new();
    // Parts split over separate writes, with stderr in between.
    p.append(format!("{} stdout P first part, \n", ts(1)).as_bytes());
    wait_for(MINUTE, "first part read", || {
        agent.metric("larch_agent_read_lines_total") >= 1.0
    });
    p.append(
        format!(
            "{} stderr F an error\n{} stdout P second part, \n",
            ts(2),
            ts(3)
        )
        .as_bytes(),
    );
    p.append(format!("{} stdout F end\n", ts(4)).as_bytes());
    want.push((out.clone(), t + 1000, "first part, second part, end".into()));
    want.push((err.clone(), t + 2000, "an error".into()));
    // A line longer than max_line_size is cut to it.
    let mut long = String::new();
    for i in 0..4 {
        long.push_str(&format!("{} stdout P {}\n", ts(10 + i), "y".repeat(400)));
    }
    long.push_str(&format!("{} stdout F tail\n", ts(14)));
    p.append(long.as_bytes());
    want.push((out.clone(), t + 10_000, "y".repeat(1024)));
    agent.wait_sent(3, MINUTE);
    assert_eq!(agent.metric("larch_agent_truncated_entries_total"), 1.0);

    // A partial line read before a crash is rebuilt whole after restart:
    // its position stays at the first part until the last part is sent.
    p.append(format!("{} stdout P before the crash, \n", ts(20)).as_bytes());
    wait_for(MINUTE, "part read", || {
        agent.metric("larch_agent_read_lines_total") >= 9.0
    });
    std::thread::sleep(Duration::from_millis(300));
    agent.kill9();
    p.append(format!("{} stdout F after it\n", ts(21)).as_bytes());
    want.push((out.clone(), t + 20_000, "before the crash, after it".into()));
    agent.restart();
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn docker_json_files_are_decoded() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "d", "uid", "c");
    let t = now_ns() - 10_000_000_000;
    let ts = |i: i64| rfc3339(t + i * 1000);
    let body = [
        format!(r#"{{"log":"plain line\n","stream":"stdout","time":"{}"}}"#, ts(1)),
        format!(r#"{{"log":"quotes \"x\", tab\t, unicode \u00fc \ud83d\ude00\n","stream":"stderr","time":"{}"}}"#, ts(2)),
        format!(r#"{{"log":"split by docker at 16K: ","stream":"stdout","time":"{}"}}"#, ts(3)),
        format!(r#"{{"log":"joined again\n","stream":"stdout","time":"{}","attrs":{{"tag":"x"}}}}"#, ts(4)),
    ]
    .join("\n")
        + "\n";
    // As on a Docker node: the pod directory links to the container's
    // json-file log.
    let target = e.pods.parent().unwrap().join("containers/abc123-json.log");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    append(&target, body.as_bytes());
    std::os::unix::fs::symlink(&target, p.log()).unwrap();
    // Docker's directory is one the links may lead to.
    let cfg = e.pods.parent().unwrap().join("agent.yaml");
    std::fs::write(
        &cfg,
        format!(
            "allowed_log_dirs: [{}]\n",
            target.parent().unwrap().display()
        ),
    )
    .unwrap();
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--config", cfg.to_str().unwrap()],
    );
    agent.wait_sent(3, MINUTE);
    agent.terminate();
    let mut want = vec![
        (
            labels("ns", "d", "c", "stdout"),
            t + 1000,
            "plain line".to_string(),
        ),
        (
            labels("ns", "d", "c", "stderr"),
            t + 2000,
            "quotes \"x\", tab\t, unicode ü 😀".to_string(),
        ),
        (
            labels("ns", "d", "c", "stdout"),
            t + 3000,
            "split by docker at 16K: joined again".to_string(),
        ),
    ];
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn rename_and_copytruncate_rotation() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "r", "uid", "c");
    let lab = labels("ns", "r", "c", "stdout");
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &[],
    );
    let mut t = now_ns() - 30_000_000_000;
    let mut want = Entries::new();
    let mut batch =
        |name: &str, n: usize, want: &mut Entries, write: &dyn Fn(&[String], i64) -> Vec<i64>| {
            let l = lines(name, n);
            expect(want, &lab, &write(&l, t), &l);
            t += 1_000_000_000;
        };
    batch("before", 100, &mut want, &|l, t| p.cri("stdout", t, l));
    agent.wait_sent(100, MINUTE);

    // Kubelet's rotation: the runtime still holds the old file and writes
    // a little more to it after the rename, then reopens.
    let old = std::fs::OpenOptions::new()
        .append(true)
        .open(p.log())
        .unwrap();
    let rotated = p.dir.join("0.log.20240101-000000");
    std::fs::rename(p.log(), &rotated).unwrap();
    batch("late", 10, &mut want, &|l, t| {
        use std::io::Write;
        let mut s = String::new();
        let stamps: Vec<i64> = (0..l.len() as i64).map(|i| t + i * 1000).collect();
        for (ts, line) in stamps.iter().zip(l) {
            s.push_str(&format!("{} stdout F {line}\n", rfc3339(*ts)));
        }
        (&old).write_all(s.as_bytes()).unwrap();
        stamps
    });
    batch("after", 50, &mut want, &|l, t| p.cri("stdout", t, l));
    // Compressed rotated files are never read.
    std::fs::write(p.dir.join("0.log.20231231-000000.gz"), b"\x1f\x8b garbage").unwrap();
    agent.wait_sent(160, MINUTE);

    // copytruncate (logrotate): copy, then truncate in place.
    std::fs::copy(p.log(), p.dir.join("0.log.1.gz")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(p.log())
        .unwrap()
        .set_len(0)
        .unwrap();
    batch("truncated", 30, &mut want, &|l, t| p.cri("stdout", t, l));
    agent.wait_sent(190, MINUTE);
    assert!(agent.metric("larch_agent_file_truncations_total") >= 1.0);
    wait_for(MINUTE, "rotated file closed", || {
        agent.metric("larch_agent_files_tailed") == 1.0
    });
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn kill_9_mid_stream_loses_and_doubles_nothing() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "k", "uid", "c");
    let lab = labels("ns", "k", "c", "stdout");
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--batch-size", "16KiB"],
    );
    let t0 = now_ns() - 60_000_000_000;
    let writer = {
        let p = PodDir { dir: p.dir.clone() };
        std::thread::spawn(move || {
            let mut all = Vec::new();
            for chunk in 0..100 {
                let l = lines(&format!("chunk {chunk:03}"), 100);
                let stamps = p.cri("stdout", t0 + chunk * 1_000_000, &l);
                all.extend(stamps.into_iter().zip(l));
                std::thread::sleep(Duration::from_millis(20));
            }
            all
        })
    };
    wait_for(MINUTE, "some lines sent", || {
        agent.metric("larch_agent_sent_entries_total") >= 1000.0
    });
    agent.kill9();
    std::thread::sleep(Duration::from_millis(200));
    agent.restart();
    let written = writer.join().unwrap();
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    agent.terminate();
    let mut want: Entries = written
        .into_iter()
        .map(|(t, l)| (lab.clone(), t, l))
        .collect();
    want.sort();
    assert_eq!(want.len(), 10_000);
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn store_outage_pauses_reading_and_loses_nothing() {
    let e = env();
    let store = start_store(&e.data);
    let (http, grpc) = (store.http, store.grpc);
    let p = PodDir::new(&e.pods, "ns", "o", "uid", "c");
    let lab = labels("ns", "o", "c", "stdout");
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{http}"),
        &["--batch-size", "32KiB", "--max-in-flight", "2"],
    );
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Entries::new();
    let l = lines("up", 1000);
    expect(&mut want, &lab, &p.cri("stdout", t0, &l), &l);
    agent.wait_sent(1000, MINUTE);

    store.kill9();
    // 5 MB while the store is down: far more than the batches the agent
    // may hold, so it must stop reading.
    for i in 0..60 {
        let l = lines(&format!("down {i:02}"), 1000);
        expect(
            &mut want,
            &lab,
            &p.cri("stdout", t0 + (i + 1) * 1_000_000_000, &l),
            &l,
        );
    }
    wait_for(MINUTE, "retries while the store is down", || {
        agent.metric("larch_agent_batch_retries_total") >= 3.0
    });
    wait_for(MINUTE, "reading paused", || {
        agent.metric("larch_agent_reading_paused") == 1.0
    });
    std::thread::sleep(Duration::from_millis(500));
    // What the process has read (all read(2)/pread(2) calls) stays far
    // below what is in the file.
    let size = std::fs::metadata(p.log()).unwrap().len();
    let read = procfs::io(agent.pid(), "rchar");
    assert!(
        read + 1_000_000 < size,
        "agent read {read} of {size} bytes while the store was down"
    );
    let rss = procfs::status_kib(agent.pid(), "VmRSS");
    assert!(
        rss < 64 * 1024,
        "agent RSS {rss} KiB while buffering in files"
    );

    let store = start_store_on(&e.data, http, grpc);
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn five_hundred_files_at_once() {
    let e = env();
    let store = start_store(&e.data);
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Entries::new();
    let mut files = Vec::new();
    for i in 0..500 {
        let pod = format!("pod-{i:03}");
        let p = PodDir::new(&e.pods, "many", &pod, &format!("uid-{i}"), "c");
        let l = lines(&pod, 20);
        expect(
            &mut want,
            &labels("many", &pod, "c", "stdout"),
            &p.cri("stdout", t0 + i * 1_000_000, &l),
            &l,
        );
        files.push(p.log());
    }
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &[],
    );
    agent.wait_sent(10_000, MINUTE);
    assert_eq!(agent.metric("larch_agent_files_tailed"), 500.0);
    wait_caught_up(&e.positions, &files, MINUTE);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "many")), &want);
}

#[test]
fn grpc_store_with_a_tenant() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "g", "uid", "c");
    let l = lines("grpc", 200);
    let t0 = now_ns() - 10_000_000_000;
    let mut want = Entries::new();
    expect(
        &mut want,
        &labels("ns", "g", "c", "stdout"),
        &p.cri("stdout", t0, &l),
        &l,
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("grpc://127.0.0.1:{}", store.grpc),
        &["--tenant", "team-a"],
    );
    agent.wait_sent(200, MINUTE);
    agent.terminate();
    want.sort();
    assert_same(&store.query("team-a", ("namespace", "ns")), &want);
}

#[test]
fn entries_the_store_rejects_are_counted_and_the_rest_kept() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "old", "uid", "c");
    let now = now_ns();
    let month_ago = now - 30 * 86_400_000_000_000;
    let fresh = lines("fresh", 5);
    let stale = lines("stale", 3);
    let mut want = Entries::new();
    expect(
        &mut want,
        &labels("ns", "old", "c", "stdout"),
        &p.cri("stdout", now - 5_000_000_000, &fresh[..2]),
        &fresh[..2],
    );
    // Older than the store's 7-day window: rejected one by one with a 400.
    p.cri("stdout", month_ago, &stale);
    expect(
        &mut want,
        &labels("ns", "old", "c", "stdout"),
        &p.cri("stdout", now - 4_000_000_000, &fresh[2..]),
        &fresh[2..],
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &[],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    let m = agent.metrics();
    assert_eq!(
        m.get(r#"larch_agent_dropped_entries_total{reason="rejected"}"#),
        Some(&3.0),
        "{m:?}"
    );
    assert_eq!(m.get("larch_agent_sent_entries_total"), Some(&5.0));
    assert_eq!(
        m.get("larch_agent_batch_retries_total"),
        Some(&0.0),
        "a 400 is not retried"
    );
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn rate_limited_pushes_are_retried_until_accepted() {
    let e = env();
    // A tenant limit of 1 MB/s (1 MB burst): 4 MB cannot go through in
    // less than 3 s however fast the agent reads, so the store answers 429.
    let store = start_store_with(
        &e.data,
        free_port(),
        free_port(),
        "  ingestion_rate_mb: 1\n  ingestion_burst_size_mb: 1\n",
    );
    let p = PodDir::new(&e.pods, "ns", "rl", "uid", "c");
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Entries::new();
    for i in 0..4 {
        let l: Vec<String> = (0..1000)
            .map(|j| format!("burst {i} line {j:04} {}", "z".repeat(1000)))
            .collect();
        expect(
            &mut want,
            &labels("ns", "rl", "c", "stdout"),
            &p.cri("stdout", t0 + i * 1_000_000_000, &l),
            &l,
        );
    }
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--batch-size", "128KiB"],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    let m = agent.metrics();
    assert!(
        m.get(r#"larch_agent_request_duration_seconds_count{status_code="429"}"#)
            .copied()
            .unwrap_or(0.0)
            >= 1.0,
        "{m:?}"
    );
    assert!(
        m.get("larch_agent_batch_retries_total")
            .copied()
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        m.get(r#"larch_agent_dropped_entries_total{reason="rejected"}"#),
        None
    );
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn sigterm_sends_the_batch_being_filled() {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "term", "uid", "c");
    // A batch that would wait 10 minutes: only the shutdown can send it.
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--batch-wait", "10m"],
    );
    let l = lines("term", 100);
    let mut want = Entries::new();
    expect(
        &mut want,
        &labels("ns", "term", "c", "stdout"),
        &p.cri("stdout", now_ns() - 1_000_000_000, &l),
        &l,
    );
    wait_for(MINUTE, "lines read", || {
        agent.metric("larch_agent_read_lines_total") == 100.0
    });
    assert_eq!(agent.metric("larch_agent_sent_entries_total"), 0.0);
    agent.terminate();
    let saved = larch_agent::positions::load(&e.positions).unwrap();
    assert_eq!(
        saved[0].offset,
        std::fs::metadata(p.log()).unwrap().len(),
        "positions written at shutdown"
    );
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn multiline_blocks_survive_a_crash() {
    let e = env();
    let store = start_store(&e.data);
    let cfg = e.pods.parent().unwrap().join("agent.yaml");
    std::fs::write(
        &cfg,
        "pipeline_stages:\n- multiline:\n    firstline: '^\\[start\\]'\n    max_wait_time: 300ms\n",
    )
    .unwrap();
    let p = PodDir::new(&e.pods, "ns", "ml", "uid", "c");
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--config", cfg.to_str().unwrap()],
    );
    let t = now_ns() - 10_000_000_000;
    let rec = |i: i64, text: &str| format!("{} stdout F {text}\n", rfc3339(t + i * 1000));
    let lab = labels("ns", "ml", "c", "stdout");
    p.append((rec(1, "[start] block 1") + &rec(2, "  at a") + &rec(3, "  at b")).as_bytes());
    agent.wait_sent(1, MINUTE);
    // Block 2 is released by max_wait_time while the next record is only
    // half written: its position must stop before that half line.
    let half = rec(6, "[start] block 3");
    let (head, tail) = half.split_at(40);
    p.append((rec(4, "[start] block 2") + &rec(5, "  at c") + head).as_bytes());
    agent.wait_sent(2, MINUTE);
    let whole = std::fs::metadata(p.log()).unwrap().len();
    wait_for(MINUTE, "position at the end of block 2", || {
        larch_agent::positions::load(&e.positions).is_ok_and(|s| {
            s.first()
                .is_some_and(|r| r.offset == whole - head.len() as u64)
        })
    });
    agent.kill9();
    p.append((tail.to_string() + &rec(7, "  at d") + &rec(8, "[start] block 4")).as_bytes());
    agent.restart();
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    agent.terminate();
    let mut want = vec![
        (
            lab.clone(),
            t + 1000,
            "[start] block 1\n  at a\n  at b".to_string(),
        ),
        (lab.clone(), t + 4000, "[start] block 2\n  at c".to_string()),
        (lab.clone(), t + 6000, "[start] block 3\n  at d".to_string()),
        (lab.clone(), t + 8000, "[start] block 4".to_string()),
    ];
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn pipeline_stages_shape_what_is_stored() {
    let e = env();
    let store = start_store(&e.data);
    let cfg = e.pods.parent().unwrap().join("agent.yaml");
    std::fs::write(
        &cfg,
        r#"
pipeline_stages:
- json:
    expressions: {level: level, msg: msg, trace: trace_id}
- drop:
    source: level
    value: debug
    drop_counter_reason: debug_noise
- labels: {level: }
- structured_metadata: {trace_id: trace}
- metrics:
    lines_total:
      type: Counter
      config: {match_all: true}
- output: {source: msg}
"#,
    )
    .unwrap();
    let p = PodDir::new(&e.pods, "ns", "st", "uid", "c");
    let t = now_ns() - 10_000_000_000;
    p.cri(
        "stdout",
        t,
        &[
            r#"{"level":"info","msg":"started","trace_id":"t1"}"#.to_string(),
            r#"{"level":"debug","msg":"noise"}"#.to_string(),
            r#"{"level":"error","msg":"failed","trace_id":"t2"}"#.to_string(),
        ],
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &["--config", cfg.to_str().unwrap()],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    let m = agent.metrics();
    assert_eq!(
        m.get(r#"larch_agent_dropped_entries_total{reason="debug_noise"}"#),
        Some(&1.0)
    );
    let custom: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("larch_agent_custom_lines_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(custom, 2.0, "{m:?}");
    agent.terminate();
    let got = store.query("fake", ("namespace", "ns"));
    let lines: Vec<(&str, &str)> = got
        .iter()
        .map(|(l, _, line)| (l.as_str(), line.as_str()))
        .collect();
    assert_eq!(lines.len(), 2, "{got:?}");
    assert!(
        lines.iter().any(|(l, line)| *line == "started"
            && l.contains(r#"level="info""#)
            && l.contains(r#"trace_id="t1""#)),
        "{got:?}"
    );
    assert!(
        lines.iter().any(|(l, line)| *line == "failed"
            && l.contains(r#"level="error""#)
            && l.contains(r#"trace_id="t2""#)),
        "{got:?}"
    );
}
