//! Recovery with real processes and a real full disk: index damage after
//! kill -9, `larch-store --rebuild-index`, ENOSPC on a small tmpfs, and
//! thousands of tenants under a low file descriptor limit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use larch_config::ByteSize;
use larch_store::index::log::scan;
use larch_store::index::{Handles, IndexLog, IndexRecord};
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;
use larch_store::quarantine::Quarantine;
use larch_store::wal::Wal;

use super::faults::{Line, config, files, read_all, workload};
use larch_testkit::http::percent;
use larch_testkit::{binary, wait_for};

use super::support::*;

const CONFIG: &str = "ingester:\n  block_size: 1024\n  chunk_target_size: 4096\n";

fn write_config(dir: &Path) -> PathBuf {
    let p = dir.join("larch.yaml");
    std::fs::write(&p, CONFIG).unwrap();
    p
}

fn push_http(port: u16, tenant: &str, labels: &str, ts: i64, lines: &[String]) -> u16 {
    let body = protobuf_lines(labels, ts, lines);
    request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Scope-OrgID", tenant),
        ],
        &body,
    )
    .unwrap()
    .status
}

/// Lines of a `query_range` answer.
fn query_count(port: u16, selector: &str, start: i64, end: i64) -> usize {
    let q = percent(selector);
    let r = request(
        port,
        "GET",
        &format!("/loki/api/v1/query_range?query={q}&start={start}&end={end}&limit=5000&direction=forward"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum()
}

#[test]
fn index_damage_after_kill_9_loses_nothing_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let data = dir.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let store = StoreProcess::start(&data, &args);
    let t0 = now_ns() - 60_000_000_000;
    let mut acked = Vec::new();
    for b in 0..40 {
        let lines: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    "batch {b} line {i} some padding so that chunks fill up {}",
                    b * 50 + i
                )
            })
            .collect();
        let ts = t0 + b as i64 * 1_000_000_000;
        let labels = format!(r#"{{app="k9", part="{}"}}"#, b % 2);
        assert_eq!(push_http(store.http, "fake", &labels, ts, &lines), 204);
        acked.extend(
            lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| (ts + i as i64, l)),
        );
    }
    // Chunks sealed by size are written by the flusher; wait for several
    // records in the index.
    let idx = data.join("index/fake.idx");
    wait_for(Duration::from_secs(30), "chunks in the index", || {
        std::fs::read(&idx).is_ok_and(|b| scan(&b).records.len() >= 6)
    });
    store.kill9();

    // One flipped byte in the middle of the index log.
    let mut bytes = std::fs::read(&idx).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&idx, &bytes).unwrap();

    let store = StoreProcess::start(&data, &args);
    let ready = request(store.http, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(ready.status, 200);
    assert!(ready.text().starts_with("ready\n"), "{}", ready.text());
    assert!(
        ready
            .text()
            .contains("degraded: tenant fake: index log damaged"),
        "{}",
        ready.text()
    );
    let metrics = request(store.http, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    assert!(
        metrics.contains(r#"larch_index_corruptions_total{kind="record"} 1"#),
        "{metrics}"
    );
    assert_eq!(
        query_count(store.http, r#"{app="k9"}"#, t0 - 1, t0 + 100_000_000_000),
        acked.len()
    );
    assert!(
        files(&data.join("quarantine"))
            .iter()
            .any(|p| p.starts_with("index")),
        "the damaged log is kept"
    );
    assert_eq!(store.terminate().code(), Some(0));
    acked.sort();
    let ing = open_dir(&data);
    assert_eq!(read_back(&ing, "fake", "app", "k9"), acked);
    ing.halt();
}

/// A chunk write cut short by a crash leaves a `.tmp` file next to the
/// chunks. The next start moves it to the quarantine folder (never deletes
/// it), says so in the log, the metric and `/ready`, and serves every
/// acknowledged line once.
#[test]
fn a_leftover_temporary_chunk_file_is_quarantined_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let data = dir.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let store = StoreProcess::start(&data, &args);
    let t0 = now_ns() - 60_000_000_000;
    let mut acked = Vec::new();
    for b in 0..20 {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("batch {b} line {i} padding so that chunks fill up"))
            .collect();
        let ts = t0 + b as i64 * 1_000_000_000;
        assert_eq!(
            push_http(store.http, "fake", r#"{app="tmp"}"#, ts, &lines),
            204
        );
        acked.extend(
            lines
                .into_iter()
                .enumerate()
                .map(|(i, l)| (ts + i as i64, l)),
        );
    }
    let idx = data.join("index/fake.idx");
    wait_for(Duration::from_secs(30), "chunks in the index", || {
        std::fs::read(&idx).is_ok_and(|b| scan(&b).records.len() >= 3)
    });
    store.kill9();

    // What a crash in the middle of a chunk write leaves: the first half
    // of a chunk under the temporary name the flusher writes before its
    // rename.
    let chunk = files(&data.join("chunks"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "chunk"))
        .expect("a chunk file was written");
    let bytes = std::fs::read(data.join("chunks").join(&chunk)).unwrap();
    let tmp = chunk.with_file_name("ffffffffffffffff-00000000.tmp");
    std::fs::write(data.join("chunks").join(&tmp), &bytes[..bytes.len() / 2]).unwrap();

    let store = StoreProcess::start(&data, &args);
    let ready = request(store.http, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert!(
        ready
            .text()
            .contains("ffffffffffffffff-00000000.tmp of stream"),
        "{}",
        ready.text()
    );
    let metrics = request(store.http, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    let quarantined: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("larch_store_quarantined_files_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(quarantined >= 1, "{metrics}");
    assert!(!data.join("chunks").join(&tmp).exists(), "moved away");
    assert_eq!(
        std::fs::read(data.join("quarantine/chunks").join(&tmp)).unwrap(),
        &bytes[..bytes.len() / 2],
        "kept whole in the quarantine folder"
    );
    assert_eq!(
        query_count(store.http, r#"{app="tmp"}"#, t0 - 1, t0 + 100_000_000_000),
        acked.len()
    );
    assert_eq!(store.terminate().code(), Some(0));
    acked.sort();
    let ing = open_dir(&data);
    assert_eq!(read_back(&ing, "fake", "app", "tmp"), acked);
    ing.halt();
}

/// The index rebuilt from chunk files alone returns every line once, even
/// with a compaction's inputs still on disk next to its output (a crash
/// before their deferred deletion).
#[test]
fn rebuild_index_from_chunk_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let aside = tempfile::tempdir().unwrap();
    let acked: Vec<Line> = {
        let (ing, _) = Ingester::open(config(data, true), Arc::new(Metrics::new())).unwrap();
        let acked = workload(&ing, 42, 40, 2, &[3, 6, 9, 12, 15, 18, 24, 30, 39]);
        // Everything on disk now, retired compaction inputs included
        // (they wait out a grace period before deletion).
        for p in files(data)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        {
            let to = aside.path().join(p);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(data.join(p), to).unwrap();
        }
        ing.halt();
        acked
    };
    // Put back the inputs the halt deleted, as a crash would have left them.
    let mut restored = 0;
    for p in files(aside.path()) {
        if !data.join(&p).exists() {
            std::fs::copy(aside.path().join(&p), data.join(&p)).unwrap();
            restored += 1;
        }
    }
    assert!(restored > 0, "the workload compacted something");
    // Lose one tenant's index and cut the other's to its header.
    std::fs::remove_file(data.join("index/alpha.idx")).unwrap();
    std::fs::write(data.join("index/beta.idx"), b"LRCHIDX\x01").unwrap();

    let out = Command::new(binary("larch-store"))
        .arg("--data-dir")
        .arg(data)
        .arg("--rebuild-index")
        .env("LARCH_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rebuilt the index of 2 tenant(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{restored} quarantined")),
        "{stdout}"
    );

    let mut c = config(data, false);
    c.ingester.chunk_target_size = ByteSize(1 << 30);
    let (ing, report) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
    assert_eq!(
        report.recovery.adopted, 0,
        "the rebuilt index names every chunk"
    );
    assert_eq!(read_all(&ing), acked);
    // The index counts every flushed entry once.
    let mut in_chunks = 0;
    for t in ing.tenants() {
        for s in t.all() {
            in_chunks += s.state.lock().chunks.iter().map(|c| c.entries).sum::<u64>();
        }
    }
    assert!(
        in_chunks as usize <= acked.len(),
        "{in_chunks} > {}",
        acked.len()
    );
    let q = files(&data.join("quarantine"));
    assert_eq!(
        q.iter().filter(|p| p.starts_with("chunks")).count(),
        restored
    );
    assert!(
        q.iter()
            .any(|p| p.to_string_lossy().contains("beta.idx.before-rebuild"))
    );
    ing.halt();
}

/// A tmpfs of `size` mounted for a test, unmounted when dropped.
pub(crate) struct Tmpfs {
    _dir: tempfile::TempDir,
    pub(crate) mnt: PathBuf,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot be done here.
    pub(crate) fn mount(size: &str) -> Result<Tmpfs, String> {
        if !Path::new("/proc/self/status").exists() {
            return Err("no /proc: not Linux".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`mount -t tmpfs -o size={size} tmpfs {}` failed: {}; mounting a \
                 tmpfs needs root or CAP_SYS_ADMIN, so run the tests as root \
                 (CI does)",
                mnt.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { _dir: dir, mnt })
    }

    /// Fills the file system with a ballast file, then frees `leave`
    /// bytes of it.
    pub(crate) fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let ballast = self.mnt.join("ballast");
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // Smaller writes fill the last partial page.
        while let Ok(n) = f.write(&chunk[..512]) {
            if n == 0 {
                break;
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// A small tmpfs to fill, or a failed test: the ENOSPC tests need a real
/// full file system, mounting one needs root or CAP_SYS_ADMIN (the test
/// command runs as root, here and on CI; README says so), and a test that
/// cannot run must fail, not pass by skipping.
fn tmpfs(size: &str) -> Tmpfs {
    match Tmpfs::mount(size) {
        Ok(t) => t,
        Err(why) => panic!(
            "this ENOSPC test needs a small tmpfs to fill and could not mount one \
             (it needs root or CAP_SYS_ADMIN): {why}"
        ),
    }
}

/// On a full disk, an index append that fails leaves the file as it was
/// (cut back to its last record), and the log works again once there is
/// space. The same for a WAL append.
#[test]
fn enospc_index_and_wal_appends_leave_files_as_they_were() {
    let fs = tmpfs("1m");
    let q = Quarantine::at(&fs.mnt.join("quarantine"));
    let path = fs.mnt.join("t.idx");
    let handles = Handles::new(2);
    let mut log = IndexLog::new(&path, handles.clone());
    let labels = larch_query::LabelSet::from_pairs([("app", "full")]);
    let rec = |i: usize| IndexRecord::Stream {
        fp: i as u64,
        labels: larch_query::LabelSet::from_pairs([("app", format!("{i:0>300}"))]),
    };
    log.append(&[IndexRecord::Stream { fp: 0, labels }])
        .unwrap();
    let mut written = 1;
    let wal_dir = fs.mnt.join("wal");
    let mut wal = Wal::open(&wal_dir, 1 << 20, true, vec![]).unwrap();
    let frame = |seq: u64| {
        let labels = larch_query::LabelSet::from_pairs([("app", "w")]);
        let entries = vec![larch_store::wal::record::WalEntry {
            ts: seq as i64,
            line: "y".repeat(700).into(),
            meta: Default::default(),
        }];
        let mut f = larch_store::wal::record::encode_push(
            "t",
            std::iter::once((&labels, entries.as_slice())),
        );
        larch_store::wal::record::finish_frame(&mut f, seq);
        f
    };
    let ballast = fs.fill(0);

    // Appends go on until the last page is full, then fail.
    let mut failed = false;
    for i in 1..200 {
        match log.append(&[rec(i)]) {
            Ok(()) => written += 1,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the index append never hit the full disk");
    assert!(log.failure().is_none(), "the log was cut back");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), log.len());
    let bytes = std::fs::read(&path).unwrap();
    let s = scan(&bytes);
    assert!(s.is_clean(), "{s:?}");
    assert_eq!(s.records.len(), written);

    let mut seq = 1;
    let mut wal_failed = false;
    for _ in 0..200 {
        match wal.append(&frame(seq), seq) {
            Ok(()) => seq += 1,
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                wal_failed = true;
                break;
            }
        }
    }
    assert!(wal_failed, "the WAL append never hit the full disk");
    assert!(wal.failure().is_none(), "the segment was cut back");
    let seg = wal_dir.join(format!("{:020}.wal", 1));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), wal.current_size());

    // Space returns: both work again, and everything reads back.
    std::fs::remove_file(&ballast).unwrap();
    log.append(&[rec(999)]).unwrap();
    wal.append(&frame(seq), seq).unwrap();
    drop(log);
    drop(wal);
    let o = IndexLog::open(&path, handles, &q).unwrap();
    assert!(o.damage.is_clean());
    assert_eq!(o.records.len(), written + 1);
    let mut seqs = Vec::new();
    let (_, stats) = larch_store::wal::replay(&wal_dir, &q, |r| seqs.push(r.seq)).unwrap();
    assert_eq!(stats.corruptions, 0);
    assert!(!stats.torn_tail);
    assert_eq!(seqs, (1..=seq).collect::<Vec<_>>());
}

/// A store on a full disk refuses pushes it cannot make durable, keeps
/// what it acknowledged in memory and the WAL while chunks cannot be
/// written, leaves no partial file behind, and after space returns (with
/// or without a crash first) every acknowledged line is there once.
#[test]
fn enospc_store_loses_nothing_acknowledged() {
    for crash_while_full in [false, true] {
        let fs = tmpfs("3m");
        let data = fs.mnt.join("data");
        let mut c = config(&data, false);
        c.wal.fsync = true;
        c.wal.segment_size = ByteSize(256 * 1024);
        let (ing, _) = Ingester::open(c.clone(), Arc::new(Metrics::new())).unwrap();
        let mut acked = workload(&ing, 9, 10, 2, &[4]);
        let ballast = fs.fill(48 * 1024);
        // Push until the disk refuses; only acknowledged pushes count.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut refused = 0;
        let t0 = now_ns() - 1_000_000_000;
        for b in 0..400i64 {
            let lines: Vec<String> = (0..20)
                .map(|i| format!("full disk batch {b} line {i} {}", "z".repeat(200)))
                .collect();
            let push = larch_store::push::Push {
                held_body: 0,
                source: None,
                streams: vec![larch_store::push::PushStream {
                    labels: larch_store::push::StreamLabels::Text(r#"{app="full"}"#.into()),
                    entries: lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| larch_store::push::PushEntry {
                            ts: t0 + b * 100 + i as i64,
                            line: l.as_str().into(),
                            metadata: vec![],
                            omitted: 0,
                        })
                        .collect(),
                }],
            };
            let v = larch_store::validate::validate(push, &ing.config.limits, now_ns(), "alpha");
            let labels = v.streams[0].labels.to_string();
            match rt.block_on(ing.push(&larch_store::tenant::TenantId::new("alpha").unwrap(), v)) {
                Ok(_) => acked.extend(lines.into_iter().enumerate().map(|(i, l)| {
                    (
                        "alpha".to_string(),
                        labels.clone(),
                        t0 + b * 100 + i as i64,
                        l,
                    )
                })),
                Err(e) => {
                    assert!(e.to_string().contains("No space left"), "{e}");
                    refused += 1;
                    if refused >= 3 {
                        break;
                    }
                }
            }
        }
        assert!(refused > 0, "the disk never filled up");
        assert!(ing.is_healthy(), "a refused append does not break the WAL");
        acked.sort();
        // Chunks cannot be written: they stay in memory, readable.
        ing.flush_all();
        assert!(
            ing.metrics.flush_failures.get() > 0,
            "a flush failed on the full disk"
        );
        assert_eq!(read_all(&ing), acked);
        // No partial file anywhere.
        for p in files(&data) {
            assert!(
                !p.to_string_lossy().ends_with(".tmp"),
                "{} left behind",
                p.display()
            );
            if p.extension().is_some_and(|x| x == "idx") {
                let s = scan(&std::fs::read(data.join(&p)).unwrap());
                assert!(s.is_clean(), "{}: {s:?}", p.display());
            }
        }
        let copy = tempfile::tempdir().unwrap();
        for p in files(&data.join("wal")) {
            std::fs::copy(data.join("wal").join(&p), copy.path().join(&p)).unwrap();
        }
        let q = Quarantine::at(&copy.path().join("q"));
        let (_, stats) = larch_store::wal::replay(copy.path(), &q, |_| {}).unwrap();
        assert_eq!(
            (stats.corruptions, stats.torn_tail),
            (0, false),
            "{stats:?}"
        );

        if crash_while_full {
            ing.halt();
            drop(ing);
            std::fs::remove_file(&ballast).unwrap();
        } else {
            std::fs::remove_file(&ballast).unwrap();
            // Space is back: pushes and flushes work without a restart.
            let more = workload(&ing, 77, 4, 1, &[3]);
            acked.extend(more);
            acked.sort();
            assert!(
                files(&data.join("chunks"))
                    .iter()
                    .any(|p| p.to_string_lossy().contains("alpha")),
                "chunks were written once space returned"
            );
            ing.halt();
            drop(ing);
        }
        let (ing, report) = Ingester::open(c, Arc::new(Metrics::new())).unwrap();
        let got = read_all(&ing);
        assert_eq!(
            got, acked,
            "crash while full: {crash_while_full}; {report:?}"
        );
        assert_eq!(report.replay.corruptions, 0);
        ing.halt();
    }
}

/// Tenants cost no file descriptor of their own: a store limited to 256
/// descriptors takes pushes from 1,500 tenants and flushes them all.
#[test]
fn thousands_of_tenants_fit_in_a_few_file_descriptors() {
    // On tmpfs, fsync costs nothing: 1,500 flushes stay fast.
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let data = base.path().join("data");
    // Open chunks are written at shutdown only when asked to (the default
    // leaves them in the WAL).
    let store = StoreProcess::builder()
        .data_dir(&data)
        .config("ingester:\n  flush_on_shutdown: true\n")
        .max_open_files(256)
        .start();
    let http_port = store.http;
    let t0 = now_ns() - 1_000_000_000;
    let tenants = 1500;
    for t in 0..tenants {
        let status = push_http(
            http_port,
            &format!("tenant-{t}"),
            r#"{app="many"}"#,
            t0 + t as i64,
            &[format!("hello from tenant {t}")],
        );
        assert_eq!(status, 204, "tenant {t}");
    }
    let metrics = request(http_port, "GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    assert!(
        metrics.contains("larch_index_open_files 0"),
        "no index file is open before a flush"
    );
    let status = store.terminate();
    assert!(status.success(), "{status}");
    let idx = std::fs::read_dir(data.join("index")).unwrap().count();
    assert_eq!(idx, tenants, "every tenant's index was written at shutdown");
    let ing = open_dir(&data);
    for t in [0, 499, 500, 1499] {
        let got = read_back(&ing, &format!("tenant-{t}"), "app", "many");
        assert_eq!(got, vec![(t0 + t as i64, format!("hello from tenant {t}"))]);
    }
    ing.halt();
}

/// A crash after a compaction wrote its output but before the index
/// recorded it: the inputs are still indexed, the output is moved to the
/// quarantine folder (not adopted: that would count the entries twice),
/// and every line comes back once.
#[test]
fn unrecorded_compaction_output_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let before = tempfile::tempdir().unwrap();
    let acked = {
        let (ing, _) = Ingester::open(config(data, false), Arc::new(Metrics::new())).unwrap();
        let acked = workload(&ing, 5, 8, 1, &[0, 1, 2, 3, 4, 5, 6, 7]);
        ing.halt();
        acked
    };
    let copy_all = |from: &Path, to: &Path| {
        for p in files(from) {
            let t = to.join(&p);
            std::fs::create_dir_all(t.parent().unwrap()).unwrap();
            std::fs::copy(from.join(&p), t).unwrap();
        }
    };
    copy_all(&data.join("index"), &before.path().join("index"));
    copy_all(&data.join("chunks"), &before.path().join("chunks"));
    {
        let (ing, _) = Ingester::open(config(data, true), Arc::new(Metrics::new())).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        ing.flush_all();
        ing.halt();
    }
    let outputs: Vec<PathBuf> = files(&data.join("chunks"))
        .into_iter()
        .filter(|p| !before.path().join("chunks").join(p).exists())
        .collect();
    assert!(!outputs.is_empty(), "a compaction ran");
    // Back to the index and inputs of before the compaction was recorded.
    std::fs::remove_dir_all(data.join("index")).unwrap();
    copy_all(&before.path().join("index"), &data.join("index"));
    copy_all(&before.path().join("chunks"), &data.join("chunks"));

    let (ing, report) = Ingester::open(config(data, false), Arc::new(Metrics::new())).unwrap();
    assert_eq!(report.recovery.adopted, 0, "{report:?}");
    assert_eq!(
        report.recovery.quarantined as usize,
        outputs.len(),
        "{report:?}"
    );
    assert_eq!(read_all(&ing), acked);
    for p in &outputs {
        assert!(
            data.join("quarantine/chunks").join(p).exists(),
            "{}",
            p.display()
        );
    }
    ing.halt();
}
