//! The property the engine's fuzz target (`query/fuzz`, target `eval`)
//! checks, shared with the test that replays its committed corpus.
//!
//! It sits above both [`crate::engine`] and [`crate::drilldown`] (which
//! uses the engine), so that the engine depends on nothing that depends on
//! it.
//!
//! The input is a query and the log lines it runs over, both outside
//! input: the first line of the bytes is the LogQL text, every further
//! line one log line (text after a tab is one structured metadata pair
//! `name=value`). The lines go round-robin into two streams, one second
//! apart, cut into blocks of three entries, and the query runs as a range
//! query (step 5 s, limit 20) and as an instant query at the last line.
//! Whatever the query and the lines hold, evaluation returns a result or
//! an error: never a panic, an overflow or a runaway. Templates, parsers,
//! label filters, unwrap conversions and aggregations all run here, which
//! the parser's target never reaches.
//!
//! The same input also runs Drilldown's logic ([`crate::drilldown`]):
//! detected labels, detected fields of the query (a log query) over the
//! lines, and pattern mining of the lines it keeps. Every line the miner
//! takes must match its cluster's final pattern as a `|>` filter, and every
//! pattern returned must compile as one.
//!
//! The source is the engine tests' in-memory one ([`crate::engine::mem`]); the
//! real storage's decoders have their own targets in `store/fuzz`.

use std::sync::atomic::AtomicBool;

use crate::drilldown::{
    EntryFilter, FieldRequest, Miner, PatternQuery, detect_fields, detect_labels, mine_patterns,
};
use crate::engine::mem::{Entry, MemSource, Stream};
use crate::engine::{QueryRequest, evaluate_with_threads};
use crate::labels::LabelSet;
use crate::pipeline::{LineFilter, LineFilterOp, LineFilterSpec};
use crate::source::Direction;

/// First timestamp (ns): 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;
/// Entries per block.
const BLOCK_LEN: usize = 3;
/// Lines read from one input; more are ignored.
const MAX_LINES: usize = 64;

/// Runs one fuzz input; panics if evaluation panics.
#[doc(hidden)]
pub fn eval(data: &[u8]) {
    let mut parts = data.split(|&b| b == b'\n');
    let Some(Ok(query)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let (source, entries) = source(parts.take(MAX_LINES));
    let last = T0 + entries.max(1) as i64 * SECOND;
    let range = QueryRequest {
        tenant: "fuzz".into(),
        query: query.to_string(),
        start: T0,
        end: last,
        step: 5 * SECOND,
        limit: 20,
        ..QueryRequest::default()
    };
    let _ = evaluate_with_threads(&source, &range, 1);
    let instant = QueryRequest {
        start: last,
        end: last,
        instant: true,
        direction: Direction::Forward,
        ..range
    };
    let _ = evaluate_with_threads(&source, &instant, 1);
    drilldown(&source, query, last);
}

/// Drilldown's endpoints over the same source (see the module docs).
fn drilldown(source: &MemSource, query: &str, end: i64) {
    let never = AtomicBool::new(false);
    let _ = detect_labels(source.streams.iter().map(|s| &s.labels), &never);
    let mut miner = Miner::new(1);
    let mut added = Vec::new();
    for e in source.streams.iter().flat_map(|s| &s.entries) {
        if let Some(ci) = miner.add(&e.line, "info", 0) {
            added.push((ci, e.line.as_str()));
        }
    }
    // Against the final templates: later lines may have generalised them.
    for (ci, line) in added {
        let pattern = miner.clusters()[ci].pattern();
        assert!(
            line.is_empty() || is_pattern_of(&pattern, line),
            "{pattern:?} does not match {line:?}"
        );
    }
    let Ok(filter) = EntryFilter::parse(query) else {
        return;
    };
    let q = PatternQuery {
        tenant: "fuzz".into(),
        filter,
        start: T0,
        end,
        step: 5 * SECOND,
    };
    if let Ok(found) = mine_patterns(source, &q, &never) {
        for p in &found.patterns {
            let spec = LineFilterSpec::new(LineFilterOp::Pattern, &p.pattern);
            assert!(
                LineFilter::new(&spec).is_ok(),
                "{:?} is no filter",
                p.pattern
            );
        }
    }
    let req = QueryRequest {
        tenant: "fuzz".into(),
        query: query.to_string(),
        start: T0,
        end,
        limit: 20,
        ..QueryRequest::default()
    };
    let fields = FieldRequest {
        field_limit: 50,
        values_of: Some("level".into()),
        value_limit: 50,
    };
    let _ = detect_fields(source, &req, fields);
}

/// Whether `line` passes `|> "pattern"`.
fn is_pattern_of(pattern: &str, line: &str) -> bool {
    LineFilter::new(&LineFilterSpec::new(LineFilterOp::Pattern, pattern))
        .is_ok_and(|f| f.matches(line.as_bytes()))
}

/// The input's lines as two streams of the in-memory source.
fn source<'a>(lines: impl Iterator<Item = &'a [u8]>) -> (MemSource, usize) {
    let mut streams: Vec<Stream> = ["a", "b"]
        .iter()
        .map(|app| Stream {
            labels: LabelSet::from_pairs([("app", *app), ("job", "fuzz")]),
            entries: Vec::new(),
        })
        .collect();
    let mut n = 0;
    for (i, raw) in lines.enumerate() {
        // The store accepts only UTF-8 lines.
        let raw = String::from_utf8_lossy(raw);
        let (line, meta) = raw.split_once('\t').unwrap_or((&raw, ""));
        streams[i % 2].entries.push(Entry {
            ts: T0 + i as i64 * SECOND,
            line: line.to_string(),
            meta: meta
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect(),
        });
        n = i + 1;
    }
    (MemSource::new(streams, BLOCK_LEN), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_queries_over_the_lines() {
        eval(b"{app=\"a\"} | json | line_format \"{{.x}}\"\n{\"x\":1}\n{\"x\":2}\n{\"x\":3}");
        eval(b"sum(count_over_time({job=\"fuzz\"} |= \"e\" [10s]))\nabc\tk=v\ndef\nxyz\ne");
        eval(b"\xff\nnot a query");
        eval(b"");
        eval(b"{job=\"fuzz\"} |= \"GET\"\nGET /a 200 3ms\nGET /b 404 1ms\tlevel=warn\n<_> x");
    }

    #[test]
    fn lines_alternate_between_two_streams_with_metadata() {
        let lines: Vec<&[u8]> = vec![b"l0", b"l1\tk=v", b"l2"];
        let (src, n) = source(lines.into_iter());
        assert_eq!(n, 3);
        let a: Vec<_> = src.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(a, ["l0", "l2"]);
        let b = &src.streams[1].entries[0];
        assert_eq!((b.line.as_str(), b.ts), ("l1", T0 + SECOND));
        assert_eq!(b.meta, [("k".to_string(), "v".to_string())]);
    }
}
