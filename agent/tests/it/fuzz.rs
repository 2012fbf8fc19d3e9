//! Replays the committed fuzz corpus and the kept failing inputs of the
//! `lines` target (`agent/fuzz`) through its property, so every input the
//! fuzzer once found interesting stays covered by the ordinary test run.

use std::path::Path;

#[test]
fn lines_fuzz_corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let (mut inputs, mut entries) = (0, 0);
    for dir in ["corpus/lines", "regressions/lines"] {
        let Ok(list) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in list {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            entries += larch_agent::fuzz::fuzz_lines(&std::fs::read(&path).unwrap());
            inputs += 1;
        }
    }
    assert!(
        inputs >= 100,
        "expected the committed corpus, found {inputs} inputs"
    );
    // The seeds are real log lines: most come out as entries.
    assert!(entries > inputs, "{entries} entries from {inputs} inputs");
}
