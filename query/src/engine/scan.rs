//! Scanning many streams on several threads.
//!
//! The engine's work is per stream and time span: a [`StreamVisitor`] is
//! told which stream and which span of the query's range come next, says
//! what to read, and receives the blocks. [`scan_streams`] runs one visitor
//! per worker thread; workers take the next unscanned (stream, span) from a
//! shared counter, so a few large streams do not leave the other threads
//! idle behind a fixed partition. A query over few streams splits its
//! range into spans ([`time_spans`]) so that even one stream keeps every
//! core busy: log queries' per-worker top-N heaps and metric queries'
//! per-segment accumulators merge exactly whatever the partition. Each
//! visitor keeps its own state (a top-N heap, series accumulators) and the
//! caller merges the visitors afterwards, so workers never share a lock on
//! the hot path. Memory is what the visitors keep, never the bytes read:
//! blocks are borrowed from the store for the duration of the callback.
//!
//! The cancellation flag is checked before every block; a cancelled query
//! stops at the next block of every worker. Threads are scoped to the
//! query (`std::thread::scope`): the crate has no runtime of its own and
//! the store bounds how many queries run at once.

use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::source::{Block, LogSource, ScanRequest, ScanStats, StreamInfo};

use super::error::EngineError;

/// What the engine does with each stream it scans.
pub(crate) trait StreamVisitor: Send {
    /// Called before `stream` is scanned over `span` (a slice of the
    /// query's range): the request to make, or `None` to skip it.
    fn begin(&mut self, stream: &StreamInfo, span: Span) -> Option<ScanRequest>;
    /// One block of the current stream. `Break` stops this stream (in
    /// this span) only.
    fn block(&mut self, block: &Block<'_>) -> ControlFlow<()>;
    /// Called after the current stream's last block.
    fn end(&mut self) {}
    /// Why the whole scan must stop (a limit reached while visiting), if
    /// it must; asked after every stream. A visitor that fails returns
    /// `Break` from [`StreamVisitor::block`] so its stream stops at once;
    /// the other workers stop before their next block.
    fn failure(&mut self) -> Option<EngineError> {
        None
    }
}

/// Where and how to scan.
pub(crate) struct ScanCtx<'a> {
    /// The storage.
    pub source: &'a dyn LogSource,
    /// Tenant.
    pub tenant: &'a str,
    /// The caller's cancellation flag.
    pub cancel: Option<&'a AtomicBool>,
    /// Worker threads to use at most.
    pub threads: usize,
    /// Most series a set of series may hold (`max_query_series`); 0 =
    /// unlimited. Checked when a series is created, so memory stays
    /// bounded by the limit.
    pub max_series: usize,
}

impl ScanCtx<'_> {
    /// Whether the caller cancelled the query.
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// A time span `[start, end)`, Unix nanoseconds.
pub(crate) type Span = (i64, i64);

/// Spans shorter than this are not split further.
const MIN_SPAN_NS: i64 = 1_000_000;

/// At most this many spans per stream.
const MAX_SPANS: usize = 64;

/// Splits `[start, end)` into spans so that `streams` streams give at
/// least two work items per thread, in scan order (oldest first when
/// `forward`, newest first otherwise). One span when there are streams
/// enough, one thread, or a range too short to split.
pub(crate) fn time_spans(
    start: i64,
    end: i64,
    streams: usize,
    threads: usize,
    forward: bool,
) -> Vec<Span> {
    let len = i128::from(end) - i128::from(start);
    let want = if threads <= 1 || streams == 0 || len <= 0 {
        1
    } else {
        (2 * threads).div_ceil(streams)
    };
    let fit = (len / i128::from(MIN_SPAN_NS)).clamp(1, MAX_SPANS as i128) as usize;
    let n = want.min(fit).clamp(1, MAX_SPANS);
    let at = |k: usize| (i128::from(start) + len * k as i128 / n as i128) as i64;
    let mut spans: Vec<Span> = (0..n).map(|k| (at(k), at(k + 1))).collect();
    if let Some(last) = spans.last_mut() {
        last.1 = end;
    }
    if !forward {
        spans.reverse();
    }
    spans
}

/// Worker threads a query uses by default: the machine's cores.
pub(crate) fn default_threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

struct Shared<'s, 'a> {
    ctx: &'s ScanCtx<'a>,
    streams: &'s [StreamInfo],
    spans: &'s [Span],
    next: AtomicUsize,
    stop: AtomicBool,
    failure: Mutex<Option<EngineError>>,
    stats: Mutex<ScanStats>,
}

impl Shared<'_, '_> {
    fn fail(&self, e: EngineError) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(e);
        }
    }

    fn work<V: StreamVisitor>(&self, v: &mut V) {
        let mut stats = ScanStats::default();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let per = self.spans.len().max(1);
            let (Some(stream), Some(&span)) = (self.streams.get(i / per), self.spans.get(i % per))
            else {
                break;
            };
            let Some(req) = v.begin(stream, span) else {
                continue;
            };
            let mut cancelled = false;
            let r = self
                .ctx
                .source
                .scan(self.ctx.tenant, stream, &req, &mut |b: &Block<'_>| {
                    if self.ctx.cancelled() || self.stop.load(Ordering::Relaxed) {
                        cancelled = true;
                        return ControlFlow::Break(());
                    }
                    v.block(b)
                });
            v.end();
            if let Some(e) = v.failure() {
                self.fail(e);
                break;
            }
            match r {
                Ok(s) => stats.merge(&s),
                Err(e) => {
                    self.fail(EngineError::Storage(e));
                    break;
                }
            }
            if cancelled && self.ctx.cancelled() {
                self.fail(EngineError::Cancelled);
                break;
            }
        }
        if let Ok(mut s) = self.stats.lock() {
            s.merge(&stats);
        }
    }
}

/// Scans every span of `spans` of every stream of `streams` with visitors
/// made by `make`, on up to `ctx.threads` threads; returns the visitors
/// (one per worker) and the summed storage statistics.
pub(crate) fn scan_streams<V, F>(
    ctx: &ScanCtx<'_>,
    streams: &[StreamInfo],
    spans: &[Span],
    make: F,
) -> Result<(Vec<V>, ScanStats), EngineError>
where
    V: StreamVisitor,
    F: Fn() -> V + Sync,
{
    if ctx.cancelled() {
        return Err(EngineError::Cancelled);
    }
    let shared = Shared {
        ctx,
        streams,
        spans,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        stats: Mutex::new(ScanStats::default()),
    };
    let items = streams.len().saturating_mul(spans.len());
    let workers = ctx.threads.clamp(1, items.max(1));
    let mut visitors = Vec::with_capacity(workers);
    if workers == 1 {
        let mut v = make();
        shared.work(&mut v);
        visitors.push(v);
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..workers)
                .map(|_| {
                    let shared = &shared;
                    let make = &make;
                    s.spawn(move || {
                        let mut v = make();
                        shared.work(&mut v);
                        v
                    })
                })
                .collect();
            let mut v = make();
            shared.work(&mut v);
            visitors.push(v);
            for h in handles {
                match h.join() {
                    Ok(v) => visitors.push(v),
                    Err(_) => shared.fail(EngineError::Invalid(
                        "internal error: a scan worker panicked".into(),
                    )),
                }
            }
        });
    }
    let failure = shared.failure.into_inner().ok().flatten();
    if let Some(e) = failure {
        return Err(e);
    }
    let stats = shared.stats.into_inner().unwrap_or_default();
    Ok((visitors, stats))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::labels::LabelSet;
    use crate::matcher::Matcher;
    use crate::source::{Columns, Direction, SourceError};

    /// A source of `n` streams, each one block of `m` entries.
    struct Fake {
        n: u64,
        m: usize,
    }

    impl LogSource for Fake {
        fn streams(
            &self,
            _: &str,
            _: &[Matcher],
            _: i64,
            _: i64,
        ) -> Result<Vec<StreamInfo>, SourceError> {
            Ok((0..self.n)
                .map(|i| StreamInfo {
                    id: i,
                    labels: Arc::new(LabelSet::from_pairs([("i", i.to_string())])),
                })
                .collect())
        }

        fn scan(
            &self,
            _: &str,
            s: &StreamInfo,
            _: &ScanRequest,
            visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
        ) -> Result<ScanStats, SourceError> {
            if s.id == 999 {
                return Err("disk on fire".into());
            }
            let ts: Vec<i64> = (0..self.m as i64).collect();
            for _ in 0..3 {
                let b = Block {
                    timestamps: &ts,
                    offsets: &[],
                    lines: &[],
                    metadata_offsets: &[],
                    metadata: &[],
                    whole: None,
                };
                if visit(&b).is_break() {
                    break;
                }
            }
            Ok(ScanStats {
                blocks: 1,
                ..ScanStats::default()
            })
        }
    }

    struct Count(u64);

    impl StreamVisitor for Count {
        fn begin(&mut self, _: &StreamInfo, _: Span) -> Option<ScanRequest> {
            Some(ScanRequest {
                start: 0,
                end: 10,
                direction: Direction::Forward,
                columns: Columns::ALL,
                must_contain: vec![],
                whole: None,
            })
        }
        fn block(&mut self, b: &Block<'_>) -> ControlFlow<()> {
            self.0 += b.len() as u64;
            ControlFlow::Break(())
        }
    }

    #[test]
    fn every_stream_is_scanned_once_on_any_thread_count() {
        let src = Fake { n: 37, m: 5 };
        let streams = src.streams("t", &[], 0, 1).unwrap();
        for threads in [1, 2, 4] {
            let ctx = ScanCtx {
                source: &src,
                tenant: "t",
                cancel: None,
                threads,
                max_series: 0,
            };
            let (vs, stats) = scan_streams(&ctx, &streams, &[(0, 10)], || Count(0)).unwrap();
            assert_eq!(vs.iter().map(|c| c.0).sum::<u64>(), 37 * 5);
            assert_eq!(stats.blocks, 37);
            // Three spans: every (stream, span) once.
            let spans = [(0, 3), (3, 6), (6, 10)];
            let (vs, stats) = scan_streams(&ctx, &streams, &spans, || Count(0)).unwrap();
            assert_eq!(vs.iter().map(|c| c.0).sum::<u64>(), 3 * 37 * 5);
            assert_eq!(stats.blocks, 3 * 37);
        }
    }

    #[test]
    fn spans_cover_the_range_in_scan_order() {
        let check = |start: i64, end: i64, streams, threads, forward| {
            let spans = time_spans(start, end, streams, threads, forward);
            let mut sorted = spans.clone();
            sorted.sort();
            assert_eq!(sorted.first().map(|s| s.0), Some(start));
            assert_eq!(sorted.last().map(|s| s.1), Some(end));
            for w in sorted.windows(2) {
                assert_eq!(w[0].1, w[1].0, "spans are contiguous");
                assert!(w[0].0 < w[0].1, "spans are not empty");
            }
            if spans.len() > 1 {
                assert_eq!(spans[0].0 < spans[1].0, forward);
            }
            spans.len()
        };
        let hour = 3_600_000_000_000;
        // One stream, two threads: four spans, so both threads stay busy.
        assert_eq!(check(0, hour, 1, 2, true), 4);
        assert_eq!(check(0, hour, 1, 2, false), 4);
        // Streams enough, one thread, or a range too short: one span.
        assert_eq!(check(0, hour, 8, 2, true), 1);
        assert_eq!(check(0, hour, 1, 1, true), 1);
        assert_eq!(check(0, 1_500_000, 1, 8, true), 1);
        // Extreme bounds do not overflow.
        assert_eq!(check(i64::MIN, i64::MAX, 1, 2, true), 4);
        assert_eq!(check(5, 5, 1, 2, true), 1);
    }

    #[test]
    fn cancellation_and_storage_errors_fail_the_scan() {
        let src = Fake { n: 3, m: 5 };
        let streams = src.streams("t", &[], 0, 1).unwrap();
        let flag = AtomicBool::new(true);
        let ctx = ScanCtx {
            source: &src,
            tenant: "t",
            cancel: Some(&flag),
            threads: 2,
            max_series: 0,
        };
        assert!(matches!(
            scan_streams(&ctx, &streams, &[(0, 10)], || Count(0)),
            Err(EngineError::Cancelled)
        ));
        let bad = vec![StreamInfo {
            id: 999,
            labels: Arc::new(LabelSet::new()),
        }];
        let ctx = ScanCtx {
            source: &src,
            tenant: "t",
            cancel: None,
            threads: 2,
            max_series: 0,
        };
        let err = scan_streams(&ctx, &bad, &[(0, 10)], || Count(0))
            .err()
            .unwrap();
        assert!(matches!(err, EngineError::Storage(_)));
        assert_eq!(err.to_string(), "disk on fire");
    }
}
