//! Metadata endpoints answered from the label index alone: `labels`,
//! `label/{name}/values`, `series`, `index/stats`, `index/volume` and
//! `index/volume_range`. None of them reads chunk contents.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use larch_query::logql::parse_matchers;
use larch_query::{LabelSet, Matcher};

use super::params::{Params, bounds, now_ns, parse_seconds_or_duration};
use super::{ApiError, LokiParams, json, json_response, tenant};
use crate::ingester::stream::{RangeStats, Stream};
use crate::server::AppState;

/// Label names Grafana hides and Loki never reports as stream labels.
const HIDDEN: &[&str] = &["__aggregated_metric__", "__tenant_id__", "__stream_shard__"];

fn selector(text: Option<&str>) -> Result<Option<Vec<Matcher>>, ApiError> {
    match text.map(str::trim) {
        None | Some("") | Some("{}") => Ok(None),
        Some(q) => parse_matchers(q, false)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// Streams of the request's tenant with data in `[start, end)` matching
/// `matchers` (all streams when `None`).
fn streams(
    app: &AppState,
    headers: &HeaderMap,
    matchers: Option<&[Matcher]>,
    start: i64,
    end: i64,
) -> Result<Vec<Arc<Stream>>, ApiError> {
    let t = tenant(headers, app.config.auth_enabled)?;
    Ok(match matchers {
        Some(m) => app.ingester.select_streams(&t, m, start, end),
        None => app.ingester.streams_in_range(&t, start, end),
    })
}

/// `GET /loki/api/v1/labels` (and `/loki/api/v1/label`).
pub async fn label_names(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&p, now_ns())?;
    let m = selector(p.get("query"))?;
    let mut names = BTreeSet::new();
    for s in streams(&app, &headers, m.as_deref(), start, end)? {
        for l in s.labels.iter() {
            if !HIDDEN.contains(&l.name.as_str()) {
                names.insert(l.name.clone());
            }
        }
    }
    Ok(json_response(json::success(&json::string_array(names))))
}

/// `GET /loki/api/v1/label/{name}/values`.
pub async fn label_values(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&p, now_ns())?;
    let m = selector(p.get("query"))?;
    let mut values = BTreeSet::new();
    for s in streams(&app, &headers, m.as_deref(), start, end)? {
        if let Some(v) = s.labels.get(&name) {
            values.insert(v.to_string());
        }
    }
    Ok(json_response(json::success(&json::string_array(values))))
}

/// `GET /loki/api/v1/series` with `match[]` or `match` (repeatable).
pub async fn series(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&p, now_ns())?;
    let selectors: Vec<&String> = p
        .all("match[]")
        .iter()
        .chain(p.all("match"))
        .filter(|s| !s.is_empty())
        .collect();
    let mut seen: BTreeMap<u64, Arc<LabelSet>> = BTreeMap::new();
    if selectors.is_empty() {
        for s in streams(&app, &headers, None, start, end)? {
            seen.insert(s.fp, s.labels.clone());
        }
    }
    for sel in selectors {
        let m = selector(Some(sel))?;
        for s in streams(&app, &headers, m.as_deref(), start, end)? {
            seen.insert(s.fp, s.labels.clone());
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
    Ok(json_response(json::success(&out)))
}

fn range_stats(set: &[Arc<Stream>], start: i64, end: i64) -> RangeStats {
    let mut total = RangeStats::default();
    for s in set {
        let r = s.state.lock().range_stats(start, end);
        total.chunks += r.chunks;
        total.bytes += r.bytes;
        total.entries += r.entries;
    }
    total
}

/// `GET /loki/api/v1/index/stats`: `{streams, chunks, bytes, entries}` of
/// the selector's streams in the range (bytes uncompressed).
pub async fn index_stats(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&p, now_ns())?;
    let m = selector(p.get("query"))?;
    let set = streams(&app, &headers, m.as_deref(), start, end)?;
    let mut matched = 0u64;
    let mut total = RangeStats::default();
    for s in &set {
        let r = s.state.lock().range_stats(start, end);
        if r.chunks > 0 {
            matched += 1;
        }
        total.chunks += r.chunks;
        total.bytes += r.bytes;
        total.entries += r.entries;
    }
    Ok(json_response(format!(
        "{{\"streams\":{matched},\"chunks\":{},\"bytes\":{},\"entries\":{}}}",
        total.chunks, total.bytes, total.entries
    )))
}

/// Groups streams for the volume endpoints: by `targetLabels` when given,
/// else by every label of the selector's matchers (`aggregateBy=labels`
/// reports each label alone), else by the whole series.
fn volume_groups(
    set: &[Arc<Stream>],
    p: &Params,
    matchers: Option<&[Matcher]>,
) -> Result<BTreeMap<LabelSet, Vec<Arc<Stream>>>, ApiError> {
    let targets: Vec<String> = match p.get("targetLabels") {
        Some(t) => t
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => matchers
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
    let mut groups: BTreeMap<LabelSet, Vec<Arc<Stream>>> = BTreeMap::new();
    for s in set {
        if by_labels {
            for name in &targets {
                if let Some(v) = s.labels.get(name) {
                    groups
                        .entry(LabelSet::from_pairs([(name.as_str(), v)]))
                        .or_default()
                        .push(s.clone());
                }
            }
        } else if targets.is_empty() {
            groups
                .entry((*s.labels).clone())
                .or_default()
                .push(s.clone());
        } else {
            let key = LabelSet::from_pairs(
                targets
                    .iter()
                    .filter_map(|n| s.labels.get(n).map(|v| (n.as_str(), v))),
            );
            groups.entry(key).or_default().push(s.clone());
        }
    }
    Ok(groups)
}

fn volume_limit(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None => Ok(100),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
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
    let (start, end) = bounds(&p, now_ns())?;
    let m = selector(p.get("query"))?;
    let set = streams(&app, &headers, m.as_deref(), start, end)?;
    let groups = volume_groups(&set, &p, m.as_deref())?;
    let mut rows: Vec<(LabelSet, u64)> = groups
        .into_iter()
        .map(|(k, v)| (k, range_stats(&v, start, end).bytes))
        .filter(|(_, b)| *b > 0)
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(volume_limit(&p)?);
    let mut out = String::from("{\"resultType\":\"vector\",\"result\":[");
    for (i, (labels, bytes)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        json::labels(&mut out, labels);
        out.push_str(",\"value\":[");
        json::seconds(&mut out, end);
        out.push_str(&format!(",\"{bytes}\"]}}"));
    }
    out.push_str("]}");
    Ok(json_response(json::success(&out)))
}

/// `GET /loki/api/v1/index/volume_range`: bytes per group and step as a
/// matrix; `step` defaults to one hour.
pub async fn volume_range(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let (start, end) = bounds(&p, now_ns())?;
    let step = match p.get("step") {
        Some(v) => parse_seconds_or_duration(v).map_err(ApiError::bad_request)?,
        None => 3_600_000_000_000,
    };
    if step <= 0 {
        return Err(ApiError::bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > super::params::MAX_POINTS {
        return Err(ApiError::bad_request(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ));
    }
    let m = selector(p.get("query"))?;
    let set = streams(&app, &headers, m.as_deref(), start, end)?;
    let groups = volume_groups(&set, &p, m.as_deref())?;
    // (group, total bytes, bytes per step)
    type Row = (LabelSet, u64, Vec<(i64, u64)>);
    let mut rows: Vec<Row> = Vec::new();
    for (labels, members) in groups {
        let mut points = Vec::new();
        let mut total = 0;
        let mut t = start;
        while t < end {
            let b = range_stats(&members, t, (t + step).min(end)).bytes;
            if b > 0 {
                points.push((t, b));
                total += b;
            }
            t += step;
        }
        if total > 0 {
            rows.push((labels, total, points));
        }
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(volume_limit(&p)?);
    let mut out = String::from("{\"resultType\":\"matrix\",\"result\":[");
    for (i, (labels, _, points)) in rows.iter().enumerate() {
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
    Ok(json_response(json::success(&out)))
}
