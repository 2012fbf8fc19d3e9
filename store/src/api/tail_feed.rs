//! The producing half of a live tail: history first, then acknowledged
//! entries as they arrive, filtered, ordered and cut into frames.
//!
//! ```text
//!  ingester fan-out ──(broadcast, bounded)──► Feed ──(mpsc, 10 frames)──► connection ──► client
//!                                              │ EntryFilter per stream
//!                                              │ pending heap (delay_for, bounded)
//!                                              └ dropped_entries (bounded)
//! ```
//!
//! The feed reads the fan-out as fast as pushes come (it only filters),
//! holds each entry until `delay_for` seconds after its timestamp, as
//! Loki does, so that late arrivals still go out in time order (the
//! filtering, ordering and bounds are the ingester's [`TailQueue`]), and
//! then packs entries into frames of at most [`MAX_ENTRIES_PER_FRAME`] entries
//! and [`MAX_FRAME_BYTES`] of lines (a longer single line still gets its
//! own frame). A frame is handed to the connection without waiting: when
//! the connection's queue of [`MAX_BUFFERED_FRAMES`] is full the client is
//! too slow, and the frame's entries are recorded as dropped (at most
//! [`MAX_DROPPED_PER_FRAME`], timestamp and labels only) and reported in
//! the next frame that gets through. The pending heap holds at most
//! [`MAX_PENDING`] entries and [`MAX_PENDING_BYTES`] of lines; beyond
//! that new entries are dropped the same way. So a slow client costs the
//! store a bounded amount of memory (a few MiB per tail) and never slows
//! pushes. Loki bounds frames by entry count only; the byte bounds are
//! ours, because a hundred 256 KiB lines per frame times ten queued frames
//! would be a quarter of a gigabyte per tail.
//!
//! History: the newest `limit` entries from `start` to the moment the
//! subscription began, oldest first (the engine's ordinary log query).
//! The subscription starts before the history query runs, so nothing
//! falls between them; entries seen in the history are not sent again.

use std::sync::Arc;
use std::time::Duration;

use larch_query::drilldown::EntryFilter;
use larch_query::engine::{LogEntry, QueryRequest, QueryValue, StreamResult};
use larch_query::{Direction, LabelSet};
use tokio::sync::{broadcast, mpsc};

use super::json;
use super::params::now_ns;
use crate::ingester::tail::TailEvent;
use crate::ingester::tail_queue::TailQueue;
pub use crate::ingester::tail_queue::{MAX_DROPPED_PER_FRAME, MAX_PENDING, MAX_PENDING_BYTES};
use crate::metrics::Metrics;
use crate::server::AppState;
use crate::tenant::TenantId;

/// Entries per frame at most (Loki's `maxEntriesPerTailResponse`).
pub const MAX_ENTRIES_PER_FRAME: usize = 100;
/// Frames queued for a connection (Loki's `maxBufferedTailResponses`).
pub const MAX_BUFFERED_FRAMES: usize = 10;
/// Line bytes per frame at most (a single longer line is sent alone).
pub const MAX_FRAME_BYTES: usize = 256 << 10;
/// How often held entries are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// What the connection is told to do.
#[derive(Debug)]
pub enum Frame {
    /// Send this text frame.
    Text(String),
    /// Close with this code and reason.
    Close(u16, String),
}

/// One tail request, validated.
#[derive(Clone, Debug)]
pub struct TailSpec {
    /// The tenant.
    pub tenant: TenantId,
    /// The query text (a log query).
    pub query: String,
    /// The compiled query.
    pub filter: EntryFilter,
    /// Hold entries this long after their timestamp (0-5 s).
    pub delay: Duration,
    /// History entries at most.
    pub limit: u32,
    /// History start (Unix ns).
    pub start: i64,
    /// Loki's `categorize-labels` encoding.
    pub categorize: bool,
    /// The legacy `/api/prom/tail` encoding.
    pub legacy: bool,
}

/// The feed's state (see the module docs).
pub struct Feed {
    spec: TailSpec,
    metrics: Arc<Metrics>,
    frames: mpsc::Sender<Frame>,
    /// The entries on their way to frames.
    queue: TailQueue,
}

/// `{"streams":[...],"dropped_entries":[...],"encodingFlags":[...]}`
/// (Loki's key order; `dropped_entries` only when there are some).
pub fn frame_json(
    streams: &[StreamResult],
    dropped: &[(i64, &LabelSet)],
    categorize: bool,
) -> String {
    let mut out = String::from("{\"streams\":");
    json::streams(&mut out, streams, categorize);
    if !dropped.is_empty() {
        out.push_str(",\"dropped_entries\":[");
        for (i, (ts, labels)) in dropped.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("{{\"timestamp\":\"{ts}\",\"labels\":"));
            json::labels(&mut out, labels);
            out.push('}');
        }
        out.push(']');
    }
    if categorize {
        out.push_str(",\"encodingFlags\":[\"categorize-labels\"]");
    }
    out.push('}');
    out
}

/// The legacy `/api/prom/tail` frame: `{"streams":[{"labels":"{..}",
/// "entries":[{"ts":"<RFC3339Nano>","line":".."}]}],"dropped_entries":..}`
/// (`null` when none, as Loki's legacy encoder writes it).
pub fn legacy_frame_json(streams: &[StreamResult], dropped: &[(i64, &LabelSet)]) -> String {
    let mut out = String::from("{\"streams\":[");
    json::legacy_streams(&mut out, streams);
    out.push_str("],\"dropped_entries\":");
    if dropped.is_empty() {
        out.push_str("null");
    } else {
        out.push('[');
        for (i, (ts, labels)) in dropped.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"timestamp\":");
            json::string(&mut out, &crate::validate::rfc3339(*ts));
            out.push_str(",\"labels\":");
            json::string(&mut out, &labels.to_string());
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// Groups entries (in order) into streams of consecutive equal labels.
fn group(entries: Vec<(Arc<LabelSet>, LogEntry)>) -> Vec<StreamResult> {
    let mut out: Vec<(Arc<LabelSet>, StreamResult)> = Vec::new();
    for (labels, e) in entries {
        match out.last_mut() {
            Some((l, s)) if *l == labels => s.entries.push(e),
            _ => out.push((
                labels.clone(),
                StreamResult {
                    labels: (*labels).clone(),
                    entries: vec![e],
                },
            )),
        }
    }
    out.into_iter().map(|(_, s)| s).collect()
}

impl Feed {
    /// A feed for `spec` sending frames to `frames`.
    pub fn new(spec: TailSpec, metrics: Arc<Metrics>, frames: mpsc::Sender<Frame>) -> Feed {
        let queue = TailQueue::new(
            spec.tenant.clone(),
            spec.filter.clone(),
            spec.delay,
            spec.categorize,
            metrics.clone(),
        );
        Feed {
            spec,
            metrics,
            frames,
            queue,
        }
    }

    /// Runs until the connection goes away or the feed must close it.
    pub async fn run(mut self, app: AppState, mut events: broadcast::Receiver<Arc<TailEvent>>) {
        self.queue.set_deletes(app.ingester.deletes.clone());
        if let Err(close) = self.send_history(&app).await {
            let _ = self.frames.send(close).await;
            return;
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.frames.closed() => return,
                ev = events.recv() => {
                    match ev {
                        Ok(ev) => self.queue.add_event(&ev),
                        Err(broadcast::error::RecvError::Lagged(n)) => self.lagged(n),
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                    // Take whatever else is queued before flushing (early
                    // when the held entries grow, so that a burst is sent
                    // rather than dropped for want of room).
                    for _ in 0..1024 {
                        match events.try_recv() {
                            Ok(ev) => self.queue.add_event(&ev),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged(n),
                            Err(_) => break,
                        }
                        if self.queue.half_full() && !self.flush(now_ns())
                        {
                            return;
                        }
                    }
                }
                _ = tick.tick() => {}
            }
            if !self.flush(now_ns()) {
                return;
            }
        }
    }

    fn lagged(&self, n: u64) {
        tracing::warn!(
            missed = n,
            "A live tail fell behind the push fan-out and missed events."
        );
        self.metrics.tail_lagged_events.inc_by(n);
    }

    /// Runs the history query and sends it, oldest first.
    async fn send_history(&mut self, app: &AppState) -> Result<(), Frame> {
        let end = now_ns();
        self.queue.history_ends(end);
        if self.spec.start >= end || self.spec.limit == 0 {
            return Ok(());
        }
        let limits = app.config.limits_for(self.spec.tenant.as_str());
        let req = QueryRequest {
            tenant: self.spec.tenant.to_string(),
            query: self.spec.query.clone(),
            start: self.spec.start,
            end,
            step: 0,
            interval: 0,
            limit: self.spec.limit,
            direction: Direction::Backward,
            instant: false,
            categorize_labels: self.spec.categorize,
            max_series: limits.max_query_series,
            cancel: None,
        };
        let (value, _) = super::query::run(app, req).await.map_err(|e| {
            Frame::Close(super::tail::CLOSE_INTERNAL_ERROR, e.message().to_string())
        })?;
        let QueryValue::Streams(streams) = value else {
            return Ok(());
        };
        let mut entries: Vec<(Arc<LabelSet>, LogEntry)> = Vec::new();
        for s in streams {
            let labels = Arc::new(s.labels);
            for e in s.entries {
                self.queue.sent_in_history(&labels, e.ts, &e.line);
                entries.push((labels.clone(), e));
            }
        }
        entries.sort_by_key(|(_, e)| e.ts);
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let chunk: Vec<_> = entries.by_ref().take(MAX_ENTRIES_PER_FRAME).collect();
            let n = chunk.len() as u64;
            let text = self.encode(&group(chunk), &[]);
            // History waits for the client: it is bounded by `limit`.
            if self.frames.send(Frame::Text(text)).await.is_err() {
                return Ok(());
            }
            self.metrics.tail_sent_entries.inc_by(n);
        }
        Ok(())
    }

    fn encode(&self, streams: &[StreamResult], dropped: &[(i64, &LabelSet)]) -> String {
        if self.spec.legacy {
            legacy_frame_json(streams, dropped)
        } else {
            frame_json(streams, dropped, self.spec.categorize)
        }
    }

    /// Sends every entry whose delay has passed; `false` once the
    /// connection is gone.
    pub fn flush(&mut self, now: i64) -> bool {
        loop {
            let batch = self
                .queue
                .ready(now, MAX_ENTRIES_PER_FRAME, MAX_FRAME_BYTES);
            if batch.is_empty() && self.queue.dropped().is_empty() {
                return !self.frames.is_closed();
            }
            let permit = match self.frames.clone().try_reserve_owned() {
                Ok(p) => p,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let lost: Vec<_> = batch.into_iter().map(|(l, e)| (e.ts, l)).collect();
                    let any = !lost.is_empty();
                    self.queue.drop_entries("slow_client", lost);
                    if any {
                        continue;
                    }
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            };
            let n = batch.len() as u64;
            let dropped: Vec<(i64, &LabelSet)> = self
                .queue
                .dropped()
                .iter()
                .map(|d| (d.ts, &*d.labels))
                .collect();
            let text = self.encode(&group(batch), &dropped);
            permit.send(Frame::Text(text));
            self.queue.clear_dropped();
            self.metrics.tail_sent_entries.inc_by(n);
            if n == 0 {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingester::tail_queue::tests::event;

    fn spec(query: &str, delay: u64, categorize: bool) -> TailSpec {
        TailSpec {
            tenant: TenantId::new("t").unwrap(),
            query: query.into(),
            filter: EntryFilter::parse(query).unwrap(),
            delay: Duration::from_secs(delay),
            limit: 100,
            start: 0,
            categorize,
            legacy: false,
        }
    }

    fn text(f: Frame) -> serde_json::Value {
        match f {
            Frame::Text(t) => serde_json::from_str(&t).unwrap(),
            Frame::Close(c, r) => panic!("close {c} {r}"),
        }
    }

    #[test]
    fn deleted_lines_are_not_sent_live() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = crate::objstore::Bucket::open(
            &crate::objstore::config::StorageConfig::default(),
            dir.path(),
            Default::default(),
        )
        .unwrap();
        let deletes = Arc::new(crate::deletes::Deletes::new(Arc::new(bucket)));
        let t = TenantId::new("t").unwrap();
        let new = crate::deletes::NewRequest {
            query: r#"{app="a"} |= "secret""#.into(),
            start_ms: 0,
            end_ms: 1,
            max_interval_ms: 0,
        };
        deletes.add(&t, new, 5).unwrap();
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(spec(r#"{app="a"}"#, 0, false), Arc::new(Metrics::new()), tx);
        feed.queue.set_deletes(deletes);
        feed.queue.add_event(&event(
            "t",
            &[("app", "a")],
            &[
                (10, "secret old"),
                (20, "public old"),
                (5_000_000, "secret new"),
            ],
        ));
        assert!(feed.flush(10_000_000));
        let j = text(rx.try_recv().unwrap());
        let lines: Vec<&str> = j["streams"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[1].as_str().unwrap())
            .collect();
        assert_eq!(lines, vec!["public old", "secret new"]);
    }

    #[test]
    fn filters_orders_and_frames() {
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(
            spec(r#"{app="a"} |= "keep""#, 0, false),
            Arc::new(Metrics::new()),
            tx,
        );
        feed.queue.add_event(&event(
            "t",
            &[("app", "a")],
            &[(30, "keep 3"), (10, "keep 1"), (20, "drop")],
        ));
        feed.queue
            .add_event(&event("t", &[("app", "b")], &[(15, "keep b")]));
        feed.queue.add_event(&event(
            "other",
            &[("app", "a")],
            &[(16, "keep other tenant")],
        ));
        feed.queue
            .add_event(&event("t", &[("app", "a")], &[(20, "keep 2")]));
        assert!(feed.flush(1_000));
        let j = text(rx.try_recv().unwrap());
        assert_eq!(
            j,
            serde_json::json!({"streams": [
                {"stream": {"app": "a"}, "values": [["10", "keep 1"], ["20", "keep 2"], ["30", "keep 3"]]}
            ]})
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn delay_holds_entries_and_orders_late_ones() {
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(spec(r#"{app="a"}"#, 2, false), Arc::new(Metrics::new()), tx);
        let s = 1_000_000_000;
        feed.queue
            .add_event(&event("t", &[("app", "a")], &[(10 * s, "b")]));
        assert!(feed.flush(11 * s));
        assert!(rx.try_recv().is_err(), "held for delay_for");
        feed.queue
            .add_event(&event("t", &[("app", "a")], &[(9 * s, "a")]));
        assert!(feed.flush(12 * s));
        let j = text(rx.try_recv().unwrap());
        let values = &j["streams"][0]["values"];
        assert_eq!(values[0][1], "a");
        assert_eq!(values[1][1], "b");
    }

    #[test]
    fn slow_client_gets_dropped_entries_and_memory_stays_bounded() {
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(spec(r#"{app="a"}"#, 0, false), Arc::new(Metrics::new()), tx);
        // Nobody reads: 10 frames fit, the rest is dropped.
        for i in 0..(MAX_BUFFERED_FRAMES as i64 + 5) {
            let entries: Vec<(i64, String)> = (0..MAX_ENTRIES_PER_FRAME as i64)
                .map(|k| (i * 1000 + k, format!("line {i} {k}")))
                .collect();
            let refs: Vec<(i64, &str)> = entries.iter().map(|(t, l)| (*t, l.as_str())).collect();
            feed.queue.add_event(&event("t", &[("app", "a")], &refs));
            assert!(feed.flush(i64::MAX / 2));
        }
        assert!(feed.queue.held().0 == 0);
        assert_eq!(feed.queue.dropped().len(), 5 * MAX_ENTRIES_PER_FRAME);
        for _ in 0..MAX_BUFFERED_FRAMES {
            let j = text(rx.try_recv().unwrap());
            assert!(j.get("dropped_entries").is_none());
        }
        // The client catches up: the next flush reports what it missed.
        assert!(feed.flush(i64::MAX / 2));
        let j = text(rx.try_recv().unwrap());
        assert_eq!(j["streams"], serde_json::json!([]));
        let d = j["dropped_entries"].as_array().unwrap();
        assert_eq!(d.len(), 5 * MAX_ENTRIES_PER_FRAME);
        assert_eq!(d[0]["labels"], serde_json::json!({"app": "a"}));
        assert_eq!(d[0]["timestamp"], "10000");
        assert!(feed.queue.dropped().is_empty());
    }

    #[test]
    fn frames_are_capped_in_bytes() {
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(spec(r#"{app="a"}"#, 0, false), Arc::new(Metrics::new()), tx);
        let big = "x".repeat(MAX_FRAME_BYTES / 2 + 1);
        let lines: Vec<(i64, &str)> = (0..3).map(|t| (t, big.as_str())).collect();
        feed.queue.add_event(&event("t", &[("app", "a")], &lines));
        assert_eq!(feed.queue.held().1, 3 * big.len());
        assert!(feed.flush(100));
        for _ in 0..3 {
            let j = text(rx.try_recv().unwrap());
            assert_eq!(j["streams"][0]["values"].as_array().unwrap().len(), 1);
        }
        assert_eq!(feed.queue.held().1, 0);
        // Held bytes are capped too.
        let (tx, _rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(spec(r#"{app="a"}"#, 5, false), Arc::new(Metrics::new()), tx);
        let n = MAX_PENDING_BYTES / big.len() + 3;
        let lines: Vec<(i64, &str)> = (0..n as i64).map(|t| (t, big.as_str())).collect();
        feed.queue.add_event(&event("t", &[("app", "a")], &lines));
        assert!(feed.queue.held().1 <= MAX_PENDING_BYTES);
        assert_eq!(feed.queue.held().0 + feed.queue.dropped().len(), n);
    }

    #[test]
    fn categorized_frames_carry_the_flag_and_3_tuples() {
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(
            spec(r#"{app="a"} | logfmt"#, 0, true),
            Arc::new(Metrics::new()),
            tx,
        );
        feed.queue
            .add_event(&event("t", &[("app", "a")], &[(5, "k=v"), (6, "plain")]));
        assert!(feed.flush(100));
        let f = match rx.try_recv().unwrap() {
            Frame::Text(t) => t,
            Frame::Close(..) => panic!("close"),
        };
        assert!(f.starts_with(r#"{"streams":[{"stream":{"app":"a"},"values":[["5","k=v",{"parsed":{"k":"v"}}],["6","plain",{}]]}],"encodingFlags":["categorize-labels"]}"#), "{f}");
    }

    #[test]
    fn legacy_frames() {
        let s = vec![StreamResult {
            labels: LabelSet::from_pairs([("app", "a")]),
            entries: vec![LogEntry {
                ts: 1_500_000_000,
                line: "x".into(),
                structured_metadata: vec![],
                parsed: vec![],
            }],
        }];
        let l = LabelSet::from_pairs([("app", "a")]);
        assert_eq!(
            legacy_frame_json(&s, &[]),
            r#"{"streams":[{"labels":"{app=\"a\"}","entries":[{"ts":"1970-01-01T00:00:01.500Z","line":"x"}]}],"dropped_entries":null}"#
        );
        let j: serde_json::Value =
            serde_json::from_str(&legacy_frame_json(&[], &[(2, &l)])).unwrap();
        assert_eq!(j["dropped_entries"][0]["labels"], r#"{app="a"}"#);
    }

    #[test]
    fn history_entries_are_not_sent_twice() {
        let (tx, mut rx) = mpsc::channel(MAX_BUFFERED_FRAMES);
        let mut feed = Feed::new(spec(r#"{app="a"}"#, 0, false), Arc::new(Metrics::new()), tx);
        let labels = LabelSet::from_pairs([("app", "a")]);
        feed.queue.history_ends(100);
        feed.queue.sent_in_history(&labels, 50, "old");
        feed.queue.add_event(&event(
            "t",
            &[("app", "a")],
            &[(50, "old"), (60, "late but new")],
        ));
        assert!(feed.flush(1000));
        let j = text(rx.try_recv().unwrap());
        assert_eq!(
            j["streams"][0]["values"],
            serde_json::json!([["60", "late but new"]])
        );
    }
}
