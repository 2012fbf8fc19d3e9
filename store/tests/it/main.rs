//! Integration tests of the store: the ingester in process, and the
//! `larch-store` binary as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod faults;
mod formats;
mod fuzz;
mod hostile;
mod ingest;
mod process;
mod recovery;
mod shutdown;
mod support;
mod tenants;
