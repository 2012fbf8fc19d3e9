//! Replays the committed fuzz corpus and the kept crash inputs through the
//! fuzz property (no panic; printed queries parse back to the same tree),
//! so every input the fuzzer once found interesting stays covered by the
//! ordinary test run.

use std::path::Path;

#[test]
fn fuzz_corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus/parse", "regressions/parse"] {
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
            larch_query::logql::fuzz_one(&data);
            n += 1;
        }
    }
    assert!(n >= 500, "expected the committed corpus, found {n} inputs");
    println!("replayed {n} fuzz inputs");
}
