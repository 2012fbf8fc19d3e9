//! Block codecs: how a block's columns are compressed
//! (`ingester.chunk_encoding`). Every column of a block but the token
//! filter uses the block's codec, named by one byte in the block's head and
//! index entry (chunk version 3; older chunks are snappy throughout):
//!
//! ```text
//! 0 none    the raw bytes
//! 1 snappy  a raw snappy block (its length is in its own preamble)
//! 2 lz4     uvarint raw length | an LZ4 block (written by lz4_flex at
//!           level 0, by the reference library's high-compression
//!           matcher at levels 1 to 12; always read by the reference
//!           library, the faster decoder)
//! 3 zstd    uvarint raw length | one zstd frame
//! ```
//!
//! Decoding never trusts a claimed length: it must fit the caller's limit
//! and be reachable from the compressed size under the format's own
//! largest ratio, so a damaged column cannot make the reader reserve
//! memory its bytes could not fill.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use super::ChunkError;
use crate::encoding::{Reader, put_uvarint, snappy_len_plausible};

/// A block's codec, as stored.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Codec {
    /// Stored as is.
    None = 0,
    /// Snappy (raw format): fast, the default, what chunks before version 3
    /// hold.
    #[default]
    Snappy = 1,
    /// LZ4 block format: the fastest to decompress.
    Lz4 = 2,
    /// Zstandard: the smallest, slower to write.
    Zstd = 3,
}

impl Codec {
    /// Every codec.
    pub const ALL: [Codec; 4] = [Codec::None, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    /// The codec stored as `b`, if this build knows it.
    pub fn from_byte(b: u8) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| *c as u8 == b)
    }

    /// Its name in the configuration (`ingester.chunk_encoding`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown chunk encoding {0:?} (one of snappy, lz4, zstd, none)")]
pub struct UnknownCodec(pub String);

impl FromStr for Codec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Codec, UnknownCodec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCodec(s.to_string()))
    }
}

/// Lowest zstd level accepted (`ingester.chunk_zstd_level`).
pub const ZSTD_MIN_LEVEL: i8 = 1;
/// Highest zstd level accepted: above it zstd needs much more memory per
/// compression for little gain on logs.
pub const ZSTD_MAX_LEVEL: i8 = 19;
/// zstd's own default level, kept as the store's: with compressed token
/// filters it makes chunks 1.86x smaller than snappy's on the loghub
/// replay, and level 4 halves the write speed for about 2% more
/// (BENCHMARKS.md, chunk codecs).
pub const ZSTD_DEFAULT_LEVEL: i8 = 3;

/// LZ4's fast matcher (`ingester.chunk_lz4_level: 0`, the default): the
/// cheapest to write.
pub const LZ4_FAST_LEVEL: i8 = 0;
/// Highest LZ4 level accepted, the reference library's highest
/// high-compression level. Levels 1 to 12 take its high-compression
/// matcher; from 3 it finds longer matches, which make blocks smaller and
/// faster to decode (at 3, chunks of log lines 1.25x smaller and scans
/// about 1.3x faster, at a third of the fast matcher's write speed;
/// BENCHMARKS.md, chunk codecs).
pub const LZ4_MAX_LEVEL: i8 = 12;

/// How new blocks are written: the codec and, for zstd and lz4, its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// The codec.
    pub codec: Codec,
    /// The zstd level (ignored by the other codecs).
    pub zstd_level: i8,
    /// The LZ4 level: [`LZ4_FAST_LEVEL`] or a high-compression level up
    /// to [`LZ4_MAX_LEVEL`] (ignored by the other codecs).
    pub lz4_level: i8,
}

impl Default for Encoding {
    fn default() -> Encoding {
        Encoding::new(Codec::Snappy)
    }
}

impl Encoding {
    /// `codec` at its default level.
    pub const fn new(codec: Codec) -> Encoding {
        Encoding {
            codec,
            zstd_level: ZSTD_DEFAULT_LEVEL,
            lz4_level: LZ4_FAST_LEVEL,
        }
    }
}

thread_local! {
    /// One zstd compression context per thread, reused across blocks (a
    /// context costs more to set up than a small block to compress).
    static ZSTD_C: RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
    /// One snappy encoder per thread: its hash table for inputs over 1 KiB
    /// (32 KiB) is allocated once, not for every column.
    static SNAPPY: RefCell<Option<snap::raw::Encoder>> = const { RefCell::new(None) };
    /// One zstd decompression context per thread.
    static ZSTD_D: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// Appends `raw` compressed with `enc` to `out`.
pub fn compress(enc: Encoding, raw: &[u8], out: &mut Vec<u8>) {
    match enc.codec {
        Codec::None => out.extend_from_slice(raw),
        Codec::Snappy => {
            // Compression into a buffer of max_compress_len cannot fail for
            // inputs below snappy's 4 GiB limit, which block_size keeps us
            // far from; an error would leave an empty column that fails
            // to decode on read.
            into_room(snap::raw::max_compress_len(raw.len()), out, |room| {
                let mut enc = SNAPPY.take().unwrap_or_else(snap::raw::Encoder::new);
                let n = enc.compress(raw, room).unwrap_or(0);
                SNAPPY.set(Some(enc));
                n
            });
        }
        Codec::Lz4 => {
            put_uvarint(out, raw.len() as u64);
            if enc.lz4_level > LZ4_FAST_LEVEL
                && raw.len() >= LZ4_HC_MIN_INPUT
                && lz4_hc(raw, enc.lz4_level, out)
            {
                return;
            }
            // The room holds the worst case, so this cannot fail.
            into_room(
                lz4_flex::block::get_maximum_output_size(raw.len()),
                out,
                |room| lz4_flex::block::compress_into(raw, room).unwrap_or(0),
            );
        }
        Codec::Zstd => {
            put_uvarint(out, raw.len() as u64);
            let level = i32::from(enc.zstd_level);
            into_room(zstd::zstd_safe::compress_bound(raw.len()), out, |room| {
                ZSTD_C.with(|c| {
                    let mut c = c.borrow_mut();
                    let cctx = c.get_or_insert_with(zstd::zstd_safe::CCtx::create);
                    // The room holds the worst case; a failure (an
                    // allocation inside zstd) leaves a column that fails
                    // to decode.
                    cctx.compress(room, raw, level).unwrap_or(0)
                })
            });
        }
    }
}

/// Largest room a thread keeps for compressing into ([`ROOM`]): the worst
/// case of a block of up to 4 MiB (`ingester.block_size` is 256 KiB by
/// default). A larger input is compressed into `out` directly.
const ROOM_MAX: usize = (4 << 20) + (64 << 10);

thread_local! {
    /// Initialised bytes a thread compresses into before copying the
    /// result to its column. Compressing straight into the column would
    /// zero-fill the codec's worst case (about 1.17 times the input for
    /// snappy) for every column and make the block's buffer that large;
    /// the room is filled with zeros once and then written over.
    static ROOM: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `compress` on `bound` bytes of room (the codec's worst case for
/// the input) and appends the bytes it says it wrote to `out`.
fn into_room(bound: usize, out: &mut Vec<u8>, compress: impl FnOnce(&mut [u8]) -> usize) {
    if bound > ROOM_MAX {
        let at = out.len();
        out.resize(at + bound, 0);
        let n = compress(&mut out[at..]).min(bound);
        out.truncate(at + n);
        return;
    }
    let mut room = ROOM.take();
    if room.len() < bound {
        room.resize(bound, 0);
    }
    let n = compress(&mut room[..bound]).min(bound);
    out.extend_from_slice(&room[..n]);
    ROOM.set(room);
}

/// Inputs shorter than this take the fast matcher whatever the level:
/// there is nothing for a longer search to find in them, and the
/// reference library's optimal parser (levels 10 to 12) reads outside an
/// empty input.
const LZ4_HC_MIN_INPUT: usize = 64;

/// Appends `raw` as an LZ4 block from the reference library's
/// high-compression matcher at `level` to `out`. False, with `out` as it
/// was, if the library refuses (an input over its 2 GiB limit, far above
/// any block; the caller then writes the block with the fast matcher, so
/// no block is lost to a level).
fn lz4_hc(raw: &[u8], level: i8, out: &mut Vec<u8>) -> bool {
    let Ok(bound) = lz4::block::compress_bound(raw.len()) else {
        return false;
    };
    let at = out.len();
    out.resize(at + bound, 0);
    let mode = lz4::block::CompressionMode::HIGHCOMPRESSION(i32::from(level));
    match lz4::block::compress_to_buffer(raw, Some(mode), false, &mut out[at..]) {
        Ok(n) => {
            out.truncate(at + n);
            true
        }
        Err(_) => {
            out.truncate(at);
            false
        }
    }
}

/// Largest output a codec's format can produce from `compressed` bytes: a
/// claimed size above it is damage (an LZ4 sequence carries at most 255
/// bytes of match per byte; a zstd block of 128 KiB needs 4 bytes at
/// least).
fn plausible(codec: Codec, compressed: usize, claimed: usize) -> bool {
    match codec {
        Codec::None => claimed == compressed,
        Codec::Snappy => snappy_len_plausible(compressed, claimed),
        Codec::Lz4 => claimed <= compressed.saturating_mul(255).saturating_add(16),
        Codec::Zstd => claimed <= compressed.saturating_mul(32 * 1024).saturating_add(64),
    }
}

/// Decodes the LZ4 block `payload` into `out` (its claimed raw length)
/// with the reference library's bounds-checked decoder, which never reads
/// past `payload` nor writes past `out` whatever the bytes: the number of
/// bytes written, `None` when the block is malformed or does not fit.
fn lz4_decode(payload: &[u8], out: &mut [u8]) -> Option<usize> {
    // The library takes both sizes as `i32`.
    i32::try_from(payload.len()).ok()?;
    let len = i32::try_from(out.len()).ok()?;
    lz4::block::decompress_to_buffer(payload, Some(len), out).ok()
}

/// Decompresses a column of `codec` into `out` (resized to its raw
/// length), refusing a raw length above `limit`.
///
/// `out` is only zero-filled where it grows: decompression overwrites the
/// whole raw length whatever it held.
pub fn decompress(
    codec: Codec,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    what: &'static str,
) -> Result<(), ChunkError> {
    let corrupt = || ChunkError::corrupt(what);
    let (len, payload) = match codec {
        Codec::None => (input.len(), input),
        Codec::Snappy => (
            snap::raw::decompress_len(input).map_err(|_| corrupt())?,
            input,
        ),
        Codec::Lz4 | Codec::Zstd => {
            let mut r = Reader::new(input);
            let len = usize::try_from(r.uvarint(what)?).map_err(|_| corrupt())?;
            (len, &input[r.pos()..])
        }
    };
    if len > limit || !plausible(codec, payload.len(), len) {
        return Err(corrupt());
    }
    if out.len() < len {
        out.resize(len, 0);
    } else {
        out.truncate(len);
    }
    let n = match codec {
        Codec::None => {
            out.copy_from_slice(payload);
            len
        }
        Codec::Snappy => snap::raw::Decoder::new()
            .decompress(payload, out)
            .map_err(|_| corrupt())?,
        Codec::Lz4 => lz4_decode(payload, out).ok_or_else(corrupt)?,
        Codec::Zstd => ZSTD_D.with(|d| {
            let mut d = d.borrow_mut();
            let dctx = d.get_or_insert_with(zstd::zstd_safe::DCtx::create);
            dctx.decompress(&mut out[..], payload)
                .map_err(|_| corrupt())
        })?,
    };
    if n != len {
        return Err(corrupt());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Blocks lz4_flex writes read back through the reference decoder,
        /// whatever the bytes (repetitive ones make long and overlapping
        /// matches).
        #[test]
        fn lz4_blocks_round_trip(
            parts in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40), 1usize..300),
                0..20,
            ),
            level in 1..=LZ4_MAX_LEVEL,
        ) {
            let mut raw = Vec::new();
            for (bytes, times) in &parts {
                for _ in 0..*times {
                    raw.extend_from_slice(bytes);
                }
            }
            for level in [LZ4_FAST_LEVEL, level] {
                let mut col = Vec::new();
                let enc = Encoding { lz4_level: level, ..Encoding::new(Codec::Lz4) };
                compress(enc, &raw, &mut col);
                let mut back = vec![9u8; 7];
                decompress(Codec::Lz4, &col, &mut back, raw.len(), "col").unwrap();
                prop_assert_eq!(&back, &raw, "level {}", level);
                // lz4_flex's decoder reads them too: the blocks are plain
                // LZ4 whoever wrote them.
                let mut r = Reader::new(&col);
                r.uvarint("col").unwrap();
                let theirs = lz4_flex::block::decompress(&col[r.pos()..], raw.len()).unwrap();
                prop_assert_eq!(theirs, raw.clone());
            }
        }

        /// Any bytes as an LZ4 column: an error or exactly the claimed
        /// length, never a panic or a read or write out of bounds; where
        /// lz4_flex's own decoder accepts a block, both give the same bytes.
        #[test]
        fn lz4_columns_of_any_bytes(
            claim in 0usize..2000,
            block in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut col = Vec::new();
            put_uvarint(&mut col, claim as u64);
            col.extend_from_slice(&block);
            let mut back = Vec::new();
            if decompress(Codec::Lz4, &col, &mut back, 4096, "col").is_ok() {
                prop_assert_eq!(back.len(), claim);
                let mut theirs = vec![0u8; claim];
                if lz4_flex::block::decompress_into(&block, &mut theirs).ok() == Some(claim) {
                    prop_assert_eq!(back, theirs);
                }
            }
        }
    }

    #[test]
    fn lz4_decoder_refuses_what_does_not_fit() {
        let raw = sample();
        let mut col = Vec::new();
        compress(Encoding::new(Codec::Lz4), &raw, &mut col);
        let mut r = Reader::new(&col);
        r.uvarint("col").unwrap();
        let payload = &col[r.pos()..];
        let mut out = vec![0u8; raw.len()];
        assert_eq!(lz4_decode(payload, &mut out), Some(raw.len()));
        assert_eq!(out, raw);
        // An output one byte short, a payload cut short: errors.
        assert_eq!(lz4_decode(payload, &mut out[..raw.len() - 1]), None);
        assert_eq!(lz4_decode(&payload[..payload.len() - 1], &mut out), None);
        assert_eq!(lz4_decode(&[], &mut out), None);
        // A longer claim than the block holds: fewer bytes, which
        // `decompress` refuses.
        let mut more = vec![0u8; raw.len() + 10];
        assert_eq!(lz4_decode(payload, &mut more), Some(raw.len()));
        let mut claim = Vec::new();
        put_uvarint(&mut claim, raw.len() as u64 + 10);
        claim.extend_from_slice(payload);
        assert!(decompress(Codec::Lz4, &claim, &mut more, usize::MAX, "col").is_err());
    }

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..2000 {
            v.extend_from_slice(
                format!("level=info msg=\"request {i}\" took={}ms\n", i % 97).as_bytes(),
            );
        }
        v
    }

    #[test]
    fn every_codec_round_trips() {
        for raw in [Vec::new(), b"x".to_vec(), sample()] {
            for codec in Codec::ALL {
                for (level, lz4_level) in [(1, 0), (3, 1), (19, 3), (3, 12)] {
                    let enc = Encoding {
                        codec,
                        zstd_level: level,
                        lz4_level,
                    };
                    let mut out = vec![7u8; 3];
                    compress(enc, &raw, &mut out);
                    assert_eq!(&out[..3], &[7, 7, 7], "appends");
                    let mut back = vec![1u8; 5];
                    decompress(codec, &out[3..], &mut back, raw.len(), "col").unwrap();
                    assert_eq!(back, raw, "{codec} level {level}");
                    // One byte less of limit is refused.
                    if !raw.is_empty() {
                        assert!(
                            decompress(codec, &out[3..], &mut back, raw.len() - 1, "col").is_err()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn codecs_compress_and_zstd_compresses_most() {
        let raw = sample();
        let size = |c| {
            let mut out = Vec::new();
            compress(Encoding::new(c), &raw, &mut out);
            out.len()
        };
        assert_eq!(size(Codec::None), raw.len());
        assert!(size(Codec::Lz4) < raw.len() / 2);
        assert!(size(Codec::Zstd) < size(Codec::Snappy));
    }

    #[test]
    fn short_inputs_round_trip_at_every_lz4_level() {
        let raw = sample();
        for len in 0..=LZ4_HC_MIN_INPUT + 1 {
            for level in LZ4_FAST_LEVEL..=LZ4_MAX_LEVEL {
                let enc = Encoding {
                    lz4_level: level,
                    ..Encoding::new(Codec::Lz4)
                };
                let mut col = Vec::new();
                compress(enc, &raw[..len], &mut col);
                let mut back = Vec::new();
                decompress(Codec::Lz4, &col, &mut back, len, "col").unwrap();
                assert_eq!(back, &raw[..len], "{len} bytes at level {level}");
            }
        }
    }

    #[test]
    fn a_high_lz4_level_writes_smaller_blocks() {
        let raw = sample();
        let size = |level| {
            let mut out = Vec::new();
            compress(
                Encoding {
                    lz4_level: level,
                    ..Encoding::new(Codec::Lz4)
                },
                &raw,
                &mut out,
            );
            out.len()
        };
        assert!(size(3) < size(LZ4_FAST_LEVEL), "{} {}", size(3), size(0));
        assert!(size(LZ4_MAX_LEVEL) <= size(3));
    }

    #[test]
    fn names_parse_and_bytes_map_back() {
        for c in Codec::ALL {
            assert_eq!(c.name().parse::<Codec>(), Ok(c));
            assert_eq!(Codec::from_byte(c as u8), Some(c));
        }
        assert_eq!(Codec::from_byte(4), None);
        assert!("gzip".parse::<Codec>().is_err());
        assert_eq!(Codec::default(), Codec::Snappy);
    }

    #[test]
    fn damaged_columns_are_errors_not_panics() {
        let raw = sample();
        for codec in Codec::ALL {
            let mut col = Vec::new();
            compress(Encoding::new(codec), &raw, &mut col);
            let mut back = Vec::new();
            for i in 0..col.len().min(64) {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = col.clone();
                    bad[i] ^= flip;
                    // Either an error or some bytes within the limit (a
                    // flipped literal decodes; checksums catch that).
                    if decompress(codec, &bad, &mut back, raw.len(), "col").is_ok() {
                        assert_eq!(back.len(), raw.len());
                    }
                }
            }
            for cut in [0, 1, col.len() / 2, col.len() - 1] {
                let _ = decompress(codec, &col[..cut], &mut back, raw.len(), "col");
            }
        }
        // A huge claim from a few bytes is refused before any allocation.
        let mut claim = Vec::new();
        put_uvarint(&mut claim, 1 << 40);
        claim.extend_from_slice(&[0, 0, 0]);
        for codec in [Codec::Lz4, Codec::Zstd] {
            assert!(decompress(codec, &claim, &mut Vec::new(), usize::MAX, "col").is_err());
        }
    }
}
