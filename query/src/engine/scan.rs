//! Scanning many streams on several threads.
//!
//! The engine's work is per stream: a [`StreamVisitor`] is told which
//! stream comes next, says what to read from it, and receives its blocks.
//! [`scan_streams`] runs one visitor per worker thread; workers take the
//! next unscanned stream from a shared counter, so a few large streams do
//! not leave the other threads idle behind a fixed partition. Each
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
    /// Called before `stream` is scanned: the request to make, or `None`
    /// to skip the stream.
    fn begin(&mut self, stream: &StreamInfo) -> Option<ScanRequest>;
    /// One block of the current stream. `Break` stops this stream only.
    fn block(&mut self, block: &Block<'_>) -> ControlFlow<()>;
    /// Called after the current stream's last block.
    fn end(&mut self) {}
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
}

impl ScanCtx<'_> {
    /// Whether the caller cancelled the query.
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
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
            let Some(stream) = self.streams.get(i) else {
                break;
            };
            let Some(req) = v.begin(stream) else {
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

/// Scans `streams` with visitors made by `make`, on up to `ctx.threads`
/// threads; returns the visitors (one per worker) and the summed storage
/// statistics.
pub(crate) fn scan_streams<V, F>(
    ctx: &ScanCtx<'_>,
    streams: &[StreamInfo],
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
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        stats: Mutex::new(ScanStats::default()),
    };
    let workers = ctx.threads.clamp(1, streams.len().max(1));
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
        fn begin(&mut self, _: &StreamInfo) -> Option<ScanRequest> {
            Some(ScanRequest {
                start: 0,
                end: 10,
                direction: Direction::Forward,
                columns: Columns::ALL,
                must_contain: vec![],
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
            };
            let (vs, stats) = scan_streams(&ctx, &streams, || Count(0)).unwrap();
            assert_eq!(vs.iter().map(|c| c.0).sum::<u64>(), 37 * 5);
            assert_eq!(stats.blocks, 37);
        }
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
        };
        assert!(matches!(
            scan_streams(&ctx, &streams, || Count(0)),
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
        };
        let err = scan_streams(&ctx, &bad, || Count(0)).err().unwrap();
        assert!(matches!(err, EngineError::Storage(_)));
        assert_eq!(err.to_string(), "disk on fire");
    }
}
