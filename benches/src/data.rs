//! Realistic log data: the loghub samples (`shared/data/loghub`), replayed
//! with their digits shifted on every pass so ids and numbers vary the way
//! they do in long-running systems, assigned to Kubernetes-like streams.

use std::path::{Path, PathBuf};

/// The loghub sample directory, from `LARCH_LOGHUB` or the workspace's
/// sibling `shared/` directory.
pub fn loghub_dir() -> PathBuf {
    if let Ok(p) = std::env::var("LARCH_LOGHUB") {
        return PathBuf::from(p);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for candidate in [
        ws.join("../shared/data/loghub"),
        ws.join("../../shared/data/loghub"),
        PathBuf::from("/work/shared/data/loghub"),
    ] {
        if candidate.is_dir() {
            return candidate;
        }
    }
    ws.join("../shared/data/loghub")
}

/// Every line of every `*.log` sample, by source.
pub fn load_samples(dir: &Path) -> std::io::Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().trim_end_matches("_2k").to_lowercase())
            .unwrap_or_default();
        out.push((name, text.lines().map(str::to_string).collect()));
    }
    Ok(out)
}

/// Shifts every digit of `line` by `pass` (mod 10), so pass `k` of the
/// replay has different ids and numbers but the same shape.
pub fn vary(line: &str, pass: usize) -> String {
    let shift = (pass % 10) as u32;
    line.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) if c.is_ascii_digit() => char::from(b'0' + ((d + shift) % 10) as u8),
            _ => c,
        })
        .collect()
}

/// An endless replay: yields `(source, line)` round-robin over the
/// samples, varying each pass.
pub struct Replay {
    samples: Vec<(String, Vec<String>)>,
    pos: usize,
    pass: usize,
}

impl Replay {
    /// Replays `samples`.
    pub fn new(samples: Vec<(String, Vec<String>)>) -> Replay {
        Replay {
            samples,
            pos: 0,
            pass: 0,
        }
    }

    /// Number of sources.
    pub fn sources(&self) -> usize {
        self.samples.len()
    }
}

impl Iterator for Replay {
    type Item = (usize, String);
    fn next(&mut self) -> Option<(usize, String)> {
        let per_pass: usize = self.samples.iter().map(|(_, l)| l.len()).sum();
        if per_pass == 0 {
            return None;
        }
        // Interleave sources: line i of every source, then line i+1.
        loop {
            let n = self.samples.len();
            let src = self.pos % n;
            let idx = self.pos / n;
            self.pos += 1;
            let longest = self.samples.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
            if idx >= longest {
                self.pos = 0;
                self.pass += 1;
                continue;
            }
            if let Some(line) = self.samples[src].1.get(idx) {
                return Some((src, vary(line, self.pass)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_shifts_digits_only() {
        assert_eq!(vary("id=129 ok", 0), "id=129 ok");
        assert_eq!(vary("id=129 ok", 1), "id=230 ok");
        assert_eq!(vary("é 9", 1), "é 0");
    }

    #[test]
    fn replay_interleaves_and_varies() {
        let r = Replay::new(vec![
            ("a".into(), vec!["a1".into(), "a2".into()]),
            ("b".into(), vec!["b1".into()]),
        ]);
        let got: Vec<_> = r.take(5).collect();
        assert_eq!(
            got,
            vec![
                (0, "a1".into()),
                (1, "b1".into()),
                (0, "a2".into()),
                (0, "a2".into()),
                (1, "b2".into())
            ]
        );
    }
}
