//! Benchmarks of Larch and what they share: the data generator
//! ([`data`]) and helpers to run and measure processes ([`proc`]).
//! See BENCHMARKS.md for the commands and results.
#![warn(missing_docs)]

pub mod data;
pub mod proc;
