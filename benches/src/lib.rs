//! Benchmarks of Larch and their data generator ([`data`]); processes,
//! ports and HTTP come from the test kit (`larch-testkit`).
//! See BENCHMARKS.md for the commands and results.
#![warn(missing_docs)]

pub mod data;
