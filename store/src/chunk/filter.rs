//! The per-block token filter: a Bloom filter over the 4-grams of the
//! block's lines, so that a literal line filter can skip blocks that cannot
//! contain it without decompressing them.
//!
//! What is indexed: every byte of the block's line bytes is mapped to its
//! lower-cased value if it is an ASCII letter or digit, else to 0; every
//! 4-byte window of that map that starts at an even offset of the lines
//! column and holds no 0 is added. Half the windows halve the cost of
//! building the filter at ingest, and tying them to the column's offsets
//! (not to the start of each word) lets the build run without a branch per
//! byte: a pass that marks the letters and digits (which the compiler
//! vectorises), then a mask of the windows of four marked bytes, 64
//! offsets at a time, whose set bits at even offsets are the windows added
//! (about a third of them in log lines, so the others cost no branch of
//! their own). Such a window's mapped bytes are its bytes with bit 5 set.
//!
//! A literal needle maps the same way. In a matching line it sits at some
//! offset of the column, even or odd: if even, its windows at even offsets
//! (of the needle) are all in the filter, if odd, those at odd offsets. If
//! neither set is all present, no line of the block contains the needle.
//! Windows that cross a line boundary are added as well (the lines column
//! is contiguous); they only add false positives. Lower-casing makes the
//! same filter serve case-insensitive literals. A needle without a window
//! of each parity (at least 5 letters and digits in a row, or two runs of 4
//! at offsets of different parity) cannot be checked and never skips a
//! block.
//!
//! Each window sets two bits of one 64-bit word (a blocked Bloom filter:
//! one memory access per window), word and bits taken from one
//! multiplicative hash.
//!
//! Layout: `u8 version (4) | u8 hash count (2) | u32le bit count m (a power
//! of two, at least 64) | m/8 bytes of bits (64-bit words, little-endian)`.
//! A filter of another version never skips a block.
//!
//! As stored in a zstd block, the same filter compressed (version 5):
//! `u8 5 | u8 codec (3, zstd) | the version 4 filter, compressed as the
//! block's columns are`. The filters are sparse (a few to twenty percent
//! of their bits set), and raw they made about 15% of a zstd chunk;
//! compressed they take about 60% of that. Blocks of the faster codecs keep
//! the raw filter, checked without any decompression. [`open`] gives the
//! version 4 filter of either; a reader that does not know version 5
//! never skips such a block (a slower answer, never a wrong one).

use super::codec::{self, Codec, Encoding};

/// Length of the windows.
const GRAM: usize = 4;

/// Bytes of the lines column marked at a time while building (even).
const MAP_PIECE: usize = 4096;

/// Bytes the window mask reads past a piece's last window start: the
/// rest of its 64 offsets and the 8 bytes after them.
const MASK_REACH: usize = 64 + 8;

/// The even bit positions of a 64-bit mask.
const EVEN_OFFSETS: u64 = 0x5555_5555_5555_5555;

/// Filter format version.
const VERSION: u8 = 4;

/// Version of a filter stored compressed ([`build_stored`]).
const VERSION_COMPRESSED: u8 = 5;

/// Largest version 4 filter [`build`] makes.
const MAX_LEN: usize = 6 + (1 << 20) / 8;

/// The filter of a block whose line bytes are `lines`, as stored in a
/// block written with `enc`: compressed (version 5) for zstd, else as
/// [`build`] makes it.
pub fn build_stored(lines: &[u8], enc: Encoding) -> Vec<u8> {
    let raw = build(lines);
    if enc.codec != Codec::Zstd {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() / 2 + 16);
    out.push(VERSION_COMPRESSED);
    out.push(enc.codec as u8);
    codec::compress(enc, &raw, &mut out);
    out
}

/// The version 4 filter of a stored one: itself, or decompressed into
/// `scratch` (version 5). A filter that does not decompress gives an empty
/// slice, which never skips a block.
pub fn open<'a>(stored: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    match stored {
        [VERSION_COMPRESSED, c, payload @ ..] => {
            let ok = Codec::from_byte(*c).is_some_and(|c| {
                codec::decompress(c, payload, scratch, MAX_LEN, "filter column").is_ok()
            });
            if ok { scratch.as_slice() } else { &[] }
        }
        _ => stored,
    }
}

/// Builds the filter of a block whose line bytes are `lines`. The size is
/// proportional to the bytes (about one bit per 8 bytes, at least 4 Kibit,
/// at most 1 Mibit): enough that a needle of a few words is rejected by
/// almost every block that lacks it, small next to the compressed lines.
pub fn build(lines: &[u8]) -> Vec<u8> {
    let bits = (lines.len() / 8).clamp(4096, 1 << 20).next_power_of_two();
    let mut words = vec![0u64; bits / 64];
    let word_shift = 64 - (bits / 64).trailing_zeros();
    let last = words.len() - 1;
    // The column is read a piece at a time (pieces start at even offsets
    // and overlap by the 3 bytes a window reaches past them). A pass the
    // compiler vectorises marks each byte of the piece that is a letter or
    // a digit with a 1 (past the piece's bytes the buffer holds 0s, which
    // no window keeps). A window of four marked bytes maps to its bytes
    // with bit 5 set: that lower-cases a letter and leaves a digit as it
    // is.
    let mut marks = [0u8; MAP_PIECE + MASK_REACH];
    let mut start = 0;
    while start + GRAM <= lines.len() {
        let end = (start + MAP_PIECE + GRAM - 1).min(lines.len());
        let piece = &lines[start..end];
        let n = piece.len();
        for (m, &b) in marks[..n].iter_mut().zip(piece) {
            *m = u8::from(word_byte(b) != 0);
        }
        marks[n..].fill(0);
        // Window starts of this piece: the even offsets below MAP_PIECE
        // (the next piece starts there). About two thirds of the windows
        // of log lines hold a byte that is neither; a mask of the kept
        // ones, 64 offsets at a time, visits only those.
        let starts = (n + 1 - GRAM).min(MAP_PIECE);
        let mut base = 0;
        while base < starts {
            let marked = mark_bits(&marks[base..base + 64])
                | (mark_bits8(&marks[base + 64..base + 72]) << 64);
            let whole = marked & (marked >> 1) & (marked >> 2) & (marked >> 3);
            let mut keep = whole as u64 & EVEN_OFFSETS;
            if starts - base < 64 {
                keep &= (1u64 << (starts - base)) - 1;
            }
            while keep != 0 {
                let at = base + keep.trailing_zeros() as usize;
                let w = &piece[at..at + GRAM];
                let gram = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) | 0x2020_2020;
                let h = hash(gram);
                // One shift: a built filter has at least 64 words.
                words[(h >> word_shift) as usize & last] |= bits_of(h);
                keep &= keep - 1;
            }
            base += 64;
        }
        start += MAP_PIECE;
    }
    let mut out = Vec::with_capacity(6 + bits / 8);
    out.push(VERSION);
    out.push(2);
    out.extend_from_slice(&(bits as u32).to_le_bytes());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// Whether a block with this filter may contain a line containing
/// `needle` (compared ignoring ASCII case). `true` when unsure, including
/// for a malformed filter or one of another version.
pub fn may_contain(filter: &[u8], needle: &[u8]) -> bool {
    if filter.len() < 6 || filter[0] != VERSION || filter[1] != 2 {
        return true;
    }
    let bits = u32::from_le_bytes([filter[2], filter[3], filter[4], filter[5]]) as usize;
    let bitmap = &filter[6..];
    if !(64..=1 << 30).contains(&bits) || !bits.is_power_of_two() || bitmap.len() * 8 < bits {
        return true;
    }
    let word_shift = 64 - (bits / 64).trailing_zeros();
    let has = |gram: u32| {
        let (word, mask) = position(gram, word_shift);
        let at = word * 8;
        let mut b = [0u8; 8];
        b.copy_from_slice(&bitmap[at..at + 8]);
        u64::from_le_bytes(b) & mask == mask
    };
    // Whether all windows at even / odd offsets of the needle are present
    // (vacuously so for a parity without windows).
    let mut all = [true; 2];
    let mut gram: u32 = 0;
    for (i, &b) in needle.iter().enumerate() {
        gram = (gram >> 8) | (u32::from(word_byte(b)) << 24);
        if i + 1 >= GRAM && !has_zero_byte(gram) {
            let parity = (i + 1 - GRAM) & 1;
            if all[parity] && !has(gram) {
                all[parity] = false;
                if !all[1 - parity] {
                    return false;
                }
            }
        }
    }
    all[0] || all[1]
}

/// Whether a needle has a window of each parity, so that the filter can
/// reject it.
pub fn is_checkable(needle: &[u8]) -> bool {
    let mut seen = [false; 2];
    let mut run = 0usize;
    for (i, &b) in needle.iter().enumerate() {
        run = if word_byte(b) == 0 { 0 } else { run + 1 };
        if run >= GRAM {
            seen[(i + 1 - GRAM) & 1] = true;
            if seen[0] && seen[1] {
                return true;
            }
        }
    }
    false
}

/// Calls `f` with every window of `bytes` at every offset (not only the
/// even ones the filter keeps), mapped as the filter maps them and holding
/// no 0: the terms of the object store's term index
/// (`objstore::terms`), so that the filter and the index tokenise alike.
/// A line containing a literal contains every window of the literal.
pub fn for_each_window(bytes: &[u8], mut f: impl FnMut(u32)) {
    let mut gram: u32 = 0;
    let mut run = 0usize;
    for &b in bytes {
        let m = word_byte(b);
        gram = (gram >> 8) | (u32::from(m) << 24);
        run = if m == 0 { 0 } else { run + 1 };
        if run >= GRAM {
            f(gram);
        }
    }
}

/// The byte a window of [`for_each_window`] holds at `i` (0 to 3): a
/// lower-case ASCII letter or a digit.
pub fn window_byte(gram: u32, i: usize) -> u8 {
    (gram >> (8 * i)) as u8
}

/// The lower-cased value of an ASCII letter or digit; 0 for every other
/// byte. Arithmetic rather than a table, so that mapping a buffer
/// vectorises.
#[inline]
fn word_byte(b: u8) -> u8 {
    let lower = b | 0x20;
    if lower.wrapping_sub(b'a') < 26 {
        lower
    } else if b.wrapping_sub(b'0') < 10 {
        b
    } else {
        0
    }
}

/// Bit `i` set when byte `i` of `marks` (64 of them, each 0 or 1) is 1.
#[inline]
fn mark_bits(marks: &[u8]) -> u128 {
    let mut bits = 0u128;
    for (i, eight) in marks.chunks_exact(8).enumerate() {
        bits |= mark_bits8(eight) << (8 * i);
    }
    bits
}

/// Bit `i` set when byte `i` of `eight` (8 bytes, each 0 or 1) is 1.
#[inline]
fn mark_bits8(eight: &[u8]) -> u128 {
    let mut b = [0u8; 8];
    b.copy_from_slice(eight);
    // One multiply gathers the eight low bits into the top byte, byte
    // i's at bit 56 + i (no two partial products meet, so nothing
    // carries).
    u128::from(u64::from_le_bytes(b).wrapping_mul(0x0102_0408_1020_4080) >> 56)
}

/// Whether any of the four bytes of `x` is 0.
#[inline]
fn has_zero_byte(x: u32) -> bool {
    x.wrapping_sub(0x0101_0101) & !x & 0x8080_8080 != 0
}

/// The 64-bit word and the two bits in it for a window, from one
/// multiplicative hash: the word from the top bits, the bits from the
/// bottom twelve.
#[inline]
fn position(gram: u32, word_shift: u32) -> (usize, u64) {
    let h = hash(gram);
    // Two shifts: a filter of a single word (64 bits) shifts by 64 in all.
    let word = ((h >> 1) >> (word_shift - 1)) as usize;
    (word, bits_of(h))
}

/// The multiplicative hash of a window.
#[inline]
fn hash(gram: u32) -> u64 {
    u64::from(gram).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The two bits a window of hash `h` sets in its word.
#[inline]
fn bits_of(h: u64) -> u64 {
    (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stored_filter_opens_to_the_filter() {
        let lines = b"GET /api/users/42 200 took=13ms trace=7f3a9c1e\nPOST /login 401".repeat(50);
        let raw = build(&lines);
        for c in Codec::ALL {
            let stored = build_stored(&lines, Encoding::new(c));
            let mut scratch = Vec::new();
            assert_eq!(open(&stored, &mut scratch), raw.as_slice(), "{c}");
            if c == Codec::Zstd {
                assert_eq!(stored[0], VERSION_COMPRESSED);
                assert!(
                    stored.len() < raw.len() / 2,
                    "{} of {}",
                    stored.len(),
                    raw.len()
                );
                // Damaged: never skips, never panics.
                let mut bad = stored.clone();
                bad.truncate(bad.len() / 2);
                let f = open(&bad, &mut scratch);
                assert!(may_contain(f, b"absent-word-zzzz"));
                bad = stored.clone();
                bad[1] = 77;
                assert!(may_contain(open(&bad, &mut scratch), b"absent-word-zzzz"));
            } else {
                assert_eq!(stored, raw);
            }
            assert!(!may_contain(
                open(&stored, &mut scratch),
                b"absent-word-zzzz"
            ));
            assert!(may_contain(open(&stored, &mut scratch), b"trace=7f3a9c1e"));
        }
    }

    #[test]
    fn finds_present_and_rejects_absent() {
        let lines = b"GET /api/users/42 200 took=13ms trace=7f3a9c1e\nPOST /login 401";
        let f = build(lines);
        assert!(may_contain(&f, b"users/42"));
        assert!(may_contain(&f, b"7F3A9C1E"));
        assert!(may_contain(&f, b"took=13"));
        assert!(!may_contain(&f, b"deadbeef"));
        assert!(!may_contain(&f, b"timeout"));
        // Nothing checkable: never skip.
        assert!(may_contain(&f, b"=1"));
        assert!(!is_checkable(b"a b c"));
        assert!(
            !is_checkable(b"abcd"),
            "a lone 4-letter run has only one window: one parity"
        );
        assert!(is_checkable(b"abcde"));
        assert!(!is_checkable(b"=abcd"));
        assert!(is_checkable(b"user=abcd"), "windows at offsets 0 and 5");
        assert!(!is_checkable(b"user==abcd"), "windows at offsets 0 and 6");
    }

    #[test]
    fn malformed_filters_never_skip() {
        assert!(may_contain(&[], b"anything"));
        assert!(may_contain(&[4, 2, 255, 0, 0, 0], b"anything"));
        // The smallest valid filter: one word, all bits clear.
        assert!(!may_contain(
            &[4, 2, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            b"anything"
        ));
        // A filter of an older version never skips a block.
        let mut old = build(b"some words here");
        old[0] = 3;
        assert!(may_contain(&old, b"absent needle"));
        assert!(may_contain(&[9, 2, 0, 16, 0, 0], b"anything"));
    }

    /// The filter as the format defines it: every window at an even
    /// offset of the whole mapped column.
    fn build_whole(lines: &[u8]) -> Vec<u8> {
        let bits = (lines.len() / 8).clamp(4096, 1 << 20).next_power_of_two();
        let mut words = vec![0u64; bits / 64];
        let word_shift = 64 - (bits / 64).trailing_zeros();
        let mapped: Vec<u8> = lines.iter().map(|&b| word_byte(b)).collect();
        for w in mapped.windows(GRAM).step_by(2) {
            let gram = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if !has_zero_byte(gram) {
                let (word, mask) = position(gram, word_shift);
                words[word] |= mask;
            }
        }
        let mut out = vec![VERSION, 2];
        out.extend_from_slice(&(bits as u32).to_le_bytes());
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn built_piece_by_piece_as_over_the_whole_column() {
        let text: Vec<u8> = (0..3 * MAP_PIECE + 11)
            .map(|i| b"Abc9 xyz_Q7\n"[(i * 7 + i / 13) % 12])
            .collect();
        for len in [
            0,
            3,
            4,
            5,
            MAP_PIECE - 1,
            MAP_PIECE,
            MAP_PIECE + 1,
            MAP_PIECE + 3,
            MAP_PIECE + 4,
            2 * MAP_PIECE + 2,
            text.len(),
        ] {
            assert_eq!(
                build(&text[..len]),
                build_whole(&text[..len]),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn windows_at_every_offset() {
        let mut got = Vec::new();
        for_each_window(b"Ab1de-xyzw", |g| got.push(g));
        let want: Vec<u32> = [b"ab1d", b"b1de", b"xyzw"]
            .iter()
            .map(|w| u32::from_le_bytes(**w))
            .collect();
        assert_eq!(got, want);
        assert_eq!(window_byte(got[0], 2), b'1');
    }

    proptest! {
        /// No false negatives: every substring of the block is accepted.
        #[test]
        fn no_false_negatives(lines in "[ -~\n]{0,400}", start in 0usize..400, len in 0usize..40) {
            let bytes = lines.as_bytes();
            let f = build(bytes);
            let s = start.min(bytes.len());
            let e = (s + len).min(bytes.len());
            prop_assert!(may_contain(&f, &bytes[s..e]));
            prop_assert!(may_contain(&f, bytes[s..e].to_ascii_uppercase().as_slice()));
        }

        /// The build maps the column a piece at a time: the same filter as
        /// the format's definition at any length and any split of the
        /// pieces.
        #[test]
        fn built_as_defined_at_any_length(
            lines in "[ -~\n]{0,300}",
            repeat in 1usize..40,
        ) {
            let bytes = lines.as_bytes().repeat(repeat);
            prop_assert_eq!(build(&bytes), build_whole(&bytes));
        }

        /// The same for arbitrary bytes, and a needle at either parity.
        #[test]
        fn no_false_negatives_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            start in 0usize..600,
            len in 0usize..60,
        ) {
            let f = build(&bytes);
            let s = start.min(bytes.len());
            let e = (s + len).min(bytes.len());
            prop_assert!(may_contain(&f, &bytes[s..e]));
        }
    }
}
