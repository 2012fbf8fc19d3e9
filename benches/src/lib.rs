//! Benchmarks of Larch and what they share: the data generator
//! ([`data`]), helpers to run and measure processes ([`proc`]) and free
//! ports ([`port`]).
//! See BENCHMARKS.md for the commands and results.
#![warn(missing_docs)]

pub mod data;
pub mod port;
pub mod proc;
