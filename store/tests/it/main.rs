//! Integration tests of the store: the ingester in process, and the
//! `larch-store` binary as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod fuzz;
mod hostile;
mod ingest;
mod params;
mod process;
mod support;
