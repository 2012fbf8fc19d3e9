//! The CPU the store spends finding each pushed line's level word
//! (`discover_log_levels`, on by default): `larch_query::level::level_in_line`
//! over replayed loghub lines, against the plain way of answering the same
//! question as the baseline of the same run (the line lowercased, each
//! level word looked for with `memchr::memmem`, the leftmost one whose
//! neighbours are word boundaries taken). Both must give every line the
//! same level.
//!
//! `cargo bench -p larch-benches --bench level`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use larch_benches::data::{Replay, load_samples, loghub_dir};
use larch_query::level::level_in_line;
use memchr::memmem::Finder;

/// Lines replayed from every loghub source, about 4 MiB.
fn lines() -> Vec<String> {
    let samples = load_samples(&loghub_dir()).unwrap_or_default();
    assert!(
        !samples.is_empty(),
        "no loghub samples in {}",
        loghub_dir().display()
    );
    let mut replay = Replay::new(samples);
    let mut out = Vec::new();
    let mut bytes = 0;
    while bytes < 4 << 20 {
        let Some((_, line)) = replay.next() else {
            break;
        };
        bytes += line.len();
        out.push(line.to_string());
    }
    out
}

/// The words and their levels, in the order a tie at one place is settled.
const WORDS: [(&str, &str); 9] = [
    ("trace", "trace"),
    ("debug", "debug"),
    ("fatal", "fatal"),
    ("critical", "critical"),
    ("error", "error"),
    ("err", "error"),
    ("warning", "warn"),
    ("warn", "warn"),
    ("info", "info"),
];

/// The baseline: for each word, its first occurrence with a boundary on
/// both sides in the ASCII-lowercased line; the leftmost wins. Lines of
/// ASCII only (the loghub lines the comparison is asserted on), since
/// lowercasing other characters can move bytes.
struct Plain {
    finders: Vec<(Finder<'static>, &'static str)>,
    lower: Vec<u8>,
}

impl Plain {
    fn new() -> Plain {
        Plain {
            finders: WORDS
                .iter()
                .map(|&(w, level)| (Finder::new(w.as_bytes()).into_owned(), level))
                .collect(),
            lower: Vec::new(),
        }
    }

    fn level(&mut self, line: &[u8]) -> &'static str {
        self.lower.clear();
        self.lower.extend(line.iter().map(u8::to_ascii_lowercase));
        let hay = &self.lower[..];
        let opens = |b: u8| b" \t\n[({\"'=|".contains(&b);
        let closes = |b: u8| b" \t\n[]{}():,!\"'=|".contains(&b);
        let mut best: Option<(usize, &'static str)> = None;
        for (finder, level) in &self.finders {
            for at in finder.find_iter(hay) {
                if best.is_some_and(|(b, _)| b <= at) {
                    break;
                }
                let end = at + finder.needle().len();
                if (at == 0 || opens(hay[at - 1])) && hay.get(end).is_none_or(|&c| closes(c)) {
                    best = Some((at, level));
                    break;
                }
            }
        }
        best.map_or("unknown", |(_, level)| level)
    }
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let lines: Vec<&String> = lines.iter().filter(|l| l.is_ascii()).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let mut plain = Plain::new();
    let mut found = 0;
    for l in &lines {
        let want = plain.level(l.as_bytes());
        assert_eq!(level_in_line(l.as_bytes()), want, "{l}");
        found += usize::from(want != "unknown");
    }
    assert!(
        found > 0 && found < lines.len(),
        "{found} of {}",
        lines.len()
    );
    println!(
        "{} lines, {bytes} bytes, {found} with a level word",
        lines.len()
    );

    let mut g = c.benchmark_group("level_in_line");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(BenchmarkId::new("memmem", "baseline"), |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| plain.level(l.as_bytes()) != "unknown")
                .count()
        })
    });
    g.bench_function(BenchmarkId::new("store", "level_in_line"), |b| {
        b.iter(|| {
            lines
                .iter()
                .filter(|l| level_in_line(l.as_bytes()) != "unknown")
                .count()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
