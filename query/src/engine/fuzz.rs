//! The property the engine's fuzz target (`query/fuzz`, target `eval`)
//! checks, shared with the test that replays its committed corpus.
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
//! The in-memory source keeps the storage's scan contract (ascending
//! entries per block, blocks in the requested direction, columns left
//! empty when not asked for); the real storage's decoders have their own
//! targets in `store/fuzz`.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::{QueryRequest, evaluate_with_threads};
use crate::labels::LabelSet;
use crate::matcher::Matcher;
use crate::source::{Block, Direction, LogSource, ScanRequest, ScanStats, SourceError, StreamInfo};

/// First timestamp (ns): 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;
/// Entries per block.
const BLOCK_LEN: usize = 3;
/// Lines read from one input; more are ignored.
const MAX_LINES: usize = 64;

/// Runs one fuzz input; panics if evaluation panics.
#[doc(hidden)]
pub fn fuzz_eval(data: &[u8]) {
    let mut parts = data.split(|&b| b == b'\n');
    let Some(Ok(query)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let source = Source::new(parts.take(MAX_LINES));
    let last = T0 + source.entries.max(1) as i64 * SECOND;
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
}

/// One block, decoded as the storage hands it over.
#[derive(Default)]
struct DecodedBlock {
    ts: Vec<i64>,
    lines: Vec<u8>,
    offsets: Vec<u32>,
    meta: Vec<u8>,
    meta_offsets: Vec<u32>,
}

struct Stream {
    info: StreamInfo,
    blocks: Vec<DecodedBlock>,
}

struct Source {
    streams: Vec<Stream>,
    entries: usize,
}

impl Source {
    fn new<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Source {
        let mut streams: Vec<Stream> = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, app)| Stream {
                info: StreamInfo {
                    id: i as u64,
                    labels: Arc::new(LabelSet::from_pairs([("app", *app), ("job", "fuzz")])),
                },
                blocks: Vec::new(),
            })
            .collect();
        let mut entries = 0;
        for (i, raw) in lines.enumerate() {
            // The store accepts only UTF-8 lines.
            let raw = String::from_utf8_lossy(raw);
            let (line, meta) = raw.split_once('\t').unwrap_or((&raw, ""));
            let s = &mut streams[i % 2];
            if s.blocks.last().is_none_or(|b| b.ts.len() == BLOCK_LEN) {
                s.blocks.push(DecodedBlock {
                    offsets: vec![0],
                    meta_offsets: vec![0],
                    ..DecodedBlock::default()
                });
            }
            let Some(b) = s.blocks.last_mut() else {
                continue;
            };
            b.ts.push(T0 + i as i64 * SECOND);
            b.lines.extend_from_slice(line.as_bytes());
            b.offsets.push(b.lines.len() as u32);
            if let Some((name, value)) = meta.split_once('=') {
                put_str(&mut b.meta, name);
                put_str(&mut b.meta, value);
            }
            b.meta_offsets.push(b.meta.len() as u32);
            entries = i + 1;
        }
        Source { streams, entries }
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

impl LogSource for Source {
    fn streams(
        &self,
        _tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<StreamInfo>, SourceError> {
        Ok(self
            .streams
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.info.labels.get(&m.name).unwrap_or("")))
                    && s.blocks
                        .iter()
                        .flat_map(|b| &b.ts)
                        .any(|&t| t >= start && t < end)
            })
            .map(|s| s.info.clone())
            .collect())
    }

    fn scan(
        &self,
        _tenant: &str,
        stream: &StreamInfo,
        req: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        let Some(s) = self.streams.iter().find(|s| s.info.id == stream.id) else {
            return Ok(ScanStats::default());
        };
        let mut blocks: Vec<&DecodedBlock> = s.blocks.iter().collect();
        if req.direction == Direction::Backward {
            blocks.reverse();
        }
        let mut stats = ScanStats::default();
        for b in blocks {
            let (Some(&lo), Some(&hi)) = (b.ts.first(), b.ts.last()) else {
                continue;
            };
            if hi < req.start || lo >= req.end {
                continue;
            }
            stats.blocks += 1;
            let cols = req.columns;
            let block = Block {
                timestamps: &b.ts,
                offsets: if cols.lines { &b.offsets } else { &[] },
                lines: if cols.lines { &b.lines } else { &[] },
                metadata_offsets: if cols.metadata { &b.meta_offsets } else { &[] },
                metadata: if cols.metadata { &b.meta } else { &[] },
            };
            if visit(&block).is_break() {
                break;
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_queries_over_the_lines() {
        fuzz_eval(b"{app=\"a\"} | json | line_format \"{{.x}}\"\n{\"x\":1}\n{\"x\":2}\n{\"x\":3}");
        fuzz_eval(b"sum(count_over_time({job=\"fuzz\"} |= \"e\" [10s]))\nabc\tk=v\ndef\nxyz\ne");
        fuzz_eval(b"\xff\nnot a query");
        fuzz_eval(b"");
    }

    #[test]
    fn the_source_keeps_the_scan_contract() {
        let lines: Vec<&[u8]> = vec![b"l0", b"l1\tk=v", b"l2", b"l3", b"l4", b"l5", b"l6"];
        let src = Source::new(lines.into_iter());
        assert_eq!(src.entries, 7);
        let info = src.streams[0].info.clone();
        let req = ScanRequest {
            start: T0,
            end: T0 + 100 * SECOND,
            direction: Direction::Forward,
            columns: crate::source::Columns::ALL,
            must_contain: Vec::new(),
        };
        let mut seen = Vec::new();
        src.scan("t", &info, &req, &mut |b| {
            for i in 0..b.len() {
                seen.push(String::from_utf8_lossy(b.line(i)).into_owned());
            }
            ControlFlow::Continue(())
        })
        .unwrap_or_default();
        assert_eq!(seen, ["l0", "l2", "l4", "l6"]);
        let b = &src.streams[1].blocks[0];
        assert_eq!(b.meta_offsets, [0, 4, 4, 4]);
    }
}
