//! A log query applied to one entry at a time.
//!
//! The engine runs log queries over whole blocks. Live tail sees entries
//! one push at a time, and the pattern miner wants every matching line
//! without the engine's top-N bookkeeping, so both compile the query here
//! instead: the selector's matchers test a stream's labels, the leading
//! line filters run through the same [`BlockMatcher`] the engine uses
//! (line by line), and the remaining stages through the engine's
//! [`Pipeline`], one [`StreamFilter`] per stream so that its labels
//! builder and buffers are reused for every entry of that stream.
//! `detected_level` is the entry's stored metadata here as in the engine,
//! so `| detected_level="error"` selects the same entries live as in a
//! range query.

use std::sync::Arc;

use crate::engine::EngineError;
use crate::labels::LabelSet;
use crate::logql::{Expr, check_expr, parse_expr};
use crate::matcher::Matcher;
use crate::pipeline::{
    BlockMatcher, LabelCategory, LabelsBuilder, Pipeline, StreamPipeline, compile_log,
};
use crate::source::Literal;

/// What a query does to entries, compiled once.
#[derive(Clone, Debug)]
pub struct EntryFilter {
    matchers: Vec<Matcher>,
    line_filter: BlockMatcher,
    pipeline: Pipeline,
}

/// Loki's text when a metric query is given where a log query is needed.
pub const LOG_QUERY_REQUIRED: &str = "only log queries are supported here: remove the range aggregation and keep the stream selector and its pipeline";

impl EntryFilter {
    /// Compiles a log query. Every error is the query's fault (an
    /// [`EngineError::Parse`] or [`EngineError::Invalid`] with Loki's
    /// text; a metric query gives [`LOG_QUERY_REQUIRED`]).
    pub fn parse(query: &str) -> Result<EntryFilter, EngineError> {
        let expr = parse_expr(query)?;
        check_expr(&expr)?;
        let Expr::Log(log) = &expr else {
            return Err(EngineError::Invalid(LOG_QUERY_REQUIRED.into()));
        };
        let compiled = compile_log(log).map_err(|e| EngineError::Invalid(e.to_string()))?;
        Ok(EntryFilter {
            matchers: log.matchers.clone(),
            line_filter: compiled.line_filter,
            pipeline: compiled.pipeline,
        })
    }

    /// The stream selector.
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// Literals every matching line contains (for block skipping).
    pub fn must_contain(&self) -> Vec<Literal> {
        self.line_filter.must_contain().to_vec()
    }

    /// Whether a stream with `labels` is selected.
    pub fn selects(&self, labels: &LabelSet) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    /// The per-stream state for a selected stream.
    pub fn for_stream(&self, labels: Arc<LabelSet>) -> StreamFilter {
        StreamFilter {
            line_filter: self.line_filter.clone(),
            sp: self.pipeline.for_stream(labels.clone()),
            plain: self.pipeline.is_empty(),
            labels,
        }
    }
}

/// A kept entry: the line after the stages and, unless the stream's own
/// labels are unchanged, the labels builder holding the entry's labels.
pub struct Kept<'s> {
    /// The line (rewritten by `line_format` and friends).
    pub line: &'s [u8],
    /// The entry's labels; `None` means exactly the stream's labels.
    pub labels: Option<&'s LabelsBuilder>,
}

/// The labels of a kept entry in both of Loki's encodings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryLabels {
    /// Plain: every label (stream, structured metadata, parsed).
    /// Categorized: the stream's labels after the pipeline.
    pub stream: LabelSet,
    /// Categorized only: structured metadata, sorted by name.
    pub structured_metadata: Vec<(String, String)>,
    /// Categorized only: parsed labels, sorted by name.
    pub parsed: Vec<(String, String)>,
}

impl Kept<'_> {
    /// The entry's labels for a response; `base` is the stream's labels.
    pub fn labels(&self, base: &LabelSet, categorize: bool) -> EntryLabels {
        let Some(lb) = self.labels else {
            return EntryLabels {
                stream: base.clone(),
                structured_metadata: Vec::new(),
                parsed: Vec::new(),
            };
        };
        if !categorize {
            return EntryLabels {
                stream: lb.to_label_set(),
                structured_metadata: Vec::new(),
                parsed: Vec::new(),
            };
        }
        let pairs = |c: LabelCategory| {
            let mut v: Vec<(String, String)> = Vec::new();
            lb.for_each(|n, val, cat| {
                if cat == c {
                    v.push((n.to_string(), val.to_string()));
                }
            });
            v.sort();
            v
        };
        EntryLabels {
            stream: lb.category(LabelCategory::Stream),
            structured_metadata: pairs(LabelCategory::StructuredMetadata),
            parsed: pairs(LabelCategory::Parsed),
        }
    }
}

/// [`EntryFilter`] state for one stream.
#[derive(Debug)]
pub struct StreamFilter {
    labels: Arc<LabelSet>,
    line_filter: BlockMatcher,
    sp: StreamPipeline,
    plain: bool,
}

impl StreamFilter {
    /// The stream's labels.
    pub fn stream_labels(&self) -> &Arc<LabelSet> {
        &self.labels
    }

    /// Runs one entry (`metadata` encoded as the store keeps it); `None`
    /// when a filter dropped it.
    pub fn process<'s>(&'s mut self, ts: i64, line: &'s [u8], metadata: &[u8]) -> Option<Kept<'s>> {
        if !self.line_filter.is_empty() && !self.line_filter.matches_line(line) {
            return None;
        }
        if self.plain && metadata.is_empty() {
            return Some(Kept { line, labels: None });
        }
        let (out, lb) = self.sp.process(ts, line, metadata)?;
        Some(Kept {
            line: out,
            labels: Some(lb),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut m = Vec::new();
        crate::source::encode_metadata(&mut m, pairs.iter().copied());
        m
    }

    #[test]
    fn selector_filters_and_pipeline() {
        let f = EntryFilter::parse(r#"{app="a"} |= "err" | logfmt | code >= 500"#).unwrap();
        assert!(f.selects(&LabelSet::from_pairs([("app", "a"), ("x", "y")])));
        assert!(!f.selects(&LabelSet::from_pairs([("app", "b")])));
        assert_eq!(f.must_contain()[0].bytes, b"err");
        let base = Arc::new(LabelSet::from_pairs([("app", "a")]));
        let mut s = f.for_stream(base.clone());
        assert!(s.process(1, b"ok code=500", &[]).is_none());
        assert!(s.process(1, b"err code=404", &[]).is_none());
        let k = s.process(1, b"err code=503", &[]).unwrap();
        assert_eq!(k.line, b"err code=503");
        let plain = k.labels(&base, false);
        assert_eq!(plain.stream.to_string(), r#"{app="a", code="503"}"#);
        let k = s.process(1, b"err code=503", &[]).unwrap();
        let cat = k.labels(&base, true);
        assert_eq!(cat.stream.to_string(), r#"{app="a"}"#);
        assert_eq!(cat.parsed, vec![("code".to_string(), "503".to_string())]);
    }

    #[test]
    fn bare_selector_keeps_stream_labels_and_metadata() {
        let f = EntryFilter::parse(r#"{app="a"}"#).unwrap();
        let base = Arc::new(LabelSet::from_pairs([("app", "a")]));
        let mut s = f.for_stream(base.clone());
        let k = s.process(1, b"hello", &[]).unwrap();
        assert!(k.labels.is_none());
        assert_eq!(k.labels(&base, true).stream, *base);
        let m = meta(&[("trace_id", "t1")]);
        let k = s.process(1, b"hello", &m).unwrap();
        let cat = k.labels(&base, true);
        assert_eq!(
            cat.structured_metadata,
            vec![("trace_id".to_string(), "t1".to_string())]
        );
        let k = s.process(1, b"hello", &m).unwrap();
        assert_eq!(
            k.labels(&base, false).stream.to_string(),
            r#"{app="a", trace_id="t1"}"#
        );
    }

    #[test]
    fn detected_level_is_the_stored_metadata() {
        let f = EntryFilter::parse(r#"{app="a"} | detected_level="error""#).unwrap();
        let mut s = f.for_stream(Arc::new(LabelSet::from_pairs([("app", "a")])));
        let error = meta(&[("detected_level", "error")]);
        let info = meta(&[("detected_level", "info")]);
        assert!(s.process(1, b"ERROR: disk full", &info).is_none());
        assert!(s.process(1, b"all good", &error).is_some());
        // Nothing is derived from the line.
        assert!(s.process(1, b"ERROR: disk full", &[]).is_none());
    }

    #[test]
    fn errors_are_loki_400s() {
        let e = EntryFilter::parse(r#"sum(rate({app="a"}[1m]))"#).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert_eq!(e.to_string(), LOG_QUERY_REQUIRED);
        let e = EntryFilter::parse(r#"{app="a""#).unwrap_err();
        assert!(e.to_string().starts_with("parse error"), "{e}");
        let e = EntryFilter::parse(r#"{app="a"} |~ "(""#).unwrap_err();
        assert_eq!(e.http_status(), 400);
    }
}
