//! Metadata endpoints answered from the label index alone: `labels`,
//! `label/{name}/values`, `series`, `index/stats`, `index/volume` and
//! `index/volume_range`. None of them reads chunk contents, but each
//! visits every matching stream, so all of them run through
//! [`exec::run`] (query slot, blocking pool, query timeout, cancellation)
//! like queries do; parameters are checked on the request's task first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use larch_query::logql::parse_matchers;
use larch_query::{LabelSet, Matcher};

use super::exec::{self, check};
use super::multi::{
    ORIGINAL_TENANT_LABEL, TENANT_LABEL, parse_tenants, shown_labels, split_matchers,
};
use super::params::{Params, TimeRange, bounds, now_ns};
use super::{ApiError, LokiParams, json, json_response, tenant};
use crate::cluster::stats;
use crate::ingester::Ingester;
use crate::ingester::stream::{RangeStats, Stream};
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

/// `GET /loki/api/v1/labels` (and `/loki/api/v1/label`).
pub async fn label_names(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let scope = Scope::new(&app, &headers, &p)?;
    let m = selector(p.get("query"))?;
    let ing = app.ingester.clone();
    let body = exec::run(&app, move |cancel| {
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
        Ok(json::success(&json::string_array(names)))
    })
    .await?;
    Ok(json_response(body))
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
    let body = exec::run(&app, move |cancel| {
        let streams = scope.streams(&ing, m.as_deref())?;
        // Borrowed from the streams, sorted once: a label with a value per
        // stream (a pod name) has as many values as there are streams.
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
        Ok(json::success(&json::string_array(values)))
    })
    .await?;
    Ok(json_response(body))
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
    let body = exec::run(&app, move |cancel| {
        let mut seen: BTreeMap<u64, Arc<LabelSet>> = BTreeMap::new();
        for m in &selectors {
            for (i, (t, s)) in scope.streams(&ing, m.as_deref())?.iter().enumerate() {
                check(&cancel, i)?;
                if scope.multi() {
                    let labels = shown_labels(&s.labels.to_set(), t.as_str());
                    seen.insert(labels.fingerprint(), Arc::new(labels));
                } else {
                    seen.insert(s.fp, s.labels.to_arc());
                }
            }
        }
        let mut sets: Vec<&Arc<LabelSet>> = seen.values().collect();
        sets.sort();
        let mut out = String::from("[");
        for (i, l) in sets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::labels(&mut out, l);
        }
        out.push(']');
        Ok(json::success(&out))
    })
    .await?;
    Ok(json_response(body))
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
