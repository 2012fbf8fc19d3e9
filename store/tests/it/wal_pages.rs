//! The WAL gives its page cache back once its bytes are durable: after a
//! sync, at most the page still being appended to stays cached, and after
//! replay none of what replay read. Checked
//! with util-linux's `fincore`, which reports the kernel's own count of a
//! file's resident pages. The segments live under the target directory,
//! on the checkout's file system (tmpfs pages could not be dropped).

use std::path::{Path, PathBuf};
use std::process::Command;

use larch_store::wal::Wal;
use larch_store::wal::record::{WalEntry, encode_push, finish_frame};

/// Bytes of `path` resident in the page cache.
fn resident(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) must be installed for this test");
    assert!(out.status.success(), "fincore: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("fincore printed {text:?}: {e}"))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn frame(seq: u64) -> Vec<u8> {
    let labels = larch_query::LabelSet::from_pairs([("app", "pages")]);
    let entries = vec![WalEntry {
        ts: seq as i64,
        line: "p".repeat(64 << 10).into(),
        meta: Default::default(),
    }];
    let mut f = encode_push("t", std::iter::once((&labels, entries.as_slice())));
    finish_frame(&mut f, seq);
    f
}

#[test]
fn synced_segments_leave_the_page_cache() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let wal_dir = dir.path().join("wal");
    // Segments of 2 MiB: the 4 MiB below fill one, close it (synced on
    // rotation) and go on in the next.
    let mut wal = Wal::open(&wal_dir, 2 << 20, true, vec![]).unwrap();
    for seq in 1..=64 {
        wal.append(&frame(seq), seq).unwrap();
    }
    let files = segments(&wal_dir);
    assert!(files.len() >= 2, "{files:?}");
    let current = files.last().unwrap();
    let size = std::fs::metadata(current).unwrap().len();
    // Appended, not yet synced: the pages are dirty and cached.
    assert!(
        resident(current) >= size - size % 4096,
        "{} of {size} bytes cached before the sync",
        resident(current)
    );
    wal.sync().unwrap();
    for f in &files[..files.len() - 1] {
        assert_eq!(
            resident(f),
            0,
            "closed segment {} still cached",
            f.display()
        );
    }
    let left = resident(current);
    assert!(
        left <= 4096,
        "{left} of {size} bytes of the synced segment still cached"
    );

    // The WAL still replays every record, and replay leaves none of the
    // segments it read in the cache either.
    let q = larch_store::quarantine::Quarantine::new(dir.path());
    let mut seqs = Vec::new();
    let (_, stats) = larch_store::wal::replay(&wal_dir, &q, |r| seqs.push(r.seq)).unwrap();
    assert_eq!(seqs, (1..=64).collect::<Vec<u64>>(), "{stats:?}");
    for f in &files {
        assert_eq!(
            resident(f),
            0,
            "replayed segment {} still cached",
            f.display()
        );
    }
}
