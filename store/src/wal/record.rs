//! WAL records.
//!
//! ```text
//! frame    u32le payload length | u32le crc32(payload) | payload
//! payload  u8 kind (1 = push) | u64le seq | str tenant | uvarint nstreams
//!          { uvarint npairs { str name | str value }* | uvarint nentries
//!            { varint ts | str line | str metadata }* }*
//! ```
//! The sequence number is fixed-width so a record encoded by a request
//! handler can be numbered by the WAL writer without re-encoding; the
//! checksum is computed by the writer after numbering.

use bytes::Bytes;
use larch_query::LabelSet;

use crate::encoding::{Malformed, Reader, put_bytes, put_uvarint, put_varint};
use crate::push::Line;

/// Kind byte of a push record.
pub const KIND_PUSH: u8 = 1;
/// Frame header size.
pub const FRAME_HEADER: usize = 8;
/// Offset of the sequence number within a frame.
const SEQ_AT: usize = FRAME_HEADER + 1;
/// Largest record accepted when reading (a corrupt length must not make us
/// allocate gigabytes).
pub const MAX_RECORD: usize = 1 << 30;

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// Unix ns.
    pub ts: i64,
    /// The line: a slice of the push body it came in (see
    /// [`crate::push::Line`]) or bytes of its own.
    pub line: Line,
    /// Encoded structured metadata (see `larch_query::decode_metadata`):
    /// shared bytes, so an entry whose only pair is a fixed
    /// `detected_level` points at one static encoding instead of owning a
    /// copy, and cloning an entry copies no metadata.
    pub meta: Bytes,
}

/// A decoded push record.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRecord {
    /// Sequence number.
    pub seq: u64,
    /// Tenant id.
    pub tenant: String,
    /// Streams and their entries.
    pub streams: Vec<(LabelSet, Vec<WalEntry>)>,
}

/// Encodes a push record frame with sequence number 0 and no checksum;
/// [`finish_frame`] fills both in. The frame is allocated once, at its
/// exact size (a first pass adds up the lengths), so a large push is not
/// copied again and again as its buffer grows.
pub fn encode_push<'a>(
    tenant: &str,
    streams: impl ExactSizeIterator<Item = (&'a LabelSet, &'a [WalEntry])> + Clone,
) -> Vec<u8> {
    encode_push_into(Vec::new(), tenant, streams)
}

/// [`encode_push`] into `buf`, a buffer used before (its contents are
/// dropped): it grows only if the frame does not fit.
pub fn encode_push_into<'a>(
    mut buf: Vec<u8>,
    tenant: &str,
    streams: impl ExactSizeIterator<Item = (&'a LabelSet, &'a [WalEntry])> + Clone,
) -> Vec<u8> {
    let size = encoded_push_len(tenant, streams.clone());
    buf.clear();
    buf.reserve_exact(size);
    buf.resize(FRAME_HEADER, 0);
    buf.push(KIND_PUSH);
    buf.extend_from_slice(&0u64.to_le_bytes());
    put_bytes(&mut buf, tenant.as_bytes());
    put_uvarint(&mut buf, streams.len() as u64);
    for (labels, entries) in streams {
        put_uvarint(&mut buf, labels.len() as u64);
        for l in labels {
            put_bytes(&mut buf, l.name.as_bytes());
            put_bytes(&mut buf, l.value.as_bytes());
        }
        put_uvarint(&mut buf, entries.len() as u64);
        for e in entries {
            put_varint(&mut buf, e.ts);
            put_bytes(&mut buf, e.line.as_bytes());
            put_bytes(&mut buf, &e.meta);
        }
    }
    buf
}

/// Bytes of the frame [`encode_push`] writes.
fn encoded_push_len<'a>(
    tenant: &str,
    streams: impl ExactSizeIterator<Item = (&'a LabelSet, &'a [WalEntry])>,
) -> usize {
    let bytes = |n: usize| uvarint_len(n as u64) + n;
    let mut size = FRAME_HEADER + 1 + 8 + bytes(tenant.len()) + uvarint_len(streams.len() as u64);
    for (labels, entries) in streams {
        size += uvarint_len(labels.len() as u64);
        for l in labels {
            size += bytes(l.name.len()) + bytes(l.value.len());
        }
        size += uvarint_len(entries.len() as u64);
        for e in entries {
            size += uvarint_len(((e.ts << 1) ^ (e.ts >> 63)) as u64)
                + bytes(e.line.len())
                + bytes(e.meta.len());
        }
    }
    size
}

/// Bytes `put_uvarint` writes for `v`.
fn uvarint_len(v: u64) -> usize {
    (u64::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// Numbers a frame from [`encode_push`] and seals it with length and
/// checksum.
pub fn finish_frame(frame: &mut [u8], seq: u64) {
    frame[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
    let payload_len = (frame.len() - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&frame[FRAME_HEADER..]);
    frame[0..4].copy_from_slice(&payload_len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A push record decoded in place: names, values, lines and metadata
/// borrow the payload, so that replaying a WAL of a million streams does
/// not allocate (and free) two strings per label and two buffers per
/// entry of every record.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRecordRef<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Tenant id.
    pub tenant: &'a str,
    /// Streams and their entries.
    pub streams: Vec<StreamRef<'a>>,
}

/// One stream of a [`PushRecordRef`].
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRef<'a> {
    /// `(name, value)`, sorted by name, each name once.
    pub labels: Vec<(&'a str, &'a str)>,
    /// Its entries.
    pub entries: Vec<EntryRef<'a>>,
}

/// One entry of a [`StreamRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Unix ns.
    pub ts: i64,
    /// The line.
    pub line: &'a str,
    /// Encoded structured metadata.
    pub meta: &'a [u8],
}

impl StreamRef<'_> {
    /// The labels as a set.
    pub fn label_set(&self) -> LabelSet {
        LabelSet::from_pairs(self.labels.iter().copied())
    }

    /// The fingerprint of the labels (`LabelSet::fingerprint`).
    pub fn fingerprint(&self) -> u64 {
        larch_query::fingerprint_pairs(self.labels.iter().copied())
    }
}

impl PushRecordRef<'_> {
    /// The record with everything copied out of the payload.
    pub fn to_owned_record(&self) -> PushRecord {
        PushRecord {
            seq: self.seq,
            tenant: self.tenant.to_string(),
            streams: self
                .streams
                .iter()
                .map(|s| {
                    (
                        s.label_set(),
                        s.entries
                            .iter()
                            .map(|e| WalEntry {
                                ts: e.ts,
                                line: Line::from(e.line),
                                meta: Bytes::copy_from_slice(e.meta),
                            })
                            .collect(),
                    )
                })
                .collect(),
        }
    }
}

/// Decodes a push payload (without the frame header).
pub fn decode_push(payload: &[u8]) -> Result<PushRecord, Malformed> {
    decode_push_ref(payload).map(|r| r.to_owned_record())
}

/// Decodes a push payload (without the frame header) in place.
pub fn decode_push_ref(payload: &[u8]) -> Result<PushRecordRef<'_>, Malformed> {
    let mut r = Reader::new(payload);
    let kind = r.take(1, "record kind")?[0];
    if kind != KIND_PUSH {
        return Err(Malformed {
            what: "record kind",
            offset: 0,
        });
    }
    let seq = r.u64le("sequence number")?;
    let tenant = r.str("tenant")?;
    let nstreams = r.len("stream count", payload.len())?;
    let mut streams = Vec::with_capacity(nstreams);
    for _ in 0..nstreams {
        let npairs = r.len("label count", payload.len())?;
        let mut labels = Vec::with_capacity(npairs);
        for _ in 0..npairs {
            let name = r.str("label name")?;
            let value = r.str("label value")?;
            labels.push((name, value));
        }
        // Written sorted; sorted here all the same, and a name twice is
        // damage.
        labels.sort_unstable();
        if labels.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Malformed {
                what: "labels",
                offset: r.pos(),
            });
        }
        let nentries = r.len("entry count", payload.len())?;
        let mut entries = Vec::with_capacity(nentries);
        for _ in 0..nentries {
            let ts = r.varint("timestamp")?;
            let line = r.str("line")?;
            let meta = r.bytes("metadata")?;
            entries.push(EntryRef { ts, line, meta });
        }
        streams.push(StreamRef { labels, entries });
    }
    if !r.is_empty() {
        return Err(Malformed {
            what: "trailing bytes",
            offset: r.pos(),
        });
    }
    Ok(PushRecordRef {
        seq,
        tenant,
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let labels = LabelSet::from_pairs([("app", "a"), ("ns", "x\"y")]);
        let entries = vec![
            WalEntry {
                ts: -5,
                line: "hello\nworld".into(),
                meta: Bytes::from_static(&[1, b'k', 1, b'v']),
            },
            WalEntry {
                ts: 7,
                line: Line::new(),
                meta: Bytes::new(),
            },
        ];
        let mut frame = encode_push("t1", std::iter::once((&labels, entries.as_slice())));
        finish_frame(&mut frame, 99);
        let len = u32::from_le_bytes(frame[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - FRAME_HEADER);
        let crc = u32::from_le_bytes(frame[4..8].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&frame[8..]));
        assert_eq!(frame.capacity(), frame.len(), "allocated at its exact size");
        let rec = decode_push(&frame[8..]).unwrap();
        assert_eq!(rec.seq, 99);
        assert_eq!(rec.tenant, "t1");
        assert_eq!(rec.streams, vec![(labels, entries)]);
    }

    #[test]
    fn a_reused_buffer_gives_the_same_frame() {
        let labels = LabelSet::from_pairs([("app", "a")]);
        let entries = vec![WalEntry {
            ts: 5,
            line: "hello".into(),
            meta: Bytes::new(),
        }];
        let fresh = encode_push("t1", std::iter::once((&labels, entries.as_slice())));
        let used = vec![0xAA; 4096];
        let reused = encode_push_into(used, "t1", std::iter::once((&labels, entries.as_slice())));
        assert_eq!(reused, fresh);
        assert!(
            reused.capacity() >= 4096,
            "the buffer was kept, not replaced"
        );
    }

    proptest! {
        #[test]
        fn frames_are_allocated_at_their_exact_size(
            ts in proptest::collection::vec(any::<i64>(), 0..20),
            line_len in 0usize..300,
            meta_len in 0usize..200,
        ) {
            let labels = LabelSet::from_pairs([("app", "a".repeat(line_len % 150))]);
            let entries: Vec<WalEntry> = ts
                .iter()
                .map(|&ts| WalEntry {
                    ts,
                    line: "x".repeat(line_len).into(),
                    meta: Bytes::from(vec![7u8; meta_len]),
                })
                .collect();
            let frame = encode_push(&"t".repeat(meta_len), [(&labels, entries.as_slice())].into_iter());
            prop_assert_eq!(frame.len(), encoded_push_len(&"t".repeat(meta_len), [(&labels, entries.as_slice())].into_iter()));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_push(&bytes);
        }
    }
}
