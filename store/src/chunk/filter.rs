//! The per-block token filter: a Bloom filter over the 4-grams of the
//! block's lines, so that a literal line filter can skip blocks that cannot
//! contain it without decompressing them.
//!
//! What is indexed: every run of ASCII letters and digits in the block's
//! line bytes is lower-cased, and every other 4-byte window inside a run
//! (the windows starting at even offsets from the run's start) is added;
//! half the windows halve the cost of building the filter at ingest.
//!
//! A literal needle contains runs of letters and digits too. Every run of
//! the needle but the first is preceded by a non-word byte, so in a
//! matching line it starts exactly where a line run starts: its windows at
//! even offsets must all be in the filter. The first run may start in the
//! middle of a line run, at an unknown offset: then either its even or its
//! odd windows must all be present. If neither holds for some run, no line
//! of the block contains the needle. Windows that cross a
//! line boundary are added as well (the lines column is contiguous); they
//! only add false positives. Lower-casing makes the same filter serve
//! case-insensitive literals. Needles without a 4-character run cannot be
//! checked and never skip a block.
//!
//! Layout: `u8 version (3) | u8 hash count (2) | u32le bit count m (a power
//! of two) | m/8 bytes of bits`.

/// Length of the grams.
const GRAM: u32 = 4;

/// Builds the filter of a block whose line bytes are `lines`. The size is
/// proportional to the bytes (about one bit per 8 bytes, at least 4 Kibit,
/// at most 1 Mibit): enough that a needle of a few words is rejected by
/// almost every block that lacks it, small next to the compressed lines.
pub fn build(lines: &[u8]) -> Vec<u8> {
    let bits = (lines.len() / 8).clamp(4096, 1 << 20).next_power_of_two();
    let mut out = vec![0u8; 6 + bits / 8];
    out[0] = VERSION;
    out[1] = 2;
    out[2..6].copy_from_slice(&(bits as u32).to_le_bytes());
    let shift = 64 - bits.trailing_zeros();
    let bitmap = &mut out[6..];
    let mut gram: u32 = 0;
    let mut run = 0u32;
    for &byte in lines {
        let c = WORD[usize::from(byte)];
        if c == 0 {
            run = 0;
            continue;
        }
        gram = (gram << 8) | u32::from(c);
        run += 1;
        // Windows ending at run offsets 3, 5, 7, ... start at even offsets.
        if run >= GRAM && run & 1 == 0 {
            let (a, b) = positions(gram, shift);
            bitmap[a >> 3] |= 1 << (a & 7);
            bitmap[b >> 3] |= 1 << (b & 7);
        }
    }
    out
}

/// Whether a block with this filter may contain a line containing
/// `needle` (compared ignoring ASCII case). `true` when unsure, including
/// for a malformed filter.
pub fn may_contain(filter: &[u8], needle: &[u8]) -> bool {
    if filter.len() < 6 || filter[0] != VERSION || filter[1] != 2 {
        return true;
    }
    let bits = u32::from_le_bytes([filter[2], filter[3], filter[4], filter[5]]) as usize;
    let bitmap = &filter[6..];
    if !(64..=1 << 30).contains(&bits) || !bits.is_power_of_two() || bitmap.len() * 8 < bits {
        return true;
    }
    let shift = 64 - bits.trailing_zeros();
    let has = |g: u32| {
        let (a, b) = positions(g, shift);
        bitmap[a >> 3] & (1 << (a & 7)) != 0 && bitmap[b >> 3] & (1 << (b & 7)) != 0
    };
    // For each run of the needle: whether its windows at even / odd offsets
    // are all present.
    let mut first = true;
    let (mut even, mut odd) = (true, true);
    let mut gram: u32 = 0;
    let mut run = 0u32;
    let end_run = |first: bool, even: bool, odd: bool, run: u32| -> bool {
        if run < GRAM {
            true
        } else if first {
            even || odd
        } else {
            even
        }
    };
    for (i, &byte) in needle.iter().enumerate() {
        let c = WORD[usize::from(byte)];
        if c == 0 {
            if run > 0 {
                if !end_run(first, even, odd, run) {
                    return false;
                }
                first = false;
            } else if i == 0 {
                first = false;
            }
            run = 0;
            even = true;
            odd = true;
            continue;
        }
        gram = (gram << 8) | u32::from(c);
        run += 1;
        if run >= GRAM {
            let present = has(gram);
            if run & 1 == 0 {
                even &= present;
            } else {
                odd &= present;
            }
        }
    }
    end_run(first, even, odd, run)
}

/// Filter format version.
const VERSION: u8 = 3;

/// Two bit positions for a gram from one multiplicative hash: two
/// different `log2(bits)`-bit windows of the 64-bit product.
#[inline]
fn positions(gram: u32, shift: u32) -> (usize, usize) {
    let h = u64::from(gram).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let a = h >> shift;
    let b = (h >> (shift - 20)) & ((1u64 << (64 - shift)) - 1);
    (a as usize, b as usize)
}

/// Whether a needle has a run the filter can check: 4 letters or digits
/// after a non-word byte, or 5 at the needle's start.
pub fn is_checkable(needle: &[u8]) -> bool {
    let mut run = 0usize;
    let mut first = true;
    for (i, &b) in needle.iter().enumerate() {
        if WORD[usize::from(b)] != 0 {
            run += 1;
            if run >= if first { 5 } else { 4 } {
                return true;
            }
        } else {
            if run > 0 || i == 0 {
                first = false;
            }
            run = 0;
        }
    }
    false
}

/// Lower-cased value of letters and digits; 0 for every other byte.
static WORD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            t[i] = b.to_ascii_lowercase();
        }
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            "a lone 4-letter edge run has unknown parity"
        );
        assert!(is_checkable(b"abcde"));
        assert!(is_checkable(b"=abcd"));
    }

    #[test]
    fn malformed_filters_never_skip() {
        assert!(may_contain(&[], b"anything"));
        assert!(may_contain(&[3, 2, 255, 0, 0, 0], b"anything"));
        assert!(may_contain(&[9, 2, 0, 16, 0, 0], b"anything"));
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
    }
}
