//! The fuzz targets' inputs in the ordinary test run: every seed (made by
//! the real encoders) must go all the way through its harness and be
//! committed as the encoders make it today, and every committed corpus
//! input and kept crasher under `store/fuzz/` must be handled without a
//! panic.
//!
//! `LARCH_WRITE_FUZZ_SEEDS=1 cargo test -p larch-store --test it fuzz::`
//! (re)writes the seeds into `store/fuzz/corpus/<target>/seed-<name>`.

use std::path::{Path, PathBuf};

use larch_store::fuzz::{Outcome, TARGETS, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn harness(target: &str) -> larch_store::fuzz::Harness {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, h)| *h)
        .unwrap()
}

/// Regular files of `dir` (none when it does not exist), sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn seeds_go_all_the_way() {
    let write = std::env::var_os("LARCH_WRITE_FUZZ_SEEDS").is_some();
    for (target, seeds) in seeds::all() {
        let h = harness(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (name, data) in seeds {
            assert_eq!(
                h(&data),
                Outcome::Accepted,
                "seed {target}/{name} does not decode all the way"
            );
            if write {
                let dir = fuzz_dir().join("corpus").join(target);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("seed-{name}")), &data).unwrap();
            }
        }
    }
}

/// The committed seeds are the ones the encoders make today: when an
/// encoder changes, the seeds must follow, or fuzzing starts from inputs
/// the store no longer writes.
#[test]
fn committed_seeds_are_current() {
    for (target, seeds) in seeds::all() {
        for (name, data) in seeds {
            let path = fuzz_dir()
                .join("corpus")
                .join(target)
                .join(format!("seed-{name}"));
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == data,
                "{} differs from what the encoders make now; regenerate the seeds (see this file's docs)",
                path.display()
            );
        }
    }
}

#[test]
fn committed_inputs_replay() {
    let mut total = 0;
    for (target, h) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target));
        let crashers = inputs(&fuzz_dir().join("regressions").join(target));
        let mut seeds = 0;
        for path in corpus.iter().chain(&crashers) {
            let data = std::fs::read(path).unwrap();
            let outcome = h(&data);
            // Seeds are real encodings: a format change that makes them
            // undecodable leaves the corpus stale.
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                seeds += 1;
                assert_eq!(
                    outcome,
                    Outcome::Accepted,
                    "{} no longer decodes; regenerate the seeds (see this file's docs)",
                    path.display()
                );
            }
        }
        let expected = seeds::all()
            .into_iter()
            .find(|(t, _)| *t == target)
            .map_or(0, |(_, s)| s.len());
        assert_eq!(
            seeds, expected,
            "store/fuzz/corpus/{target} should hold every seed; regenerate them (see this file's docs)"
        );
        total += corpus.len() + crashers.len();
    }
    println!("replayed {total} fuzz inputs");
}
