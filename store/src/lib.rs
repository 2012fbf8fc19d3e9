//! The Larch store: ingests Loki-compatible pushes into a write-ahead log and
//! per-stream head blocks, cuts them into snappy-compressed chunks on disk,
//! indexes streams by label, and answers queries through `larch-query`.
#![warn(missing_docs)]
