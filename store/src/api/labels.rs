//! Metadata endpoints answered from the label index alone: `labels`,
//! `label/{name}/values`, `series`, `index/stats`, `index/volume` and
//! `index/volume_range`. None of them reads chunk contents, but each
//! visits every matching stream, so all of them run through
//! [`exec::run`] (query slot, blocking pool, query timeout, cancellation)
//! like queries do; parameters are checked on the request's task first.
//! The walks themselves (streams of one or several tenants, the label
//! index, statistics and volume) are the ingester's
//! ([`crate::ingester::metadata`]); here the request is read and the JSON
//! written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
use crate::ingester::Ingester;
use crate::ingester::metadata::{
    self, HIDDEN, PAGE_VALUES, Steps, VolumeGrouping, Walk, names_in_index, values_in_index,
};
use crate::ingester::multi::{ORIGINAL_TENANT_LABEL, TENANT_LABEL, parse_tenants, shown_labels};
use crate::ingester::stream::Stream;
use crate::ingester::tenant::Tenant;
use crate::server::AppState;
use crate::tenant::TenantId;

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

/// What `labels`, `label/{name}/values` and `series` carry: their tenants
/// and time bounds.
///
/// With `multi_tenant_queries_enabled`, `X-Scope-OrgID: a|b` names several
/// tenants, answered as Loki's multi-tenant querier answers them: label
/// names are the union of the tenants' plus `__tenant_id__`, the values of
/// `__tenant_id__` are the tenants named, and every series carries
/// `__tenant_id__` (a stream's own moved to `original___tenant_id__`). As
/// in queries ([`crate::ingester::multi`]), matchers on `__tenant_id__` choose the
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
        Ok(metadata::tenants_streams(
            ing,
            &self.tenants,
            matchers,
            self.start,
            self.end,
        )?)
    }
}

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

/// Writes the answer of `label/{name}/values` from `tenant`'s label index
/// ([`values_in_index`]): each value as it is found, in the index's order,
/// sent as the pieces fill (outside the index's lock). Nothing is
/// collected or sorted per request.
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
    if let Some(t) = t {
        let mut first = true;
        values_in_index(t, name, start, end, cancel, |walk| match walk {
            Walk::Value(value) => {
                let buf = sink.buf();
                if !first {
                    buf.push(',');
                }
                first = false;
                json::string(buf, value);
                Ok(())
            }
            Walk::PageDone => sink.flush(),
        })?;
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
    let ing = app.query_source();
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
    let ing = app.query_source();
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
    let ing = app.query_source();
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
    let ing = app.query_source();
    let body = exec::run(&app, move |cancel| {
        let set = metadata::streams(&ing, &t, m.as_deref(), r.start, r.end)?;
        let st = metadata::range_stats(&ing, &set, r.start, r.end, &cancel)?;
        Ok(format!(
            "{{\"streams\":{},\"chunks\":{},\"bytes\":{},\"entries\":{}}}",
            st.streams, st.totals.chunks, st.totals.bytes, st.totals.entries
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
    grouping: VolumeGrouping,
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
            grouping: VolumeGrouping { targets, by_labels },
            limit: volume_limit(p)?,
        })
    }

    /// The largest `limit` groups in `[start, end)`
    /// ([`VolumeGrouping::top`]).
    fn top(
        &self,
        ing: &Ingester,
        tenant: &TenantId,
        start: i64,
        end: i64,
        cancel: &AtomicBool,
    ) -> Result<Vec<metadata::VolumeRow>, ApiError> {
        Ok(self.grouping.top(
            ing,
            tenant,
            self.matchers.as_deref(),
            self.limit,
            start,
            end,
            cancel,
        )?)
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
    let ing = app.query_source();
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
    let ing = app.query_source();
    let body = exec::run(&app, move |cancel| {
        let rows = spec.top(&ing, &t, r.start, r.end, &cancel)?;
        let steps = Steps {
            start: r.start,
            end: r.end,
            step: r.step,
            points: r.points(),
        };
        let mut out = String::from("{\"resultType\":\"matrix\",\"result\":[");
        for (i, (labels, _, members)) in rows.iter().enumerate() {
            let points = metadata::volume_points(&ing, members, &steps, &cancel)?;
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
