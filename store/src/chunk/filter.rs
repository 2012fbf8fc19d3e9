//! The per-block token filter: a Bloom filter over the 4-grams of the
//! block's lines, so that a literal line filter can skip blocks that cannot
//! contain it without decompressing them.
//!
//! What is indexed: every run of ASCII letters and digits in the block's
//! line bytes is lower-cased, and each 4-byte window inside a run is added.
//! A literal needle contains runs of letters and digits too; any 4-byte
//! window inside one of the needle's runs also lies inside a run of every
//! line that contains the needle, so if one such window is absent from the
//! filter, no line of the block contains the needle. Windows that cross a
//! line boundary are added as well (the lines column is contiguous); they
//! only add false positives. Lower-casing makes the same filter serve
//! case-insensitive literals. Needles without a 4-character run cannot be
//! checked and never skip a block.
//!
//! Layout: `u8 version (1) | u8 hash count k | u32le bit count m (power of
//! two) | m/8 bytes of bits`.

/// Length of the grams.
const GRAM: usize = 4;

/// Builds the filter of a block whose line bytes are `lines`. The size is
/// proportional to the bytes (about one bit per 8 bytes, at least 4 Kibit,
/// at most 1 Mibit): enough that a needle of a few words is rejected by
/// almost every block that lacks it, small next to the compressed lines.
pub fn build(lines: &[u8]) -> Vec<u8> {
    let bits = (lines.len() / 8).clamp(4096, 1 << 20).next_power_of_two();
    let k: u8 = 2;
    let mut out = vec![0u8; 6 + bits / 8];
    out[0] = 1;
    out[1] = k;
    out[2..6].copy_from_slice(&(bits as u32).to_le_bytes());
    let mask = (bits - 1) as u64;
    let bitmap = &mut out[6..];
    for_each_gram(lines, |g| {
        let (h1, h2) = hashes(g);
        for i in 0..u64::from(k) {
            let bit = (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize;
            bitmap[bit >> 3] |= 1 << (bit & 7);
        }
    });
    out
}

/// Whether a block with this filter may contain a line containing
/// `needle` (compared ignoring ASCII case). `true` when unsure, including
/// for a malformed filter.
pub fn may_contain(filter: &[u8], needle: &[u8]) -> bool {
    if filter.len() < 6 || filter[0] != 1 {
        return true;
    }
    let k = u64::from(filter[1]);
    let bits = u32::from_le_bytes([filter[2], filter[3], filter[4], filter[5]]) as usize;
    let bitmap = &filter[6..];
    if bits == 0 || !bits.is_power_of_two() || bitmap.len() * 8 < bits {
        return true;
    }
    let mask = (bits - 1) as u64;
    let mut all = true;
    for_each_needle_gram(needle, |g| {
        if !all {
            return;
        }
        let (h1, h2) = hashes(g);
        for i in 0..k {
            let bit = (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize;
            if bitmap[bit >> 3] & (1 << (bit & 7)) == 0 {
                all = false;
                return;
            }
        }
    });
    all
}

/// Whether a needle has at least one gram the filter can check.
pub fn is_checkable(needle: &[u8]) -> bool {
    let mut any = false;
    for_each_needle_gram(needle, |_| any = true);
    any
}

#[inline]
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Calls `f` with every 4-gram inside a word run of the block bytes.
#[inline]
fn for_each_gram(bytes: &[u8], mut f: impl FnMut(u32)) {
    let mut gram: u32 = 0;
    let mut run = 0usize;
    for &b in bytes {
        if is_word(b) {
            gram = (gram << 8) | u32::from(b.to_ascii_lowercase());
            run += 1;
            if run >= GRAM {
                f(gram);
            }
        } else {
            run = 0;
        }
    }
}

/// Like [`for_each_gram`] for a needle: only grams inside its runs, and
/// never across the needle's own boundaries.
fn for_each_needle_gram(needle: &[u8], f: impl FnMut(u32)) {
    for_each_gram(needle, f);
}

#[inline]
fn hashes(gram: u32) -> (u64, u64) {
    let h = u64::from(gram).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let h = h ^ (h >> 29);
    let h1 = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let h2 = (h1 >> 32) | 1;
    (h1 ^ (h1 >> 31), h2)
}

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
        assert!(is_checkable(b"abcd"));
    }

    #[test]
    fn malformed_filters_never_skip() {
        assert!(may_contain(&[], b"anything"));
        assert!(may_contain(&[1, 2, 255, 0, 0, 0], b"anything"));
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
