//! LogQL execution stages: line filters, parsers, label filters,
//! formatters and unwrap, and the block line matcher that runs line filters
//! over whole blocks.
//!
//! Stages are built from small spec types of their own (for example
//! [`LineFilterSpec`]), so that this module does not depend on how a query
//! was written down; the compilation from the LogQL syntax tree is a thin
//! layer on top.

mod block;
mod goregex;
mod ip;
mod line_filter;
mod pattern;

pub use block::BlockMatcher;
pub use goregex::RegexError;
pub use ip::{IpPattern, IpPatternError};
pub use line_filter::{LineFilter, LineFilterArg, LineFilterError, LineFilterOp, LineFilterSpec};
pub use pattern::{Pattern, PatternError};
