//! The label index: the durable [`log`] of streams and chunks per tenant,
//! and the in-memory [`postings`] that resolve matchers to streams.
//!
//! We use our own structure rather than tantivy: a tenant's stream label
//! sets are few and small, change on every new stream without a commit
//! cycle, and fit in memory; ARCHITECTURE.md gives the full reasoning.

pub mod log;
pub mod postings;

pub use log::{ChunkRef, Handles, IndexLog, IndexRecord, LogDamage, OpenedLog, valid_chunk_id};
pub use postings::{Postings, StreamId};
