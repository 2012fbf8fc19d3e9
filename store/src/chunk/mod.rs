//! Chunks: a stream's entries over a time span, as compressed blocks
//! (snappy, LZ4, zstd or none, per block), in one file (format in
//! ARCHITECTURE.md and [`mod@file`]).

pub mod block;
pub mod codec;
pub mod file;
pub mod filter;

pub use block::{BlockMeta, DecodedBlock, EncodedBlock, HeadBlock};
pub use codec::{Codec, Encoding};
pub use file::{
    ChunkCheck, ChunkFile, ChunkHeader, ChunkIndex, ChunkParts, IndexAt, ReadError, check,
    chunk_parts, encode_chunk, max_seq_from_id, read_block, read_block_into, salvage,
};

use crate::encoding::Malformed;

/// A chunk that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Structure is broken (truncated file, impossible sizes).
    #[error("corrupt chunk: bad {0}")]
    Corrupt(&'static str),
    /// A checksum does not match.
    #[error("corrupt chunk: checksum mismatch in {0}")]
    Checksum(&'static str),
    /// Not a chunk, or a version this build cannot read.
    #[error("not a chunk file of a supported version")]
    Version,
}

impl ChunkError {
    pub(crate) fn corrupt(what: &'static str) -> ChunkError {
        ChunkError::Corrupt(what)
    }
}

impl From<Malformed> for ChunkError {
    fn from(m: Malformed) -> ChunkError {
        ChunkError::Corrupt(m.what)
    }
}
