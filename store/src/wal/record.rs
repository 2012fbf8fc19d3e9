//! WAL records.
//!
//! ```text
//! frame    u32le payload length | u32le crc32(payload) | payload
//! payload  u8 kind (2) | u64le seq | str tenant | uvarint nstreams
//!          { uvarint npairs { str name | str value }* | uvarint nentries
//!            { varint ts delta | str line | meta }* }*
//!        | u8 kind (3) | u64le seq | str tenant | bytes body | uvarint nstreams
//!          { uvarint npairs { str name | str value }* | uvarint nentries
//!            { varint ts delta | varint line start delta | uvarint line length
//!              | meta }* }*
//! meta     uvarint m: 0 no metadata; 1 to 8 the lone pair detected_level=
//!          trace, debug, info, warn, error, critical, fatal, unknown;
//!          16 + n: n bytes of encoded metadata follow (9 to 15: damage)
//! ```
//! An entry's timestamp is written as its difference from the previous
//! entry's of the same stream (the first's from 0), a few bytes where the
//! whole nanosecond value takes nine; an entry whose only metadata is a
//! discovered level, almost every entry, writes one byte where the pair
//! took twenty-one. Together about a sixth of a record of log lines of a
//! hundred and forty bytes (BENCHMARKS.md, "Tenth round").
//!
//! Kind 3 is the record of a push whose lines are all slices of its body
//! (a snappy protobuf push over HTTP, see [`crate::push::SourceBody`]):
//! instead of the lines it holds the body as the client compressed it,
//! and each line as where it starts in the decompressed body (the
//! difference from where the stream's previous line ended, the first's
//! from 0) and its length. For log lines that is about a quarter of a
//! kind 2 record, and the lines are not copied into it; replay
//! decompresses the body once per record and reads the lines from it
//! (BENCHMARKS.md, "Twelfth round"). Every other push is written as
//! kind 2.
//!
//! Kind 1, written until 2026-12-05, is still read: the same but for each
//! entry `varint ts | str metadata`, the whole timestamp and the metadata
//! as it is. A store from before a kind was written reads it as damage
//! (and saves it aside, see `wal`'s docs), so going back to such a
//! version after writing must start from a flushed, empty WAL.
//!
//! The sequence number is fixed-width so a record encoded by a request
//! handler can be numbered by the WAL writer without re-encoding; the
//! checksum is computed by the writer after numbering.

use bytes::Bytes;
use larch_query::LabelSet;

use crate::encoding::{
    FIXED_LEVELS, Malformed, Reader, fixed_level_index, fixed_level_meta, put_bytes, put_uvarint,
    put_varint, snappy_len_plausible,
};
use crate::push::{Line, SourceBody};

/// Kind byte of a push record as written now.
pub const KIND_PUSH: u8 = 2;
/// Kind byte of a push record that holds its compressed body and where
/// each line lies in it (see the module docs).
pub const KIND_PUSH_BODY: u8 = 3;
/// Kind byte of a push record as written until 2026-12-05 (whole
/// timestamps, metadata as it is); still read.
pub const KIND_PUSH_V1: u8 = 1;
/// A record's `meta` value from which on it is a length (plus this).
const META_LEN_BASE: u64 = 16;
/// Frame header size.
pub const FRAME_HEADER: usize = 8;
/// Offset of the sequence number within a frame.
const SEQ_AT: usize = FRAME_HEADER + 1;
/// Where a frame's checksum is.
const CRC_AT: usize = 4;
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
    encode_push_into(Vec::new(), tenant, None, streams)
}

/// [`encode_push`] into `buf`, a buffer used before (its contents are
/// dropped): it grows only if the frame does not fit. With `source`, the
/// body the lines came in, every line a slice of it and the body smaller
/// than the lines, the record is of kind 3 (the body and where each line
/// lies in it); else kind 2.
pub fn encode_push_into<'a>(
    mut buf: Vec<u8>,
    tenant: &str,
    source: Option<&SourceBody>,
    streams: impl ExactSizeIterator<Item = (&'a LabelSet, &'a [WalEntry])> + Clone,
) -> Vec<u8> {
    if let Some(src) = source {
        match encode_body_push(buf, tenant, src, streams.clone()) {
            Ok(frame) => return frame,
            Err(back) => buf = back,
        }
    }
    let size = encoded_push_len(tenant, streams.clone());
    buf.clear();
    buf.reserve_exact(size);
    put_header(&mut buf, KIND_PUSH, tenant);
    put_uvarint(&mut buf, streams.len() as u64);
    for (labels, entries) in streams {
        put_labels(&mut buf, labels, entries.len());
        let mut prev = 0i64;
        for e in entries {
            put_varint(&mut buf, e.ts.wrapping_sub(prev));
            prev = e.ts;
            put_bytes(&mut buf, e.line.as_bytes());
            put_meta(&mut buf, &e.meta);
        }
    }
    debug_assert_eq!(buf.len(), size);
    seal_tail(buf)
}

/// The kind 3 frame of these streams with body `src`, written in one pass
/// into room for the most it can take; `Err` with the buffer back if a
/// line is not a part of the body, or the body is larger than the lines.
fn encode_body_push<'a>(
    mut buf: Vec<u8>,
    tenant: &str,
    src: &SourceBody,
    streams: impl ExactSizeIterator<Item = (&'a LabelSet, &'a [WalEntry])> + Clone,
) -> Result<Vec<u8>, Vec<u8>> {
    // The bytes of the lines, and the most the entries can take: three
    // varints of at most 10 bytes each, and the metadata written out.
    let (mut lines, mut most) = (0, 0);
    for (labels, entries) in streams.clone() {
        most += labels_len(labels) + 10;
        for e in entries {
            lines += e.line.len();
            most += 3 * 10 + 10 + e.meta.len();
        }
    }
    // A body larger than the lines it holds (tiny lines, long labels or
    // metadata) would make a larger record than the lines themselves.
    if src.compressed.len() > lines {
        return Err(buf);
    }
    let most = most + FRAME_HEADER + 1 + 8 + 3 * 10 + tenant.len() + src.compressed.len();
    buf.clear();
    buf.reserve(most);
    put_header(&mut buf, KIND_PUSH_BODY, tenant);
    put_bytes(&mut buf, &src.compressed);
    put_uvarint(&mut buf, streams.len() as u64);
    for (labels, entries) in streams {
        put_labels(&mut buf, labels, entries.len());
        let mut prev = 0i64;
        let mut end = 0usize;
        for e in entries {
            let line = e.line.as_bytes();
            let Some(start) = line_start(src, line, end) else {
                return Err(buf);
            };
            put_varint(&mut buf, e.ts.wrapping_sub(prev));
            prev = e.ts;
            put_varint(&mut buf, start as i64 - end as i64);
            put_uvarint(&mut buf, line.len() as u64);
            end = start + line.len();
            put_meta(&mut buf, &e.meta);
        }
    }
    debug_assert!(
        buf.len() <= most,
        "{} bytes past the room for {most}",
        buf.len()
    );
    Ok(seal_tail(buf))
}

/// Frame header (length and checksum to come), kind, sequence number 0
/// (to come) and tenant.
fn put_header(buf: &mut Vec<u8>, kind: u8, tenant: &str) {
    buf.resize(FRAME_HEADER, 0);
    buf.push(kind);
    buf.extend_from_slice(&0u64.to_le_bytes());
    put_bytes(buf, tenant.as_bytes());
}

/// A stream's labels and its entry count.
fn put_labels(buf: &mut Vec<u8>, labels: &LabelSet, entries: usize) {
    put_uvarint(buf, labels.len() as u64);
    for l in labels {
        put_bytes(buf, l.name.as_bytes());
        put_bytes(buf, l.value.as_bytes());
    }
    put_uvarint(buf, entries as u64);
}

/// An entry's `meta`.
fn put_meta(buf: &mut Vec<u8>, meta: &[u8]) {
    match meta_code(meta) {
        Some(code) => buf.push(code),
        None => {
            put_uvarint(buf, META_LEN_BASE + meta.len() as u64);
            buf.extend_from_slice(meta);
        }
    }
}

/// Puts the checksum of what follows the sequence number in the frame's
/// checksum field, taken while the bytes just written are in this core's
/// cache (the WAL writer, on another thread, would read them from
/// memory); `finish_frame` joins the number's to it.
fn seal_tail(mut buf: Vec<u8>) -> Vec<u8> {
    let tail = crc32fast::hash(&buf[SEQ_AT + 8..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&tail.to_le_bytes());
    buf
}

/// Where `line` starts in `src`'s decompressed body; an empty line is
/// taken to start at `end`, where the previous one ended. `None` if the
/// line is not a part of the body.
fn line_start(src: &SourceBody, line: &[u8], end: usize) -> Option<usize> {
    if line.is_empty() {
        return Some(end);
    }
    src.offset_of(line)
}

/// Bytes of a varint (zigzag) of `v`.
fn varint_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Bytes of an entry's `meta`.
fn meta_len(meta: &[u8]) -> usize {
    match meta_code(meta) {
        Some(_) => 1,
        None => uvarint_len(META_LEN_BASE + meta.len() as u64) + meta.len(),
    }
}

/// Bytes of a stream's labels.
fn labels_len(labels: &LabelSet) -> usize {
    let bytes = |n: usize| uvarint_len(n as u64) + n;
    uvarint_len(labels.len() as u64)
        + labels
            .iter()
            .map(|l| bytes(l.name.len()) + bytes(l.value.len()))
            .sum::<usize>()
}

/// Bytes of the kind 2 frame [`encode_push`] writes.
fn encoded_push_len<'a>(
    tenant: &str,
    streams: impl ExactSizeIterator<Item = (&'a LabelSet, &'a [WalEntry])>,
) -> usize {
    let bytes = |n: usize| uvarint_len(n as u64) + n;
    let mut size = FRAME_HEADER + 1 + 8 + bytes(tenant.len()) + uvarint_len(streams.len() as u64);
    for (labels, entries) in streams {
        size += labels_len(labels) + uvarint_len(entries.len() as u64);
        let mut prev = 0i64;
        for e in entries {
            size += varint_len(e.ts.wrapping_sub(prev)) + bytes(e.line.len()) + meta_len(&e.meta);
            prev = e.ts;
        }
    }
    size
}

/// The one-byte `meta` value of an entry's metadata: 0 for none, 1 to 8
/// for a lone fixed level; `None` when it is written out.
fn meta_code(meta: &[u8]) -> Option<u8> {
    if meta.is_empty() {
        return Some(0);
    }
    fixed_level_index(meta).map(|i| i as u8 + 1)
}

/// Bytes `put_uvarint` writes for `v`.
fn uvarint_len(v: u64) -> usize {
    (u64::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// Numbers a frame from [`encode_push`] and seals it with length and
/// checksum. The frame's checksum field holds, from the encoder, the
/// checksum of the bytes after the sequence number: the payload's is
/// that of its first 9 bytes (kind and number) joined to it, without
/// reading the rest again. So a frame is finished once, as encoded.
pub fn finish_frame(frame: &mut [u8], seq: u64) {
    frame[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
    let payload_len = (frame.len() - FRAME_HEADER) as u32;
    let mut field = [0u8; 4];
    field.copy_from_slice(&frame[CRC_AT..CRC_AT + 4]);
    let tail_len = (frame.len() - SEQ_AT - 8) as u64;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&frame[FRAME_HEADER..SEQ_AT + 8]);
    crc.combine(&crc32fast::Hasher::new_with_initial_len(
        u32::from_le_bytes(field),
        tail_len,
    ));
    frame[0..4].copy_from_slice(&payload_len.to_le_bytes());
    frame[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.finalize().to_le_bytes());
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
    let mut body = Vec::new();
    decode_push_ref(payload, &mut body).map(|r| r.to_owned_record())
}

/// Decodes a push payload (without the frame header) in place. A kind 3
/// record's body is decompressed into `body` (a buffer kept between
/// records), which its lines then borrow.
pub fn decode_push_ref<'a>(
    payload: &'a [u8],
    body: &'a mut Vec<u8>,
) -> Result<PushRecordRef<'a>, Malformed> {
    let mut r = Reader::new(payload);
    let kind = r.take(1, "record kind")?[0];
    if !matches!(kind, KIND_PUSH | KIND_PUSH_V1 | KIND_PUSH_BODY) {
        return Err(Malformed {
            what: "record kind",
            offset: 0,
        });
    }
    let seq = r.u64le("sequence number")?;
    let tenant = r.str("tenant")?;
    let raw: &'a [u8] = if kind == KIND_PUSH_BODY {
        let at = r.pos();
        decompress_body(r.bytes("body")?, body, at)?;
        let body: &'a Vec<u8> = body;
        body
    } else {
        &[]
    };
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
        let mut prev = 0i64;
        let mut end = 0usize;
        for _ in 0..nentries {
            let entry = if kind == KIND_PUSH_V1 {
                let ts = r.varint("timestamp")?;
                let line = r.str("line")?;
                let meta = r.bytes("metadata")?;
                EntryRef { ts, line, meta }
            } else {
                let ts = prev.wrapping_add(r.varint("timestamp")?);
                prev = ts;
                let line = if kind == KIND_PUSH_BODY {
                    body_line(&mut r, raw, &mut end)?
                } else {
                    r.str("line")?
                };
                let meta = meta(&mut r, payload.len())?;
                EntryRef { ts, line, meta }
            };
            entries.push(entry);
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

/// Decompresses a kind 3 record's body (read at `at`) into `out`,
/// refusing a size the body cannot hold, or one past what any record may
/// hold (no push decompresses to that much), before allocating it.
fn decompress_body(body: &[u8], out: &mut Vec<u8>, at: usize) -> Result<(), Malformed> {
    let bad = Malformed {
        what: "body",
        offset: at,
    };
    let len = snap::raw::decompress_len(body).map_err(|_| bad.clone())?;
    if len > MAX_RECORD || !snappy_len_plausible(body.len(), len) {
        return Err(bad);
    }
    out.clear();
    out.resize(len, 0);
    match snap::raw::Decoder::new().decompress(body, out) {
        Ok(n) if n == len => Ok(()),
        _ => Err(bad),
    }
}

/// A kind 3 entry's line: its start (from `end`, where the stream's
/// previous line ended) and length, read from `r`, in `raw`.
fn body_line<'a>(r: &mut Reader<'a>, raw: &'a [u8], end: &mut usize) -> Result<&'a str, Malformed> {
    let at = r.pos();
    let bad = Malformed {
        what: "line",
        offset: at,
    };
    let delta = r.varint("line start")?;
    let len = r.uvarint("line length")?;
    let start = i64::try_from(*end)
        .ok()
        .and_then(|e| e.checked_add(delta))
        .and_then(|s| usize::try_from(s).ok())
        .ok_or(bad.clone())?;
    let stop = usize::try_from(len)
        .ok()
        .and_then(|n| start.checked_add(n))
        .ok_or(bad.clone())?;
    let line = raw.get(start..stop).ok_or(bad.clone())?;
    *end = stop;
    std::str::from_utf8(line).map_err(|_| bad)
}

/// An entry's metadata (`meta` in the module docs).
fn meta<'a>(r: &mut Reader<'a>, limit: usize) -> Result<&'a [u8], Malformed> {
    let at = r.pos();
    match r.uvarint("metadata")? {
        0 => Ok(&[][..]),
        m if m < META_LEN_BASE => usize::try_from(m - 1)
            .ok()
            .filter(|&i| i < FIXED_LEVELS.len())
            .and_then(fixed_level_meta)
            .ok_or(Malformed {
                what: "metadata code",
                offset: at,
            }),
        m => {
            let n = usize::try_from(m - META_LEN_BASE)
                .ok()
                .filter(|&n| n <= limit)
                .ok_or(Malformed {
                    what: "metadata length",
                    offset: at,
                })?;
            r.take(n, "metadata")
        }
    }
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
        let reused = encode_push_into(
            used,
            "t1",
            None,
            std::iter::once((&labels, entries.as_slice())),
        );
        assert_eq!(reused, fresh);
        assert!(
            reused.capacity() >= 4096,
            "the buffer was kept, not replaced"
        );
    }

    /// A kind 1 payload, laid out by hand as stores wrote it until
    /// 2026-12-05.
    fn encode_v1(seq: u64, tenant: &str, labels: &LabelSet, entries: &[WalEntry]) -> Vec<u8> {
        let mut p = vec![KIND_PUSH_V1];
        p.extend_from_slice(&seq.to_le_bytes());
        put_bytes(&mut p, tenant.as_bytes());
        put_uvarint(&mut p, 1);
        put_uvarint(&mut p, labels.len() as u64);
        for l in labels {
            put_bytes(&mut p, l.name.as_bytes());
            put_bytes(&mut p, l.value.as_bytes());
        }
        put_uvarint(&mut p, entries.len() as u64);
        for e in entries {
            put_varint(&mut p, e.ts);
            put_bytes(&mut p, e.line.as_bytes());
            put_bytes(&mut p, &e.meta);
        }
        p
    }

    fn level_entries() -> Vec<WalEntry> {
        let mut entries: Vec<WalEntry> = (0..FIXED_LEVELS.len())
            .map(|i| WalEntry {
                ts: 1_764_900_000_000_000_000 + i as i64 * 1_000,
                line: format!("line {i}").into(),
                meta: Bytes::from_static(fixed_level_meta(i).unwrap()),
            })
            .collect();
        // A level that is not one of the fixed words, a pair beside a
        // level, and no metadata at all: written out, or as 0.
        let mut odd = Vec::new();
        put_bytes(&mut odd, b"detected_level");
        put_bytes(&mut odd, b"notice");
        let mut two = Vec::new();
        put_bytes(&mut two, b"trace_id");
        put_bytes(&mut two, b"7f3a");
        two.extend_from_slice(fixed_level_meta(2).unwrap());
        for (ts, meta) in [(i64::MIN, odd), (i64::MAX, two), (-1, Vec::new())] {
            entries.push(WalEntry {
                ts,
                line: "x".into(),
                meta: meta.into(),
            });
        }
        entries
    }

    #[test]
    fn fixed_levels_take_one_byte_and_decode_to_their_encoding() {
        let labels = LabelSet::from_pairs([("app", "a")]);
        let entries = level_entries();
        let mut frame = encode_push("t", std::iter::once((&labels, entries.as_slice())));
        finish_frame(&mut frame, 3);
        let mut body = Vec::new();
        let rec = decode_push_ref(&frame[FRAME_HEADER..], &mut body).unwrap();
        for (i, e) in rec.streams[0]
            .entries
            .iter()
            .take(FIXED_LEVELS.len())
            .enumerate()
        {
            assert_eq!(e.meta, fixed_level_meta(i).unwrap());
            let pairs: Vec<(&str, &str)> = larch_query::decode_metadata(e.meta).collect();
            assert_eq!(pairs, vec![("detected_level", FIXED_LEVELS[i])]);
        }
        assert_eq!(
            decode_push(&frame[FRAME_HEADER..]).unwrap().streams,
            vec![(labels.clone(), entries.clone())]
        );
        let old = encode_v1(3, "t", &labels, &entries);
        assert!(
            frame.len() - FRAME_HEADER + 8 * 20 < old.len(),
            "{} bytes against {} as kind 1",
            frame.len() - FRAME_HEADER,
            old.len()
        );
    }

    #[test]
    fn kind_1_records_still_decode() {
        let labels = LabelSet::from_pairs([("app", "a"), ("ns", "x")]);
        let entries = level_entries();
        let old = encode_v1(41, "tenant-a", &labels, &entries);
        let rec = decode_push(&old).unwrap();
        assert_eq!(rec.seq, 41);
        assert_eq!(rec.tenant, "tenant-a");
        assert_eq!(rec.streams, vec![(labels, entries)]);
    }

    #[test]
    fn unknown_metadata_codes_are_damage() {
        let labels = LabelSet::from_pairs([("app", "a")]);
        let entries = vec![WalEntry {
            ts: 5,
            line: "x".into(),
            meta: Bytes::from_static(fixed_level_meta(0).unwrap()),
        }];
        let frame = encode_push("t", std::iter::once((&labels, entries.as_slice())));
        let at = frame.len() - 1;
        assert_eq!(frame[at], 1, "the entry's meta is the last byte");
        for code in 9..META_LEN_BASE as u8 {
            let mut bad = frame.clone();
            bad[at] = code;
            assert!(decode_push(&bad[FRAME_HEADER..]).is_err(), "{code}");
        }
        let mut long = frame.clone();
        long[at] = META_LEN_BASE as u8 + 5;
        assert!(
            decode_push(&long[FRAME_HEADER..]).is_err(),
            "a length past the end"
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
        fn records_decode_to_what_was_encoded(
            ts in proptest::collection::vec(any::<i64>(), 0..20),
            metas in proptest::collection::vec(
                prop_oneof![
                    (0usize..FIXED_LEVELS.len()).prop_map(|i| fixed_level_meta(i).unwrap().to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..40),
                ],
                1..5,
            ),
            seq in any::<u64>(),
        ) {
            let labels = LabelSet::from_pairs([("app", "a")]);
            let entries: Vec<WalEntry> = ts
                .iter()
                .enumerate()
                .map(|(i, &ts)| WalEntry {
                    ts,
                    line: format!("line {i}").into(),
                    meta: metas[i % metas.len()].clone().into(),
                })
                .collect();
            let mut frame = encode_push("t", [(&labels, entries.as_slice())].into_iter());
            finish_frame(&mut frame, seq);
            // The checksum joined from the encoder's is the payload's.
            prop_assert_eq!(&frame[CRC_AT..CRC_AT + 4], &crc32fast::hash(&frame[FRAME_HEADER..]).to_le_bytes());
            let rec = decode_push(&frame[FRAME_HEADER..]).unwrap();
            prop_assert_eq!(rec.seq, seq);
            prop_assert_eq!(rec.streams, vec![(labels, entries)]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_push(&bytes);
        }

        /// Lines anywhere in the body, in any order, repeated, cut short or
        /// empty, over several streams: a kind 3 record (kind 2 when the
        /// body is the larger) decodes to the entries a kind 2 record of
        /// the same streams decodes to, with a checksum that is the
        /// payload's.
        #[test]
        fn body_records_decode_as_line_records_do(
            text in proptest::collection::vec(any::<char>(), 0..300),
            picks in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<i64>(), 0usize..3), 0..30),
            split in any::<usize>(),
            seq in any::<u64>(),
        ) {
            let text: String = text.into_iter().collect();
            let src = source(&text);
            let raw = std::str::from_utf8(&src.raw).unwrap();
            let bounds: Vec<usize> = (0..=raw.len()).filter(|&i| raw.is_char_boundary(i)).collect();
            let entries: Vec<WalEntry> = picks
                .iter()
                .map(|&(a, b, ts, meta)| {
                    let (a, b) = (bounds[a % bounds.len()], bounds[b % bounds.len()]);
                    WalEntry {
                        ts,
                        line: Line::slice_of(&src.raw, &raw[a.min(b)..a.max(b)]),
                        meta: match meta {
                            0 => Bytes::new(),
                            1 => Bytes::from_static(fixed_level_meta(2).unwrap()),
                            _ => Bytes::from_static(&[1, b'k', 1, b'v']),
                        },
                    }
                })
                .collect();
            let cut = split % (entries.len() + 1);
            let a = LabelSet::from_pairs([("app", "a")]);
            let b = LabelSet::from_pairs([("app", "b")]);
            let streams = [(&a, &entries[..cut]), (&b, &entries[cut..])];
            let mut frame = encode_push_into(Vec::new(), "t", Some(&src), streams.into_iter());
            let lines: usize = entries.iter().map(|e| e.line.len()).sum();
            let kind = if src.compressed.len() > lines { KIND_PUSH } else { KIND_PUSH_BODY };
            prop_assert_eq!(frame[FRAME_HEADER], kind);
            finish_frame(&mut frame, seq);
            prop_assert_eq!(&frame[CRC_AT..CRC_AT + 4], &crc32fast::hash(&frame[FRAME_HEADER..]).to_le_bytes());
            let mut lines = encode_push("t", streams.into_iter());
            finish_frame(&mut lines, seq);
            prop_assert_eq!(
                decode_push(&frame[FRAME_HEADER..]).unwrap(),
                decode_push(&lines[FRAME_HEADER..]).unwrap()
            );
        }
    }

    /// `text` as a push body: compressed, and decompressed into a buffer
    /// of its own, which lines are then sliced from.
    fn source(text: &str) -> SourceBody {
        let compressed = snap::raw::Encoder::new()
            .compress_vec(text.as_bytes())
            .unwrap();
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&compressed)
            .unwrap();
        SourceBody {
            compressed: compressed.into(),
            raw: raw.into(),
        }
    }

    #[test]
    fn a_push_with_a_line_not_in_its_body_is_written_with_its_lines() {
        let src = source(&"one two three ".repeat(20));
        let whole = std::str::from_utf8(&src.raw).unwrap();
        let labels = LabelSet::from_pairs([("app", "a")]);
        let mut entries = vec![WalEntry {
            ts: 1,
            line: Line::slice_of(&src.raw, whole),
            meta: Bytes::new(),
        }];
        let frame = encode_push_into(
            Vec::new(),
            "t",
            Some(&src),
            [(&labels, entries.as_slice())].into_iter(),
        );
        assert_eq!(frame[FRAME_HEADER], KIND_PUSH_BODY);
        entries.push(WalEntry {
            ts: 2,
            line: "a line of its own".into(),
            meta: Bytes::new(),
        });
        let streams = [(&labels, entries.as_slice())];
        let frame = encode_push_into(Vec::new(), "t", Some(&src), streams.into_iter());
        assert_eq!(frame[FRAME_HEADER], KIND_PUSH);
        assert_eq!(frame, encode_push("t", streams.into_iter()));
    }

    #[test]
    fn a_body_larger_than_its_lines_is_not_written() {
        let src = source("a body that holds labels and metadata more than lines");
        let labels = LabelSet::from_pairs([("app", "a")]);
        let entries = vec![WalEntry {
            ts: 1,
            line: Line::slice_of(&src.raw, std::str::from_utf8(&src.raw[2..6]).unwrap()),
            meta: Bytes::new(),
        }];
        let streams = [(&labels, entries.as_slice())];
        let frame = encode_push_into(Vec::new(), "t", Some(&src), streams.into_iter());
        assert_eq!(frame, encode_push("t", streams.into_iter()));
    }

    #[test]
    fn body_records_are_a_fraction_of_line_records_and_damage_is_refused() {
        let text: String = (0..400)
            .map(|i| format!("2026-12-05T17:{:02}:{:02}Z level=info msg=\"request served\" path=/api/v1/items/{i} status=200 took={}ms\n", i / 60 % 60, i % 60, i % 37))
            .collect();
        let src = source(&text);
        let raw = std::str::from_utf8(&src.raw).unwrap();
        let entries: Vec<WalEntry> = raw
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, l)| WalEntry {
                ts: 1_764_950_000_000_000_000 + i as i64 * 1_000_000,
                line: Line::slice_of(&src.raw, l.trim_end()),
                meta: Bytes::from_static(fixed_level_meta(2).unwrap()),
            })
            .collect();
        let labels = LabelSet::from_pairs([("app", "a")]);
        let streams = [(&labels, entries.as_slice())];
        let mut body = encode_push_into(Vec::new(), "t", Some(&src), streams.into_iter());
        let mut lines = encode_push("t", streams.into_iter());
        finish_frame(&mut body, 1);
        finish_frame(&mut lines, 1);
        assert!(
            body.len() * 3 < lines.len(),
            "{} bytes against {} for the lines",
            body.len(),
            lines.len()
        );
        assert_eq!(
            decode_push(&body[FRAME_HEADER..]).unwrap(),
            decode_push(&lines[FRAME_HEADER..]).unwrap()
        );
        // A body whose snappy header claims another length, or a line past
        // the body's end: damage, not a panic.
        let at = FRAME_HEADER + 1 + 8 + 2 + uvarint_len(src.compressed.len() as u64);
        assert_eq!(body[at..at + 8], src.compressed[..8]);
        let mut bad = body.clone();
        bad[at] ^= 1;
        assert!(decode_push(&bad[FRAME_HEADER..]).is_err());
        let mut past = body.clone();
        let last = past.len() - 2;
        past[last] = 0x7f;
        assert!(decode_push(&past[FRAME_HEADER..]).is_err());
    }
}
