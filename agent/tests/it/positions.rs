//! A damaged positions file: the agent starts, says what it could not
//! use, reads every file without a trusted position from its start
//! (rotated files included), and loses no line; the store drops the lines
//! it already has.
//!
//! The property test damages the file at random (flipped bytes, cuts) and
//! checks, on real files with the real tailer, that every line after the
//! true acknowledged offset of every file is read again; the end-to-end
//! test does the same with the real agent and store for two kinds of
//! damage.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use larch_agent::discovery::scan;
use larch_agent::file_id::Fingerprint;
use larch_agent::positions::{self, PositionRecord};
use larch_agent::tailer::{FileInfo, LineConsumer, Opened, Tailer, TailerConfig};
use proptest::prelude::*;

use super::support::*;

const MINUTE: Duration = Duration::from_secs(60);

struct Collect(Vec<String>);

impl LineConsumer for Collect {
    type State = ();
    fn open(&mut self, _: &FileInfo, _: u64) -> Opened<()> {
        Opened::Tail(())
    }
    fn line(&mut self, _: &mut (), _: &FileInfo, line: &[u8], _: u64, _: u64, _: bool) {
        self.0.push(String::from_utf8_lossy(line).into_owned());
    }
    fn truncated(&mut self, _: &mut (), _: &FileInfo) {}
    fn close(&mut self, _: (), _: &FileInfo, _: u64) {}
}

/// Writes `n` lines to `path`; returns the lines and each line's end.
fn write_lines(path: &Path, tag: &str, n: usize) -> (Vec<String>, Vec<u64>) {
    let mut text = String::new();
    let mut ends = Vec::new();
    let lines: Vec<String> = (0..n).map(|i| format!("{tag} {i:03}")).collect();
    for l in &lines {
        text.push_str(l);
        text.push('\n');
        ends.push(text.len() as u64);
    }
    std::fs::write(path, text).unwrap();
    (lines, ends)
}

fn record(path: &Path, offset: u64) -> PositionRecord {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(path).unwrap();
    let m = f.metadata().unwrap();
    PositionRecord {
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
        fp: Fingerprint::of(&f, m.len()).unwrap(),
        offset,
    }
}

/// Three files (an active one, a rotated one being drained, a second
/// container's), acknowledged up to `acked[i]` lines; the positions file
/// damaged by `flips` and `cut`. Every line past the acknowledged ones
/// must be read.
fn run_case(n: [usize; 3], acked: [usize; 3], flips: &[(usize, u8)], cut: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let c1 = dir.path().join("ns_a_u1/app");
    let c2 = dir.path().join("ns_b_u2/app");
    std::fs::create_dir_all(&c1).unwrap();
    std::fs::create_dir_all(&c2).unwrap();
    let files: [PathBuf; 3] = [
        c1.join("0.log"),
        c1.join("0.log.20240101-000000"),
        c2.join("0.log"),
    ];
    let mut must = HashSet::new();
    let mut records = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (lines, ends) = write_lines(f, &format!("f{i}"), n[i]);
        let k = acked[i].min(n[i]);
        must.extend(lines[k..].iter().cloned());
        let offset = if k == 0 { 0 } else { ends[k - 1] };
        records.push(record(f, offset));
    }
    let pos = dir.path().join("positions.yaml");
    positions::save(&pos, &records).unwrap();
    let mut bytes = std::fs::read(&pos).unwrap();
    for (at, x) in flips {
        let i = at % bytes.len();
        bytes[i] ^= x;
    }
    if let Some(c) = cut {
        bytes.truncate(c % (bytes.len() + 1));
    }
    std::fs::write(&pos, &bytes).unwrap();

    let loaded = positions::recover(&pos);
    let cfg = TailerConfig {
        read_budget: 1 << 16,
        max_line_bytes: 1024,
        rotate_wait: Duration::ZERO,
        confinement: None,
    };
    let damaged = !loaded.problems.is_empty();
    if loaded.records.len() < records.len() {
        assert!(damaged, "records lost silently");
    }
    let mut t: Tailer<()> = if damaged {
        Tailer::recovering(cfg, loaded.records)
    } else {
        Tailer::new(cfg, loaded.records)
    };
    let mut c = Collect(Vec::new());
    let mut buf = Vec::new();
    t.sync(&scan(dir.path()).unwrap(), &mut c);
    while t.poll(&mut c, &mut buf).bytes > 0 {}
    let got: HashSet<String> = c.0.into_iter().collect();
    let missing: Vec<_> = must.difference(&got).take(3).collect();
    assert!(missing.is_empty(), "lost {missing:?} (damaged: {damaged})");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn damaged_positions_never_lose_a_line(
        n in [1usize..40, 1usize..40, 1usize..40],
        acked in [0usize..40, 0usize..40, 0usize..40],
        flips in proptest::collection::vec((0usize..2048, 1u8..=255), 0..3),
        cut in proptest::option::of(0usize..2048),
    ) {
        run_case(n, acked, &flips, cut);
    }
}

#[test]
fn intact_positions_resume_where_they_were() {
    // The control case: nothing damaged, nothing read twice.
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("ns_a_u1/app");
    std::fs::create_dir_all(&c).unwrap();
    let (lines, ends) = write_lines(&c.join("0.log"), "x", 10);
    write_lines(&c.join("0.log.20240101-000000"), "old", 10);
    let pos = dir.path().join("positions.yaml");
    positions::save(&pos, &[record(&c.join("0.log"), ends[6])]).unwrap();
    let loaded = positions::recover(&pos);
    assert!(loaded.problems.is_empty());
    let cfg = TailerConfig {
        read_budget: 1 << 16,
        max_line_bytes: 1024,
        rotate_wait: Duration::ZERO,
        confinement: None,
    };
    let mut t: Tailer<()> = Tailer::new(cfg, loaded.records);
    let mut col = Collect(Vec::new());
    let mut buf = Vec::new();
    t.sync(&scan(dir.path()).unwrap(), &mut col);
    while t.poll(&mut col, &mut buf).bytes > 0 {}
    assert_eq!(col.0, lines[7..].to_vec());
}

/// Flips one byte in the middle of the first record line.
fn flip_a_record(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let start = b.windows(3).position(|w| w == b"\n- ").unwrap() + 1;
    b[start + 20] ^= 0x04;
    std::fs::write(p, b).unwrap();
}

/// Cuts the file in the middle of the first record line.
fn cut_a_record(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let start = b.windows(3).position(|w| w == b"\n- ").unwrap() + 1;
    b.truncate(start + 30);
    std::fs::write(p, b).unwrap();
}

fn damaged_positions_end_to_end(damage: fn(&Path), reason: &str) {
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "dmg", "uid", "c");
    let lab = labels("ns", "dmg", "c", "stdout");
    let t0 = now_ns() - 60_000_000_000;
    let mut want = Entries::new();
    let l = lines("first", 200);
    expect(&mut want, &lab, &p.cri("stdout", t0, &l), &l);
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &[],
    );
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    agent.terminate();
    // While the agent is down: more lines, then the kubelet rotates the
    // file and the container writes to a new one.
    let l = lines("unsent", 100);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", t0 + 1_000_000_000, &l),
        &l,
    );
    std::fs::rename(p.log(), p.dir.join("0.log.20240101-000000")).unwrap();
    let l = lines("new", 50);
    expect(
        &mut want,
        &lab,
        &p.cri("stdout", t0 + 2_000_000_000, &l),
        &l,
    );
    damage(&e.positions);
    assert!(larch_agent::positions::load(&e.positions).is_err());

    agent.restart();
    wait_caught_up(&e.positions, &[p.log()], MINUTE);
    wait_for(MINUTE, "the rotated file drained and closed", || {
        agent.metric("larch_agent_files_tailed") == 1.0
    });
    let m = agent.metrics();
    assert_eq!(
        m.get(&format!(
            r#"larch_agent_positions_errors_total{{reason="{reason}"}}"#
        )),
        Some(&1.0),
        "{m:?}"
    );
    // The rotated file was read again from its start: 300 lines, 200 of
    // which the store already had.
    assert_eq!(m["larch_agent_sent_entries_total"], 350.0);
    let mut copy = e.positions.clone().into_os_string();
    copy.push(".damaged");
    assert!(Path::new(&copy).exists());
    agent.terminate();
    assert!(larch_agent::positions::load(&e.positions).is_ok());
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}

#[test]
fn a_flipped_byte_in_the_positions_loses_no_line() {
    damaged_positions_end_to_end(flip_a_record, "corrupt_record");
}

#[test]
fn a_cut_positions_file_loses_no_line() {
    damaged_positions_end_to_end(cut_a_record, "truncated");
}

#[test]
fn random_damage_between_restarts_loses_no_line() {
    // The real agent, restarted six times over a positions file damaged
    // at random places (seeded), with rotations in between: it always
    // starts, reports what it could not use, and the store ends up with
    // every line once.
    let e = env();
    let store = start_store(&e.data);
    let p = PodDir::new(&e.pods, "ns", "rnd", "uid", "c");
    let lab = labels("ns", "rnd", "c", "stdout");
    let t0 = now_ns() - 120_000_000_000;
    let mut want = Entries::new();
    let agent = start_agent(
        &e.pods,
        &e.positions,
        &format!("http://127.0.0.1:{}", store.http),
        &[],
    );
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    for round in 0..6i64 {
        let l = lines(&format!("round {round}"), 50);
        expect(
            &mut want,
            &lab,
            &p.cri("stdout", t0 + round * 1_000_000_000, &l),
            &l,
        );
        wait_caught_up(&e.positions, &[p.log()], MINUTE);
        agent.terminate();
        let l = lines(&format!("stopped {round}"), 30);
        expect(
            &mut want,
            &lab,
            &p.cri("stdout", t0 + round * 1_000_000_000 + 500_000_000, &l),
            &l,
        );
        if round % 2 == 0 {
            std::fs::rename(p.log(), p.dir.join(format!("0.log.2024010{round}-000000"))).unwrap();
        }
        let mut b = std::fs::read(&e.positions).unwrap();
        if rnd(3) == 0 {
            b.truncate(rnd(b.len() + 1));
        } else {
            for _ in 0..=rnd(3) {
                let i = rnd(b.len());
                b[i] ^= 1 + rnd(255) as u8;
            }
        }
        std::fs::write(&e.positions, &b).unwrap();
        let damaged = !larch_agent::positions::recover(&e.positions)
            .problems
            .is_empty();
        agent.restart();
        if !p.log().exists() {
            append(&p.log(), b"");
        }
        wait_caught_up(&e.positions, &[p.log()], MINUTE);
        wait_for(MINUTE, "rotated files drained", || {
            agent.metric("larch_agent_files_tailed") == 1.0
        });
        let errors: f64 = agent
            .metrics()
            .iter()
            .filter(|(k, _)| k.starts_with("larch_agent_positions_errors_total"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(errors > 0.0, damaged, "round {round}");
    }
    agent.terminate();
    want.sort();
    assert_same(&store.query("fake", ("namespace", "ns")), &want);
}
