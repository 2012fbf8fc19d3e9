//! Integration tests of the LogQL execution stages (`larch_query::pipeline`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod block_props;
mod parser_props;
mod stages;
