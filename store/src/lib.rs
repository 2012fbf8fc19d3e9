//! The Larch store: ingests Loki-compatible pushes into a write-ahead log and
//! per-stream head blocks, cuts them into snappy-compressed chunks on disk,
//! indexes streams by label, and answers queries through `larch-query`.
//! This is a library; the `larch-store` binary (flags, the configuration
//! file with the embedded agent's section, signals) is the `larch-server`
//! package, so nothing here depends on the agent.
//!
//! Module map (see ARCHITECTURE.md for the data flow and formats):
//! * [`push`]: decoding every push format into one shape; [`bufpool`]:
//!   the large buffers pushes reuse.
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
//! * [`deletes`]: Loki's delete requests, stored in the bucket, filtered
//!   out of queries and applied by the compactor.
//! * [`cluster`]: several write nodes: membership, ownership of streams,
//!   replication of pushes.
//! * [`ruler`]: LogQL alerting and recording rules, Alertmanager and
//!   remote write.
//! * [`config`], [`tenant`]: configuration (read with `larch-config`) and
//!   identities; [`runtime_config`]: per-tenant overrides reloaded while
//!   running; [`config_view`]: the effective configuration as `/config`
//!   prints it.
//! * [`server`], [`api`]: the HTTP and gRPC servers and Loki's routes;
//!   [`services`]: the roles `/services` lists; [`ui`]: the web UI served
//!   at `/`.
//! * `fuzz` (hidden): the properties the fuzz targets in `store/fuzz` check,
//!   shared with the tests that replay their corpora.
//! * `testing` (feature `test-support`, hidden): a store opened in process
//!   for the tests of the query engine over real data.
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod bufpool;
pub mod chunk;
pub mod cluster;
pub mod config;
pub mod config_view;
pub mod deletes;
pub mod encoding;
#[doc(hidden)]
pub mod fuzz;
pub mod index;
pub mod ingester;
pub mod limits;
pub mod metrics;
pub mod objstore;
pub mod push;
pub mod quarantine;
pub mod ruler;
pub mod runtime_config;
pub mod server;
pub mod services;
pub mod tenant;
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod testing;
pub mod tls_client;
pub mod ui;
pub mod validate;
pub mod wal;
