//! The boundary between the engine and storage.
//!
//! The store implements [`LogSource`]. The engine asks it for the streams a
//! selector matches ([`LogSource::streams`]) and then scans each stream
//! ([`LogSource::scan`]), receiving decoded [`Block`]s through a callback.
//!
//! Contract of a scan (the store guarantees it, the engine relies on it):
//! * Within a block, entries are sorted by timestamp, ascending, and
//!   deduplicated (no two entries with equal timestamp, line and metadata).
//! * Blocks are delivered in the requested [`Direction`] and never overlap
//!   in time: every entry of a later block is at or after (forward) / at or
//!   before (backward) every entry of an earlier one. The store merges
//!   overlapping chunks (out-of-order writes) before delivering them.
//! * A block may hold entries outside `[start, end)`; the engine trims.
//! * Columns not asked for in [`Columns`] may be empty slices.
//! * Only when the request carries [`ScanRequest::whole`]: a block whose
//!   entries all lie in `[start, end)` and in one of its segments may come
//!   without timestamps, described by [`Block::whole`] instead.
//! * A block whose token filter proves it lacks one of
//!   [`ScanRequest::must_contain`] may be skipped; skipping is an
//!   optimisation, never a change of result.

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::labels::LabelSet;
use crate::matcher::Matcher;

/// Errors from storage, passed through the engine unchanged.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Order in which entries are wanted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default for log queries).
    #[default]
    Backward,
}

/// A stream selected by [`LogSource::streams`].
#[derive(Clone, Debug)]
pub struct StreamInfo {
    /// The stream's fingerprint ([`LabelSet::fingerprint`]).
    pub id: u64,
    /// The stream's labels.
    pub labels: Arc<LabelSet>,
}

/// Which columns of a block the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    /// Line bytes and offsets. `count_over_time` without filters needs
    /// only timestamps.
    pub lines: bool,
    /// Line lengths (the offsets) without the line bytes: what
    /// `bytes_over_time` without filters or stages needs. Implied by
    /// `lines`.
    pub lengths: bool,
    /// Structured metadata.
    pub metadata: bool,
}

impl Columns {
    /// Every column.
    pub const ALL: Columns = Columns {
        lines: true,
        lengths: true,
        metadata: true,
    };

    /// Timestamps only.
    pub const NONE: Columns = Columns {
        lines: false,
        lengths: false,
        metadata: false,
    };

    /// Whether the line offsets are needed: for the lines or for their
    /// lengths alone.
    pub fn offsets(&self) -> bool {
        self.lines || self.lengths
    }
}

/// A byte string every matching line contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Whether the match ignores ASCII case.
    pub case_insensitive: bool,
}

/// What to scan.
#[derive(Clone, Debug)]
pub struct ScanRequest {
    /// Inclusive start, Unix nanoseconds.
    pub start: i64,
    /// Exclusive end, Unix nanoseconds.
    pub end: i64,
    /// Block order.
    pub direction: Direction,
    /// Columns needed.
    pub columns: Columns,
    /// Literals that every matching line contains; blocks proven to lack
    /// one of them may be skipped.
    pub must_contain: Vec<Literal>,
    /// Set by a caller that needs no timestamps of a block lying wholly
    /// inside one of its segments (a range aggregation counting or
    /// summing bytes); `None` for every block with its timestamps.
    pub whole: Option<WholeBlocks>,
}

/// What [`ScanRequest::whole`] says: where the caller's segments are cut,
/// and what it needs of a block wholly inside one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WholeBlocks {
    /// Sorted cut points; segment `j` is `(cuts[j], cuts[j + 1]]`.
    pub cuts: Arc<[i64]>,
    /// Columns needed of such a block (never its timestamps).
    pub columns: Columns,
}

impl WholeBlocks {
    /// Whether every entry of a block spanning `[mint, maxt]` lies in one
    /// segment and in `[start, end)`.
    pub fn holds(&self, mint: i64, maxt: i64, start: i64, end: i64) -> bool {
        if mint < start || maxt >= end || mint > maxt {
            return false;
        }
        let j = self.cuts.partition_point(|&c| c < mint);
        j > 0 && j < self.cuts.len() && maxt <= self.cuts[j]
    }
}

/// A block delivered without its timestamps ([`ScanRequest::whole`]):
/// what the store's block index says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Whole {
    /// Entries.
    pub entries: usize,
    /// Smallest timestamp.
    pub mint: i64,
    /// Largest timestamp.
    pub maxt: i64,
    /// Bytes of all its lines.
    pub lines_size: u64,
}

/// One decoded block: parallel columns over `n` entries.
#[derive(Clone, Copy, Debug)]
pub struct Block<'a> {
    /// Timestamps (Unix ns), ascending; `n` values.
    pub timestamps: &'a [i64],
    /// `n + 1` offsets: line `i` is `lines[offsets[i]..offsets[i + 1]]`.
    /// Empty when neither lines nor their lengths were requested
    /// ([`Columns::offsets`]); with lengths alone, `lines` is empty and
    /// only [`Block::line_len`] is meaningful.
    pub offsets: &'a [u32],
    /// All line bytes of the block, contiguous, in entry order. Lines are
    /// valid UTF-8 (push validates them) and may contain `\n`.
    pub lines: &'a [u8],
    /// `n + 1` offsets into `metadata`, or empty when no entry of the
    /// block has structured metadata (or it was not requested).
    pub metadata_offsets: &'a [u32],
    /// Structured metadata of all entries; see [`decode_metadata`].
    pub metadata: &'a [u8],
    /// Set when the block comes without timestamps (`timestamps` is then
    /// empty; the other columns are those of [`WholeBlocks::columns`]).
    pub whole: Option<Whole>,
}

impl<'a> Block<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self.whole {
            Some(w) => w.entries,
            None => self.timestamps.len(),
        }
    }

    /// Whether the block has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Line `i`, when lines were requested.
    pub fn line(&self, i: usize) -> &'a [u8] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => self.lines.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Length in bytes of line `i`, when lines or their lengths were
    /// requested (0 otherwise).
    pub fn line_len(&self, i: usize) -> usize {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => e.saturating_sub(s) as usize,
            _ => 0,
        }
    }

    /// Encoded structured metadata of entry `i` (empty when it has none).
    pub fn metadata(&self, i: usize) -> &'a [u8] {
        match (
            self.metadata_offsets.get(i),
            self.metadata_offsets.get(i + 1),
        ) {
            (Some(&s), Some(&e)) => self.metadata.get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// Appends `pairs` to `out` in the encoding [`decode_metadata`] reads.
pub fn encode_metadata<'a>(out: &mut Vec<u8>, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in pairs {
        put_str(out, name);
        put_str(out, value);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(s.as_bytes());
}

/// Decodes one entry's structured metadata: repeated
/// `uvarint(len) name uvarint(len) value`. Stops at the first malformed
/// pair (the store validates what it writes, so that means corruption).
pub fn decode_metadata(mut buf: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    std::iter::from_fn(move || {
        let name = take_str(&mut buf)?;
        let value = take_str(&mut buf)?;
        Some((name, value))
    })
}

fn take_str<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    let mut len: usize = 0;
    let mut shift = 0;
    loop {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
    if len > buf.len() {
        return None;
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    std::str::from_utf8(s).ok()
}

/// Statistics of one scan, summed into Loki's query statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Chunks referenced by the scan.
    pub chunks_ref: u64,
    /// Chunks read from disk.
    pub chunks_downloaded: u64,
    /// Blocks considered.
    pub blocks: u64,
    /// Blocks skipped by time bounds or token filter.
    pub blocks_skipped: u64,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// Bytes after decompression.
    pub decompressed_bytes: u64,
    /// Entries decoded from flushed chunks.
    pub decompressed_lines: u64,
    /// Bytes read from in-memory head data.
    pub head_chunk_bytes: u64,
    /// Entries read from in-memory head data.
    pub head_chunk_lines: u64,
    /// Duplicates removed while merging overlapping chunks.
    pub duplicates: u64,
}

impl ScanStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ScanStats) {
        self.chunks_ref += other.chunks_ref;
        self.chunks_downloaded += other.chunks_downloaded;
        self.blocks += other.blocks;
        self.blocks_skipped += other.blocks_skipped;
        self.compressed_bytes += other.compressed_bytes;
        self.decompressed_bytes += other.decompressed_bytes;
        self.decompressed_lines += other.decompressed_lines;
        self.head_chunk_bytes += other.head_chunk_bytes;
        self.head_chunk_lines += other.head_chunk_lines;
        self.duplicates += other.duplicates;
    }
}

/// Storage as the engine sees it. Implementations are shared between
/// threads; scans of different streams may run in parallel.
pub trait LogSource: Send + Sync {
    /// Streams of `tenant` whose labels satisfy every matcher and that may
    /// hold entries in `[start, end)`.
    fn streams(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<StreamInfo>, SourceError>;

    /// Delivers the blocks of one stream (see the module docs for the
    /// contract). The callback returns `Break` to stop early.
    fn scan(
        &self,
        tenant: &str,
        stream: &StreamInfo,
        request: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trip_and_truncation() {
        let mut buf = Vec::new();
        for (n, v) in [("trace_id", "abc"), ("user", "")] {
            buf.push(n.len() as u8);
            buf.extend_from_slice(n.as_bytes());
            buf.push(v.len() as u8);
            buf.extend_from_slice(v.as_bytes());
        }
        let pairs: Vec<_> = decode_metadata(&buf).collect();
        assert_eq!(pairs, vec![("trace_id", "abc"), ("user", "")]);
        let cut: Vec<_> = decode_metadata(&buf[..5]).collect();
        assert!(cut.is_empty());
        let mut encoded = Vec::new();
        encode_metadata(&mut encoded, [("trace_id", "abc"), ("user", "")]);
        assert_eq!(encoded, buf);
        let long = "x".repeat(300);
        encoded.clear();
        encode_metadata(&mut encoded, [(long.as_str(), "v")]);
        let pairs: Vec<_> = decode_metadata(&encoded).collect();
        assert_eq!(pairs, vec![(long.as_str(), "v")]);
    }

    #[test]
    fn block_accessors_tolerate_missing_columns() {
        let b = Block {
            timestamps: &[1, 2],
            offsets: &[0, 3, 5],
            lines: b"abcde",
            metadata_offsets: &[],
            metadata: &[],
            whole: None,
        };
        assert_eq!(b.line(1), b"de");
        assert_eq!(b.line(7), b"");
        assert_eq!(b.metadata(0), b"");
    }

    #[test]
    fn whole_blocks_lie_in_one_segment_and_the_range() {
        let w = WholeBlocks {
            cuts: Arc::from(vec![0, 10, 20]),
            columns: Columns::ALL,
        };
        assert!(w.holds(1, 10, 0, 100));
        assert!(w.holds(11, 11, 0, 100));
        assert!(!w.holds(0, 5, 0, 100), "0 is in the segment before");
        assert!(!w.holds(5, 11, 0, 100), "straddles 10");
        assert!(!w.holds(21, 25, 0, 100), "after the last cut");
        assert!(!w.holds(1, 10, 2, 100), "starts before the range");
        assert!(!w.holds(1, 10, 0, 10), "ends at the range's end");
        assert!(!w.holds(5, 4, 0, 100));
    }
}
