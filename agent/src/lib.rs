//! The Larch agent: discovers pod log files, tails them through rotation,
//! and pushes batches to the store, advancing positions only on
//! acknowledgement.
#![warn(missing_docs)]
