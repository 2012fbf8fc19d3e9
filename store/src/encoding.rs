//! Little binary helpers shared by the on-disk formats (WAL, chunks,
//! index): LEB128 varints, zigzag, length-prefixed strings, and a reader
//! that turns every out-of-bounds access into an error instead of a panic.

/// Whether a snappy block of `compressed` bytes can decompress to
/// `claimed` bytes. The most a snappy element produces per input byte is a
/// 3-byte copy of 64 bytes, so a block never expands more than 64/3 times;
/// a larger claim (in its header, which costs a few bytes to forge) is
/// corrupt, and refusing it before the output buffer is sized keeps a
/// damaged file or body from reserving memory it does not account for.
pub fn snappy_len_plausible(compressed: usize, claimed: usize) -> bool {
    claimed <= compressed.saturating_mul(22)
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a length-prefixed byte string.
pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// The levels level discovery gives. Metadata holding only
/// `detected_level` with one of them, what almost every entry carries, is
/// encoded once for all entries ([`fixed_level_meta`]) and written to the
/// WAL as one byte (`wal::record`).
pub const FIXED_LEVELS: [&str; 8] = [
    "trace", "debug", "info", "warn", "error", "critical", "fatal", "unknown",
];

/// The encoded metadata (`larch_query::encode_metadata`'s form) holding
/// only `detected_level=FIXED_LEVELS[i]`.
pub fn fixed_level_meta(i: usize) -> Option<&'static [u8]> {
    static PAIRS: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(|| {
        FIXED_LEVELS
            .iter()
            .map(|l| {
                let mut b = Vec::new();
                put_bytes(&mut b, larch_query::level::DETECTED_LEVEL.as_bytes());
                put_bytes(&mut b, l.as_bytes());
                b
            })
            .collect()
    });
    let pairs: &'static [Vec<u8>] = &PAIRS;
    pairs.get(i).map(Vec::as_slice)
}

/// Which [`fixed_level_meta`] encoding `meta` is, if any: read as that
/// encoding is laid out (the name's length and bytes, the level's length
/// and bytes, nothing after), not compared with each of them.
pub fn fixed_level_index(meta: &[u8]) -> Option<usize> {
    let name = larch_query::level::DETECTED_LEVEL.as_bytes();
    let rest = meta.strip_prefix(&[name.len() as u8])?.strip_prefix(name)?;
    let (&len, word) = rest.split_first()?;
    if usize::from(len) != word.len() {
        return None;
    }
    FIXED_LEVELS.iter().position(|l| l.as_bytes() == word)
}

/// Malformed bytes: what was being read and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} at byte {offset}")]
pub struct Malformed {
    /// What was being decoded.
    pub what: &'static str,
    /// Offset of the failure within the decoded buffer.
    pub offset: usize,
}

/// A bounds-checked cursor over bytes.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from the start.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn err(&self, what: &'static str) -> Malformed {
        Malformed {
            what,
            offset: self.pos,
        }
    }

    /// Reads an unsigned varint.
    pub fn uvarint(&mut self, what: &'static str) -> Result<u64, Malformed> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = *self.buf.get(self.pos).ok_or_else(|| self.err(what))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(self.err(what));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err(what));
            }
        }
    }

    /// Reads a zigzag varint.
    pub fn varint(&mut self, what: &'static str) -> Result<i64, Malformed> {
        let u = self.uvarint(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads an unsigned varint that must fit `usize` and `limit`.
    pub fn len(&mut self, what: &'static str, limit: usize) -> Result<usize, Malformed> {
        let v = self.uvarint(what)?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= limit)
            .ok_or_else(|| self.err(what))
    }

    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(s)
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], Malformed> {
        let n = self.len(what, self.remaining())?;
        self.take(n, what)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self, what: &'static str) -> Result<&'a str, Malformed> {
        let at = self.pos;
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|_| Malformed { what, offset: at })
    }

    /// Reads a little-endian u32.
    pub fn u32le(&mut self, what: &'static str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64.
    pub fn u64le(&mut self, what: &'static str) -> Result<u64, Malformed> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_levels_are_found_by_their_encoding_only() {
        for (i, level) in FIXED_LEVELS.iter().enumerate() {
            let meta = fixed_level_meta(i).unwrap();
            assert_eq!(fixed_level_index(meta), Some(i), "{level}");
            let mut built = Vec::new();
            put_bytes(&mut built, b"detected_level");
            put_bytes(&mut built, level.as_bytes());
            assert_eq!(meta, built.as_slice());
            // Anything after, or a pair before, is not the lone pair.
            let mut longer = built.clone();
            longer.push(0);
            assert_eq!(fixed_level_index(&longer), None);
            let mut two = Vec::new();
            put_bytes(&mut two, b"k");
            put_bytes(&mut two, b"v");
            two.extend_from_slice(&built);
            assert_eq!(fixed_level_index(&two), None);
        }
        assert_eq!(fixed_level_meta(FIXED_LEVELS.len()), None);
        for other in ["notice", "INFO", "", "informational"] {
            let mut m = Vec::new();
            put_bytes(&mut m, b"detected_level");
            put_bytes(&mut m, other.as_bytes());
            assert_eq!(fixed_level_index(&m), None, "{other}");
        }
        let mut m = Vec::new();
        put_bytes(&mut m, b"level");
        put_bytes(&mut m, b"info");
        assert_eq!(fixed_level_index(&m), None);
        assert_eq!(fixed_level_index(&[]), None);
        assert_eq!(fixed_level_index(&[14]), None);
    }

    #[test]
    fn snappy_expansion_bound_holds_for_the_most_compressible_input() {
        for n in [0usize, 1, 100, 65_536, 1 << 20, 5 << 20] {
            let raw = vec![0u8; n];
            let c = snap::raw::Encoder::new()
                .compress_vec(&raw)
                .unwrap_or_default();
            assert!(
                snappy_len_plausible(c.len(), n),
                "{n} bytes from {}",
                c.len()
            );
        }
        // A header claiming 1 GiB in a few bytes.
        let mut forged = Vec::new();
        put_uvarint(&mut forged, 1 << 30);
        forged.extend_from_slice(&[0; 8]);
        assert!(!snappy_len_plausible(forged.len(), 1 << 30));
    }

    proptest! {
        #[test]
        fn varints_round_trip(u in any::<u64>(), i in any::<i64>(), s in ".*") {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, u);
            put_varint(&mut buf, i);
            put_bytes(&mut buf, s.as_bytes());
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.uvarint("u").unwrap(), u);
            prop_assert_eq!(r.varint("i").unwrap(), i);
            prop_assert_eq!(r.str("s").unwrap(), s.as_str());
            prop_assert!(r.is_empty());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.uvarint("a");
            let _ = r.str("b");
            let _ = r.u64le("c");
            let _ = r.len("d", 10);
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let buf = [0xffu8; 11];
        assert!(Reader::new(&buf).uvarint("x").is_err());
        assert!(Reader::new(&[0x80]).uvarint("x").is_err());
    }
}
