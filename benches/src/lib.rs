//! Benchmarks of Larch and their data generator ([`data`]); processes,
//! ports and HTTP come from the test kit (`larch-testkit`), and what the
//! benchmark binaries share is here: concurrent push clients ([`push`])
//! and the size of what they leave on disk ([`disk`]).
//! See BENCHMARKS.md for the commands and results.
#![warn(missing_docs)]

pub mod data;
pub mod disk;
pub mod push;
