//! Model-based test of the tailer: random appends (with unfinished last
//! lines), rename rotations, copytruncates, deletions, restarts from saved
//! positions and polls, on real files, against an in-memory model of which
//! lines must have been read.
//!
//! The model's rule: at every poll, each line of each file the tailer can
//! reach is delivered exactly once, in order. A file is reachable if it is
//! at the active path, if the tailer has it open (it was the active file at
//! the previous poll), or, after a restart, if a saved position names it
//! and it still exists under some name. Lines are lost only where no tailer
//! can get them back: a copytruncate of lines not yet read, or a file
//! unlinked while the tailer had no descriptor on it.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use larch_agent::discovery::scan;
use larch_agent::positions::PositionRecord;
use larch_agent::tailer::{FileInfo, LineConsumer, Opened, Tailer, TailerConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append {
        lines: Vec<String>,
        tail: Option<String>,
    },
    Poll,
    /// A poll during which the consumer takes `n` lines at a time and then
    /// pauses (its output is full), repeated until everything is read.
    PollPausing(usize),
    Rotate,
    CopyTruncate,
    Delete,
    DeleteRotated,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let text = "[a-z ]{0,40}";
    prop_oneof![
        6 => (proptest::collection::vec(text, 0..6), proptest::option::of(text)).prop_map(|(lines, tail)| Op::Append { lines, tail }),
        4 => Just(Op::Poll),
        2 => (1usize..4).prop_map(Op::PollPausing),
        2 => Just(Op::Rotate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Delete),
        1 => Just(Op::DeleteRotated),
        2 => Just(Op::Restart),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Pending,
    Delivered,
    Lost,
}

struct MLine {
    text: String,
    /// Ends with a newline, or the file can no longer grow (so the tailer
    /// emits its unfinished last line when it closes it).
    complete: bool,
    state: State,
}

struct MFile {
    /// Where the file is now; `None` once unlinked.
    path: Option<PathBuf>,
    lines: Vec<MLine>,
}

struct Collect {
    delivered: Vec<String>,
    /// Lines still accepted before pausing (`None`: never pauses).
    budget: Option<usize>,
}

impl LineConsumer for Collect {
    /// End offset of the last line delivered.
    type State = u64;
    fn open(&mut self, _: &FileInfo, start: u64) -> Opened<u64> {
        Opened::Tail(start)
    }
    fn line(
        &mut self,
        st: &mut u64,
        _: &FileInfo,
        line: &[u8],
        _start: u64,
        end: u64,
        truncated: bool,
    ) {
        assert!(!truncated);
        assert!(!self.paused(), "a line handed to a paused consumer");
        self.delivered
            .push(String::from_utf8(line.to_vec()).unwrap());
        *st = end;
        if let Some(b) = &mut self.budget {
            *b = b.saturating_sub(1);
        }
    }
    fn paused(&self) -> bool {
        self.budget == Some(0)
    }
    fn truncated(&mut self, st: &mut u64, _: &FileInfo) {
        *st = 0;
    }
    fn close(&mut self, _: u64, _: &FileInfo, _: u64) {}
}

struct Harness {
    dir: tempfile::TempDir,
    active: PathBuf,
    files: Vec<MFile>,
    /// Model file at the active path.
    current: Option<usize>,
    /// Files the tailer has open, or (after a restart) has positions for.
    known: Vec<usize>,
    restarted: bool,
    /// Positions given to the current tailer, until its first sync
    /// (a restart before that keeps the same positions file).
    unsynced: Option<Vec<PositionRecord>>,
    tailer: Tailer<u64>,
    consumer: Collect,
    seen: HashSet<String>,
    seq: usize,
    rotations: usize,
}

fn cfg() -> TailerConfig {
    TailerConfig {
        // Small reads exercise unfinished lines across polls.
        read_budget: 97,
        max_line_bytes: 4096,
        rotate_wait: Duration::ZERO,
        confinement: None,
    }
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("ns_pod_uid/app");
        std::fs::create_dir_all(&c).unwrap();
        Harness {
            active: c.join("0.log"),
            dir,
            files: Vec::new(),
            current: None,
            known: Vec::new(),
            restarted: false,
            unsynced: None,
            tailer: Tailer::new(cfg(), Vec::new()),
            consumer: Collect {
                delivered: Vec::new(),
                budget: None,
            },
            seen: HashSet::new(),
            seq: 0,
            rotations: 0,
        }
    }

    fn open_active(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.active)
            .unwrap()
    }

    fn unique(&mut self, text: &str) -> String {
        self.seq += 1;
        format!("L{:05} {text}", self.seq)
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { lines, tail } => {
                let idx = match self.current {
                    Some(i) => i,
                    None => {
                        self.files.push(MFile {
                            path: Some(self.active.clone()),
                            lines: Vec::new(),
                        });
                        self.current = Some(self.files.len() - 1);
                        self.files.len() - 1
                    }
                };
                let mut f = self.open_active();
                let mut bytes = Vec::new();
                if let Some(last) = self.files[idx].lines.last_mut()
                    && !last.complete
                {
                    bytes.push(b'\n');
                    last.complete = true;
                }
                for l in lines {
                    let text = self.unique(l);
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.push(b'\n');
                    self.files[idx].lines.push(MLine {
                        text,
                        complete: true,
                        state: State::Pending,
                    });
                }
                if let Some(t) = tail {
                    let text = self.unique(t);
                    bytes.extend_from_slice(text.as_bytes());
                    self.files[idx].lines.push(MLine {
                        text,
                        complete: false,
                        state: State::Pending,
                    });
                }
                f.write_all(&bytes).unwrap();
            }
            Op::Rotate => {
                let Some(idx) = self.current.take() else {
                    return;
                };
                self.rotations += 1;
                let to = self
                    .active
                    .with_file_name(format!("0.log.2024010{}-000000", self.rotations));
                std::fs::rename(&self.active, &to).unwrap();
                self.files[idx].path = Some(to);
                // The runtime never writes to a rotated file again: its
                // unfinished last line is final.
                if let Some(last) = self.files[idx].lines.last_mut() {
                    last.complete = true;
                }
                self.open_active();
                self.files.push(MFile {
                    path: Some(self.active.clone()),
                    lines: Vec::new(),
                });
                self.current = Some(self.files.len() - 1);
            }
            Op::CopyTruncate => {
                let Some(idx) = self.current else { return };
                self.rotations += 1;
                // The copy is written compressed (the tailer ignores it), so
                // a copy that happens to reuse a deleted file's inode is
                // not mistaken for that file.
                let to = self
                    .active
                    .with_file_name(format!("0.log.2024010{}-000000.gz", self.rotations));
                std::fs::copy(&self.active, &to).unwrap();
                OpenOptions::new()
                    .write(true)
                    .open(&self.active)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
                for l in &mut self.files[idx].lines {
                    if l.state == State::Pending {
                        l.state = State::Lost;
                    }
                }
                // Delivered and lost lines stay in the model for checking
                // but no longer occupy the file.
                let old = std::mem::take(&mut self.files[idx].lines);
                self.files.push(MFile {
                    path: None,
                    lines: old,
                });
            }
            Op::Delete => {
                let Some(idx) = self.current.take() else {
                    return;
                };
                std::fs::remove_file(&self.active).unwrap();
                self.files[idx].path = None;
                if let Some(last) = self.files[idx].lines.last_mut() {
                    last.complete = true;
                }
                if !self.known.contains(&idx) || self.restarted {
                    self.lose(idx);
                }
            }
            Op::DeleteRotated => {
                let victim = (0..self.files.len())
                    .find(|&i| Some(i) != self.current && self.files[i].path.is_some());
                let Some(idx) = victim else { return };
                let p = self.files[idx].path.take().unwrap();
                std::fs::remove_file(p).unwrap();
                if !self.known.contains(&idx) || self.restarted {
                    self.lose(idx);
                }
            }
            Op::Restart => {
                let mut records = self.unsynced.take().unwrap_or_default();
                for (info, _, end) in self.tailer.states_mut() {
                    records.push(PositionRecord {
                        path: info.path.as_ref().clone(),
                        dev: info.dev,
                        ino: info.ino,
                        fp: info.fp,
                        offset: *end,
                    });
                }
                self.tailer = Tailer::new(cfg(), records.clone());
                self.unsynced = Some(records);
                self.restarted = true;
                // Files known only by descriptor and already unlinked are gone.
                for idx in self.known.clone() {
                    if self.files[idx].path.is_none() {
                        self.lose(idx);
                    }
                }
                self.known.retain(|&i| self.files[i].path.is_some());
            }
            Op::Poll => self.poll(None),
            Op::PollPausing(n) => self.poll(Some(*n)),
        }
    }

    fn lose(&mut self, idx: usize) {
        for l in &mut self.files[idx].lines {
            if l.state == State::Pending {
                l.state = State::Lost;
            }
        }
    }

    fn poll(&mut self, pausing: Option<usize>) {
        let mut buf = Vec::new();
        let saved = if self.restarted {
            self.unsynced.take()
        } else {
            None
        };
        self.unsynced = None;
        loop {
            let found = scan(self.dir.path()).unwrap();
            self.tailer.sync(&found, &mut self.consumer);
            self.consumer.budget = pausing;
            let stats = self.tailer.poll(&mut self.consumer, &mut buf);
            let paused = self.consumer.paused();
            self.consumer.budget = None;
            if stats.bytes == 0 && stats.closed == 0 && !paused {
                break;
            }
        }
        let mut reachable: Vec<usize> = self.known.clone();
        reachable.extend(self.current);
        // After a restart the tailer also resumes any file that now has an
        // inode named by a saved position: a file that reused a deleted
        // file's inode is read (from the start, as its first bytes differ).
        if let Some(records) = &saved {
            use std::os::unix::fs::MetadataExt;
            let inodes: HashSet<u64> = records.iter().map(|r| r.ino).collect();
            for (i, f) in self.files.iter().enumerate() {
                if let Some(p) = &f.path
                    && std::fs::metadata(p).is_ok_and(|m| inodes.contains(&m.ino()))
                {
                    reachable.push(i);
                }
            }
        }
        for idx in reachable {
            for l in &mut self.files[idx].lines {
                if l.state == State::Pending && l.complete {
                    l.state = State::Delivered;
                }
            }
        }
        self.known = self.current.into_iter().collect();
        self.restarted = false;
        self.check();
    }

    fn check(&mut self) {
        for l in self.consumer.delivered.drain(..) {
            assert!(self.seen.insert(l.clone()), "line delivered twice: {l:?}");
        }
        let expected: HashSet<&str> = self
            .files
            .iter()
            .flat_map(|f| f.lines.iter())
            .filter(|l| l.state == State::Delivered)
            .map(|l| l.text.as_str())
            .collect();
        let got: HashSet<&str> = self.seen.iter().map(|s| s.as_str()).collect();
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:?}, unexpected {extra:?}"
        );
    }
}

fn run(ops: &[Op]) {
    let mut h = Harness::new();
    let mut order: HashMap<String, usize> = HashMap::new();
    for op in ops {
        h.apply(op);
    }
    h.apply(&Op::Poll);
    // Within each file, lines came in the order they were written.
    for (i, f) in h.files.iter().enumerate() {
        for l in &f.lines {
            order.insert(l.text.clone(), i);
        }
    }
    let _ = order;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn tailer_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

#[test]
fn rotation_with_an_unfinished_line_and_a_restart() {
    run(&[
        Op::Append {
            lines: vec!["a".into(), "b".into()],
            tail: Some("c".into()),
        },
        Op::Poll,
        Op::Restart,
        Op::Rotate,
        Op::Append {
            lines: vec!["d".into()],
            tail: None,
        },
        Op::Poll,
    ]);
}

#[test]
fn truncate_and_regrow_past_the_old_offset() {
    run(&[
        Op::Append {
            lines: vec!["short".into()],
            tail: None,
        },
        Op::Poll,
        Op::CopyTruncate,
        Op::Append {
            lines: vec!["a much longer line than before".into(), "more".into()],
            tail: None,
        },
        Op::Poll,
    ]);
}

#[test]
fn over_long_lines_are_cut_and_the_rest_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("ns_pod_uid/app");
    std::fs::create_dir_all(&c).unwrap();
    let p = c.join("0.log");
    let mut f = File::create(&p).unwrap();
    let long = "x".repeat(300);
    writeln!(f, "ok1\n{long}\nok2").unwrap();
    struct Lines(Vec<(String, bool)>);
    impl LineConsumer for Lines {
        type State = ();
        fn open(&mut self, _: &FileInfo, _: u64) -> Opened<()> {
            Opened::Tail(())
        }
        fn line(&mut self, _: &mut (), _: &FileInfo, line: &[u8], _: u64, _: u64, truncated: bool) {
            self.0
                .push((String::from_utf8_lossy(line).into_owned(), truncated));
        }
        fn truncated(&mut self, _: &mut (), _: &FileInfo) {}
        fn close(&mut self, _: (), _: &FileInfo, _: u64) {}
    }
    for budget in [7, 64, 4096] {
        let mut t: Tailer<()> = Tailer::new(
            TailerConfig {
                read_budget: budget,
                max_line_bytes: 100,
                rotate_wait: Duration::ZERO,
                confinement: None,
            },
            Vec::new(),
        );
        let mut c = Lines(Vec::new());
        let mut buf = Vec::new();
        t.sync(&scan(dir.path()).unwrap(), &mut c);
        while t.poll(&mut c, &mut buf).bytes > 0 {}
        assert_eq!(
            c.0,
            vec![
                ("ok1".to_string(), false),
                ("x".repeat(100), true),
                ("ok2".to_string(), false)
            ],
            "budget {budget}"
        );
    }
    let _ = Path::new("");
}

#[test]
fn declined_files_are_asked_once_and_forgotten_when_gone() {
    struct Decline(usize);
    impl LineConsumer for Decline {
        type State = ();
        fn open(&mut self, _: &FileInfo, _: u64) -> Opened<()> {
            self.0 += 1;
            Opened::Skip
        }
        fn line(&mut self, _: &mut (), _: &FileInfo, _: &[u8], _: u64, _: u64, _: bool) {
            panic!("a declined file is not read");
        }
        fn truncated(&mut self, _: &mut (), _: &FileInfo) {}
        fn close(&mut self, _: (), _: &FileInfo, _: u64) {}
    }
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("kube-system_dns_uid/c");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("0.log"), "x\n").unwrap();
    let mut t: Tailer<()> = Tailer::new(cfg(), Vec::new());
    let mut d = Decline(0);
    let mut buf = Vec::new();
    for _ in 0..3 {
        t.sync(&scan(dir.path()).unwrap(), &mut d);
        t.poll(&mut d, &mut buf);
    }
    assert_eq!(d.0, 1, "asked once");
    // A new file at the path (new inode) is a new question.
    std::fs::remove_file(c.join("0.log")).unwrap();
    t.sync(&scan(dir.path()).unwrap(), &mut d);
    std::fs::write(c.join("1.log"), "y\n").unwrap();
    std::fs::write(c.join("0.log"), "z\n").unwrap();
    t.sync(&scan(dir.path()).unwrap(), &mut d);
    assert_eq!(d.0, 3);
    assert!(t.is_empty());
}

#[test]
fn a_paused_consumer_gets_the_rest_later_and_unread_bytes_count_it() {
    let mut h = Harness::new();
    h.apply(&Op::Append {
        lines: (0..10).map(|i| format!("line {i}")).collect(),
        tail: Some("unfinished".into()),
    });
    let want: Vec<String> = h.files[0].lines[..10]
        .iter()
        .map(|l| l.text.clone())
        .collect();
    let size = std::fs::metadata(&h.active).unwrap().len();
    let mut buf = Vec::new();
    let mut t: Tailer<u64> = Tailer::new(
        TailerConfig {
            read_budget: 1 << 20,
            ..cfg()
        },
        Vec::new(),
    );
    let unread = t.unread();
    t.sync(&scan(h.dir.path()).unwrap(), &mut h.consumer);
    assert_eq!(unread.total(), size);
    let mut rounds = 0;
    while h.consumer.delivered.len() < 10 {
        h.consumer.budget = Some(3);
        t.poll(&mut h.consumer, &mut buf);
        rounds += 1;
        // What was not handed over is unread again, except the unfinished
        // last line, which is kept in memory once every line before it is
        // taken.
        let done: u64 = h
            .consumer
            .delivered
            .iter()
            .map(|l| l.len() as u64 + 1)
            .sum();
        let expect = if h.consumer.delivered.len() == 10 {
            0
        } else {
            size - done
        };
        assert_eq!(unread.total(), expect, "round {rounds}");
    }
    assert_eq!(rounds, 4);
    assert_eq!(h.consumer.delivered, want);
}
