//! Term dictionary side bench: the per-day term index's dictionary (a
//! sorted array of fixed-width entries in 4 KiB pages, with a page index
//! in the head; `larch_store::objstore::terms`) against an FST
//! (`tantivy-fst`, the term dictionary tantivy uses) mapping the same
//! terms to the same postings (offset and length in the same postings
//! area). Both are built from one index: the store's own `Builder` run
//! over the objstore bench's workload (loghub lines replayed over 32
//! streams, the needle once in the middle), cut into blocks of 256 KiB of
//! lines and chunks of 16 blocks as the store's defaults roughly do.
//!
//! Reported: dictionary bytes, build time, lookup time (in memory), and
//! for a needle lookup from a cold start the bytes and requests each
//! needs from the bucket (the term index through its real reader, the FST
//! by the 4 KiB pages its nodes along each key's path lie in, as a reader
//! fetching ranges of it would need). The postings fetched are the same
//! for both and shown once.
//!
//! `cargo run --release -p larch-benches --bin term_dictionary -- --help`

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use larch_benches::data::{Replay, load_samples, loghub_dir};
use larch_store::objstore::terms::{self, Builder, Fetch, TermIndex};
use tantivy_fst::{Map, MapBuilder};

#[derive(Parser, Debug)]
struct Args {
    /// MiB of raw log lines indexed (one day's index).
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Streams the lines are spread over.
    #[arg(long, default_value_t = 32)]
    streams: usize,
    /// Random terms looked up for the lookup time.
    #[arg(long, default_value_t = 2_000_000)]
    lookups: usize,
    /// Literals (taken from the indexed lines) looked up cold, for the
    /// average bytes per lookup.
    #[arg(long, default_value_t = 1_000)]
    literals: usize,
}

/// The objstore bench's needle.
const NEEDLE: &str = "trace_id=7f3a9c2e51d04b86 payment declined";
/// Lines per block (bytes of the lines column), as `ingester.block_size`.
const BLOCK: usize = 262_144;
/// Blocks per chunk (about `ingester.chunk_target_size` compressed).
const CHUNK_BLOCKS: usize = 16;
/// The page size a range reader would fetch an FST by.
const PAGE: u64 = 4096;
/// Postings length of an "everywhere" term.
const EVERYWHERE: u32 = u32::MAX;

/// A cold lookup's figures: the term index's head, page and postings
/// bytes then requests; the FST keyed by text's bytes, requests and
/// longest dependent chain; the same keyed by code; whether any block
/// was left.
type Cold = ([u64; 6], [u64; 3], [u64; 3], bool);

/// A small deterministic generator (no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// A fetcher over the index's bytes that records every range asked for.
struct Counting<'a> {
    bytes: &'a [u8],
    ranges: RefCell<Vec<Range<u64>>>,
}

impl Fetch for Counting<'_> {
    fn fetch(&self, r: Range<u64>) -> std::io::Result<bytes::Bytes> {
        self.ranges.borrow_mut().push(r.clone());
        let s = usize::try_from(r.start)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let e = usize::try_from(r.end)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        Ok(bytes::Bytes::copy_from_slice(&self.bytes[s..e]))
    }
}

/// The dictionary of a built term index, read back from its bytes.
struct Parsed {
    /// (term, postings offset, postings length, postings crc).
    entries: Vec<[u32; 4]>,
    /// First term of each page.
    firsts: Vec<u32>,
    head_len: usize,
    pages_at: usize,
    postings_at: usize,
}

fn uvarint(b: &[u8], at: &mut usize) -> anyhow::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*at).context("truncated varint")?;
        *at += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x < 0x80 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

fn u32le(b: &[u8], at: usize) -> anyhow::Result<u32> {
    let s = b.get(at..at + 4).context("truncated u32")?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads the format documented in `objstore::terms`.
fn parse(bytes: &[u8]) -> anyhow::Result<Parsed> {
    ensure!(bytes.starts_with(b"LRTERMS\x01"), "not a term index");
    let head_len = u32le(bytes, 8)? as usize;
    let head = bytes.get(16..16 + head_len).context("head")?;
    let mut at = 0;
    let chunks = uvarint(head, &mut at)?;
    for _ in 0..chunks {
        at += 8;
        let id = uvarint(head, &mut at)? as usize;
        at += id;
        uvarint(head, &mut at)?;
    }
    let nterms = uvarint(head, &mut at)? as usize;
    let npages = uvarint(head, &mut at)? as usize;
    let mut firsts = Vec::with_capacity(npages);
    for i in 0..npages {
        firsts.push(u32le(head, at + 8 * i)?);
    }
    let pages_at = 16 + head_len;
    let postings_at = pages_at + 16 * nterms;
    let mut entries = Vec::with_capacity(nterms);
    for i in 0..nterms {
        let e = pages_at + 16 * i;
        entries.push([
            u32le(bytes, e)?,
            u32le(bytes, e + 4)?,
            u32le(bytes, e + 8)?,
            u32le(bytes, e + 12)?,
        ]);
    }
    Ok(Parsed {
        entries,
        firsts,
        head_len,
        pages_at,
        postings_at,
    })
}

/// A term code's four characters in text order (the first character is
/// the code's least significant base-36 digit).
fn chars(code: u32) -> [u8; 4] {
    let mut out = [0u8; 4];
    let mut c = code;
    for o in &mut out {
        let d = (c % 36) as u8;
        *o = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        c /= 36;
    }
    out
}

/// The FST value of an entry: offset and length of its postings.
fn value(e: &[u32; 4]) -> u64 {
    (u64::from(e[1]) << 32) | u64::from(e[2])
}

/// The term index's in-memory lookup, as its reader does it: the page by
/// binary search over the page index, then the entry in the page.
fn array_get(p: &Parsed, bytes: &[u8], term: u32) -> Option<u64> {
    let i = p.firsts.partition_point(|&x| x <= term);
    if i == 0 {
        return None;
    }
    let start = p.pages_at + (i - 1) * 256 * 16;
    let end = (start + 256 * 16).min(p.postings_at);
    bytes[start..end].chunks_exact(16).find_map(|e| {
        let v = |k: usize| u32::from_le_bytes([e[k], e[k + 1], e[k + 2], e[k + 3]]);
        (v(0) == term).then(|| (u64::from(v(4)) << 32) | u64::from(v(8)))
    })
}

/// The byte spans of the FST nodes a lookup of `key` visits, and its
/// value.
fn fst_path(fst: &tantivy_fst::raw::Fst<Vec<u8>>, key: &[u8]) -> (Vec<Range<u64>>, Option<u64>) {
    let span = |n: &tantivy_fst::raw::Node| {
        let addr = n.addr() as u64;
        let len = n.as_slice().len() as u64;
        (addr + 1 - len)..(addr + 1)
    };
    let mut node = fst.root();
    let mut spans = vec![span(&node)];
    let mut out = tantivy_fst::raw::Output::zero();
    for &b in key {
        match node.find_input(b) {
            None => return (spans, None),
            Some(i) => {
                let t = node.transition(i);
                out = out.cat(t.out);
                node = fst.node(t.addr);
                spans.push(span(&node));
            }
        }
    }
    let v = node
        .is_final()
        .then(|| out.cat(node.final_output()).value());
    (spans, v)
}

/// What a cold needle lookup fetches from an FST of `len` bytes: the
/// footer (root address and key count), then the 4 KiB page of every node
/// on each key's path not fetched yet, one after the other. (bytes,
/// requests, requests on the longest dependent chain).
fn fst_cold(
    fst: &tantivy_fst::raw::Fst<Vec<u8>>,
    len: u64,
    keys: &[Vec<u8>],
) -> (u64, usize, usize) {
    let mut pages: BTreeSet<u64> = BTreeSet::new();
    let mut chain = 0;
    for k in keys {
        let (spans, _) = fst_path(fst, k);
        let mut steps = 0;
        for s in spans {
            for p in s.start / PAGE..s.end.div_ceil(PAGE) {
                if pages.insert(p) {
                    steps += 1;
                }
            }
        }
        chain = chain.max(steps);
    }
    let bytes: u64 = pages
        .iter()
        .map(|p| (p * PAGE + PAGE).min(len) - p * PAGE)
        .sum();
    // The footer: 16 bytes, one request before any node.
    (bytes + 16, pages.len() + 1, chain + 1)
}

fn mib(b: usize) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.streams > 0, "--streams must be at least 1");
    let samples = load_samples(&loghub_dir()).context("reading the loghub samples")?;
    let mut replay = Replay::new(samples);
    let target = (args.mib as u64) << 20;

    // Lines cut into blocks per stream, blocks into chunks, indexed by
    // the store's builder as the compactor does.
    let mut builder = Builder::new();
    let mut cur: Vec<Vec<u8>> = vec![Vec::new(); args.streams];
    let mut full: Vec<Vec<Vec<u8>>> = vec![Vec::new(); args.streams];
    let mut chunk_no = vec![0usize; args.streams];
    let mut needle_done = false;
    let mut indexed = std::time::Duration::ZERO;
    let (mut raw, mut lines) = (0u64, 0u64);
    let mut rng = Lcg(0x5eed);
    let mut literals: Vec<Vec<u8>> = Vec::new();
    let mut add =
        |b: &mut Builder, s: usize, blocks: &[Vec<u8>], no: usize| -> anyhow::Result<()> {
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            let t = Instant::now();
            ensure!(
                b.add_chunk(s as u64, &format!("{s}-{no}"), &refs),
                "too many blocks"
            );
            indexed += t.elapsed();
            Ok(())
        };
    while raw < target {
        let Some((src, mut line)) = replay.next() else {
            bail!("no loghub samples in {}", loghub_dir().display());
        };
        if !needle_done && raw >= target / 2 {
            line = NEEDLE.to_string();
            needle_done = true;
        }
        let s = (src + lines as usize) % args.streams;
        // One literal in every few thousand lines: 24 bytes from its
        // middle (the shape of a needle someone pastes).
        if line.len() >= 32 && rng.next().is_multiple_of(4096) && literals.len() < args.literals {
            let at = line.len() / 2 - 12;
            literals.push(line.as_bytes()[at..at + 24].to_vec());
        }
        raw += line.len() as u64;
        lines += 1;
        cur[s].extend_from_slice(line.as_bytes());
        if cur[s].len() >= BLOCK {
            full[s].push(std::mem::take(&mut cur[s]));
            if full[s].len() == CHUNK_BLOCKS {
                add(&mut builder, s, &full[s], chunk_no[s])?;
                chunk_no[s] += 1;
                full[s].clear();
            }
        }
    }
    for s in 0..args.streams {
        if !cur[s].is_empty() {
            full[s].push(std::mem::take(&mut cur[s]));
        }
        if !full[s].is_empty() {
            add(&mut builder, s, &full[s], chunk_no[s])?;
        }
    }
    let blocks = builder.blocks();
    let t = Instant::now();
    let (index, _name) = builder.finish("bench");
    let finish = t.elapsed();
    let p = parse(&index)?;
    let nterms = p.entries.len();
    let dict_array = 16 * nterms + 8 * p.firsts.len();
    let postings = index.len() - p.postings_at;
    let everywhere = p.entries.iter().filter(|e| e[2] == EVERYWHERE).count();

    // The same entries in FSTs: keyed by the term's four characters (the
    // term's text, as tantivy keys its dictionary; sorted, since the
    // codes' order is not the text's), and by the code in 3 big-endian
    // bytes (the codes' order, no sort).
    let t = Instant::now();
    let mut by_text: Vec<([u8; 4], u64)> =
        p.entries.iter().map(|e| (chars(e[0]), value(e))).collect();
    by_text.sort_unstable_by_key(|(k, _)| *k);
    let mut mb = MapBuilder::memory();
    for (k, v) in &by_text {
        mb.insert(k, *v)?;
    }
    let fst_text = mb.into_inner()?;
    let build_text = t.elapsed();
    let t = Instant::now();
    let mut mb = MapBuilder::memory();
    for e in &p.entries {
        let c = e[0].to_be_bytes();
        mb.insert(&c[1..], value(e))?;
    }
    let fst_code = mb.into_inner()?;
    let build_code = t.elapsed();
    // The array's own layout from the same entries, for comparison: what
    // `Builder::finish` does for the dictionary (entries and page index).
    let t = Instant::now();
    let mut array = Vec::with_capacity(16 * nterms);
    let mut page_index = Vec::with_capacity(8 * p.firsts.len());
    for page in p.entries.chunks(256) {
        let at = array.len();
        for e in page {
            for v in e {
                array.extend_from_slice(&v.to_le_bytes());
            }
        }
        page_index.extend_from_slice(&page[0][0].to_le_bytes());
        page_index.extend_from_slice(&crc32fast::hash(&array[at..]).to_le_bytes());
    }
    let build_array = t.elapsed();
    ensure!(
        array[..] == index[p.pages_at..p.postings_at],
        "array layout"
    );

    let map_text = Map::from_bytes(fst_text.clone())?;
    let map_code = Map::from_bytes(fst_code.clone())?;
    // Every entry is found, with the same value, in all three.
    for e in &p.entries {
        let want = Some(value(e));
        ensure!(array_get(&p, &index, e[0]) == want, "array lookup");
        ensure!(map_text.get(chars(e[0])) == want, "fst lookup (text)");
        let c = e[0].to_be_bytes();
        ensure!(map_code.get(&c[1..]) == want, "fst lookup (code)");
    }

    // Lookup time: the same random terms (half of them in the index).
    let mut rng = Lcg(42);
    let probes: Vec<u32> = (0..args.lookups)
        .map(|i| {
            if i.is_multiple_of(2) {
                p.entries[rng.next() as usize % nterms][0]
            } else {
                (rng.next() % terms::TERMS as u64) as u32
            }
        })
        .collect();
    let text_keys: Vec<[u8; 4]> = probes.iter().map(|&c| chars(c)).collect();
    let code_keys: Vec<[u8; 3]> = probes
        .iter()
        .map(|&c| {
            let b = c.to_be_bytes();
            [b[1], b[2], b[3]]
        })
        .collect();
    let time = |f: &mut dyn FnMut(usize) -> Option<u64>| {
        let t = Instant::now();
        let mut found = 0usize;
        for i in 0..probes.len() {
            found += usize::from(f(i).is_some());
        }
        (t.elapsed().as_nanos() as f64 / probes.len() as f64, found)
    };
    let (ns_array, f1) = time(&mut |i| array_get(&p, &index, probes[i]));
    let (ns_text, f2) = time(&mut |i| map_text.get(text_keys[i]));
    let (ns_code, f3) = time(&mut |i| map_code.get(code_keys[i]));
    ensure!(f1 == f2 && f2 == f3, "lookups disagree: {f1} {f2} {f3}");

    // Cold lookups: the needle, and the literals taken from the lines.
    let fst_text_raw = tantivy_fst::raw::Fst::new(fst_text.clone())?;
    let fst_code_raw = tantivy_fst::raw::Fst::new(fst_code.clone())?;
    let region = |r: &Range<u64>| {
        if r.start < p.pages_at as u64 {
            0
        } else if r.start < p.postings_at as u64 {
            1
        } else {
            2
        }
    };
    let cold = |lit: &[u8]| -> anyhow::Result<Cold> {
        let c = Counting {
            bytes: &index,
            ranges: RefCell::new(Vec::new()),
        };
        let ti = TermIndex::new("bench".into(), index.len() as u64);
        let cand = ti.candidates(&c, &[lit])?;
        let mut a = [0u64; 6];
        for r in c.ranges.borrow().iter() {
            let k = region(r);
            a[k] += r.end - r.start;
            a[3 + k] += 1;
        }
        let ts = terms::lookup_terms(lit);
        let tk: Vec<Vec<u8>> = ts.iter().map(|&t| chars(t).to_vec()).collect();
        let ck: Vec<Vec<u8>> = ts.iter().map(|&t| t.to_be_bytes()[1..].to_vec()).collect();
        let (b1, r1, c1) = fst_cold(&fst_text_raw, fst_text.len() as u64, &tk);
        let (b2, r2, c2) = fst_cold(&fst_code_raw, fst_code.len() as u64, &ck);
        Ok((
            a,
            [b1, r1 as u64, c1 as u64],
            [b2, r2 as u64, c2 as u64],
            // "Everywhere" for every term rules out nothing: found.
            cand.is_none_or(|v| !v.is_empty()),
        ))
    };
    let (needle_a, needle_t, needle_c, needle_found) = cold(NEEDLE.as_bytes())?;
    ensure!(needle_found, "the needle's lookup found no block");
    let mut sum_a = [0u64; 6];
    let mut sum_t = [0u64; 3];
    let mut sum_c = [0u64; 3];
    for l in &literals {
        let (a, t, c, found) = cold(l)?;
        ensure!(found, "a literal from the lines found no block");
        for i in 0..6 {
            sum_a[i] += a[i];
        }
        for i in 0..3 {
            sum_t[i] += t[i];
            sum_c[i] += c[i];
        }
    }
    let n = literals.len().max(1) as f64;

    println!(
        "workload: {:.1} MiB of raw lines, {lines} lines, {} streams, {blocks} blocks",
        raw as f64 / (1u64 << 20) as f64,
        args.streams
    );
    println!(
        "term index: {:.2} MiB in all ({nterms} terms, {everywhere} everywhere; head {:.1} KiB, postings {:.2} MiB); builder {:.2} s over the lines, finish {:.0} ms",
        mib(index.len()),
        p.head_len as f64 / 1024.0,
        mib(postings),
        indexed.as_secs_f64(),
        finish.as_secs_f64() * 1e3
    );
    println!("| dictionary | bytes | build | lookup (in memory) |");
    println!("|---|---|---|---|");
    println!(
        "| sorted array, 4 KiB pages + page index (ours) | {:.3} MiB | {:.1} ms | {ns_array:.0} ns |",
        mib(dict_array),
        build_array.as_secs_f64() * 1e3
    );
    println!(
        "| FST, key = the term's 4 characters | {:.3} MiB | {:.1} ms (with the sort) | {ns_text:.0} ns |",
        mib(fst_text.len()),
        build_text.as_secs_f64() * 1e3
    );
    println!(
        "| FST, key = the code in 3 bytes | {:.3} MiB | {:.1} ms | {ns_code:.0} ns |",
        mib(fst_code.len()),
        build_code.as_secs_f64() * 1e3
    );
    println!(
        "cold needle `{NEEDLE}` ({} lookup terms):",
        terms::lookup_terms(NEEDLE.as_bytes()).len()
    );
    println!(
        "  ours: head {} B in {} request(s), pages {} B in {} requests (independent); postings {} B in {} requests",
        needle_a[0], needle_a[3], needle_a[1], needle_a[4], needle_a[2], needle_a[5]
    );
    println!(
        "  fst (text keys): {} B in {} requests, longest dependent chain {}; fst (code keys): {} B in {} requests, chain {}",
        needle_t[0], needle_t[1], needle_t[2], needle_c[0], needle_c[1], needle_c[2]
    );
    println!(
        "cold, mean over {} literals of 24 bytes from the lines:",
        literals.len()
    );
    println!(
        "  ours: head {:.0} B in {:.2} requests, pages {:.0} B in {:.2} requests; postings {:.0} B in {:.2} requests",
        sum_a[0] as f64 / n,
        sum_a[3] as f64 / n,
        sum_a[1] as f64 / n,
        sum_a[4] as f64 / n,
        sum_a[2] as f64 / n,
        sum_a[5] as f64 / n
    );
    println!(
        "  fst (text keys): {:.0} B in {:.2} requests (chain {:.2}); fst (code keys): {:.0} B in {:.2} requests (chain {:.2})",
        sum_t[0] as f64 / n,
        sum_t[1] as f64 / n,
        sum_t[2] as f64 / n,
        sum_c[0] as f64 / n,
        sum_c[1] as f64 / n,
        sum_c[2] as f64 / n
    );
    Ok(())
}
