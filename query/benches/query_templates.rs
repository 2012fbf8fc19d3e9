//! `line_format` and `label_format` templates over loghub lines.
//!
//! Data: the first 400 lines of each loghub sample (`shared/data/loghub`),
//! each with stream labels (`app`, `level`) and a parsed `msg` label (the
//! line after its first 40 bytes). Every case formats every line through a
//! reused `LabelsBuilder`, as the pipeline does per entry. The templates
//! use the functions real queries use: plain fields, `ToUpper`/`lower`,
//! `printf`, `regexReplaceAll` with a literal pattern, `date` over
//! `__timestamp__`, `if`/`eq`, `trunc`.
//!
//! Run: `cargo bench -p larch-query --bench query_templates`.
//! `LARCH_LOGHUB` overrides the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use larch_query::LabelSet;
use larch_query::pipeline::{
    LabelCategory, LabelFmtSpec, LabelsBuilder, LabelsFormatter, LineFormatter,
};

const LINES_PER_FILE: usize = 400;

fn loghub_dir() -> PathBuf {
    if let Ok(d) = std::env::var("LARCH_LOGHUB") {
        return PathBuf::from(d);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let cand = dir.join("shared/data/loghub");
        if cand.is_dir() {
            return cand;
        }
        if !dir.pop() {
            panic!("shared/data/loghub not found above the crate; set LARCH_LOGHUB");
        }
    }
}

struct Line {
    labels: Arc<LabelSet>,
    msg: String,
    line: String,
    ts: i64,
}

fn corpus() -> Vec<Line> {
    let mut files: Vec<_> = std::fs::read_dir(loghub_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut ts = 1_700_000_000_000_000_000i64;
    for f in files {
        let app = f.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        for l in text.lines().take(LINES_PER_FILE) {
            let level = ["ERROR", "WARN", "INFO", "DEBUG"]
                .into_iter()
                .find(|lv| l.contains(lv))
                .unwrap_or("INFO");
            let labels = LabelSet::from_pairs([("app", app.as_str()), ("level", level)]);
            let cut = l.char_indices().nth(40).map_or(l.len(), |(i, _)| i);
            out.push(Line {
                labels: Arc::new(labels),
                msg: l[cut..].to_string(),
                line: l.to_string(),
                ts,
            });
            ts += 1_234_567_890;
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let lines = corpus();
    let mut g = c.benchmark_group("query_templates");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_secs(1));
    let line_cases = [
        ("line_fields", "{{.app}} {{.level | ToUpper}} {{.msg}}"),
        (
            "line_printf",
            r#"{{ printf "%-8s|%5d|%s" .level 42 .msg }}"#,
        ),
        (
            "line_regex",
            r#"{{ regexReplaceAll "[0-9]+" __line__ "N" }}"#,
        ),
        (
            "line_date",
            r#"{{ __timestamp__ | date "2006-01-02T15:04:05.000Z07:00" }} {{ .msg }}"#,
        ),
        (
            "line_if",
            r#"{{ if eq .level "ERROR" }}E {{ .msg | trunc 30 }}{{ else }}{{ .level | lower }}{{ end }}"#,
        ),
    ];
    let mut out = Vec::new();
    for (name, src) in line_cases {
        let f = LineFormatter::new(src).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                for l in &lines {
                    let mut lb = LabelsBuilder::new(l.labels.clone());
                    lb.set(LabelCategory::Parsed, "msg", &l.msg);
                    f.process(l.ts, l.line.as_bytes(), &mut lb, &mut out);
                    n += out.len();
                }
                black_box(n)
            })
        });
    }
    let label_specs = vec![
        LabelFmtSpec::Template {
            dst: "lvl".into(),
            template: "{{ .level | lower }}".into(),
        },
        LabelFmtSpec::Template {
            dst: "short".into(),
            template: r##"{{ regexReplaceAll "\\d+" .msg "#" | trunc 20 }}"##.into(),
        },
        LabelFmtSpec::Rename {
            dst: "application".into(),
            src: "app".into(),
        },
    ];
    let f = LabelsFormatter::new(&label_specs).unwrap();
    g.bench_function("label_format", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                let mut lb = LabelsBuilder::new(l.labels.clone());
                lb.set(LabelCategory::Parsed, "msg", &l.msg);
                f.process(l.ts, l.line.as_bytes(), &mut lb);
                n += lb.get("short").map_or(0, str::len);
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
