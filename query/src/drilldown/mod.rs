//! What Grafana Logs Drilldown asks beyond LogQL: the log patterns of a
//! query's lines, and the fields and labels worth offering as filters.
//! The store's HTTP handlers parse a request, call one function here on
//! the blocking pool, and write the value as Loki's JSON.
//!
//! * [`entry_filter`]: a log query applied to one entry at a time (live
//!   tail and the pattern scan), with the engine's matcher and pipeline.
//! * [`drain`]: the Drain-style pattern miner (lines in, `<_>` templates
//!   out, memory bounded whatever the input).
//! * [`patterns`]: the pattern scan over a [`LogSource`]: which lines are
//!   mined, in which time bucket, with which level.
//! * [`detected`]: detected labels (from stream labels) and detected
//!   fields (a sample of the query's newest entries, parsed as `| json`
//!   and `| logfmt` would), with Loki's type inference.
//!
//! Everything here is synchronous and bounded; long scans look at a
//! cancel flag between blocks or streams.
//!
//! [`LogSource`]: crate::LogSource

pub mod detected;
pub mod drain;
pub mod entry_filter;
pub mod patterns;

pub use detected::{
    DetectedField, DetectedLabel, FieldRequest, FieldSample, FieldType, detect_fields,
    detect_labels, label_selector,
};
pub use drain::Miner;
pub use entry_filter::{EntryFilter, EntryLabels, Kept, LOG_QUERY_REQUIRED, StreamFilter};
pub use patterns::{Pattern, PatternQuery, PatternResult, mine_patterns};
