//! A log selector compiled once per query: what goes to storage and what
//! runs per block and per entry.
//!
//! * Label matchers and the time range go to [`LogSource::streams`].
//! * Line filters that precede every line-rewriting stage become the
//!   [`BlockMatcher`], which searches whole blocks; the literals every
//!   matching line contains become [`ScanRequest::must_contain`], so the
//!   store can skip blocks by their token filter.
//! * The remaining stages form the per-entry [`Pipeline`].
//! * [`Columns`] are decided per stream by the caller: a count without
//!   filters needs timestamps only, a filter needs lines, a pipeline or a
//!   label set that may include structured metadata needs metadata.
//!
//! [`LogSource::streams`]: crate::LogSource::streams

use crate::logql::LogExpr;
use crate::matcher::Matcher;
use crate::pipeline::{BlockMatcher, Pipeline, compile_log};
use crate::source::{Columns, Direction, Literal, ScanRequest};

use super::error::EngineError;

/// A compiled selector and pipeline.
#[derive(Clone, Debug)]
pub(crate) struct LogPlan {
    /// The stream selector.
    pub matchers: Vec<Matcher>,
    /// Leading line filters, run over whole blocks.
    pub filter: BlockMatcher,
    /// The other stages, run per matching entry.
    pub pipeline: Pipeline,
}

impl LogPlan {
    /// Compiles `expr`.
    pub fn new(expr: &LogExpr) -> Result<LogPlan, EngineError> {
        let compiled = compile_log(expr).map_err(|e| EngineError::Invalid(e.to_string()))?;
        Ok(LogPlan {
            matchers: expr.matchers.clone(),
            filter: compiled.line_filter,
            pipeline: compiled.pipeline,
        })
    }

    /// Whether entries must go through the per-entry pipeline.
    pub fn has_stages(&self) -> bool {
        !self.pipeline.is_empty()
    }

    /// Literals every matching line contains.
    pub fn must_contain(&self) -> Vec<Literal> {
        self.filter.must_contain().to_vec()
    }

    /// A scan request over `[start, end)`.
    pub fn request(
        &self,
        start: i64,
        end: i64,
        direction: Direction,
        columns: Columns,
    ) -> ScanRequest {
        ScanRequest {
            start,
            end,
            direction,
            columns,
            must_contain: if columns.lines {
                self.must_contain()
            } else {
                Vec::new()
            },
            whole: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::parse_expr;

    fn plan(q: &str) -> LogPlan {
        let e = parse_expr(q).unwrap();
        LogPlan::new(e.as_log().unwrap()).unwrap()
    }

    #[test]
    fn filters_go_to_the_block_matcher_and_literals_to_storage() {
        let p = plan(r#"{app="a"} |= "needle" | logfmt | level="error""#);
        assert!(!p.filter.is_empty());
        assert!(!p.pipeline.is_empty());
        assert_eq!(p.must_contain()[0].bytes, b"needle");
        let r = p.request(
            0,
            10,
            Direction::Forward,
            Columns {
                lines: true,
                lengths: true,
                metadata: false,
            },
        );
        assert_eq!(r.must_contain.len(), 1);
        // Without lines there is nothing to check the literals against.
        let r = p.request(0, 10, Direction::Forward, Columns::NONE);
        assert!(r.must_contain.is_empty());
    }

    #[test]
    fn bare_selector_has_no_stages() {
        let p = plan(r#"{app="a"}"#);
        assert!(p.filter.is_empty());
        assert!(!p.has_stages());
        assert!(plan(r#"{app="a"} | detected_level="error""#).has_stages());
        // Naming `detected_level` adds nothing else: it is stored metadata.
        assert!(!plan(r#"{app="a", detected_level="x"}"#).has_stages());
    }
}
