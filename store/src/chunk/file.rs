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

/// Serialises a chunk from its blocks (sorted in time).
pub fn encode_chunk(labels: &str, fingerprint: u64, blocks: &[&EncodedBlock]) -> Vec<u8> {
    let body: usize = blocks.iter().map(|b| b.bytes.len()).sum();
    let mut out = Vec::with_capacity(body + labels.len() + 64 + blocks.len() * 48);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, labels.as_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    let mut metas = Vec::with_capacity(blocks.len());
    for b in blocks {
        let base = out.len() as u64;
        out.extend_from_slice(&b.bytes);
        let mut m = b.meta.clone();
        for c in m.cols.iter_mut().filter(|c| c.len > 0) {
            c.offset += base;
        }
        metas.push(m);
    }
    let index_offset = out.len();
    put_uvarint(&mut out, metas.len() as u64);
    for m in &metas {
        put_uvarint(&mut out, u64::from(m.entries));
        put_varint(&mut out, m.mint);
        put_varint(&mut out, m.maxt);
        put_uvarint(&mut out, m.lines_size);
        for c in &m.cols {
            put_uvarint(&mut out, c.offset);
            put_uvarint(&mut out, c.len);
        }
    }
    let index_len = out.len() - index_offset;
    let crc = crc32fast::hash(&out[index_offset..]);
    out.extend_from_slice(&(index_offset as u64).to_le_bytes());
    out.extend_from_slice(&(index_len as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(END_MAGIC);
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

        let mut h = Reader::new(&bytes[8..index_offset]);
        let labels = h.str("labels")?.to_string();
        let fingerprint = h.u64le("fingerprint")?;

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
                if c.len > 0
                    && c.offset
                        .checked_add(c.len)
                        .is_none_or(|e| e > index_offset as u64)
                {
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
        Ok(ChunkFile {
            bytes,
            labels,
            fingerprint,
            blocks,
        })
    }
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
}
