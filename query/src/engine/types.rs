//! What a query asks for and what it returns: the shapes the store's HTTP
//! API serialises (Loki's `streams`, `matrix`, `vector` and `scalar`
//! result types) and the statistics behind Loki's `stats` object.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::labels::LabelSet;
use crate::source::{Direction, ScanStats};

/// One query as the HTTP API received it. Times are Unix nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct QueryRequest {
    /// Tenant whose data is read.
    pub tenant: String,
    /// The LogQL text.
    pub query: String,
    /// Start of the range (inclusive for log queries, the first step for
    /// metric queries).
    pub start: i64,
    /// End of the range (exclusive for log queries, the last step for
    /// metric queries). An instant query is evaluated at `end`; callers set
    /// `start = end = time`.
    pub end: i64,
    /// Resolution of a metric range query (ns); ignored by instant and log
    /// queries. Must be positive for metric range queries.
    pub step: i64,
    /// Log queries: return at most one entry per `interval` (ns); 0 = every
    /// entry.
    pub interval: i64,
    /// Log queries: most entries returned.
    pub limit: u32,
    /// Log queries: `Backward` = newest first (Loki's default).
    pub direction: Direction,
    /// An instant query (`/loki/api/v1/query`) rather than a range query.
    pub instant: bool,
    /// Loki's `categorize-labels` encoding flag: stream results carry only
    /// the stream's own labels and each entry its structured metadata and
    /// parsed labels apart.
    pub categorize_labels: bool,
    /// Most series a metric query may return (Loki's `max_query_series`);
    /// 0 = unlimited.
    pub max_series: usize,
    /// Set by the caller when the client went away; scans stop at the next
    /// block and the query fails with [`EngineError::Cancelled`].
    ///
    /// [`EngineError::Cancelled`]: super::EngineError::Cancelled
    pub cancel: Option<Arc<AtomicBool>>,
}

/// A query's result, one of Loki's four result types.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    /// Log query: entries grouped by label set (`resultType: streams`).
    Streams(Vec<StreamResult>),
    /// Metric range query (`resultType: matrix`), series sorted by labels.
    Matrix(Vec<Series>),
    /// Metric instant query (`resultType: vector`).
    Vector(Vec<Sample>),
    /// Instant query of a scalar expression (`resultType: scalar`).
    Scalar {
        /// Evaluation time (ns).
        ts: i64,
        /// The value.
        value: f64,
    },
}

/// The entries of one label set. Without `categorize_labels` the labels
/// are every label of the entries (stream, structured metadata, parsed);
/// with it, only the stream's labels as the pipeline left them.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamResult {
    /// The label set.
    pub labels: LabelSet,
    /// Entries in the query's direction.
    pub entries: Vec<LogEntry>,
}

/// One log entry of a result.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Unix nanoseconds.
    pub ts: i64,
    /// The line after the pipeline (`line_format` may have rewritten it).
    pub line: String,
    /// Structured metadata, sorted by name (filled only with
    /// `categorize_labels`).
    pub structured_metadata: Vec<(String, String)>,
    /// Labels set by parsers and `label_format`, incl. `__error__`,
    /// sorted by name (filled only with `categorize_labels`).
    pub parsed: Vec<(String, String)>,
}

/// A series of a matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: LabelSet,
    /// `(ts ns, value)`, ascending; steps without a value are absent.
    pub points: Vec<(i64, f64)>,
}

/// A sample of a vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: LabelSet,
    /// Evaluation time (ns).
    pub ts: i64,
    /// The value.
    pub value: f64,
}

/// Statistics of one query (Loki's `stats.summary` and friends).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// What the storage reported: chunks, blocks, bytes.
    pub scan: ScanStats,
    /// Wall time of the evaluation in seconds.
    pub exec_seconds: f64,
    /// Entries read (decompressed or from memory), before filtering.
    pub total_lines: u64,
    /// Line bytes read, before filtering.
    pub total_bytes: u64,
    /// Entries that passed line filters and the pipeline.
    pub post_filter_lines: u64,
    /// Log queries: entries returned; metric queries: points returned.
    pub entries_returned: u64,
}
