//! Batches: entries grouped by stream and encoded straight into Loki's
//! push protobuf, with the position updates they carry.
//!
//! The batcher writes each entry's protobuf bytes into its stream's buffer
//! as it arrives (no per-entry allocation: buffers are reused batch after
//! batch), and at flush wraps the streams into a `PushRequest`:
//!
//! ```text
//! PushRequest { 1: Stream* }
//! Stream      { 1: labels (string), 2: Entry* }
//! Entry       { 1: Timestamp { 1: seconds (int64), 2: nanos (int32) },
//!               2: line (string), 3: LabelPair* }
//! LabelPair   { 1: name, 2: value }
//! ```
//!
//! *Invariant: a batch never holds more than `batch_size` bytes of lines
//! and structured metadata* (what the store charges against a tenant's
//! ingestion burst), unless one entry alone is larger: an entry that would
//! overflow the batch is put into the next one, and the full batch waits in
//! [`Batcher::take_ready`].
//!
//! For the HTTP push API the request is compressed with snappy's raw block
//! format on the reader thread, so the async side only moves bytes. A batch
//! also carries the [`Update`]s to apply to the positions once it is
//! acknowledged: opens, then offsets, then closes, which keeps every file's
//! updates in the order they happened.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::file_id::Fingerprint;
use crate::labels::Labels;
use crate::positions::Update;
use crate::time::Nanos;

/// A batch ready to push.
#[derive(Debug)]
pub struct Batch {
    /// Sequence number (1, 2, …) in the order batches were made.
    pub seq: u64,
    /// The request body: snappy-compressed protobuf for HTTP, plain
    /// protobuf for gRPC. Empty when the batch only carries updates.
    pub body: Bytes,
    /// Number of entries.
    pub entries: usize,
    /// Sum of line and structured metadata lengths (what the store counts
    /// against the tenant's ingestion rate).
    pub line_bytes: usize,
    /// Number of streams.
    pub streams: usize,
    /// Position updates to apply once the store acknowledged the batch.
    pub updates: Vec<Update>,
    /// When its first entry arrived.
    pub started: Instant,
}

struct StreamBuf {
    hash: u64,
    labels: String,
    entries: Vec<u8>,
    count: usize,
    last_batch: u64,
}

/// Collects entries into the next [`Batch`].
pub struct Batcher {
    compress: bool,
    max_bytes: usize,
    streams: Vec<StreamBuf>,
    index: HashMap<u64, Vec<usize>>,
    active: Vec<usize>,
    line_bytes: usize,
    entries: usize,
    started: Option<Instant>,
    opens: Vec<Update>,
    offsets: Vec<(u64, u64, Fingerprint)>,
    closes: Vec<Update>,
    seq: u64,
    text: String,
    req: Vec<u8>,
    encoder: snap::raw::Encoder,
    /// Batches cut before an entry that would have overflowed them.
    ready: VecDeque<Batch>,
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

impl Batcher {
    /// A batcher that flushes at `max_bytes` of lines; `compress` for the
    /// HTTP push API.
    pub fn new(max_bytes: usize, compress: bool) -> Self {
        Batcher {
            compress,
            max_bytes,
            streams: Vec::new(),
            index: HashMap::new(),
            active: Vec::new(),
            line_bytes: 0,
            entries: 0,
            started: None,
            opens: Vec::new(),
            offsets: Vec::new(),
            closes: Vec::new(),
            seq: 1,
            text: String::new(),
            req: Vec::new(),
            encoder: snap::raw::Encoder::new(),
            ready: VecDeque::new(),
        }
    }

    /// A batch cut because the next entry would have overflowed it; send
    /// these before flushing the current one.
    pub fn take_ready(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }

    /// The sequence number of the batch being filled.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// True when the batch reached its size.
    pub fn is_full(&self) -> bool {
        self.line_bytes >= self.max_bytes
    }

    /// True when there is nothing to send or apply.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
            && self.opens.is_empty()
            && self.offsets.is_empty()
            && self.closes.is_empty()
    }

    /// When the first entry of the batch arrived.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Number of entries in the batch.
    pub fn len(&self) -> usize {
        self.entries
    }

    fn stream_for(&mut self, hash: u64, labels: &str) -> usize {
        let candidates = self.index.entry(hash).or_default();
        let found = candidates
            .iter()
            .copied()
            .find(|&i| self.streams[i].labels == labels);
        let i = match found {
            Some(i) => i,
            None => {
                let i = self.streams.len();
                self.streams.push(StreamBuf {
                    hash,
                    labels: labels.to_string(),
                    entries: Vec::new(),
                    count: 0,
                    last_batch: 0,
                });
                candidates.push(i);
                i
            }
        };
        let s = &mut self.streams[i];
        if s.count == 0 {
            self.active.push(i);
        }
        s.last_batch = self.seq;
        i
    }

    /// Adds an entry to the stream whose label text is `labels` (with
    /// `hash` = `xxh3(labels)`, which callers cache per file).
    pub fn push_text(
        &mut self,
        hash: u64,
        labels: &str,
        ts: Nanos,
        line: &str,
        metadata: Option<&Labels>,
    ) {
        let mut cost = line.len();
        if let Some(md) = metadata {
            for (n, v) in md.iter() {
                cost += n.len() + v.len();
            }
        }
        if self.entries > 0 && self.line_bytes.saturating_add(cost) > self.max_bytes {
            let full = self.flush();
            self.ready.push_back(full);
        }
        let i = self.stream_for(hash, labels);
        let s = &mut self.streams[i];
        let secs = ts.div_euclid(1_000_000_000);
        let nanos = ts.rem_euclid(1_000_000_000) as u64;
        let mut ts_len = 0;
        if secs != 0 {
            ts_len += 1 + varint_len(secs as u64);
        }
        if nanos != 0 {
            ts_len += 1 + varint_len(nanos);
        }
        let mut len = field_len(ts_len) + field_len(line.len());
        if let Some(md) = metadata {
            for (n, v) in md.iter() {
                len += field_len(field_len(n.len()) + field_len(v.len()));
            }
        }
        let out = &mut s.entries;
        out.reserve(len + 10);
        out.push(0x12);
        put_varint(out, len as u64);
        out.push(0x0a);
        put_varint(out, ts_len as u64);
        if secs != 0 {
            out.push(0x08);
            put_varint(out, secs as u64);
        }
        if nanos != 0 {
            out.push(0x10);
            put_varint(out, nanos);
        }
        put_bytes(out, 0x12, line.as_bytes());
        if let Some(md) = metadata {
            for (n, v) in md.iter() {
                out.push(0x1a);
                put_varint(out, (field_len(n.len()) + field_len(v.len())) as u64);
                put_bytes(out, 0x0a, n.as_bytes());
                put_bytes(out, 0x12, v.as_bytes());
            }
        }
        s.count += 1;
        self.entries += 1;
        self.line_bytes += cost;
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// Adds an entry with a label set (rendered to text and hashed here).
    pub fn push_labels(&mut self, labels: &Labels, ts: Nanos, line: &str, metadata: &Labels) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        labels.write_text(&mut text);
        let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        let md = (!metadata.is_empty()).then_some(metadata);
        self.push_text(hash, &text, ts, line, md);
        self.text = text;
    }

    /// Records a file opened (applied before this batch's offsets).
    pub fn open(&mut self, u: Update) {
        self.opens.push(u);
        self.mark_started();
    }

    /// Records a file closed (applied after this batch's offsets).
    pub fn close(&mut self, u: Update) {
        self.closes.push(u);
        self.mark_started();
    }

    fn mark_started(&mut self) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// Records that file `key` is safe up to `offset`. `slot` is the
    /// caller's cache: pass the same `&mut (u64, usize)` for a file every
    /// time, so repeated updates in one batch overwrite one slot instead
    /// of growing the list.
    pub fn offset(&mut self, slot: &mut (u64, usize), key: u64, offset: u64, fp: Fingerprint) {
        if slot.0 == self.seq && slot.1 < self.offsets.len() && self.offsets[slot.1].0 == key {
            self.offsets[slot.1] = (key, offset, fp);
        } else {
            *slot = (self.seq, self.offsets.len());
            self.offsets.push((key, offset, fp));
            self.mark_started();
        }
    }

    /// Finishes the batch and starts the next one.
    pub fn flush(&mut self) -> Batch {
        let seq = self.seq;
        self.seq += 1;
        let entries = self.entries;
        let line_bytes = self.line_bytes;
        let streams = self.active.len();
        let body = if entries == 0 {
            Bytes::new()
        } else {
            self.req.clear();
            for &i in &self.active {
                let s = &self.streams[i];
                let inner = field_len(s.labels.len()) + s.entries.len();
                self.req.push(0x0a);
                put_varint(&mut self.req, inner as u64);
                put_bytes(&mut self.req, 0x0a, s.labels.as_bytes());
                self.req.extend_from_slice(&s.entries);
            }
            if self.compress {
                let mut out = vec![0u8; snap::raw::max_compress_len(self.req.len())];
                match self.encoder.compress(&self.req, &mut out) {
                    Ok(n) => {
                        out.truncate(n);
                        Bytes::from(out)
                    }
                    // Only fails for inputs over 4 GiB, which a batch
                    // (at most 64 MiB of lines) never reaches.
                    Err(e) => {
                        tracing::error!(error = %e, "Snappy compression failed; sending the batch uncompressed is not possible, dropping it.");
                        Bytes::new()
                    }
                }
            } else {
                Bytes::copy_from_slice(&self.req)
            }
        };
        if self.req.capacity() > 2 * self.max_bytes.max(1 << 20) {
            self.req = Vec::new();
        }
        for &i in &self.active {
            let s = &mut self.streams[i];
            s.entries.clear();
            s.count = 0;
            if s.entries.capacity() > (1 << 20) {
                s.entries = Vec::new();
            }
        }
        self.active.clear();
        let mut updates =
            Vec::with_capacity(self.opens.len() + self.offsets.len() + self.closes.len());
        updates.append(&mut self.opens);
        updates.extend(
            self.offsets
                .drain(..)
                .map(|(key, offset, fp)| Update::Offset { key, offset, fp }),
        );
        updates.append(&mut self.closes);
        let started = self.started.take().unwrap_or_else(Instant::now);
        self.entries = 0;
        self.line_bytes = 0;
        if seq.is_multiple_of(64) {
            self.forget_idle_streams();
        }
        Batch {
            seq,
            body,
            entries,
            line_bytes,
            streams,
            updates,
            started,
        }
    }

    /// Drops the buffers of streams unused for the last 64 batches, so a
    /// node with pod churn does not keep every stream it ever saw.
    fn forget_idle_streams(&mut self) {
        let cutoff = self.seq.saturating_sub(64);
        if self.streams.iter().all(|s| s.last_batch >= cutoff) {
            return;
        }
        self.streams.retain(|s| s.last_batch >= cutoff);
        self.index.clear();
        for (i, s) in self.streams.iter().enumerate() {
            self.index.entry(s.hash).or_default().push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_proto::logproto::PushRequest;
    use prost::Message;

    fn decode(b: &Batch, compressed: bool) -> PushRequest {
        let raw = if compressed {
            snap::raw::Decoder::new().decompress_vec(&b.body).unwrap()
        } else {
            b.body.to_vec()
        };
        PushRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn encodes_what_prost_decodes() {
        let mut b = Batcher::new(1 << 20, true);
        let a = Labels::from_pairs([("app", "a")]);
        let c = Labels::from_pairs([("app", "c")]);
        let md = Labels::from_pairs([("trace_id", "t1")]);
        b.push_labels(&a, 1_700_000_000_123_456_789, "first", &Labels::new());
        b.push_labels(&c, 0, "", &md);
        b.push_labels(&a, -1, "ünïcode", &Labels::new());
        let batch = b.flush();
        assert_eq!((batch.entries, batch.streams, batch.seq), (3, 2, 1));
        let req = decode(&batch, true);
        assert_eq!(req.streams.len(), 2);
        assert_eq!(req.streams[0].labels, r#"{app="a"}"#);
        let e = &req.streams[0].entries;
        assert_eq!(e[0].line, "first");
        let ts = e[0].timestamp.unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_456_789));
        let ts = e[1].timestamp.unwrap();
        assert_eq!((ts.seconds, ts.nanos), (-1, 999_999_999));
        assert_eq!(e[1].line, "ünïcode");
        let e = &req.streams[1].entries[0];
        assert_eq!(e.structured_metadata[0].name, "trace_id");
        assert_eq!(e.structured_metadata[0].value, "t1");
        assert_eq!(e.timestamp.unwrap_or_default().seconds, 0);

        // Buffers are reused and the next batch holds only new entries.
        b.push_labels(&c, 5, "again", &Labels::new());
        let batch = b.flush();
        assert_eq!(batch.seq, 2);
        let req = decode(&batch, true);
        assert_eq!(req.streams.len(), 1);
        assert_eq!(req.streams[0].entries[0].line, "again");
    }

    #[test]
    fn updates_are_ordered_and_coalesced() {
        let mut b = Batcher::new(10, false);
        assert!(b.is_empty());
        let mut slot = (0, 0);
        b.offset(&mut slot, 1, 10, Fingerprint::default());
        b.offset(&mut slot, 1, 20, Fingerprint::default());
        b.close(Update::Close { key: 1 });
        b.push_text(7, "{a=\"b\"}", 1, "0123456789", None);
        assert!(b.is_full());
        let batch = b.flush();
        assert_eq!(batch.updates.len(), 2);
        assert!(matches!(
            batch.updates[0],
            Update::Offset {
                key: 1,
                offset: 20,
                ..
            }
        ));
        assert!(matches!(batch.updates[1], Update::Close { key: 1 }));
        assert_eq!(
            decode(&batch, false).streams[0].entries[0].line,
            "0123456789"
        );
        b.offset(&mut slot, 1, 30, Fingerprint::default());
        let batch = b.flush();
        assert!(batch.body.is_empty());
        assert_eq!(batch.updates.len(), 1);
    }

    #[test]
    fn batches_never_exceed_their_size() {
        let mut b = Batcher::new(100, false);
        let md = Labels::from_pairs([("trace_id", "0123456789")]);
        let mut slot = (0, 0);
        let mut lines = Vec::new();
        let mut batches = Vec::new();
        for i in 0..50u64 {
            let line = "x".repeat((i as usize * 7) % 40);
            b.push_labels(&Labels::from_pairs([("a", "b")]), i as i64, &line, &md);
            b.offset(&mut slot, 1, i + 1, Fingerprint::default());
            lines.push(line);
            while let Some(r) = b.take_ready() {
                batches.push(r);
            }
            if b.is_full() {
                batches.push(b.flush());
            }
        }
        batches.push(b.flush());
        let mut got = Vec::new();
        let mut last_offset = 0;
        for batch in &batches {
            assert!(batch.line_bytes <= 100, "{}", batch.line_bytes);
            let req = decode(batch, false);
            let mut bytes = 0;
            for s in &req.streams {
                for e in &s.entries {
                    bytes += e.line.len() + "trace_id0123456789".len();
                    got.push(e.line.clone());
                }
            }
            assert_eq!(bytes, batch.line_bytes);
            // A batch's offset covers exactly the entries in it and before.
            for u in &batch.updates {
                if let Update::Offset { offset, .. } = u {
                    assert_eq!(*offset as usize, got.len());
                    last_offset = *offset;
                }
            }
        }
        assert_eq!(got, lines);
        assert_eq!(last_offset, 50);
        // One entry larger than the size still goes, alone.
        b.push_text(1, "{a=\"b\"}", 1, "small", None);
        b.push_text(1, "{a=\"b\"}", 2, &"y".repeat(500), None);
        let first = b.take_ready().unwrap();
        assert_eq!(first.entries, 1);
        assert!(b.take_ready().is_none());
        assert_eq!(b.flush().entries, 1);
    }

    #[test]
    fn idle_streams_are_forgotten() {
        let mut b = Batcher::new(1 << 20, false);
        b.push_text(1, "{a=\"1\"}", 1, "x", None);
        b.flush();
        for _ in 0..200 {
            b.push_text(2, "{a=\"2\"}", 1, "y", None);
            b.flush();
        }
        assert_eq!(b.streams.len(), 1);
        b.push_text(1, "{a=\"1\"}", 1, "x", None);
        let req = decode(&b.flush(), false);
        assert_eq!(req.streams[0].labels, "{a=\"1\"}");
    }
}
