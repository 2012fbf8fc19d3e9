//! Blocks: the unit of compression and of scanning.
//!
//! A block holds up to `block_size` bytes of lines of one stream, sorted by
//! timestamp, as separately compressed columns (see ARCHITECTURE.md), each
//! compressed with the block's codec ([`Codec`]):
//!
//! ```text
//! ts     codec( uvarint n | varint first | uvarint delta * (n-1) ) | crc32
//! lens   codec( uvarint len * n )                                  | crc32
//! lines  codec( line bytes, concatenated )                         | crc32
//! meta   codec( (uvarint len | pairs) * n )          (optional)    | crc32
//! filter token filter: raw, or compressed in a zstd block         | crc32
//!        (see [`filter`])                            (optional)
//! ```
//!
//! Keeping lines contiguous lets the engine search a whole block with one
//! call; keeping timestamps apart lets counting queries skip the lines.

use larch_query::{Block, Columns};

use super::ChunkError;
use super::codec::{self, Codec, Encoding};
use super::filter;
use crate::encoding::{Reader, put_uvarint, put_varint};

/// Number of columns.
pub const NCOLS: usize = 5;
/// Column indexes.
pub const COL_TS: usize = 0;
/// Line lengths.
pub const COL_LENS: usize = 1;
/// Line bytes.
pub const COL_LINES: usize = 2;
/// Structured metadata.
pub const COL_META: usize = 3;
/// Token filter.
pub const COL_FILTER: usize = 4;

/// Where a column lies, relative to the start of whatever buffer holds the
/// block (an in-memory block or a chunk file). Length 0 means absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColRange {
    /// Offset of the column's first byte.
    pub offset: u64,
    /// Length including the 4-byte checksum.
    pub len: u64,
}

/// What the chunk index knows of a block without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    /// Entries.
    pub entries: u32,
    /// Smallest timestamp.
    pub mint: i64,
    /// Largest timestamp.
    pub maxt: i64,
    /// Uncompressed size of the lines column.
    pub lines_size: u64,
    /// How its columns are compressed.
    pub codec: Codec,
    /// The columns.
    pub cols: [ColRange; NCOLS],
}

impl BlockMeta {
    /// Total stored size of the block's columns.
    pub fn stored_size(&self) -> u64 {
        self.cols.iter().map(|c| c.len).sum()
    }
}

/// A cut block: its columns encoded, ready to be written into a chunk.
#[derive(Debug)]
pub struct EncodedBlock {
    /// The columns, back to back; `meta.cols` offsets are relative to it.
    pub bytes: Vec<u8>,
    /// Its description.
    pub meta: BlockMeta,
}

/// The open (uncompressed) block of a stream. Entries arrive in any order
/// and are sorted when the block is cut; in-order blocks (the common case)
/// are encoded straight from these buffers.
#[derive(Debug)]
pub struct HeadBlock {
    ts: Vec<i64>,
    /// `n + 1` offsets into `lines`, starting at 0.
    offsets: Vec<u32>,
    lines: Vec<u8>,
    /// `n + 1` offsets into `meta`, starting at 0.
    meta_offsets: Vec<u32>,
    meta: Vec<u8>,
    sorted: bool,
    /// How the block is compressed when cut.
    encoding: Encoding,
    min: i64,
    max: i64,
}

impl Default for HeadBlock {
    fn default() -> HeadBlock {
        HeadBlock::new()
    }
}

impl HeadBlock {
    /// An empty block, compressed with snappy when cut.
    pub fn new() -> HeadBlock {
        HeadBlock::with_encoding(Encoding::default())
    }

    /// An empty block, compressed with `encoding` when cut.
    pub fn with_encoding(encoding: Encoding) -> HeadBlock {
        let mut b = HeadBlock {
            ts: Vec::new(),
            offsets: Vec::new(),
            lines: Vec::new(),
            meta_offsets: Vec::new(),
            meta: Vec::new(),
            sorted: true,
            encoding,
            min: 0,
            max: 0,
        };
        b.empty();
        b
    }

    /// Empties the block, keeping its buffers.
    fn empty(&mut self) {
        self.ts.clear();
        self.offsets.clear();
        self.offsets.push(0);
        self.lines.clear();
        self.meta_offsets.clear();
        self.meta_offsets.push(0);
        self.meta.clear();
        self.sorted = true;
        self.min = i64::MAX;
        self.max = i64::MIN;
    }

    /// Sets how the block is compressed when cut (this block and the next
    /// ones [`HeadBlock::cut`] leaves).
    pub fn set_encoding(&mut self, encoding: Encoding) {
        self.encoding = encoding;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether the block holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Bytes of lines held.
    pub fn size(&self) -> usize {
        self.lines.len() + self.meta.len()
    }

    /// Smallest and largest timestamp.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        (!self.ts.is_empty()).then_some((self.min, self.max))
    }

    /// Appends an entry; `meta` is encoded metadata (empty for none).
    pub fn append(&mut self, ts: i64, line: &[u8], meta: &[u8]) {
        if ts < self.max {
            self.sorted = false;
        }
        self.min = self.min.min(ts);
        self.max = self.max.max(ts);
        self.ts.push(ts);
        grow(&mut self.lines, line.len());
        self.lines.extend_from_slice(line);
        self.offsets.push(self.lines.len() as u32);
        grow(&mut self.meta, meta.len());
        self.meta.extend_from_slice(meta);
        self.meta_offsets.push(self.meta.len() as u32);
    }

    /// The block as it is (in arrival order).
    pub fn view(&self) -> Block<'_> {
        Block {
            timestamps: &self.ts,
            offsets: &self.offsets,
            lines: &self.lines,
            metadata_offsets: if self.meta.is_empty() {
                &[]
            } else {
                &self.meta_offsets
            },
            metadata: &self.meta,
            whole: None,
        }
    }

    /// The entries sorted by timestamp (stable: equal timestamps keep their
    /// arrival order), as a decoded block for queries.
    pub fn to_decoded(&self, out: &mut DecodedBlock) {
        out.clear();
        let v = self.view();
        if self.sorted {
            out.ts.extend_from_slice(&self.ts);
            out.offsets.extend_from_slice(&self.offsets);
            out.lines.extend_from_slice(&self.lines);
            if !self.meta.is_empty() {
                out.meta_offsets.extend_from_slice(&self.meta_offsets);
                out.meta.extend_from_slice(&self.meta);
            }
            return;
        }
        let mut order: Vec<usize> = (0..self.ts.len()).collect();
        order.sort_by_key(|&i| self.ts[i]);
        out.ts.reserve(order.len());
        out.offsets.reserve(order.len() + 1);
        out.lines.reserve(self.lines.len());
        out.offsets.push(0);
        let has_meta = !self.meta.is_empty();
        if has_meta {
            out.meta_offsets.push(0);
        }
        for &i in &order {
            out.ts.push(self.ts[i]);
            out.lines.extend_from_slice(v.line(i));
            out.offsets.push(out.lines.len() as u32);
            if has_meta {
                out.meta.extend_from_slice(v.metadata(i));
                out.meta_offsets.push(out.meta.len() as u32);
            }
        }
    }

    /// Sorts, encodes and compresses the block, leaving it empty (with the
    /// same encoding).
    pub fn cut(&mut self) -> EncodedBlock {
        let enc = self.encode();
        *self = HeadBlock::with_encoding(self.encoding);
        enc
    }

    /// The block sorted, encoded and compressed.
    fn encode(&self) -> EncodedBlock {
        if self.sorted {
            encode(&self.view(), self.encoding)
        } else {
            let mut d = DecodedBlock::default();
            self.to_decoded(&mut d);
            encode(&d.view(Columns::ALL), self.encoding)
        }
    }

    /// [`HeadBlock::cut`] for a block cut because it is full: its buffers
    /// are kept, emptied, for the next block. A stream that fills blocks
    /// fills the next one too; grown anew, its buffers would pass through
    /// about twenty sizes on the way to a full block, each a copy of what
    /// they hold. What is kept is what one block of the stream took, given
    /// back when the chunk is sealed.
    pub fn cut_full(&mut self) -> EncodedBlock {
        let enc = self.encode();
        self.empty();
        enc
    }
}

/// Makes room for `more` bytes in `buf`, growing it by half (not
/// doubling it) when full: a store holds a head block for every active
/// stream, most of them a few lines long, and doubling leaves a third of
/// each buffer unused on average.
fn grow(buf: &mut Vec<u8>, more: usize) {
    if buf.capacity() - buf.len() < more {
        buf.reserve_exact(more.max(buf.len() / 2));
    }
}

/// Encodes a sorted block (columns as in the module docs).
pub fn encode(b: &Block<'_>, enc: Encoding) -> EncodedBlock {
    let n = b.len();
    let mut bytes = Vec::with_capacity(b.lines.len() / 3 + 64);
    let mut cols = [ColRange::default(); NCOLS];
    let mut raw = Vec::with_capacity(n * 3 + 16);

    put_uvarint(&mut raw, n as u64);
    if let Some(&first) = b.timestamps.first() {
        put_varint(&mut raw, first);
        for w in b.timestamps.windows(2) {
            put_uvarint(&mut raw, w[1].wrapping_sub(w[0]) as u64);
        }
    }
    cols[COL_TS] = push_compressed(&mut bytes, enc, &raw);

    raw.clear();
    for i in 0..n {
        put_uvarint(&mut raw, u64::from(b.offsets[i + 1] - b.offsets[i]));
    }
    cols[COL_LENS] = push_compressed(&mut bytes, enc, &raw);
    cols[COL_LINES] = push_compressed(&mut bytes, enc, b.lines);

    if !b.metadata.is_empty() {
        raw.clear();
        for i in 0..n {
            crate::encoding::put_bytes(&mut raw, b.metadata(i));
        }
        cols[COL_META] = push_compressed(&mut bytes, enc, &raw);
    }
    cols[COL_FILTER] = push_raw(&mut bytes, &filter::build_stored(b.lines, enc));
    // The buffer was reserved for a third of the lines, more than most
    // blocks compress to: a cut block is held until its chunk is flushed,
    // and must not keep the rest.
    bytes.shrink_to_fit();

    EncodedBlock {
        bytes,
        meta: BlockMeta {
            entries: n as u32,
            mint: b.timestamps.first().copied().unwrap_or(0),
            maxt: b.timestamps.last().copied().unwrap_or(0),
            lines_size: b.lines.len() as u64,
            codec: enc.codec,
            cols,
        },
    }
}

fn push_compressed(out: &mut Vec<u8>, enc: Encoding, raw: &[u8]) -> ColRange {
    let start = out.len();
    codec::compress(enc, raw, out);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    ColRange {
        offset: start as u64,
        len: (out.len() - start) as u64,
    }
}

fn push_raw(out: &mut Vec<u8>, raw: &[u8]) -> ColRange {
    let start = out.len();
    out.extend_from_slice(raw);
    let crc = crc32fast::hash(raw);
    out.extend_from_slice(&crc.to_le_bytes());
    ColRange {
        offset: start as u64,
        len: (out.len() - start) as u64,
    }
}

/// Returns a column's payload after checking its checksum.
pub fn column<'a>(buf: &'a [u8], c: ColRange, what: &'static str) -> Result<&'a [u8], ChunkError> {
    let start = usize::try_from(c.offset).map_err(|_| ChunkError::corrupt(what))?;
    let len = usize::try_from(c.len).map_err(|_| ChunkError::corrupt(what))?;
    let end = start
        .checked_add(len)
        .ok_or_else(|| ChunkError::corrupt(what))?;
    let col = buf
        .get(start..end)
        .ok_or_else(|| ChunkError::corrupt(what))?;
    if col.len() < 4 {
        return Err(ChunkError::corrupt(what));
    }
    let (payload, crc) = col.split_at(col.len() - 4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(payload) != want {
        return Err(ChunkError::Checksum(what));
    }
    Ok(payload)
}

/// Decodes `n` line lengths (uvarints) into `n + 1` offsets from 0, which
/// must end at `total`, replacing what `offsets` held (its capacity and
/// length are reused, so a buffer kept across blocks is written, not
/// zeroed and pushed to). Lengths under 16 KiB (one or two bytes) decode
/// inline, branching on their size; longer ones take the general reader.
/// The branch is predicted well on log blocks (a stream's lines tend to
/// keep their size), and it lets the next length's read start before this
/// one is decoded: a form without it, which computed the position of the
/// next length from this one's first byte, made every read wait for the
/// one before and took 1.8x as long on the loghub lines (1.98 against
/// 1.10 ns a line).
///
/// Offsets are `u32`, so `total` must fit one. The running end is only
/// compared with `total` once, after the last length: every length adds
/// to it, so if it ends at `total` no offset before passed it, and none
/// was cut short by the conversion.
fn lengths_to_offsets(
    col: &[u8],
    n: usize,
    total: u64,
    offsets: &mut Vec<u32>,
) -> Result<(), ChunkError> {
    let err = || ChunkError::corrupt("lengths column");
    // Every length takes a byte at least: a corrupt count sizes nothing
    // beyond what the column can hold. With at most u32::MAX lengths of
    // at most `total` (a u32) each, the running end cannot overflow.
    if u32::try_from(total).is_err() || n > col.len() || u32::try_from(n).is_err() {
        return Err(err());
    }
    offsets.resize(n + 1, 0);
    let Some((first, rest)) = offsets.split_first_mut() else {
        return Err(err());
    };
    *first = 0;
    let mut end: u64 = 0;
    let mut p = 0usize;
    for o in rest {
        let len = match col.get(p..p + 2) {
            Some(&[b0, _]) if b0 < 0x80 => {
                p += 1;
                u64::from(b0)
            }
            Some(&[b0, b1]) if b1 < 0x80 => {
                p += 2;
                u64::from(b0 & 0x7f) | (u64::from(b1) << 7)
            }
            _ => {
                let mut r = Reader::new(col.get(p..).ok_or_else(err)?);
                let v = r.uvarint("lengths column")?;
                p += r.pos();
                if v > total {
                    return Err(err());
                }
                v
            }
        };
        end += len;
        *o = end as u32;
    }
    if end != total {
        return Err(err());
    }
    Ok(())
}

/// A block decoded into reusable buffers.
#[derive(Debug, Default)]
pub struct DecodedBlock {
    /// Timestamps.
    pub ts: Vec<i64>,
    /// Line offsets (n + 1), when lines are decoded.
    pub offsets: Vec<u32>,
    /// Line bytes.
    pub lines: Vec<u8>,
    /// Metadata offsets (n + 1) or empty.
    pub meta_offsets: Vec<u32>,
    /// Metadata bytes.
    pub meta: Vec<u8>,
    scratch: Vec<u8>,
}

impl DecodedBlock {
    /// Empties the buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.ts.clear();
        self.offsets.clear();
        self.lines.clear();
        self.meta_offsets.clear();
        self.meta.clear();
    }

    /// A view for the engine (`cols` says what was decoded).
    pub fn view(&self, cols: Columns) -> Block<'_> {
        Block {
            timestamps: &self.ts,
            offsets: if cols.offsets() { &self.offsets } else { &[] },
            lines: if cols.lines { &self.lines } else { &[] },
            metadata_offsets: if cols.metadata {
                &self.meta_offsets
            } else {
                &[]
            },
            metadata: if cols.metadata { &self.meta } else { &[] },
            whole: None,
        }
    }

    /// Decodes the columns `cols` asks for of the block described by
    /// `meta`, stored in `buf`, and its timestamps.
    pub fn decode(
        &mut self,
        buf: &[u8],
        meta: &BlockMeta,
        cols: Columns,
    ) -> Result<(), ChunkError> {
        self.decode_columns(buf, meta, cols, true)
    }

    /// Like [`DecodedBlock::decode`], leaving the timestamps column alone
    /// (neither read nor checked, `ts` left empty) unless `timestamps`.
    pub fn decode_columns(
        &mut self,
        buf: &[u8],
        meta: &BlockMeta,
        cols: Columns,
        timestamps: bool,
    ) -> Result<(), ChunkError> {
        // `lines` and `offsets` keep their length so decoding can reuse
        // them unzeroed.
        self.ts.clear();
        if !cols.offsets() {
            self.offsets.clear();
        }
        self.meta_offsets.clear();
        self.meta.clear();
        if !cols.lines {
            self.lines.clear();
        }
        if timestamps {
            self.decode_timestamps(buf, meta)?;
        }
        self.decode_rest(buf, meta, cols)
    }

    fn decode_timestamps(&mut self, buf: &[u8], meta: &BlockMeta) -> Result<(), ChunkError> {
        let n = meta.entries as usize;
        let codec = meta.codec;
        let c = column(buf, meta.cols[COL_TS], "timestamps column")?;
        codec::decompress(
            codec,
            c,
            &mut self.scratch,
            n.saturating_mul(10) + 20,
            "timestamps column",
        )?;
        let mut r = Reader::new(&self.scratch);
        let count = r.len("timestamps column", n).map_err(ChunkError::from)?;
        if count != n {
            return Err(ChunkError::corrupt("timestamps column"));
        }
        // Every timestamp takes a byte at least: a corrupt entry count
        // must not reserve more than the column can hold.
        self.ts.reserve(n.min(r.remaining()));
        if n > 0 {
            let mut t = r.varint("timestamps column")?;
            self.ts.push(t);
            for _ in 1..n {
                t = t.wrapping_add(r.uvarint("timestamps column")? as i64);
                self.ts.push(t);
            }
        }
        Ok(())
    }

    fn decode_rest(
        &mut self,
        buf: &[u8],
        meta: &BlockMeta,
        cols: Columns,
    ) -> Result<(), ChunkError> {
        let n = meta.entries as usize;
        let codec = meta.codec;
        if cols.offsets() {
            let c = column(buf, meta.cols[COL_LENS], "lengths column")?;
            codec::decompress(
                codec,
                c,
                &mut self.scratch,
                n.saturating_mul(10) + 10,
                "lengths column",
            )?;
            lengths_to_offsets(&self.scratch, n, meta.lines_size, &mut self.offsets)?;
        }
        if cols.lines {
            let c = column(buf, meta.cols[COL_LINES], "lines column")?;
            let limit = usize::try_from(meta.lines_size)
                .map_err(|_| ChunkError::corrupt("lines column"))?;
            codec::decompress(codec, c, &mut self.lines, limit, "lines column")?;
            if self.lines.len() != limit {
                return Err(ChunkError::corrupt("lines column"));
            }
        }

        if cols.metadata && meta.cols[COL_META].len > 0 {
            let c = column(buf, meta.cols[COL_META], "metadata column")?;
            codec::decompress(codec, c, &mut self.scratch, 1 << 30, "metadata column")?;
            let mut r = Reader::new(&self.scratch);
            self.meta_offsets.reserve(n.min(r.remaining()) + 1);
            self.meta_offsets.push(0);
            for _ in 0..n {
                let m = r.bytes("metadata column")?;
                self.meta.extend_from_slice(m);
                self.meta_offsets.push(self.meta.len() as u32);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_bytes(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in pairs {
            crate::encoding::put_bytes(&mut b, n.as_bytes());
            crate::encoding::put_bytes(&mut b, v.as_bytes());
        }
        b
    }

    #[test]
    fn cut_sorts_and_round_trips() {
        for codec in Codec::ALL {
            cut_sorts_and_round_trips_with(codec);
        }
    }

    fn cut_sorts_and_round_trips_with(codec: Codec) {
        let mut h = HeadBlock::with_encoding(Encoding::new(codec));
        h.append(30, b"third", b"");
        h.append(
            10,
            b"first\nwith newline",
            &meta_bytes(&[("trace_id", "t1")]),
        );
        h.append(20, b"", b"");
        let enc = h.cut();
        assert!(h.is_empty());
        assert_eq!(enc.meta.codec, codec);
        assert_eq!(h.encoding.codec, codec, "the next block keeps the codec");
        assert_eq!(enc.meta.entries, 3);
        assert_eq!((enc.meta.mint, enc.meta.maxt), (10, 30));

        let mut d = DecodedBlock::default();
        d.decode(&enc.bytes, &enc.meta, Columns::ALL).unwrap();
        let v = d.view(Columns::ALL);
        assert_eq!(v.timestamps, &[10, 20, 30]);
        assert_eq!(v.line(0), b"first\nwith newline");
        assert_eq!(v.line(1), b"");
        assert_eq!(v.line(2), b"third");
        let m: Vec<_> = larch_query::decode_metadata(v.metadata(0)).collect();
        assert_eq!(m, vec![("trace_id", "t1")]);
        assert!(v.metadata(1).is_empty());

        // Timestamps only.
        d.decode(&enc.bytes, &enc.meta, Columns::NONE).unwrap();
        assert_eq!(d.ts, vec![10, 20, 30]);
        assert!(d.lines.is_empty());

        // Line lengths without the lines: the lines column is not read
        // (a block whose lines column is damaged still decodes).
        let lengths = Columns {
            lines: false,
            lengths: true,
            metadata: false,
        };
        let mut broken = enc.bytes.clone();
        let lines_col = enc.meta.cols[COL_LINES];
        broken[lines_col.offset as usize] ^= 0xff;
        d.decode(&broken, &enc.meta, lengths).unwrap();
        let v = d.view(lengths);
        assert!(v.lines.is_empty());
        assert_eq!(
            (0..3).map(|i| v.line_len(i)).collect::<Vec<_>>(),
            vec![18, 0, 5]
        );
        assert!(d.decode(&broken, &enc.meta, Columns::ALL).is_err());
    }

    #[test]
    fn a_full_cut_keeps_the_buffers_and_encodes_the_same() {
        let fill = |h: &mut HeadBlock, from: i64| {
            for i in from..from + 500 {
                // Out of order now and then, with metadata on some.
                let ts = if i % 7 == 0 { i - 3 } else { i };
                let meta = if i % 3 == 0 {
                    meta_bytes(&[("detected_level", "info")])
                } else {
                    Vec::new()
                };
                h.append(ts, format!("line {i}").as_bytes(), &meta);
            }
        };
        let mut a = HeadBlock::new();
        let mut b = HeadBlock::new();
        for round in 0..3 {
            fill(&mut a, round * 1000);
            fill(&mut b, round * 1000);
            let kept = (b.lines.capacity(), b.ts.capacity());
            let (ea, eb) = (a.cut(), b.cut_full());
            assert_eq!(ea.bytes, eb.bytes);
            assert_eq!(ea.meta, eb.meta);
            assert!(b.is_empty() && b.bounds().is_none() && b.size() == 0);
            assert_eq!((b.lines.capacity(), b.ts.capacity()), kept);
            assert_eq!(a.lines.capacity(), 0);
        }
        // What follows a full cut decodes as it was appended.
        b.append(5, b"after", b"");
        let enc = b.cut();
        let mut d = DecodedBlock::default();
        d.decode(&enc.bytes, &enc.meta, Columns::ALL).unwrap();
        assert_eq!(d.ts, vec![5]);
        assert_eq!(d.view(Columns::ALL).line(0), b"after");
    }

    #[test]
    fn a_cut_block_holds_no_room_beyond_its_bytes() {
        for codec in Codec::ALL {
            let mut h = HeadBlock::with_encoding(Encoding::new(codec));
            for i in 0..4000 {
                h.append(
                    i,
                    format!("level=info msg=\"request {i} served\"").as_bytes(),
                    b"",
                );
            }
            let enc = h.cut();
            assert!(
                enc.bytes.capacity() <= enc.bytes.len() + 64,
                "{codec:?}: {} bytes in {}",
                enc.bytes.len(),
                enc.bytes.capacity()
            );
        }
    }

    #[test]
    fn corruption_is_detected_not_panicked_on() {
        for codec in Codec::ALL {
            corruption_is_detected_with(codec);
        }
    }

    fn corruption_is_detected_with(codec: Codec) {
        let mut h = HeadBlock::with_encoding(Encoding::new(codec));
        for i in 0..100 {
            h.append(i, format!("line {i}").as_bytes(), b"");
        }
        let enc = h.cut();
        let mut d = DecodedBlock::default();
        // Every byte the decoder reads (the filter is checked where it is used).
        for i in 0..enc.meta.cols[COL_FILTER].offset as usize {
            let mut bad = enc.bytes.clone();
            bad[i] ^= 0x55;
            assert!(
                d.decode(&bad, &enc.meta, Columns::ALL).is_err(),
                "{codec}: flip at {i}"
            );
        }
        let mut meta = enc.meta.clone();
        meta.entries = 1000;
        assert!(d.decode(&enc.bytes, &meta, Columns::ALL).is_err());
        // Read with another codec than written: an error, never a panic.
        for other in Codec::ALL.into_iter().filter(|c| *c != codec) {
            let mut meta = enc.meta.clone();
            meta.codec = other;
            let _ = d.decode(&enc.bytes, &meta, Columns::ALL);
        }
        let mut meta = enc.meta.clone();
        meta.cols[COL_LINES].offset = u64::MAX - 2;
        assert!(d.decode(&enc.bytes, &meta, Columns::ALL).is_err());
    }

    #[test]
    fn lengths_of_every_size_decode_as_the_reader_does() {
        let lens: Vec<u64> = vec![0, 1, 127, 128, 300, 16_383, 16_384, 70_000, 5];
        let mut col = Vec::new();
        for &l in &lens {
            put_uvarint(&mut col, l);
        }
        let total: u64 = lens.iter().sum();
        let mut off = Vec::new();
        lengths_to_offsets(&col, lens.len(), total, &mut off).unwrap();
        let mut want = vec![0u32];
        for &l in &lens {
            want.push(want[want.len() - 1] + l as u32);
        }
        assert_eq!(off, want);
        // A buffer kept from a larger block is overwritten and shortened.
        let mut reused = vec![7u32; 50];
        lengths_to_offsets(&col, lens.len(), total, &mut reused).unwrap();
        assert_eq!(reused, want);
        // Offsets are u32: lengths adding up past one are a damaged
        // column, not offsets cut short.
        let mut big = Vec::new();
        put_uvarint(&mut big, 1 << 32);
        put_uvarint(&mut big, 1);
        assert!(lengths_to_offsets(&big, 2, (1 << 32) + 1, &mut off).is_err());
        // Short, long, a total that disagrees, a cut varint: errors.
        for (n, t, c) in [
            (lens.len() + 1, total, &col[..]),
            (lens.len(), total + 1, &col[..]),
            (lens.len(), total - 1, &col[..]),
            (lens.len(), total, &col[..col.len() - 1]),
            (1, u64::MAX, &[0xff; 11][..]),
        ] {
            off.clear();
            assert!(lengths_to_offsets(c, n, t, &mut off).is_err());
        }
    }

    /// The general reader's answer: offsets, or an error.
    fn offsets_by_reader(col: &[u8], n: usize, total: u64) -> Option<Vec<u32>> {
        let mut r = Reader::new(col);
        let mut off = vec![0u32];
        let mut end = 0u64;
        for _ in 0..n {
            end = end.checked_add(r.uvarint("lengths").ok()?)?;
            if end > total {
                return None;
            }
            off.push(end as u32);
        }
        // Offsets are u32: a larger total is no block's.
        (end == total && u32::try_from(total).is_ok()).then_some(off)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Lengths of every size, and any bytes as a lengths column,
        /// decode exactly as the general reader does (or fail as it does).
        #[test]
        fn lengths_decode_as_the_reader_does(
            lens in proptest::collection::vec(
                proptest::prop_oneof![0u64..128, 128u64..16_384, 16_384u64..100_000],
                0..200,
            ),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            extra in 0usize..3,
        ) {
            let mut col = Vec::new();
            for &l in &lens {
                put_uvarint(&mut col, l);
            }
            let total: u64 = lens.iter().sum();
            let mut off = Vec::new();
            lengths_to_offsets(&col, lens.len(), total, &mut off).unwrap();
            proptest::prop_assert_eq!(Some(off), offsets_by_reader(&col, lens.len(), total));
            // Any bytes, with the count and total those bytes claim and
            // with wrong ones.
            let n = junk.len().saturating_sub(extra);
            let claimed = offsets_by_reader(&junk, n, u64::MAX).map_or(0, |o| u64::from(o[n]));
            for t in [claimed, claimed + 1, claimed.saturating_sub(1)] {
                let mut off = Vec::new();
                let ours = lengths_to_offsets(&junk, n, t, &mut off).ok().map(|()| off);
                proptest::prop_assert_eq!(ours, offsets_by_reader(&junk, n, t));
            }
        }
    }

    #[test]
    fn huge_entry_count_is_an_error_not_an_allocation() {
        // A timestamps column claiming u32::MAX entries but holding one,
        // with valid checksums (a block the chunk fuzz target can make).
        let mut ts = Vec::new();
        put_uvarint(&mut ts, u64::from(u32::MAX));
        put_varint(&mut ts, 5);
        let mut bytes = Vec::new();
        let col = push_compressed(&mut bytes, Encoding::default(), &ts);
        let mut meta = BlockMeta {
            entries: u32::MAX,
            mint: 5,
            maxt: 5,
            lines_size: 0,
            codec: Codec::Snappy,
            cols: [ColRange::default(); NCOLS],
        };
        meta.cols[COL_TS] = col;
        let mut d = DecodedBlock::default();
        let ts_only = Columns::NONE;
        assert!(matches!(
            d.decode(&bytes, &meta, ts_only),
            Err(ChunkError::Corrupt("timestamps column"))
        ));
    }
}
