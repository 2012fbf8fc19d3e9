//! Loki's validation of pushed streams and entries, with Loki's error
//! texts. Everything here depends only on the request and the tenant's
//! limits, so it runs in the request handler, in parallel; rules that
//! depend on what is already stored (active stream limit, out-of-order
//! window, duplicates) are applied by the WAL writer.
//!
//! Streams with the same labels are merged, so clients that send one stream
//! object per line (pino-loki does) cost one stream.

use std::collections::HashMap;
use std::fmt::Write as _;

use larch_query::{LabelSet, parse_labels};

use crate::config::Limits;
use crate::encoding::put_bytes;
use crate::push::{Push, PushStream, StreamLabels};
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
}

impl Reason {
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
    /// Labels, sorted, empty values removed, `service_name` added.
    pub labels: LabelSet,
    /// `labels.fingerprint()`, computed once.
    pub fp: u64,
    /// Entries in request order.
    pub entries: Vec<WalEntry>,
}

/// The outcome of validating a push.
#[derive(Debug, Default)]
pub struct Validated {
    /// Streams with at least one accepted entry.
    pub streams: Vec<ValidStream>,
    /// Error messages, in Loki's words.
    pub errors: Vec<String>,
    /// Discarded entries and bytes by reason.
    pub discarded: HashMap<Reason, (u64, u64)>,
    /// Entries in the request.
    pub total_entries: u64,
    /// Bytes (lines plus metadata) accepted.
    pub accepted_bytes: u64,
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
}

/// Validates `push` against `limits` at time `now` (Unix ns).
pub fn validate(push: Push, limits: &Limits, now: i64) -> Validated {
    let mut out = Validated {
        total_entries: push.entry_count() as u64,
        ..Validated::default()
    };
    let mut by_fp: HashMap<u64, usize> = HashMap::new();
    for stream in push.streams {
        let n = stream.entries.len() as u64;
        let bytes: u64 = stream.entries.iter().map(|e| e.line.len() as u64).sum();
        let labels = match stream_labels(&stream, limits) {
            Ok(l) => l,
            Err((reason, msg)) => {
                out.errors.push(msg);
                out.discard(reason, n, bytes);
                continue;
            }
        };
        let entries = validate_entries(stream, &labels, limits, now, &mut out);
        if entries.is_empty() {
            continue;
        }
        out.accepted_bytes += entries
            .iter()
            .map(|e| (e.line.len() + e.meta.len()) as u64)
            .sum::<u64>();
        let fp = labels.fingerprint();
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
    out
}

type LabelError = (Reason, String);

/// Canonical labels of a stream, or why they are invalid.
fn stream_labels(stream: &PushStream, limits: &Limits) -> Result<LabelSet, LabelError> {
    let (text, pairs) = match &stream.labels {
        StreamLabels::Text(t) => {
            let pairs = parse_labels(t).map_err(|e| {
                (
                    Reason::InvalidLabels,
                    format!("error parsing labels '{t}' with error: {e}"),
                )
            })?;
            (t.clone(), pairs)
        }
        StreamLabels::Pairs(p) => {
            let text = pairs_text(p);
            if let Some((bad, _)) = p.iter().find(|(n, _)| !valid_label_name(n)) {
                return Err((
                    Reason::InvalidLabels,
                    format!("error parsing labels '{text}' with error: invalid label name '{bad}'"),
                ));
            }
            (text, p.clone())
        }
    };
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if pairs.is_empty() {
        return Err((
            Reason::MissingLabels,
            "error at least one label pair is required per stream".to_string(),
        ));
    }
    let mut labels = LabelSet::from_unique_pairs(pairs).map_err(|dup| {
        (
            Reason::DuplicateLabelNames,
            format!("stream '{text}' has duplicate label name: '{dup}'"),
        )
    })?;
    if labels.len() > limits.max_label_names_per_series {
        return Err((
            Reason::MaxLabelNamesPerSeries,
            format!(
                "entry for stream '{text}' has {} label names; limit {}",
                labels.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    for l in &labels {
        if l.name.len() > limits.max_label_name_length {
            return Err((
                Reason::LabelNameTooLong,
                format!("stream '{text}' has label name too long: '{}'", l.name),
            ));
        }
        if l.value.len() > limits.max_label_value_length {
            return Err((
                Reason::LabelValueTooLong,
                format!("stream '{text}' has label value too long: '{}'", l.value),
            ));
        }
    }
    if labels.get("service_name").is_none() {
        let service = SERVICE_NAME_SOURCES
            .iter()
            .find_map(|n| labels.get(n))
            .unwrap_or("unknown_service")
            .to_string();
        labels.insert("service_name".to_string(), service);
    }
    Ok(labels)
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

/// Whether `name` is a valid label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn validate_entries(
    stream: PushStream,
    labels: &LabelSet,
    limits: &Limits,
    now: i64,
    out: &mut Validated,
) -> Vec<WalEntry> {
    let shown = labels.to_string();
    let oldest = if limits.reject_old_samples {
        now.saturating_sub(limits.reject_old_samples_max_age.as_nanos_i64())
    } else {
        i64::MIN
    };
    let newest = now.saturating_add(limits.creation_grace_period.as_nanos_i64());
    let max_line = limits.max_line_size.0 as usize;
    let mut accepted = Vec::with_capacity(stream.entries.len());
    for mut e in stream.entries {
        let line_bytes = e.line.len() as u64;
        if max_line > 0 && e.line.len() > max_line {
            if limits.max_line_size_truncate {
                let mut cut = max_line;
                while !e.line.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.line.truncate(cut);
            } else {
                out.errors.push(format!(
                    "max entry size '{max_line}' bytes exceeded for stream '{shown}' while adding an entry with length '{}' bytes",
                    e.line.len()
                ));
                out.discard(Reason::LineTooLong, 1, line_bytes);
                continue;
            }
        }
        if e.ts < oldest {
            out.errors.push(format!(
                "entry for stream '{shown}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                rfc3339(e.ts),
                rfc3339(oldest)
            ));
            out.discard(Reason::GreaterThanMaxSampleAge, 1, line_bytes);
            continue;
        }
        if e.ts > newest {
            out.errors.push(format!(
                "entry for stream '{shown}' has timestamp too new: {}",
                rfc3339(e.ts)
            ));
            out.discard(Reason::TooFarInFuture, 1, line_bytes);
            continue;
        }
        let mut meta = Vec::new();
        if !e.metadata.is_empty() {
            if !limits.allow_structured_metadata {
                out.errors.push(format!(
                    "stream '{shown}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."
                ));
                out.discard(Reason::DisallowedStructuredMetadata, 1, line_bytes);
                continue;
            }
            let size: usize = e.metadata.iter().map(|(n, v)| n.len() + v.len()).sum();
            let max_size = limits.max_structured_metadata_size.0 as usize;
            if max_size > 0 && size > max_size {
                out.errors.push(format!(
                    "stream '{shown}' has structured metadata too large: '{size}' bytes, limit: '{max_size}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it."
                ));
                out.discard(Reason::StructuredMetadataTooLarge, 1, line_bytes);
                continue;
            }
            let max_count = limits.max_structured_metadata_entries_count;
            if max_count > 0 && e.metadata.len() > max_count {
                out.errors.push(format!(
                    "stream '{shown}' has too many structured metadata labels: '{}', limit: '{max_count}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.",
                    e.metadata.len()
                ));
                out.discard(Reason::StructuredMetadataTooMany, 1, line_bytes);
                continue;
            }
            e.metadata.sort();
            for (n, v) in &e.metadata {
                put_bytes(&mut meta, n.as_bytes());
                put_bytes(&mut meta, v.as_bytes());
            }
        }
        accepted.push(WalEntry {
            ts: e.ts,
            line: e.line,
            meta,
        });
    }
    accepted
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
        PushEntry {
            ts,
            line: line.to_string(),
            metadata: vec![],
        }
    }

    fn text(labels: &str, entries: Vec<PushEntry>) -> PushStream {
        PushStream {
            labels: StreamLabels::Text(labels.to_string()),
            entries,
        }
    }

    fn run(streams: Vec<PushStream>, limits: &Limits) -> Validated {
        validate(Push { streams }, limits, NOW)
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
            max_line_size: crate::units::ByteSize(5),
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
            max_line_size: crate::units::ByteSize(4),
            max_line_size_truncate: true,
            ..Limits::default()
        };
        let v = run(vec![text(r#"{app="a"}"#, vec![entry(NOW, "abcé")])], &l);
        assert_eq!(v.streams[0].entries[0].line, "abc");
    }

    #[test]
    fn structured_metadata_rules() {
        let mut l = Limits::default();
        let with_meta = |pairs: Vec<(&str, &str)>| PushEntry {
            ts: NOW,
            line: "x".into(),
            metadata: pairs
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect(),
        };
        let v = run(
            vec![text(
                r#"{app="a"}"#,
                vec![with_meta(vec![("z", "1"), ("a", "2")])],
            )],
            &l,
        );
        let pairs: Vec<_> = larch_query::decode_metadata(&v.streams[0].entries[0].meta).collect();
        assert_eq!(pairs, vec![("a", "2"), ("z", "1")]);
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
}
