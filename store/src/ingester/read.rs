//! The read side: the store as a [`LogSource`] for the query engine.
//!
//! A scan takes a snapshot of the stream (flushed chunk references, sealed
//! and open blocks, a sorted copy of the head block) and releases the lock.
//! It then lists every block overlapping the requested range, groups
//! blocks whose time ranges overlap (out-of-order writes, or a retry that
//! landed in a later chunk) and delivers each group as one block: a lone
//! block as it is decoded, an overlapping group merged by timestamp with
//! identical entries removed. Before decoding a block it consults the
//! block's token filter with the literals every matching line must
//! contain, and skips the block if one is missing.
//!
//! A damaged chunk never fails a query and is never served with wrong
//! bytes: every column is checked against its checksum when decoded, a
//! block that fails is left out (the rest of the chunk and the stream are
//! served), a chunk whose footer or index is damaged is read through its
//! block heads (`chunk::salvage`), and the damage is reported once per
//! file (log at error, `larch_chunk_corruptions_total`, `/ready`).

use std::collections::HashMap;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use larch_query::{
    Block, Columns, Direction, LogSource, Matcher, ScanRequest, ScanStats, SourceError, StreamInfo,
    Whole,
};
use parking_lot::Mutex;

use super::Ingester;
use crate::chunk::block::{COL_FILTER, COL_LENS, COL_LINES, COL_META, COL_TS, column};
use crate::chunk::{
    BlockMeta, ChunkIndex, DecodedBlock, EncodedBlock, ReadError, filter, read_block_into,
};
use crate::objstore::Bucket;
use crate::objstore::terms::{InBucket, TermIndex, TermsError};
use crate::tenant::TenantId;

/// How far back before a read node's last listing it asks write nodes for
/// the chunks they published: room for clocks that disagree.
const REMOTE_CLOCK_MARGIN_NS: i64 = 300_000_000_000;

/// What queries read of the chunks, on `/metrics`: how much a query
/// touched is the difference of two scrapes around it.
#[derive(Clone, Default)]
pub struct ReadMetrics {
    /// Blocks of chunks (flushed or in memory) that scans met, by `read`:
    /// `index` (counted from the block's index entry, nothing decoded:
    /// a count or byte sum over a block inside one step window),
    /// `decoded` (at least one column decompressed), `skipped` (left
    /// out by the token filter or a term index).
    pub blocks: prometheus_client::metrics::family::Family<
        crate::metrics::Labels,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Compressed bytes of block columns read by scans.
    pub compressed_bytes: prometheus_client::metrics::counter::Counter,
    /// Bytes of lines decompressed by scans.
    pub decompressed_bytes: prometheus_client::metrics::counter::Counter,
}

impl ReadMetrics {
    /// Registers every metric in `r`.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "larch_querier_blocks",
            "Chunk blocks met by query scans, by how they were read (index, decoded, skipped)",
            self.blocks.clone(),
        );
        r.register(
            "larch_querier_compressed_bytes",
            "Compressed bytes of block columns read by query scans",
            self.compressed_bytes.clone(),
        );
        r.register(
            "larch_querier_decompressed_bytes",
            "Bytes of lines decompressed by query scans",
            self.decompressed_bytes.clone(),
        );
    }

    /// Adds one scan (once per stream and span, not per block).
    fn add(&self, stats: &ScanStats, index: u64, decoded: u64) {
        for (read, n) in [
            ("index", index),
            ("decoded", decoded),
            ("skipped", stats.blocks_skipped),
        ] {
            if n > 0 {
                self.blocks
                    .get_or_create(&vec![("read", read.to_string())])
                    .inc_by(n);
            }
        }
        self.compressed_bytes.inc_by(stats.compressed_bytes);
        self.decompressed_bytes.inc_by(stats.decompressed_bytes);
    }
}

/// Parsed chunk indexes, so a chunk's footer and index are read once.
pub struct ChunkCache {
    map: Mutex<HashMap<String, Arc<ChunkIndex>>>,
    capacity: usize,
}

/// How much of a remote chunk's end is read to find its footer and block
/// index in one request (an index takes about 30 bytes per block).
const TAIL: u64 = 16 * 1024;

/// The index of the remote chunk at `key` (`size` bytes, from its index
/// record): its tail, and its block index if the tail does not hold it.
fn remote_index(bucket: &Bucket, key: &str, size: u64) -> Result<ChunkIndex, ReadError> {
    let io = |e: std::io::Error| ReadError::Io {
        path: key.to_string(),
        source: e,
    };
    let chunk = |e: crate::chunk::ChunkError| ReadError::Chunk {
        path: key.to_string(),
        source: e,
    };
    let start = size.saturating_sub(TAIL);
    let tail = bucket.get_range(key, start..size).map_err(io)?;
    match ChunkIndex::from_tail(&tail, start, size).map_err(chunk)? {
        Ok(idx) => Ok(idx),
        Err(at) => {
            let index = bucket
                .get_range(key, at.offset..at.offset + at.len)
                .map_err(io)?;
            ChunkIndex::from_index_bytes(&index, &at, size).map_err(chunk)
        }
    }
}

impl ChunkCache {
    /// A cache of at most `capacity` chunk indexes.
    pub fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The chunk's index; for a chunk whose footer or index is damaged,
    /// the blocks found through their heads (`salvaged` is then set).
    fn get(&self, bucket: &Bucket, key: &str, size: u64) -> Result<Arc<ChunkIndex>, ReadError> {
        if let Some(i) = self.map.lock().get(key) {
            return Ok(i.clone());
        }
        let idx = match bucket.local_path(key) {
            Some(path) => match ChunkIndex::read(&path) {
                Ok(i) => i,
                Err(ReadError::Chunk { .. }) => ChunkIndex::salvage(&path)?,
                Err(e) => return Err(e),
            },
            None => match remote_index(bucket, key, size) {
                Ok(i) => i,
                Err(ReadError::Chunk { .. }) => {
                    let bytes = bucket.get(key).map_err(|e| ReadError::Io {
                        path: key.to_string(),
                        source: e,
                    })?;
                    ChunkIndex::salvage_bytes(&bytes)
                }
                Err(e) => return Err(e),
            },
        };
        let idx = Arc::new(idx);
        let mut m = self.map.lock();
        if m.len() >= self.capacity {
            // Chunk indexes are small and cheap to re-read; dropping all of
            // them is simpler than tracking recency and costs little.
            m.clear();
        }
        m.insert(key.to_string(), idx.clone());
        Ok(idx)
    }
}

/// One block to deliver, from wherever it lives.
enum Item<'a> {
    File {
        key: Arc<str>,
        path: Arc<Path>,
        index: Arc<ChunkIndex>,
        block: usize,
        /// The term index already says the block may hold every literal.
        chosen: bool,
    },
    Memory(&'a EncodedBlock),
    Head(&'a DecodedBlock),
}

impl Item<'_> {
    fn bounds(&self) -> (i64, i64) {
        match self {
            Item::File { index, block, .. } => {
                (index.blocks[*block].mint, index.blocks[*block].maxt)
            }
            Item::Memory(b) => (b.meta.mint, b.meta.maxt),
            Item::Head(h) => (
                h.ts.first().copied().unwrap_or(0),
                h.ts.last().copied().unwrap_or(0),
            ),
        }
    }
}

fn overlaps(mint: i64, maxt: i64, start: i64, end: i64) -> bool {
    maxt >= start && mint < end
}

/// Whether `s` holds data in `[start, end)` (in its head, sealed, pending
/// or flushed chunks); locks its state.
pub fn has_data_in(s: &super::stream::Stream, start: i64, end: i64) -> bool {
    s.state
        .lock()
        .bounds()
        .is_some_and(|(lo, hi)| overlaps(lo, hi, start, end))
}

/// Per-scan state: open files and reusable buffers.
struct Scanner<'r> {
    ing: &'r Ingester,
    tenant: &'r TenantId,
    req: &'r ScanRequest,
    /// Chunk files opened by this scan (filesystem backend), by key, but
    /// for the one in use.
    files: HashMap<String, File>,
    /// The chunk file in use and its key: a scan reads a chunk's blocks
    /// one after another, so most blocks find their file here without a
    /// path built or hashed.
    open: Option<(String, File)>,
    bufs: Vec<DecodedBlock>,
    merged: DecodedBlock,
    /// A compressed token filter, decompressed.
    filter: Vec<u8>,
    /// The stored bytes of the block being read (reused: only zeroed where
    /// it grows).
    io: Vec<u8>,
    stats: ScanStats,
    /// Blocks delivered from their index entry alone, nothing decoded.
    index_blocks: u64,
    /// Blocks of which at least one column was decompressed.
    decoded_blocks: u64,
}

impl Scanner<'_> {
    /// The open chunk file of `key` with the filesystem backend (`None`
    /// with object storage).
    fn file(&mut self, key: &str) -> std::io::Result<Option<&File>> {
        if self.open.as_ref().is_none_or(|(k, _)| k != key) {
            let Some(path) = self.ing.bucket.local_path(key) else {
                return Ok(None);
            };
            let f = match self.files.remove(key) {
                Some(f) => f,
                None => File::open(&path)?,
            };
            if let Some((k, old)) = self.open.replace((key.to_string(), f)) {
                self.files.insert(k, old);
            }
        }
        Ok(self.open.as_ref().map(|(_, f)| f))
    }

    /// The columns `want` of a block of the chunk at `key`, into
    /// `self.io`: `pread` of the file with the filesystem backend, ranged
    /// reads (through the cache) otherwise. The block's description with
    /// offsets relative to `self.io`.
    fn read_cols(
        &mut self,
        key: &str,
        meta: &BlockMeta,
        want: &[usize],
    ) -> std::io::Result<BlockMeta> {
        let mut io = std::mem::take(&mut self.io);
        let r = self.read_cols_into(key, meta, want, &mut io);
        self.io = io;
        r
    }

    fn read_cols_into(
        &mut self,
        key: &str,
        meta: &BlockMeta,
        want: &[usize],
        buf: &mut Vec<u8>,
    ) -> std::io::Result<BlockMeta> {
        if let Some(f) = self.file(key)? {
            return read_block_into(f, meta, want, buf);
        }
        let bucket = self.ing.bucket.clone();
        let present: Vec<usize> = want
            .iter()
            .copied()
            .filter(|&i| meta.cols[i].len > 0)
            .collect();
        let start = present
            .iter()
            .map(|&i| meta.cols[i].offset)
            .min()
            .unwrap_or(0);
        let end = present
            .iter()
            .map(|&i| meta.cols[i].offset + meta.cols[i].len)
            .max()
            .unwrap_or(0);
        let ranges: Vec<std::ops::Range<u64>> = present
            .iter()
            .map(|&i| meta.cols[i].offset..meta.cols[i].offset + meta.cols[i].len)
            .collect();
        let got = bucket.get_ranges(key, &ranges)?;
        buf.clear();
        buf.resize(usize::try_from(end - start).unwrap_or(0), 0);
        for (r, b) in ranges.iter().zip(got) {
            let at = (r.start - start) as usize;
            buf.get_mut(at..at + b.len())
                .ok_or_else(|| std::io::Error::other("a range read returned another size"))?
                .copy_from_slice(&b);
        }
        let mut rel = meta.clone();
        for (i, c) in rel.cols.iter_mut().enumerate() {
            if present.contains(&i) {
                c.offset -= start;
            } else {
                *c = crate::chunk::block::ColRange::default();
            }
        }
        Ok(rel)
    }

    /// Whether the block may hold a line with every required literal.
    fn may_match(&mut self, item: &Item<'_>) -> Result<bool, SourceError> {
        if self
            .req
            .must_contain
            .iter()
            .all(|l| !filter::is_checkable(&l.bytes))
        {
            return Ok(true);
        }
        // The buffer a compressed filter is decompressed into.
        let mut scratch = std::mem::take(&mut self.filter);
        let r = self.may_match_with(item, &mut scratch);
        self.filter = scratch;
        r
    }

    fn may_match_with(
        &mut self,
        item: &Item<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<bool, SourceError> {
        let check = |f: &[u8], lits: &[larch_query::Literal], scratch: &mut Vec<u8>| {
            let f = filter::open(f, scratch);
            lits.iter().all(|l| filter::may_contain(f, &l.bytes))
        };
        match item {
            Item::Head(_) => Ok(true),
            Item::Memory(b) => match column(&b.bytes, b.meta.cols[COL_FILTER], "filter column") {
                Ok(f) => Ok(check(f, &self.req.must_contain, scratch)),
                Err(_) => Ok(true),
            },
            Item::File { chosen: true, .. } => Ok(true),
            Item::File {
                key, index, block, ..
            } => {
                let meta = &index.blocks[*block];
                if meta.cols[COL_FILTER].len == 0 {
                    return Ok(true);
                }
                let rel = self.read_cols(key, meta, &[COL_FILTER])?;
                match column(&self.io, rel.cols[COL_FILTER], "filter column") {
                    Ok(f) => Ok(check(f, &self.req.must_contain, scratch)),
                    Err(_) => Ok(true),
                }
            }
        }
    }

    /// What the block index says of `item` when the request lets it come
    /// without timestamps ([`ScanRequest::whole`]) and it lies wholly
    /// inside one of the caller's segments.
    fn whole(&self, item: &Item<'_>) -> Option<Whole> {
        let w = self.req.whole.as_ref()?;
        let meta = match item {
            Item::File { index, block, .. } => &index.blocks[*block],
            Item::Memory(b) => &b.meta,
            Item::Head(_) => return None,
        };
        w.holds(meta.mint, meta.maxt, self.req.start, self.req.end)
            .then_some(Whole {
                entries: meta.entries as usize,
                mint: meta.mint,
                maxt: meta.maxt,
                lines_size: meta.lines_size,
            })
    }

    /// Decodes `item` into `self.bufs[slot]` (without its timestamps when
    /// `timestamps` is false; a head block always has them). False when it
    /// is a block of a damaged chunk file (reported, left out).
    fn decode(
        &mut self,
        item: &Item<'_>,
        slot: usize,
        cols: Columns,
        timestamps: bool,
    ) -> Result<bool, SourceError> {
        while self.bufs.len() <= slot {
            self.bufs.push(DecodedBlock::default());
        }
        match item {
            Item::Head(h) => {
                let out = &mut self.bufs[slot];
                out.clear();
                out.ts.extend_from_slice(&h.ts);
                out.offsets.extend_from_slice(&h.offsets);
                out.lines.extend_from_slice(&h.lines);
                out.meta_offsets.extend_from_slice(&h.meta_offsets);
                out.meta.extend_from_slice(&h.meta);
                self.stats.head_chunk_lines += h.ts.len() as u64;
                self.stats.head_chunk_bytes += h.lines.len() as u64;
            }
            Item::Memory(b) => {
                self.bufs[slot].decode_columns(&b.bytes, &b.meta, cols, timestamps)?;
                self.count(&b.meta, cols, timestamps);
                self.decoded_blocks += 1;
                self.stats.head_chunk_lines += u64::from(b.meta.entries);
            }
            Item::File {
                key,
                path,
                index,
                block,
                ..
            } => {
                let meta = &index.blocks[*block];
                let mut want = [0usize; 4];
                let mut n = 0;
                for (col, on) in [
                    (COL_TS, timestamps),
                    (COL_LENS, cols.offsets()),
                    (COL_LINES, cols.lines),
                    (COL_META, cols.metadata),
                ] {
                    if on {
                        want[n] = col;
                        n += 1;
                    }
                }
                let res = self
                    .read_cols(key, meta, &want[..n])
                    .map_err(|e| e.to_string())
                    .and_then(|rel| {
                        self.bufs[slot]
                            .decode_columns(&self.io, &rel, cols, timestamps)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = res {
                    self.ing
                        .report_damaged_chunk(self.tenant, path, "block", &e);
                    return Ok(false);
                }
                self.count(meta, cols, timestamps);
                self.decoded_blocks += 1;
                self.stats.decompressed_lines += u64::from(meta.entries);
            }
        }
        Ok(true)
    }

    fn count(&mut self, meta: &BlockMeta, cols: Columns, timestamps: bool) {
        let mut compressed = if timestamps { meta.cols[COL_TS].len } else { 0 };
        if cols.offsets() {
            compressed += meta.cols[COL_LENS].len;
        }
        if cols.lines {
            compressed += meta.cols[COL_LINES].len;
            self.stats.decompressed_bytes += meta.lines_size;
        }
        if cols.metadata {
            compressed += meta.cols[COL_META].len;
        }
        self.stats.compressed_bytes += compressed;
    }
}

/// Merges decoded blocks (each sorted) into `out`, sorted by timestamp,
/// dropping entries identical to one already taken. Returns duplicates.
pub(crate) fn merge(inputs: &[DecodedBlock], out: &mut DecodedBlock) -> u64 {
    out.clear();
    let mut order: Vec<(i64, usize, usize)> = Vec::new();
    for (b, d) in inputs.iter().enumerate() {
        order.extend(d.ts.iter().enumerate().map(|(i, &t)| (t, b, i)));
    }
    order.sort_unstable();
    let has_meta = inputs.iter().any(|d| !d.meta_offsets.is_empty());
    out.offsets.push(0);
    if has_meta {
        out.meta_offsets.push(0);
    }
    let mut dups = 0;
    let mut group_start = 0usize; // first output index with the current timestamp
    for &(t, b, i) in &order {
        let d = &inputs[b];
        let (l, m) = (entry_line(d, i), entry_meta(d, i));
        if out.ts.last() != Some(&t) {
            group_start = out.ts.len();
        }
        let dup = (group_start..out.ts.len()).any(|j| {
            &out.lines[out.offsets[j] as usize..out.offsets[j + 1] as usize] == l
                && (!has_meta
                    || &out.meta[out.meta_offsets[j] as usize..out.meta_offsets[j + 1] as usize]
                        == m)
        });
        if dup {
            dups += 1;
            continue;
        }
        out.ts.push(t);
        out.lines.extend_from_slice(l);
        out.offsets.push(out.lines.len() as u32);
        if has_meta {
            out.meta.extend_from_slice(m);
            out.meta_offsets.push(out.meta.len() as u32);
        }
    }
    dups
}

fn entry_line(d: &DecodedBlock, i: usize) -> &[u8] {
    &d.lines[d.offsets[i] as usize..d.offsets[i + 1] as usize]
}

fn entry_meta(d: &DecodedBlock, i: usize) -> &[u8] {
    if d.meta_offsets.is_empty() {
        &[]
    } else {
        &d.meta[d.meta_offsets[i] as usize..d.meta_offsets[i + 1] as usize]
    }
}

impl Ingester {
    /// The blocks of chunk `(fp, id)` that the term index `ti` says may
    /// hold every literal, and the chunk's number of blocks by the index;
    /// `None` when the index cannot say (it rules out nothing, does not
    /// cover the chunk, is damaged or cannot be read: the block filters
    /// decide, never a wrong answer).
    fn term_blocks(
        &self,
        ti: &TermIndex,
        fp: u64,
        id: &str,
        literals: &[&[u8]],
    ) -> Option<(Vec<u32>, u32)> {
        let f = InBucket(&self.bucket, &ti.key);
        let r = (|| -> Result<Option<(Vec<u32>, u32)>, TermsError> {
            let Some(range) = ti.chunk_blocks(&f, fp, id)? else {
                return Ok(None);
            };
            let Some(c) = ti.candidates(&f, literals)? else {
                return Ok(None);
            };
            let lo = c.partition_point(|&b| b < range.start);
            let hi = c.partition_point(|&b| b < range.end);
            let local = c[lo..hi].iter().map(|b| b - range.start).collect();
            Ok(Some((local, range.end - range.start)))
        })();
        match r {
            Ok(x) => x,
            Err(TermsError::Damaged(what)) => {
                if self.health.mark_damaged(Path::new(&ti.key)) {
                    tracing::error!(key = %ti.key, what, "A term index is damaged; queries read the block filters of the chunks it covers.");
                    self.health.note(format!(
                        "term index {} is damaged ({what}); queries read block filters instead",
                        ti.key
                    ));
                }
                None
            }
            Err(e) => {
                tracing::warn!(key = %ti.key, error = %e, "A term index could not be read; this query reads block filters instead.");
                None
            }
        }
    }

    /// A scan of a stream's data held in memory only (sealed, written
    /// and open blocks, and the head): a write node's answer to a reader.
    pub fn scan_memory(
        &self,
        tenant: &TenantId,
        fp: u64,
        req: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        self.scan_stream(tenant, fp, req, visit, true)
    }

    fn scan_stream(
        &self,
        tenant: &TenantId,
        fp: u64,
        req: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
        memory_only: bool,
    ) -> Result<ScanStats, SourceError> {
        let stream = self.existing_tenant(tenant).and_then(|t| t.get(fp));
        let mut snap = match &stream {
            Some(s) => s.state.lock().snapshot(),
            None if self.remote.is_none() || memory_only => return Ok(ScanStats::default()),
            None => super::stream::Snapshot {
                chunks: Vec::new(),
                sealed: Vec::new(),
                open_blocks: Vec::new(),
                head: DecodedBlock::default(),
            },
        };
        if memory_only {
            snap.chunks.clear();
        }
        // A read node: the write nodes' unflushed blocks of the stream, and
        // the chunks they published since this node last listed the bucket.
        let mut remote_blocks: Vec<DecodedBlock> = Vec::new();
        if let Some(remote) = self.remote.as_ref().filter(|_| !memory_only) {
            let listed = self
                .view_listed_at
                .load(std::sync::atomic::Ordering::Acquire);
            let r = crate::objstore::remote::ScanStreamRequest {
                tenant: tenant.to_string(),
                fp,
                start: req.start,
                end: req.end,
                since: listed.saturating_sub(REMOTE_CLOCK_MARGIN_NS),
                literals: req.must_contain.iter().map(|l| l.bytes.clone()).collect(),
                case_insensitive: req
                    .must_contain
                    .iter()
                    .map(|l| l.case_insensitive)
                    .collect(),
                // The write nodes' unflushed blocks travel whole: lengths
                // alone come with their lines.
                lines: req.columns.offsets(),
                metadata: req.columns.metadata,
            };
            let (blocks, published) = remote.scan(&r).map_err(|e| -> SourceError { e.into() })?;
            remote_blocks = blocks;
            for c in published {
                if !snap.chunks.iter().any(|x| x.id == c.id) {
                    snap.chunks.push(c);
                }
            }
        }
        let mut sc = Scanner {
            ing: self,
            tenant,
            req,
            files: HashMap::new(),
            open: None,
            bufs: Vec::new(),
            merged: DecodedBlock::default(),
            filter: Vec::new(),
            io: Vec::new(),
            stats: ScanStats::default(),
            index_blocks: 0,
            decoded_blocks: 0,
        };
        let mut items: Vec<Item<'_>> = Vec::new();
        let terms = self.terms.read().get(tenant).cloned();
        let literals: Vec<&[u8]> = req
            .must_contain
            .iter()
            .map(|l| l.bytes.as_slice())
            .collect();
        for c in &snap.chunks {
            if !overlaps(c.mint, c.maxt, req.start, req.end) {
                continue;
            }
            sc.stats.chunks_ref += 1;
            // The blocks a term index lets through, when one covers the
            // chunk: none, and the chunk is not read at all.
            let chosen = match terms.as_ref().and_then(|m| m.get(&(fp, c.id.clone()))) {
                Some(ti) if !literals.is_empty() => self.term_blocks(ti, fp, &c.id, &literals),
                _ => None,
            };
            if chosen.as_ref().is_some_and(|(b, _)| b.is_empty()) {
                continue;
            }
            let key: Arc<str> = Arc::from(self.chunk_key(tenant, fp, &c.id));
            let path: Arc<Path> = Arc::from(self.chunk_location(tenant, fp, &c.id));
            let index = match self.read_cache.get(&self.bucket, &key, c.bytes) {
                Ok(i) => i,
                Err(ReadError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    // Deleted by retention or compaction after the
                    // snapshot was taken; or missing, if still named.
                    if stream
                        .as_ref()
                        .is_some_and(|s| s.state.lock().chunks.iter().any(|x| x.id == c.id))
                    {
                        self.report_damaged_chunk(tenant, &path, "missing", "the file is missing");
                    }
                    continue;
                }
                Err(ReadError::Chunk { source, .. }) => {
                    self.report_damaged_chunk(tenant, &path, "unreadable", &source.to_string());
                    continue;
                }
                Err(e) => return Err(Box::new(e)),
            };
            if index.salvaged {
                self.report_damaged_chunk(tenant, &path, "index", "footer or block index damaged");
            } else if index.head_damaged() {
                // Not needed to read the blocks, which are all served.
                self.report_damaged_chunk(tenant, &path, "header", "magic or header damaged");
            }
            sc.stats.chunks_downloaded += 1;
            // A term index that disagrees with the chunk on its number of
            // blocks is not used for it.
            let chosen =
                chosen.filter(|(_, n)| *n as usize == index.blocks.len() && !index.salvaged);
            for (block, b) in index.blocks.iter().enumerate() {
                if overlaps(b.mint, b.maxt, req.start, req.end) {
                    if let Some((allowed, _)) = &chosen
                        && allowed.binary_search(&(block as u32)).is_err()
                    {
                        sc.stats.blocks += 1;
                        sc.stats.blocks_skipped += 1;
                        continue;
                    }
                    items.push(Item::File {
                        key: key.clone(),
                        path: path.clone(),
                        index: index.clone(),
                        block,
                        chosen: chosen.is_some(),
                    });
                }
            }
        }
        for b in snap
            .sealed
            .iter()
            .flat_map(|s| s.blocks.iter())
            .chain(snap.open_blocks.iter())
        {
            if overlaps(b.meta.mint, b.meta.maxt, req.start, req.end) {
                items.push(Item::Memory(b));
            }
        }
        if let (Some(&lo), Some(&hi)) = (snap.head.ts.first(), snap.head.ts.last())
            && overlaps(lo, hi, req.start, req.end)
        {
            items.push(Item::Head(&snap.head));
        }
        for b in &remote_blocks {
            if let (Some(&lo), Some(&hi)) = (b.ts.first(), b.ts.last())
                && overlaps(lo, hi, req.start, req.end)
            {
                items.push(Item::Head(b));
            }
        }
        items.sort_by_key(|i| i.bounds());

        // Group overlapping blocks: ranges of `items`.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut group_max = i64::MIN;
        for (i, item) in items.iter().enumerate() {
            let (lo, hi) = item.bounds();
            match groups.last_mut() {
                Some(g) if lo <= group_max => {
                    g.1 = i + 1;
                    group_max = group_max.max(hi);
                }
                _ => {
                    groups.push((i, i + 1));
                    group_max = hi;
                }
            }
        }
        if req.direction == Direction::Backward {
            groups.reverse();
        }
        let mut live: Vec<usize> = Vec::new();
        for (first, end) in groups {
            sc.stats.blocks += (end - first) as u64;
            live.clear();
            for (i, item) in items.iter().enumerate().take(end).skip(first) {
                if sc.may_match(item)? {
                    live.push(i);
                } else {
                    sc.stats.blocks_skipped += 1;
                }
            }
            let flow = match live.len() {
                0 => ControlFlow::Continue(()),
                1 => {
                    let item = &items[live[0]];
                    match (sc.whole(item), &req.whole) {
                        (Some(w), Some(wb)) => {
                            // Nothing to decode when only the count is needed.
                            let any = wb.columns.offsets() || wb.columns.metadata;
                            if !any {
                                sc.index_blocks += 1;
                            }
                            if !any || sc.decode(item, 0, wb.columns, false)? {
                                let mut b = if any {
                                    sc.bufs[0].view(wb.columns)
                                } else {
                                    Block {
                                        timestamps: &[],
                                        offsets: &[],
                                        lines: &[],
                                        metadata_offsets: &[],
                                        metadata: &[],
                                        whole: None,
                                    }
                                };
                                b.whole = Some(w);
                                visit(&b)
                            } else {
                                ControlFlow::Continue(())
                            }
                        }
                        _ => {
                            if sc.decode(item, 0, req.columns, true)? {
                                visit(&sc.bufs[0].view(req.columns))
                            } else {
                                ControlFlow::Continue(())
                            }
                        }
                    }
                }
                _ => {
                    // Duplicates can only be recognised by content.
                    let mut n = 0;
                    for &i in &live {
                        if sc.decode(&items[i], n, Columns::ALL, true)? {
                            n += 1;
                        }
                    }
                    if n == 0 {
                        ControlFlow::Continue(())
                    } else {
                        let mut merged = std::mem::take(&mut sc.merged);
                        sc.stats.duplicates += merge(&sc.bufs[..n], &mut merged);
                        let flow = visit(&merged.view(req.columns));
                        sc.merged = merged;
                        flow
                    }
                }
            };
            if flow.is_break() {
                break;
            }
        }
        self.metrics
            .reads
            .add(&sc.stats, sc.index_blocks, sc.decoded_blocks);
        Ok(sc.stats)
    }

    /// Streams of `tenant` matching `matchers` with data in `[start, end)`.
    pub fn select_streams(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Vec<Arc<super::stream::Stream>> {
        let Some(t) = self.existing_tenant(tenant) else {
            return Vec::new();
        };
        t.select(matchers)
            .into_iter()
            .filter(|s| has_data_in(s, start, end))
            .collect()
    }

    /// Streams of `tenant` matching `matchers` (every stream with `None`)
    /// with data in `[start, end)`, for queries: on a read node, merged
    /// with what the write nodes hold (streams only they know, and the
    /// sizes of their unflushed data for the statistics endpoints).
    pub fn query_streams(
        &self,
        tenant: &TenantId,
        matchers: Option<&[Matcher]>,
        start: i64,
        end: i64,
    ) -> Result<Vec<Arc<super::stream::Stream>>, crate::objstore::remote::WriteNodeError> {
        let local = match matchers {
            Some(m) => self.select_streams(tenant, m, start, end),
            None => self.streams_in_range(tenant, start, end),
        };
        let Some(remote) = &self.remote else {
            return Ok(local);
        };
        let listed = self
            .view_listed_at
            .load(std::sync::atomic::Ordering::Acquire);
        let req = crate::objstore::remote::StreamsRequest {
            tenant: tenant.to_string(),
            selector: matchers
                .map(crate::objstore::remote::WriteNodes::selector)
                .unwrap_or_default(),
            start,
            end,
            since: listed.saturating_sub(REMOTE_CLOCK_MARGIN_NS),
        };
        let answers = remote.streams(&req)?;
        let mut by_fp: std::collections::BTreeMap<u64, Arc<super::stream::Stream>> =
            local.into_iter().map(|s| (s.fp, s)).collect();
        let registry = self.existing_tenant(tenant);
        for (writer, r) in answers {
            let Some(labels) = crate::objstore::remote::labels_of(&r) else {
                continue;
            };
            let base = by_fp
                .get(&r.fp)
                .cloned()
                .or_else(|| registry.as_ref().and_then(|t| t.get(r.fp)));
            let mut st = super::stream::StreamState::default();
            if let Some(b) = &base {
                let b = b.state.lock();
                st.chunks = b.chunks.clone();
                // This node's own unflushed data of the stream (a write
                // node's), as summaries beside the members'.
                for c in crate::cluster::stats::unflushed_refs(&b, &self.writer_id) {
                    st.add_chunk(c);
                }
            }
            for c in r
                .published
                .iter()
                .filter_map(crate::objstore::remote::from_remote)
            {
                if !st.chunks.iter().any(|x| x.id == c.id) {
                    st.add_chunk(c);
                }
            }
            for (i, u) in r.unflushed.iter().enumerate() {
                // Sizes only: never read, never named by any index.
                st.add_chunk(crate::index::ChunkRef {
                    id: crate::cluster::stats::unflushed_id(i, &writer),
                    mint: u.mint,
                    maxt: u.maxt,
                    entries: u.entries,
                    bytes: u.bytes,
                    max_seq: u.max_seq,
                    raw_bytes: u.raw_bytes,
                });
            }
            let merged = super::stream::Stream {
                id: base.as_ref().map_or(0, |b| b.id),
                fp: r.fp,
                labels: base.as_ref().map_or_else(
                    || super::stream::PackedLabels::new(&labels),
                    |b| b.labels.clone(),
                ),
                state: parking_lot::Mutex::new(st),
            };
            by_fp.insert(r.fp, Arc::new(merged));
        }
        Ok(by_fp.into_values().collect())
    }
}

impl Ingester {
    /// Reports a damaged chunk file found while reading (once per file):
    /// its damaged blocks are left out of every answer. `kind` is the
    /// metric label (`block`, `index`, `header`, `missing`, `unreadable`).
    pub(crate) fn report_damaged_chunk(
        &self,
        tenant: &TenantId,
        path: &Path,
        kind: &'static str,
        what: &str,
    ) {
        if !self.health.mark_damaged(path) {
            return;
        }
        self.metrics
            .recovery
            .chunk_corruptions
            .get_or_create(&crate::metrics::kind_label(kind))
            .inc();
        tracing::error!(tenant = %tenant, path = %path.display(), error = what, "A chunk file is damaged; its unreadable blocks are left out of every answer.");
        self.health.note(format!(
            "tenant {tenant}: chunk {} is damaged ({what}); its unreadable blocks are left out",
            path.display()
        ));
    }

    /// Whether this node alone holds what the label endpoints answer
    /// from: no write nodes to ask ([`Ingester::query_streams`]), so a
    /// tenant's own label index ([`Ingester::existing_tenant`]) is the
    /// whole answer.
    pub fn answers_alone(&self) -> bool {
        self.remote.is_none()
    }

    /// Every stream of `tenant` with data in `[start, end)`.
    pub fn streams_in_range(
        &self,
        tenant: &TenantId,
        start: i64,
        end: i64,
    ) -> Vec<Arc<super::stream::Stream>> {
        let Some(t) = self.existing_tenant(tenant) else {
            return Vec::new();
        };
        t.all()
            .into_iter()
            .filter(|s| has_data_in(s, start, end))
            .collect()
    }
}

/// The store as the engine's data source.
impl LogSource for Ingester {
    fn streams(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<StreamInfo>, SourceError> {
        let tenant = TenantId::new(tenant)?;
        Ok(self
            .query_streams(&tenant, Some(matchers), start, end)?
            .into_iter()
            .map(|s| StreamInfo {
                id: s.fp,
                labels: s.labels.to_arc(),
            })
            .collect())
    }

    fn scan(
        &self,
        tenant: &str,
        stream: &StreamInfo,
        request: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        let tenant = TenantId::new(tenant)?;
        self.scan_without_deleted(&tenant, stream, request, visit)
    }
}

impl Ingester {
    /// A scan of one stream with the lines of delete requests left out
    /// (every query path goes through it). A stream no request selects
    /// is scanned as it is.
    pub fn scan_without_deleted(
        &self,
        tenant: &TenantId,
        stream: &StreamInfo,
        request: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        if !self.deletes.loaded() {
            return Err(Box::new(crate::deletes::NotLoaded));
        }
        let Some(mut filter) =
            self.deletes
                .for_stream(tenant, &stream.labels, request.start, request.end)
        else {
            return self.scan_stream(tenant, stream.id, request, visit, false);
        };
        let mut req = request.clone();
        // Deleted lines are found by their timestamps: every block comes
        // with them.
        req.whole = None;
        if filter.needs_lines() {
            req.columns = Columns::ALL;
        }
        // The engine gets the columns it asked for and no more (it reads
        // the presence of metadata as a request for it).
        let wanted = request.columns;
        fn masked(b: Block<'_>, wanted: Columns) -> Block<'_> {
            Block {
                timestamps: b.timestamps,
                offsets: if wanted.offsets() { b.offsets } else { &[] },
                lines: if wanted.lines { b.lines } else { &[] },
                metadata_offsets: if wanted.metadata {
                    b.metadata_offsets
                } else {
                    &[]
                },
                metadata: if wanted.metadata { b.metadata } else { &[] },
                whole: b.whole,
            }
        }
        let mut owned = crate::deletes::OwnedBlock::default();
        let mut removed = 0u64;
        let stats = self.scan_stream(
            tenant,
            stream.id,
            &req,
            &mut |b| {
                if !filter.filter(b, &mut owned) {
                    return visit(&masked(*b, wanted));
                }
                removed += (b.len() - owned.timestamps.len()) as u64;
                if owned.timestamps.is_empty() {
                    return ControlFlow::Continue(());
                }
                visit(&masked(owned.view(), wanted))
            },
            false,
        )?;
        self.metrics.deletes.filtered_lines.inc_by(removed);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::HeadBlock;

    fn decoded(entries: &[(i64, &str)]) -> DecodedBlock {
        let mut h = HeadBlock::new();
        for (t, l) in entries {
            h.append(*t, l.as_bytes(), b"");
        }
        let mut d = DecodedBlock::default();
        h.to_decoded(&mut d);
        d
    }

    #[test]
    fn merge_sorts_and_dedups() {
        let a = decoded(&[(1, "a"), (3, "c"), (5, "e")]);
        let b = decoded(&[(2, "b"), (3, "c"), (3, "c2"), (6, "f")]);
        let mut out = DecodedBlock::default();
        let dups = merge(&[a, b], &mut out);
        assert_eq!(dups, 1);
        assert_eq!(out.ts, vec![1, 2, 3, 3, 5, 6]);
        let v = out.view(Columns::ALL);
        let lines: Vec<&[u8]> = (0..v.len()).map(|i| v.line(i)).collect();
        assert_eq!(lines, vec![&b"a"[..], b"b", b"c", b"c2", b"e", b"f"]);
    }
}
