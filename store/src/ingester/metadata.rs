//! What the metadata endpoints (`labels`, `label/{name}/values`,
//! `series`, `index/stats`, `index/volume`, `index/volume_range`) ask of
//! the ingester: the streams of one or several tenants, label names and
//! values with data in a range walked from a tenant's label index, and
//! bytes, chunks and entries per stream, per group of streams and per
//! step. None of it reads chunk contents, but all of it visits every
//! matching stream, so every walk looks at a cancel flag as it goes and
//! stops with [`MetaError::Cancelled`] once it is raised. The HTTP
//! handlers (`api::labels`) parse the request, call these through the
//! query executor and write the JSON.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use larch_query::{LabelSet, Matcher};

use super::Ingester;
use super::multi::split_matchers;
use super::read::has_data_in;
use super::stream::{RangeStats, Stream};
use super::tenant::{Page, Tenant};
use crate::cluster::stats;
use crate::objstore::remote::WriteNodeError;
use crate::tenant::TenantId;

/// Label names Grafana hides and Loki never reports as stream labels.
pub const HIDDEN: &[&str] = &["__aggregated_metric__", "__tenant_id__", "__stream_shard__"];

/// Label values visited under one lock of a tenant's registry by the
/// walks over its label index ([`Tenant::values_page`]); also how many
/// items the handlers write between two looks at the client.
pub const PAGE_VALUES: usize = 1024;

/// Streams visited between two looks at the cancel flag in metadata loops.
pub const CANCEL_CHECK_EVERY: usize = 256;

/// Why a metadata walk stopped.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The cancel flag was raised (the client went away, or the query
    /// timeout fired).
    #[error("{}", larch_query::engine::CANCELLED)]
    Cancelled,
    /// A read node could not ask the write nodes for their streams.
    #[error(transparent)]
    WriteNodes(#[from] WriteNodeError),
}

/// `Err(Cancelled)` once the flag is raised; for loops over streams,
/// looked at every [`CANCEL_CHECK_EVERY`] items (`i` is the loop index).
pub fn check(cancel: &AtomicBool, i: usize) -> Result<(), MetaError> {
    if i.is_multiple_of(CANCEL_CHECK_EVERY) && cancel.load(Ordering::Relaxed) {
        return Err(MetaError::Cancelled);
    }
    Ok(())
}

/// Streams of `tenant` with data in `[start, end)` matching `matchers`
/// (all streams when `None`), with the write nodes' on a read node.
pub fn streams(
    ing: &Ingester,
    tenant: &TenantId,
    matchers: Option<&[Matcher]>,
    start: i64,
    end: i64,
) -> Result<Vec<Arc<Stream>>, MetaError> {
    Ok(ing.query_streams(tenant, matchers, start, end)?)
}

/// The streams of `tenants` matching `matchers` (all when `None`), each
/// with its tenant. With several tenants, matchers on `__tenant_id__`
/// choose the tenants and are not asked of their index (see
/// [`super::multi`]).
pub fn tenants_streams<'t>(
    ing: &Ingester,
    tenants: &'t [TenantId],
    matchers: Option<&[Matcher]>,
    start: i64,
    end: i64,
) -> Result<Vec<(&'t TenantId, Arc<Stream>)>, MetaError> {
    if let [t] = tenants {
        return Ok(streams(ing, t, matchers, start, end)?
            .into_iter()
            .map(|s| (t, s))
            .collect());
    }
    let (by_tenant, rest) = split_matchers(matchers.unwrap_or_default());
    let mut out = Vec::new();
    for t in tenants {
        if !by_tenant.iter().all(|m| m.matches(t.as_str())) {
            continue;
        }
        let own = (!rest.is_empty()).then_some(rest.as_slice());
        out.extend(
            streams(ing, t, own, start, end)?
                .into_iter()
                .map(|s| (t, s)),
        );
    }
    Ok(out)
}

/// Whether each stream of a tenant holds data in a range, looked up once
/// per stream: the names walk asks it of a stream for each of its names.
struct InRange {
    start: i64,
    end: i64,
    /// By stream id: 0 not looked at, 1 in range, 2 not.
    seen: Vec<u8>,
}

impl InRange {
    fn holds(&mut self, s: &Stream) -> bool {
        let i = s.id as usize;
        if i >= self.seen.len() {
            self.seen.resize(i + 1, 0);
        }
        if self.seen[i] == 0 {
            self.seen[i] = if has_data_in(s, self.start, self.end) {
                1
            } else {
                2
            };
        }
        self.seen[i] == 1
    }
}

/// The label names of `tenant` with a stream holding data in
/// `[start, end)`, from its label index ([`HIDDEN`] ones left out): for
/// each name the walk stops at the first such stream, so with every
/// stream in range it looks at one stream per name, not at every stream.
pub fn names_in_index(
    t: &Tenant,
    start: i64,
    end: i64,
    cancel: &AtomicBool,
) -> Result<Vec<Box<str>>, MetaError> {
    let mut range = InRange {
        start,
        end,
        seen: Vec::new(),
    };
    let mut names = Vec::new();
    for name in t.label_names() {
        if HIDDEN.contains(&&*name) {
            continue;
        }
        let (mut after, mut found) = (None::<Box<str>>, false);
        loop {
            check(cancel, 0)?;
            let page = t.values_page(&name, after.as_deref(), PAGE_VALUES, |_, mut holders| {
                if holders.any(|s| range.holds(s)) {
                    found = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            match page {
                Page::After(last) if !found => after = Some(last),
                _ => break,
            }
        }
        if found {
            names.push(name);
        }
    }
    Ok(names)
}

/// What [`values_in_index`] hands its visitor.
pub enum Walk<'a> {
    /// The next value, in order, with a stream holding data in the range;
    /// handed over under the index's read lock, so the visitor must not
    /// wait here.
    Value(&'a str),
    /// A page of values is done and the lock released: the visitor may
    /// wait (for the client) now.
    PageDone,
}

/// Walks the values of label `name` in `tenant`'s label index, where they
/// are kept sorted, a page at a time ([`PAGE_VALUES`] under one lock),
/// handing `visit` each that has a stream with data in `[start, end)`, in
/// order, and [`Walk::PageDone`] after each page. Nothing is collected or
/// sorted. Stops at the first error of `visit` or when `cancel` is raised.
pub fn values_in_index<E: From<MetaError>>(
    t: &Tenant,
    name: &str,
    start: i64,
    end: i64,
    cancel: &AtomicBool,
    mut visit: impl FnMut(Walk<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut after: Option<Box<str>> = None;
    loop {
        check(cancel, 0)?;
        let mut failed = None;
        let page = t.values_page(name, after.as_deref(), PAGE_VALUES, |value, mut holders| {
            if holders.any(|s| has_data_in(s, start, end))
                && let Err(e) = visit(Walk::Value(value))
            {
                failed = Some(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
        // Outside the index's lock.
        visit(Walk::PageDone)?;
        match page {
            Page::After(last) => after = Some(last),
            Page::End => return Ok(()),
        }
    }
}

/// This node's writer id when the replicas' copies of a stream are to be
/// counted once in statistics (several write nodes with a replication
/// factor above 1; see [`crate::cluster::stats`]).
fn replicas(ing: &Ingester) -> Option<&str> {
    let c = &ing.config.cluster;
    (c.enabled() && c.replication_factor > 1).then_some(ing.writer_id.as_str())
}

/// What `index/stats` reports: the streams with chunks in the range, and
/// their chunks, bytes (uncompressed) and entries.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IndexStats {
    /// Streams with at least one chunk in the range.
    pub streams: u64,
    /// Chunks, bytes and entries of those streams in the range.
    pub totals: RangeStats,
}

/// Bytes, chunks and entries of `set` in `[start, end)`, and how many of
/// its streams have chunks there.
pub fn range_stats(
    ing: &Ingester,
    set: &[Arc<Stream>],
    start: i64,
    end: i64,
    cancel: &AtomicBool,
) -> Result<IndexStats, MetaError> {
    let mut out = IndexStats::default();
    let own = replicas(ing);
    for (i, s) in set.iter().enumerate() {
        check(cancel, i)?;
        let r = stats::range_stats(&s.state.lock(), start, end, own);
        if r.chunks > 0 {
            out.streams += 1;
        }
        let total = &mut out.totals;
        total.chunks = total.chunks.saturating_add(r.chunks);
        total.bytes = total.bytes.saturating_add(r.bytes);
        total.entries = total.entries.saturating_add(r.entries);
    }
    Ok(out)
}

/// How the volume endpoints group streams: by `targets` when given (the
/// handler fills them from `targetLabels`, else from the selector's
/// matchers), each label alone with `by_labels` (`aggregateBy=labels`),
/// else by the whole series.
#[derive(Clone, Debug, Default)]
pub struct VolumeGrouping {
    /// The labels a group is made of.
    pub targets: Vec<String>,
    /// Each target label is a group of its own.
    pub by_labels: bool,
}

/// One group of a volume answer: its labels, its bytes in the range and
/// its streams.
pub type VolumeRow = (LabelSet, u64, Vec<Arc<Stream>>);

impl VolumeGrouping {
    /// The groups of `set`.
    fn groups(
        &self,
        set: &[Arc<Stream>],
        cancel: &AtomicBool,
    ) -> Result<BTreeMap<LabelSet, Vec<Arc<Stream>>>, MetaError> {
        let mut groups: BTreeMap<LabelSet, Vec<Arc<Stream>>> = BTreeMap::new();
        for (i, s) in set.iter().enumerate() {
            check(cancel, i)?;
            if self.by_labels {
                for name in &self.targets {
                    if let Some(v) = s.labels.get(name) {
                        groups
                            .entry(LabelSet::from_pairs([(name.as_str(), v)]))
                            .or_default()
                            .push(s.clone());
                    }
                }
            } else if self.targets.is_empty() {
                groups.entry(s.labels.to_set()).or_default().push(s.clone());
            } else {
                let key = LabelSet::from_pairs(
                    self.targets
                        .iter()
                        .filter_map(|n| s.labels.get(n).map(|v| (n.as_str(), v))),
                );
                groups.entry(key).or_default().push(s.clone());
            }
        }
        Ok(groups)
    }

    /// The largest `limit` groups of `tenant`'s streams matching
    /// `matchers` by bytes in `[start, end)`, largest first (ties by
    /// labels), without empty ones.
    #[allow(clippy::too_many_arguments)]
    pub fn top(
        &self,
        ing: &Ingester,
        tenant: &TenantId,
        matchers: Option<&[Matcher]>,
        limit: usize,
        start: i64,
        end: i64,
        cancel: &AtomicBool,
    ) -> Result<Vec<VolumeRow>, MetaError> {
        let set = streams(ing, tenant, matchers, start, end)?;
        let mut rows = Vec::new();
        for (labels, members) in self.groups(&set, cancel)? {
            let bytes = range_stats(ing, &members, start, end, cancel)?.totals.bytes;
            if bytes > 0 {
                rows.push((labels, bytes, members));
            }
        }
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(limit);
        Ok(rows)
    }
}

/// The instants of a range answer: `start`, `start + step`, ... up to
/// `end`, `points` of them.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    /// First instant (Unix ns).
    pub start: i64,
    /// Last instant (Unix ns); a step's span ends here at the latest.
    pub end: i64,
    /// Distance between instants (ns), positive.
    pub step: i64,
    /// How many instants.
    pub points: usize,
}

impl Steps {
    /// Instant `k` (saturating; exact for `k < self.points`).
    pub fn at(&self, k: usize) -> i64 {
        let t = i128::from(self.start) + i128::from(self.step) * k as i128;
        t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Bytes of `members` in each step `[t, t + step)` of `r` (capped at
/// `end`), as `(t, bytes)` for the steps with bytes. Each stream is locked
/// once, and only the steps its data overlaps are visited.
pub fn volume_points(
    ing: &Ingester,
    members: &[Arc<Stream>],
    r: &Steps,
    cancel: &AtomicBool,
) -> Result<Vec<(i64, u64)>, MetaError> {
    let own = replicas(ing);
    let n = r.points;
    let mut bytes = vec![0u64; n];
    for (i, s) in members.iter().enumerate() {
        check(cancel, i)?;
        let state = s.state.lock();
        let Some((lo, hi)) = state.bounds() else {
            continue;
        };
        // Steps whose span [t, t + step) can overlap [lo, hi].
        let from = (i128::from(lo) - i128::from(r.start)).max(0) / i128::from(r.step);
        let to = (i128::from(hi) - i128::from(r.start)) / i128::from(r.step) + 1;
        let (from, to) = (
            usize::try_from(from).unwrap_or(usize::MAX).min(n),
            usize::try_from(to.max(0)).unwrap_or(usize::MAX).min(n),
        );
        for (k, slot) in bytes.iter_mut().enumerate().take(to).skip(from) {
            let t = r.at(k);
            if t >= r.end {
                break;
            }
            let b = stats::range_stats(&state, t, t.saturating_add(r.step).min(r.end), own).bytes;
            *slot = slot.saturating_add(b);
        }
    }
    Ok(bytes
        .into_iter()
        .enumerate()
        .filter(|&(_, b)| b > 0)
        .map(|(k, b)| (r.at(k), b))
        .collect())
}
