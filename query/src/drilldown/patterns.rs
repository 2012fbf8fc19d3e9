//! The log patterns of the lines a query selects in a range, with line
//! counts per `step`, mined when asked (`/loki/api/v1/patterns`).
//!
//! Loki keeps a pattern ingester that mines lines as they are pushed;
//! Larch mines at query time instead ([`super::drain`]), so ingest pays
//! nothing and any range that is still stored can be asked for. The scan
//! reads the selected streams newest first, runs the query's filters and
//! pipeline on each entry ([`EntryFilter`]) and feeds the line with its
//! level and time bucket to the miner. The level is the entry's stored
//! `detected_level` metadata, lowercased, or `unknown` without one, as
//! Loki's pattern ingester groups lines.
//!
//! Work and memory are bounded: at most [`MAX_LINES`] lines are mined per
//! request, shared fairly between the streams (each stream gets an equal
//! budget; fewer than [`MIN_LINES_PER_STREAM`] lines per stream means only
//! the first streams in label order are read); the miner keeps at most
//! [`MAX_CLUSTERS`](super::drain::MAX_CLUSTERS) clusters with one counter
//! per step. The scan stops at the next block once the cancel flag is
//! raised.
//!
//! The result lists the patterns with the most lines first; samples are
//! step-aligned bucket starts with non-zero counts. Templates without any
//! literal text (`<_> <_>`) are left out: they say nothing and would
//! select every line.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use super::drain::Miner;
use super::entry_filter::EntryFilter;
use crate::engine::{EngineError, MAX_POINTS, TOO_MANY_POINTS};
use crate::level::{DETECTED_LEVEL, UNKNOWN};
use crate::source::decode_metadata;
use crate::source::{Columns, Direction, LogSource, ScanRequest};

/// Lines mined per request at most.
pub const MAX_LINES: usize = 200_000;
/// The smallest per-stream budget.
pub const MIN_LINES_PER_STREAM: usize = 1_000;

/// What to mine.
#[derive(Clone, Debug)]
pub struct PatternQuery {
    /// Whose streams.
    pub tenant: String,
    /// The log query whose kept lines are mined.
    pub filter: EntryFilter,
    /// Range start (ns, inclusive).
    pub start: i64,
    /// Range end (ns, exclusive).
    pub end: i64,
    /// Bucket width (ns, positive).
    pub step: i64,
}

/// One mined pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The template in `|>` pattern syntax.
    pub pattern: String,
    /// The `detected_level` of its lines.
    pub level: String,
    /// `(bucket start in ns, lines)` for every bucket with lines, oldest
    /// first.
    pub samples: Vec<(i64, u32)>,
    /// Lines in all.
    pub total: u64,
}

/// What [`mine_patterns`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatternResult {
    /// The patterns, most lines first (ties in pattern order).
    pub patterns: Vec<Pattern>,
    /// Lines kept by the query and offered to the miner.
    pub lines: usize,
    /// Lines not mined because the cluster cap was reached.
    pub unclustered: u64,
}

/// The first bucket's start: `start` rounded down to a multiple of `step`
/// (saturating at the earliest representable time).
pub fn first_bucket(start: i64, step: i64) -> i64 {
    start.saturating_sub(start.rem_euclid(step.max(1)))
}

/// The number of buckets from `first` that cover `[start, end)`.
fn bucket_count(first: i64, end: i64, step: i64) -> usize {
    let span = (i128::from(end) - 1 - i128::from(first)).max(0);
    let n = span / i128::from(step.max(1)) + 1;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Mines the lines `q` selects (see the module docs). Errors: more than
/// [`MAX_POINTS`] + 2 buckets ([`EngineError::Invalid`] with Loki's
/// text), storage, and [`EngineError::Cancelled`] once `cancel` is raised.
pub fn mine_patterns(
    source: &dyn LogSource,
    q: &PatternQuery,
    cancel: &AtomicBool,
) -> Result<PatternResult, EngineError> {
    let step = q.step.max(1);
    let first = first_bucket(q.start, step);
    let buckets = bucket_count(first, q.end, step);
    if buckets > MAX_POINTS as usize + 2 {
        return Err(EngineError::Invalid(TOO_MANY_POINTS.into()));
    }
    let mut miner = Miner::new(buckets);
    let mut streams = source
        .streams(&q.tenant, q.filter.matchers(), q.start, q.end)
        .map_err(EngineError::Storage)?;
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    let budget = (MAX_LINES / streams.len().max(1)).max(MIN_LINES_PER_STREAM);
    let mut total = 0usize;
    let mut level_buf = String::new();
    let req = ScanRequest {
        start: q.start,
        end: q.end,
        direction: Direction::Backward,
        columns: Columns::ALL,
        must_contain: q.filter.must_contain(),
        whole: None,
    };
    for info in &streams {
        if total >= MAX_LINES || cancel.load(Ordering::Relaxed) {
            break;
        }
        let mut sf = q.filter.for_stream(info.labels.clone());
        let mut taken = 0usize;
        source
            .scan(&q.tenant, info, &req, &mut |b| {
                if cancel.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                for i in (0..b.len()).rev() {
                    let ts = b.timestamps[i];
                    if ts < q.start || ts >= q.end {
                        continue;
                    }
                    if taken >= budget || total >= MAX_LINES {
                        return ControlFlow::Break(());
                    }
                    let (line, meta) = (b.line(i), b.metadata(i));
                    let Some(kept) = sf.process(ts, line, meta) else {
                        continue;
                    };
                    taken += 1;
                    total += 1;
                    let Ok(text) = std::str::from_utf8(kept.line) else {
                        continue;
                    };
                    let level = entry_level(meta, &mut level_buf);
                    let bucket =
                        usize::try_from((i128::from(ts) - i128::from(first)) / i128::from(step))
                            .unwrap_or(usize::MAX);
                    miner.add(text, level, bucket);
                }
                ControlFlow::Continue(())
            })
            .map_err(EngineError::Storage)?;
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(EngineError::Cancelled);
    }
    Ok(PatternResult {
        patterns: patterns(&miner, first, step),
        lines: total,
        unclustered: miner.unclustered(),
    })
}

/// The level an entry's lines are grouped by: its `detected_level`
/// metadata lowercased (into `buf` when that changes it), else `unknown`.
fn entry_level<'a>(meta: &'a [u8], buf: &'a mut String) -> &'a str {
    let Some((_, v)) = decode_metadata(meta).find(|(n, _)| *n == DETECTED_LEVEL) else {
        return UNKNOWN;
    };
    if !v.chars().any(char::is_uppercase) {
        return v;
    }
    buf.clear();
    buf.extend(v.chars().flat_map(char::to_lowercase));
    buf
}

/// The miner's clusters as patterns (see the module docs).
fn patterns(miner: &Miner, first: i64, step: i64) -> Vec<Pattern> {
    let mut out: Vec<Pattern> = miner
        .clusters()
        .iter()
        .filter(|c| c.has_literal() && c.total() > 0)
        .map(|c| Pattern {
            pattern: c.pattern(),
            level: miner.level(c).to_string(),
            samples: c
                .counts()
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(k, &n)| {
                    let t = i128::from(first) + k as i128 * i128::from(step);
                    let t = t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
                    (t, n)
                })
                .collect(),
            total: c.total(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| a.pattern.cmp(&b.pattern))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mem::{Entry, MemSource, Stream};
    use crate::labels::LabelSet;

    const S: i64 = 1_000_000_000;

    #[test]
    fn buckets_align_to_the_step() {
        assert_eq!(
            first_bucket(1_000_000_000_123, 10_000_000_000),
            1_000_000_000_000
        );
        assert_eq!(first_bucket(15_000_000_000, 10_000_000_000), 10_000_000_000);
        assert_eq!(first_bucket(-5, 10), -10);
        assert_eq!(first_bucket(i64::MIN + 1, 10), i64::MIN);
        assert_eq!(bucket_count(0, 10, 5), 2);
        assert_eq!(bucket_count(0, 11, 5), 3);
        assert_eq!(bucket_count(10, 0, 5), 1);
    }

    #[test]
    fn patterns_in_lokis_order() {
        let mut m = Miner::new(3);
        m.add("user alice logged in", "info", 0);
        m.add("user bob logged in", "info", 2);
        m.add("user carol logged in", "info", 2);
        m.add("42", "unknown", 1);
        let p = patterns(&m, 10 * S, 5 * S);
        assert_eq!(
            p,
            vec![Pattern {
                pattern: "user <_> logged in".into(),
                level: "info".into(),
                samples: vec![(10 * S, 1), (20 * S, 2)],
                total: 3,
            }]
        );
    }

    /// Entries as the store keeps them: the two `error:` lines with the
    /// level the store stored for them, the others without one (pushed
    /// with level discovery off, or before it existed).
    fn source() -> MemSource {
        let entry = |ts: i64, line: &str| {
            let mut meta = Vec::new();
            if line.starts_with("error") {
                meta.push((DETECTED_LEVEL.to_string(), "ERROR".to_string()));
            }
            Entry {
                ts,
                line: line.into(),
                meta,
            }
        };
        MemSource::new(
            vec![
                Stream {
                    labels: LabelSet::from_pairs([("app", "api")]),
                    entries: vec![
                        entry(S, "GET /users 200 took 3ms"),
                        entry(2 * S, "GET /users 200 took 5ms"),
                        entry(7 * S, "error: disk sda full"),
                        entry(8 * S, "error: disk sdb full"),
                        entry(9 * S, "GET /users 500 took 9ms"),
                    ],
                },
                Stream {
                    labels: LabelSet::from_pairs([("app", "db")]),
                    entries: vec![entry(S, "checkpoint done")],
                },
            ],
            2,
        )
    }

    #[test]
    fn mines_the_selected_lines_in_buckets() {
        let q = PatternQuery {
            tenant: "t".into(),
            filter: EntryFilter::parse(r#"{app="api"} != "500""#).unwrap(),
            start: 0,
            end: 10 * S,
            step: 5 * S,
        };
        let r = mine_patterns(&source(), &q, &AtomicBool::new(false)).unwrap();
        assert_eq!(r.lines, 4);
        assert_eq!(r.unclustered, 0);
        let got: Vec<_> = r
            .patterns
            .iter()
            .map(|p| (p.pattern.as_str(), p.level.as_str(), p.samples.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("GET /users <_> took <_>", "unknown", vec![(0, 2)]),
                ("error: disk <_> full", "error", vec![(5 * S, 2)]),
            ]
        );
    }

    #[test]
    fn levels_come_from_metadata_only() {
        let mut buf = String::new();
        let mut meta = Vec::new();
        assert_eq!(entry_level(&meta, &mut buf), UNKNOWN);
        crate::source::encode_metadata(&mut meta, [("trace_id", "x"), (DETECTED_LEVEL, "warn")]);
        assert_eq!(entry_level(&meta, &mut buf), "warn");
        meta.clear();
        crate::source::encode_metadata(&mut meta, [(DETECTED_LEVEL, "Notice")]);
        assert_eq!(entry_level(&meta, &mut buf), "notice");
    }

    #[test]
    fn limits_and_cancellation() {
        let q = PatternQuery {
            tenant: "t".into(),
            filter: EntryFilter::parse(r#"{app=~".+"}"#).unwrap(),
            start: 0,
            end: 10 * S,
            step: 1,
        };
        let e = mine_patterns(&source(), &q, &AtomicBool::new(false)).unwrap_err();
        assert_eq!(e.to_string(), TOO_MANY_POINTS);
        let q = PatternQuery { step: S, ..q };
        let e = mine_patterns(&source(), &q, &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(e, EngineError::Cancelled), "{e}");
    }
}
