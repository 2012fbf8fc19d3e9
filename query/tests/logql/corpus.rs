//! Replays the committed fuzz corpora and the kept crash inputs through the
//! fuzz properties (parser: no panic, printed queries parse back to the
//! same tree; engine: a query over log lines evaluates without a panic), so
//! every input the fuzzer once found interesting stays covered by the
//! ordinary test run.

use std::path::Path;

#[test]
fn fuzz_corpus_replays() {
    let n = replay("parse", larch_query::logql::fuzz_one);
    assert!(n >= 500, "expected the committed corpus, found {n} inputs");
    println!("replayed {n} parser fuzz inputs");
}

#[test]
fn eval_fuzz_corpus_replays() {
    let n = replay("eval", larch_query::fuzz::eval);
    assert!(n >= 400, "expected the committed corpus, found {n} inputs");
    println!("replayed {n} engine fuzz inputs");
}

/// Runs `check` on every input of the target's corpus and regressions.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [format!("corpus/{target}"), format!("regressions/{target}")] {
        let dir = root.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            check(&data);
            n += 1;
        }
    }
    n
}
