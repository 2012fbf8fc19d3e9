//! Protobuf pushes: `logproto.PushRequest`, snappy-compressed (raw block
//! format) over HTTP, plain over gRPC.
//!
//! ```text
//! PushRequest { 1: repeated Stream streams   2: string format }
//! Stream      { 1: string labels   2: repeated Entry entries   3: uint64 hash }
//! Entry       { 1: Timestamp timestamp   2: string line
//!               3: repeated LabelPair structured_metadata   4: repeated LabelPair parsed }
//! LabelPair   { 1: string name   2: string value }
//! Timestamp   { 1: int64 seconds   2: int32 nanos }
//! ```
//!
//! The request is decoded by hand straight into a [`Push`] rather than
//! through prost's generated types. That saves a copy of every line and
//! a second set of structures, lets every allocation be charged to the
//! request's [`Meter`] before it is made (a two-byte entry on the wire
//! becomes a 64-byte [`PushEntry`]), and leaves out a line longer than
//! `max_line_size` (see [`Meter::line_slice`]). Lines are not copied at
//! all: each is a [`Line`](super::Line) slice of the decompressed buffer, which the
//! push then holds ([`Push::held_body`]). The wire
//! rules are protobuf's as prost applies them, which a property test checks
//! against prost: unknown fields are skipped (groups too, nested at most
//! [`MAX_DEPTH`] deep), a known field with another wire type is an error,
//! strings must be UTF-8, a repeated string or scalar keeps its last value
//! and a repeated `timestamp` merges into the first.

use std::mem::size_of;

use bytes::Bytes;
use larch_proto::logproto;
use prost::Message;

use super::body::{read_limited, too_large_decompressed};
use super::meter::Meter;
use super::{DecodeError, Push, PushEntry, PushStream, SourceBody, StreamLabels};
use crate::bufpool::BufPool;
use wire::{LEN, VARINT, Wire, expect};

/// The magic that starts snappy's *framed* format. Loki clients send the
/// block format; a few tools send framed, which we accept too.
const SNAPPY_FRAME_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// How deep unknown groups may nest (prost's recursion limit).
pub const MAX_DEPTH: usize = 100;

/// Decodes an HTTP protobuf body: snappy, then protobuf.
pub fn decode_http(body: &[u8], meter: &mut Meter) -> Result<Push, DecodeError> {
    let raw = snappy_decompress(body, meter)?;
    decode_plain(&raw, meter)
}

/// [`decode_http`], keeping the body and what it decompressed to as the
/// push's [`Push::source`] when it is a snappy block (the WAL record of
/// the push then holds the body instead of its lines).
pub fn decode_http_kept(body: &Bytes, meter: &mut Meter) -> Result<Push, DecodeError> {
    let raw = snappy_decompress(body, meter)?;
    let mut push = decode_plain(&raw, meter)?;
    if !body.starts_with(SNAPPY_FRAME_MAGIC) {
        push.source = Some(SourceBody {
            compressed: body.clone(),
            raw,
        });
    }
    Ok(push)
}

/// Buffers for decompressed bodies, kept between pushes (see
/// [`crate::bufpool`]): up to four, each up to 8 MiB, so at most 32 MiB
/// and usually a few times one push's size. A larger body gets a buffer of
/// its own.
static DECOMPRESSED: BufPool = BufPool::new(4, 8 << 20);

/// The size a snappy *block* body says it decompresses to, read from its
/// header without decompressing; `None` for the framed format (whose size
/// is known only once decompressed) and for a header that is not snappy.
pub fn snappy_block_len(body: &[u8]) -> Option<usize> {
    if body.starts_with(SNAPPY_FRAME_MAGIC) {
        return None;
    }
    snap::raw::decompress_len(body).ok()
}

/// Undoes snappy (block format; framed format recognised by its magic),
/// refusing output beyond `meter.max_decompressed` before allocating it.
/// A block-format body is decompressed into a buffer from a pool, which
/// goes back to it once the last line sliced from it is dropped. Nothing
/// the buffer held before can show through: the decoder writes every byte
/// of the length the header claims or fails, and a copy may refer only to
/// bytes it has written.
pub fn snappy_decompress(body: &[u8], meter: &mut Meter) -> Result<Bytes, DecodeError> {
    if body.starts_with(SNAPPY_FRAME_MAGIC) {
        return read_limited(snap::read::FrameDecoder::new(body), "snappy", meter).map(Bytes::from);
    }
    let len =
        snap::raw::decompress_len(body).map_err(|_| DecodeError::bad("snappy: corrupt input"))?;
    if len > meter.max_decompressed {
        return Err(too_large_decompressed(len, meter.max_decompressed));
    }
    if !crate::encoding::snappy_len_plausible(body.len(), len) {
        return Err(DecodeError::bad("snappy: corrupt input"));
    }
    meter.charge(len)?;
    let corrupt = |_| DecodeError::bad("snappy: corrupt input");
    DECOMPRESSED.bytes_from(len, |out| {
        snap::raw::Decoder::new()
            .decompress(body, out)
            .map_err(corrupt)
    })
}

/// Decodes an uncompressed `PushRequest`; its lines are slices of `raw`.
pub fn decode_plain(raw: &Bytes, meter: &mut Meter) -> Result<Push, DecodeError> {
    let mut streams = Vec::new();
    let mut w = Wire(raw);
    while !w.0.is_empty() {
        let (field, wire) = w.key()?;
        match field {
            1 => {
                expect(field, wire, LEN)?;
                let s = stream(raw, w.bytes()?, meter)?;
                meter.push(&mut streams, s)?;
            }
            2 => {
                expect(field, wire, LEN)?;
                w.str()?;
            }
            _ => w.skip(field, wire, 0)?,
        }
    }
    Ok(Push {
        streams,
        held_body: raw.len(),
        source: None,
    })
}

/// A stream, from `raw`, a part of the request `body`.
fn stream(body: &Bytes, raw: &[u8], meter: &mut Meter) -> Result<PushStream, DecodeError> {
    // Count the entries first so that their vector is allocated (and
    // charged) once, at its final size; stop counting once they cannot
    // fit anyway.
    let most = meter.room() / size_of::<PushEntry>();
    let mut n = 0usize;
    let mut w = Wire(raw);
    while !w.0.is_empty() && n <= most {
        let (field, wire) = w.key()?;
        if field == 2 && wire == LEN {
            n += 1;
        }
        w.skip(field, wire, 0)?;
    }
    meter.charge_items::<PushEntry>(n)?;
    let mut entries = Vec::with_capacity(n);
    let mut labels = "";
    let mut w = Wire(raw);
    while !w.0.is_empty() {
        let (field, wire) = w.key()?;
        match field {
            1 => {
                expect(field, wire, LEN)?;
                labels = w.str()?;
            }
            2 => {
                expect(field, wire, LEN)?;
                entries.push(entry(body, w.bytes()?, meter)?);
            }
            3 => {
                expect(field, wire, VARINT)?;
                w.varint()?;
            }
            _ => w.skip(field, wire, 0)?,
        }
    }
    Ok(PushStream {
        labels: StreamLabels::Text(meter.string(labels)?),
        entries,
    })
}

/// An entry, from `raw`, a part of the request `body`.
fn entry(body: &Bytes, raw: &[u8], meter: &mut Meter) -> Result<PushEntry, DecodeError> {
    let mut ts: Option<(i64, i32)> = None;
    let mut line = "";
    let mut metadata = Vec::new();
    let mut w = Wire(raw);
    while !w.0.is_empty() {
        let (field, wire) = w.key()?;
        match field {
            1 => {
                expect(field, wire, LEN)?;
                timestamp(w.bytes()?, ts.get_or_insert((0, 0)))?;
            }
            2 => {
                expect(field, wire, LEN)?;
                line = w.str()?;
            }
            3 => {
                expect(field, wire, LEN)?;
                let (name, value) = label_pair(w.bytes()?)?;
                let pair = (meter.string(name)?, meter.string(value)?);
                meter.push(&mut metadata, pair)?;
            }
            4 => {
                // `parsed` is filled by Loki's queriers, never by clients:
                // checked like the rest, then dropped.
                expect(field, wire, LEN)?;
                label_pair(w.bytes()?)?;
            }
            _ => w.skip(field, wire, 0)?,
        }
    }
    let ts = match ts {
        Some((seconds, nanos)) => seconds
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(i64::from(nanos)))
            .ok_or_else(|| {
                DecodeError::bad(format!("timestamp out of range: {seconds}s {nanos}ns"))
            })?,
        None => 0,
    };
    let (line, omitted) = meter.line_slice(body, line);
    Ok(PushEntry {
        ts,
        line,
        metadata,
        omitted,
    })
}

fn timestamp(raw: &[u8], ts: &mut (i64, i32)) -> Result<(), DecodeError> {
    let mut w = Wire(raw);
    while !w.0.is_empty() {
        let (field, wire) = w.key()?;
        match field {
            // Protobuf's int64 and int32: two's complement in a varint.
            1 => {
                expect(field, wire, VARINT)?;
                ts.0 = w.varint()? as i64;
            }
            2 => {
                expect(field, wire, VARINT)?;
                ts.1 = w.varint()? as i32;
            }
            _ => w.skip(field, wire, 0)?,
        }
    }
    Ok(())
}

fn label_pair(raw: &[u8]) -> Result<(&str, &str), DecodeError> {
    let (mut name, mut value) = ("", "");
    let mut w = Wire(raw);
    while !w.0.is_empty() {
        let (field, wire) = w.key()?;
        match field {
            1 => {
                expect(field, wire, LEN)?;
                name = w.str()?;
            }
            2 => {
                expect(field, wire, LEN)?;
                value = w.str()?;
            }
            _ => w.skip(field, wire, 0)?,
        }
    }
    Ok((name, value))
}

/// Protobuf's wire format, as prost reads it.
pub(crate) mod wire {
    use super::MAX_DEPTH;
    use crate::push::DecodeError;

    pub(crate) const VARINT: u8 = 0;
    pub(crate) const I64: u8 = 1;
    pub(crate) const LEN: u8 = 2;
    pub(crate) const START_GROUP: u8 = 3;
    pub(crate) const END_GROUP: u8 = 4;
    pub(crate) const I32: u8 = 5;

    pub(crate) fn malformed(what: impl std::fmt::Display) -> DecodeError {
        DecodeError::bad(format!("failed to parse push request protobuf: {what}"))
    }

    #[inline]
    pub(crate) fn expect(field: u32, wire: u8, want: u8) -> Result<(), DecodeError> {
        if wire == want {
            Ok(())
        } else {
            Err(wrong_wire(field, wire, want))
        }
    }

    #[cold]
    fn wrong_wire(field: u32, wire: u8, want: u8) -> DecodeError {
        malformed(format!(
            "invalid wire type {wire} for field {field} (expected {want})"
        ))
    }

    /// Why a key is invalid: past 32 bits (`None`), or of an unknown wire
    /// type or field 0.
    #[cold]
    fn bad_key(key: Option<u32>) -> DecodeError {
        match key {
            None => malformed("invalid key value"),
            Some(key) if key & 7 > u32::from(I32) => {
                malformed(format!("invalid wire type value: {}", key & 7))
            }
            Some(_) => malformed("invalid tag value: 0"),
        }
    }

    #[cold]
    fn not_utf8() -> DecodeError {
        malformed("invalid string value: data is not UTF-8 encoded")
    }

    /// The value of a varint of at most 8 bytes, loaded little-endian
    /// into `x` (the bytes past it 0): its 7-bit groups joined, pairs of
    /// groups first, then pairs of pairs, then the two halves.
    #[inline]
    fn join_groups(x: u64) -> u64 {
        let x = x & 0x7f7f_7f7f_7f7f_7f7f;
        let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
        let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
        (x & 0x0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
    }

    /// The unread rest of a message.
    pub(crate) struct Wire<'a>(pub(crate) &'a [u8]);

    impl<'a> Wire<'a> {
        #[inline]
        pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
            // Keys, and most lengths and timestamp parts of a push, are one
            // byte.
            if let [b, rest @ ..] = self.0
                && *b < 0x80
            {
                self.0 = rest;
                return Ok(u64::from(*b));
            }
            self.varint_long()
        }

        fn varint_long(&mut self) -> Result<u64, DecodeError> {
            // Up to 8 bytes (56 bits: timestamps' seconds and nanoseconds,
            // lengths) from one load, when 8 bytes are left to load.
            if let Some(head) = self.0.first_chunk::<8>() {
                let x = u64::from_le_bytes(*head);
                let ends = !x & 0x8080_8080_8080_8080;
                if ends != 0 {
                    let len = ends.trailing_zeros() as usize / 8 + 1;
                    let kept = if len == 8 {
                        x
                    } else {
                        x & ((1u64 << (8 * len)) - 1)
                    };
                    self.0 = &self.0[len..];
                    return Ok(join_groups(kept));
                }
            }
            let mut v = 0u64;
            for (i, &b) in self.0.iter().take(10).enumerate() {
                if i == 9 && b > 1 {
                    break;
                }
                v |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    self.0 = &self.0[i + 1..];
                    return Ok(v);
                }
            }
            Err(malformed(if self.0.len() < 10 {
                "truncated varint"
            } else {
                "invalid varint"
            }))
        }

        #[inline]
        pub(crate) fn key(&mut self) -> Result<(u32, u8), DecodeError> {
            let key = self.varint()?;
            let Ok(key) = u32::try_from(key) else {
                return Err(bad_key(None));
            };
            let wire = (key & 7) as u8;
            let field = key >> 3;
            if wire > I32 || field == 0 {
                return Err(bad_key(Some(key)));
            }
            Ok((field, wire))
        }

        #[inline]
        pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
            if n > self.0.len() {
                return Err(malformed("buffer underflow"));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }

        #[inline]
        pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
            let n = self.varint()?;
            let n = usize::try_from(n).map_err(|_| malformed("buffer underflow"))?;
            self.take(n)
        }

        #[inline]
        pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
            simdutf8::basic::from_utf8(self.bytes()?).map_err(|_| not_utf8())
        }

        pub(crate) fn skip(
            &mut self,
            field: u32,
            wire: u8,
            depth: usize,
        ) -> Result<(), DecodeError> {
            match wire {
                VARINT => self.varint().map(drop),
                I64 => self.take(8).map(drop),
                LEN => self.bytes().map(drop),
                I32 => self.take(4).map(drop),
                START_GROUP => {
                    if depth >= MAX_DEPTH {
                        return Err(malformed("recursion limit reached"));
                    }
                    loop {
                        let (f, w) = self.key()?;
                        if w == END_GROUP {
                            return if f == field {
                                Ok(())
                            } else {
                                Err(malformed("unexpected end group tag"))
                            };
                        }
                        self.skip(f, w, depth + 1)?;
                    }
                }
                _ => Err(malformed("unexpected end group tag")),
            }
        }
    }
}

/// Encodes a push as a client would (used by tests, benches and tools).
pub fn encode_http(req: &logproto::PushRequest) -> Vec<u8> {
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::meter::LineLimit;
    use proptest::prelude::*;

    fn sample() -> logproto::PushRequest {
        logproto::PushRequest {
            streams: vec![logproto::Stream {
                labels: r#"{app="a"}"#.to_string(),
                entries: vec![logproto::Entry {
                    timestamp: Some(logproto::Timestamp {
                        seconds: 1,
                        nanos: 5,
                    }),
                    line: "hello".to_string(),
                    structured_metadata: vec![logproto::LabelPair {
                        name: "trace_id".to_string(),
                        value: "t".to_string(),
                    }],
                    parsed: vec![],
                }],
                hash: 0,
            }],
            format: String::new(),
        }
    }

    fn http(body: &[u8]) -> Result<Push, DecodeError> {
        decode_http(body, &mut Meter::unlimited())
    }

    fn plain(raw: &[u8], meter: &mut Meter) -> Result<Push, DecodeError> {
        decode_plain(&Bytes::copy_from_slice(raw), meter)
    }

    /// The same request decoded through prost's generated types.
    fn via_prost(raw: &[u8]) -> Option<Push> {
        let req = logproto::PushRequest::decode(raw).ok()?;
        let mut streams = Vec::new();
        for s in req.streams {
            let mut entries = Vec::new();
            for e in s.entries {
                let ts = match e.timestamp {
                    Some(t) => t
                        .seconds
                        .checked_mul(1_000_000_000)?
                        .checked_add(i64::from(t.nanos))?,
                    None => 0,
                };
                entries.push(PushEntry::new(
                    ts,
                    e.line,
                    e.structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                ));
            }
            streams.push(PushStream {
                labels: StreamLabels::Text(s.labels),
                entries,
            });
        }
        Some(Push {
            streams,
            held_body: raw.len(),
            source: None,
        })
    }

    #[test]
    fn round_trip() {
        let push = http(&encode_http(&sample())).unwrap();
        assert_eq!(push.streams.len(), 1);
        let e = &push.streams[0].entries[0];
        assert_eq!(e.ts, 1_000_000_005);
        assert_eq!(e.line, "hello");
        assert_eq!(e.metadata, vec![("trace_id".to_string(), "t".to_string())]);
    }

    #[test]
    fn lines_are_slices_of_the_body_which_stays_charged() {
        let mut req = sample();
        req.streams[0].entries[0].line = "x".repeat(1000);
        let raw = Bytes::from(req.encode_to_vec());
        let mut m = Meter::unlimited();
        let push = decode_plain(&raw, &mut m).unwrap();
        let line = push.streams[0].entries[0].line.as_bytes();
        assert_eq!(line.len(), 1000);
        let body = raw.as_ptr_range();
        assert!(body.contains(&line.as_ptr()), "the line is not a copy");
        assert_eq!(push.held_body, raw.len());
        // What stays charged after decoding covers the body once (not the
        // line again).
        let size = push.heap_size();
        assert!(size >= raw.len() && size < raw.len() + 1000, "{size}");
    }

    #[test]
    fn bodies_decompressed_into_used_buffers_decode_alike() {
        // Each body is decompressed into a buffer another decode may have
        // used and given back: what it held must never show through.
        let mut long = sample();
        long.streams[0].entries[0].line = "x".repeat(50_000);
        for req in [long, sample(), sample()] {
            let raw = req.encode_to_vec();
            let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
            assert_eq!(http(&body).unwrap(), via_prost(&raw).unwrap());
            // Claiming more than its ops write is an error, not a buffer
            // with old bytes at its end.
            let mut short = body.clone();
            short[0] = short[0].wrapping_add(1);
            if short[0] < 0x80 {
                assert_eq!(
                    http(&short).unwrap_err().to_string(),
                    "snappy: corrupt input"
                );
            }
        }
    }

    #[test]
    fn framed_snappy_is_accepted() {
        use std::io::Write;
        let raw = sample().encode_to_vec();
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(&raw).unwrap();
        let framed = w.into_inner().unwrap();
        assert_eq!(http(&framed).unwrap().entry_count(), 1);
    }

    #[test]
    fn corrupt_inputs_are_errors() {
        assert_eq!(
            http(b"\xff\xff\xff\xff\xff").unwrap_err().to_string(),
            "snappy: corrupt input"
        );
        let body = encode_http(&sample());
        let raw = snappy_decompress(&body, &mut Meter::unlimited()).unwrap();
        // Truncated protobuf.
        let cut = snap::raw::Encoder::new()
            .compress_vec(&raw[..raw.len() - 3])
            .unwrap();
        assert!(
            http(&cut)
                .unwrap_err()
                .to_string()
                .starts_with("failed to parse push request protobuf")
        );
        // Not snappy at all (JSON sent with a protobuf content type).
        assert!(http(br#"{"streams":[]}"#).is_err());
    }

    #[test]
    fn overflowing_timestamp_is_an_error() {
        let mut req = sample();
        req.streams[0].entries[0].timestamp = Some(logproto::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        });
        assert!(http(&encode_http(&req)).is_err());
    }

    #[test]
    fn long_lines_are_left_out_or_cut_while_decoding() {
        let mut req = sample();
        req.streams[0].entries[0].line = "abcdefgh".to_string();
        let raw = req.encode_to_vec();
        let limit = |truncate| Meter::standalone(1 << 20, 1 << 20, LineLimit { max: 5, truncate });
        let p = plain(&raw, &mut limit(false)).unwrap();
        let e = &p.streams[0].entries[0];
        assert_eq!((&*e.line.text(), e.omitted), ("", 8));
        let p = plain(&raw, &mut limit(true)).unwrap();
        let e = &p.streams[0].entries[0];
        assert_eq!((&*e.line.text(), e.omitted), ("abcde", 3));
    }

    #[test]
    fn tiny_entries_are_charged_before_they_are_allocated() {
        // 100 000 empty entries: 200 KB on the wire, 6 MB as entries.
        let mut raw = Vec::new();
        let mut stream = vec![0x0a, 0x02, b'{', b'}'];
        for _ in 0..100_000 {
            stream.extend_from_slice(&[0x12, 0x00]);
        }
        raw.push(0x0a);
        prost::encoding::encode_varint(stream.len() as u64, &mut raw);
        raw.extend_from_slice(&stream);
        let mut m = Meter::standalone(1 << 20, usize::MAX, LineLimit::NONE);
        let e = plain(&raw, &mut m).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge(_)), "{e}");
        let mut m = Meter::unlimited();
        let p = plain(&raw, &mut m).unwrap();
        assert_eq!(p.entry_count(), 100_000);
        assert!(m.held() >= 100_000 * std::mem::size_of::<PushEntry>());
    }

    #[test]
    fn snappy_claims_beyond_the_limit_are_refused_before_allocating() {
        let body = encode_http(&sample());
        let mut m = Meter::standalone(usize::MAX, 10, LineLimit::NONE);
        let e = decode_http(&body, &mut m).unwrap_err();
        assert!(
            e.to_string()
                .contains("decompressed message size too large than max"),
            "{e}"
        );
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped() {
        let mut raw = sample().encode_to_vec();
        // field 9 varint, field 10 fixed64, field 11 group holding field 1
        // varint, field 12 fixed32.
        raw.extend_from_slice(&[0x48, 0x01]);
        raw.extend_from_slice(&[0x51, 1, 2, 3, 4, 5, 6, 7, 8]);
        raw.extend_from_slice(&[0x5b, 0x08, 0x01, 0x5c]);
        raw.extend_from_slice(&[0x65, 1, 2, 3, 4]);
        assert_eq!(plain(&raw, &mut Meter::unlimited()).ok(), via_prost(&raw));
        // A group closed by another field's end tag.
        let mut bad = sample().encode_to_vec();
        bad.extend_from_slice(&[0x5b, 0x64]);
        assert!(plain(&bad, &mut Meter::unlimited()).is_err());
        assert!(via_prost(&bad).is_none());
    }

    fn arb_request() -> impl Strategy<Value = logproto::PushRequest> {
        let pair =
            ("[a-z_]{0,4}", ".{0,4}").prop_map(|(name, value)| logproto::LabelPair { name, value });
        let entry = (
            proptest::option::of((any::<i64>(), any::<i32>())),
            ".{0,12}",
            proptest::collection::vec(pair.clone(), 0..3),
            proptest::collection::vec(pair, 0..2),
        )
            .prop_map(|(ts, line, structured_metadata, parsed)| logproto::Entry {
                timestamp: ts.map(|(seconds, nanos)| logproto::Timestamp { seconds, nanos }),
                line,
                structured_metadata,
                parsed,
            });
        let stream = (
            ".{0,16}",
            proptest::collection::vec(entry, 0..4),
            any::<u64>(),
        )
            .prop_map(|(labels, entries, hash)| logproto::Stream {
                labels,
                entries,
                hash,
            });
        (proptest::collection::vec(stream, 0..3), ".{0,3}")
            .prop_map(|(streams, format)| logproto::PushRequest { streams, format })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever prost makes of a request (valid, or damaged by a few
        /// byte edits), the hand decoder makes the same, or both refuse it.
        #[test]
        fn decodes_as_prost_does(
            req in arb_request(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut raw = req.encode_to_vec();
            for (at, b) in edits {
                if !raw.is_empty() {
                    let i = at.index(raw.len());
                    raw[i] = b;
                }
            }
            if truncate && !raw.is_empty() {
                raw.truncate(cut.index(raw.len()));
            }
            let ours = plain(&raw, &mut Meter::unlimited()).ok();
            prop_assert_eq!(ours, via_prost(&raw));
        }

        /// Varints of every length, followed by any bytes (so that both
        /// the one-load path and the byte loop are taken), read as prost
        /// reads them, and what is left after them.
        #[test]
        fn varints_read_as_prost_reads_them(
            v in any::<u64>(),
            shift in 0u32..64,
            tail in proptest::collection::vec(any::<u8>(), 0..12),
            raw in proptest::collection::vec(any::<u8>(), 0..14),
        ) {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(v >> shift, &mut buf);
            let len = buf.len();
            buf.extend_from_slice(&tail);
            let mut w = wire::Wire(&buf);
            prop_assert_eq!(w.varint().ok(), Some(v >> shift));
            prop_assert_eq!(w.0.len(), buf.len() - len);
            // Any bytes: the same value, or both refuse.
            let mut w = wire::Wire(&raw);
            let mut theirs: &[u8] = &raw;
            let want = prost::encoding::decode_varint(&mut theirs).ok();
            prop_assert_eq!(w.varint().ok(), want);
            if want.is_some() {
                prop_assert_eq!(w.0.len(), theirs.len());
            }
        }
    }
}
