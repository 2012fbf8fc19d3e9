//! Loki's validation of pushed streams and entries, with Loki's error
//! texts. Everything here depends only on the request and the tenant's
//! limits, so it runs in the request handler, in parallel; rules that
//! depend on what is already stored (active stream limit, out-of-order
//! window, duplicates) are applied by the WAL writer.
//!
//! Streams with the same labels are merged, so clients that send one stream
//! object per line (pino-loki does) cost one stream.
//!
//! Structured metadata is checked against the limits as sent, then sorted.
//! With `discover_log_levels` (and `allow_structured_metadata`)
//! every accepted entry gets its level as the metadata pair
//! `detected_level`, appended last, by Loki's rules
//! ([`larch_query::level`]); a `detected_level` the client sent is kept,
//! normalised (`WARNING` becomes `warn`). As in Loki, `detected_level`
//! pairs count towards the number of metadata pairs a client may send
//! but not towards their size, nor towards the bytes the rate limit
//! charges. A level can be as long as a label value and is stored with
//! every entry of the stream, so [`validate_metered`] charges each pair
//! (in the entry and in its WAL record) to the request's decode
//! [`Meter`] before it is added: a push of many small entries on a
//! stream with a long `level` label is refused like any push needing too
//! much memory.
//!
//! However many entries a request gets wrong, the response stays small and
//! cheap: a rejected entry costs a counter, and a message is formatted only
//! for the first [`MAX_ERRORS_PER_STREAM`] rejections of a stream (then one
//! line counts the stream's total, as Loki's ingester words it) and only
//! while the messages fit in [`MAX_ERROR_BYTES`]; text quoted from the
//! request (labels, names, values) is cut at [`MAX_QUOTED`] bytes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use larch_go::labels::is_valid_label_name;
use larch_query::level::{DETECTED_LEVEL, LevelDetector, known_level, stream_level};
use larch_query::{LabelSet, parse_labels};

use crate::config::Limits;
use crate::encoding::{FIXED_LEVELS, fixed_level_meta, put_bytes};
use crate::push::meter::Meter;
use crate::push::{DecodeError, Push, PushStream, StreamLabels};
use crate::wal::record::WalEntry;

/// Labels consulted, in order, to name a stream's service when it has no
/// `service_name` label (Loki's `discover_service_name` default).
const SERVICE_NAME_SOURCES: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Why entries were discarded: the `reason` label of
/// `larch_discarded_entries_total`, with Loki's reason names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Labels text could not be parsed or a name is invalid.
    InvalidLabels,
    /// No labels left after removing empty ones.
    MissingLabels,
    /// A label name appears twice.
    DuplicateLabelNames,
    /// Too many labels.
    MaxLabelNamesPerSeries,
    /// A label name is too long.
    LabelNameTooLong,
    /// A label value is too long.
    LabelValueTooLong,
    /// A line is over `max_line_size`.
    LineTooLong,
    /// Older than `reject_old_samples_max_age`.
    GreaterThanMaxSampleAge,
    /// Newer than now + `creation_grace_period`.
    TooFarInFuture,
    /// Structured metadata not allowed.
    DisallowedStructuredMetadata,
    /// Structured metadata over its size limit.
    StructuredMetadataTooLarge,
    /// Too many structured metadata pairs.
    StructuredMetadataTooMany,
    /// Tenant over its ingestion rate.
    RateLimited,
    /// Tenant over its active stream limit.
    StreamLimit,
    /// Behind the out-of-order window.
    TooFarBehind,
    /// A request that can never be accepted whole: its body is over the
    /// size limits, or the bytes it would store exceed the tenant's burst.
    RequestBodyTooLarge,
}

impl Reason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub const ALL: [Reason; 16] = [
        Reason::InvalidLabels,
        Reason::MissingLabels,
        Reason::DuplicateLabelNames,
        Reason::MaxLabelNamesPerSeries,
        Reason::LabelNameTooLong,
        Reason::LabelValueTooLong,
        Reason::LineTooLong,
        Reason::GreaterThanMaxSampleAge,
        Reason::TooFarInFuture,
        Reason::DisallowedStructuredMetadata,
        Reason::StructuredMetadataTooLarge,
        Reason::StructuredMetadataTooMany,
        Reason::RateLimited,
        Reason::StreamLimit,
        Reason::TooFarBehind,
        Reason::RequestBodyTooLarge,
    ];

    /// The metric label value (Loki's names).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidLabels => "invalid_labels",
            Reason::MissingLabels => "missing_labels",
            Reason::DuplicateLabelNames => "duplicate_label_names",
            Reason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            Reason::LabelNameTooLong => "label_name_too_long",
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::LineTooLong => "line_too_long",
            Reason::GreaterThanMaxSampleAge => "greater_than_max_sample_age",
            Reason::TooFarInFuture => "too_far_in_future",
            Reason::DisallowedStructuredMetadata => "disallowed_structured_metadata",
            Reason::StructuredMetadataTooLarge => "structured_metadata_too_large",
            Reason::StructuredMetadataTooMany => "structured_metadata_too_many",
            Reason::RateLimited => "rate_limited",
            Reason::StreamLimit => "stream_limit",
            Reason::TooFarBehind => "too_far_behind",
            Reason::RequestBodyTooLarge => "request_body_too_large",
        }
    }

    /// Whether the client should retry (429) rather than give up (400).
    pub fn is_retryable(self) -> bool {
        matches!(self, Reason::RateLimited | Reason::StreamLimit)
    }
}

/// A validated stream: canonical labels and accepted entries.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStream {
    /// Labels, sorted, empty values removed, `service_name` added; shared
    /// with the [`LabelCache`] and the stream once stored.
    pub labels: Arc<LabelSet>,
    /// `labels.fingerprint()`, computed once.
    pub fp: u64,
    /// Entries in request order.
    pub entries: Vec<WalEntry>,
}

/// Most messages listed for one stream's entries; the rest are counted in
/// a last line per stream, in the words of Loki's ingester (whose
/// `max_returned_stream_errors` defaults to the same 10).
pub const MAX_ERRORS_PER_STREAM: usize = 10;

/// Most bytes of messages in one response: past them, messages are no
/// longer formatted, only counted.
pub const MAX_ERROR_BYTES: usize = 32 << 10;

/// Longest label text, name or value quoted in a message (a longer one is
/// cut, with `...`).
pub const MAX_QUOTED: usize = 1024;

/// The outcome of validating a push.
#[derive(Debug, Default)]
pub struct Validated {
    /// Streams with at least one accepted entry.
    pub streams: Vec<ValidStream>,
    /// Error messages, in Loki's words: at most [`MAX_ERRORS_PER_STREAM`]
    /// entries per stream, at most [`MAX_ERROR_BYTES`] in all.
    pub errors: Vec<String>,
    /// Bytes of `errors`.
    pub error_bytes: usize,
    /// Messages not formatted because `errors` was full.
    pub unlisted_errors: u64,
    /// Discarded entries and bytes by reason.
    pub discarded: HashMap<Reason, (u64, u64)>,
    /// Entries in the request.
    pub total_entries: u64,
    /// Bytes (lines plus metadata) accepted.
    pub accepted_bytes: u64,
    /// The push's body, which the accepted lines are slices of (see
    /// [`crate::push::SourceBody`]); `None` when they own their bytes.
    pub source: Option<crate::push::SourceBody>,
}

impl Validated {
    /// Entries accepted.
    pub fn accepted_entries(&self) -> u64 {
        self.streams.iter().map(|s| s.entries.len() as u64).sum()
    }

    /// Records a discard.
    pub fn discard(&mut self, reason: Reason, entries: u64, bytes: u64) {
        let d = self.discarded.entry(reason).or_default();
        d.0 += entries;
        d.1 += bytes;
    }

    /// Whether any discard asks the client to retry.
    pub fn has_retryable(&self) -> bool {
        self.discarded.keys().any(|r| r.is_retryable())
    }

    /// Adds the message `make` formats if there is room for messages left;
    /// otherwise only counts it (without formatting it).
    pub fn report(&mut self, make: impl FnOnce() -> String) {
        if self.error_bytes < MAX_ERROR_BYTES {
            let msg = make();
            self.error_bytes += msg.len() + 1;
            self.errors.push(msg);
        } else {
            self.unlisted_errors += 1;
        }
    }
}

/// Discards of one stream, counted per reason without a map lookup per
/// entry.
#[derive(Default)]
struct Tally([(u64, u64); Reason::ALL.len()]);

impl Tally {
    fn add(&mut self, reason: Reason, bytes: usize) {
        let t = &mut self.0[reason as usize];
        t.0 += 1;
        t.1 += bytes as u64;
    }

    fn into(self, out: &mut Validated) {
        for (reason, (n, bytes)) in Reason::ALL.iter().zip(self.0) {
            if n > 0 {
                out.discard(*reason, n, bytes);
            }
        }
    }
}

/// `text`, cut to at most [`MAX_QUOTED`] bytes (at a character boundary)
/// with `...` when it is longer.
pub fn quoted(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_QUOTED {
        return text.into();
    }
    let mut cut = MAX_QUOTED;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut]).into()
}

/// Validates `push` of `tenant` against `limits` at time `now` (Unix ns).
/// However many entries it rejects, it formats a bounded number of
/// messages: see [`Validated::errors`]. For trusted input: nothing is
/// charged for the levels it adds (see [`validate_metered`]).
pub fn validate(push: Push, limits: &Limits, now: i64, tenant: &str) -> Validated {
    // Only a meter refuses, and there is none.
    validate_inner(push, limits, now, tenant, &mut Charge::none(), None).unwrap_or_default()
}

/// [`validate`], charging the `detected_level` pairs it adds to `meter`
/// before adding them (the meter's error when it refuses: 413 or 503),
/// and taking labels texts parsed before from `cache` (adding new ones).
pub fn validate_metered(
    push: Push,
    limits: &Limits,
    now: i64,
    tenant: &str,
    meter: &mut Meter,
    cache: &LabelCache,
) -> Result<Validated, DecodeError> {
    let mut charge = Charge {
        meter: Some(meter),
        unpaid: 0,
    };
    let v = validate_inner(push, limits, now, tenant, &mut charge, Some(cache))?;
    charge.pay()?;
    Ok(v)
}

/// Level bytes charged to a meter in batches, so that a push does not
/// touch the shared budget once per entry: what is allocated runs ahead
/// of what is charged by less than [`Charge::BATCH`].
struct Charge<'m> {
    meter: Option<&'m mut Meter>,
    unpaid: usize,
}

impl Charge<'_> {
    const BATCH: usize = 64 << 10;

    fn none() -> Charge<'static> {
        Charge {
            meter: None,
            unpaid: 0,
        }
    }

    /// Charges an entry's `detected_level` pair of `pair` encoded bytes:
    /// in the entry and in the WAL record, plus the entry's metadata
    /// buffer when the pair is its first.
    fn level(&mut self, pair: usize) -> Result<(), DecodeError> {
        if self.meter.is_none() {
            return Ok(());
        }
        self.unpaid = self.unpaid.saturating_add(pair.saturating_mul(2) + 16);
        if self.unpaid >= Self::BATCH {
            self.pay()?;
        }
        Ok(())
    }

    fn pay(&mut self) -> Result<(), DecodeError> {
        if let Some(m) = self.meter.as_deref_mut() {
            m.charge(self.unpaid)?;
        }
        self.unpaid = 0;
        Ok(())
    }
}

fn validate_inner(
    push: Push,
    limits: &Limits,
    now: i64,
    tenant: &str,
    charge: &mut Charge<'_>,
    cache: Option<&LabelCache>,
) -> Result<Validated, DecodeError> {
    let mut out = Validated {
        total_entries: push.entry_count() as u64,
        ..Validated::default()
    };
    let Push {
        streams, source, ..
    } = push;
    out.source = source;
    let mut by_fp: HashMap<u64, usize> = HashMap::new();
    let mut levels =
        (limits.allow_structured_metadata && limits.discover_log_levels).then(LevelDetector::new);
    for stream in streams {
        let n = stream.entries.len() as u64;
        let bytes: u64 = stream.entries.iter().map(|e| e.sent_len() as u64).sum();
        let Canonical { labels, fp, .. } = match stream_labels(&stream, limits, cache) {
            Ok(l) => l,
            Err(e) => {
                out.report(|| e.to_string());
                out.discard(e.reason(), n, bytes);
                continue;
            }
        };
        let (entries, bytes) = validate_entries(
            stream,
            &labels,
            limits,
            (now, tenant),
            levels.as_mut(),
            charge,
            &mut out,
        )?;
        if entries.is_empty() {
            continue;
        }
        out.accepted_bytes += bytes;
        match by_fp.get(&fp) {
            Some(&i) => out.streams[i].entries.extend(entries),
            None => {
                by_fp.insert(fp, out.streams.len());
                out.streams.push(ValidStream {
                    labels,
                    fp,
                    entries,
                });
            }
        }
    }
    Ok(out)
}

/// Why a stream's labels are invalid; formatted only when reported.
enum LabelError {
    Parse(String, String),
    BadName(String, String),
    Missing,
    Duplicate(String, String),
    TooMany(String, usize, usize),
    NameTooLong(String, String),
    ValueTooLong(String, String),
}

impl LabelError {
    fn reason(&self) -> Reason {
        match self {
            LabelError::Parse(..) | LabelError::BadName(..) => Reason::InvalidLabels,
            LabelError::Missing => Reason::MissingLabels,
            LabelError::Duplicate(..) => Reason::DuplicateLabelNames,
            LabelError::TooMany(..) => Reason::MaxLabelNamesPerSeries,
            LabelError::NameTooLong(..) => Reason::LabelNameTooLong,
            LabelError::ValueTooLong(..) => Reason::LabelValueTooLong,
        }
    }
}

impl std::fmt::Display for LabelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = |s: &String| quoted(s).into_owned();
        match self {
            LabelError::Parse(text, e) => {
                write!(f, "error parsing labels '{}' with error: {}", q(text), q(e))
            }
            LabelError::BadName(text, name) => write!(
                f,
                "error parsing labels '{}' with error: invalid label name '{}'",
                q(text),
                q(name)
            ),
            LabelError::Missing => {
                f.write_str("error at least one label pair is required per stream")
            }
            LabelError::Duplicate(text, name) => write!(
                f,
                "stream '{}' has duplicate label name: '{}'",
                q(text),
                q(name)
            ),
            LabelError::TooMany(text, n, limit) => write!(
                f,
                "entry for stream '{}' has {n} label names; limit {limit}",
                q(text)
            ),
            LabelError::NameTooLong(text, name) => write!(
                f,
                "stream '{}' has label name too long: '{}'",
                q(text),
                q(name)
            ),
            LabelError::ValueTooLong(text, value) => write!(
                f,
                "stream '{}' has label value too long: '{}'",
                q(text),
                q(value)
            ),
        }
    }
}

/// A stream's canonical labels: sorted, empty values removed,
/// `service_name` added.
#[derive(Clone, Debug)]
struct Canonical {
    labels: Arc<LabelSet>,
    /// `labels.fingerprint()`.
    fp: u64,
    /// Whether `service_name` was added (the limits apply to the labels
    /// as sent).
    service_added: bool,
}

/// Labels texts already parsed into canonical labels, shared by every
/// request: a client sends the same few texts over and over, so each is
/// parsed once rather than once per stream per push. Only texts that
/// parse are kept; the limits (which a tenant's overrides may change) are
/// checked on every use. Bounded: once the texts held pass
/// [`LabelCache::MAX_BYTES`], it starts over empty.
#[derive(Debug, Default)]
pub struct LabelCache {
    inner: parking_lot::Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: HashMap<Box<str>, Canonical>,
    bytes: usize,
}

impl LabelCache {
    /// Most bytes held, texts and parsed sets together (a set of eight
    /// labels takes about 900 bytes beside its 200-byte text, see
    /// `LabelCache::entry_bytes`): some 7,000 sets of Kubernetes labels,
    /// far more than the streams one client pushes in turn. A store fed
    /// more distinct texts than that starts over again and again and
    /// gains little from the cache; at a million streams, 32 MiB here
    /// held 38 MiB more RSS than 8 (BENCHMARKS.md, "Cardinality").
    pub const MAX_BYTES: usize = 8 << 20;

    /// What an entry holds on the heap, about: the text, the set's vector
    /// and its two strings per label (each allocation at least 32 bytes),
    /// the map's slot.
    fn entry_bytes(text: &str, c: &Canonical) -> usize {
        let strings: usize = c
            .labels
            .iter()
            .map(|l| l.name.len().max(24) + l.value.len().max(24) + 16)
            .sum();
        text.len() + 16 + 48 * c.labels.len() + strings + 64
    }

    /// An empty cache.
    pub fn new() -> LabelCache {
        LabelCache::default()
    }

    fn get(&self, text: &str) -> Option<Canonical> {
        self.inner.lock().map.get(text).cloned()
    }

    fn insert(&self, text: &str, c: &Canonical) {
        let bytes = Self::entry_bytes(text, c);
        let mut inner = self.inner.lock();
        if inner.bytes + bytes > Self::MAX_BYTES {
            inner.map.clear();
            inner.bytes = 0;
        }
        if inner.map.insert(text.into(), c.clone()).is_none() {
            inner.bytes += bytes;
        }
    }

    /// Texts held.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Canonical labels of a stream, or why they are invalid.
fn stream_labels(
    stream: &PushStream,
    limits: &Limits,
    cache: Option<&LabelCache>,
) -> Result<Canonical, LabelError> {
    let text_of = || match &stream.labels {
        StreamLabels::Text(t) => t.clone(),
        StreamLabels::Pairs(p) => pairs_text(p),
    };
    let cached = match (&stream.labels, cache) {
        (StreamLabels::Text(t), Some(cache)) => cache.get(t),
        _ => None,
    };
    let c = match cached {
        Some(c) => c,
        None => {
            let c = parse_stream_labels(stream)?;
            if let (StreamLabels::Text(t), Some(cache)) = (&stream.labels, cache) {
                cache.insert(t, &c);
            }
            c
        }
    };
    let sent = c.labels.len() - usize::from(c.service_added);
    if sent > limits.max_label_names_per_series {
        return Err(LabelError::TooMany(
            text_of(),
            sent,
            limits.max_label_names_per_series,
        ));
    }
    for l in c.labels.iter() {
        if c.service_added && l.name == "service_name" {
            continue;
        }
        if l.name.len() > limits.max_label_name_length {
            return Err(LabelError::NameTooLong(text_of(), l.name.clone()));
        }
        if l.value.len() > limits.max_label_value_length {
            return Err(LabelError::ValueTooLong(text_of(), l.value.clone()));
        }
    }
    Ok(c)
}

/// Parses a stream's labels (the rules that do not depend on limits).
fn parse_stream_labels(stream: &PushStream) -> Result<Canonical, LabelError> {
    // The text messages quote, formatted only for one.
    let text_of = || match &stream.labels {
        StreamLabels::Text(t) => t.clone(),
        StreamLabels::Pairs(p) => pairs_text(p),
    };
    let pairs = match &stream.labels {
        StreamLabels::Text(t) => {
            parse_labels(t).map_err(|e| LabelError::Parse(t.clone(), e.to_string()))?
        }
        StreamLabels::Pairs(p) => {
            if let Some((bad, _)) = p.iter().find(|(n, _)| !is_valid_label_name(n)) {
                return Err(LabelError::BadName(pairs_text(p), bad.clone()));
            }
            p.clone()
        }
    };
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if pairs.is_empty() {
        return Err(LabelError::Missing);
    }
    let mut labels = LabelSet::from_unique_pairs(pairs)
        .map_err(|dup| LabelError::Duplicate(text_of(), dup.to_string()))?;
    let service_added = labels.get("service_name").is_none();
    if service_added {
        let service = SERVICE_NAME_SOURCES
            .iter()
            .find_map(|n| labels.get(n))
            .unwrap_or("unknown_service")
            .to_string();
        labels.insert("service_name".to_string(), service);
    }
    Ok(Canonical {
        fp: labels.fingerprint(),
        labels: Arc::new(labels),
        service_added,
    })
}

fn pairs_text(pairs: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{n}={v:?}");
    }
    s.push('}');
    s
}

/// Bytes of an encoded metadata pair.
fn encoded_pair_len(name: &str, value: &str) -> usize {
    let varint = |n: usize| (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize;
    varint(name.len()) + name.len() + varint(value.len()) + value.len()
}

/// The stream's accepted entries, and the bytes they count for the rate
/// limit (lines and encoded metadata, `detected_level` left out). With
/// `levels`, each entry gets its `detected_level` (see the module docs),
/// charged first; the charge's error stops validation.
fn validate_entries(
    stream: PushStream,
    labels: &LabelSet,
    limits: &Limits,
    (now, tenant): (i64, &str),
    mut levels: Option<&mut LevelDetector>,
    charge: &mut Charge<'_>,
    out: &mut Validated,
) -> Result<(Vec<WalEntry>, u64), DecodeError> {
    // Formatted only when a message names the stream.
    let shown = Shown(labels);
    let oldest = if limits.reject_old_samples {
        now.saturating_sub(limits.reject_old_samples_max_age.as_nanos_i64())
    } else {
        i64::MIN
    };
    let newest = now.saturating_add(limits.creation_grace_period.as_nanos_i64());
    let max_line = limits.max_line_size.0 as usize;
    let total = stream.entries.len();
    let mut accepted_bytes = 0u64;
    // A failure that ends the request (the level pairs' charge); the
    // entries after it are dropped unread.
    let mut failed: Option<DecodeError> = None;
    // The level of the stream's own level label, if it has one.
    let labelled = levels.as_ref().and_then(|_| stream_level(labels));
    let mut tally = Tally::default();
    let mut rejected = 0usize;
    // Lists the first few rejections of the stream; counts the rest.
    let mut reject =
        |reason: Reason, bytes: usize, out: &mut Validated, msg: &dyn Fn() -> String| {
            tally.add(reason, bytes);
            rejected += 1;
            if rejected <= MAX_ERRORS_PER_STREAM {
                out.report(msg);
            }
        };
    // An entry and its WAL form have the same size, so the accepted
    // entries are collected into the allocation the decoded ones came in.
    let accepted: Vec<WalEntry> = stream.entries.into_iter().filter_map(|mut e| {
        if failed.is_some() {
            return None;
        }
        let line_bytes = e.sent_len();
        if max_line > 0 && line_bytes > max_line {
            if limits.max_line_size_truncate {
                // At a character boundary.
                e.line.truncate(max_line);
            } else {
                reject(Reason::LineTooLong, line_bytes, out, &|| {
                    format!(
                        "max entry size '{max_line}' bytes exceeded for stream '{shown}' while adding an entry with length '{line_bytes}' bytes"
                    )
                });
                return None;
            }
        }
        if e.ts < oldest {
            reject(Reason::GreaterThanMaxSampleAge, line_bytes, out, &|| {
                format!(
                    "entry for stream '{shown}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                    rfc3339(e.ts),
                    rfc3339(oldest)
                )
            });
            return None;
        }
        if e.ts > newest {
            reject(Reason::TooFarInFuture, line_bytes, out, &|| {
                format!(
                    "entry for stream '{shown}' has timestamp too new: {}",
                    rfc3339(e.ts)
                )
            });
            return None;
        }
        if !e.metadata.is_empty() {
            if !limits.allow_structured_metadata {
                reject(
                    Reason::DisallowedStructuredMetadata,
                    line_bytes,
                    out,
                    &|| {
                        format!(
                            "stream '{shown}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
                        )
                    },
                );
                return None;
            }
            let size: usize = e
                .metadata
                .iter()
                .filter(|(n, _)| n != DETECTED_LEVEL)
                .map(|(n, v)| n.len() + v.len())
                .sum();
            let max_size = limits.max_structured_metadata_size.0 as usize;
            if max_size > 0 && size > max_size {
                reject(Reason::StructuredMetadataTooLarge, line_bytes, out, &|| {
                    format!(
                        "stream '{shown}' has structured metadata too large: '{size}' bytes, limit: '{max_size}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it."
                    )
                });
                return None;
            }
            let max_count = limits.max_structured_metadata_entries_count;
            if max_count > 0 && e.metadata.len() > max_count {
                let count = e.metadata.len();
                reject(Reason::StructuredMetadataTooMany, line_bytes, out, &|| {
                    format!(
                        "stream '{shown}' has too many structured metadata labels: '{count}', limit: '{max_count}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it."
                    )
                });
                return None;
            }
            e.metadata.sort();
        }
        if levels.is_some() {
            // Loki drops empty metadata before it looks for a level, so an
            // empty `detected_level` is replaced by the level found.
            e.metadata
                .retain(|(n, v)| !(n == DETECTED_LEVEL && v.is_empty()));
        }
        // Encoded size, and that of `detected_level` pairs, which the rate
        // limit ignores.
        let (mut size, mut level_bytes) = (0, 0);
        let mut has_level = false;
        for (n, v) in &mut e.metadata {
            if n == DETECTED_LEVEL {
                has_level = true;
                if levels.is_some()
                    && let Some(known) = known_level(v.as_bytes())
                    && v != known
                {
                    v.clear();
                    v.push_str(known);
                }
                level_bytes += encoded_pair_len(n, v);
            }
            size += encoded_pair_len(n, v);
        }
        let level = match levels.as_deref_mut() {
            Some(_) if has_level => None,
            Some(_) if labelled.is_some() => labelled,
            Some(d) => d.entry_level(&e.metadata, e.line.as_bytes()),
            None => None,
        };
        if let Some(level) = level {
            let pair = encoded_pair_len(DETECTED_LEVEL, level);
            if let Err(err) = charge.level(pair) {
                failed = Some(err);
                return None;
            }
            level_bytes += pair;
            size += pair;
        }
        let meta = match level {
            // The usual case: no pairs sent and one of the fixed levels,
            // whose encoding is shared (no allocation).
            Some(level) if e.metadata.is_empty() => {
                fixed_level_pair(level).unwrap_or_else(|| encode_pairs(&[], Some(level), size))
            }
            _ if e.metadata.is_empty() && level.is_none() => Bytes::new(),
            // One allocation of the exact size.
            _ => encode_pairs(&e.metadata, level, size),
        };
        debug_assert_eq!(meta.len(), size);
        accepted_bytes += (e.line.len() + meta.len() - level_bytes) as u64;
        Some(WalEntry {
            ts: e.ts,
            line: e.line,
            meta,
        })
    }).collect();
    if let Some(err) = failed {
        return Err(err);
    }
    tally.into(out);
    if rejected > MAX_ERRORS_PER_STREAM {
        out.report(|| {
            format!("user '{tenant}', total ignored: {rejected} out of {total} for stream: {shown}")
        });
    }
    Ok((accepted, accepted_bytes))
}

/// The encoded metadata of `pairs` followed by a `detected_level` pair
/// of `level`, `size` bytes in all.
fn encode_pairs(pairs: &[(String, String)], level: Option<&str>, size: usize) -> Bytes {
    let mut meta = Vec::with_capacity(size);
    for (n, v) in pairs {
        put_bytes(&mut meta, n.as_bytes());
        put_bytes(&mut meta, v.as_bytes());
    }
    if let Some(level) = level {
        put_bytes(&mut meta, DETECTED_LEVEL.as_bytes());
        put_bytes(&mut meta, level.as_bytes());
    }
    Bytes::from(meta)
}

/// The shared encoding of metadata holding only `detected_level=level`,
/// if `level` is one of the fixed levels (`encoding::FIXED_LEVELS`).
#[inline]
fn fixed_level_pair(level: &str) -> Option<Bytes> {
    // Levels found in lines are these very strings: their address settles
    // it before their bytes are compared.
    let i = FIXED_LEVELS
        .iter()
        .position(|&l| std::ptr::eq(l, level) || l == level)?;
    fixed_level_meta(i).map(Bytes::from_static)
}

/// A stream's labels as messages quote them (cut at [`MAX_QUOTED`]),
/// formatted only when a message is.
struct Shown<'a>(&'a LabelSet);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&quoted(&self.0.to_string()))
    }
}

/// Formats Unix ns as RFC3339 (UTC), as Loki's messages do.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => ns.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::PushEntry;

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn entry(ts: i64, line: &str) -> PushEntry {
        PushEntry::new(ts, line.to_string(), vec![])
    }

    fn text(labels: &str, entries: Vec<PushEntry>) -> PushStream {
        PushStream {
            labels: StreamLabels::Text(labels.to_string()),
            entries,
        }
    }

    fn run(streams: Vec<PushStream>, limits: &Limits) -> Validated {
        validate(Push::new(streams), limits, NOW, "fake")
    }

    #[test]
    fn accepted_entries_keep_the_allocation_they_were_decoded_in() {
        let entries: Vec<PushEntry> = (0..1000)
            .map(|i| {
                if i % 7 == 3 {
                    // Rejected: too far in the future.
                    entry(NOW + 86_400_000_000_000, "late")
                } else {
                    entry(NOW, "level=info ok")
                }
            })
            .collect();
        let at = entries.as_ptr() as usize;
        let v = run(vec![text(r#"{app="api"}"#, entries)], &Limits::default());
        assert_eq!(v.streams.len(), 1);
        let kept = &v.streams[0].entries;
        assert_eq!(kept.len(), 1000 - 143);
        assert_eq!(
            kept.as_ptr() as usize,
            at,
            "collected into a new allocation"
        );
        assert!(kept.iter().all(|e| e.line.as_bytes() == b"level=info ok"));
    }

    #[test]
    fn merges_same_stream_and_adds_service_name() {
        let v = run(
            vec![
                text(r#"{app="api", empty=""}"#, vec![entry(NOW, "a")]),
                PushStream {
                    labels: StreamLabels::Pairs(vec![("app".into(), "api".into())]),
                    entries: vec![entry(NOW, "b")],
                },
            ],
            &Limits::default(),
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(v.streams.len(), 1);
        assert_eq!(
            v.streams[0].labels.to_string(),
            r#"{app="api", service_name="api"}"#
        );
        assert_eq!(v.accepted_entries(), 2);
    }

    #[test]
    fn the_label_cache_starts_over_past_its_bound() {
        let cache = LabelCache::new();
        let mut most = 0;
        // Kubernetes-like label sets, each new: far more than the bound
        // holds.
        for i in 0..20_000 {
            let labels = format!(
                r#"{{namespace="team-{}", app="svc-{}", pod="svc-{i}-7d9f8b6c5d-x2k4p", container="main", node="node-{}", job="team/svc", stream="stdout"}}"#,
                i % 50,
                i % 400,
                i % 90
            );
            let stream = text(&labels, vec![entry(NOW, "a")]);
            assert!(stream_labels(&stream, &Limits::default(), Some(&cache)).is_ok());
            most = most.max(cache.len());
        }
        let bytes = cache.inner.lock().bytes;
        assert!(bytes <= LabelCache::MAX_BYTES, "{bytes}");
        // It filled up and started over at least once.
        assert!(most > cache.len(), "{most} {}", cache.len());
        assert!(most < 20_000, "{most}");
    }

    #[test]
    fn cached_labels_are_the_parsed_ones_and_limits_apply_on_every_use() {
        let cache = LabelCache::new();
        let with_cache = |streams: Vec<PushStream>, limits: &Limits| {
            validate_metered(
                Push::new(streams),
                limits,
                NOW,
                "fake",
                &mut Meter::unlimited(),
                &cache,
            )
            .unwrap()
        };
        let labels = r#"{app="api", pod="p-1", empty=""}"#;
        let plain = run(
            vec![text(labels, vec![entry(NOW, "a")])],
            &Limits::default(),
        );
        for _ in 0..2 {
            let v = with_cache(
                vec![text(labels, vec![entry(NOW, "a")])],
                &Limits::default(),
            );
            assert!(v.errors.is_empty(), "{:?}", v.errors);
            assert_eq!(v.streams[0].labels, plain.streams[0].labels);
            assert_eq!(v.streams[0].fp, plain.streams[0].fp);
            assert_eq!(v.streams[0].fp, v.streams[0].labels.fingerprint());
        }
        assert_eq!(cache.len(), 1);
        // Two labels were sent (service_name is added): a limit of two
        // passes, one does not, for the cached text as for a new one.
        let two = Limits {
            max_label_names_per_series: 2,
            ..Limits::default()
        };
        assert!(
            with_cache(vec![text(labels, vec![entry(NOW, "a")])], &two)
                .errors
                .is_empty()
        );
        let one = Limits {
            max_label_names_per_series: 1,
            ..Limits::default()
        };
        for (v, what) in [
            (
                with_cache(vec![text(labels, vec![entry(NOW, "a")])], &one),
                "cached",
            ),
            (
                run(vec![text(labels, vec![entry(NOW, "a")])], &one),
                "uncached",
            ),
        ] {
            assert!(v.streams.is_empty(), "{what}");
            assert_eq!(
                v.errors,
                vec![format!(
                    "entry for stream '{labels}' has 2 label names; limit 1"
                )],
                "{what}"
            );
        }
        let short = Limits {
            max_label_value_length: 2,
            ..Limits::default()
        };
        let v = with_cache(vec![text(labels, vec![entry(NOW, "a")])], &short);
        assert_eq!(v.discarded[&Reason::LabelValueTooLong], (1, 1));
        // Texts that do not parse are not kept.
        let v = with_cache(
            vec![text(r#"{a="b}"#, vec![entry(NOW, "x")])],
            &Limits::default(),
        );
        assert_eq!(v.discarded[&Reason::InvalidLabels], (1, 1));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn label_errors_in_lokis_words() {
        let l = Limits::default();
        let v = run(vec![text(r#"{a="b}"#, vec![entry(NOW, "x")])], &l);
        assert_eq!(
            v.errors,
            vec![
                r#"error parsing labels '{a="b}' with error: parse error at line 1, col 4: literal not terminated"#
            ]
        );
        assert_eq!(v.discarded[&Reason::InvalidLabels], (1, 1));
        let v = run(vec![text(r#"{a=""}"#, vec![entry(NOW, "x")])], &l);
        assert_eq!(
            v.errors,
            vec!["error at least one label pair is required per stream"]
        );
        let v = run(vec![text(r#"{a="1", a="2"}"#, vec![entry(NOW, "x")])], &l);
        assert_eq!(
            v.errors,
            vec![r#"stream '{a="1", a="2"}' has duplicate label name: 'a'"#]
        );
        let many: Vec<String> = (0..16).map(|i| format!("l{i}=\"v\"")).collect();
        let v = run(
            vec![text(
                &format!("{{{}}}", many.join(",")),
                vec![entry(NOW, "x")],
            )],
            &l,
        );
        assert!(
            v.errors[0].contains("has 16 label names; limit 15"),
            "{:?}",
            v.errors
        );
        let v = run(
            vec![PushStream {
                labels: StreamLabels::Pairs(vec![("a-b".into(), "c".into())]),
                entries: vec![entry(NOW, "x")],
            }],
            &l,
        );
        assert!(v.errors[0].contains("invalid label name 'a-b'"));
        assert!(v.streams.is_empty());
    }

    #[test]
    fn entry_errors_reject_only_the_entry() {
        let l = Limits {
            max_line_size: larch_config::ByteSize(5),
            ..Limits::default()
        };
        let v = run(
            vec![text(
                r#"{app="a"}"#,
                vec![
                    entry(NOW, "ok"),
                    entry(NOW, "too long line"),
                    entry(NOW - 8 * 86_400_000_000_000, "old"),
                    entry(NOW + 3_600_000_000_000, "fut"),
                ],
            )],
            &l,
        );
        assert_eq!(v.accepted_entries(), 1);
        assert_eq!(v.errors.len(), 3);
        assert!(v.errors[0].starts_with(
            "max entry size '5' bytes exceeded for stream '{app=\"a\", service_name=\"a\"}'"
        ));
        assert!(v.errors[1].contains("has timestamp too old: 2027-01-07T08:00:00Z, oldest acceptable timestamp is: 2027-01-08T08:00:00Z"), "{}", v.errors[1]);
        assert!(v.errors[2].contains("has timestamp too new"));
        assert!(!v.has_retryable());
    }

    #[test]
    fn truncation_keeps_utf8() {
        let l = Limits {
            max_line_size: larch_config::ByteSize(4),
            max_line_size_truncate: true,
            ..Limits::default()
        };
        let v = run(vec![text(r#"{app="a"}"#, vec![entry(NOW, "abcé")])], &l);
        assert_eq!(v.streams[0].entries[0].line, "abc");
    }

    #[test]
    fn structured_metadata_rules() {
        let mut l = Limits::default();
        let with_meta = |pairs: Vec<(&str, &str)>| {
            PushEntry::new(
                NOW,
                "x".into(),
                pairs
                    .into_iter()
                    .map(|(a, b)| (a.into(), b.into()))
                    .collect(),
            )
        };
        let v = run(
            vec![text(
                r#"{app="a"}"#,
                vec![with_meta(vec![("z", "1"), ("a", "2")])],
            )],
            &l,
        );
        let pairs: Vec<_> = larch_query::decode_metadata(&v.streams[0].entries[0].meta).collect();
        assert_eq!(
            pairs,
            vec![("a", "2"), ("z", "1"), ("detected_level", "unknown")]
        );
        l.max_structured_metadata_entries_count = 1;
        let v = run(
            vec![text(
                r#"{app="a"}"#,
                vec![with_meta(vec![("z", "1"), ("a", "2")])],
            )],
            &l,
        );
        assert!(v.errors[0].contains("too many structured metadata labels: '2', limit: '1'"));
        l.allow_structured_metadata = false;
        let v = run(
            vec![text(r#"{app="a"}"#, vec![with_meta(vec![("z", "1")])])],
            &l,
        );
        assert!(
            v.errors[0].contains("includes structured metadata, but this feature is disallowed")
        );
    }

    fn metadata_of(v: &Validated) -> Vec<Vec<(String, String)>> {
        v.streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| {
                larch_query::decode_metadata(&e.meta)
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn levels_are_discovered_as_loki_discovers_them() {
        let l = Limits::default();
        let v = run(
            vec![
                text(
                    r#"{app="a"}"#,
                    vec![
                        entry(NOW, "level=warn msg=x"),
                        PushEntry::new(NOW, "x".into(), pairs(&[("z", "1"), ("a", "2")])),
                        // A level the client sent is kept, normalised.
                        PushEntry::new(
                            NOW,
                            "error".into(),
                            pairs(&[("detected_level", "WARNING")]),
                        ),
                        PushEntry::new(NOW, "error".into(), pairs(&[("detected_level", "Notice")])),
                        // Empty values are passed over.
                        PushEntry::new(NOW, "info".into(), pairs(&[("level", ""), ("b", "1")])),
                        PushEntry::new(NOW, "info".into(), pairs(&[("detected_level", "")])),
                        PushEntry::new(NOW, "x".into(), pairs(&[("severity_number", "17")])),
                    ],
                ),
                // A level label wins over the line.
                text(r#"{app="b", level="WARNING"}"#, vec![entry(NOW, "ERROR")]),
            ],
            &l,
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(
            metadata_of(&v),
            vec![
                pairs(&[("detected_level", "warn")]),
                pairs(&[("a", "2"), ("z", "1"), ("detected_level", "unknown")]),
                pairs(&[("detected_level", "warn")]),
                pairs(&[("detected_level", "Notice")]),
                pairs(&[("b", "1"), ("level", ""), ("detected_level", "info")]),
                pairs(&[("detected_level", "info")]),
                pairs(&[("severity_number", "17"), ("detected_level", "error")]),
                pairs(&[("detected_level", "warn")]),
            ]
        );
    }

    #[test]
    fn no_levels_without_discovery_or_metadata() {
        let sent = || {
            vec![text(
                r#"{app="a"}"#,
                vec![
                    entry(NOW, "level=warn msg=x"),
                    PushEntry::new(NOW, "x".into(), pairs(&[("detected_level", "WARNING")])),
                ],
            )]
        };
        let off = Limits {
            discover_log_levels: false,
            ..Limits::default()
        };
        let v = run(sent(), &off);
        assert_eq!(
            metadata_of(&v),
            vec![vec![], pairs(&[("detected_level", "WARNING")])]
        );
        // Without structured metadata there is nowhere to put a level.
        let disallowed = Limits {
            allow_structured_metadata: false,
            ..Limits::default()
        };
        let v = run(sent(), &disallowed);
        assert_eq!(metadata_of(&v), vec![Vec::<(String, String)>::new()]);
        assert_eq!(v.discarded[&Reason::DisallowedStructuredMetadata].0, 1);
    }

    #[test]
    fn detected_level_counts_as_a_pair_but_not_as_bytes() {
        let with = |meta: &[(&str, &str)]| {
            vec![text(
                r#"{app="a"}"#,
                vec![PushEntry::new(NOW, "x".into(), pairs(meta))],
            )]
        };
        let l = Limits {
            max_structured_metadata_size: larch_config::ByteSize(5),
            max_structured_metadata_entries_count: 1,
            ..Limits::default()
        };
        let v = run(with(&[("detected_level", "critical")]), &l);
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        let v = run(with(&[("ab", "cdef")]), &l);
        assert!(v.errors[0].contains("structured metadata too large: '6' bytes"));
        let v = run(with(&[("a", "1"), ("detected_level", "x")]), &l);
        assert!(v.errors[0].contains("too many structured metadata labels: '2'"));
        // The rate limit charges the same bytes with or without the level.
        let lines = || {
            vec![text(
                r#"{app="a"}"#,
                vec![
                    entry(NOW, "error here"),
                    PushEntry::new(NOW, "x".into(), pairs(&[("t", "1")])),
                    PushEntry::new(NOW, "x".into(), pairs(&[("detected_level", "warn")])),
                ],
            )]
        };
        let on = run(lines(), &Limits::default());
        let off = run(
            lines(),
            &Limits {
                discover_log_levels: false,
                ..Limits::default()
            },
        );
        assert_eq!(on.accepted_bytes, off.accepted_bytes);
        assert_eq!(on.accepted_bytes, 10 + 1 + 4 + 1);
    }

    #[test]
    fn levels_are_charged_to_the_meter_before_they_are_added() {
        use crate::push::meter::{LineLimit, Meter};
        let long = "v".repeat(1000);
        let stream = |level: &str| {
            vec![text(
                &format!(r#"{{app="a", level="{level}"}}"#),
                (0..1000).map(|_| entry(NOW, "x")).collect(),
            )]
        };
        let push = |level: &str| Push::new(stream(level));
        let meter = || Meter::standalone(100_000, usize::MAX, LineLimit::NONE);
        let l = Limits::default();
        // 1000 copies of a 1000-byte level need far more than the meter has.
        let mut m = meter();
        let e =
            validate_metered(push(&long), &l, NOW, "t", &mut m, &LabelCache::new()).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge(_)), "{e}");
        assert!(m.held() <= 100_000);
        // A known level fits; what it takes is held.
        let mut m = meter();
        let v = validate_metered(push("warn"), &l, NOW, "t", &mut m, &LabelCache::new()).unwrap();
        assert_eq!(v.accepted_entries(), 1000);
        assert_eq!(
            m.held(),
            1000 * (2 * encoded_pair_len(DETECTED_LEVEL, "warn") + 16)
        );
        // Without discovery nothing is added or charged.
        let off = Limits {
            discover_log_levels: false,
            ..Limits::default()
        };
        let mut m = meter();
        let v = validate_metered(push(&long), &off, NOW, "t", &mut m, &LabelCache::new()).unwrap();
        assert_eq!(v.accepted_entries(), 1000);
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn encoded_pair_lengths() {
        for (n, v) in [("", ""), ("a", "b"), ("detected_level", "warn")] {
            let mut buf = Vec::new();
            put_bytes(&mut buf, n.as_bytes());
            put_bytes(&mut buf, v.as_bytes());
            assert_eq!(encoded_pair_len(n, v), buf.len());
        }
        let long = "x".repeat(300);
        let mut buf = Vec::new();
        put_bytes(&mut buf, long.as_bytes());
        put_bytes(&mut buf, b"");
        assert_eq!(encoded_pair_len(&long, ""), buf.len());
    }

    #[test]
    fn messages_are_bounded_and_rejections_counted_in_full() {
        let l = Limits::default();
        // One stream, 100 000 entries too old: ten messages, then Loki's
        // count of the stream's total.
        let old: Vec<PushEntry> = (0..100_000).map(|_| entry(1, "x")).collect();
        let v = run(vec![text(r#"{app="a"}"#, old)], &l);
        assert_eq!(v.errors.len(), MAX_ERRORS_PER_STREAM + 1);
        assert_eq!(
            v.errors.last().unwrap(),
            r#"user 'fake', total ignored: 100000 out of 100000 for stream: {app="a", service_name="a"}"#
        );
        assert_eq!(
            v.discarded[&Reason::GreaterThanMaxSampleAge],
            (100_000, 100_000)
        );
        // 10 000 streams with bad labels: messages up to the byte bound,
        // the rest counted.
        let bad: Vec<PushStream> = (0..10_000)
            .map(|i| text(&format!("{{bad{i}"), vec![entry(NOW, "x")]))
            .collect();
        let v = run(bad, &l);
        assert!(v.error_bytes <= MAX_ERROR_BYTES + 256, "{}", v.error_bytes);
        assert_eq!(v.errors.len() as u64 + v.unlisted_errors, 10_000);
        assert_eq!(v.discarded[&Reason::InvalidLabels].0, 10_000);
        // Quoted text is cut.
        let long = format!(r#"{{a="{}"}}"#, "v".repeat(5000));
        let v = run(vec![text(&long, vec![entry(1, "x")])], &l);
        assert!(
            v.errors[0].len() < 2 * MAX_QUOTED + 200,
            "{}",
            v.errors[0].len()
        );
        assert!(v.errors[0].contains("v..."), "{}", v.errors[0]);
    }

    #[test]
    fn lines_left_out_by_the_decoder_keep_their_length() {
        let mut e = entry(NOW, "");
        e.omitted = 300_000;
        let v = run(vec![text(r#"{app="a"}"#, vec![e])], &Limits::default());
        assert_eq!(v.accepted_entries(), 0);
        assert!(
            v.errors[0].ends_with("while adding an entry with length '300000' bytes"),
            "{}",
            v.errors[0]
        );
        assert_eq!(v.discarded[&Reason::LineTooLong], (1, 300_000));
    }
}
