//! The Larch store: ingests Loki-compatible pushes into a write-ahead log and
//! per-stream head blocks, cuts them into snappy-compressed chunks on disk,
//! indexes streams by label, and answers queries through `larch-query`.
//! This is a library; the `larch-store` binary (flags, the configuration
//! file with the embedded agent's section, signals) is the `larch-server`
//! package, so nothing here depends on the agent.
//!
//! Module map (see ARCHITECTURE.md for the data flow and formats):
//! * [`push`]: decoding every push format into one shape.
//! * [`validate`]: Loki's validation rules and error texts.
//! * [`wal`]: the write-ahead log.
//! * [`chunk`]: blocks and chunk files.
//! * [`index`]: the per-tenant label index.
//! * [`ingester`]: streams in memory, the WAL writer, flushing, and the
//!   `LogSource` the engine reads.
//! * [`quarantine`]: where recovery puts what it will not use but must
//!   not delete.
//! * [`objstore`]: the bucket (file system, S3, GCS, Azure), index
//!   segments, the read cache, the roles' parts (compactor, write-node
//!   queries).
//! * [`config`], [`tenant`], [`units`], [`expand`]: configuration and
//!   identities.
//! * `fuzz` (hidden): the properties the fuzz targets in `store/fuzz` check,
//!   shared with the tests that replay their corpora.
#![warn(missing_docs)]

pub mod api;
pub mod chunk;
pub mod config;
pub mod encoding;
pub mod expand;
#[doc(hidden)]
pub mod fuzz;
pub mod index;
pub mod ingester;
pub mod limits;
pub mod metrics;
pub mod objstore;
pub mod push;
pub mod quarantine;
pub mod server;
pub mod tenant;
pub mod units;
pub mod validate;
pub mod wal;
pub mod yaml;
