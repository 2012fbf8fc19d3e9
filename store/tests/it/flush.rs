//! The flusher: many streams' chunks written at once and each named once
//! in the index, and the cycles a seal wakes, which write what was sealed
//! without walking every stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use larch_config::HumanDuration;
use larch_store::index::IndexRecord;
use larch_store::index::log::scan;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;

use super::faults::{config, files, push_entries, read_all, workload};
use super::support::*;

/// Chunks written by several threads at once (`ingester.concurrent_flushes`)
/// are each named once in their tenant's index, in the order each stream
/// sealed them; a stream whose chunk cannot be written keeps it, in memory
/// and in the WAL, without holding back the streams written beside it, and
/// is written by the next flush once it can be; everything reads back after
/// a restart.
#[test]
fn concurrent_flushes_name_each_chunk_once_and_a_failing_stream_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = config(&data, false);
    c.ingester.concurrent_flushes = 8;
    // One stream of the first tenant cannot have its chunk directory: a
    // file stands where it would be (chunks are written as they seal,
    // during the pushes, so it is put there first).
    // Its fingerprint as validation makes its labels (with `service_name`).
    let blocked = {
        let push = larch_store::push::Push::new(vec![larch_store::push::PushStream {
            labels: larch_store::push::StreamLabels::Text(r#"{app="faults", stream="s0"}"#.into()),
            entries: vec![larch_store::push::PushEntry {
                ts: now_ns(),
                line: "x".into(),
                metadata: vec![],
                omitted: 0,
            }],
        }]);
        let v = larch_store::validate::validate(push, &c.limits, now_ns(), "alpha");
        v.streams[0].fp
    };
    let blocked_dir = data.join(format!("chunks/alpha/{blocked:016x}"));
    std::fs::create_dir_all(blocked_dir.parent().unwrap()).unwrap();
    std::fs::write(&blocked_dir, b"in the way").unwrap();
    let (ing, _) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    let acked = workload(&ing, 11, 400, 40, &[]);
    let alpha = larch_store::tenant::TenantId::new("alpha").unwrap();
    assert!(
        ing.streams_in_range(&alpha, i64::MIN, i64::MAX)
            .iter()
            .any(|s| s.fp == blocked),
        "the blocked stream was pushed to"
    );

    // Every chunk file under `chunks/<tenant>/` and every chunk the
    // tenant's index names, as (stream, id); the index must name each
    // once and, per stream, in increasing `max_seq` (the order of sealing).
    let check = |expect_blocked: bool| {
        let mut streams_with_files = 0;
        for tenant in ["alpha", "beta"] {
            let mut on_disk: Vec<(u64, String)> = files(&data.join("chunks").join(tenant))
                .into_iter()
                .filter_map(|p| {
                    let fp = u64::from_str_radix(p.parent()?.to_str()?, 16).ok()?;
                    Some((fp, p.file_stem()?.to_str()?.to_string()))
                })
                .collect();
            on_disk.sort();
            let log = scan(&std::fs::read(data.join(format!("index/{tenant}.idx"))).unwrap());
            assert!(log.is_clean(), "{tenant}: {log:?}");
            let mut named = Vec::new();
            let mut last_seq = std::collections::HashMap::new();
            for r in log.records {
                if let IndexRecord::Chunk { fp, chunk } = r {
                    let before = last_seq.insert(fp, chunk.max_seq).unwrap_or(0);
                    assert!(chunk.max_seq > before, "{tenant} {fp:016x}: out of order");
                    named.push((fp, chunk.id));
                }
            }
            let count = named.len();
            named.sort();
            named.dedup();
            assert_eq!(named.len(), count, "{tenant}: a chunk named twice");
            assert_eq!(
                named, on_disk,
                "{tenant}: the index names exactly the files"
            );
            let fps: std::collections::HashSet<u64> = on_disk.iter().map(|(fp, _)| *fp).collect();
            if tenant == "alpha" {
                assert_eq!(
                    fps.contains(&blocked),
                    !expect_blocked,
                    "the blocked stream has files once it is unblocked, not before"
                );
            }
            streams_with_files += fps.len();
        }
        streams_with_files
    };

    ing.flush_all();
    assert!(
        ing.metrics.flush_failures.get() > 0,
        "the blocked stream's write failed"
    );
    let streams: usize = ["alpha", "beta"]
        .iter()
        .map(|t| {
            let t = larch_store::tenant::TenantId::new(t).unwrap();
            ing.streams_in_range(&t, i64::MIN, i64::MAX).len()
        })
        .sum();
    let written = check(true);
    assert_eq!(written, streams - 1, "every other stream was written");
    assert_eq!(
        read_all(&ing),
        acked,
        "the blocked stream is served from memory"
    );

    std::fs::remove_file(&blocked_dir).unwrap();
    let failures = ing.metrics.flush_failures.get();
    ing.flush_all();
    assert_eq!(
        ing.metrics.flush_failures.get(),
        failures,
        "nothing failed once unblocked"
    );
    assert_eq!(check(false), streams, "the blocked stream was written");
    assert_eq!(read_all(&ing), acked);
    ing.halt();
    drop(ing);

    let (ing, report) = Ingester::open(config(&data, false), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.replay.corruptions, 0, "{report:?}");
    assert_eq!(read_all(&ing), acked);
    ing.halt();
}

/// A cycle woken because the writer sealed a chunk writes that chunk at
/// once, and only what was sealed: a stream left idle past
/// `chunk_idle_period` waits for the next cycle that looks at every
/// stream (every `flush_check_period`, or a flush request), as Loki's
/// flush loop checks idleness once a period. So a store with many idle
/// streams does not walk them all for each chunk its busy streams fill.
#[test]
fn a_seal_writes_its_chunk_at_once_and_idle_streams_wait_for_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = config(&data, false);
    c.ingester.chunk_idle_period = HumanDuration(Duration::from_millis(1));
    c.ingester.flush_check_period = HumanDuration::from_secs(3600);
    let (ing, _) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    // The first cycle, which looks at every stream, has run once the
    // flusher takes a flush request; there is nothing to write yet.
    ing.flush_all();
    let chunk_streams = || {
        let mut fps: Vec<String> = files(&data.join("chunks"))
            .into_iter()
            .filter_map(|p| Some(p.parent()?.to_str()?.to_string()))
            .collect();
        fps.dedup();
        fps
    };
    assert!(chunk_streams().is_empty());
    // A quiet stream: a few lines, an open chunk, idle from now on.
    let quiet = workload_one(&ing, r#"{app="quiet"}"#, 3, 0);
    std::thread::sleep(Duration::from_millis(20));
    // A busy stream fills and seals chunks (6 KiB each here).
    let busy = workload_one(&ing, r#"{app="busy"}"#, 400, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while chunk_streams().is_empty() {
        assert!(Instant::now() < deadline, "no sealed chunk was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give a wrongly thorough cycle the time to write the quiet one too.
    std::thread::sleep(Duration::from_millis(300));
    let written = chunk_streams();
    assert_eq!(
        written.len(),
        1,
        "only the busy stream's chunks: {written:?}"
    );
    // The period's cycle (here a flush request) writes the idle one.
    ing.flush_all();
    assert_eq!(chunk_streams().len(), 2);
    let mut all = quiet;
    all.extend(busy);
    all.sort();
    assert_eq!(read_all(&ing), all);
    ing.halt();
}

/// Pushes `lines` lines of about 100 bytes to `labels` for tenant
/// `alpha`, starting at minute `minute` of the last hour; returns them as
/// `read_all` lists them.
fn workload_one(
    ing: &Ingester,
    labels: &str,
    lines: usize,
    minute: i64,
) -> Vec<super::faults::Line> {
    let t0 = now_ns() - 3_600_000_000_000 + minute * 60_000_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in 0..lines.div_ceil(10) {
        let entries = (batch * 10..lines.min(batch * 10 + 10))
            .map(|i| larch_store::push::PushEntry {
                ts: t0 + i as i64 * 1_000_000,
                line: format!("line {i} of {labels} {}", "z".repeat(80)).into(),
                metadata: vec![],
                omitted: 0,
            })
            .collect();
        out.extend(push_entries(ing, &rt, "alpha", labels, entries));
    }
    out
}
