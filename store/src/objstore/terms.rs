//! Term indexes: an immutable object per compacted day that says, for
//! every term, which blocks of the day's chunks hold it, so that a needle
//! query over a cold bucket fetches a few pages of it and the candidate
//! blocks, not every chunk's tail and token filter (ARCHITECTURE.md, "Term
//! index").
//!
//! The terms are the token filter's (`chunk::filter::for_each_window`):
//! the 4-byte windows of the lines column, lower-cased letters and digits,
//! here at every offset. A line containing a literal contains every window
//! of the literal, so the blocks that may hold it are the intersection of
//! its windows' postings. A term is stored as its base-36 code (below
//! 36^4), so the dictionary is a sorted array of fixed-width entries cut
//! into pages, with a page index (first term and checksum of each page) in
//! the head.
//!
//! ```text
//! terms    := "LRTERMS\x01" | u32le head-len | u32le crc32(head) | head | page* | postings*
//! head     := uvarint nchunks { u64le fp | str chunk-id | uvarint nblocks }*
//!             | uvarint nterms | uvarint npages { u32le first-term | u32le crc32(page) }*
//! page     := up to 256 entries of u32le term | u32le postings-offset
//!             | u32le postings-len | u32le crc32(postings)
//! postings := uvarint first-block { uvarint delta }*   (blocks numbered across the chunks, in head order)
//! ```
//! A term found in more than [`everywhere_threshold`] blocks is marked
//! "everywhere" (postings-len `u32::MAX`, nothing stored): it rules out
//! nothing. A term absent from the dictionary is in no block.
//!
//! Everything read is checked against its checksum; a damaged head, page
//! or postings list is a [`TermsError::Damaged`] and the caller falls back
//! to the block filters (never a wrong answer).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::chunk::filter;
use crate::encoding::{Reader, put_bytes, put_uvarint};

const MAGIC: &[u8; 8] = b"LRTERMS\x01";
/// Number of distinct terms: 36^4.
pub const TERMS: usize = 36 * 36 * 36 * 36;
/// Entries per page (4 KiB pages).
const PAGE_ENTRIES: usize = 256;
const ENTRY: usize = 16;
const EVERYWHERE: u32 = u32::MAX;
/// Most postings held while building; past it the longest lists are
/// marked "everywhere" (memory and object size stay bounded).
pub const MAX_POSTINGS: usize = 32 << 20;
/// Most blocks one index covers (block numbers are `u32`).
pub const MAX_BLOCKS: usize = 1 << 30;
/// Longest head accepted when reading.
const MAX_HEAD: usize = 64 << 20;
/// How much of the object's start is fetched to find the head in one
/// request.
const HEAD_FETCH: u64 = 4 * 1024;

/// A term index that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TermsError {
    /// The bucket did not answer.
    #[error("reading the term index: {0}")]
    Io(#[from] std::io::Error),
    /// A part of it does not check out.
    #[error("the term index is damaged: {0}")]
    Damaged(&'static str),
}

/// The base-36 code of a window (`None` for a byte that is neither a
/// lower-case letter nor a digit, which the windows never hold).
fn code(gram: u32) -> Option<u32> {
    let mut c = 0u32;
    for i in (0..4).rev() {
        let b = filter::window_byte(gram, i);
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        c = c * 36 + u32::from(d);
    }
    Some(c)
}

/// The distinct term codes of a literal, sorted.
pub fn literal_terms(literal: &[u8]) -> Vec<u32> {
    let mut v = Vec::new();
    filter::for_each_window(literal, |g| v.extend(code(g)));
    v.sort_unstable();
    v.dedup();
    v
}

/// The terms a lookup of `literal` uses: every fourth of its windows and
/// the last one. Any subset of a literal's windows is correct (fewer
/// constraints only let more blocks through); these cover its letters and
/// digits, and each one spared is a page not fetched.
pub fn lookup_terms(literal: &[u8]) -> Vec<u32> {
    let mut all = Vec::new();
    filter::for_each_window(literal, |g| all.extend(code(g)));
    let mut v: Vec<u32> = all.iter().copied().step_by(4).collect();
    v.extend(all.last().copied());
    v.sort_unstable();
    v.dedup();
    v
}

/// Above how many blocks a term is marked "everywhere" in an index of
/// `blocks` blocks: a sixteenth of them, and never below 64.
pub fn everywhere_threshold(blocks: usize) -> usize {
    (blocks / 16).max(64)
}

/// A chunk an index covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// Its stream.
    pub fp: u64,
    /// Its id.
    pub id: String,
    /// Its number of blocks.
    pub blocks: u32,
}

/// Builds a term index chunk by chunk.
pub struct Builder {
    chunks: Vec<Covered>,
    postings: Vec<Vec<u32>>,
    everywhere: Vec<u64>,
    seen: Vec<u64>,
    touched: Vec<u32>,
    held: usize,
    blocks: usize,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

fn bit(set: &[u64], i: u32) -> bool {
    set[(i / 64) as usize] & (1 << (i % 64)) != 0
}

fn set_bit(set: &mut [u64], i: u32) {
    set[(i / 64) as usize] |= 1 << (i % 64);
}

impl Builder {
    /// An empty index (about 40 MiB of tables, whatever the input).
    pub fn new() -> Builder {
        Builder {
            chunks: Vec::new(),
            postings: vec![Vec::new(); TERMS],
            everywhere: vec![0; TERMS.div_ceil(64)],
            seen: vec![0; TERMS.div_ceil(64)],
            touched: Vec::new(),
            held: 0,
            blocks: 0,
        }
    }

    /// Blocks covered so far.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Adds a chunk whose blocks' lines columns are `blocks`, in block
    /// order. False (nothing added) past [`MAX_BLOCKS`].
    pub fn add_chunk(&mut self, fp: u64, id: &str, blocks: &[&[u8]]) -> bool {
        if self.blocks + blocks.len() > MAX_BLOCKS {
            return false;
        }
        for lines in blocks {
            let block = self.blocks as u32;
            self.blocks += 1;
            let (seen, touched) = (&mut self.seen, &mut self.touched);
            filter::for_each_window(lines, |g| {
                if let Some(c) = code(g)
                    && !bit(seen, c)
                {
                    set_bit(seen, c);
                    touched.push(c);
                }
            });
            for &c in &self.touched {
                self.seen[(c / 64) as usize] = 0;
                if bit(&self.everywhere, c) {
                    continue;
                }
                self.postings[c as usize].push(block);
                self.held += 1;
            }
            self.touched.clear();
            if self.held > MAX_POSTINGS {
                self.shed(MAX_POSTINGS * 3 / 4);
            }
        }
        self.chunks.push(Covered {
            fp,
            id: id.to_string(),
            blocks: blocks.len() as u32,
        });
        true
    }

    /// Marks the longest lists "everywhere" until at most `target`
    /// postings are held.
    fn shed(&mut self, target: usize) {
        let mut lens: Vec<usize> = self
            .postings
            .iter()
            .map(Vec::len)
            .filter(|&l| l > 0)
            .collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let mut held = self.held;
        let mut cutoff = usize::MAX;
        for l in lens {
            if held <= target {
                break;
            }
            held -= l;
            cutoff = l;
        }
        self.mark_everywhere(|len| len >= cutoff);
    }

    fn mark_everywhere(&mut self, pred: impl Fn(usize) -> bool) {
        for c in 0..TERMS {
            let len = self.postings[c].len();
            if len > 0 && pred(len) {
                self.held -= len;
                self.postings[c] = Vec::new();
                set_bit(&mut self.everywhere, c as u32);
            }
        }
    }

    /// The object's bytes and its name (`<writer>-<len:016x>-<crc:08x>`).
    pub fn finish(mut self, writer: &str) -> (Vec<u8>, String) {
        let threshold = everywhere_threshold(self.blocks);
        self.mark_everywhere(|len| len > threshold);
        let mut head = Vec::new();
        put_uvarint(&mut head, self.chunks.len() as u64);
        for c in &self.chunks {
            head.extend_from_slice(&c.fp.to_le_bytes());
            put_bytes(&mut head, c.id.as_bytes());
            put_uvarint(&mut head, u64::from(c.blocks));
        }
        let mut entries: Vec<[u32; 4]> = Vec::new();
        let mut postings = Vec::new();
        for c in 0..TERMS {
            if bit(&self.everywhere, c as u32) {
                entries.push([c as u32, 0, EVERYWHERE, 0]);
            } else if !self.postings[c].is_empty() {
                let at = postings.len();
                let mut prev = 0u32;
                for (i, &b) in self.postings[c].iter().enumerate() {
                    put_uvarint(&mut postings, u64::from(if i == 0 { b } else { b - prev }));
                    prev = b;
                }
                let list = &postings[at..];
                entries.push([
                    c as u32,
                    at as u32,
                    list.len() as u32,
                    crc32fast::hash(list),
                ]);
            }
        }
        put_uvarint(&mut head, entries.len() as u64);
        let pages: Vec<Vec<u8>> = entries
            .chunks(PAGE_ENTRIES)
            .map(|es| {
                let mut p = Vec::with_capacity(es.len() * ENTRY);
                for e in es {
                    for v in e {
                        p.extend_from_slice(&v.to_le_bytes());
                    }
                }
                p
            })
            .collect();
        put_uvarint(&mut head, pages.len() as u64);
        for (p, es) in pages.iter().zip(entries.chunks(PAGE_ENTRIES)) {
            head.extend_from_slice(&es[0][0].to_le_bytes());
            head.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
        }
        let mut out = Vec::with_capacity(16 + head.len() + entries.len() * ENTRY + postings.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
        out.extend_from_slice(&head);
        for p in &pages {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&postings);
        let crc = crc32fast::hash(&out);
        let name = format!("{writer}-{:016x}-{crc:08x}", out.len());
        (out, name)
    }
}

/// The decoded head of an index.
#[derive(Debug)]
struct Head {
    /// (fp, id) -> (first block number, blocks).
    chunks: HashMap<(u64, String), (u32, u32)>,
    terms: usize,
    firsts: Vec<u32>,
    crcs: Vec<u32>,
    pages_at: u64,
    postings_at: u64,
}

fn damaged(what: &'static str) -> impl Fn(crate::encoding::Malformed) -> TermsError {
    move |_| TermsError::Damaged(what)
}

/// Decodes the head from the object's first bytes; `Ok(Err(len))` when
/// they do not hold it all (the head ends at `len`).
fn decode_head(start: &[u8], size: u64) -> Result<Result<Head, u64>, TermsError> {
    if start.len() < MAGIC.len() + 8 || &start[..MAGIC.len()] != MAGIC {
        return Err(TermsError::Damaged("magic"));
    }
    let mut r = Reader::new(&start[MAGIC.len()..]);
    let len = r.u32le("head").map_err(damaged("head"))? as usize;
    let crc = r.u32le("head").map_err(damaged("head"))?;
    if len > MAX_HEAD {
        return Err(TermsError::Damaged("head length"));
    }
    let end = (MAGIC.len() + 8 + len) as u64;
    if end > size {
        return Err(TermsError::Damaged("head length"));
    }
    if r.remaining() < len {
        return Ok(Err(end));
    }
    let head = r.take(len, "head").map_err(damaged("head"))?;
    if crc32fast::hash(head) != crc {
        return Err(TermsError::Damaged("head checksum"));
    }
    let mut h = Reader::new(head);
    let n = h.len("chunks", len).map_err(damaged("head"))?;
    let mut chunks = HashMap::with_capacity(n);
    let mut base: u64 = 0;
    for _ in 0..n {
        let fp = h.u64le("fp").map_err(damaged("head"))?;
        let id = h.str("chunk id").map_err(damaged("head"))?.to_string();
        let blocks = h.uvarint("blocks").map_err(damaged("head"))?;
        let blocks = u32::try_from(blocks).map_err(|_| TermsError::Damaged("head"))?;
        let first = u32::try_from(base).map_err(|_| TermsError::Damaged("head"))?;
        chunks.insert((fp, id), (first, blocks));
        base += u64::from(blocks);
    }
    let terms = h.len("terms", TERMS).map_err(damaged("head"))?;
    let pages = h.len("pages", TERMS).map_err(damaged("head"))?;
    if pages != terms.div_ceil(PAGE_ENTRIES) {
        return Err(TermsError::Damaged("head"));
    }
    let mut firsts = Vec::with_capacity(pages);
    let mut crcs = Vec::with_capacity(pages);
    for _ in 0..pages {
        firsts.push(h.u32le("page").map_err(damaged("head"))?);
        crcs.push(h.u32le("page").map_err(damaged("head"))?);
    }
    let postings_at = end + (terms * ENTRY) as u64;
    if postings_at > size || !firsts.is_sorted() {
        return Err(TermsError::Damaged("head"));
    }
    Ok(Ok(Head {
        chunks,
        terms,
        firsts,
        crcs,
        pages_at: end,
        postings_at,
    }))
}

/// Reads a byte range of the index object.
pub trait Fetch {
    /// The bytes of `range`.
    fn fetch(&self, range: Range<u64>) -> std::io::Result<bytes::Bytes>;
}

/// A term index's object in the bucket.
pub struct InBucket<'a>(pub &'a super::Bucket, pub &'a str);

impl Fetch for InBucket<'_> {
    fn fetch(&self, range: Range<u64>) -> std::io::Result<bytes::Bytes> {
        self.0.get_range(self.1, range)
    }
}

/// A read node's term indexes of one tenant, by the chunk (fp, id) they
/// cover.
pub type ChunkTerms = HashMap<(u64, String), Arc<TermIndex>>;

/// Which blocks may hold every literal: `None` when the index rules out
/// nothing, else the block numbers, sorted.
pub type Candidates = Option<Arc<Vec<u32>>>;

/// A term index in the bucket, read lazily: its head on first use, then
/// the pages and postings lookups need (kept in memory, bounded).
pub struct TermIndex {
    /// Its key.
    pub key: String,
    size: u64,
    head: OnceLock<Result<Head, String>>,
    pages: Mutex<HashMap<usize, Arc<Vec<u8>>>>,
    memo: Mutex<HashMap<Vec<Vec<u8>>, Candidates>>,
}

/// Pages kept in memory per index (4 KiB each).
const MAX_PAGES: usize = 1024;
/// Lookups remembered per index.
const MAX_MEMO: usize = 256;

impl TermIndex {
    /// The index at `key`, `size` bytes long (from the segment naming it).
    pub fn new(key: String, size: u64) -> TermIndex {
        TermIndex {
            key,
            size,
            head: OnceLock::new(),
            pages: Mutex::new(HashMap::new()),
            memo: Mutex::new(HashMap::new()),
        }
    }

    fn head(&self, f: &dyn Fetch) -> Result<&Head, TermsError> {
        if let Some(h) = self.head.get() {
            return h.as_ref().map_err(|_| TermsError::Damaged("head"));
        }
        let got = f.fetch(0..HEAD_FETCH.min(self.size))?;
        let head = match decode_head(&got, self.size) {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(end)) => {
                let all = f.fetch(0..end)?;
                match decode_head(&all, self.size) {
                    Ok(Ok(h)) => Ok(h),
                    Ok(Err(_)) => Err(TermsError::Damaged("head length")),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        // Damage is remembered; an unreachable bucket is tried again.
        match head {
            Ok(h) => Ok(self
                .head
                .get_or_init(|| Ok(h))
                .as_ref()
                .map_err(|_| TermsError::Damaged("head"))?),
            Err(TermsError::Damaged(w)) => {
                let _ = self.head.set(Err(w.to_string()));
                Err(TermsError::Damaged(w))
            }
            Err(e) => Err(e),
        }
    }

    /// The block numbers of a chunk the index covers: `first..first + n`.
    pub fn chunk_blocks(
        &self,
        f: &dyn Fetch,
        fp: u64,
        id: &str,
    ) -> Result<Option<Range<u32>>, TermsError> {
        let h = self.head(f)?;
        Ok(h.chunks
            .get(&(fp, id.to_string()))
            .map(|&(first, n)| first..first.saturating_add(n)))
    }

    fn page(&self, f: &dyn Fetch, h: &Head, i: usize) -> Result<Arc<Vec<u8>>, TermsError> {
        if let Some(p) = self.pages.lock().get(&i) {
            return Ok(p.clone());
        }
        let entries = (h.terms - i * PAGE_ENTRIES).min(PAGE_ENTRIES);
        let at = h.pages_at + (i * PAGE_ENTRIES * ENTRY) as u64;
        let bytes = f.fetch(at..at + (entries * ENTRY) as u64)?;
        if bytes.len() != entries * ENTRY || crc32fast::hash(&bytes) != h.crcs[i] {
            return Err(TermsError::Damaged("page checksum"));
        }
        let p = Arc::new(bytes.to_vec());
        let mut m = self.pages.lock();
        if m.len() >= MAX_PAGES {
            m.clear();
        }
        m.insert(i, p.clone());
        Ok(p)
    }

    /// The postings of one term: `Ok(None)` for "everywhere".
    fn postings(&self, f: &dyn Fetch, h: &Head, term: u32) -> Result<Option<Vec<u32>>, TermsError> {
        let i = h.firsts.partition_point(|&x| x <= term);
        if i == 0 {
            return Ok(Some(Vec::new()));
        }
        let page = self.page(f, h, i - 1)?;
        let entry = page.chunks_exact(ENTRY).find_map(|e| {
            let v = |k: usize| u32::from_le_bytes([e[k], e[k + 1], e[k + 2], e[k + 3]]);
            (v(0) == term).then(|| (v(4), v(8), v(12)))
        });
        let Some((off, len, crc)) = entry else {
            return Ok(Some(Vec::new()));
        };
        if len == EVERYWHERE {
            return Ok(None);
        }
        let at = h.postings_at + u64::from(off);
        if at + u64::from(len) > self.size {
            return Err(TermsError::Damaged("postings offset"));
        }
        let bytes = f.fetch(at..at + u64::from(len))?;
        if bytes.len() != len as usize || crc32fast::hash(&bytes) != crc {
            return Err(TermsError::Damaged("postings checksum"));
        }
        let mut r = Reader::new(&bytes);
        let mut out = Vec::new();
        let mut b: u64 = 0;
        while !r.is_empty() {
            let d = r.uvarint("postings").map_err(damaged("postings"))?;
            b = if out.is_empty() {
                d
            } else {
                b.checked_add(d).ok_or(TermsError::Damaged("postings"))?
            };
            out.push(u32::try_from(b).map_err(|_| TermsError::Damaged("postings"))?);
        }
        Ok(Some(out))
    }

    /// The blocks that may hold a line containing every one of `literals`
    /// (compared ignoring ASCII case).
    pub fn candidates(&self, f: &dyn Fetch, literals: &[&[u8]]) -> Result<Candidates, TermsError> {
        let key: Vec<Vec<u8>> = literals.iter().map(|l| l.to_ascii_lowercase()).collect();
        if let Some(c) = self.memo.lock().get(&key) {
            return Ok(c.clone());
        }
        let h = self.head(f)?;
        let mut terms: Vec<u32> = literals.iter().flat_map(|l| lookup_terms(l)).collect();
        terms.sort_unstable();
        terms.dedup();
        let mut acc: Option<Vec<u32>> = None;
        for t in terms {
            let Some(list) = self.postings(f, h, t)? else {
                continue;
            };
            acc = Some(match acc {
                None => list,
                Some(a) => crate::index::postings::intersect(&a, &list),
            });
            if acc.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        let out = acc.map(Arc::new);
        let mut m = self.memo.lock();
        if m.len() >= MAX_MEMO {
            m.clear();
        }
        m.insert(key, out.clone());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Mem(Vec<u8>, std::sync::atomic::AtomicU64);

    impl Fetch for Mem {
        fn fetch(&self, r: Range<u64>) -> std::io::Result<bytes::Bytes> {
            self.1
                .fetch_add(r.end - r.start, std::sync::atomic::Ordering::Relaxed);
            let s = usize::try_from(r.start)
                .unwrap_or(usize::MAX)
                .min(self.0.len());
            let e = usize::try_from(r.end)
                .unwrap_or(usize::MAX)
                .min(self.0.len());
            Ok(bytes::Bytes::copy_from_slice(&self.0[s..e]))
        }
    }

    fn mem(bytes: Vec<u8>) -> Mem {
        Mem(bytes, std::sync::atomic::AtomicU64::new(0))
    }

    /// Chunks of blocks of lines: (fp, id, blocks).
    type Data = Vec<(u64, String, Vec<Vec<u8>>)>;

    fn build(data: &Data) -> (Vec<u8>, String) {
        let mut b = Builder::new();
        for (fp, id, blocks) in data {
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            assert!(b.add_chunk(*fp, id, &refs));
        }
        b.finish("compactor")
    }

    /// Brute force: the block numbers whose lines contain every literal.
    fn brute(data: &Data, literals: &[&[u8]]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut n = 0u32;
        for (_, _, blocks) in data {
            for lines in blocks {
                let low = lines.to_ascii_lowercase();
                if literals.iter().all(|l| {
                    let l = l.to_ascii_lowercase();
                    l.is_empty() || low.windows(l.len()).any(|w| w == l.as_slice())
                }) {
                    out.push(n);
                }
                n += 1;
            }
        }
        out
    }

    fn sample() -> Data {
        vec![
            (
                1,
                "c1".into(),
                vec![
                    b"GET /api/users/42 200 took=13ms\n".to_vec(),
                    b"trace_id=7f3a9c2e payment declined\n".to_vec(),
                ],
            ),
            (
                2,
                "c2".into(),
                vec![b"POST /login 401 user=Alice\n".to_vec()],
            ),
        ]
    }

    #[test]
    fn finds_blocks_and_rules_out_the_rest() {
        let (bytes, name) = build(&sample());
        assert!(name.starts_with("compactor-"), "{name}");
        assert!(crate::index::valid_chunk_id(&name));
        let m = mem(bytes.clone());
        let ti = TermIndex::new("k".into(), bytes.len() as u64);
        assert_eq!(ti.chunk_blocks(&m, 1, "c1").unwrap(), Some(0..2));
        assert_eq!(ti.chunk_blocks(&m, 2, "c2").unwrap(), Some(2..3));
        assert_eq!(ti.chunk_blocks(&m, 2, "c9").unwrap(), None);
        let c = |lits: &[&[u8]]| ti.candidates(&m, lits).unwrap().map(|v| v.to_vec());
        assert_eq!(c(&[b"PAYMENT declined"]), Some(vec![1]));
        assert_eq!(c(&[b"user"]), Some(vec![0, 2]));
        assert_eq!(c(&[b"users", b"took"]), Some(vec![0]));
        assert_eq!(c(&[b"alice", b"took"]), Some(vec![]));
        assert_eq!(c(&[b"nowhere"]), Some(vec![]));
        // Nothing to look up: nothing ruled out.
        assert_eq!(c(&[b"=1"]), None);
        // Remembered: a second lookup fetches nothing.
        let before = m.1.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(c(&[b"PAYMENT declined"]), Some(vec![1]));
        assert_eq!(m.1.load(std::sync::atomic::Ordering::Relaxed), before);
    }

    #[test]
    fn frequent_terms_are_everywhere() {
        let blocks: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("common words here id{i:04}\n").into_bytes())
            .collect();
        let data: Data = vec![(1, "c".into(), blocks)];
        let (bytes, _) = build(&data);
        let m = mem(bytes.clone());
        let ti = TermIndex::new("k".into(), bytes.len() as u64);
        // "comm" is in all 100 blocks, over the threshold of 64.
        assert_eq!(ti.candidates(&m, &[b"common"]).unwrap(), None);
        assert_eq!(
            ti.candidates(&m, &[b"common words here id0042"])
                .unwrap()
                .map(|v| v.to_vec()),
            Some(vec![42])
        );
    }

    #[test]
    fn damage_is_detected() {
        let (bytes, _) = build(&sample());
        // Every single flipped byte is either caught or harmless to this
        // lookup (bytes no lookup reads); never a wrong answer.
        let want = brute(&sample(), &[b"payment"]);
        let mut caught = 0;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            let m = mem(b.clone());
            let ti = TermIndex::new("k".into(), b.len() as u64);
            match ti.candidates(&m, &[b"payment"]) {
                Err(TermsError::Damaged(_)) => caught += 1,
                Err(e) => panic!("{e}"),
                Ok(None) => {}
                Ok(Some(c)) => assert!(
                    want.iter().all(|w| c.contains(w)),
                    "byte {i}: {c:?} misses {want:?}"
                ),
            }
        }
        assert!(caught > bytes.len() / 2, "{caught} of {}", bytes.len());
        // Cut short.
        let m = mem(bytes[..20].to_vec());
        let ti = TermIndex::new("k".into(), 20);
        assert!(matches!(
            ti.candidates(&m, &[b"payment"]),
            Err(TermsError::Damaged(_))
        ));
        let m = mem(b"not an index at all".to_vec());
        let ti = TermIndex::new("k".into(), 19);
        assert!(matches!(
            ti.chunk_blocks(&m, 1, "c1"),
            Err(TermsError::Damaged(_))
        ));
    }

    #[test]
    fn a_big_head_is_fetched_in_two_requests() {
        let data: Data = (0..3000)
            .map(|i| {
                (
                    i,
                    format!("chunk-with-a-long-name-{i:08}"),
                    vec![b"x1y2z3 w".to_vec()],
                )
            })
            .collect();
        let (bytes, _) = build(&data);
        assert!(bytes.len() as u64 > HEAD_FETCH);
        let m = mem(bytes.clone());
        let ti = TermIndex::new("k".into(), bytes.len() as u64);
        assert_eq!(
            ti.chunk_blocks(&m, 2999, "chunk-with-a-long-name-00002999")
                .unwrap(),
            Some(2999..3000)
        );
        assert_eq!(ti.candidates(&m, &[b"x1y2z3"]).unwrap(), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A lookup finds every block a brute-force scan finds (and, with
        /// no term everywhere, the blocks it finds hold every window).
        #[test]
        fn lookup_finds_what_a_scan_finds(
            chunks in proptest::collection::vec(
                proptest::collection::vec("[a-fA-F0-9 =_\n]{0,120}", 1..5), 1..6),
            pick in any::<prop::sample::Index>(),
            start in 0usize..120,
            len in 0usize..20,
            absent in "[g-z]{4,8}",
        ) {
            let data: Data = chunks
                .iter()
                .enumerate()
                .map(|(i, bs)| (i as u64, format!("c{i}"), bs.iter().map(|s| s.clone().into_bytes()).collect()))
                .collect();
            let (bytes, _) = build(&data);
            let m = mem(bytes.clone());
            let ti = TermIndex::new("k".into(), bytes.len() as u64);
            let all: Vec<&Vec<u8>> = data.iter().flat_map(|(_, _, b)| b.iter()).collect();
            let src = all[pick.index(all.len())];
            let s = start.min(src.len());
            let e = (s + len).min(src.len());
            let lit = &src[s..e];
            let want = brute(&data, &[lit]);
            match ti.candidates(&m, &[lit]).unwrap() {
                None => prop_assert!(literal_terms(lit).is_empty()),
                Some(got) => {
                    for w in &want {
                        prop_assert!(got.contains(w));
                    }
                    // The candidates are the blocks holding every term
                    // the lookup uses.
                    let terms = lookup_terms(lit);
                    for (n, lines) in all.iter().enumerate() {
                        let mut have = Vec::new();
                        filter::for_each_window(lines, |g| have.extend(code(g)));
                        let holds = terms.iter().all(|t| have.contains(t));
                        prop_assert_eq!(got.contains(&(n as u32)), holds, "block {}", n);
                    }
                }
            }
            let got = ti.candidates(&m, &[absent.as_bytes()]).unwrap();
            prop_assert_eq!(got.map(|v| v.to_vec()), Some(brute(&data, &[absent.as_bytes()])));
        }
    }
}
