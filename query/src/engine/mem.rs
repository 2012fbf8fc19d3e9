//! An in-memory `LogSource` for the engine's tests and fuzz target.
//!
//! This is a stand-in for storage: the real one (`larch-store`) depends on
//! this crate and cannot be a dependency of its tests. It keeps the scan
//! contract (ascending entries per block, non-overlapping blocks in the
//! requested direction, columns left empty when not asked for) and cuts
//! each stream into blocks of `block_len` entries so that block boundaries
//! are exercised. It records every scan request so tests can check which
//! columns and literals the engine asked for. The same engine runs against
//! the real store in `store/tests/logqltest`.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use crate::labels::LabelSet;
use crate::matcher::Matcher;
use crate::source::{
    Block, Direction, LogSource, ScanRequest, ScanStats, SourceError, StreamInfo, Whole,
};

/// One entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub ts: i64,
    pub line: String,
    pub meta: Vec<(String, String)>,
}

/// One stream.
#[derive(Clone, Debug)]
pub struct Stream {
    pub labels: LabelSet,
    pub entries: Vec<Entry>,
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(s);
}

struct DecodedBlock {
    ts: Vec<i64>,
    offsets: Vec<u32>,
    lines: Vec<u8>,
    meta_offsets: Vec<u32>,
    meta: Vec<u8>,
}

/// Streams in memory, cut into blocks.
pub struct MemSource {
    pub streams: Vec<Stream>,
    pub block_len: usize,
    pub requests: Mutex<Vec<ScanRequest>>,
}

impl MemSource {
    pub fn new(mut streams: Vec<Stream>, block_len: usize) -> MemSource {
        for s in &mut streams {
            s.entries.sort_by_key(|e| e.ts);
        }
        MemSource {
            streams,
            block_len: block_len.max(1),
            requests: Mutex::new(Vec::new()),
        }
    }

    fn blocks(&self, s: &Stream) -> Vec<DecodedBlock> {
        s.entries
            .chunks(self.block_len)
            .map(|c| {
                let mut b = DecodedBlock {
                    ts: Vec::new(),
                    offsets: vec![0],
                    lines: Vec::new(),
                    meta_offsets: vec![0],
                    meta: Vec::new(),
                };
                for e in c {
                    b.ts.push(e.ts);
                    b.lines.extend_from_slice(e.line.as_bytes());
                    b.offsets.push(b.lines.len() as u32);
                    for (n, v) in &e.meta {
                        put_str(&mut b.meta, n.as_bytes());
                        put_str(&mut b.meta, v.as_bytes());
                    }
                    b.meta_offsets.push(b.meta.len() as u32);
                }
                if b.meta.is_empty() {
                    b.meta_offsets.clear();
                }
                b
            })
            .collect()
    }
}

impl LogSource for MemSource {
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
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
                    && s.entries.iter().any(|e| e.ts >= start && e.ts < end)
            })
            .map(|s| StreamInfo {
                id: s.labels.fingerprint(),
                labels: Arc::new(s.labels.clone()),
            })
            .collect())
    }

    fn scan(
        &self,
        _tenant: &str,
        stream: &StreamInfo,
        req: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        if let Ok(mut r) = self.requests.lock() {
            r.push(req.clone());
        }
        let Some(s) = self
            .streams
            .iter()
            .find(|s| s.labels.fingerprint() == stream.id)
        else {
            return Ok(ScanStats::default());
        };
        let mut blocks = self.blocks(s);
        if req.direction == Direction::Backward {
            blocks.reverse();
        }
        let mut stats = ScanStats::default();
        for b in &blocks {
            let (Some(&lo), Some(&hi)) = (b.ts.first(), b.ts.last()) else {
                continue;
            };
            if hi < req.start || lo >= req.end {
                continue;
            }
            stats.blocks += 1;
            stats.head_chunk_lines += b.ts.len() as u64;
            // A block wholly inside one of the caller's segments comes
            // without timestamps, as the store delivers it.
            let whole = req
                .whole
                .as_ref()
                .filter(|w| w.holds(lo, hi, req.start, req.end));
            let cols = whole.map_or(req.columns, |w| w.columns);
            let block = Block {
                timestamps: if whole.is_some() { &[] } else { &b.ts },
                offsets: if cols.offsets() { &b.offsets } else { &[] },
                lines: if cols.lines { &b.lines } else { &[] },
                metadata_offsets: if cols.metadata { &b.meta_offsets } else { &[] },
                metadata: if cols.metadata { &b.meta } else { &[] },
                whole: whole.map(|_| Whole {
                    entries: b.ts.len(),
                    mint: lo,
                    maxt: hi,
                    lines_size: b.lines.len() as u64,
                }),
            };
            if visit(&block).is_break() {
                break;
            }
        }
        Ok(stats)
    }
}
