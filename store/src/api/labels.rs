//! Metadata endpoints answered from the label index alone: `labels`,
//! `label/{name}/values`, `series`, `index/stats`, `index/volume` and
//! `index/volume_range`. None of them reads chunk contents, but each
//! visits every matching stream, so all of them run through
//! [`exec::run`] (query slot, blocking pool, query timeout, cancellation)
//! like queries do; parameters are checked on the request's task first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use larch_query::logql::parse_matchers;
use larch_query::{LabelSet, Matcher};

use super::exec::{self, Sink, check};
use super::params::{Params, TimeRange, bounds, now_ns};
use super::{ApiError, LokiParams, json, json_response, tenant};
use crate::cluster::stats;
use crate::ingester::Ingester;
use crate::ingester::multi::{
    ORIGINAL_TENANT_LABEL, TENANT_LABEL, parse_tenants, shown_labels, split_matchers,
};
use crate::ingester::read::has_data_in;
use crate::ingester::stream::{RangeStats, Stream};
use crate::ingester::tenant::{Page, Tenant};
use crate::server::AppState;
use crate::tenant::TenantId;

/// Label names Grafana hides and Loki never reports as stream labels.
const HIDDEN: &[&str] = &["__aggregated_metric__", "__tenant_id__", "__stream_shard__"];

/// Default step of `volume_range`: one hour.
pub const VOLUME_DEFAULT_STEP: i64 = 3_600_000_000_000;
/// Most groups a volume response holds (Loki's `volume_max_series`
/// default); a larger `limit` is cut to it.
pub const MAX_VOLUME_GROUPS: usize = 1000;

fn selector(text: Option<&str>) -> Result<Option<Vec<Matcher>>, ApiError> {
    match text.map(str::trim) {
        None | Some("") | Some("{}") => Ok(None),
        Some(q) => parse_matchers(q, false)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// Streams of `tenant` with data in `[start, end)` matching `matchers`
/// (all streams when `None`).
fn streams(
    ing: &Ingester,
    tenant: &TenantId,
    matchers: Option<&[Matcher]>,
    start: i64,
    end: i64,
) -> Result<Vec<Arc<Stream>>, ApiError> {
    ing.query_streams(tenant, matchers, start, end)
        .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// What `labels`, `label/{name}/values` and `series` carry: their tenants
/// and time bounds.
///
/// With `multi_tenant_queries_enabled`, `X-Scope-OrgID: a|b` names several
/// tenants, answered as Loki's multi-tenant querier answers them: label
/// names are the union of the tenants' plus `__tenant_id__`, the values of
/// `__tenant_id__` are the tenants named, and every series carries
/// `__tenant_id__` (a stream's own moved to `original___tenant_id__`). As
/// in queries ([`super::multi`]), matchers on `__tenant_id__` choose the
/// tenants and are not asked of their index.
struct Scope {
    /// One tenant, or several.
    tenants: Vec<TenantId>,
    start: i64,
    end: i64,
}

impl Scope {
    fn new(app: &AppState, headers: &HeaderMap, p: &Params) -> Result<Scope, ApiError> {
        let value = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok());
        let tenants = parse_tenants(
            value,
            app.config.auth_enabled,
            app.config.multi_tenant_queries_enabled,
        )
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
        let (start, end) = bounds(p, now_ns())?;
        Ok(Scope {
            tenants,
            start,
            end,
        })
    }

    /// Whether several tenants are named (streams then carry
    /// `__tenant_id__`).
    fn multi(&self) -> bool {
        self.tenants.len() > 1
    }

    /// The streams matching `matchers` (all when `None`), each with its
    /// tenant.
    fn streams(
        &self,
        ing: &Ingester,
        matchers: Option<&[Matcher]>,
    ) -> Result<Vec<(&TenantId, Arc<Stream>)>, ApiError> {
        if !self.multi() {
            let t = &self.tenants[0];
            return Ok(streams(ing, t, matchers, self.start, self.end)?
                .into_iter()
                .map(|s| (t, s))
                .collect());
        }
        let (by_tenant, rest) = split_matchers(matchers.unwrap_or_default());
        let mut out = Vec::new();
        for t in &self.tenants {
            if !by_tenant.iter().all(|m| m.matches(t.as_str())) {
                continue;
            }
            let own = (!rest.is_empty()).then_some(rest.as_slice());
            out.extend(
                streams(ing, t, own, self.start, self.end)?
                    .into_iter()
                    .map(|s| (t, s)),
            );
        }
        Ok(out)
    }
}

/// Label values visited under one lock of a tenant's registry by the
/// walks over its label index ([`Tenant::values_page`]).
const PAGE_VALUES: usize = 1024;

/// Writes `{"status":"success","data":[...]}` with `items` as strings,
/// sending it piece by piece.
fn string_list<'a>(
    sink: &mut Sink,
    items: impl IntoIterator<Item = &'a str>,
    cancel: &AtomicBool,
) -> Result<(), ApiError> {
    sink.buf().push_str(json::SUCCESS_START);
    sink.buf().push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            sink.buf().push(',');
        }
        json::string(sink.buf(), item);
        if i % PAGE_VALUES == 0 {
            check(cancel, 0)?;
            sink.flush()?;
        }
    }
    sink.buf().push(']');
    sink.buf().push_str(json::SUCCESS_END);
    Ok(())
}

/// Whether each stream of a tenant holds data in a range, looked up once
/// per stream: `labels` asks it of a stream for each of its names.
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
/// `[start, end)`, from its label index: for each name the walk stops at
/// the first such stream, so with every stream in range it looks at one
/// stream per name, not at every stream.
fn names_in_index(
    t: &Tenant,
    start: i64,
    end: i64,
    cancel: &AtomicBool,
) -> Result<Vec<Box<str>>, ApiError> {
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

/// Writes the answer of `label/{name}/values` from `tenant`'s label index:
/// its values are kept sorted there, so each is written in order, as it
/// is found to have a stream with data in `[start, end)`, a page at a
/// time, and sent as the pieces fill. Nothing is collected or sorted per
/// request.
fn values_from_index(
    t: Option<&Tenant>,
    name: &str,
    start: i64,
    end: i64,
    sink: &mut Sink,
    cancel: &AtomicBool,
) -> Result<(), ApiError> {
    sink.buf().push_str(json::SUCCESS_START);
    sink.buf().push('[');
    let mut first = true;
    if let Some(t) = t {
        let mut after: Option<Box<str>> = None;
        loop {
            check(cancel, 0)?;
            let buf = sink.buf();
            let page = t.values_page(name, after.as_deref(), PAGE_VALUES, |value, mut holders| {
                if holders.any(|s| has_data_in(s, start, end)) {
                    if !first {
                        buf.push(',');
                    }
                    first = false;
                    json::string(buf, value);
                }
                ControlFlow::Continue(())
            });
            // Outside the index's lock: this waits for the client.
            sink.flush()?;
            match page {
                Page::After(last) => after = Some(last),
                Page::End => break,
            }
        }
    }
    sink.buf().push(']');
    sink.buf().push_str(json::SUCCESS_END);
    Ok(())
}

/// `GET /loki/api/v1/labels` (and `/loki/api/v1/label`).
pub async fn label_names(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let scope = Scope::new(&app, &headers, &p)?;
    let m = selector(p.get("query"))?;
    let ing = app.ingester.clone();
    exec::run_streamed(&app, move |cancel, sink| {
        if !scope.multi() && m.is_none() && ing.answers_alone() {
            let names = match ing.existing_tenant(&scope.tenants[0]) {
                Some(t) => names_in_index(&t, scope.start, scope.end, &cancel)?,
                None => Vec::new(),
            };
            return string_list(sink, names.iter().map(|n| &**n), &cancel);
        }
        let streams = scope.streams(&ing, m.as_deref())?;
        // Borrowed from the streams: nothing is allocated per stream.
        let mut names: BTreeSet<&str> = BTreeSet::new();
        if scope.multi() {
            names.insert(TENANT_LABEL);
        }
        for (i, (_, s)) in streams.iter().enumerate() {
            check(&cancel, i)?;
            for (name, _) in s.labels.iter() {
                if scope.multi() && name == TENANT_LABEL {
                    // The stream's own, shown renamed.
                    names.insert(ORIGINAL_TENANT_LABEL);
                } else if !HIDDEN.contains(&name) && !names.contains(name) {
                    names.insert(name);
                }
            }
        }
        string_list(sink, names, &cancel)
    })
    .await
}

/// `GET /loki/api/v1/label/{name}/values`.
pub async fn label_values(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let scope = Scope::new(&app, &headers, &p)?;
    let m = selector(p.get("query"))?;
    if app.config.multi_tenant_queries_enabled && name == TENANT_LABEL {
        // The tenants named, as Loki's multi-tenant querier answers.
        let values: BTreeSet<String> = scope.tenants.iter().map(|t| t.to_string()).collect();
        return Ok(json_response(json::success(&json::string_array(values))));
    }
    // In a multi-tenant answer a stream's own `__tenant_id__` is shown as
    // `original___tenant_id__`.
    let own_name = if scope.multi() && name == ORIGINAL_TENANT_LABEL {
        TENANT_LABEL.to_string()
    } else {
        name
    };
    let ing = app.ingester.clone();
    exec::run_streamed(&app, move |cancel, sink| {
        if !scope.multi() && m.is_none() && ing.answers_alone() {
            let t = ing.existing_tenant(&scope.tenants[0]);
            return values_from_index(
                t.as_deref(),
                &own_name,
                scope.start,
                scope.end,
                sink,
                &cancel,
            );
        }
        // A selector's streams (or several tenants', or a read node's with
        // the write nodes'): their values borrowed from the streams,
        // sorted once.
        let streams = scope.streams(&ing, m.as_deref())?;
        let mut values: Vec<&str> = Vec::new();
        for (i, (_, s)) in streams.iter().enumerate() {
            check(&cancel, i)?;
            if let Some(v) = s.labels.get(&own_name) {
                values.push(v);
            }
        }
        check(&cancel, 0)?;
        values.sort_unstable();
        values.dedup();
        string_list(sink, values, &cancel)
    })
    .await
}

/// Writes `labels` as a JSON object from `(name, value)` pairs.
fn labels_object<'a>(out: &mut String, labels: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (name, value)) in labels.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::string(out, name);
        out.push(':');
        json::string(out, value);
    }
    out.push('}');
}

/// `GET /loki/api/v1/series` with `match[]` or `match` (repeatable).
pub async fn series(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let scope = Scope::new(&app, &headers, &p)?;
    let mut selectors: Vec<Option<Vec<Matcher>>> = Vec::new();
    for sel in p.all("match[]").iter().chain(p.all("match")) {
        if !sel.is_empty() {
            selectors.push(selector(Some(sel))?);
        }
    }
    if selectors.is_empty() {
        selectors.push(None);
    }
    let ing = app.ingester.clone();
    exec::run_streamed(&app, move |cancel, sink| {
        sink.buf().push_str(json::SUCCESS_START);
        sink.buf().push('[');
        if scope.multi() {
            let mut seen: BTreeMap<u64, LabelSet> = BTreeMap::new();
            for m in &selectors {
                for (i, (t, s)) in scope.streams(&ing, m.as_deref())?.iter().enumerate() {
                    check(&cancel, i)?;
                    let labels = shown_labels(&s.labels.to_set(), t.as_str());
                    seen.insert(labels.fingerprint(), labels);
                }
            }
            let mut sets: Vec<&LabelSet> = seen.values().collect();
            sets.sort();
            for (i, l) in sets.iter().enumerate() {
                if i > 0 {
                    sink.buf().push(',');
                }
                json::labels(sink.buf(), l);
                if i % PAGE_VALUES == 0 {
                    check(&cancel, 0)?;
                    sink.flush()?;
                }
            }
        } else {
            // One tenant: the streams themselves, their labels written
            // from their packed form (no label set built per stream), in
            // the order of their label sets.
            let mut seen: HashMap<u64, Arc<Stream>> = HashMap::new();
            for m in &selectors {
                for (i, (_, s)) in scope.streams(&ing, m.as_deref())?.into_iter().enumerate() {
                    check(&cancel, i)?;
                    seen.insert(s.fp, s);
                }
            }
            let mut streams: Vec<Arc<Stream>> = seen.into_values().collect();
            check(&cancel, 0)?;
            streams.sort_unstable_by(|a, b| a.labels.iter().cmp(b.labels.iter()));
            for (i, s) in streams.iter().enumerate() {
                if i > 0 {
                    sink.buf().push(',');
                }
                labels_object(sink.buf(), s.labels.iter());
                if i % PAGE_VALUES == 0 {
                    check(&cancel, 0)?;
                    sink.flush()?;
                }
            }
        }
        sink.buf().push(']');
        sink.buf().push_str(json::SUCCESS_END);
        Ok(())
    })
    .await
}

/// This node's writer id when the replicas' copies of a stream are to be
/// counted once in statistics (several write nodes with a replication
/// factor above 1; see [`crate::cluster::stats`]).
fn replicas(ing: &Ingester) -> Option<&str> {
    let c = &ing.config.cluster;
    (c.enabled() && c.replication_factor > 1).then_some(ing.writer_id.as_str())
}

/// Bytes, chunks and entries of `set` in `[start, end)`, checking the
/// cancel flag as it goes.
fn range_stats(
    ing: &Ingester,
    set: &[Arc<Stream>],
    start: i64,
    end: i64,
    cancel: &AtomicBool,
) -> Result<RangeStats, ApiError> {
    let mut total = RangeStats::default();
    let own = replicas(ing);
    for (i, s) in set.iter().enumerate() {
        check(cancel, i)?;
        let r = stats::range_stats(&s.state.lock(), start, end, own);
        total.chunks = total.chunks.saturating_add(r.chunks);
        total.bytes = total.bytes.saturating_add(r.bytes);
        total.entries = total.entries.saturating_add(r.entries);
    }
    Ok(total)
}

/// `GET /loki/api/v1/index/stats`: `{streams, chunks, bytes, entries}` of
/// the selector's streams in the range (bytes uncompressed).
pub async fn index_stats(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = tenant(&headers, app.config.auth_enabled)?;
    let r = TimeRange::parse(&p, now_ns(), None)?;
    let m = selector(p.get("query"))?;
    let ing = app.ingester.clone();
    let body = exec::run(&app, move |cancel| {
        let set = streams(&ing, &t, m.as_deref(), r.start, r.end)?;
        let mut matched = 0u64;
        let mut total = RangeStats::default();
        let own = replicas(&ing);
        for (i, s) in set.iter().enumerate() {
            check(&cancel, i)?;
            let st = stats::range_stats(&s.state.lock(), r.start, r.end, own);
            if st.chunks > 0 {
                matched += 1;
            }
            total.chunks = total.chunks.saturating_add(st.chunks);
            total.bytes = total.bytes.saturating_add(st.bytes);
            total.entries = total.entries.saturating_add(st.entries);
        }
        Ok(format!(
            "{{\"streams\":{matched},\"chunks\":{},\"bytes\":{},\"entries\":{}}}",
            total.chunks, total.bytes, total.entries
        ))
    })
    .await?;
    Ok(json_response(body))
}

/// How the volume endpoints group streams: by `targetLabels` when given,
/// else by every label of the selector's matchers (`aggregateBy=labels`
/// reports each label alone), else by the whole series; and how many
/// groups to report.
struct VolumeSpec {
    matchers: Option<Vec<Matcher>>,
    targets: Vec<String>,
    by_labels: bool,
    limit: usize,
}

impl VolumeSpec {
    fn parse(p: &Params) -> Result<VolumeSpec, ApiError> {
        let matchers = selector(p.get("query"))?;
        let targets: Vec<String> = match p.get("targetLabels") {
            Some(t) => t
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => matchers
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|m| m.name.clone())
                .collect(),
        };
        let by_labels = match p.get("aggregateBy") {
            None | Some("series") => false,
            Some("labels") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid aggregateBy '{other}': expected series or labels"
                )));
            }
        };
        Ok(VolumeSpec {
            matchers,
            targets,
            by_labels,
            limit: volume_limit(p)?,
        })
    }

    /// The groups of `set`.
    fn groups(
        &self,
        set: &[Arc<Stream>],
        cancel: &AtomicBool,
    ) -> Result<BTreeMap<LabelSet, Vec<Arc<Stream>>>, ApiError> {
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

    /// The largest `limit` groups by bytes in `[start, end)`, largest
    /// first (ties by labels), without empty ones.
    #[allow(clippy::type_complexity)]
    fn top(
        &self,
        ing: &Ingester,
        tenant: &TenantId,
        start: i64,
        end: i64,
        cancel: &AtomicBool,
    ) -> Result<Vec<(LabelSet, u64, Vec<Arc<Stream>>)>, ApiError> {
        let set = streams(ing, tenant, self.matchers.as_deref(), start, end)?;
        let mut rows = Vec::new();
        for (labels, members) in self.groups(&set, cancel)? {
            let bytes = range_stats(ing, &members, start, end, cancel)?.bytes;
            if bytes > 0 {
                rows.push((labels, bytes, members));
            }
        }
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(self.limit);
        Ok(rows)
    }
}

/// `limit` of the volume endpoints (default 100, at most
/// [`MAX_VOLUME_GROUPS`]).
fn volume_limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None => Ok(100),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(|n| {
                usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(MAX_VOLUME_GROUPS)
            })
            .ok_or_else(|| ApiError::bad_request("limit must be a positive value")),
    }
}

/// `GET /loki/api/v1/index/volume`: bytes per group as a vector, largest
/// first, at most `limit` groups.
pub async fn volume(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = tenant(&headers, app.config.auth_enabled)?;
    let r = TimeRange::parse(&p, now_ns(), None)?;
    let spec = VolumeSpec::parse(&p)?;
    let ing = app.ingester.clone();
    let body = exec::run(&app, move |cancel| {
        let rows = spec.top(&ing, &t, r.start, r.end, &cancel)?;
        let mut out = String::from("{\"resultType\":\"vector\",\"result\":[");
        for (i, (labels, bytes, _)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"metric\":");
            json::labels(&mut out, labels);
            out.push_str(",\"value\":[");
            json::seconds(&mut out, r.end);
            out.push_str(&format!(",\"{bytes}\"]}}"));
        }
        out.push_str("]}");
        Ok(json::success(&out))
    })
    .await?;
    Ok(json_response(body))
}

/// Bytes of `members` in each step `[t, t + step)` of `r` (capped at
/// `end`), as `(t, bytes)` for the steps with bytes. Each stream is locked
/// once, and only the steps its data overlaps are visited.
fn volume_points(
    ing: &Ingester,
    members: &[Arc<Stream>],
    r: &TimeRange,
    cancel: &AtomicBool,
) -> Result<Vec<(i64, u64)>, ApiError> {
    let own = replicas(ing);
    let n = r.points();
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

/// `GET /loki/api/v1/index/volume_range`: bytes per group and step as a
/// matrix; `step` defaults to one hour. The `limit` largest groups over the
/// whole range are reported, each with its bytes per step.
pub async fn volume_range(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = tenant(&headers, app.config.auth_enabled)?;
    let r = TimeRange::parse(&p, now_ns(), Some(VOLUME_DEFAULT_STEP))?;
    let spec = VolumeSpec::parse(&p)?;
    let ing = app.ingester.clone();
    let body = exec::run(&app, move |cancel| {
        let rows = spec.top(&ing, &t, r.start, r.end, &cancel)?;
        let mut out = String::from("{\"resultType\":\"matrix\",\"result\":[");
        for (i, (labels, _, members)) in rows.iter().enumerate() {
            let points = volume_points(&ing, members, &r, &cancel)?;
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"metric\":");
            json::labels(&mut out, labels);
            out.push_str(",\"values\":[");
            for (j, (t, b)) in points.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push('[');
                json::seconds(&mut out, *t);
                out.push_str(&format!(",\"{b}\"]"));
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        Ok(json::success(&out))
    })
    .await?;
    Ok(json_response(body))
}
