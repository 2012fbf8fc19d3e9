//! Pipeline stages, configured in YAML as Promtail's `pipeline_stages`.
//!
//! An [`Entry`] (timestamp, line, labels, structured metadata and the
//! *extracted* map that parsing stages fill) flows through the stages in
//! order. Stages are written in continuation-passing style: a stage gets the
//! entry and `next`, the rest of the pipeline; it calls `next` zero times
//! (drop, or hold as `multiline` does), once (the usual case) or more (a
//! held block released before the current line). Stages that keep data per
//! file (partial CRI lines, multiline blocks, the last timestamp for
//! `fudge`) keep it in that file's [`FileStages`], so the reader knows the
//! earliest file offset still held and never saves a position past it.
//!
//! The whole pipeline runs on the reader thread, so global state (rate
//! limits, metrics) needs no locks. The per-entry path allocates nothing
//! once warm: entries, labels and scratch strings are reused.
//!
//! Supported stages: `cri`, `docker`, `json`, `logfmt`, `regex`, `labels`,
//! `structured_metadata`, `timestamp`, `output`, `drop`, `multiline`,
//! `static_labels`, `labeldrop`, `labelallow`, `template`, `match`, `limit`,
//! `metrics`.

mod container;
mod drop;
mod extract;
mod json;
mod label_stages;
mod limit;
mod match_stage;
mod metrics_stage;
mod multiline;
pub(crate) mod selector;
mod template;
mod timestamp;

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::metrics::{CounterVec, Registry};
use crate::time::Nanos;

pub use container::{CriConfig, DockerConfig};
pub use drop::DropConfig;
pub use extract::{LogfmtConfig, RegexConfig};
pub use json::JsonConfig;
pub use label_stages::OutputConfig;
pub use limit::LimitConfig;
pub use match_stage::MatchConfig;
pub use metrics_stage::MetricConfig;
pub use multiline::MultilineConfig;
pub use template::TemplateConfig;
pub use timestamp::TimestampConfig;

/// One stage as written in YAML: a map with a single key naming the stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StageConfig {
    /// Parse CRI records (for files read with `format: plain`).
    Cri(CriConfig),
    /// Parse docker json-file records (for files read with `format: plain`).
    Docker(DockerConfig),
    /// Extract values from a JSON line.
    Json(JsonConfig),
    /// Extract values from a logfmt line.
    Logfmt(LogfmtConfig),
    /// Extract named groups of a regular expression.
    Regex(RegexConfig),
    /// Turn extracted values into labels: `label: source` (empty source =
    /// the label's name).
    Labels(std::collections::BTreeMap<String, Option<String>>),
    /// Turn extracted values into structured metadata.
    StructuredMetadata(std::collections::BTreeMap<String, Option<String>>),
    /// Set the entry's timestamp from an extracted value.
    Timestamp(TimestampConfig),
    /// Replace the line by an extracted value.
    Output(OutputConfig),
    /// Drop entries by regex, value, age or size.
    Drop(DropConfig),
    /// Join lines into blocks that start with a first-line regex.
    Multiline(MultilineConfig),
    /// Add fixed labels.
    StaticLabels(std::collections::BTreeMap<String, String>),
    /// Remove labels.
    Labeldrop(Vec<String>),
    /// Keep only these labels.
    Labelallow(Vec<String>),
    /// Rewrite an extracted value with a template.
    Template(TemplateConfig),
    /// Run nested stages (or drop) for entries matching a selector.
    Match(MatchConfig),
    /// Rate-limit entries.
    Limit(LimitConfig),
    /// Derive metrics from entries.
    Metrics(std::collections::BTreeMap<String, MetricConfig>),
}

impl StageConfig {
    /// The stage's name, as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            StageConfig::Cri(_) => "cri",
            StageConfig::Docker(_) => "docker",
            StageConfig::Json(_) => "json",
            StageConfig::Logfmt(_) => "logfmt",
            StageConfig::Regex(_) => "regex",
            StageConfig::Labels(_) => "labels",
            StageConfig::StructuredMetadata(_) => "structured_metadata",
            StageConfig::Timestamp(_) => "timestamp",
            StageConfig::Output(_) => "output",
            StageConfig::Drop(_) => "drop",
            StageConfig::Multiline(_) => "multiline",
            StageConfig::StaticLabels(_) => "static_labels",
            StageConfig::Labeldrop(_) => "labeldrop",
            StageConfig::Labelallow(_) => "labelallow",
            StageConfig::Template(_) => "template",
            StageConfig::Match(_) => "match",
            StageConfig::Limit(_) => "limit",
            StageConfig::Metrics(_) => "metrics",
        }
    }
}

/// Parses a YAML list of stages (`- cri: {}` …), the form of
/// `pipeline_stages`.
pub fn parse_stages_yaml(text: &str) -> std::result::Result<Vec<StageConfig>, String> {
    larch_config::yaml::from_str(text).map_err(|e| e.to_string())
}

/// A log entry on its way through the pipeline.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// Nanoseconds since the epoch.
    pub ts: Nanos,
    /// The line.
    pub line: String,
    /// Stream labels.
    pub labels: Labels,
    /// Structured metadata (sent with the entry, not part of the stream).
    pub metadata: Labels,
    /// Values extracted by parsing stages, by name.
    pub extracted: Labels,
    /// File offset of the first byte this entry came from.
    pub start: u64,
    /// True once the reader has decoded the CRI or docker envelope, so the
    /// `cri` and `docker` stages pass the entry through.
    pub decoded: bool,
}

impl Entry {
    /// The value a stage reads: the extracted value `source`, or the line
    /// when no source is configured.
    pub fn source(&self, source: Option<&str>) -> Option<&str> {
        match source {
            None => Some(&self.line),
            Some(s) => self.extracted.get(s),
        }
    }
}

/// Per-file state of one stage.
#[derive(Default)]
pub(crate) enum FileState {
    /// The stage keeps nothing per file.
    #[default]
    None,
    /// `cri`/`docker`: partial lines being joined.
    Container(Box<container::ContainerState>),
    /// `multiline`: the block being collected.
    Multiline(Box<multiline::MultilineState>),
    /// `timestamp`: the last parsed timestamp, for `fudge`.
    LastTs(Nanos),
    /// `match`: the nested stages' states.
    Nested(FileStages),
}

/// The states of all stages for one file.
#[derive(Default)]
pub struct FileStages(Vec<FileState>);

/// What a stage needs when it is built.
pub(crate) struct BuildCtx<'a> {
    pub registry: &'a Registry,
    pub dropped: CounterVec,
}

/// A pipeline stage.
pub(crate) trait Stage: Send {
    /// Processes one entry; calls `next` for each entry to pass on.
    fn process(&mut self, e: &mut Entry, fs: &mut FileState, next: &mut dyn FnMut(&mut Entry));
    /// Releases held entries whose wait expired.
    fn tick(&mut self, _fs: &mut FileState, _now: Instant, _next: &mut dyn FnMut(&mut Entry)) {}
    /// Releases everything held (the file is finished).
    fn flush(&mut self, _fs: &mut FileState, _next: &mut dyn FnMut(&mut Entry)) {}
    /// Earliest file offset of data held.
    fn pending_start(&self, _fs: &FileState) -> Option<u64> {
        None
    }
    /// Forgets held data (the file was truncated).
    fn reset(&mut self, _fs: &mut FileState) {}
    /// A fresh per-file state.
    fn new_state(&self) -> FileState {
        FileState::None
    }
}

/// Compiled stages.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
}

fn stage_err(index: usize, stage: &'static str) -> impl Fn(String) -> Error {
    move |message| Error::Stage {
        index,
        stage,
        message,
    }
}

pub(crate) fn build_stages(
    configs: &[StageConfig],
    ctx: &BuildCtx<'_>,
) -> Result<Vec<Box<dyn Stage>>> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        let err = stage_err(i, cfg.name());
        let s: Box<dyn Stage> = match cfg {
            StageConfig::Cri(c) => Box::new(container::CriStage::new(c).map_err(&err)?),
            StageConfig::Docker(c) => Box::new(container::DockerStage::new(c)),
            StageConfig::Json(c) => Box::new(json::JsonStage::new(c, ctx).map_err(&err)?),
            StageConfig::Logfmt(c) => Box::new(extract::LogfmtStage::new(c).map_err(&err)?),
            StageConfig::Regex(c) => Box::new(extract::RegexStage::new(c).map_err(&err)?),
            StageConfig::Labels(m) => {
                Box::new(label_stages::LabelsStage::new(m, false).map_err(&err)?)
            }
            StageConfig::StructuredMetadata(m) => {
                Box::new(label_stages::LabelsStage::new(m, true).map_err(&err)?)
            }
            StageConfig::Timestamp(c) => Box::new(timestamp::TimestampStage::new(c).map_err(&err)?),
            StageConfig::Output(c) => Box::new(label_stages::OutputStage::new(c).map_err(&err)?),
            StageConfig::Drop(c) => Box::new(drop::DropStage::new(c, ctx).map_err(&err)?),
            StageConfig::Multiline(c) => Box::new(multiline::MultilineStage::new(c).map_err(&err)?),
            StageConfig::StaticLabels(m) => {
                Box::new(label_stages::StaticLabels::new(m).map_err(&err)?)
            }
            StageConfig::Labeldrop(v) => {
                Box::new(label_stages::LabelFilter::new(v, false).map_err(&err)?)
            }
            StageConfig::Labelallow(v) => {
                Box::new(label_stages::LabelFilter::new(v, true).map_err(&err)?)
            }
            StageConfig::Template(c) => Box::new(template::TemplateStage::new(c).map_err(&err)?),
            StageConfig::Match(c) => {
                Box::new(match_stage::MatchStage::new(c, ctx).map_err(|e| match e {
                    Error::Stage { .. } => e,
                    Error::Config(m) => err(m),
                    other => err(other.to_string()),
                })?)
            }
            StageConfig::Limit(c) => Box::new(limit::LimitStage::new(c, ctx).map_err(&err)?),
            StageConfig::Metrics(m) => {
                Box::new(metrics_stage::MetricsStage::new(m, ctx).map_err(&err)?)
            }
        };
        stages.push(s);
    }
    Ok(stages)
}

pub(crate) fn run(
    stages: &mut [Box<dyn Stage>],
    fs: &mut [FileState],
    e: &mut Entry,
    sink: &mut dyn FnMut(&mut Entry),
) {
    match (stages.split_first_mut(), fs.split_first_mut()) {
        (Some((first, rest)), Some((f0, frest))) => {
            first.process(e, f0, &mut |e: &mut Entry| run(rest, frest, e, sink));
        }
        _ => sink(e),
    }
}

pub(crate) fn tick_all(
    stages: &mut [Box<dyn Stage>],
    fs: &mut [FileState],
    now: Instant,
    sink: &mut dyn FnMut(&mut Entry),
) {
    for i in 0..stages.len().min(fs.len()) {
        let (head, rest) = stages.split_at_mut(i + 1);
        let (fhead, frest) = fs.split_at_mut(i + 1);
        head[i].tick(&mut fhead[i], now, &mut |e: &mut Entry| {
            run(rest, frest, e, sink)
        });
    }
}

pub(crate) fn flush_all(
    stages: &mut [Box<dyn Stage>],
    fs: &mut [FileState],
    sink: &mut dyn FnMut(&mut Entry),
) {
    for i in 0..stages.len().min(fs.len()) {
        let (head, rest) = stages.split_at_mut(i + 1);
        let (fhead, frest) = fs.split_at_mut(i + 1);
        head[i].flush(&mut fhead[i], &mut |e: &mut Entry| {
            run(rest, frest, e, sink)
        });
    }
}

pub(crate) fn pending_all(stages: &[Box<dyn Stage>], fs: &[FileState]) -> Option<u64> {
    stages
        .iter()
        .zip(fs)
        .filter_map(|(s, f)| s.pending_start(f))
        .min()
}

pub(crate) fn new_states(stages: &[Box<dyn Stage>]) -> FileStages {
    FileStages(stages.iter().map(|s| s.new_state()).collect())
}

impl Pipeline {
    /// Compiles the stages; errors name the stage and its position.
    pub fn new(configs: &[StageConfig], registry: &Registry) -> Result<Self> {
        let ctx = BuildCtx {
            registry,
            dropped: dropped_counter(registry),
        };
        Ok(Pipeline {
            stages: build_stages(configs, &ctx)?,
        })
    }

    /// True when there are no stages.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// A fresh per-file state.
    pub fn new_file(&self) -> FileStages {
        new_states(&self.stages)
    }

    /// Runs `e` through the stages; `sink` receives every entry that comes
    /// out.
    pub fn process(
        &mut self,
        fs: &mut FileStages,
        e: &mut Entry,
        sink: &mut dyn FnMut(&mut Entry),
    ) {
        run(&mut self.stages, &mut fs.0, e, sink);
    }

    /// Releases held entries whose wait expired.
    pub fn tick(&mut self, fs: &mut FileStages, now: Instant, sink: &mut dyn FnMut(&mut Entry)) {
        tick_all(&mut self.stages, &mut fs.0, now, sink);
    }

    /// Releases everything held for a finished file.
    pub fn flush(&mut self, fs: &mut FileStages, sink: &mut dyn FnMut(&mut Entry)) {
        flush_all(&mut self.stages, &mut fs.0, sink);
    }

    /// Earliest file offset of data held by the stages.
    pub fn pending_start(&self, fs: &FileStages) -> Option<u64> {
        pending_all(&self.stages, &fs.0)
    }

    /// Forgets held data after a truncation.
    pub fn reset(&mut self, fs: &mut FileStages) {
        for (s, f) in self.stages.iter_mut().zip(fs.0.iter_mut()) {
            s.reset(f);
        }
    }
}

/// The agent-wide counter of dropped entries, by reason.
pub fn dropped_counter(registry: &Registry) -> CounterVec {
    registry.counter_vec(
        "larch_agent_dropped_entries_total",
        "Entries not delivered, by reason (pipeline drops, rate limits, rejections by the store).",
        &["reason"],
    )
}

/// Checks a label name given in a stage's configuration.
pub(crate) fn check_label_name(name: &str) -> std::result::Result<(), String> {
    if larch_go::labels::is_valid_label_name(name) {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}"))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers to run stages in unit tests.
    use super::*;

    /// Builds a pipeline from YAML.
    pub fn pipeline(yaml: &str) -> (Pipeline, Registry) {
        let cfg = parse_stages_yaml(yaml).unwrap();
        let reg = Registry::new();
        (Pipeline::new(&cfg, &reg).unwrap(), reg)
    }

    /// The error text of building a pipeline from YAML.
    pub fn pipeline_err(yaml: &str) -> String {
        match parse_stages_yaml(yaml) {
            Err(e) => e,
            Ok(cfg) => match Pipeline::new(&cfg, &Registry::new()) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("pipeline built: {yaml}"),
            },
        }
    }

    /// An entry with a line, time 1 and labels.
    pub fn entry(line: &str, labels: &[(&str, &str)]) -> Entry {
        Entry {
            ts: 1,
            line: line.to_string(),
            labels: Labels::from_pairs(labels.iter().copied()),
            ..Entry::default()
        }
    }

    /// Runs entries through one file's pipeline and collects the output.
    pub fn run_lines(p: &mut Pipeline, entries: Vec<Entry>) -> Vec<Entry> {
        let mut fs = p.new_file();
        let mut out = Vec::new();
        for mut e in entries {
            p.process(&mut fs, &mut e, &mut |e| out.push(e.clone()));
        }
        p.flush(&mut fs, &mut |e| out.push(e.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn yaml_shape_is_promtails() {
        let (p, _) = pipeline(
            r#"
- cri: {}
- regex:
    expression: 'level=(?P<level>\w+)'
- labels:
    level:
- static_labels:
    team: a
"#,
        );
        assert!(!p.is_empty());
        let e = pipeline_err("- nosuchstage: {}\n");
        assert!(e.contains("unknown variant `nosuchstage`"), "{e}");
        let e = pipeline_err("- regex:\n    expresion: x\n");
        assert!(e.contains("unknown field `expresion`"), "{e}");
        let e = pipeline_err("- static_labels:\n    a: b\n- regex:\n    expression: '('\n");
        assert!(e.contains("pipeline stage 1 (regex)"), "{e}");
    }

    #[test]
    fn stages_chain() {
        let (mut p, _) = pipeline(
            r#"
- regex:
    expression: 'level=(?P<level>\w+) msg="(?P<msg>[^"]*)"'
- labels:
    level:
- output:
    source: msg
"#,
        );
        let out = run_lines(
            &mut p,
            vec![entry(r#"level=warn msg="disk full""#, &[("app", "a")])],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "disk full");
        assert_eq!(out[0].labels.to_text(), r#"{app="a", level="warn"}"#);
    }

    proptest::proptest! {
        #[test]
        fn every_stage_survives_any_line(line in "\\PC{0,120}") {
            let (mut p, _) = pipeline(
                r#"
- cri: {}
- docker: {}
- json:
    expressions: {level: , msg: message, first: 'a[0]'}
- logfmt:
    mapping: {lvl: level, t: ts}
- regex:
    expression: '(?P<word>\w+)'
- template:
    source: word
    template: '{{ .Value | ToUpper | trunc 3 }}{{ if eq .lvl "x" }}!{{ end }}'
- timestamp:
    source: t
    format: RFC3339
- labels: {word: , lvl: }
- structured_metadata: {msg: }
- drop:
    longer_than: 100B
- multiline:
    firstline: '^[A-Z]'
    max_lines: 3
- match:
    selector: '{word=~".+"} |= "a"'
    stages:
    - static_labels: {m: "1"}
- limit:
    rate: 1000000
    burst: 1000000
- metrics:
    lines_total:
      type: Counter
      config: {match_all: true}
- output:
    source: msg
"#,
            );
            let _ = run_lines(&mut p, vec![entry(&line, &[("a", "b")]), entry(&line, &[])]);
        }
    }
}
