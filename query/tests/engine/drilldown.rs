//! Drilldown's pattern miner against the engine, on random lines: every
//! pattern returned, used as a `|>` line filter in an ordinary log query,
//! selects every line that was counted for it (so a user who clicks a
//! pattern in Grafana sees at least the lines it counted). Checked per
//! line on the miner itself, and end to end through `mine_patterns` and
//! `evaluate` over the same in-memory source.

use std::sync::atomic::AtomicBool;

use larch_query::drilldown::{EntryFilter, Miner, PatternQuery, mine_patterns};
use larch_query::engine::mem::{Entry, MemSource, Stream};
use larch_query::engine::{QueryRequest, QueryValue, evaluate};
use larch_query::pipeline::{LineFilter, LineFilterOp, LineFilterSpec};
use larch_query::{Direction, LabelSet};
use proptest::prelude::*;

const S: i64 = 1_000_000_000;

/// Words a log line is made of: literals that repeat, numbers and ids,
/// `key=value`, text that reads as pattern syntax, and arbitrary short
/// text (any character but the line break; spaces included, so tokens
/// may be empty).
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("user".to_string()),
        Just("".to_string()),
        Just("<_>".to_string()),
        Just("<x>".to_string()),
        "[a-c]{1,3}",
        "[0-9]{1,5}",
        "[0-9]{1,3}(ms|s)",
        "[0-9a-f]{8,12}",
        "(status|code|a\\.b)=[0-9a-z]{1,3}",
        "[a-z<>=_ ]{1,4}",
        "[^\n\r]{1,6}",
    ]
}

fn lines() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(proptest::collection::vec(word(), 1..10), 1..40)
        .prop_map(|v| v.into_iter().map(|w| w.join(" ")).collect())
}

fn matches(pattern: &str, line: &str) -> bool {
    LineFilter::new(&LineFilterSpec::new(LineFilterOp::Pattern, pattern))
        .unwrap_or_else(|e| panic!("pattern {pattern:?} invalid: {e}"))
        .matches(line.as_bytes())
}

/// `s` as a LogQL double-quoted string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lines in two streams (alternating), one second apart.
fn source(lines: &[String]) -> MemSource {
    let mut streams: Vec<Stream> = ["a", "b"]
        .iter()
        .map(|app| Stream {
            labels: LabelSet::from_pairs([("app", *app), ("job", "p")]),
            entries: Vec::new(),
        })
        .collect();
    for (i, l) in lines.iter().enumerate() {
        streams[i % 2].entries.push(Entry {
            ts: (i as i64 + 1) * S,
            line: l.clone(),
            meta: Vec::new(),
        });
    }
    MemSource::new(streams, 3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The miner's invariant, line by line.
    #[test]
    fn every_line_matches_its_clusters_pattern(lines in lines()) {
        let mut m = Miner::new(1);
        let mut added = Vec::new();
        for l in &lines {
            if let Some(ci) = m.add(l, "info", 0) {
                added.push((ci, l));
            }
        }
        for (ci, line) in added {
            let p = m.clusters()[ci].pattern();
            // An empty line has the empty template, which is no filter.
            if line.is_empty() {
                continue;
            }
            prop_assert!(matches(&p, line), "{:?} does not match {:?}", p, line);
        }
    }

    /// End to end: the lines `|> "<pattern>"` selects are at least the
    /// lines counted for the pattern, and the counts add up to at most
    /// the lines mined.
    #[test]
    fn every_pattern_selects_its_lines_as_a_filter(lines in lines(), step in 1i64..8) {
        let source = source(&lines);
        let end = (lines.len() as i64 + 1) * S;
        let q = PatternQuery {
            tenant: "t".into(),
            filter: EntryFilter::parse(r#"{job="p"}"#).unwrap(),
            start: 0,
            end,
            step: step * S,
        };
        let found = mine_patterns(&source, &q, &AtomicBool::new(false)).unwrap();
        prop_assert_eq!(found.lines, lines.len());
        let counted: u64 = found.patterns.iter().map(|p| p.total).sum();
        prop_assert!(counted <= lines.len() as u64);
        for p in &found.patterns {
            let per_bucket: u64 = p.samples.iter().map(|(_, n)| u64::from(*n)).sum();
            prop_assert_eq!(per_bucket, p.total);
            prop_assert!(p.samples.iter().all(|(t, _)| t % (step * S) == 0));
            let req = QueryRequest {
                tenant: "t".into(),
                query: format!(r#"{{job="p"}} |> {}"#, quoted(&p.pattern)),
                start: 0,
                end,
                limit: 1000,
                direction: Direction::Forward,
                ..QueryRequest::default()
            };
            let (value, _) = evaluate(&source, &req)
                .unwrap_or_else(|e| panic!("{}: {e}", req.query));
            let QueryValue::Streams(streams) = value else {
                panic!("not streams: {value:?}");
            };
            let selected: usize = streams.iter().map(|s| s.entries.len()).sum();
            prop_assert!(
                selected as u64 >= p.total,
                "{} selects {} lines, {} were counted for it", req.query, selected, p.total
            );
        }
    }
}
