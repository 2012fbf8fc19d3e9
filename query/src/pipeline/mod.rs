//! LogQL execution stages: line filters, parsers, label filters,
//! formatters and unwrap, and the block line matcher that runs line filters
//! over whole blocks.
//!
//! Stages are built from small spec types of their own (for example
//! [`LineFilterSpec`], [`StageSpec`]), so that this module does not depend
//! on how a query was written down; the compilation from the LogQL syntax
//! tree is a thin layer on top.
//!
//! * [`BlockMatcher`] — leading line filters over whole blocks (`block`).
//! * [`Pipeline`] / [`StreamPipeline`] — the remaining stages per entry,
//!   with per-stream state and a [`LabelsBuilder`] reused across entries.
//! * [`Unwrap`] — sample extraction for metric queries.

mod block;
mod compile;
mod convert;
mod format;
mod ip;
mod label_filter;
mod labels_builder;
mod line_filter;
pub(crate) mod parsers;
mod pattern;
mod stages;
mod unwrap;

pub use block::BlockMatcher;
pub use compile::{CompiledLog, compile_log, compile_unwrap, label_filter, stage_specs};
pub use convert::{duration_seconds, parse_bytes, parse_go_duration, parse_go_float};
pub use format::{LabelFmtSpec, LabelsFormatter, LineFormatter};
pub use ip::{IpPattern, IpPatternError};
pub use label_filter::{CmpOp, LabelFilter, LabelFilterError, LabelFilterSpec};
pub use labels_builder::{
    DUPLICATE_SUFFIX, ERROR_DETAILS_LABEL, ERROR_LABEL, LabelCategory, LabelsBuilder,
};
pub use larch_go::regex::RegexError;
pub use line_filter::{LineFilter, LineFilterArg, LineFilterError, LineFilterOp, LineFilterSpec};
pub use parsers::ParserError;
pub use pattern::{Pattern, PatternError};
pub use stages::{
    NameOrMatcher, Pipeline, PipelineCache, PipelineError, StageSpec, StreamPipeline,
};
pub use unwrap::{Conversion, Unwrap, UnwrapSpec};
