//! The pipeline: stages compiled once per query, run per entry with a
//! per-stream state.
//!
//! [`Pipeline::new`] compiles a list of [`StageSpec`]s. The engine then
//! asks a [`PipelineCache`] for the [`StreamPipeline`] of each stream it
//! scans (Loki caches its per-stream pipelines by label hash the same
//! way): it owns the stream's [`LabelsBuilder`], the parsers' scratch
//! buffers and two line buffers, so running an entry allocates nothing
//! once the buffers have grown. [`StreamPipeline::process`] resets the
//! builder, adds the entry's structured metadata, runs the stages in
//! order and returns the (possibly rewritten) line and the labels, or
//! `None` when a filter dropped the entry.

use std::collections::HashMap;
use std::sync::Arc;

use regex::bytes::Regex;

use super::format::{LabelFmtSpec, LabelsFormatter, LineFormatter};
use super::label_filter::{LabelFilter, LabelFilterError, LabelFilterSpec};
use super::labels_builder::{ERROR_DETAILS_LABEL, ERROR_LABEL, LabelsBuilder};
use super::line_filter::{LineFilter, LineFilterError, LineFilterSpec};
use super::parsers::json::{self, PathElem};
use super::parsers::{self, ParserError, PatternParser, RegexpParser, Scratch};
use crate::labels::LabelSet;
use crate::matcher::Matcher;
use crate::source::decode_metadata;
use larch_go::template::TemplateError;

/// A label named in `drop`/`keep`: a bare name or a matcher.
#[derive(Clone, Debug, PartialEq)]
pub enum NameOrMatcher {
    /// `drop a`.
    Name(String),
    /// `drop a="v"`, `keep a=~"re"`.
    Matcher(Matcher),
}

/// One stage of a log pipeline as written.
#[derive(Clone, Debug, PartialEq)]
pub enum StageSpec {
    /// A line filter after another stage (leading line filters go to the
    /// block matcher).
    LineFilter(LineFilterSpec),
    /// `| json` or `| json a="x.y", b`.
    Json {
        /// `(label, path)` pairs; empty for all fields.
        params: Vec<(String, String)>,
    },
    /// `| logfmt [--strict] [--keep-empty] [a="k", b]`.
    Logfmt {
        /// `--strict`.
        strict: bool,
        /// `--keep-empty`.
        keep_empty: bool,
        /// `(label, key)` pairs; empty for all keys.
        params: Vec<(String, String)>,
    },
    /// `| regexp "…"`.
    Regexp(String),
    /// `| pattern "…"`.
    Pattern(String),
    /// `| unpack`.
    Unpack,
    /// A label filter expression.
    LabelFilter(LabelFilterSpec),
    /// `| line_format "…"`.
    LineFormat(String),
    /// `| label_format a=b, c="{{…}}"`.
    LabelFormat(Vec<LabelFmtSpec>),
    /// `| decolorize`.
    Decolorize,
    /// `| drop …`.
    Drop(Vec<NameOrMatcher>),
    /// `| keep …`.
    Keep(Vec<NameOrMatcher>),
}

/// Why a pipeline does not compile. Messages follow Loki's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A line filter.
    #[error(transparent)]
    LineFilter(#[from] LineFilterError),
    /// A parser.
    #[error(transparent)]
    Parser(#[from] ParserError),
    /// A label filter.
    #[error(transparent)]
    LabelFilter(#[from] LabelFilterError),
    /// A `line_format` template.
    #[error("invalid line template: {0}")]
    LineTemplate(TemplateError),
    /// A `label_format` template or rule.
    #[error("{0}")]
    LabelFormat(String),
}

#[derive(Debug)]
enum Stage {
    LineFilter(LineFilter),
    JsonAll,
    JsonPaths(Vec<(String, Vec<PathElem>)>),
    LogfmtAll {
        strict: bool,
        keep_empty: bool,
    },
    LogfmtParams {
        strict: bool,
        params: Vec<(String, String)>,
    },
    Regexp(RegexpParser),
    Pattern(PatternParser),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(LineFormatter),
    LabelFormat(LabelsFormatter),
    Decolorize(Regex),
    Drop(Vec<NameOrMatcher>),
    Keep(Vec<NameOrMatcher>),
}

/// Loki's ANSI escape pattern for `decolorize`.
const ANSI: &str = "[\u{1b}\u{9b}][[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\u{7})|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))";

fn compile_stage(spec: &StageSpec) -> Result<Stage, PipelineError> {
    Ok(match spec {
        StageSpec::LineFilter(f) => Stage::LineFilter(LineFilter::new(f)?),
        StageSpec::Json { params } if params.is_empty() => Stage::JsonAll,
        StageSpec::Json { params } => {
            let mut out = Vec::with_capacity(params.len());
            for (id, path) in params {
                let p = json::parse_path(path).map_err(ParserError::Expression)?;
                out.push((id.clone(), p));
            }
            Stage::JsonPaths(out)
        }
        StageSpec::Logfmt {
            strict,
            keep_empty,
            params,
        } if params.is_empty() => Stage::LogfmtAll {
            strict: *strict,
            keep_empty: *keep_empty,
        },
        StageSpec::Logfmt { strict, params, .. } => {
            let mut out = Vec::with_capacity(params.len());
            for (id, key) in params {
                let mut k = String::new();
                parsers::sanitize_label_key(key, &mut k);
                if k.is_empty() {
                    return Err(ParserError::Expression(format!(
                        "cannot parse expression [{key}]: syntax error"
                    ))
                    .into());
                }
                out.push((id.clone(), k));
            }
            Stage::LogfmtParams {
                strict: *strict,
                params: out,
            }
        }
        StageSpec::Regexp(re) => Stage::Regexp(RegexpParser::new(re)?),
        StageSpec::Pattern(p) => Stage::Pattern(PatternParser::new(p)?),
        StageSpec::Unpack => Stage::Unpack,
        StageSpec::LabelFilter(f) => Stage::LabelFilter(LabelFilter::new(f)?),
        StageSpec::LineFormat(t) => {
            Stage::LineFormat(LineFormatter::new(t).map_err(PipelineError::LineTemplate)?)
        }
        StageSpec::LabelFormat(specs) => {
            Stage::LabelFormat(LabelsFormatter::new(specs).map_err(PipelineError::LabelFormat)?)
        }
        StageSpec::Decolorize => Stage::Decolorize(
            larch_go::regex::compile_bytes(ANSI, false)
                .map_err(|e| PipelineError::LabelFormat(e.to_string()))?,
        ),
        StageSpec::Drop(v) => Stage::Drop(v.clone()),
        StageSpec::Keep(v) => Stage::Keep(v.clone()),
    })
}

/// A compiled log pipeline, shared by every stream of a query.
#[derive(Clone, Debug)]
pub struct Pipeline {
    stages: Arc<Vec<Stage>>,
}

impl Pipeline {
    /// Compiles the stages.
    pub fn new(specs: &[StageSpec]) -> Result<Pipeline, PipelineError> {
        let stages = specs
            .iter()
            .map(compile_stage)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pipeline {
            stages: Arc::new(stages),
        })
    }

    /// Whether the pipeline has no stages.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The per-stream state for `labels`.
    pub fn for_stream(&self, labels: Arc<LabelSet>) -> StreamPipeline {
        StreamPipeline {
            stages: self.stages.clone(),
            builder: LabelsBuilder::new(labels),
            scratch: Scratch::default(),
            bufs: [Vec::new(), Vec::new()],
        }
    }
}

/// Per-stream pipelines, created on first use and kept for the query.
#[derive(Debug)]
pub struct PipelineCache {
    pipeline: Pipeline,
    streams: HashMap<u64, StreamPipeline>,
}

impl PipelineCache {
    /// A cache for `pipeline`.
    pub fn new(pipeline: Pipeline) -> PipelineCache {
        PipelineCache {
            pipeline,
            streams: HashMap::new(),
        }
    }

    /// The stream pipeline for a stream with fingerprint `id`.
    pub fn get(&mut self, id: u64, labels: &Arc<LabelSet>) -> &mut StreamPipeline {
        self.streams
            .entry(id)
            .or_insert_with(|| self.pipeline.for_stream(labels.clone()))
    }
}

/// The pipeline state of one stream (see the module docs).
#[derive(Debug)]
pub struct StreamPipeline {
    stages: Arc<Vec<Stage>>,
    builder: LabelsBuilder,
    scratch: Scratch,
    bufs: [Vec<u8>; 2],
}

/// Which buffer holds the current line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cur {
    Input,
    Buf(usize),
}

impl StreamPipeline {
    /// The stream's labels builder (its state after the last entry).
    pub fn labels(&self) -> &LabelsBuilder {
        &self.builder
    }

    /// The stream's labels builder, mutably: `unwrap` runs on the labels
    /// an entry was left with and may set `__error__`.
    pub fn labels_mut(&mut self) -> &mut LabelsBuilder {
        &mut self.builder
    }

    /// Runs one entry: `metadata` is its encoded structured metadata (see
    /// [`decode_metadata`]). Returns the line after the stages and the
    /// labels, or `None` when a filter dropped the entry.
    pub fn process<'s>(
        &'s mut self,
        ts: i64,
        line: &'s [u8],
        metadata: &[u8],
    ) -> Option<(&'s [u8], &'s LabelsBuilder)> {
        self.builder.reset();
        if !metadata.is_empty() {
            self.builder
                .add_structured_metadata(decode_metadata(metadata));
        }
        let mut cur = Cur::Input;
        let mut bufs = std::mem::take(&mut self.bufs);
        let mut kept = true;
        for stage in self.stages.iter() {
            let [b0, b1] = &mut bufs;
            let (text, out, spare): (&[u8], &mut Vec<u8>, usize) = match cur {
                Cur::Input => (line, b0, 0),
                Cur::Buf(0) => (b0.as_slice(), b1, 1),
                Cur::Buf(_) => (b1.as_slice(), b0, 0),
            };
            let (keep, replaced) =
                run_stage(stage, ts, text, &mut self.builder, &mut self.scratch, out);
            if !keep {
                kept = false;
                break;
            }
            if replaced {
                cur = Cur::Buf(spare);
            }
        }
        self.bufs = bufs;
        if !kept {
            return None;
        }
        let text: &[u8] = match cur {
            Cur::Input => line,
            Cur::Buf(i) => &self.bufs[i],
        };
        Some((text, &self.builder))
    }
}

/// Runs one stage: (keep the entry, line replaced by `out`).
fn run_stage(
    stage: &Stage,
    ts: i64,
    line: &[u8],
    lb: &mut LabelsBuilder,
    sc: &mut Scratch,
    out: &mut Vec<u8>,
) -> (bool, bool) {
    match stage {
        Stage::LineFilter(f) => (f.matches(line), false),
        Stage::JsonAll => {
            json::parse_all(line, lb, sc);
            (true, false)
        }
        Stage::JsonPaths(p) => {
            json::parse_paths(line, p, lb, sc);
            (true, false)
        }
        Stage::LogfmtAll { strict, keep_empty } => {
            parsers::logfmt::parse_all(line, *strict, *keep_empty, lb, sc);
            (true, false)
        }
        Stage::LogfmtParams { strict, params } => {
            parsers::logfmt::parse_params(line, params, *strict, lb, sc);
            (true, false)
        }
        Stage::Regexp(p) => {
            p.process(line, lb, sc);
            (true, false)
        }
        Stage::Pattern(p) => {
            p.process(line, lb, sc);
            (true, false)
        }
        Stage::Unpack => (true, json::unpack(line, lb, sc, out)),
        Stage::LabelFilter(f) => (f.process(lb), false),
        Stage::LineFormat(f) => (true, f.process(ts, line, lb, out)),
        Stage::LabelFormat(f) => {
            f.process(ts, line, lb);
            (true, false)
        }
        Stage::Decolorize(re) => {
            if !re.is_match(line) {
                return (true, false);
            }
            out.clear();
            let mut last = 0;
            for m in re.find_iter(line) {
                out.extend_from_slice(&line[last..m.start()]);
                last = m.end();
            }
            out.extend_from_slice(&line[last..]);
            (true, true)
        }
        Stage::Drop(list) => {
            for d in list {
                drop_label(d, lb);
            }
            (true, false)
        }
        Stage::Keep(list) => {
            keep_labels(list, lb, sc);
            (true, false)
        }
    }
}

fn drop_label(d: &NameOrMatcher, lb: &mut LabelsBuilder) {
    match d {
        NameOrMatcher::Name(n) if n == ERROR_LABEL => lb.reset_err(),
        NameOrMatcher::Name(n) if n == ERROR_DETAILS_LABEL => lb.reset_err_details(),
        NameOrMatcher::Name(n) => {
            if lb.get(n).is_some() {
                lb.del(n);
            }
        }
        NameOrMatcher::Matcher(m) if m.name == ERROR_LABEL => {
            if m.matches(lb.err()) {
                lb.reset_err();
            }
        }
        NameOrMatcher::Matcher(m) if m.name == ERROR_DETAILS_LABEL => {
            if m.matches(lb.err_details()) {
                lb.reset_err_details();
            }
        }
        NameOrMatcher::Matcher(m) => {
            let v = lb.get(&m.name).unwrap_or("");
            if m.matches(v) {
                lb.del(&m.name);
            }
        }
    }
}

fn keep_labels(list: &[NameOrMatcher], lb: &mut LabelsBuilder, sc: &mut Scratch) {
    if list.is_empty() {
        return;
    }
    // Names to delete, collected first (the builder is borrowed while
    // iterating); joined with NUL into a reused buffer.
    let mut doomed = std::mem::take(&mut sc.prefix);
    doomed.clear();
    lb.for_each(|name, value, _| {
        if name == ERROR_LABEL || name == ERROR_DETAILS_LABEL {
            return;
        }
        let keep = list.iter().any(|k| match k {
            NameOrMatcher::Name(n) => n == name,
            NameOrMatcher::Matcher(m) => m.name == name && m.matches(value),
        });
        if !keep {
            doomed.push_str(name);
            doomed.push('\0');
        }
    });
    for name in doomed.split('\0').filter(|n| !n.is_empty()) {
        lb.del(name);
    }
    sc.prefix = doomed;
}
