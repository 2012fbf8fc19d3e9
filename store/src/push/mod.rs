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
//! [`crate::validate`], with two exceptions that bound memory: every
//! allocation is charged to the request's [`meter::Meter`] (decompressed
//! size, decoded structures), and a line longer than `max_line_size` is not
//! copied whole (see [`PushEntry::omitted`]). [`decode`] runs the whole
//! path for one request.
//!
//! Protobuf pushes (HTTP and gRPC) are decoded without a copy per line:
//! each [`PushEntry::line`] is a slice of the one decompressed buffer
//! (see [`line`] for how long that buffer lives and how it is bounded).
//! JSON and OTLP lines are copies, since they are unescaped or rendered.

pub mod body;
pub mod json;
mod line;
pub mod meter;
pub mod otlp;
pub mod protobuf;

use bytes::Bytes;
pub use line::Line;
use meter::Meter;

/// The push formats, by endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `/loki/api/v1/push`: protobuf, or JSON v1.
    V1,
    /// `/api/prom/push`: protobuf, or legacy v0 JSON.
    Legacy,
    /// `/otlp/v1/logs`: OTLP protobuf or JSON.
    Otlp,
    /// gRPC `logproto.Pusher/Push`: plain protobuf.
    Grpc,
}

/// Decodes one request body: its `Content-Encoding`, then the format its
/// endpoint and `Content-Type` name. Everything it allocates is charged to
/// `meter` first; the caller drops `body` afterwards and may then
/// [`Meter::release_to`] what the push itself holds.
pub fn decode(
    format: Format,
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: &Bytes,
    meter: &mut Meter,
) -> Result<Push, DecodeError> {
    if format == Format::Grpc {
        return protobuf::decode_plain(body, meter);
    }
    let raw = body::decode_content_encoding(encoding, body, meter)?;
    let json = body::is_json(content_type)?;
    match (format, json) {
        (Format::V1, true) => json::decode_v1(&raw, meter),
        (Format::Legacy, true) => json::decode_v0(&raw, meter),
        (Format::V1 | Format::Legacy, false) => match raw {
            // The body as sent: kept for the WAL record.
            std::borrow::Cow::Borrowed(_) => protobuf::decode_http_kept(body, meter),
            std::borrow::Cow::Owned(raw) => protobuf::decode_http(&raw, meter),
        },
        (Format::Otlp, true) => otlp::decode_json(&raw, meter),
        (Format::Otlp, false) => otlp::decode_protobuf(&raw, meter),
        (Format::Grpc, _) => {
            let raw = match raw {
                std::borrow::Cow::Borrowed(_) => body.clone(),
                std::borrow::Cow::Owned(v) => Bytes::from(v),
            };
            protobuf::decode_plain(&raw, meter)
        }
    }
}

/// A decoded push: streams as the client sent them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Push {
    /// Streams in request order; the same labels may repeat.
    pub streams: Vec<PushStream>,
    /// Bytes of the buffer the entries' lines are slices of (the
    /// decompressed body of a protobuf push), which they keep alive; 0
    /// when every line owns its bytes (JSON, OTLP, pushes built in code).
    /// A decoder gives either only slices or only owned lines, so
    /// [`Push::heap_size`] counts this buffer once instead of its lines.
    pub held_body: usize,
    /// The snappy body the lines were decompressed from, kept for the
    /// push's WAL record (HTTP protobuf pushes in snappy's block format,
    /// without a `Content-Encoding`); `None` for every other push.
    pub source: Option<SourceBody>,
}

/// A protobuf push's body as the client compressed it, and what it
/// decompressed to (which the push's lines are slices of). The push's
/// WAL record holds the compressed body and where each line lies in the
/// decompressed one, rather than a copy of every line: a quarter of the
/// bytes to write and sync for log lines, and no copy of them into the
/// record (`crate::wal::record`, kind 3).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBody {
    /// The body as received: one snappy block.
    pub compressed: Bytes,
    /// What it decompresses to.
    pub raw: Bytes,
}

impl SourceBody {
    /// Where `line` starts in [`SourceBody::raw`], if it is a part of it.
    /// (Only a slice of `raw` can lie within its memory while `raw` is
    /// held.)
    pub fn offset_of(&self, line: &[u8]) -> Option<usize> {
        let at = (line.as_ptr() as usize).checked_sub(self.raw.as_ptr() as usize)?;
        (at.checked_add(line.len())? <= self.raw.len()).then_some(at)
    }
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
    /// The line, or what the decoder kept of it: a slice of the push body
    /// or bytes of its own (see [`Line`]).
    pub line: Line,
    /// Structured metadata pairs.
    pub metadata: Vec<(String, String)>,
    /// Bytes of the line the decoder left out because the line was longer
    /// than `max_line_size`: all of them (`line` empty) when long lines
    /// are rejected, those past the cut when they are truncated. The line
    /// as sent was `line.len() + omitted` bytes long.
    pub omitted: usize,
}

impl PushEntry {
    /// An entry with its whole line.
    pub fn new(ts: i64, line: String, metadata: Vec<(String, String)>) -> PushEntry {
        PushEntry {
            ts,
            line: line.into(),
            metadata,
            omitted: 0,
        }
    }

    /// The length of the line as sent.
    pub fn sent_len(&self) -> usize {
        self.line.len().saturating_add(self.omitted)
    }
}

impl Push {
    /// A push of `streams` whose lines own their bytes.
    pub fn new(streams: Vec<PushStream>) -> Push {
        Push {
            streams,
            held_body: 0,
            source: None,
        }
    }

    /// Number of entries.
    pub fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }

    /// Bytes the push holds on the heap (vectors at capacity, strings at
    /// capacity, lines, or the body they are slices of): what stays
    /// charged to its meter once decoding is done.
    pub fn heap_size(&self) -> usize {
        use std::mem::size_of;
        let pairs = |p: &[(String, String)], cap: usize| {
            cap * size_of::<(String, String)>()
                + p.iter()
                    .map(|(n, v)| n.capacity() + v.capacity())
                    .sum::<usize>()
        };
        let mut total = self.streams.capacity() * size_of::<PushStream>()
            + self.held_body
            + self.source.as_ref().map_or(0, |s| s.compressed.len());
        // Lines that are slices are counted by `held_body`.
        let owned_lines = self.held_body == 0;
        for s in &self.streams {
            total += match &s.labels {
                StreamLabels::Text(t) => t.capacity(),
                StreamLabels::Pairs(p) => pairs(p, p.capacity()),
            };
            total += s.entries.capacity() * size_of::<PushEntry>();
            for e in &s.entries {
                if owned_lines {
                    total += e.line.len();
                }
                total += pairs(&e.metadata, e.metadata.capacity());
            }
        }
        total
    }
}

/// A push that cannot be decoded, with the HTTP status Loki gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Malformed body: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Body over the size limit, or needing more memory than one request
    /// may hold: 413.
    #[error("{0}")]
    TooLarge(String),
    /// The store has no memory left for decoding this request now: 503,
    /// and the client retries.
    #[error("{0}")]
    Busy(String),
}

impl DecodeError {
    pub(crate) fn bad(msg: impl Into<String>) -> DecodeError {
        DecodeError::BadRequest(msg.into())
    }
}
