//! Decoding push requests in every form Loki accepts, into one shape.
//!
//! | path | body | module |
//! |---|---|---|
//! | `/loki/api/v1/push` | snappy-block protobuf (any non-JSON content type) | [`protobuf`] |
//! | `/loki/api/v1/push` | JSON v1, values as 2- or 3-tuples | [`json`] |
//! | `/api/prom/push` | legacy v0 JSON, or protobuf as above | [`json`], [`protobuf`] |
//! | `/otlp/v1/logs` | OTLP/HTTP, protobuf or JSON | [`otlp`] |
//! | gRPC `logproto.Pusher/Push` | plain protobuf | [`protobuf`] |
//!
//! `Content-Encoding: gzip|deflate|snappy` is undone first ([`body`]).
//! Decoding checks shape only; limits and label rules are applied by
//! [`crate::validate`].

pub mod body;
pub mod json;
pub mod otlp;
pub mod protobuf;

/// A decoded push: streams as the client sent them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Push {
    /// Streams in request order; the same labels may repeat.
    pub streams: Vec<PushStream>,
}

/// One stream of a push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushStream {
    /// The labels, as sent.
    pub labels: StreamLabels,
    /// Entries in request order.
    pub entries: Vec<PushEntry>,
}

/// Labels as a client sent them.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamLabels {
    /// Prometheus label text (protobuf, legacy JSON): parsed by validation.
    Text(String),
    /// Already a map (JSON v1, OTLP).
    Pairs(Vec<(String, String)>),
}

/// One log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PushEntry {
    /// Unix nanoseconds.
    pub ts: i64,
    /// The line.
    pub line: String,
    /// Structured metadata pairs.
    pub metadata: Vec<(String, String)>,
}

impl Push {
    /// Number of entries.
    pub fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }
}

/// A push that cannot be decoded, with the HTTP status Loki gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Malformed body: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Body over the size limit: 413.
    #[error("{0}")]
    TooLarge(String),
}

impl DecodeError {
    pub(crate) fn bad(msg: impl Into<String>) -> DecodeError {
        DecodeError::BadRequest(msg.into())
    }
}
