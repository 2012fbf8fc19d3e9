//! Integration tests of the store: the ingester in process, and the
//! `larch-store` binary as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod bucket_objects;
mod deletes;
mod faults;
mod flush;
mod formats;
mod fuzz;
mod hostile_push;
mod hostile_query;
mod ingest;
mod label_index;
mod levels;
mod objstore;
mod params;
mod process;
mod recovery;
mod replicas;
mod ruler;
mod security;
mod shutdown;
mod support;
mod tenants;
mod wal_pages;
mod whole_blocks;
