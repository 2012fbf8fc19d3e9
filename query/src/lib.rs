//! LogQL for Larch.
//!
//! This crate owns everything about *what* a query means and *how* it is
//! matched against log lines, and nothing about where lines are stored or how
//! they travel: it has no async runtime, no HTTP and no protobuf. The store
//! implements [`LogSource`] and hands the engine decoded [`Block`]s; the
//! engine searches a block's contiguous line bytes at once, the way ripgrep
//! searches a buffer, and maps hits back to entries through the offsets.
//!
//! Shared vocabulary used by the store as well:
//! * [`LabelSet`], [`Label`] and [`parse_labels`]: stream identity and the
//!   Prometheus label text that push clients send (`{app="api"}`).
//! * [`Matcher`] and [`MatchOp`]: the four label matchers of a selector.
//!
//! [`logql`] reads, checks and prints LogQL queries with Loki's grammar and
//! Loki's error texts; [`pipeline`] runs their stages; [`engine`] runs them
//! over a [`LogSource`]; [`drilldown`] answers Grafana Logs Drilldown's
//! questions (patterns, detected fields and labels) with the same parsers
//! and filters; [`level`] holds Loki's rules for an entry's
//! `detected_level`, which the store applies when lines are pushed. Go's rules (quoting, numbers, durations, regexes,
//! templates) come from `larch-go`.

#![warn(missing_docs)]

pub mod drilldown;
pub mod engine;
#[doc(hidden)]
pub mod fuzz;
mod labels;
pub mod level;
pub mod logql;
mod matcher;
pub mod pipeline;
mod source;

pub use labels::{Label, LabelSet, LabelsError, fingerprint_pairs, parse_labels};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use source::{
    Block, Columns, Direction, Literal, LogSource, ScanRequest, ScanStats, SourceError, StreamInfo,
    Whole, WholeBlocks, decode_metadata, encode_metadata,
};
