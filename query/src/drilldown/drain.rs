//! A Drain-style log pattern miner: lines in, templates with `<_>` for
//! the parts that vary out.
//!
//! A line is split at single spaces into tokens (so a template joined
//! with spaces reproduces the line's spacing exactly). Each token is
//! classified before clustering:
//! * a token that is mostly digits (`42`, `15ms`, `0x1f`, timestamps) or
//!   looks like a capture in pattern syntax (`<div>`) is *variable*;
//! * `key=value` with an identifier key and a variable value is *keyed*:
//!   the key stays, the value varies (`status=<_>`);
//! * anything else is a literal.
//!
//! Clusters are grouped as in Drain by level and token count. Drain also
//! routes by the first tokens, which splits lines that differ only in an
//! early word (`user alice logged in`, `user bob logged in`); with the
//! cluster cap below a group is small enough to compare against every
//! cluster, stopping early once too many positions disagree. A line joins
//! the most similar cluster of its group if at least [`SIMILARITY`] of its
//! positions agree (equal literals, same key, or both variable); the
//! cluster's template then keeps agreeing positions and turns the others
//! into `<_>`. Otherwise it starts a new cluster.
//!
//! Memory is bounded whatever the input: at most [`MAX_CLUSTERS`]
//! clusters (lines that fit none once the cap is reached are counted in
//! `unclustered` and not mined), at most [`MAX_TOKENS`] tokens and
//! [`MAX_TEMPLATE_BYTES`] bytes of template per line (the rest of a longer
//! line is one trailing `<_>`), and per cluster one counter per time
//! bucket of the query. Per line the miner allocates nothing unless it
//! creates a cluster.
//!
//! *Invariant: every line added matches its cluster's final template as a
//! `|>` pattern filter.* Templates only ever generalise, a `<_>` always
//! stands for non-empty text without spaces (empty tokens from doubled
//! spaces never merge with non-empty ones), and each literal run after a
//! `<_>` starts with a space, so the pattern matcher's leftmost search
//! lands where the token ended (property-tested below, and end to end
//! through the engine in `query/tests/drilldown`).

use std::collections::HashMap;

/// Fraction of agreeing positions for a line to join a cluster.
pub const SIMILARITY: f64 = 0.5;
/// Clusters kept at most.
pub const MAX_CLUSTERS: usize = 300;
/// Tokens per line at most; the rest of the line is one variable token.
pub const MAX_TOKENS: usize = 64;
/// Template bytes per line at most; the rest is one variable token.
pub const MAX_TEMPLATE_BYTES: usize = 4096;
/// A longer token is variable (bounds the bytes a template keeps).
pub const MAX_TOKEN_BYTES: usize = 256;

const WILDCARD: &str = "<_>";

/// One position of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// Text that is the same in every line of the cluster.
    Lit(Box<str>),
    /// `key=` followed by a varying value.
    Keyed(Box<str>),
    /// Varying text (never empty, no spaces).
    Var,
}

/// A line token, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View<'a> {
    Lit(&'a str),
    /// The `key=` prefix.
    Keyed(&'a str),
    Var,
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Mostly digits: at least one digit and at least as many digits as
/// letters, or hexadecimal with a digit (ids, hashes).
fn is_variable(t: &str) -> bool {
    let (mut digits, mut letters, mut hex) = (0usize, 0usize, true);
    for b in t.bytes() {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b.is_ascii_alphabetic() {
            letters += 1;
            hex &= b.is_ascii_hexdigit();
        } else if b != b'-' {
            hex = false;
        }
    }
    digits > 0 && (digits >= letters || (hex && t.len() >= 8))
}

/// Whether `t` contains text that pattern syntax would read as a capture.
fn looks_like_capture(t: &str) -> bool {
    crate::logql::parse_pattern(t)
        .iter()
        .any(|n| matches!(n, crate::logql::PatternNode::Capture(_)))
}

fn classify(t: &str) -> View<'_> {
    if t.is_empty() {
        return View::Lit(t);
    }
    if t.len() > MAX_TOKEN_BYTES || looks_like_capture(t) {
        return View::Var;
    }
    if let Some(eq) = t.find('=') {
        let (k, v) = (&t[..eq], &t[eq + 1..]);
        if is_key(k) && !v.is_empty() && is_variable(v) {
            return View::Keyed(&t[..=eq]);
        }
    }
    if is_variable(t) {
        View::Var
    } else {
        View::Lit(t)
    }
}

impl Tok {
    fn of(v: View<'_>) -> Tok {
        match v {
            View::Lit(s) => Tok::Lit(s.into()),
            View::Keyed(k) => Tok::Keyed(k.into()),
            View::Var => Tok::Var,
        }
    }

    /// Whether the template position agrees with a line token.
    fn agrees(&self, raw: &str, v: View<'_>) -> bool {
        match (self, v) {
            (Tok::Lit(a), _) => **a == *raw,
            (Tok::Keyed(k), _) => raw.starts_with(&**k) && raw.len() > k.len(),
            (Tok::Var, View::Var) => true,
            (Tok::Var, _) => false,
        }
    }

    /// Whether the positions can ever share a cluster (empty tokens only
    /// with empty tokens).
    fn compatible(&self, raw: &str) -> bool {
        matches!(self, Tok::Lit(a) if a.is_empty()) == raw.is_empty()
    }

    /// The template position after also covering `raw`.
    fn merge(&mut self, raw: &str) {
        let keep = match self {
            Tok::Lit(a) => **a == *raw,
            Tok::Keyed(k) => raw.starts_with(&**k) && raw.len() > k.len(),
            Tok::Var => true,
        };
        if keep {
            return;
        }
        *self = match (&*self, raw.find('=')) {
            (Tok::Lit(a), Some(eq)) if a.len() > eq + 1 && a.as_bytes()[eq] == b'=' => {
                let key = &raw[..=eq];
                if is_key(&raw[..eq]) && a.starts_with(key) && raw.len() > key.len() {
                    Tok::Keyed(key.into())
                } else {
                    Tok::Var
                }
            }
            _ => Tok::Var,
        };
    }
}

/// A pattern and its counts.
#[derive(Debug)]
pub struct Cluster {
    tokens: Vec<Tok>,
    level: u16,
    /// Lines per time bucket (dense, allocated on first use).
    counts: Vec<u32>,
    total: u64,
}

impl Cluster {
    /// The template in `|>` pattern syntax.
    pub fn pattern(&self) -> String {
        let mut out = String::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            match t {
                Tok::Lit(s) => out.push_str(s),
                Tok::Keyed(k) => {
                    out.push_str(k);
                    out.push_str(WILDCARD);
                }
                Tok::Var => out.push_str(WILDCARD),
            }
        }
        out
    }

    /// Whether the template says anything (some literal text).
    pub fn has_literal(&self) -> bool {
        self.tokens.iter().any(|t| match t {
            Tok::Lit(s) => !s.is_empty(),
            Tok::Keyed(_) => true,
            Tok::Var => false,
        })
    }

    /// Lines per bucket.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Lines in all.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The miner (see the module docs).
#[derive(Debug)]
pub struct Miner {
    buckets: usize,
    groups: HashMap<(u16, usize), Vec<u32>>,
    clusters: Vec<Cluster>,
    levels: Vec<String>,
    unclustered: u64,
    spans: Vec<(usize, usize)>,
    /// Whether the last span is the cut-off rest of a long line.
    cut: bool,
}

impl Miner {
    /// A miner counting lines into `buckets` time buckets.
    pub fn new(buckets: usize) -> Miner {
        Miner {
            buckets: buckets.max(1),
            groups: HashMap::new(),
            clusters: Vec::new(),
            levels: Vec::new(),
            unclustered: 0,
            spans: Vec::new(),
            cut: false,
        }
    }

    /// The clusters found.
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The level name of a cluster.
    pub fn level(&self, c: &Cluster) -> &str {
        self.levels.get(c.level as usize).map_or("", String::as_str)
    }

    /// Lines not mined because the cluster cap was reached.
    pub fn unclustered(&self) -> u64 {
        self.unclustered
    }

    fn level_index(&mut self, level: &str) -> u16 {
        if let Some(i) = self.levels.iter().position(|l| l == level) {
            return i as u16;
        }
        if self.levels.len() >= u16::MAX as usize {
            return 0;
        }
        self.levels.push(level.to_string());
        (self.levels.len() - 1) as u16
    }

    /// Splits `line` into token spans (at single spaces; see the limits).
    fn tokenize(&mut self, line: &str) {
        self.spans.clear();
        self.cut = false;
        let mut start = 0;
        for (i, b) in line.bytes().enumerate() {
            if b != b' ' {
                continue;
            }
            if self.spans.len() + 1 >= MAX_TOKENS || i > MAX_TEMPLATE_BYTES {
                // The rest holds this space, so it is never empty.
                self.cut = true;
                break;
            }
            self.spans.push((start, i));
            start = i + 1;
        }
        self.spans.push((start, line.len()));
    }

    /// Adds a line of `level` in time bucket `bucket`; returns its
    /// cluster's index, or `None` when the cluster cap left it out.
    pub fn add(&mut self, line: &str, level: &str, bucket: usize) -> Option<usize> {
        let level = self.level_index(level);
        self.tokenize(line);
        let cut = self.cut;
        let spans = std::mem::take(&mut self.spans);
        let raw = |i: usize| -> &str { spans.get(i).map_or("", |&(s, e)| &line[s..e]) };
        let view = |i: usize| -> View<'_> {
            if cut && i + 1 == spans.len() {
                View::Var
            } else {
                classify(raw(i))
            }
        };
        let n = spans.len();
        let group = self.groups.entry((level, n)).or_default();
        // The most similar cluster of the group.
        let need = (SIMILARITY * n as f64).ceil() as usize;
        let mut best: Option<(usize, usize)> = None;
        'clusters: for &ci in group.iter() {
            let c = &self.clusters[ci as usize];
            let (mut agree, mut disagree) = (0usize, 0usize);
            for i in 0..n {
                let (t, r) = (&c.tokens[i], raw(i));
                if !t.compatible(r) {
                    continue 'clusters;
                }
                if t.agrees(r, view(i)) {
                    agree += 1;
                } else {
                    disagree += 1;
                    if n - disagree < need {
                        continue 'clusters;
                    }
                }
            }
            if agree >= need && best.is_none_or(|(_, b)| agree > b) {
                best = Some((ci as usize, agree));
            }
        }
        let ci = match best {
            Some((ci, _)) => {
                let c = &mut self.clusters[ci];
                for (i, t) in c.tokens.iter_mut().enumerate() {
                    if cut && i + 1 == n {
                        *t = Tok::Var;
                    } else {
                        t.merge(raw(i));
                    }
                }
                ci
            }
            None if self.clusters.len() >= MAX_CLUSTERS => {
                self.unclustered += 1;
                self.spans = spans;
                return None;
            }
            None => {
                let ci = self.clusters.len();
                self.clusters.push(Cluster {
                    tokens: (0..n).map(|i| Tok::of(view(i))).collect(),
                    level,
                    counts: Vec::new(),
                    total: 0,
                });
                group.push(ci as u32);
                ci
            }
        };
        let buckets = self.buckets;
        let c = &mut self.clusters[ci];
        if c.counts.is_empty() {
            c.counts = vec![0; buckets];
        }
        if let Some(slot) = c.counts.get_mut(bucket.min(buckets - 1)) {
            *slot = slot.saturating_add(1);
        }
        c.total += 1;
        self.spans = spans;
        Some(ci)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{LineFilter, LineFilterOp, LineFilterSpec};
    use proptest::prelude::*;

    fn matches(pattern: &str, line: &str) -> bool {
        LineFilter::new(&LineFilterSpec::new(LineFilterOp::Pattern, pattern))
            .unwrap_or_else(|e| panic!("pattern {pattern:?} invalid: {e}"))
            .matches(line.as_bytes())
    }

    #[test]
    fn classifies_tokens() {
        assert_eq!(classify("GET"), View::Lit("GET"));
        assert_eq!(classify("200"), View::Var);
        assert_eq!(classify("15ms"), View::Var);
        assert_eq!(classify("2024-01-01T10:00:00Z"), View::Var);
        assert_eq!(classify("deadbeef42"), View::Var);
        assert_eq!(classify("/api/v1/users"), View::Lit("/api/v1/users"));
        assert_eq!(classify("status=200"), View::Keyed("status="));
        assert_eq!(classify("msg=hello"), View::Lit("msg=hello"));
        assert_eq!(classify("<div>"), View::Var);
        assert_eq!(classify(""), View::Lit(""));
    }

    #[test]
    fn mines_templates() {
        let mut m = Miner::new(2);
        let lines = [
            "GET /api/users 200 15ms user=alice",
            "GET /api/users 404 3ms user=bob",
            "GET /api/users 200 1ms user=carol",
            "connected to db host=db-1 port=5432",
            "connected to db host=db-2 port=5432",
        ];
        for (i, l) in lines.iter().enumerate() {
            m.add(l, "info", i % 2);
        }
        let pats: Vec<(String, u64)> = m
            .clusters()
            .iter()
            .map(|c| (c.pattern(), c.total()))
            .collect();
        assert_eq!(
            pats,
            vec![
                ("GET /api/users <_> <_> user=<_>".to_string(), 3),
                ("connected to db host=<_> port=<_>".to_string(), 2),
            ]
        );
        assert_eq!(m.clusters()[0].counts(), &[2, 1]);
        for l in lines {
            assert!(m.clusters().iter().any(|c| matches(&c.pattern(), l)));
        }
    }

    #[test]
    fn levels_and_lengths_separate_clusters() {
        let mut m = Miner::new(1);
        m.add("disk full on sda", "error", 0);
        m.add("disk full on sdb", "warn", 0);
        m.add("disk full", "error", 0);
        assert_eq!(m.clusters().len(), 3);
        assert_eq!(m.level(&m.clusters()[1]), "warn");
    }

    #[test]
    fn long_lines_end_in_a_wildcard() {
        let mut m = Miner::new(1);
        let long: String = (0..200).map(|i| format!("w{} ", i % 7)).collect();
        let line = format!("start {long}end");
        m.add(&line, "info", 0);
        let p = m.clusters()[0].pattern();
        assert!(p.ends_with(" <_>"), "{p}");
        assert!(p.len() < line.len());
        assert!(matches(&p, &line));
    }

    #[test]
    fn cluster_cap_bounds_memory() {
        let mut m = Miner::new(1);
        // Distinct words without digits never merge.
        let word = |i: usize| -> String {
            i.to_string()
                .bytes()
                .map(|d| (b'a' + d - b'0') as char)
                .collect()
        };
        for i in 0..(MAX_CLUSTERS + 50) {
            m.add(&format!("x{}", word(i)), "info", 0);
        }
        assert_eq!(m.clusters().len(), MAX_CLUSTERS);
        assert_eq!(m.unclustered(), 50);
        // Lines that fit an existing cluster are still counted.
        assert!(m.add("xa", "info", 0).is_some());
        let huge = "y".repeat(10 * MAX_TOKEN_BYTES);
        let mut m = Miner::new(1);
        m.add(&format!("start {huge} end"), "info", 0);
        assert_eq!(m.clusters()[0].pattern(), "start <_> end");
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("GET".to_string()),
            Just("POST".to_string()),
            Just("user".to_string()),
            Just("".to_string()),
            Just("a=b".to_string()),
            Just("<x>".to_string()),
            "[a-c]{1,3}",
            "[0-9]{1,4}",
            "[0-9]{1,3}ms",
            "(status|code)=[0-9]{1,3}",
            "(status|code)=[a-z]{1,3}",
            "[a-z]{1,2}[<>= ]{0,2}[0-9]{0,2}",
        ]
    }

    proptest! {
        #[test]
        fn every_line_matches_its_template(
            lines in proptest::collection::vec(proptest::collection::vec(token(), 1..8), 1..60)
        ) {
            let mut m = Miner::new(1);
            let mut added = Vec::new();
            for words in &lines {
                let line = words.join(" ");
                if let Some(ci) = m.add(&line, "info", 0) {
                    added.push((ci, line));
                }
            }
            for (ci, line) in added {
                let p = m.clusters()[ci].pattern();
                if line.is_empty() {
                    continue;
                }
                prop_assert!(matches(&p, &line), "{:?} does not match {:?}", p, line);
            }
        }
    }
}
