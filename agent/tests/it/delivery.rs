//! Delivery when the store (or what stands in front of it) refuses:
//! every failure but a 400 is retried and keeps the positions, a 413 splits
//! the batch, and the backlog shows in the metrics while reading waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::support::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Random hex, which snappy cannot shrink much: request sizes follow the
/// line bytes.
fn noisy_lines(prefix: &str, n: usize, width: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|i| {
            let mut s = format!("{prefix} {i:05} ");
            while s.len() < width {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(&format!("{x:016x}"));
            }
            s.truncate(width);
            s
        })
        .collect()
}

#[test]
fn a_401_from_the_store_is_retried_until_it_accepts_and_no_line_is_lost() {
    let e = env();
    let (http, grpc) = (free_port(), free_port());
    // A store that requires a tenant; the agent sends none: 401.
    let store = start_store_config(&e.data, http, grpc, "", "auth_enabled: true\n");
    let p = PodDir::new(&e.pods, "ns", "auth", "uid", "c");
    let lab = labels("ns", "auth", "c", "stdout");
    let mut want = Entries::new();
    let l = lines("auth", 100);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", now_ns() - 10_000_000_000, &l),
        &l,
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{http}"),
        &[],
    );
    wait_for(MINUTE, "several 401s", || {
        agent.metric(r#"larch_agent_push_failures_total{status_code="401"}"#) >= 3.0
    });
    let m = agent.metrics();
    assert!(m["larch_agent_push_consecutive_failures"] >= 3.0, "{m:?}");
    assert_eq!(m.get("larch_agent_sent_entries_total"), Some(&0.0));
    assert!(
        !m.keys()
            .any(|k| k.starts_with("larch_agent_dropped_entries_total")),
        "{m:?}"
    );
    // Nothing acknowledged, so no position past the start.
    let saved = larch_agent::positions::load(&e.positions).unwrap();
    assert!(saved.iter().all(|r| r.offset == 0), "{saved:?}");

    // The operator fixes the store (here: turns authentication off).
    store.kill9();
    let store = start_store_on(&e.data, http, grpc);
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    assert_eq!(agent.metric("larch_agent_push_consecutive_failures"), 0.0);
    assert_eq!(agent.metric("larch_agent_sent_entries_total"), 100.0);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn gateway_refusals_are_retried_and_requests_too_large_are_split() {
    let e = env();
    let store = start_store(&e.data);
    // In front of the store: a gateway whose token check, routing and
    // upstream fail for a while (401, 403, 404, 503), and whose body
    // limit is 16 KiB (413) throughout.
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let gw = Gateway::start(store.http, move |len| {
        let i = seen.fetch_add(1, Ordering::SeqCst);
        match i {
            0..=1 => Verdict::Answer(401),
            2..=3 => Verdict::Answer(403),
            4..=5 => Verdict::Answer(404),
            6..=7 => Verdict::Answer(503),
            _ if len > 16 * 1024 => Verdict::Answer(413),
            _ => Verdict::Forward,
        }
    });
    let p = PodDir::new(&e.pods, "ns", "gw", "uid", "c");
    let lab = labels("ns", "gw", "c", "stdout");
    let mut want = Entries::new();
    let l = noisy_lines("gw", 3000, 120);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", now_ns() - 20_000_000_000, &l),
        &l,
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", gw.port),
        &["--batch-size", "64KiB", "--max-in-flight", "1"],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    let m = agent.metrics();
    for code in ["401", "403", "404", "503"] {
        assert_eq!(
            m.get(&format!(
                r#"larch_agent_push_failures_total{{status_code="{code}"}}"#
            )),
            Some(&2.0),
            "{code}: {m:?}"
        );
    }
    assert!(gw.count(413) >= 1);
    assert_eq!(
        m.get(r#"larch_agent_push_failures_total{status_code="413"}"#)
            .copied(),
        Some(gw.count(413) as f64)
    );
    assert!(m["larch_agent_batch_splits_total"] >= 1.0, "{m:?}");
    assert_eq!(m["larch_agent_sent_entries_total"], 3000.0);
    assert_eq!(m["larch_agent_push_consecutive_failures"], 0.0);
    assert!(
        !m.keys()
            .any(|k| k.starts_with("larch_agent_dropped_entries_total")),
        "{m:?}"
    );
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn unread_bytes_show_the_backlog_while_reading_is_paused() {
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
    let p = PodDir::new(&e.pods, "ns", "un", "uid", "c");
    let lab = labels("ns", "un", "c", "stdout");
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", gw.port),
        &["--batch-size", "32KiB", "--max-in-flight", "1"],
    );
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Entries::new();
    for i in 0..40 {
        let l = lines(&format!("before {i:02}"), 1000);
        expect(
            &mut want,
            &lab,
            &p.cri("stdout", t0 + i * 1_000_000_000, &l),
            &l,
        );
    }
    wait_for(MINUTE, "reading paused", || {
        agent.metric("larch_agent_reading_paused") == 1.0
    });
    let size = std::fs::metadata(p.log()).unwrap().len() as f64;
    let unread = agent.metric("larch_agent_unread_bytes");
    let read = agent.metric("larch_agent_read_bytes_total");
    assert!(size > 3_000_000.0, "{size}");
    assert!(unread > size - 2_500_000.0, "unread {unread} of {size}");
    assert_eq!(unread + read, size, "unread {unread} + read {read}");
    // More written while paused shows at once.
    for i in 40..60 {
        let l = lines(&format!("during {i:02}"), 1000);
        expect(
            &mut want,
            &lab,
            &p.cri("stdout", t0 + i * 1_000_000_000, &l),
            &l,
        );
    }
    let grown = std::fs::metadata(p.log()).unwrap().len() as f64;
    assert_eq!(agent.metric("larch_agent_reading_paused"), 1.0);
    assert_eq!(
        agent.metric("larch_agent_unread_bytes"),
        unread + grown - size
    );

    open.store(true, Ordering::SeqCst);
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    assert_eq!(agent.metric("larch_agent_unread_bytes"), 0.0);
    assert_eq!(agent.metric("larch_agent_reading_paused"), 0.0);
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn a_request_over_the_burst_refused_with_429_forever_is_split() {
    // Loki refuses a push larger than the tenant's whole burst with 429,
    // again and again; the gateway plays that part for requests over
    // 16 KiB.
    let e = env();
    let store = start_store(&e.data);
    let gw = Gateway::start(store.http, |len| {
        if len > 16 * 1024 {
            Verdict::Answer(429)
        } else {
            Verdict::Forward
        }
    });
    let p = PodDir::new(&e.pods, "ns", "burst", "uid", "c");
    let lab = labels("ns", "burst", "c", "stdout");
    let mut want = Entries::new();
    let l = noisy_lines("burst", 1000, 120);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", now_ns() - 20_000_000_000, &l),
        &l,
    );
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", gw.port),
        &[
            "--batch-size",
            "48KiB",
            "--max-in-flight",
            "1",
            "--max-backoff",
            "100ms",
        ],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    let m = agent.metrics();
    assert!(gw.count(429) >= 5, "{m:?}");
    assert!(m["larch_agent_batch_splits_total"] >= 2.0, "{m:?}");
    assert_eq!(m["larch_agent_sent_entries_total"], 1000.0);
    assert!(
        !m.keys()
            .any(|k| k.starts_with("larch_agent_dropped_entries_total")),
        "{m:?}"
    );
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}
