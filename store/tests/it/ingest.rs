//! The ingester in process: durability, replay, dedup, ordering rules,
//! flushing and reading back.

use std::sync::Arc;

use larch_store::config::Config;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;
use larch_store::push::{Push, PushEntry, PushStream, StreamLabels};
use larch_store::tenant::TenantId;
use larch_store::validate::validate;

use super::support::{now_ns, read_back};

fn push_of(labels: &str, entries: &[(i64, &str)]) -> Push {
    Push {
        held_body: 0,
        source: None,
        streams: vec![PushStream {
            labels: StreamLabels::Text(labels.to_string()),
            entries: entries
                .iter()
                .map(|(ts, l)| PushEntry {
                    ts: *ts,
                    line: (*l).into(),
                    metadata: vec![],
                    omitted: 0,
                })
                .collect(),
        }],
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    // Small blocks and chunks so the tests cross every boundary.
    c.ingester.block_size = larch_config::ByteSize(2048);
    c.ingester.chunk_target_size = larch_config::ByteSize(4096);
    c
}

async fn push(ing: &Ingester, tenant: &str, p: Push) -> larch_store::ingester::WriteOutcome {
    let v = validate(p, &ing.config.limits, now_ns(), "fake");
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    ing.push(&TenantId::new(tenant).unwrap(), v).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_flush_and_reopen_keep_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Vec::new();
    {
        let (ing, _) = Ingester::open(config(dir.path()), Arc::new(Metrics::new())).unwrap();
        for batch in 0..50 {
            let entries: Vec<(i64, String)> = (0..40)
                .map(|i| {
                    let ts = t0 + (batch * 40 + i) as i64 * 1000;
                    (
                        ts,
                        format!("batch {batch} line {i} some payload to fill blocks"),
                    )
                })
                .collect();
            want.extend(entries.iter().cloned());
            let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
            let out = push(&ing, "fake", push_of(r#"{app="a"}"#, &refs)).await;
            assert_eq!(out.accepted, 40);
        }
        assert_eq!(read_back(&ing, "fake", "app", "a"), want);
        // Some chunks were sealed by size and written; the rest is in the WAL.
        ing.flush_all();
        let files = walk(&dir.path().join("chunks"));
        assert!(files > 3, "expected several chunk files, found {files}");
        assert_eq!(read_back(&ing, "fake", "app", "a"), want);
        // Push a little more that stays only in the WAL, then "crash" by
        // dropping the ingester without shutdown.
        let out = push(
            &ing,
            "fake",
            push_of(r#"{app="a"}"#, &[(t0 + 10_000_000, "after flush")]),
        )
        .await;
        assert_eq!(out.accepted, 1);
        want.push((t0 + 10_000_000, "after flush".to_string()));
        want.sort();
    }
    let (ing, report) = Ingester::open(config(dir.path()), Arc::new(Metrics::new())).unwrap();
    assert!(
        report.skipped_entries > 0,
        "flushed entries are not replayed twice"
    );
    assert_eq!(read_back(&ing, "fake", "app", "a"), want);
    ing.shutdown();
    // A clean shutdown leaves nothing to replay.
    let (ing, report) = Ingester::open(config(dir.path()), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.replayed_entries, 0);
    assert_eq!(read_back(&ing, "fake", "app", "a"), want);
}

fn walk(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            n += walk(&p);
        } else if p.extension().is_some_and(|x| x == "chunk") {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_even_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = Ingester::open(config(dir.path()), Arc::new(Metrics::new())).unwrap();
    let t0 = now_ns() - 1_000_000_000;
    let batch: Vec<(i64, &str)> = vec![
        (t0, "one"),
        (t0 + 1, "two"),
        (t0 + 1, "two"),
        (t0 + 1, "two bis"),
    ];
    let out = push(&ing, "fake", push_of(r#"{app="d"}"#, &batch)).await;
    assert_eq!((out.accepted, out.duplicates), (3, 1));
    // A client retry of the same batch stores nothing new.
    let out = push(&ing, "fake", push_of(r#"{app="d"}"#, &batch)).await;
    assert_eq!((out.accepted, out.duplicates), (0, 4));
    // After the chunk is flushed, a retry lands in a new chunk; reads
    // still show each entry once.
    ing.flush_all();
    push(&ing, "fake", push_of(r#"{app="d"}"#, &batch)).await;
    let got = read_back(&ing, "fake", "app", "d");
    assert_eq!(got.len(), 3, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_window_and_stream_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.max_streams_per_tenant = 2;
    let (ing, _) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    let now = now_ns();
    let hour = 3_600_000_000_000i64;
    let out = push(
        &ing,
        "fake",
        push_of(
            r#"{app="o"}"#,
            &[
                (now, "newest"),
                (now - hour / 2, "30m late"),
                (now - 2 * hour, "2h late"),
            ],
        ),
    )
    .await;
    assert_eq!(out.accepted, 2);
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0].contains("entry too far behind"),
        "{}",
        out.errors[0]
    );
    assert!(
        out.errors[0]
            .contains("total ignored: 1 out of 3 for stream: {app=\"o\", service_name=\"o\"}"),
        "{}",
        out.errors[0]
    );

    push(&ing, "fake", push_of(r#"{app="p"}"#, &[(now, "x")])).await;
    let out = push(&ing, "fake", push_of(r#"{app="q"}"#, &[(now, "x")])).await;
    assert_eq!(out.accepted, 0);
    assert!(out.errors[0].starts_with(
        "maximum active stream limit exceeded when trying to create stream {app=\"q\""
    ));
    // Another tenant has its own limit.
    let out = push(&ing, "other", push_of(r#"{app="q"}"#, &[(now, "x")])).await;
    assert_eq!(out.accepted, 1);
    // Once flushed, streams are no longer active and room is made.
    ing.flush_all();
    let out = push(&ing, "fake", push_of(r#"{app="q"}"#, &[(now, "x")])).await;
    assert_eq!(out.accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = Ingester::open(config(dir.path()), Arc::new(Metrics::new())).unwrap();
    let now = now_ns();
    push(
        &ing,
        "team-a",
        push_of(r#"{app="shared"}"#, &[(now, "secret of a")]),
    )
    .await;
    push(
        &ing,
        "team-b",
        push_of(r#"{app="shared"}"#, &[(now, "secret of b")]),
    )
    .await;
    assert_eq!(
        read_back(&ing, "team-a", "app", "shared"),
        vec![(now, "secret of a".to_string())]
    );
    assert_eq!(
        read_back(&ing, "team-b", "app", "shared"),
        vec![(now, "secret of b".to_string())]
    );
    assert!(read_back(&ing, "team-c", "app", "shared").is_empty());
}

fn chunk_counts(ing: &Ingester, tenant: &str) -> Vec<usize> {
    let t = ing
        .existing_tenant(&TenantId::new(tenant).unwrap())
        .unwrap();
    t.all()
        .iter()
        .map(|s| s.state.lock().chunks.len())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_chunks_are_compacted_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.ingester.chunk_target_size = larch_config::ByteSize(64 * 1024);
    c.ingester.compaction_interval =
        larch_config::HumanDuration(std::time::Duration::from_millis(1));
    let (ing, _) = Ingester::open(c.clone(), Arc::new(Metrics::new())).unwrap();
    let t0 = now_ns() - 600_000_000_000;
    let mut want = Vec::new();
    for round in 0..6 {
        let lines: Vec<(i64, String)> = (0..20)
            .map(|i| {
                (
                    t0 + (round * 100 + i) as i64 * 1_000_000,
                    format!("round {round} line {i}"),
                )
            })
            .collect();
        // An identical retry lands in a later chunk; compaction drops it.
        let refs: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        push(&ing, "fake", push_of(r#"{app="c"}"#, &refs)).await;
        want.extend(lines);
        // Seal and write a small chunk per round (the compaction interval
        // has passed by the second flush, so some compact already).
        ing.flush_all();
    }
    push(
        &ing,
        "fake",
        push_of(r#"{app="c"}"#, &[(t0, "round 0 line 0")]),
    )
    .await;
    ing.flush_all();
    // Compaction runs when the flusher finds the interval passed since the
    // last one; on a fast machine the flushes above can all fall inside one
    // millisecond. Let it pass before the last flush.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    ing.flush_all();
    let counts = chunk_counts(&ing, "fake");
    assert_eq!(counts, vec![1], "runs of small chunks merge into one");
    assert_eq!(read_back(&ing, "fake", "app", "c"), want);
    ing.shutdown();
    // The index holds the compacted chunk; a restart reads the same.
    let (ing, report) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.replayed_entries, 0);
    assert_eq!(read_back(&ing, "fake", "app", "c"), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_whole_expired_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.reject_old_samples = false;
    c.ingester.max_chunk_age = larch_config::HumanDuration::from_secs(400 * 3600);
    c.limits.retention_period = larch_config::HumanDuration::from_secs(24 * 3600);
    let (ing, _) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    let now = now_ns();
    let day = 86_400_000_000_000i64;
    push(
        &ing,
        "fake",
        push_of(r#"{app="r"}"#, &[(now - 3 * day, "three days old")]),
    )
    .await;
    ing.flush_all();
    push(
        &ing,
        "fake",
        push_of(r#"{app="r"}"#, &[(now - 1000, "fresh")]),
    )
    .await;
    ing.flush_all();
    ing.flush_all();
    assert_eq!(
        read_back(&ing, "fake", "app", "r"),
        vec![(now - 1000, "fresh".to_string())]
    );
    assert_eq!(chunk_counts(&ing, "fake"), vec![1]);
}
