//! Why a query failed, with Loki's texts; the HTTP layer maps each variant
//! to a status (400 for the query's fault, 499 cancelled, 500 storage).

use crate::logql::ParseError;
use crate::source::SourceError;

/// Loki's text for an instant query of a log expression.
pub const INSTANT_LOG_QUERY: &str = "log queries are not supported as an instant query type, please change your query to a range query type";

/// Loki's text for a range with more than [`MAX_POINTS`](super::MAX_POINTS)
/// steps.
pub const TOO_MANY_POINTS: &str = "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter";

/// Loki's text for a cancelled request.
pub const CANCELLED: &str = "the request was cancelled by the client";

/// A failed query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The query does not parse or validate (400, Loki's `parse error ...`).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The query is valid LogQL but not for this request (400), e.g. a log
    /// query as an instant query, a bad step, or a vector matching
    /// conflict found while evaluating.
    #[error("{0}")]
    Invalid(String),
    /// A metric query met entries whose pipeline failed (`__error__` set
    /// and not filtered out): Loki's `pipeline error: ...` text (400).
    #[error("{0}")]
    Pipeline(String),
    /// A limit was exceeded, e.g. `max_query_series` (400).
    #[error("{0}")]
    Limit(String),
    /// The caller set the cancellation flag (499).
    #[error("{}", CANCELLED)]
    Cancelled,
    /// Storage failed (500).
    #[error("{0}")]
    Storage(SourceError),
}

impl EngineError {
    /// The HTTP status Loki answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            EngineError::Parse(_)
            | EngineError::Invalid(_)
            | EngineError::Pipeline(_)
            | EngineError::Limit(_) => 400,
            EngineError::Cancelled => 499,
            EngineError::Storage(_) => 500,
        }
    }
}

/// Loki's text for a metric query whose series carries `__error__`.
pub(crate) fn pipeline_error(err_type: &str, series: &str) -> String {
    format!(
        "pipeline error: '{err_type}' for series: '{series}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"{err_type}\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    )
}

/// Loki's text for a query holding more series than allowed.
pub(crate) fn max_series_error(limit: usize) -> String {
    format!(
        "maximum number of series ({limit}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_statuses() {
        let e = EngineError::Pipeline(pipeline_error("JSONParserErr", "{app=\"a\"}"));
        assert!(e.to_string().starts_with(
            "pipeline error: 'JSONParserErr' for series: '{app=\"a\"}'.\nUse a label filter"
        ));
        assert_eq!(e.http_status(), 400);
        assert_eq!(EngineError::Cancelled.to_string(), CANCELLED);
        assert_eq!(EngineError::Cancelled.http_status(), 499);
        assert!(
            max_series_error(500)
                .starts_with("maximum number of series (500) reached for a single query; ")
        );
    }
}
