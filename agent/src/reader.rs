//! The reader thread: discovery, tailing, decoding, pipeline and batching,
//! all synchronous on one thread.
//!
//! Each file gets a [`FileCtx`]: its labels (path labels, Kubernetes
//! metadata, relabel rules, applied once when the file is opened), its
//! decoder (format detected from its first line, CRI/docker partials
//! joined), the per-file state of the pipeline stages, and the cached
//! label text of its streams for the fast path (no stages: a decoded line
//! goes straight into the batch without building an entry).
//!
//! After every line the file's *safe offset* — the end of that line, or the
//! start of the earliest data still held (a partial CRI line, a multiline
//! block) — is recorded in the current batch, so positions advance exactly
//! as far as the batch's acknowledgement justifies.
//!
//! Back-pressure: finished batches go to the sender over a bounded channel;
//! when the store is slow or down the channel fills, the batch that does
//! not fit waits in the reader (one at most), the consumer says it is
//! paused, and the tailer stops before the next line and leaves the rest
//! in the file: the files are the buffer. Discovery goes on meanwhile, so
//! a pod created and deleted while the store is unreachable is opened, and
//! its file kept open until it can be read. Only a line whose entry alone
//! fills a batch can finish a second batch while one waits; then the
//! reader waits on the channel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::batch::{Batch, Batcher};
use crate::config::{AgentConfig, Format};
use crate::discovery::{Confinement, Scanner};
use crate::format::{DockerDecoder, Joined, Joiner, LineFormat, StreamKind, detect, parse_cri};
use crate::kube::KubeCache;
use crate::labels::Labels;
use crate::metrics::{Counter, Gauge, Registry};
use crate::positions::{PositionRecord, Progress, Update};
use crate::relabel::Relabeler;
use crate::stages::{Entry, FileStages, Pipeline, dropped_counter};
use crate::tailer::{FileInfo, LineConsumer, Opened, Tailer, TailerConfig};
use crate::time::{Nanos, now_nanos};

/// Where a file's decoded lines go: its labels and pipeline state.
pub(crate) struct FileOut {
    labels: Labels,
    /// Label text and its hash per stream kind (stdout, stderr, unknown).
    stream_labels: [Option<(u64, String)>; STREAM_SLOTS],
    stages: FileStages,
}

/// Per-file state of the reader.
pub(crate) struct FileCtx {
    out: FileOut,
    format: Option<LineFormat>,
    joiner: Joiner,
    docker: DockerDecoder,
    slot: (u64, usize),
    progress: Arc<Progress>,
    /// End offset of the last line handed over by the tailer.
    last_end: u64,
}

/// Reader metrics (updated per poll, not per line).
struct ReaderMetrics {
    read_bytes: Counter,
    read_lines: Counter,
    entries: Counter,
    truncated: Counter,
    truncations: Counter,
    files: Gauge,
    malformed: Counter,
}

impl ReaderMetrics {
    fn new(r: &Registry) -> Self {
        ReaderMetrics {
            read_bytes: r.counter("larch_agent_read_bytes_total", "Bytes read from log files."),
            read_lines: r.counter("larch_agent_read_lines_total", "Lines read from log files."),
            entries: r.counter(
                "larch_agent_entries_total",
                "Entries put into batches (after joining and pipeline stages).",
            ),
            truncated: r.counter(
                "larch_agent_truncated_entries_total",
                "Entries cut at max_line_size.",
            ),
            truncations: r.counter(
                "larch_agent_file_truncations_total",
                "Files found truncated (copytruncate) and read again from the start.",
            ),
            files: r.gauge(
                "larch_agent_files_tailed",
                "Files being tailed (including rotated files being drained).",
            ),
            malformed: r.counter(
                "larch_agent_malformed_lines_total",
                "Lines that did not parse in their file's format; sent as plain lines.",
            ),
        }
    }
}

/// The reader's [`LineConsumer`].
pub(crate) struct Consumer {
    cfg: Arc<AgentConfig>,
    pipeline: Pipeline,
    relabeler: Relabeler,
    kube: Option<Arc<KubeCache>>,
    batcher: Batcher,
    tx: tokio::sync::mpsc::Sender<Batch>,
    entry: Entry,
    scratch: String,
    waiting: HashMap<PathBuf, Instant>,
    max_line: usize,
    entries: u64,
    truncated: u64,
    malformed: u64,
    /// 1 while the reader waits for the sender (reading paused).
    blocked: Gauge,
    /// A finished batch the channel had no room for; reading is paused
    /// while it waits.
    stash: Option<Batch>,
    /// Set when the sender is gone (shutdown); batches are then discarded
    /// and positions stay where the last acknowledgement left them.
    closed: bool,
}

const STREAM_SLOTS: usize = 3;

fn slot_of(s: Option<StreamKind>) -> usize {
    match s {
        Some(StreamKind::Stdout) => 0,
        Some(StreamKind::Stderr) => 1,
        None => 2,
    }
}

impl Consumer {
    /// Labels of a newly found file, or `None` if relabeling drops it.
    fn file_labels(&self, info: &FileInfo) -> Option<Labels> {
        let mut l = Labels::new();
        l.set("namespace", &info.pod.namespace);
        l.set("pod", &info.pod.pod);
        l.set("container", &info.pod.container);
        l.set("node_name", &self.cfg.node_name);
        if self.cfg.labels.filename {
            l.set("filename", &info.path.to_string_lossy());
        }
        let meta = self.kube.as_ref().and_then(|k| k.pod(&info.pod.uid));
        if let Some(m) = &meta {
            crate::kube::meta_labels(m, &info.pod.container, &mut l);
        }
        if !self.relabeler.is_empty() {
            if !self.relabeler.apply(&mut l) {
                return None;
            }
        } else if let Some(m) = &meta {
            crate::kube::default_labels(m, &mut l);
        }
        l.retain(|n, _| !n.starts_with("__"));
        for (k, v) in &self.cfg.external_labels {
            if l.get(k).is_none() {
                l.set(k, v);
            }
        }
        Some(l)
    }

    fn send(&mut self, batch: Batch) {
        use tokio::sync::mpsc::error::TrySendError;
        if self.closed {
            return;
        }
        if let Some(prev) = self.stash.take() {
            // Batches go in order, and two finished batches is the most the
            // reader holds: wait for the sender to take the first.
            self.blocked.set(1);
            if self.tx.blocking_send(prev).is_err() {
                self.sender_gone();
                return;
            }
        }
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.blocked.set(0);
            }
            // The sender is behind (a slow or unreachable store): keep the
            // batch and stop reading. The files hold the backlog.
            Err(TrySendError::Full(b)) => {
                self.stash = Some(b);
                self.blocked.set(1);
            }
            Err(TrySendError::Closed(_)) => self.sender_gone(),
        }
    }

    /// Hands the waiting batch over if the channel has room; true while
    /// one still waits (reading stays paused).
    fn try_unstash(&mut self) -> bool {
        use tokio::sync::mpsc::error::TrySendError;
        let Some(b) = self.stash.take() else {
            return false;
        };
        match self.tx.try_send(b) {
            Ok(()) => {
                self.blocked.set(0);
                false
            }
            Err(TrySendError::Full(b)) => {
                self.stash = Some(b);
                true
            }
            Err(TrySendError::Closed(_)) => {
                self.sender_gone();
                false
            }
        }
    }

    /// Sends the batches the batcher cut before an entry that would have
    /// made them too large.
    fn drain_ready(&mut self) {
        while let Some(b) = self.batcher.take_ready() {
            self.send(b);
        }
    }

    /// At shutdown: hands over everything, waiting for room.
    fn finish(&mut self) {
        self.drain_ready();
        if !self.batcher.is_empty() {
            let b = self.batcher.flush();
            self.send(b);
        }
        if let Some(b) = self.stash.take()
            && !self.closed
            && self.tx.blocking_send(b).is_err()
        {
            self.sender_gone();
        }
        self.blocked.set(0);
    }

    fn sender_gone(&mut self) {
        tracing::warn!(
            "Sender stopped; discarding further batches (positions stay at the last acknowledged line)."
        );
        self.closed = true;
    }

    /// Sends the current batch if it is full or old enough.
    pub(crate) fn maybe_flush(&mut self, force: bool) {
        self.drain_ready();
        let due = self.batcher.is_full()
            || self
                .batcher
                .started()
                .is_some_and(|t| t.elapsed() >= self.cfg.batch_wait.0);
        if !self.batcher.is_empty() && (due || force) {
            let b = self.batcher.flush();
            self.send(b);
        }
    }

    /// Time until the current batch is due, if it has anything.
    fn until_due(&self) -> Option<Duration> {
        self.batcher
            .started()
            .map(|t| self.cfg.batch_wait.0.saturating_sub(t.elapsed()))
    }

    /// Puts one decoded line into the batch (fast path) or through the
    /// pipeline.
    fn emit(
        &mut self,
        st: &mut FileOut,
        decoded: bool,
        ts: Nanos,
        stream: Option<StreamKind>,
        text: &[u8],
        start: u64,
    ) {
        let line: &str = match std::str::from_utf8(text) {
            Ok(s) => s,
            Err(_) => {
                self.scratch.clear();
                self.scratch.push_str(&String::from_utf8_lossy(text));
                &self.scratch
            }
        };
        if self.pipeline.is_empty() {
            let i = slot_of(stream);
            if st.stream_labels[i].is_none() {
                let mut l = st.labels.clone();
                if let (Some(s), true) = (stream, self.cfg.labels.stream) {
                    l.set("stream", s.as_str());
                }
                let text = l.to_text();
                st.stream_labels[i] = Some((xxhash_rust::xxh3::xxh3_64(text.as_bytes()), text));
            }
            if let Some((hash, labels)) = &st.stream_labels[i] {
                self.batcher.push_text(*hash, labels, ts, line, None);
                self.entries += 1;
            }
            return;
        }
        let e = &mut self.entry;
        e.ts = ts;
        e.line.clear();
        e.line.push_str(line);
        e.labels.copy_from(&st.labels);
        e.metadata.clear();
        e.extracted.clear();
        if let Some(s) = stream {
            if self.cfg.labels.stream {
                e.labels.set("stream", s.as_str());
            }
            e.extracted.set("stream", s.as_str());
        }
        e.start = start;
        e.decoded = decoded;
        let batcher = &mut self.batcher;
        let entries = &mut self.entries;
        self.pipeline
            .process(&mut st.stages, e, &mut |e: &mut Entry| {
                batcher.push_labels(&e.labels, e.ts, &e.line, &e.metadata);
                *entries += 1;
            });
    }

    fn record_offset(&mut self, st: &mut FileCtx, info: &FileInfo, end: u64) {
        let mut safe = end;
        if let Some(p) = st.joiner.pending_start() {
            safe = safe.min(p);
        }
        if !self.pipeline.is_empty()
            && let Some(p) = self.pipeline.pending_start(&st.out.stages)
        {
            safe = safe.min(p);
        }
        st.progress.read.store(safe, Ordering::Relaxed);
        self.batcher.offset(&mut st.slot, info.key, safe, info.fp);
    }

    /// Releases pipeline data held past its wait (multiline).
    fn tick(&mut self, st: &mut FileCtx, info: &FileInfo, now: Instant) {
        if self.pipeline.is_empty() {
            return;
        }
        let before = self.pipeline.pending_start(&st.out.stages);
        let batcher = &mut self.batcher;
        let entries = &mut self.entries;
        self.pipeline
            .tick(&mut st.out.stages, now, &mut |e: &mut Entry| {
                batcher.push_labels(&e.labels, e.ts, &e.line, &e.metadata);
                *entries += 1;
            });
        if before.is_some() && self.pipeline.pending_start(&st.out.stages) != before {
            // The released block is in the batch now: the file is safe up
            // to the end of the last complete line handed over (an
            // unfinished line the tailer keeps is not), minus what is
            // still held.
            let end = st.last_end;
            self.record_offset(st, info, end);
        }
    }
}

impl LineConsumer for Consumer {
    type State = FileCtx;

    fn open(&mut self, info: &FileInfo, start: u64) -> Opened<FileCtx> {
        if let Some(k) = &self.kube
            && k.pod(&info.pod.uid).is_none()
        {
            let first = *self
                .waiting
                .entry(info.path.as_ref().clone())
                .or_insert_with(Instant::now);
            if first.elapsed() < self.cfg.kubernetes.metadata_wait.0 {
                return Opened::Later;
            }
            tracing::info!(path = %info.path.display(), "No pod metadata yet; tailing with path labels only.");
        }
        self.waiting.remove(info.path.as_ref());
        let Some(labels) = self.file_labels(info) else {
            tracing::debug!(path = %info.path.display(), "File dropped by relabel rules.");
            return Opened::Skip;
        };
        let progress = Arc::new(Progress::default());
        progress.read.store(start, Ordering::Relaxed);
        self.batcher.open(Update::Open {
            key: info.key,
            record: PositionRecord {
                path: info.path.as_ref().clone(),
                dev: info.dev,
                ino: info.ino,
                fp: info.fp,
                offset: start,
            },
            progress: progress.clone(),
        });
        let format = match self.cfg.format {
            Format::Auto => None,
            Format::Cri => Some(LineFormat::Cri),
            Format::Docker => Some(LineFormat::Docker),
            Format::Plain => Some(LineFormat::Plain),
        };
        tracing::info!(path = %info.path.display(), start, labels = %labels, "Tailing file.");
        Opened::Tail(FileCtx {
            out: FileOut {
                labels,
                stream_labels: std::array::from_fn(|_| None),
                stages: self.pipeline.new_file(),
            },
            format,
            joiner: Joiner::new(self.max_line, 100),
            docker: DockerDecoder::default(),
            slot: (0, 0),
            progress,
            last_end: start,
        })
    }

    fn line(
        &mut self,
        st: &mut FileCtx,
        info: &FileInfo,
        line: &[u8],
        start: u64,
        end: u64,
        truncated: bool,
    ) {
        if truncated {
            self.truncated += 1;
        }
        let format = *st.format.get_or_insert_with(|| detect(line));
        match format {
            LineFormat::Cri | LineFormat::Docker => {
                let rec = if format == LineFormat::Cri {
                    parse_cri(line)
                } else {
                    st.docker.parse(line)
                };
                match rec {
                    Some(rec) if !rec.partial && st.joiner.is_idle(rec.stream) => {
                        // A whole line, nothing pending on its stream: no
                        // copy into the joiner.
                        let text = &rec.text[..rec.text.len().min(self.max_line)];
                        if text.len() < rec.text.len() {
                            self.truncated += 1;
                        }
                        self.emit(&mut st.out, true, rec.ts, Some(rec.stream), text, start);
                    }
                    Some(rec) => {
                        let stream = rec.stream;
                        if let Joined::Ready { ts, truncated } = st.joiner.push(&rec, start) {
                            if truncated {
                                self.truncated += 1;
                            }
                            self.emit(&mut st.out, true, ts, Some(stream), st.joiner.text(), start);
                        }
                    }
                    None => {
                        self.malformed += 1;
                        self.emit(&mut st.out, false, now_nanos(), None, line, start);
                    }
                }
            }
            LineFormat::Plain => self.emit(&mut st.out, false, now_nanos(), None, line, start),
        }
        st.last_end = end;
        self.record_offset(st, info, end);
        self.drain_ready();
        if self.batcher.is_full() {
            self.maybe_flush(true);
        }
    }

    fn truncated(&mut self, st: &mut FileCtx, info: &FileInfo) {
        st.joiner.reset();
        st.last_end = 0;
        self.pipeline.reset(&mut st.out.stages);
        self.batcher.offset(&mut st.slot, info.key, 0, info.fp);
    }

    fn close(&mut self, mut st: FileCtx, info: &FileInfo, end: u64) {
        // The file is finished: partial lines that never got their end
        // are complete now.
        while let Some((stream, ts, _)) = st.joiner.flush_one() {
            self.emit(&mut st.out, true, ts, Some(stream), st.joiner.text(), end);
        }
        if !self.pipeline.is_empty() {
            let batcher = &mut self.batcher;
            let entries = &mut self.entries;
            self.pipeline
                .flush(&mut st.out.stages, &mut |e: &mut Entry| {
                    batcher.push_labels(&e.labels, e.ts, &e.line, &e.metadata);
                    *entries += 1;
                });
        }
        self.batcher.offset(&mut st.slot, info.key, end, info.fp);
        self.batcher.close(Update::Close { key: info.key });
        self.drain_ready();
    }

    fn paused(&self) -> bool {
        self.stash.is_some()
    }
}

/// Everything the reader thread needs.
pub(crate) struct ReaderSetup {
    pub cfg: Arc<AgentConfig>,
    pub registry: Registry,
    pub kube: Option<Arc<KubeCache>>,
    pub tx: tokio::sync::mpsc::Sender<Batch>,
    pub positions: Vec<PositionRecord>,
    pub compress: bool,
    pub stop: Arc<AtomicBool>,
    pub ready: Arc<AtomicBool>,
    pub wake: (mpsc::SyncSender<()>, mpsc::Receiver<()>),
    /// Signalled by the sender when it takes a batch (the channel has room).
    pub room: mpsc::Receiver<()>,
    /// The positions were damaged: rotated files are read from their start.
    pub recovering: bool,
}

/// Runs the reader until `stop` is set, then sends the last batch.
pub(crate) fn run(setup: ReaderSetup) -> crate::Result<()> {
    let cfg = setup.cfg.clone();
    let pipeline = Pipeline::new(&cfg.pipeline_stages, &setup.registry)?;
    let relabeler = Relabeler::new(&cfg.relabel_configs)?;
    let max_line = cfg.max_line_size.0 as usize;
    let mut consumer = Consumer {
        cfg: cfg.clone(),
        pipeline,
        relabeler,
        kube: setup.kube,
        batcher: Batcher::new(cfg.batch_size.0 as usize, setup.compress),
        tx: setup.tx,
        entry: Entry::default(),
        scratch: String::new(),
        waiting: HashMap::new(),
        max_line,
        entries: 0,
        truncated: 0,
        malformed: 0,
        blocked: setup.registry.gauge(
            "larch_agent_reading_paused",
            "1 while reading waits because the store is not taking batches as fast as they are made.",
        ),
        stash: None,
        closed: false,
    };
    let _ = dropped_counter(&setup.registry);
    let metrics = ReaderMetrics::new(&setup.registry);
    let confinement = Arc::new(Confinement::with_metrics(
        &cfg.pods_dir,
        &cfg.allowed_log_dirs,
        &setup.registry,
    ));
    let tcfg = TailerConfig {
        read_budget: 1 << 20,
        // Room for the CRI or docker envelope around a maximal line
        // (docker escapes can double a line's size).
        max_line_bytes: max_line.saturating_mul(2).saturating_add(4096),
        rotate_wait: cfg.rotate_wait.0,
        confinement: Some(confinement.clone()),
    };
    let mut tailer: Tailer<FileCtx> = if setup.recovering {
        Tailer::recovering(tcfg, setup.positions)
    } else {
        Tailer::new(tcfg, setup.positions)
    };
    let unread = tailer.unread();
    setup.registry.gauge_fn(
        "larch_agent_unread_bytes",
        "Bytes written to tailed files and not read yet (the backlog kept in the files), computed at each scrape.",
        move || unread.total(),
    );
    let (wake_tx, wake_rx) = setup.wake;
    let mut scanner = Scanner::new(&cfg.pods_dir, confinement, wake_tx.clone());
    let mut missing_logged = false;
    let mut buf: Vec<u8> = Vec::new();
    let mut last_rescan: Option<Instant> = None;
    let mut last_tick = Instant::now();
    let mut last_gauges = Instant::now() - Duration::from_secs(10);
    while !setup.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        let since = |t: Option<Instant>| t.map(|t| now.duration_since(t));
        let quick = since(last_rescan).is_none_or(|d| d >= cfg.poll_interval.0);
        let rescan_due = since(last_rescan).is_none_or(|d| d >= cfg.rescan_interval.0)
            || (quick && (!consumer.waiting.is_empty() || scanner.is_missing()));
        if scanner.take_rescan() || rescan_due {
            match scanner.scan() {
                Ok(found) => {
                    if missing_logged {
                        missing_logged = false;
                        tracing::info!(path = %cfg.pods_dir.display(), "The pods directory exists now; watching it.");
                    }
                    tailer.sync(&found, &mut consumer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !missing_logged {
                        missing_logged = true;
                        tracing::warn!(path = %cfg.pods_dir.display(), "The pods directory does not exist; waiting for it to appear.");
                    }
                }
                Err(e) => {
                    if last_rescan.is_none() {
                        tracing::warn!(path = %cfg.pods_dir.display(), error = %e, "Cannot list the pods directory; will keep trying.");
                    }
                }
            }
            last_rescan = Some(now);
            // Files that waited for metadata and then vanished.
            let keep = cfg.kubernetes.metadata_wait.0 + Duration::from_secs(60);
            consumer.waiting.retain(|_, t| t.elapsed() < keep);
            setup.ready.store(true, Ordering::Release);
        }
        // A batch waiting for the sender pauses reading (not discovery).
        let paused = consumer.try_unstash();
        let stats = if paused {
            Default::default()
        } else {
            tailer.poll(&mut consumer, &mut buf)
        };
        if stats.bytes == 0 && buf.capacity() > 64 * 1024 {
            // Idle: give the read buffer back rather than keep a megabyte
            // per node for nothing.
            buf = Vec::new();
        }
        metrics.read_bytes.inc_by(stats.bytes);
        metrics.read_lines.inc_by(stats.lines);
        metrics.truncations.inc_by(stats.truncations);
        metrics
            .entries
            .inc_by(std::mem::take(&mut consumer.entries));
        metrics
            .truncated
            .inc_by(std::mem::take(&mut consumer.truncated));
        metrics
            .malformed
            .inc_by(std::mem::take(&mut consumer.malformed));
        if !consumer.paused() && now.duration_since(last_tick) >= cfg.poll_interval.0 {
            last_tick = now;
            for (info, _, st) in tailer.states_mut() {
                consumer.tick(st, info, now);
            }
        }
        if !consumer.paused() {
            consumer.maybe_flush(false);
        }
        if now.duration_since(last_gauges) >= Duration::from_secs(1) {
            last_gauges = now;
            metrics
                .files
                .set(i64::try_from(tailer.len()).unwrap_or(i64::MAX));
        }
        if consumer.paused() {
            // Until the sender takes a batch; file events do not matter
            // while nothing is read, but new directories are looked at
            // every poll interval (the rescan flag).
            let _ = setup.room.recv_timeout(cfg.poll_interval.0);
        } else if stats.bytes == 0 {
            // Woken by file events.
            let mut wait = cfg.poll_interval.0;
            if let Some(d) = consumer.until_due() {
                wait = wait.min(d.max(Duration::from_millis(1)));
            }
            let _ = wake_rx.recv_timeout(wait);
        }
    }
    consumer.finish();
    tracing::info!("Reader stopped.");
    Ok(())
}
