//! The chunk file (version 1):
//!
//! ```text
//! header  "LRCHNK\x00\x01" | uvarint len + labels text | u64le fingerprint
//! blocks  the columns of every block, back to back
//! index   uvarint nblocks, then per block:
//!         uvarint entries | varint mint | varint maxt | uvarint lines size
//!         | 5 x (uvarint offset, uvarint length)   ts, lens, lines, meta, filter
//! footer  u64le index offset | u32le index length | u32le crc32(index) | "LRCHEND1"
//! ```
//! Offsets are from the start of the file. The footer lets a reader find
//! the index from the end; the index lets it skip blocks by time and token
//! filter before decompressing anything.

use super::ChunkError;
use super::block::{BlockMeta, ColRange, EncodedBlock, NCOLS};
use crate::encoding::{Reader, put_bytes, put_uvarint, put_varint};

const MAGIC: &[u8; 8] = b"LRCHNK\x00\x01";
const END_MAGIC: &[u8; 8] = b"LRCHEND1";
const FOOTER: usize = 24;

/// The parts of a chunk file around its blocks: the header, and the index
/// plus footer. The file is `head`, every block's bytes in order, `tail`;
/// writing the parts one by one spares a copy of the blocks.
pub struct ChunkParts {
    /// Magic, labels and fingerprint.
    pub head: Vec<u8>,
    /// Block index and footer.
    pub tail: Vec<u8>,
    /// Checksum of the index (names the chunk).
    pub index_crc: u32,
    /// Total file size.
    pub size: u64,
}

/// Lays out a chunk of `blocks` (sorted in time).
pub fn chunk_parts(labels: &str, fingerprint: u64, blocks: &[&EncodedBlock]) -> ChunkParts {
    let mut head = Vec::with_capacity(labels.len() + 24);
    head.extend_from_slice(MAGIC);
    put_bytes(&mut head, labels.as_bytes());
    head.extend_from_slice(&fingerprint.to_le_bytes());
    let mut offset = head.len() as u64;
    let mut index = Vec::with_capacity(8 + blocks.len() * 48);
    put_uvarint(&mut index, blocks.len() as u64);
    for b in blocks {
        let m = &b.meta;
        put_uvarint(&mut index, u64::from(m.entries));
        put_varint(&mut index, m.mint);
        put_varint(&mut index, m.maxt);
        put_uvarint(&mut index, m.lines_size);
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
    tail.extend_from_slice(END_MAGIC);
    let size = index_offset + tail.len() as u64;
    ChunkParts {
        head,
        tail,
        index_crc: crc,
        size,
    }
}

/// Serialises a chunk from its blocks (sorted in time) into one buffer.
pub fn encode_chunk(labels: &str, fingerprint: u64, blocks: &[&EncodedBlock]) -> Vec<u8> {
    let parts = chunk_parts(labels, fingerprint, blocks);
    let mut out = Vec::with_capacity(parts.size as usize);
    out.extend_from_slice(&parts.head);
    for b in blocks {
        out.extend_from_slice(&b.bytes);
    }
    out.extend_from_slice(&parts.tail);
    out
}

/// A parsed chunk file: its bytes and block index.
#[derive(Debug)]
pub struct ChunkFile {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// The stream's labels text.
    pub labels: String,
    /// The stream's fingerprint.
    pub fingerprint: u64,
    /// Its blocks, in time order.
    pub blocks: Vec<BlockMeta>,
}

impl ChunkFile {
    /// Parses and checks header, footer and index (block columns are
    /// checked when they are decoded).
    pub fn parse(bytes: Vec<u8>) -> Result<ChunkFile, ChunkError> {
        if bytes.len() < MAGIC.len() + FOOTER || &bytes[..8] != MAGIC {
            return Err(ChunkError::Version);
        }
        let foot = &bytes[bytes.len() - FOOTER..];
        if &foot[16..24] != END_MAGIC {
            return Err(ChunkError::Corrupt("footer"));
        }
        let mut f = Reader::new(foot);
        let index_offset =
            usize::try_from(f.u64le("footer")?).map_err(|_| ChunkError::Corrupt("footer"))?;
        let index_len = f.u32le("footer")? as usize;
        let crc = f.u32le("footer")?;
        let index_end = index_offset
            .checked_add(index_len)
            .filter(|&e| e <= bytes.len() - FOOTER)
            .ok_or(ChunkError::Corrupt("footer"))?;
        let index = &bytes[index_offset..index_end];
        if crc32fast::hash(index) != crc {
            return Err(ChunkError::Checksum("index"));
        }

        // The header lies between the magic and the index.
        let header = bytes
            .get(MAGIC.len()..index_offset)
            .ok_or(ChunkError::Corrupt("footer"))?;
        let mut h = Reader::new(header);
        let labels = h.str("labels")?.to_string();
        let fingerprint = h.u64le("fingerprint")?;

        let blocks = parse_index(index, index_offset as u64)?;
        Ok(ChunkFile {
            bytes,
            labels,
            fingerprint,
            blocks,
        })
    }
}

/// The index of a chunk file on disk, read without reading its blocks.
#[derive(Debug)]
pub struct ChunkIndex {
    /// The stream's fingerprint.
    pub fingerprint: u64,
    /// Its blocks, in time order, with offsets into the file.
    pub blocks: Vec<BlockMeta>,
    /// File size.
    pub size: u64,
}

impl ChunkIndex {
    /// Reads header, footer and index of the chunk file at `path`.
    pub fn read(path: &std::path::Path) -> Result<ChunkIndex, ReadError> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path).map_err(|e| ReadError::io(path, e))?;
        let size = file.metadata().map_err(|e| ReadError::io(path, e))?.len();
        if size < (MAGIC.len() + FOOTER) as u64 {
            return Err(ReadError::chunk(path, ChunkError::Version));
        }
        let mut head = [0u8; 8];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| ReadError::io(path, e))?;
        if &head != MAGIC {
            return Err(ReadError::chunk(path, ChunkError::Version));
        }
        let mut foot = [0u8; FOOTER];
        file.read_exact_at(&mut foot, size - FOOTER as u64)
            .map_err(|e| ReadError::io(path, e))?;
        if &foot[16..24] != END_MAGIC {
            return Err(ReadError::chunk(path, ChunkError::Corrupt("footer")));
        }
        let index_offset = u64::from_le_bytes(foot[0..8].try_into().unwrap_or([0; 8]));
        let index_len = u32::from_le_bytes(foot[8..12].try_into().unwrap_or([0; 4])) as u64;
        if index_offset
            .checked_add(index_len)
            .is_none_or(|e| e > size - FOOTER as u64)
        {
            return Err(ReadError::chunk(path, ChunkError::Corrupt("footer")));
        }
        // Header (labels, fingerprint) sits before the first block; read
        // the index, then rebuild a small buffer for `ChunkFile::parse`'s
        // index decoder by parsing it in place.
        let mut index = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index, index_offset)
            .map_err(|e| ReadError::io(path, e))?;
        let crc = u32::from_le_bytes(foot[12..16].try_into().unwrap_or([0; 4]));
        if crc32fast::hash(&index) != crc {
            return Err(ReadError::chunk(path, ChunkError::Checksum("index")));
        }
        let blocks = parse_index(&index, index_offset).map_err(|e| ReadError::chunk(path, e))?;
        let mut fp = [0u8; 8];
        // The fingerprint follows the labels; find it through the header.
        let mut hdr = vec![
            0u8;
            (index_offset as usize)
                .min(8 + 10 + 64 * 1024)
                .saturating_sub(8)
        ];
        file.read_exact_at(&mut hdr, 8)
            .map_err(|e| ReadError::io(path, e))?;
        let mut r = Reader::new(&hdr);
        let _labels = r
            .bytes("labels")
            .map_err(|e| ReadError::chunk(path, e.into()))?;
        fp.copy_from_slice(
            r.take(8, "fingerprint")
                .map_err(|e| ReadError::chunk(path, e.into()))?,
        );
        Ok(ChunkIndex {
            fingerprint: u64::from_le_bytes(fp),
            blocks,
            size,
        })
    }
}

/// Reads the byte range holding the columns `want` of a block, returning
/// the bytes and the block's description with offsets relative to them.
pub fn read_block(
    file: &std::fs::File,
    meta: &BlockMeta,
    want: &[usize],
) -> std::io::Result<(Vec<u8>, BlockMeta)> {
    use std::os::unix::fs::FileExt;
    let present = want.iter().map(|&i| meta.cols[i]).filter(|c| c.len > 0);
    let start = present.clone().map(|c| c.offset).min().unwrap_or(0);
    let end = present.map(|c| c.offset + c.len).max().unwrap_or(0);
    let mut buf = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut buf, start)?;
    let mut rel = meta.clone();
    for (i, c) in rel.cols.iter_mut().enumerate() {
        if want.contains(&i) && c.len > 0 {
            c.offset -= start;
        } else {
            *c = ColRange::default();
        }
    }
    Ok((buf, rel))
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
    fn io(path: &std::path::Path, source: std::io::Error) -> ReadError {
        ReadError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn chunk(path: &std::path::Path, source: ChunkError) -> ReadError {
        ReadError::Chunk {
            path: path.display().to_string(),
            source,
        }
    }
}

fn parse_index(index: &[u8], index_offset: u64) -> Result<Vec<BlockMeta>, ChunkError> {
    let mut r = Reader::new(index);
    let n = r.len("index", index.len())?;
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        let entries =
            u32::try_from(r.uvarint("index")?).map_err(|_| ChunkError::Corrupt("index"))?;
        let mint = r.varint("index")?;
        let maxt = r.varint("index")?;
        let lines_size = r.uvarint("index")?;
        let mut cols = [ColRange::default(); NCOLS];
        for c in &mut cols {
            c.offset = r.uvarint("index")?;
            c.len = r.uvarint("index")?;
            if c.len > 0 && c.offset.checked_add(c.len).is_none_or(|e| e > index_offset) {
                return Err(ChunkError::Corrupt("index"));
            }
        }
        blocks.push(BlockMeta {
            entries,
            mint,
            maxt,
            lines_size,
            cols,
        });
    }
    Ok(blocks)
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

    #[test]
    fn round_trip() {
        let blocks = two_blocks();
        let refs: Vec<&EncodedBlock> = blocks.iter().collect();
        let bytes = encode_chunk(r#"{app="a"}"#, 42, &refs);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.chunk");
        std::fs::write(&path, &bytes).unwrap();
        let idx = ChunkIndex::read(&path).unwrap();
        assert_eq!(idx.fingerprint, 42);
        assert_eq!(idx.blocks.len(), 2);
        let f = std::fs::File::open(&path).unwrap();
        let (buf, rel) = read_block(&f, &idx.blocks[1], &[0]).unwrap();
        let mut d = DecodedBlock::default();
        d.decode(
            &buf,
            &rel,
            Columns {
                lines: false,
                metadata: false,
            },
        )
        .unwrap();
        assert_eq!(d.ts.len(), 50);
        assert!(buf.len() < 100, "only the timestamp column is read");

        let c = ChunkFile::parse(bytes).unwrap();
        assert_eq!(c.labels, r#"{app="a"}"#);
        assert_eq!(c.fingerprint, 42);
        assert_eq!(c.blocks.len(), 2);
        let mut d = DecodedBlock::default();
        d.decode(&c.bytes, &c.blocks[1], Columns::ALL).unwrap();
        assert_eq!(d.ts[0], 1000);
        assert_eq!(d.view(Columns::ALL).line(49), b"block 1 line 49");
    }

    #[test]
    fn damaged_files_are_errors() {
        let blocks = two_blocks();
        let refs: Vec<&EncodedBlock> = blocks.iter().collect();
        let bytes = encode_chunk(r#"{app="a"}"#, 42, &refs);
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
    fn index_offset_inside_the_magic_is_an_error() {
        // Footer: index at offset 0, length 0, with a valid checksum
        // (found by the chunk fuzz target).
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&[]).to_le_bytes());
        bytes.extend_from_slice(END_MAGIC);
        assert!(matches!(
            ChunkFile::parse(bytes),
            Err(ChunkError::Corrupt("footer"))
        ));
    }
}
