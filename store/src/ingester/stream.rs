//! One stream in memory: its flushed chunks (references), sealed chunks
//! waiting for the flusher, and the open chunk (closed blocks plus the
//! uncompressed head block).
//!
//! Only the WAL writer appends; only the flusher seals by age and retires
//! flushed chunks; queries take a [`Snapshot`]. All of them hold the
//! stream's mutex only briefly.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use larch_query::{Block, Columns, LabelSet};
use parking_lot::Mutex;

use crate::chunk::{DecodedBlock, EncodedBlock, HeadBlock};
use crate::index::{ChunkRef, StreamId};

/// Sizes that govern cutting.
#[derive(Clone, Copy, Debug)]
pub struct CutPolicy {
    /// Head block size that triggers a cut.
    pub block_size: usize,
    /// Compressed size that seals a chunk.
    pub chunk_target_size: u64,
    /// How cut blocks are compressed.
    pub encoding: crate::chunk::Encoding,
}

/// A stream.
#[derive(Debug)]
pub struct Stream {
    /// Dense id within the tenant.
    pub id: StreamId,
    /// Fingerprint of the labels.
    pub fp: u64,
    /// Labels, packed: a store holds a million of them.
    pub labels: PackedLabels,
    /// Mutable state.
    pub state: Mutex<StreamState>,
}

/// A stream's labels in one allocation, about a quarter of what a
/// [`LabelSet`] takes (its vector, and two strings per label, each a
/// separate allocation of at least 32 bytes): with a million active
/// streams of Kubernetes label sets that is about 700 MiB less (measured
/// in BENCHMARKS.md, "Cardinality").
///
/// The text holds, for each label in name order, the length of its name
/// as one `char`, the name, the length of its value as one `char`, the
/// value. A length `n` is the char `n` below the surrogates (`0xD800`),
/// `n + 0x800` above them, so lengths below 128 take one byte and slices
/// are taken without any unsafe code. A set with a name or value longer
/// than [`PackedLabels::MAX_PART`] bytes (over a megabyte: the label
/// limits refuse far less) is kept as its `LabelSet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackedLabels {
    /// The packed text.
    Packed(Box<str>),
    /// A set too long to pack.
    Set(Arc<LabelSet>),
}

impl PackedLabels {
    /// The longest name or value that is packed.
    pub const MAX_PART: usize = 0x10_FFFF - 0x800;

    /// Packs `set`.
    pub fn new(set: &LabelSet) -> PackedLabels {
        if set
            .iter()
            .any(|l| l.name.len() > Self::MAX_PART || l.value.len() > Self::MAX_PART)
        {
            return PackedLabels::Set(Arc::new(set.clone()));
        }
        let len: usize = set.iter().map(|l| l.name.len() + l.value.len() + 2).sum();
        let mut text = String::with_capacity(len);
        for l in set {
            push_len(&mut text, l.name.len());
            text.push_str(&l.name);
            push_len(&mut text, l.value.len());
            text.push_str(&l.value);
        }
        PackedLabels::Packed(text.into_boxed_str())
    }

    /// `(name, value)` in name order.
    pub fn iter(&self) -> PackedIter<'_> {
        match self {
            PackedLabels::Packed(text) => PackedIter::Packed(text),
            PackedLabels::Set(set) => PackedIter::Set(set.iter()),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The labels as a set.
    pub fn to_set(&self) -> LabelSet {
        match self {
            PackedLabels::Packed(_) => LabelSet::from_pairs(self.iter()),
            PackedLabels::Set(set) => (**set).clone(),
        }
    }

    /// The labels as a shared set.
    pub fn to_arc(&self) -> Arc<LabelSet> {
        match self {
            PackedLabels::Packed(_) => Arc::new(self.to_set()),
            PackedLabels::Set(set) => set.clone(),
        }
    }
}

impl std::fmt::Display for PackedLabels {
    /// As [`LabelSet`]'s: `{a="1", b="x\"y"}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_set().fmt(f)
    }
}

fn push_len(text: &mut String, n: usize) {
    let code = if n < 0xD800 { n } else { n + 0x800 };
    // Below 0x110000 and outside the surrogates by construction.
    text.push(char::from_u32(code as u32).unwrap_or(char::REPLACEMENT_CHARACTER));
}

/// Reads a length at the start of `text`: `(length, bytes it took)`.
fn read_len(text: &str) -> Option<(usize, usize)> {
    let c = text.chars().next()?;
    let code = c as usize;
    let n = if code < 0xD800 { code } else { code - 0x800 };
    Some((n, c.len_utf8()))
}

/// The labels of a [`PackedLabels`], as `(name, value)`.
#[derive(Debug)]
pub enum PackedIter<'a> {
    /// The rest of a packed text.
    Packed(&'a str),
    /// A set's.
    Set(std::slice::Iter<'a, larch_query::Label>),
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match self {
            PackedIter::Set(it) => it.next().map(|l| (l.name.as_str(), l.value.as_str())),
            PackedIter::Packed(text) => {
                let mut part = || {
                    let (n, at) = read_len(text)?;
                    let s = text.get(at..at + n)?;
                    *text = &text[at + n..];
                    Some(s)
                };
                let name = part()?;
                let value = part()?;
                Some((name, value))
            }
        }
    }
}

/// A chunk sealed in memory, waiting to be written.
#[derive(Debug)]
pub struct SealedChunk {
    /// Its blocks, in cut order.
    pub blocks: Vec<Arc<EncodedBlock>>,
    /// Smallest WAL sequence number of its entries.
    pub first_seq: u64,
    /// Largest WAL sequence number applied to the stream when sealed.
    pub max_seq: u64,
    /// Time bounds.
    pub mint: i64,
    /// Time bounds.
    pub maxt: i64,
    /// Entries.
    pub entries: u64,
}

impl SealedChunk {
    /// Uncompressed bytes of its lines.
    pub fn raw_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.meta.lines_size).sum()
    }
}

/// What a stream holds within a time range (for `/index/stats` and
/// `/index/volume`). Chunks count when they overlap the range; bytes and
/// entries of a chunk are prorated by how much of its span overlaps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RangeStats {
    /// Chunks overlapping the range (flushed, sealed and the open one).
    pub chunks: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
}

pub(crate) fn prorate(value: u64, mint: i64, maxt: i64, start: i64, end: i64) -> u64 {
    if maxt <= mint {
        return value;
    }
    let lo = mint.max(start);
    let hi = maxt.min(end);
    if hi <= lo {
        return if mint >= start && mint < end {
            value
        } else {
            0
        };
    }
    let frac = (hi - lo) as f64 / (maxt - mint) as f64;
    (value as f64 * frac.min(1.0)).round() as u64
}

/// The chunk being filled.
#[derive(Debug)]
pub struct OpenChunk {
    /// Closed (compressed) blocks.
    pub blocks: Vec<Arc<EncodedBlock>>,
    /// The head block.
    pub head: HeadBlock,
    /// Stored size of `blocks`.
    pub compressed: u64,
    /// Entries held.
    pub entries: u64,
    /// Smallest sequence number of its entries (0 when empty).
    pub first_seq: u64,
    /// When the first entry arrived.
    pub created: Instant,
    /// Fingerprints of the entries held ([`entry_fingerprint`]), built on
    /// the first lookup from the entries themselves (its blocks decoded
    /// once), then kept up to date: streams written in order never need
    /// one (an entry newer than everything held cannot be a duplicate),
    /// and do not hash their entries at all.
    ///
    /// Boxed on purpose: an empty `Option<HashSet>` takes 32 bytes in
    /// every stream, the box 8, and few streams ever need the set.
    #[allow(clippy::box_collection)]
    dedup: Option<Box<HashSet<u64, BuildIdentity>>>,
}

impl OpenChunk {
    /// The fingerprints of every entry held, read back from its blocks
    /// and its head: the duplicate set of a stream that needs one for the
    /// first time. A closed block is one this store encoded in memory and
    /// always decodes; one that did not would add nothing, and a
    /// duplicate of its entries would be kept (a line shown twice, never
    /// one lost).
    fn fingerprints(&self) -> HashSet<u64, BuildIdentity> {
        let mut set = HashSet::with_capacity_and_hasher(
            usize::try_from(self.entries).unwrap_or(0),
            BuildIdentity,
        );
        let mut add = |b: &Block<'_>| {
            for (i, &ts) in b.timestamps.iter().enumerate() {
                set.insert(entry_fingerprint(ts, b.line(i), b.metadata(i)));
            }
        };
        let mut d = DecodedBlock::default();
        for b in &self.blocks {
            if d.decode(&b.bytes, &b.meta, Columns::ALL).is_ok() {
                add(&d.view(Columns::ALL));
            }
        }
        add(&self.head.view());
        set
    }

    fn new() -> OpenChunk {
        OpenChunk {
            blocks: Vec::new(),
            head: HeadBlock::new(),
            compressed: 0,
            entries: 0,
            first_seq: 0,
            created: Instant::now(),
            dedup: None,
        }
    }

    /// Whether it holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn bounds(&self) -> Option<(i64, i64)> {
        let mut b: Option<(i64, i64)> = self.head.bounds();
        for blk in &self.blocks {
            b = Some(match b {
                None => (blk.meta.mint, blk.meta.maxt),
                Some((lo, hi)) => (lo.min(blk.meta.mint), hi.max(blk.meta.maxt)),
            });
        }
        b
    }
}

/// Mutable state of a stream.
#[derive(Debug)]
pub struct StreamState {
    /// Flushed chunks, sorted by `mint`.
    pub chunks: Vec<ChunkRef>,
    /// Highest `max_seq` among flushed chunks: WAL entries of this stream
    /// at or below it are already durable in chunks.
    pub flushed_max_seq: u64,
    /// Sealed chunks waiting for the flusher, oldest first.
    pub sealed: VecDeque<Arc<SealedChunk>>,
    /// Chunks written to the bucket and the journal but not yet named by a
    /// published segment (write nodes): still served from memory, and
    /// their entries kept in the WAL.
    pub pending: Vec<(Arc<SealedChunk>, ChunkRef)>,
    /// Chunks this write node published, with when (wall clock, ns), for
    /// readers whose view of the bucket is older (pruned after an hour).
    pub recent: Vec<(i64, ChunkRef)>,
    /// The chunk being filled.
    pub open: OpenChunk,
    /// Newest timestamp ever accepted (for the out-of-order window).
    pub max_ts: i64,
    /// Highest WAL sequence number applied.
    pub last_seq: u64,
    /// When the last entry arrived.
    pub last_append: Instant,
    /// Whether the index log already names this stream.
    pub logged: bool,
}

impl Default for StreamState {
    fn default() -> StreamState {
        StreamState {
            chunks: Vec::new(),
            flushed_max_seq: 0,
            sealed: VecDeque::new(),
            pending: Vec::new(),
            recent: Vec::new(),
            open: OpenChunk::new(),
            max_ts: i64::MIN,
            last_seq: 0,
            last_append: Instant::now(),
            logged: false,
        }
    }
}

/// Outcome of offering an entry to [`StreamState::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: append it.
    Accept,
    /// Identical to an entry already held: drop silently.
    Duplicate,
    /// Older than the out-of-order window allows.
    TooFarBehind,
}

/// Fingerprint of an entry for deduplication: xxh3 of the line, seeded
/// with the timestamp and a hash of the metadata (one-shot hashing; a
/// streaming hasher costs more to set up than a short line costs to hash).
pub fn entry_fingerprint(ts: i64, line: &[u8], meta: &[u8]) -> u64 {
    let meta_hash = if meta.is_empty() {
        0
    } else {
        xxhash_rust::xxh3::xxh3_64(meta)
    };
    xxhash_rust::xxh3::xxh3_64_with_seed(line, (ts as u64) ^ meta_hash.rotate_left(17))
}

impl StreamState {
    /// Whether the stream holds unflushed data (counts against the active
    /// stream limit).
    pub fn is_active(&self) -> bool {
        !self.open.is_empty() || !self.sealed.is_empty() || !self.pending.is_empty()
    }

    /// Decides what to do with an entry (stored state is unchanged, but
    /// the duplicate set may be built). `window` is how far behind the
    /// newest entry an entry may be (`None` during WAL replay, which
    /// accepts everything it finds).
    pub fn check(&mut self, ts: i64, line: &[u8], meta: &[u8], window: Option<i64>) -> Verdict {
        if let Some(w) = window
            && self.max_ts != i64::MIN
            && ts < self.max_ts.saturating_sub(w)
        {
            return Verdict::TooFarBehind;
        }
        if ts <= self.max_ts {
            if self.open.dedup.is_none() {
                self.open.dedup = Some(Box::new(self.open.fingerprints()));
            }
            if self
                .open
                .dedup
                .as_ref()
                .is_some_and(|set| set.contains(&entry_fingerprint(ts, line, meta)))
            {
                return Verdict::Duplicate;
            }
        }
        Verdict::Accept
    }

    /// Notes that entries just arrived (for the idle-period flush). Called
    /// once per append batch, not per entry.
    pub fn touch(&mut self) {
        self.last_append = Instant::now();
    }

    /// Appends an accepted entry from WAL record `seq`, cutting the head
    /// block when full. The chunk is not sealed here, even when it reaches
    /// its target size: a chunk must hold whole records of its stream
    /// (replay skips a record for the stream once a chunk holding its
    /// sequence number is flushed), so callers seal with
    /// [`StreamState::seal_if_full`] once the record's entries for the
    /// stream are all appended.
    pub fn append(&mut self, seq: u64, ts: i64, line: &[u8], meta: &[u8], policy: CutPolicy) {
        if self.open.is_empty() {
            self.open.first_seq = seq;
            self.open.created = Instant::now();
        }
        if let Some(set) = &mut self.open.dedup {
            set.insert(entry_fingerprint(ts, line, meta));
        }
        self.open.head.set_encoding(policy.encoding);
        self.open.head.append(ts, line, meta);
        self.open.entries += 1;
        self.max_ts = self.max_ts.max(ts);
        self.last_seq = self.last_seq.max(seq);
        if self.open.head.size() >= policy.block_size {
            let block = self.open.head.cut_full();
            self.push_block(block);
        }
    }

    /// Seals the open chunk if it reached its target size (call between
    /// records, see [`StreamState::append`]); a sealed chunk is returned
    /// for the flusher.
    pub fn seal_if_full(&mut self, policy: CutPolicy) -> Option<Arc<SealedChunk>> {
        if self.open.compressed >= policy.chunk_target_size {
            self.seal()
        } else {
            None
        }
    }

    fn cut_head(&mut self) {
        if self.open.head.is_empty() {
            return;
        }
        let block = self.open.head.cut();
        self.push_block(block);
    }

    fn push_block(&mut self, block: EncodedBlock) {
        self.open.compressed += block.meta.stored_size();
        self.open.blocks.push(Arc::new(block));
    }

    /// Seals the open chunk (if it holds anything) and queues it for
    /// flushing.
    pub fn seal(&mut self) -> Option<Arc<SealedChunk>> {
        if self.open.is_empty() {
            return None;
        }
        self.cut_head();
        let open = std::mem::replace(&mut self.open, OpenChunk::new());
        let (mint, maxt) = open.bounds().unwrap_or((0, 0));
        let sealed = Arc::new(SealedChunk {
            blocks: open.blocks,
            first_seq: open.first_seq,
            max_seq: self.last_seq,
            mint,
            maxt,
            entries: open.entries,
        });
        self.sealed.push_back(sealed.clone());
        Some(sealed)
    }

    /// Replaces a flushed sealed chunk by its reference on disk.
    pub fn retire(&mut self, sealed: &Arc<SealedChunk>, chunk: ChunkRef) {
        if let Some(pos) = self.sealed.iter().position(|s| Arc::ptr_eq(s, sealed)) {
            self.sealed.remove(pos);
        }
        self.flushed_max_seq = self.flushed_max_seq.max(chunk.max_seq);
        self.add_chunk(chunk);
    }

    /// Moves a written chunk to `pending` until a segment names it (write
    /// nodes): its entries count as flushed for replay, not for the WAL.
    pub fn written(&mut self, sealed: &Arc<SealedChunk>, chunk: ChunkRef) {
        if let Some(pos) = self.sealed.iter().position(|s| Arc::ptr_eq(s, sealed)) {
            self.sealed.remove(pos);
        }
        self.flushed_max_seq = self.flushed_max_seq.max(chunk.max_seq);
        self.pending.push((sealed.clone(), chunk));
    }

    /// Retires pending chunks named by a published segment (`ids`), at
    /// wall-clock time `now`; forgets published chunks older than an hour
    /// from `recent`.
    pub fn published(&mut self, ids: &std::collections::HashSet<String>, now: i64) {
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, c)| ids.contains(&c.id));
        self.pending = keep;
        for (_, c) in done {
            self.recent.push((now, c.clone()));
            self.add_chunk(c);
        }
        let cutoff = now.saturating_sub(3_600_000_000_000);
        self.recent.retain(|(t, _)| *t >= cutoff);
    }

    /// Adds a flushed chunk reference, keeping `chunks` sorted.
    pub fn add_chunk(&mut self, chunk: ChunkRef) {
        let at = self
            .chunks
            .partition_point(|c| (c.mint, &c.id) < (chunk.mint, &chunk.id));
        self.chunks.insert(at, chunk);
    }

    /// Smallest WAL sequence number whose entries are not yet durable in a
    /// chunk, if any.
    pub fn min_unflushed_seq(&self) -> Option<u64> {
        let sealed = self
            .sealed
            .front()
            .map(|s| s.first_seq)
            .into_iter()
            .chain(self.pending.iter().map(|(s, _)| s.first_seq))
            .min();
        let open = (!self.open.is_empty()).then_some(self.open.first_seq);
        match (sealed, open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time bounds of everything the stream holds.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        let mut b = self.open.bounds();
        let mut widen = |lo: i64, hi: i64| {
            b = Some(match b {
                None => (lo, hi),
                Some((a, z)) => (a.min(lo), z.max(hi)),
            });
        };
        for s in self
            .sealed
            .iter()
            .chain(self.pending.iter().map(|(s, _)| s))
        {
            widen(s.mint, s.maxt);
        }
        if let (Some(first), Some(max_hi)) = (
            self.chunks.first(),
            self.chunks.iter().map(|c| c.maxt).max(),
        ) {
            widen(first.mint, max_hi);
        }
        b
    }

    /// Bounds, entries and uncompressed bytes of the open chunk.
    pub fn open_summary(&self) -> Option<(i64, i64, u64, u64)> {
        let (lo, hi) = self.open.bounds()?;
        let bytes = self
            .open
            .blocks
            .iter()
            .map(|b| b.meta.lines_size)
            .sum::<u64>()
            + self.open.head.size() as u64;
        Some((lo, hi, self.open.entries, bytes))
    }

    /// Chunks, bytes and entries within `[start, end)`.
    pub fn range_stats(&self, start: i64, end: i64) -> RangeStats {
        let mut r = RangeStats::default();
        let mut add = |mint: i64, maxt: i64, bytes: u64, entries: u64| {
            if maxt >= start && mint < end {
                r.chunks += 1;
                r.bytes += prorate(bytes, mint, maxt, start, end);
                r.entries += prorate(entries, mint, maxt, start, end);
            }
        };
        for c in &self.chunks {
            add(c.mint, c.maxt, c.raw_bytes, c.entries);
        }
        for s in self
            .sealed
            .iter()
            .chain(self.pending.iter().map(|(s, _)| s))
        {
            add(s.mint, s.maxt, s.raw_bytes(), s.entries);
        }
        if let Some((lo, hi)) = self.open.bounds() {
            let bytes = self
                .open
                .blocks
                .iter()
                .map(|b| b.meta.lines_size)
                .sum::<u64>()
                + self.open.head.size() as u64;
            add(lo, hi, bytes, self.open.entries);
        }
        r
    }

    /// Copies what a query needs, so the scan runs without the lock.
    pub fn snapshot(&self) -> Snapshot {
        let mut head = DecodedBlock::default();
        self.open.head.to_decoded(&mut head);
        Snapshot {
            chunks: self.chunks.clone(),
            sealed: self
                .pending
                .iter()
                .map(|(s, _)| s.clone())
                .chain(self.sealed.iter().cloned())
                .collect(),
            open_blocks: self.open.blocks.clone(),
            head,
        }
    }
}

/// A consistent view of a stream for one scan.
#[derive(Debug)]
pub struct Snapshot {
    /// Flushed chunks.
    pub chunks: Vec<ChunkRef>,
    /// Sealed chunks not yet flushed.
    pub sealed: Vec<Arc<SealedChunk>>,
    /// Closed blocks of the open chunk.
    pub open_blocks: Vec<Arc<EncodedBlock>>,
    /// The head block, sorted.
    pub head: DecodedBlock,
}

/// A hasher for keys that are already uniform hashes.
#[derive(Clone, Copy, Default, Debug)]
pub struct BuildIdentity;

impl std::hash::BuildHasher for BuildIdentity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// See [`BuildIdentity`].
#[derive(Default, Debug)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A packed set reads back as the set, label by label, through
        /// `get` and in its text form.
        #[test]
        fn packed_labels_read_back(
            pairs in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{0,40}", 0..10),
        ) {
            let set = LabelSet::from_pairs(pairs.clone());
            let packed = PackedLabels::new(&set);
            prop_assert!(matches!(packed, PackedLabels::Packed(_)));
            prop_assert_eq!(packed.to_set(), set.clone());
            prop_assert_eq!(packed.iter().count(), pairs.len());
            for (n, v) in &pairs {
                prop_assert_eq!(packed.get(n), Some(v.as_str()));
            }
            prop_assert_eq!(packed.get("NOPE"), None);
            prop_assert_eq!(packed.to_string(), set.to_string());
        }
    }

    #[test]
    fn packed_lengths_around_the_surrogates_and_past_the_limit() {
        for n in [0, 127, 128, 0xD7FF, 0xD800, 0xE000, 70_000] {
            let set = LabelSet::from_pairs([("a", "x".repeat(n)), ("b", "y".to_string())]);
            let packed = PackedLabels::new(&set);
            assert!(matches!(packed, PackedLabels::Packed(_)), "{n}");
            assert_eq!(packed.to_set(), set, "{n}");
        }
        let long = LabelSet::from_pairs([("a", "x".repeat(PackedLabels::MAX_PART + 1))]);
        let kept = PackedLabels::new(&long);
        assert!(matches!(kept, PackedLabels::Set(_)));
        assert_eq!(kept.to_set(), long);
        assert_eq!(
            kept.get("a").map(str::len),
            Some(PackedLabels::MAX_PART + 1)
        );
    }

    const POLICY: CutPolicy = CutPolicy {
        block_size: 64,
        chunk_target_size: 200,
        encoding: crate::chunk::Encoding::new(crate::chunk::Codec::Snappy),
    };

    #[test]
    fn duplicates_are_found_in_closed_blocks_and_the_head() {
        // Written in order, the stream hashes nothing; the first entry
        // that is not newer builds the set from the blocks (64-byte
        // blocks here, so most entries are in closed, compressed ones).
        let mut s = StreamState::default();
        let line = |i: i64| format!("entry {i} of a stream written in order");
        let meta = |i: i64| {
            if i % 3 == 0 {
                b"\x01k\x01v".to_vec()
            } else {
                Vec::new()
            }
        };
        for i in 0..41 {
            s.append(1 + i as u64, i, line(i).as_bytes(), &meta(i), POLICY);
        }
        assert!(s.open.blocks.len() > 10 && !s.open.head.is_empty());
        assert!(s.open.dedup.is_none(), "nothing needed the set yet");
        for i in [0, 7, 21, 39, 40] {
            assert_eq!(
                s.check(i, line(i).as_bytes(), &meta(i), None),
                Verdict::Duplicate,
                "entry {i}"
            );
            assert_eq!(
                s.check(i, line(i + 1).as_bytes(), &meta(i), None),
                Verdict::Accept
            );
            assert_eq!(
                s.check(i, line(i).as_bytes(), b"\x01x\x01y", None),
                Verdict::Accept
            );
        }
        // Kept up to date once built.
        s.append(50, 20, b"late", b"", POLICY);
        assert_eq!(s.check(20, b"late", b"", None), Verdict::Duplicate);
        // A new chunk starts without it.
        s.seal();
        assert!(s.open.dedup.is_none());
        assert_eq!(s.check(20, b"late", b"", None), Verdict::Accept);
    }

    #[test]
    fn dedup_window_and_sealing() {
        let mut s = StreamState::default();
        assert_eq!(s.check(100, b"a", b"", Some(10)), Verdict::Accept);
        s.append(1, 100, b"a", b"", POLICY);
        assert!(s.is_active());
        assert_eq!(s.check(100, b"a", b"", Some(10)), Verdict::Duplicate);
        assert_eq!(s.check(100, b"b", b"", Some(10)), Verdict::Accept);
        assert_eq!(s.check(100, b"a", b"\x01m\x01v", Some(10)), Verdict::Accept);
        assert_eq!(s.check(89, b"old", b"", Some(10)), Verdict::TooFarBehind);
        assert_eq!(s.check(89, b"old", b"", None), Verdict::Accept);
        assert_eq!(s.min_unflushed_seq(), Some(1));

        let mut sealed = None;
        for i in 0..200 {
            let line = format!("line number {i} with some padding to fill blocks");
            s.append(2 + i, 101 + i as i64, line.as_bytes(), b"", POLICY);
            if let Some(c) = s.seal_if_full(POLICY) {
                sealed = Some(c);
                break;
            }
        }
        let sealed = sealed.expect("a chunk is sealed by size");
        assert_eq!(sealed.first_seq, 1);
        assert_eq!(s.sealed.len(), 1);
        assert_eq!(s.min_unflushed_seq(), Some(1));
        s.retire(
            &sealed,
            ChunkRef {
                id: "c".into(),
                mint: sealed.mint,
                maxt: sealed.maxt,
                entries: sealed.entries,
                bytes: 1,
                max_seq: sealed.max_seq,
                raw_bytes: 2,
            },
        );
        assert!(s.sealed.is_empty());
        assert_eq!(s.flushed_max_seq, sealed.max_seq);
        assert_eq!(s.bounds().map(|b| b.0), Some(100));
    }
}
