//! Object storage: the bucket flushed data lives in, and the parts of the
//! roles built on it (see ARCHITECTURE.md, "Object storage and roles").
//!
//! * [`config`]: `target`, `storage`, `read`, `compactor`.
//! * [`bucket`]: the one interface to the file system, S3, GCS and Azure
//!   (blocking calls for the store's threads, a small runtime of its own
//!   underneath), with retries, metrics and the read cache.
//! * [`cache`]: the bounded disk cache of remote byte ranges.
//! * [`layout`]: object keys.
//! * [`segment`]: index segments, their format and names.
//! * [`terms`]: term indexes, which blocks hold which terms.
//! * [`view`]: a read node's view of the bucket's segments.
//! * [`publish`]: a write node's publication of its journal as segments.
//! * [`remote`]: write nodes answering for their unflushed data (gRPC),
//!   and read nodes asking them.
//! * [`compactor`]: the `backend` target.

pub mod bucket;
pub mod cache;
pub mod compactor;
pub mod config;
pub mod layout;
pub mod metrics;
pub mod publish;
pub mod remote;
pub mod segment;
pub mod terms;
pub mod view;

pub use bucket::Bucket;
