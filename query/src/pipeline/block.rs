//! The block line matcher: a chain of line filters run over a whole
//! decoded [`Block`] at once, the way ripgrep searches a buffer.
//!
//! A block's line bytes are contiguous (`lines`), entry `i` being
//! `lines[offsets[i]..offsets[i + 1]]`, with no separator between entries
//! (lines may themselves contain `\n`). Instead of calling the filters
//! once per entry, the matcher picks one positive filter that can be
//! searched over a buffer — the *driver* — and searches the block's bytes
//! from the current position:
//!
//! 1. the driver's searcher (memchr's `memmem` for one literal,
//!    Aho-Corasick for several or for case-insensitive ones, the regex
//!    itself for an assertion-free regex) reports the next hit;
//! 2. the hit is mapped to its entry through the offsets, moving a cursor
//!    forward (a binary search over the offsets still ahead, since hits
//!    are ordered);
//! 3. an exact hit that lies inside the entry proves the driver matches
//!    it; a hit that crosses into the next entry, or a hit of a mere
//!    prefilter (a literal the regex requires), is confirmed by running
//!    the driver on that entry alone;
//! 4. the remaining filters run on that entry only;
//! 5. the search resumes at the start of the next entry.
//!
//! Entries between hits are never looked at. A chain without a searchable
//! positive filter (only negative filters, `ip()`, regexes with anchors
//! and no required literal) is evaluated entry by entry.
//!
//! Why a hit found from position `p` cannot skip a matching entry: every
//! searcher reports the leftmost hit at or after `p`; a matching entry
//! after `p` contains a hit of its own (for assertion-free regexes a match
//! inside an entry is a match of the buffer at the same place), so the
//! reported hit starts no later than it, in that entry or an earlier one.
//!
//! Output is the matching entry indices, appended to a caller-owned
//! vector that is reused from block to block: no allocation per line.

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};
use memchr::memmem;
use regex::bytes::Regex;

use super::line_filter::{Alt, LineFilter, LineFilterError, LineFilterSpec};
use crate::source::{Block, Literal};

/// How the driver searches a buffer.
#[derive(Clone, Debug)]
enum Searcher {
    One(Box<memmem::Finder<'static>>),
    Many(AhoCorasick),
    Regex(Regex),
}

impl Searcher {
    /// Next hit `(start, end)` at or after `at`.
    fn find(&self, hay: &[u8], at: usize) -> Option<(usize, usize)> {
        match self {
            Searcher::One(f) => f
                .find(&hay[at..])
                .map(|s| (at + s, at + s + f.needle().len())),
            Searcher::Many(ac) => ac
                .find(Input::new(hay).range(at..))
                .map(|m| (m.start(), m.end())),
            Searcher::Regex(re) => re.find_at(hay, at).map(|m| (m.start(), m.end())),
        }
    }
}

#[derive(Clone, Debug)]
struct Driver {
    filter: usize,
    searcher: Searcher,
    /// A hit inside an entry proves the driver filter matches it.
    exact: bool,
}

/// A compiled chain of line filters (all must pass) that scans blocks.
#[derive(Clone, Debug)]
pub struct BlockMatcher {
    filters: Vec<LineFilter>,
    driver: Option<Driver>,
    never: bool,
    must_contain: Vec<Literal>,
}

fn ac(needles: &[Vec<u8>], case_insensitive: bool) -> Option<AhoCorasick> {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostFirst)
        .ascii_case_insensitive(case_insensitive)
        .build(needles)
        .ok()
}

/// Whether ASCII case folding finds exactly Loki's case-insensitive
/// matches of `needle` (lowercase): non-ASCII characters and, after the
/// first byte, `i` and `k` (which `İ` and the Kelvin sign lower to)
/// need the slow comparison.
fn ascii_fold_is_exact(needle: &[u8]) -> bool {
    needle.is_ascii() && !needle.iter().skip(1).any(|&b| b == b'i' || b == b'k')
}

/// The longest run of `needle` that ASCII folding finds in every match.
fn fold_prefilter(needle: &[u8]) -> Option<Vec<u8>> {
    let mut best: &[u8] = &[];
    let mut start = 0;
    for i in 0..=needle.len() {
        let stop = i == needle.len()
            || !needle[i].is_ascii()
            || (i > 0 && (needle[i] == b'i' || needle[i] == b'k'));
        if stop {
            if i - start > best.len() {
                best = &needle[start..i];
            }
            start = i + 1;
        }
    }
    (best.len() >= 2).then(|| best.to_vec())
}

/// A searcher for one filter, if it has one, with its exactness and a
/// rank (lower is better).
fn plan(f: &LineFilter) -> Option<(Searcher, bool, u32)> {
    if f.negated || f.alts.is_empty() {
        return None;
    }
    let mut exact_lits: Vec<Vec<u8>> = Vec::new();
    let mut folded: Vec<Vec<u8>> = Vec::new();
    let mut fold_exact = true;
    let mut prefilter_only = false;
    let mut regexes: Vec<&Regex> = Vec::new();
    for a in &f.alts {
        match a {
            Alt::Literal(fi) => exact_lits.push(fi.needle().to_vec()),
            Alt::Lower(n) => {
                if ascii_fold_is_exact(n) {
                    folded.push(n.clone());
                } else {
                    folded.push(fold_prefilter(n)?);
                    fold_exact = false;
                }
            }
            Alt::Regex(re, info) => {
                if info.buffer_safe && f.alts.len() == 1 {
                    regexes.push(re);
                } else if !info.required.is_empty() {
                    exact_lits.extend(info.required.iter().cloned());
                    prefilter_only = true;
                } else {
                    return None;
                }
            }
            Alt::Pattern(p) => {
                let longest = p.literals().max_by_key(|l| l.len())?;
                if longest.len() < 2 {
                    return None;
                }
                exact_lits.push(longest.to_vec());
                prefilter_only = true;
            }
            Alt::True | Alt::NonEmpty | Alt::Ip(_) => return None,
        }
    }
    if let Some(re) = regexes.first() {
        return Some((Searcher::Regex((*re).clone()), true, 3));
    }
    if folded.is_empty() {
        if exact_lits.len() == 1 {
            let n = &exact_lits[0];
            let rank = if n.len() >= 4 { 0 } else { 1 };
            return Some((
                Searcher::One(Box::new(memmem::Finder::new(n).into_owned())),
                !prefilter_only,
                rank,
            ));
        }
        return Some((Searcher::Many(ac(&exact_lits, false)?), !prefilter_only, 1));
    }
    // Case-insensitive search also finds the case-sensitive operands'
    // lines (a superset), so mixed chains are prefilters.
    let exact = fold_exact && exact_lits.is_empty() && !prefilter_only;
    folded.extend(exact_lits);
    Some((Searcher::Many(ac(&folded, true)?), exact, 2))
}

impl BlockMatcher {
    /// Compiles a chain of filters (the order of the chain is kept for
    /// per-entry evaluation; the driver is chosen by cost).
    pub fn new(specs: &[LineFilterSpec]) -> Result<BlockMatcher, LineFilterError> {
        let mut filters = Vec::with_capacity(specs.len());
        let mut never = false;
        for s in specs {
            let f = LineFilter::new(s)?;
            if f.is_always_false() {
                never = true;
            }
            if !f.is_always_true() {
                filters.push(f);
            }
        }
        let mut must_contain = Vec::new();
        for f in &filters {
            if f.negated || f.alts.len() != 1 {
                continue;
            }
            match &f.alts[0] {
                Alt::Literal(fi) => must_contain.push(Literal {
                    bytes: fi.needle().to_vec(),
                    case_insensitive: false,
                }),
                Alt::Lower(n) => must_contain.push(Literal {
                    bytes: n.clone(),
                    case_insensitive: true,
                }),
                Alt::Pattern(p) => must_contain.extend(p.literals().map(|l| Literal {
                    bytes: l.to_vec(),
                    case_insensitive: false,
                })),
                Alt::Regex(_, info) if info.required.len() == 1 => must_contain.push(Literal {
                    bytes: info.required[0].clone(),
                    case_insensitive: false,
                }),
                _ => {}
            }
        }
        let mut driver: Option<(Driver, u32)> = None;
        for (i, f) in filters.iter().enumerate() {
            if let Some((searcher, exact, rank)) = plan(f)
                && driver.as_ref().is_none_or(|(_, r)| rank < *r)
            {
                driver = Some((
                    Driver {
                        filter: i,
                        searcher,
                        exact,
                    },
                    rank,
                ));
            }
        }
        Ok(BlockMatcher {
            filters,
            driver: driver.map(|(d, _)| d),
            never,
            must_contain,
        })
    }

    /// Whether the chain keeps every line (no filters).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && !self.never
    }

    /// Literals every matching line contains, for
    /// [`ScanRequest::must_contain`](crate::ScanRequest::must_contain).
    pub fn must_contain(&self) -> &[Literal] {
        &self.must_contain
    }

    /// Whether the chain searches blocks (rather than testing each entry).
    pub fn searches_buffer(&self) -> bool {
        self.driver.is_some()
    }

    /// Whether one line passes every filter.
    pub fn matches_line(&self, line: &[u8]) -> bool {
        !self.never && self.filters.iter().all(|f| f.matches(line))
    }

    fn others_match(&self, skip: usize, line: &[u8]) -> bool {
        self.filters
            .iter()
            .enumerate()
            .all(|(i, f)| i == skip || f.matches(line))
    }

    /// Appends to `out` the indices of the block's entries that pass the
    /// chain, in ascending order.
    pub fn matching_entries(&self, block: &Block<'_>, out: &mut Vec<u32>) {
        self.matching_in(block.lines, block.offsets, 0..block.len(), out)
    }

    /// Like [`BlockMatcher::matching_entries`] for the entries in `range`
    /// only (for trimming a block to a time range). `offsets` has one
    /// more element than there are entries; malformed offsets (out of
    /// bounds or decreasing) yield no matches rather than a panic.
    pub fn matching_in(
        &self,
        lines: &[u8],
        offsets: &[u32],
        range: Range<usize>,
        out: &mut Vec<u32>,
    ) {
        if self.never || range.is_empty() || range.end >= offsets.len() {
            return;
        }
        let (Some(&lo), Some(&hi)) = (offsets.get(range.start), offsets.get(range.end)) else {
            return;
        };
        let (lo, hi) = (lo as usize, hi as usize);
        if lo > hi || hi > lines.len() {
            return;
        }
        let entry_bytes = |i: usize| -> &[u8] {
            let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
            lines.get(s..e).unwrap_or(&[])
        };
        let Some(driver) = &self.driver else {
            for i in range {
                if self.filters.iter().all(|f| f.matches(entry_bytes(i))) {
                    out.push(i as u32);
                }
            }
            return;
        };
        let hay = &lines[..hi];
        let mut entry = range.start;
        let mut pos = lo;
        while entry < range.end && pos < hi {
            let Some((s, e)) = driver.searcher.find(hay, pos) else {
                break;
            };
            // Forward cursor: the first entry ending after `s`.
            let ahead = &offsets[entry + 1..=range.end];
            entry += ahead.partition_point(|&o| (o as usize) <= s);
            if entry >= range.end {
                break;
            }
            let end = offsets[entry + 1] as usize;
            let line = entry_bytes(entry);
            let driver_ok = if driver.exact && e <= end {
                true
            } else {
                self.filters[driver.filter].matches(line)
            };
            if driver_ok && self.others_match(driver.filter, line) {
                out.push(entry as u32);
            }
            entry += 1;
            pos = end.max(pos + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::line_filter::{LineFilterArg, LineFilterOp};

    fn block(lines: &[&str]) -> (Vec<u8>, Vec<u32>) {
        let mut buf = Vec::new();
        let mut off = vec![0u32];
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            off.push(buf.len() as u32);
        }
        (buf, off)
    }

    fn run(specs: &[LineFilterSpec], lines: &[&str]) -> Vec<u32> {
        let m = BlockMatcher::new(specs).unwrap();
        let (buf, off) = block(lines);
        let mut out = Vec::new();
        m.matching_in(&buf, &off, 0..lines.len(), &mut out);
        let naive: Vec<u32> = (0..lines.len())
            .filter(|&i| m.matches_line(lines[i].as_bytes()))
            .map(|i| i as u32)
            .collect();
        assert_eq!(out, naive, "block scan disagrees with per-line evaluation");
        out
    }

    fn spec(op: LineFilterOp, t: &str) -> LineFilterSpec {
        LineFilterSpec::new(op, t)
    }

    #[test]
    fn literal_hits_map_to_entries() {
        let lines = ["req err=1", "ok", "err", "", "no", "erratic err"];
        assert_eq!(
            run(&[spec(LineFilterOp::Contains, "err")], &lines),
            vec![0, 2, 5]
        );
    }

    #[test]
    fn hits_across_entry_boundaries_are_not_matches() {
        // "foo" + "bar" are adjacent in the buffer: "ob" spans them.
        let lines = ["foo", "bar", "xobx"];
        assert_eq!(run(&[spec(LineFilterOp::Contains, "ob")], &lines), vec![2]);
        let lines = ["ab", "cabc"];
        assert_eq!(run(&[spec(LineFilterOp::Regex, "b.?c")], &lines), vec![1]);
    }

    #[test]
    fn lines_with_newlines_are_one_entry() {
        let lines = ["first\nsecond", "third"];
        assert_eq!(
            run(&[spec(LineFilterOp::Contains, "second")], &lines),
            vec![0]
        );
        assert_eq!(
            run(&[spec(LineFilterOp::Regex, "^third$")], &lines),
            vec![1]
        );
    }

    #[test]
    fn chains_combine_driver_and_others() {
        let lines = [
            "level=error status=500",
            "level=error status=200",
            "level=info status=500",
        ];
        let specs = [
            spec(LineFilterOp::Contains, "error"),
            spec(LineFilterOp::NotContains, "status=500"),
        ];
        assert_eq!(run(&specs, &lines), vec![1]);
        let m = BlockMatcher::new(&specs).unwrap();
        assert!(m.searches_buffer());
        assert_eq!(m.must_contain().len(), 1);
        // Negative-only chains fall back to per-entry evaluation.
        let neg = [spec(LineFilterOp::NotContains, "error")];
        assert!(!BlockMatcher::new(&neg).unwrap().searches_buffer());
        assert_eq!(run(&neg, &lines), vec![2]);
    }

    #[test]
    fn case_insensitive_and_regex_drivers() {
        let lines = ["An ERROR", "fine", "error!", "TIMEOUT", "t\u{130}meout"];
        assert_eq!(
            run(&[spec(LineFilterOp::Regex, "(?i)error")], &lines),
            vec![0, 2]
        );
        assert_eq!(
            run(&[spec(LineFilterOp::Regex, "(?i)timeout")], &lines),
            vec![3, 4]
        );
        assert_eq!(
            run(&[spec(LineFilterOp::Regex, r"\bfine\b")], &lines),
            vec![1]
        );
        assert_eq!(
            run(&[spec(LineFilterOp::Regex, "[eE]rr?or")], &lines),
            vec![2]
        );
    }

    #[test]
    fn ranges_and_degenerate_inputs() {
        let m = BlockMatcher::new(&[spec(LineFilterOp::Contains, "a")]).unwrap();
        let (buf, off) = block(&["a", "b", "a", "a"]);
        let mut out = Vec::new();
        m.matching_in(&buf, &off, 1..3, &mut out);
        assert_eq!(out, vec![2]);
        out.clear();
        m.matching_in(&buf, &[0, 9], 0..1, &mut out);
        assert!(out.is_empty());
        m.matching_in(&buf, &off, 0..9, &mut out);
        assert!(out.is_empty());
        let never = BlockMatcher::new(&[spec(LineFilterOp::NotContains, "")]).unwrap();
        never.matching_in(&buf, &off, 0..4, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn ip_or_literal_chain() {
        let specs = [LineFilterSpec {
            op: LineFilterOp::Contains,
            args: vec![
                LineFilterArg::Ip("10.0.0.0/8".into()),
                LineFilterArg::Text("special".into()),
            ],
        }];
        let lines = ["src 10.0.0.9 ok", "special no ip", "no ip here"];
        assert_eq!(run(&specs, &lines), vec![0, 1]);
    }
}
