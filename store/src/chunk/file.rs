//! The chunk file. Version 3 (written):
//!
//! ```text
//! header  "LRCHNK\x00\x03" | u32le len | u32le crc32(body) | body
//!         body: str labels text | u64le fingerprint | uvarint min_seq
//!               | uvarint max_seq | uvarint n { str replaced chunk id }*
//! block   "LRBC" | u32le len | u32le crc32(body) | body | columns
//!         body: uvarint entries | varint mint | varint maxt | uvarint lines size
//!               | u8 codec | uvarint columns size
//!               | 5 x (uvarint offset, uvarint length)
//!               (ts, lens, lines, meta, filter; offsets from the first column)
//! index   uvarint nblocks, then per block:
//!         uvarint entries | varint mint | varint maxt | uvarint lines size
//!         | u8 codec | 5 x (uvarint offset, uvarint length)
//!         (offsets from the file start)
//! footer  u64le index offset | u32le index length | u32le crc32(index) | "LRCHEND3"
//! ```
//! The codec byte ([`Codec`]) says how the block's columns are compressed.
//! Version 2 (still read) is the same without codec bytes (every block is
//! snappy): its block heads start with `"LRBK"` and its footer ends with
//! `"LRCHEND1"`. The block marker and the footer's magic, not the magic at
//! the start, say whether a block head or an index holds codec bytes, so a
//! damaged magic never makes a reader misparse either.
//! Version 1 (still read) has a header of `"LRCHNK\x00\x01" | str labels |
//! u64le fingerprint` without checksum or sequence numbers (the largest
//! sequence number is in its file name, `<max_seq:016x>-<crc:08x>`), no
//! block heads and a version 2 index and footer.
//!
//! The footer lets a reader find the index from the end; the index lets it
//! skip blocks by time and token filter before decompressing anything.
//! Version 2 makes a chunk self-describing: the header says which stream
//! it belongs to, which WAL records it holds and which chunks it replaced
//! (a compaction's inputs), so an index can be rebuilt from chunk files
//! alone; the block heads repeat the index entry of each block, so that
//! when the footer or index is damaged (or the file cut short) every block
//! whose head and columns are intact is still found ([`salvage`]).

use std::io::{self, Write};
use std::path::Path;

use super::ChunkError;
use super::block::{BlockMeta, COL_FILTER, ColRange, EncodedBlock, NCOLS, column};
use super::codec::Codec;
use crate::encoding::{Reader, put_bytes, put_uvarint, put_varint};

const MAGIC_V1: &[u8; 8] = b"LRCHNK\x00\x01";
const MAGIC_V2: &[u8; 8] = b"LRCHNK\x00\x02";
const MAGIC_V3: &[u8; 8] = b"LRCHNK\x00\x03";
/// Footer magic of an index without codec bytes (versions 1 and 2).
const END_MAGIC_V2: &[u8; 8] = b"LRCHEND1";
/// Footer magic of an index with a codec byte per block (version 3).
const END_MAGIC_V3: &[u8; 8] = b"LRCHEND3";
const FOOTER: usize = 24;
/// Marker of a block head without a codec byte (version 2).
const BLOCK_MARK_V2: &[u8; 4] = b"LRBK";
/// Marker of a block head with a codec byte (version 3).
const BLOCK_MARK_V3: &[u8; 4] = b"LRBC";
/// Marker, length and checksum before a block head's body.
const BLOCK_HEAD: usize = 12;
/// Largest header body read: labels are bounded by validation, replaced
/// ids by the compaction run.
const MAX_HEADER: usize = 1 << 20;
/// Largest block head body (eight varints, a byte and ten varints more).
const MAX_BLOCK_HEAD: usize = 200;
/// Largest version 1 header read from disk.
const MAX_V1_HEADER: usize = 64 * 1024 + 18;

/// The version this build writes.
pub const VERSION: u8 = 3;

/// Whether a block index (and its footer) holds a codec byte per block:
/// told by the footer's magic.
fn index_has_codecs(end_magic: &[u8]) -> Option<bool> {
    if end_magic == END_MAGIC_V3 {
        Some(true)
    } else if end_magic == END_MAGIC_V2 {
        Some(false)
    } else {
        None
    }
}

/// What a chunk says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The stream's labels text.
    pub labels: String,
    /// The stream's fingerprint.
    pub fingerprint: u64,
    /// Smallest WAL sequence number of its entries (0 when unknown:
    /// version 1).
    pub min_seq: u64,
    /// Largest WAL sequence number of its entries (version 1: 0, see its
    /// file name).
    pub max_seq: u64,
    /// Chunks of the same stream it replaces (a compaction's inputs).
    pub replaces: Vec<String>,
}

impl ChunkHeader {
    fn encode_body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.labels.len() + 32 + self.replaces.len() * 26);
        put_bytes(&mut b, self.labels.as_bytes());
        b.extend_from_slice(&self.fingerprint.to_le_bytes());
        put_uvarint(&mut b, self.min_seq);
        put_uvarint(&mut b, self.max_seq);
        put_uvarint(&mut b, self.replaces.len() as u64);
        for id in &self.replaces {
            put_bytes(&mut b, id.as_bytes());
        }
        b
    }

    fn decode_body(body: &[u8]) -> Result<ChunkHeader, ChunkError> {
        let mut r = Reader::new(body);
        let labels = r.str("header")?.to_string();
        let fingerprint = r.u64le("header")?;
        let min_seq = r.uvarint("header")?;
        let max_seq = r.uvarint("header")?;
        let n = r.len("header", body.len())?;
        let mut replaces = Vec::with_capacity(n);
        for _ in 0..n {
            replaces.push(r.str("header")?.to_string());
        }
        if !r.is_empty() {
            return Err(ChunkError::corrupt("header"));
        }
        Ok(ChunkHeader {
            labels,
            fingerprint,
            min_seq,
            max_seq,
            replaces,
        })
    }
}

/// The parts of a chunk file around its blocks' columns: the header, a
/// head per block, and the index plus footer. The file is `head`, then per
/// block its head and its bytes, then `tail`; writing the parts one by one
/// spares a copy of the blocks ([`ChunkParts::write_to`]).
pub struct ChunkParts {
    /// Magic and header.
    pub head: Vec<u8>,
    /// Each block's head.
    pub block_heads: Vec<Vec<u8>>,
    /// Block index and footer.
    pub tail: Vec<u8>,
    /// Checksum of the index (names the chunk).
    pub index_crc: u32,
    /// Total file size.
    pub size: u64,
}

impl ChunkParts {
    /// Writes the whole file: these parts around `blocks` (the blocks they
    /// were made for).
    pub fn write_to(&self, w: &mut impl Write, blocks: &[&EncodedBlock]) -> io::Result<()> {
        for part in self.slices(blocks) {
            w.write_all(part)?;
        }
        Ok(())
    }

    /// The whole file as the slices it is made of, in order: these parts
    /// and `blocks` (the blocks they were made for), none of them copied.
    pub fn slices<'a>(&'a self, blocks: &[&'a EncodedBlock]) -> Vec<&'a [u8]> {
        let mut out = Vec::with_capacity(2 + 2 * blocks.len());
        out.push(self.head.as_slice());
        for (h, b) in self.block_heads.iter().zip(blocks) {
            out.push(h.as_slice());
            out.push(b.bytes.as_slice());
        }
        out.push(self.tail.as_slice());
        out
    }
}

fn block_head(b: &EncodedBlock) -> Vec<u8> {
    let m = &b.meta;
    let mut body = Vec::with_capacity(48);
    put_uvarint(&mut body, u64::from(m.entries));
    put_varint(&mut body, m.mint);
    put_varint(&mut body, m.maxt);
    put_uvarint(&mut body, m.lines_size);
    body.push(m.codec as u8);
    put_uvarint(&mut body, b.bytes.len() as u64);
    for c in &m.cols {
        put_uvarint(&mut body, if c.len > 0 { c.offset } else { 0 });
        put_uvarint(&mut body, c.len);
    }
    let mut out = Vec::with_capacity(BLOCK_HEAD + body.len());
    out.extend_from_slice(BLOCK_MARK_V3);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Lays out a chunk of `blocks` (sorted in time) described by `header`.
pub fn chunk_parts(header: &ChunkHeader, blocks: &[&EncodedBlock]) -> ChunkParts {
    let body = header.encode_body();
    let mut head = Vec::with_capacity(body.len() + 16);
    head.extend_from_slice(MAGIC_V3);
    head.extend_from_slice(&(body.len() as u32).to_le_bytes());
    head.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    head.extend_from_slice(&body);
    let mut offset = head.len() as u64;
    let mut index = Vec::with_capacity(8 + blocks.len() * 48);
    let mut block_heads = Vec::with_capacity(blocks.len());
    put_uvarint(&mut index, blocks.len() as u64);
    for b in blocks {
        let bh = block_head(b);
        offset += bh.len() as u64;
        block_heads.push(bh);
        let m = &b.meta;
        put_uvarint(&mut index, u64::from(m.entries));
        put_varint(&mut index, m.mint);
        put_varint(&mut index, m.maxt);
        put_uvarint(&mut index, m.lines_size);
        index.push(m.codec as u8);
        for c in &m.cols {
            put_uvarint(&mut index, if c.len > 0 { c.offset + offset } else { 0 });
            put_uvarint(&mut index, c.len);
        }
        offset += b.bytes.len() as u64;
    }
    let index_offset = offset;
    let crc = crc32fast::hash(&index);
    let mut tail = index;
    let index_len = tail.len();
    tail.extend_from_slice(&index_offset.to_le_bytes());
    tail.extend_from_slice(&(index_len as u32).to_le_bytes());
    tail.extend_from_slice(&crc.to_le_bytes());
    tail.extend_from_slice(END_MAGIC_V3);
    let size = index_offset + tail.len() as u64;
    ChunkParts {
        head,
        block_heads,
        tail,
        index_crc: crc,
        size,
    }
}

/// Serialises a chunk from its blocks (sorted in time) into one buffer.
pub fn encode_chunk(header: &ChunkHeader, blocks: &[&EncodedBlock]) -> Vec<u8> {
    let parts = chunk_parts(header, blocks);
    let mut out = Vec::with_capacity(parts.size as usize);
    // Writing into a Vec cannot fail.
    let _ = parts.write_to(&mut out, blocks);
    out
}

/// The version of a chunk by its magic, if it is one this build reads.
fn version_of(magic: &[u8]) -> Option<u8> {
    if magic == MAGIC_V3 {
        Some(3)
    } else if magic == MAGIC_V2 {
        Some(2)
    } else if magic == MAGIC_V1 {
        Some(1)
    } else {
        None
    }
}

/// Decodes the header at the start of `bytes` (magic included). Returns
/// the header and where it ends.
fn parse_header(version: u8, bytes: &[u8]) -> Result<(ChunkHeader, usize), ChunkError> {
    let rest = bytes
        .get(MAGIC_V2.len()..)
        .ok_or(ChunkError::Corrupt("header"))?;
    let mut r = Reader::new(rest);
    if version == 1 {
        let labels = r.str("labels")?.to_string();
        let fingerprint = r.u64le("fingerprint")?;
        let end = MAGIC_V1.len() + r.pos();
        return Ok((
            ChunkHeader {
                labels,
                fingerprint,
                ..ChunkHeader::default()
            },
            end,
        ));
    }
    let len = r.u32le("header")? as usize;
    let crc = r.u32le("header")?;
    if len > MAX_HEADER {
        return Err(ChunkError::Corrupt("header"));
    }
    let body = r.take(len, "header")?;
    if crc32fast::hash(body) != crc {
        return Err(ChunkError::Checksum("header"));
    }
    let h = ChunkHeader::decode_body(body)?;
    Ok((h, MAGIC_V2.len() + 8 + len))
}

/// The index found through the footer of a whole file: `(offset, blocks)`.
fn parse_footer_and_index(bytes: &[u8]) -> Result<(usize, Vec<BlockMeta>), ChunkError> {
    if bytes.len() < MAGIC_V2.len() + FOOTER {
        return Err(ChunkError::Corrupt("footer"));
    }
    let foot = &bytes[bytes.len() - FOOTER..];
    let codecs = index_has_codecs(&foot[16..24]).ok_or(ChunkError::Corrupt("footer"))?;
    let mut f = Reader::new(foot);
    let index_offset =
        usize::try_from(f.u64le("footer")?).map_err(|_| ChunkError::Corrupt("footer"))?;
    let index_len = f.u32le("footer")? as usize;
    let crc = f.u32le("footer")?;
    let index_end = index_offset
        .checked_add(index_len)
        .filter(|&e| e <= bytes.len() - FOOTER && index_offset >= MAGIC_V2.len())
        .ok_or(ChunkError::Corrupt("footer"))?;
    let index = &bytes[index_offset..index_end];
    if crc32fast::hash(index) != crc {
        return Err(ChunkError::Checksum("index"));
    }
    let blocks = parse_index(index, index_offset as u64, codecs)?;
    Ok((index_offset, blocks))
}

/// A parsed chunk file: its bytes, header and block index.
#[derive(Debug)]
pub struct ChunkFile {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Format version.
    pub version: u8,
    /// What it says about itself.
    pub header: ChunkHeader,
    /// Its blocks, in time order.
    pub blocks: Vec<BlockMeta>,
}

impl ChunkFile {
    /// Parses and checks header, footer and index (block columns are
    /// checked when they are decoded).
    pub fn parse(bytes: Vec<u8>) -> Result<ChunkFile, ChunkError> {
        let version = bytes
            .get(..MAGIC_V2.len())
            .and_then(version_of)
            .ok_or(ChunkError::Version)?;
        let (index_offset, blocks) = parse_footer_and_index(&bytes)?;
        let (header, header_end) = parse_header(version, &bytes[..index_offset])?;
        if blocks
            .iter()
            .flat_map(|b| b.cols.iter())
            .any(|c| c.len > 0 && c.offset < header_end as u64)
        {
            return Err(ChunkError::Corrupt("index"));
        }
        Ok(ChunkFile {
            bytes,
            version,
            header,
            blocks,
        })
    }
}

/// Every block of a version 2 or 3 chunk found by walking its block heads from
/// the header on, whatever the state of the footer and index: a block
/// counts when its head checks out and its columns lie inside the file
/// (their checksums are checked when they are decoded). Where a head is
/// damaged, the walk resynchronises on the next block marker whose head
/// checks out. Version 1 chunks have no block heads: nothing is found.
pub fn salvage(bytes: &[u8]) -> Vec<BlockMeta> {
    let mut out = Vec::new();
    // Version 1 has no block heads; any other magic is taken for a
    // damaged one of a later version (the block markers tell versions 2
    // and 3 apart).
    if bytes.len() < MAGIC_V2.len() || &bytes[..MAGIC_V1.len()] == MAGIC_V1 {
        return out;
    }
    // Blocks end where a valid index starts, or at the end of the file.
    let end = parse_footer_and_index(bytes).map_or(bytes.len(), |(o, _)| o);
    let mut pos = match parse_header(VERSION, &bytes[..end]) {
        Ok((_, e)) => e,
        Err(_) => MAGIC_V2.len(),
    };
    while pos + BLOCK_HEAD <= end {
        if let Some((meta, next)) = block_at(bytes, pos, end) {
            out.push(meta);
            pos = next;
            continue;
        }
        match bytes[pos + 1..end]
            .windows(BLOCK_MARK_V3.len())
            .position(|w| w == BLOCK_MARK_V3 || w == BLOCK_MARK_V2)
        {
            Some(i) => pos = pos + 1 + i,
            None => break,
        }
    }
    out
}

/// The block whose head is at `pos`, with absolute column offsets, and
/// where the next block starts.
fn block_at(bytes: &[u8], pos: usize, end: usize) -> Option<(BlockMeta, usize)> {
    let h = bytes.get(pos..pos + BLOCK_HEAD)?;
    let has_codec = if &h[..4] == BLOCK_MARK_V3 {
        true
    } else if &h[..4] == BLOCK_MARK_V2 {
        false
    } else {
        return None;
    };
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if len > MAX_BLOCK_HEAD {
        return None;
    }
    let body_start = pos + BLOCK_HEAD;
    let body = bytes.get(body_start..body_start + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let mut r = Reader::new(body);
    let entries = u32::try_from(r.uvarint("block").ok()?).ok()?;
    let mint = r.varint("block").ok()?;
    let maxt = r.varint("block").ok()?;
    let lines_size = r.uvarint("block").ok()?;
    let codec = if has_codec {
        Codec::from_byte(r.take(1, "block").ok()?[0])?
    } else {
        Codec::Snappy
    };
    let size = usize::try_from(r.uvarint("block").ok()?).ok()?;
    let data = body_start + len;
    let next = data.checked_add(size).filter(|&n| n <= end)?;
    let mut cols = [ColRange::default(); NCOLS];
    for c in &mut cols {
        let off = r.uvarint("block").ok()?;
        let l = r.uvarint("block").ok()?;
        if l > 0 {
            if off.checked_add(l)? > size as u64 {
                return None;
            }
            *c = ColRange {
                offset: data as u64 + off,
                len: l,
            };
        }
    }
    Some((
        BlockMeta {
            entries,
            mint,
            maxt,
            lines_size,
            codec,
            cols,
        },
        next,
    ))
}

/// Where a chunk's block index lies, as its footer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexAt {
    /// Offset of the index in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Its checksum.
    pub crc: u32,
    /// Whether it holds a codec byte per block (version 3).
    pub codecs: bool,
}

/// The index of a chunk file on disk, read without reading its blocks.
#[derive(Debug)]
pub struct ChunkIndex {
    /// Format version.
    pub version: u8,
    /// What the chunk says about itself; `None` when its header is
    /// damaged (the blocks are still readable).
    pub header: Option<ChunkHeader>,
    /// The stream's fingerprint (0 when the header is damaged).
    pub fingerprint: u64,
    /// Its blocks, in time order, with offsets into the file.
    pub blocks: Vec<BlockMeta>,
    /// File size.
    pub size: u64,
    /// Whether the blocks were found by walking block heads because the
    /// footer or index is damaged ([`salvage`]).
    pub salvaged: bool,
    /// Whether the magic at the start is damaged (the file is then read
    /// as the current version).
    pub magic_damaged: bool,
    /// Whether the magic and header were read at all: an object's index
    /// found from its tail ([`ChunkIndex::from_tail`]) leaves them unread,
    /// and then `header` is `None` without being damaged.
    pub head_read: bool,
}

impl ChunkIndex {
    /// Whether the chunk's magic or header was read and found damaged
    /// (its blocks are still served through the checked index).
    pub fn head_damaged(&self) -> bool {
        self.head_read && (self.magic_damaged || (self.version >= 2 && self.header.is_none()))
    }

    /// Reads header, footer and index of the chunk file at `path`. A
    /// damaged magic or header is tolerated (`magic_damaged`; `header` is
    /// `None`); a damaged footer or index is an error (see
    /// [`ChunkIndex::salvage`]). Finds the blocks [`check`] finds.
    pub fn read(path: &Path) -> Result<ChunkIndex, ReadError> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path).map_err(|e| ReadError::io(path, e))?;
        let size = file.metadata().map_err(|e| ReadError::io(path, e))?.len();
        if size < (MAGIC_V2.len() + FOOTER) as u64 {
            return Err(ReadError::chunk(path, ChunkError::Corrupt("footer")));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| ReadError::io(path, e))?;
        // A damaged magic is taken for the current version's, as [`check`] and
        // [`salvage`] take it: the footer's and the index's checksums
        // decide whether the blocks are found through the index. The reader
        // and recovery must see the same blocks, or recovery would count a
        // block as served that the reader cannot find.
        let magic_version = version_of(&magic);
        let version = magic_version.unwrap_or(VERSION);
        let mut foot = [0u8; FOOTER];
        file.read_exact_at(&mut foot, size - FOOTER as u64)
            .map_err(|e| ReadError::io(path, e))?;
        let codecs = index_has_codecs(&foot[16..24])
            .ok_or_else(|| ReadError::chunk(path, ChunkError::Corrupt("footer")))?;
        let word = |a: usize, n: usize| {
            foot[a..a + n]
                .iter()
                .rev()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b))
        };
        let index_offset = word(0, 8);
        let index_len = word(8, 4);
        let crc = word(12, 4) as u32;
        if index_offset < MAGIC_V2.len() as u64
            || index_offset
                .checked_add(index_len)
                .is_none_or(|e| e > size - FOOTER as u64)
        {
            return Err(ReadError::chunk(path, ChunkError::Corrupt("footer")));
        }
        let mut index = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index, index_offset)
            .map_err(|e| ReadError::io(path, e))?;
        if crc32fast::hash(&index) != crc {
            return Err(ReadError::chunk(path, ChunkError::Checksum("index")));
        }
        let blocks =
            parse_index(&index, index_offset, codecs).map_err(|e| ReadError::chunk(path, e))?;
        // The header sits before the first block.
        let cap = match version {
            1 => MAX_V1_HEADER,
            _ => MAX_HEADER + 16,
        };
        let mut hdr = vec![0u8; (index_offset as usize).min(cap)];
        file.read_exact_at(&mut hdr, 0)
            .map_err(|e| ReadError::io(path, e))?;
        let header = parse_header(version, &hdr).ok().map(|(h, _)| h);
        Ok(ChunkIndex {
            version,
            fingerprint: header.as_ref().map_or(0, |h| h.fingerprint),
            header,
            blocks,
            size,
            salvaged: false,
            magic_damaged: magic_version.is_none(),
            head_read: true,
        })
    }

    /// The index of a chunk object of `size` bytes from its last bytes
    /// (`tail`, which start at `tail_start`): `Ok(Err(at))` when the block
    /// index starts before `tail` (read the range `at` names and call
    /// [`ChunkIndex::from_index_bytes`]). The header is not read.
    pub fn from_tail(
        tail: &[u8],
        tail_start: u64,
        size: u64,
    ) -> Result<Result<ChunkIndex, IndexAt>, ChunkError> {
        if size < (MAGIC_V2.len() + FOOTER) as u64 || tail.len() < FOOTER {
            return Err(ChunkError::Corrupt("footer"));
        }
        let foot = &tail[tail.len() - FOOTER..];
        let codecs = index_has_codecs(&foot[16..24]).ok_or(ChunkError::Corrupt("footer"))?;
        let mut f = Reader::new(foot);
        let index_offset = f.u64le("footer")?;
        let index_len = u64::from(f.u32le("footer")?);
        let crc = f.u32le("footer")?;
        if index_offset < MAGIC_V2.len() as u64
            || index_offset
                .checked_add(index_len)
                .is_none_or(|e| e > size - FOOTER as u64)
        {
            return Err(ChunkError::Corrupt("footer"));
        }
        let at = IndexAt {
            offset: index_offset,
            len: index_len,
            crc,
            codecs,
        };
        if index_offset < tail_start {
            return Ok(Err(at));
        }
        let from = usize::try_from(index_offset - tail_start)
            .map_err(|_| ChunkError::Corrupt("footer"))?;
        let len = usize::try_from(index_len).map_err(|_| ChunkError::Corrupt("footer"))?;
        let index = tail
            .get(from..from + len)
            .ok_or(ChunkError::Corrupt("footer"))?;
        ChunkIndex::from_index_bytes(index, &at, size).map(Ok)
    }

    /// The index of a chunk object from its block index bytes (found
    /// through [`ChunkIndex::from_tail`]).
    pub fn from_index_bytes(
        index: &[u8],
        at: &IndexAt,
        size: u64,
    ) -> Result<ChunkIndex, ChunkError> {
        if crc32fast::hash(index) != at.crc {
            return Err(ChunkError::Checksum("index"));
        }
        let blocks = parse_index(index, at.offset, at.codecs)?;
        Ok(ChunkIndex {
            version: VERSION,
            header: None,
            fingerprint: 0,
            blocks,
            size,
            salvaged: false,
            // The object's head is not read here; its blocks are found
            // through the checked index alone.
            magic_damaged: false,
            head_read: false,
        })
    }

    /// [`ChunkIndex::salvage`] of a whole object already read.
    pub fn salvage_bytes(bytes: &[u8]) -> ChunkIndex {
        let magic_version = bytes.get(..MAGIC_V2.len()).and_then(version_of);
        let version = magic_version.unwrap_or(VERSION);
        let header = parse_header(version, bytes).ok().map(|(h, _)| h);
        ChunkIndex {
            version,
            fingerprint: header.as_ref().map_or(0, |h| h.fingerprint),
            header,
            blocks: salvage(bytes),
            size: bytes.len() as u64,
            salvaged: true,
            magic_damaged: magic_version.is_none(),
            head_read: true,
        }
    }

    /// Reads the whole file at `path` and finds its blocks whatever the
    /// state of the footer and index ([`salvage`]; version 2 only).
    pub fn salvage(path: &Path) -> Result<ChunkIndex, ReadError> {
        let bytes = std::fs::read(path).map_err(|e| ReadError::io(path, e))?;
        if bytes.len() < MAGIC_V2.len() {
            return Err(ReadError::chunk(path, ChunkError::Corrupt("header")));
        }
        // A damaged magic is taken for the current version's.
        let magic_version = version_of(&bytes[..MAGIC_V2.len()]);
        let version = magic_version.unwrap_or(VERSION);
        let header = parse_header(version, &bytes).ok().map(|(h, _)| h);
        let blocks = salvage(&bytes);
        Ok(ChunkIndex {
            version,
            fingerprint: header.as_ref().map_or(0, |h| h.fingerprint),
            header,
            blocks,
            size: bytes.len() as u64,
            salvaged: true,
            magic_damaged: magic_version.is_none(),
            head_read: true,
        })
    }
}

/// What [`check`] found in a chunk file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkCheck {
    /// Format version (0 when not a chunk of a known version).
    pub version: u8,
    /// The header, when intact.
    pub header: Option<ChunkHeader>,
    /// Blocks whose data columns (timestamps, lengths, lines, metadata)
    /// all pass their checksums.
    pub good: Vec<BlockMeta>,
    /// Blocks found (through the index or by salvage) with a damaged
    /// column.
    pub bad_blocks: usize,
    /// Whether the footer or index is damaged (blocks were salvaged).
    pub index_damaged: bool,
    /// Whether the magic at the start is damaged.
    pub magic_damaged: bool,
}

impl ChunkCheck {
    /// Whether nothing is damaged.
    pub fn is_intact(&self) -> bool {
        self.version != 0
            && !self.magic_damaged
            && self.header.is_some()
            && self.bad_blocks == 0
            && !self.index_damaged
    }
}

/// Checks every checksum of a whole chunk file: header, index, and every
/// data column of every block (the token filter is not needed to read a
/// block, so its damage is not counted).
///
/// The blocks are found as the reader finds them ([`ChunkIndex::read`],
/// else [`ChunkIndex::salvage`]): through the index when the footer and
/// index check out, whatever the state of the magic and the header; else
/// through their heads. So `good` is exactly what a query is served.
pub fn check(bytes: &[u8]) -> ChunkCheck {
    if bytes.len() < MAGIC_V2.len() {
        return ChunkCheck::default();
    }
    let magic_ok = version_of(&bytes[..MAGIC_V2.len()]);
    // A damaged magic is taken for the current version's (as the reader takes it).
    let version = magic_ok.unwrap_or(VERSION);
    let mut c = ChunkCheck {
        version,
        magic_damaged: magic_ok.is_none(),
        ..ChunkCheck::default()
    };
    let blocks = match parse_footer_and_index(bytes) {
        Ok((o, blocks)) => {
            c.header = parse_header(version, &bytes[..o]).ok().map(|(h, _)| h);
            blocks
        }
        Err(_) => {
            c.index_damaged = true;
            c.header = parse_header(version, bytes).ok().map(|(h, _)| h);
            salvage(bytes)
        }
    };
    for b in blocks {
        if block_readable(bytes, &b) {
            c.good.push(b);
        } else {
            c.bad_blocks += 1;
        }
    }
    if magic_ok.is_none() && c.header.is_none() && c.good.is_empty() && c.bad_blocks == 0 {
        // Nothing of a chunk: not a chunk file of a known version.
        return ChunkCheck::default();
    }
    c
}

/// Whether a block of the chunk file `bytes` has timestamps and every data
/// column (all but the token filter) passes its checksum.
pub(crate) fn block_readable(bytes: &[u8], b: &BlockMeta) -> bool {
    b.cols[0].len > 0
        && b.cols
            .iter()
            .enumerate()
            .filter(|(i, r)| *i != COL_FILTER && r.len > 0)
            .all(|(_, r)| column(bytes, *r, "column").is_ok())
}

/// Reads the byte range holding the columns `want` of a block, returning
/// the bytes and the block's description with offsets relative to them.
pub fn read_block(
    file: &std::fs::File,
    meta: &BlockMeta,
    want: &[usize],
) -> std::io::Result<(Vec<u8>, BlockMeta)> {
    let mut buf = Vec::new();
    let rel = read_block_into(file, meta, want, &mut buf)?;
    Ok((buf, rel))
}

/// Like [`read_block`], into `buf` (a buffer reused from block to block:
/// it is only zero-filled where it grows, the read overwrites the rest).
pub fn read_block_into(
    file: &std::fs::File,
    meta: &BlockMeta,
    want: &[usize],
    buf: &mut Vec<u8>,
) -> std::io::Result<BlockMeta> {
    use std::os::unix::fs::FileExt;
    let present = want.iter().map(|&i| meta.cols[i]).filter(|c| c.len > 0);
    let start = present.clone().map(|c| c.offset).min().unwrap_or(0);
    let end = present.map(|c| c.offset + c.len).max().unwrap_or(0);
    let len = usize::try_from(end - start).map_err(std::io::Error::other)?;
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
    file.read_exact_at(buf, start)?;
    let mut rel = meta.clone();
    for (i, c) in rel.cols.iter_mut().enumerate() {
        if want.contains(&i) && c.len > 0 {
            c.offset -= start;
        } else {
            *c = ColRange::default();
        }
    }
    Ok(rel)
}

/// A chunk file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file system failed.
    #[error("reading chunk {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is damaged.
    #[error("chunk {path}: {source}")]
    Chunk {
        /// The file.
        path: String,
        /// Why.
        source: ChunkError,
    },
}

impl ReadError {
    fn io(path: &Path, source: std::io::Error) -> ReadError {
        ReadError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn chunk(path: &Path, source: ChunkError) -> ReadError {
        ReadError::Chunk {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Parses a block index; `codecs`: whether each entry holds a codec byte
/// (else its blocks are snappy). An unknown codec is a version this build
/// cannot read.
fn parse_index(
    index: &[u8],
    index_offset: u64,
    codecs: bool,
) -> Result<Vec<BlockMeta>, ChunkError> {
    let mut r = Reader::new(index);
    let n = r.len("index", index.len())?;
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        let entries =
            u32::try_from(r.uvarint("index")?).map_err(|_| ChunkError::Corrupt("index"))?;
        let mint = r.varint("index")?;
        let maxt = r.varint("index")?;
        let lines_size = r.uvarint("index")?;
        let codec = if codecs {
            Codec::from_byte(r.take(1, "index")?[0]).ok_or(ChunkError::Version)?
        } else {
            Codec::Snappy
        };
        let mut cols = [ColRange::default(); NCOLS];
        for c in &mut cols {
            c.offset = r.uvarint("index")?;
            c.len = r.uvarint("index")?;
            if c.len > 0
                && (c.offset < MAGIC_V2.len() as u64
                    || c.offset.checked_add(c.len).is_none_or(|e| e > index_offset))
            {
                return Err(ChunkError::Corrupt("index"));
            }
        }
        blocks.push(BlockMeta {
            entries,
            mint,
            maxt,
            lines_size,
            codec,
            cols,
        });
    }
    Ok(blocks)
}

/// Largest WAL sequence number of a version 1 chunk, from its file name
/// (`<max_seq:016x>-<crc:08x>`).
pub fn max_seq_from_id(id: &str) -> Option<u64> {
    let (seq, crc) = id.split_once('-')?;
    if seq.len() != 16 || crc.len() != 8 || !crc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(seq, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{DecodedBlock, HeadBlock};
    use larch_query::Columns;

    fn two_blocks() -> Vec<EncodedBlock> {
        let mut h = HeadBlock::new();
        let mut out = Vec::new();
        for b in 0..2 {
            for i in 0..50 {
                h.append(b * 1000 + i, format!("block {b} line {i}").as_bytes(), b"");
            }
            out.push(h.cut());
        }
        out
    }

    fn header() -> ChunkHeader {
        ChunkHeader {
            labels: r#"{app="a"}"#.into(),
            fingerprint: 42,
            min_seq: 3,
            max_seq: 9,
            replaces: vec!["0000000000000001-00000000".into()],
        }
    }

    fn encoded() -> Vec<u8> {
        let blocks = two_blocks();
        let refs: Vec<&EncodedBlock> = blocks.iter().collect();
        encode_chunk(&header(), &refs)
    }

    #[test]
    fn round_trip() {
        let bytes = encoded();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.chunk");
        std::fs::write(&path, &bytes).unwrap();
        let idx = ChunkIndex::read(&path).unwrap();
        assert_eq!(idx.fingerprint, 42);
        assert_eq!(idx.header, Some(header()));
        assert_eq!(idx.blocks.len(), 2);
        let f = std::fs::File::open(&path).unwrap();
        let (buf, rel) = read_block(&f, &idx.blocks[1], &[0]).unwrap();
        let mut d = DecodedBlock::default();
        d.decode(&buf, &rel, Columns::NONE).unwrap();
        assert_eq!(d.ts.len(), 50);
        assert!(buf.len() < 100, "only the timestamp column is read");

        let c = ChunkFile::parse(bytes.clone()).unwrap();
        assert_eq!(c.header, header());
        assert_eq!(c.version, 3);
        assert_eq!(c.blocks.len(), 2);
        let mut d = DecodedBlock::default();
        d.decode(&c.bytes, &c.blocks[1], Columns::ALL).unwrap();
        assert_eq!(d.ts[0], 1000);
        assert_eq!(d.view(Columns::ALL).line(49), b"block 1 line 49");

        // The block heads describe the same blocks as the index.
        assert_eq!(salvage(&bytes), c.blocks);
        let chk = check(&bytes);
        assert!(chk.is_intact());
        assert_eq!(chk.good, c.blocks);
    }

    #[test]
    fn damaged_files_are_errors() {
        let bytes = encoded();
        for cut in [0, 7, 30, bytes.len() - 1] {
            assert!(ChunkFile::parse(bytes[..cut].to_vec()).is_err());
        }
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 30] ^= 1;
        assert!(ChunkFile::parse(bad).is_err());
        let mut other = bytes;
        other[7] = 9;
        assert!(matches!(ChunkFile::parse(other), Err(ChunkError::Version)));
    }

    #[test]
    fn blocks_survive_a_damaged_index_or_a_cut() {
        let bytes = encoded();
        let full = ChunkFile::parse(bytes.clone()).unwrap().blocks;
        // Damage the index: both blocks are still found.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - FOOTER - 2] ^= 0x10;
        let c = check(&bad);
        assert!(c.index_damaged);
        assert_eq!(c.good, full);
        // Cut the file inside the second block: the first is found.
        let cut = full[1].cols[2].offset as usize;
        let c = check(&bytes[..cut]);
        assert_eq!(c.good, full[..1].to_vec());
        // Damage the first block's head: the second is still found.
        let mut bad = bytes.clone();
        let first_head = full[0].cols[0].offset as usize - 3;
        bad[first_head] ^= 0xff;
        bad[n - FOOTER - 2] ^= 0x10;
        let c = check(&bad);
        assert_eq!(c.good, full[1..].to_vec());
        // Damage a lines column: that block is bad, the other good.
        let mut bad = bytes.clone();
        bad[full[0].cols[2].offset as usize + 2] ^= 1;
        let c = check(&bad);
        assert_eq!((c.good.len(), c.bad_blocks), (1, 1));
        assert!(!c.index_damaged);
    }

    #[test]
    fn a_damaged_magic_does_not_hide_blocks_behind_the_index() {
        let bytes = encoded();
        let full = ChunkFile::parse(bytes.clone()).unwrap().blocks;
        // The magic and the second block's head damaged; the index, the
        // header and every column intact.
        let mut bad = bytes.clone();
        bad[0] ^= 0xa1;
        let second_head = full[1].cols[0].offset as usize - 3;
        bad[second_head] ^= 0x2f;
        let c = check(&bad);
        assert!(c.magic_damaged && !c.index_damaged && !c.is_intact());
        assert_eq!(c.version, 3);
        assert_eq!(c.header, Some(header()));
        assert_eq!(c.good, full, "every block is found through the index");
        // The reader finds the same blocks: through the index, not by
        // walking the heads (which would miss the second block).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.chunk");
        std::fs::write(&path, &bad).unwrap();
        let idx = ChunkIndex::read(&path).unwrap();
        assert!(idx.magic_damaged && !idx.salvaged);
        assert_eq!(idx.blocks, full);
        assert_eq!(idx.header, Some(header()));
        assert_eq!(salvage(&bad), full[..1].to_vec());
        // Nothing of a chunk: not a chunk file.
        assert_eq!(check(&[7u8; 100]), ChunkCheck::default());
        // A damaged header as well: the index still finds every block.
        bad[12] ^= 0x40;
        let c = check(&bad);
        assert_eq!((c.version, c.header.is_none()), (3, true));
        assert_eq!(c.good, full);
        std::fs::write(&path, &bad).unwrap();
        let idx = ChunkIndex::read(&path).unwrap();
        assert_eq!(idx.blocks, full);
        assert!(idx.head_damaged());
    }

    #[test]
    fn an_index_found_from_the_tail_is_not_taken_for_a_damaged_head() {
        let bytes = encoded();
        let full = ChunkFile::parse(bytes.clone()).unwrap().blocks;
        let size = bytes.len() as u64;
        // The whole object as its tail: the index is in it.
        let idx = ChunkIndex::from_tail(&bytes, 0, size).unwrap().unwrap();
        assert_eq!(idx.blocks, full);
        assert!(idx.header.is_none() && !idx.head_read);
        assert!(!idx.head_damaged(), "the head was never read");
        // Only the footer as the tail: the index is read on its own.
        let start = size - FOOTER as u64;
        let at = ChunkIndex::from_tail(&bytes[start as usize..], start, size)
            .unwrap()
            .unwrap_err();
        let range = at.offset as usize..(at.offset + at.len) as usize;
        let idx = ChunkIndex::from_index_bytes(&bytes[range], &at, size).unwrap();
        assert_eq!(idx.blocks, full);
        assert!(!idx.head_damaged());
        // Read from a file, an intact head is read and found intact.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.chunk");
        std::fs::write(&path, &bytes).unwrap();
        let idx = ChunkIndex::read(&path).unwrap();
        assert!(idx.head_read && !idx.head_damaged());
    }

    #[test]
    fn index_offset_inside_the_magic_is_an_error() {
        // Footer: index at offset 0, length 0, with a valid checksum
        // (found by the chunk fuzz target).
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&[]).to_le_bytes());
        bytes.extend_from_slice(END_MAGIC_V2);
        assert!(matches!(
            ChunkFile::parse(bytes),
            Err(ChunkError::Corrupt("footer"))
        ));
    }

    #[test]
    fn max_seq_from_file_names() {
        assert_eq!(max_seq_from_id("00000000000000ff-1234abcd"), Some(255));
        assert_eq!(max_seq_from_id("ff-1234abcd"), None);
        assert_eq!(max_seq_from_id("c1"), None);
    }
}
