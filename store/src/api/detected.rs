//! Logs Drilldown's discovery endpoints: `detected_labels`,
//! `detected_fields` and `detected_field/{name}/values`.
//!
//! * **Labels** come from the label index alone: every label of the
//!   streams with data in the range, with its number of distinct values.
//!   As in Loki, a label whose values all look like ids (numbers or UUIDs,
//!   except a `0`/`1` flag) is left out, unless it is one of the labels
//!   Drilldown always shows (`cluster`, `namespace`, `instance`, `pod`).
//! * **Fields** come from a sample: the newest `line_limit` entries the
//!   query selects (the engine's ordinary log query, categorised), each
//!   line tried as JSON and then as logfmt with the engine's own parsers,
//!   so that a field's name is exactly what `| json` or `| logfmt` would
//!   call it. Structured metadata and the derived `detected_level` count
//!   as fields with no parser. JSON fields carry `jsonPath`, the keys that
//!   lead to the value (Drilldown reads its presence as "Loki 3.5 or
//!   newer").
//!
//! Types follow Loki's tests in order (int, float, boolean, duration,
//! bytes, string). Loki keeps whichever type the last sampled value had;
//! we widen instead (int and float give float, any other mix gives
//! string), so a field's type does not flip with the sample's order.
//! Cardinalities are exact counts over the sample.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use larch_query::engine::{
    DETECTED_LEVEL, Deriver, QueryRequest, QueryValue, StreamResult, evaluate,
};
use larch_query::logql::parse_matchers;
use larch_query::pipeline::{LabelCategory, Pipeline, PipelineError, StageSpec, StreamPipeline};
use larch_query::{Direction, LabelSet, Matcher};
use xxhash_rust::xxh3::xxh3_64;

use super::entry_filter::EntryFilter;
use super::exec::{self, check};
use super::params::{Params, bounds, now_ns};
use super::{ApiError, LokiParams, json, json_response, tenant};
use crate::server::AppState;

/// Label names never reported (Grafana hides them too).
const HIDDEN: &[&str] = &["__aggregated_metric__", "__tenant_id__", "__stream_shard__"];
/// Labels Drilldown always shows, whatever their values look like.
const STATIC_LABELS: &[&str] = &["cluster", "namespace", "instance", "pod"];
/// Default `line_limit`: entries sampled for field detection.
pub const DEFAULT_LINE_LIMIT: usize = 1000;
/// Default `limit` (`field_limit`): most fields, or most values.
pub const DEFAULT_FIELD_LIMIT: usize = 1000;

/// `GET /loki/api/v1/detected_labels`.
pub async fn detected_labels(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = tenant(&headers, app.config.auth_enabled)?;
    let (start, end) = bounds(&p, now_ns())?;
    let matchers = selector(p.get("query"))?;
    let ing = app.ingester.clone();
    let body = exec::run(&app, move |cancel| {
        let streams = match &matchers {
            Some(m) => ing.select_streams(&t, m, start, end),
            None => ing.streams_in_range(&t, start, end),
        };
        let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (i, s) in streams.iter().enumerate() {
            check(&cancel, i)?;
            for l in s.labels.iter() {
                if !HIDDEN.contains(&l.name.as_str()) {
                    values.entry(&l.name).or_default().insert(&l.value);
                }
            }
        }
        let mut out = String::from("{\"detectedLabels\":[");
        let mut first = true;
        for (name, vals) in &values {
            if !STATIC_LABELS.contains(name) && all_ids(vals) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str("{\"label\":");
            json::string(&mut out, name);
            out.push_str(&format!(",\"cardinality\":{}}}", vals.len()));
        }
        out.push_str("]}");
        Ok(out)
    })
    .await?;
    Ok(json_response(body))
}

/// The stream selector of `query`: `None` for an empty query or `{}`.
/// Loki reads a bare selector; a full log query is accepted too (its
/// selector is used).
fn selector(q: Option<&str>) -> Result<Option<Vec<Matcher>>, ApiError> {
    match q.map(str::trim) {
        None | Some("") | Some("{}") => Ok(None),
        Some(q) => match parse_matchers(q, true) {
            Ok(m) => Ok(Some(m)),
            Err(e) => match EntryFilter::parse(q) {
                Ok(f) => Ok(Some(f.matchers().to_vec())),
                Err(_) => Err(ApiError::bad_request(e.to_string())),
            },
        },
    }
}

/// Whether every value looks like an id (Loki's rule: numbers and UUIDs;
/// one or two values that are all `0`/`1` are a flag, not ids).
fn all_ids(values: &BTreeSet<&str>) -> bool {
    if values.len() <= 2 && values.iter().all(|v| *v == "0" || *v == "1") {
        return false;
    }
    values.iter().all(|v| is_go_float(v) || is_uuid(v))
}

fn is_go_float(v: &str) -> bool {
    larch_query::pipeline::parse_go_float(v).is_ok()
}

fn is_uuid(v: &str) -> bool {
    let s = v
        .strip_prefix("urn:uuid:")
        .unwrap_or(v)
        .trim_start_matches('{')
        .trim_end_matches('}');
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// A detected field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A 64-bit integer.
    Int,
    /// A float.
    Float,
    /// `true`, `false`, `1`, `t`, ... (Go's `ParseBool`).
    Boolean,
    /// A Go duration (`1.5s`, `2h45m`).
    Duration,
    /// A byte size (`10MB`, `5 KiB`).
    Bytes,
    /// Anything else.
    String,
}

impl FieldType {
    /// Loki's name.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Duration => "duration",
            FieldType::Bytes => "bytes",
            FieldType::String => "string",
        }
    }

    /// The type of one value.
    pub fn of(v: &str) -> FieldType {
        if is_go_int(v) {
            FieldType::Int
        } else if is_go_float(v) {
            FieldType::Float
        } else if matches!(
            v,
            "1" | "t"
                | "T"
                | "TRUE"
                | "true"
                | "True"
                | "0"
                | "f"
                | "F"
                | "FALSE"
                | "false"
                | "False"
        ) {
            FieldType::Boolean
        } else if larch_query::pipeline::parse_go_duration(v).is_ok() {
            FieldType::Duration
        } else if larch_query::pipeline::parse_bytes(v).is_ok() {
            FieldType::Bytes
        } else {
            FieldType::String
        }
    }

    /// The type of a field that had both `self` and `other` values.
    fn widen(self, other: FieldType) -> FieldType {
        match (self, other) {
            (a, b) if a == b => a,
            (FieldType::Int, FieldType::Float) | (FieldType::Float, FieldType::Int) => {
                FieldType::Float
            }
            _ => FieldType::String,
        }
    }
}

fn is_go_int(v: &str) -> bool {
    let d = v.strip_prefix(['+', '-']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && v.parse::<i64>().is_ok()
}

/// What is known of one field.
#[derive(Debug)]
struct Field {
    ty: Option<FieldType>,
    parsers: Vec<&'static str>,
    json_path: Option<Vec<String>>,
    seen: HashSet<u64>,
    values: BTreeSet<String>,
}

/// Fields found in a sample (see the module docs).
#[derive(Debug)]
pub struct FieldSample {
    fields: BTreeMap<String, Field>,
    field_limit: usize,
    value_limit: usize,
    /// Collect distinct values of this field only (the values endpoint).
    values_of: Option<String>,
    json: Pipeline,
    logfmt: Pipeline,
    parsers: HashMap<u64, (StreamPipeline, StreamPipeline)>,
    deriver: Deriver,
    meta: Vec<u8>,
}

impl FieldSample {
    /// An empty sample keeping at most `field_limit` fields; with
    /// `values_of`, the distinct values of that field (at most
    /// `value_limit`) are kept too.
    pub fn new(
        field_limit: usize,
        values_of: Option<String>,
        value_limit: usize,
    ) -> Result<FieldSample, PipelineError> {
        let json = Pipeline::new(&[StageSpec::Json { params: Vec::new() }])?;
        let logfmt = Pipeline::new(&[StageSpec::Logfmt {
            strict: false,
            keep_empty: false,
            params: Vec::new(),
        }])?;
        Ok(FieldSample {
            fields: BTreeMap::new(),
            field_limit,
            value_limit,
            values_of,
            json,
            logfmt,
            parsers: HashMap::new(),
            deriver: Deriver::default(),
            meta: Vec::new(),
        })
    }

    fn add(
        &mut self,
        name: &str,
        value: &str,
        parser: Option<&'static str>,
        json_path: Option<&[String]>,
    ) {
        // The values endpoint follows one field only, whatever the limit.
        if self.values_of.as_deref().is_some_and(|v| v != name) {
            return;
        }
        if !self.fields.contains_key(name) {
            if self.fields.len() >= self.field_limit {
                return;
            }
            self.fields.insert(
                name.to_string(),
                Field {
                    ty: None,
                    parsers: Vec::new(),
                    json_path: None,
                    seen: HashSet::new(),
                    values: BTreeSet::new(),
                },
            );
        }
        let Some(f) = self.fields.get_mut(name) else {
            return;
        };
        if let Some(p) = parser
            && !f.parsers.contains(&p)
        {
            f.parsers.push(p);
        }
        if f.json_path.is_none()
            && let Some(path) = json_path
        {
            f.json_path = Some(path.to_vec());
        }
        if f.seen.insert(xxh3_64(value.as_bytes())) {
            let t = FieldType::of(value);
            f.ty = Some(f.ty.map_or(t, |old| old.widen(t)));
            if self.values_of.as_deref() == Some(name) && f.values.len() < self.value_limit {
                f.values.insert(value.to_string());
            }
        }
    }

    /// Adds the entries of one result stream (categorised).
    pub fn add_stream(&mut self, s: &StreamResult) {
        let labels = Arc::new(s.labels.clone());
        let fp = s.labels.fingerprint();
        for e in &s.entries {
            for (n, v) in &e.structured_metadata {
                self.add(n, v, None, None);
            }
            if !e
                .structured_metadata
                .iter()
                .any(|(n, _)| n == DETECTED_LEVEL)
            {
                self.meta.clear();
                for (n, v) in &e.structured_metadata {
                    crate::encoding::put_bytes(&mut self.meta, n.as_bytes());
                    crate::encoding::put_bytes(&mut self.meta, v.as_bytes());
                }
                let level = self
                    .deriver
                    .level(&labels, &self.meta, e.line.as_bytes())
                    .to_string();
                self.add(DETECTED_LEVEL, &level, None, None);
            }
            let (found, parser, paths) = self.parse_line(fp, &labels, &e.line);
            for (n, v) in &e.parsed {
                if n != "__error__" && n != "__error_details__" {
                    self.add(n, v, parser, None);
                }
            }
            for (n, v) in &found {
                let path = paths.as_ref().and_then(|p| json_path_of(p, n));
                self.add(n, v, parser, path);
            }
        }
    }

    /// The line's fields as `| json` (else `| logfmt`) would set them.
    #[allow(clippy::type_complexity)]
    fn parse_line(
        &mut self,
        fp: u64,
        labels: &Arc<LabelSet>,
        line: &str,
    ) -> (
        Vec<(String, String)>,
        Option<&'static str>,
        Option<HashMap<String, Vec<String>>>,
    ) {
        let (json, logfmt) = (&self.json, &self.logfmt);
        let (j, l) = self.parsers.entry(fp).or_insert_with(|| {
            (
                json.for_stream(labels.clone()),
                logfmt.for_stream(labels.clone()),
            )
        });
        let parsed = |sp: &mut StreamPipeline| -> Option<Vec<(String, String)>> {
            let (_, lb) = sp.process(0, line.as_bytes(), &[])?;
            if lb.has_err() {
                return None;
            }
            let mut v = Vec::new();
            lb.for_each(|n, val, c| {
                if c == LabelCategory::Parsed {
                    v.push((n.to_string(), val.to_string()));
                }
            });
            Some(v)
        };
        if line.trim_start().starts_with('{')
            && let Some(v) = parsed(j)
        {
            return (v, Some("json"), Some(json_paths(line)));
        }
        match parsed(l) {
            Some(v) if !v.is_empty() => (v, Some("logfmt"), None),
            _ => (Vec::new(), None, None),
        }
    }

    /// `{"fields":[...],"limit":N}`.
    pub fn fields_json(&self) -> String {
        let mut out = String::from("{\"fields\":[");
        for (i, (name, f)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"label\":");
            json::string(&mut out, name);
            out.push_str(",\"type\":\"");
            out.push_str(f.ty.unwrap_or(FieldType::String).name());
            out.push_str(&format!("\",\"cardinality\":{},\"parsers\":", f.seen.len()));
            if f.parsers.is_empty() {
                out.push_str("null");
            } else {
                out.push_str(&json::string_array(&f.parsers));
            }
            if let Some(p) = &f.json_path {
                out.push_str(",\"jsonPath\":");
                out.push_str(&json::string_array(p));
            }
            out.push('}');
        }
        out.push_str(&format!("],\"limit\":{}}}", self.field_limit));
        out
    }

    /// `{"values":[...],"limit":N}` for the field named at construction.
    pub fn values_json(&self) -> String {
        let values = self
            .values_of
            .as_ref()
            .and_then(|n| self.fields.get(n))
            .map(|f| json::string_array(&f.values))
            .unwrap_or_else(|| "[]".to_string());
        format!("{{\"values\":{values},\"limit\":{}}}", self.value_limit)
    }
}

/// Field name → JSON keys leading to it, named the way `| json` names
/// flattened fields (sanitised keys joined with `_`).
fn json_paths(line: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(line) {
        let mut path = Vec::new();
        walk(&m, &mut String::new(), &mut path, &mut out);
    }
    out
}

fn walk(
    m: &serde_json::Map<String, serde_json::Value>,
    prefix: &mut String,
    path: &mut Vec<String>,
    out: &mut HashMap<String, Vec<String>>,
) {
    for (k, v) in m {
        let mark = prefix.len();
        if !k.trim().is_empty() {
            if !prefix.is_empty() {
                prefix.push('_');
            }
            sanitize_into(k, prefix);
        }
        path.push(k.clone());
        match v {
            serde_json::Value::Object(inner) => walk(inner, prefix, path, out),
            serde_json::Value::String(_)
            | serde_json::Value::Number(_)
            | serde_json::Value::Bool(_)
                if !prefix.is_empty() =>
            {
                out.entry(prefix.clone()).or_insert_with(|| path.clone());
            }
            _ => {}
        }
        path.pop();
        prefix.truncate(mark);
    }
}

/// `| json`'s key sanitising: `[a-zA-Z0-9_]` kept, anything else `_`,
/// `_` before a leading digit of the whole name.
fn sanitize_into(key: &str, out: &mut String) {
    let key = key.trim();
    if out.is_empty() && key.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

fn json_path_of<'p>(paths: &'p HashMap<String, Vec<String>>, name: &str) -> Option<&'p [String]> {
    paths
        .get(name)
        .or_else(|| name.strip_suffix("_extracted").and_then(|b| paths.get(b)))
        .map(Vec::as_slice)
}

fn usize_param(p: &Params, keys: &[&str], default: usize) -> Result<usize, ApiError> {
    for k in keys {
        if let Some(v) = p.get(k) {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
            })?;
            if n <= 0 {
                return Err(ApiError::bad_request(format!(
                    "{k} must be a positive value"
                )));
            }
            return Ok(n as usize);
        }
    }
    Ok(default)
}

/// Runs the sample query and feeds a [`FieldSample`].
async fn sample(
    app: &AppState,
    headers: &HeaderMap,
    p: &Params,
    values_of: Option<String>,
) -> Result<FieldSample, ApiError> {
    let t = tenant(headers, app.config.auth_enabled)?;
    let limits = app.config.limits_for(t.as_str());
    let (start, end) = bounds(p, now_ns())?;
    let query = p.get("query").unwrap_or_default().to_string();
    // Check it is a log query before running anything.
    EntryFilter::parse(&query)?;
    let line_limit = usize_param(p, &["line_limit"], DEFAULT_LINE_LIMIT)?;
    let max = limits.max_entries_limit_per_query;
    if max > 0 && line_limit > max {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({line_limit} > {max})"
        )));
    }
    let limit = usize_param(p, &["limit", "field_limit"], DEFAULT_FIELD_LIMIT)?;
    let req = QueryRequest {
        tenant: t.to_string(),
        query,
        start,
        end,
        step: 0,
        interval: 0,
        limit: u32::try_from(line_limit).unwrap_or(u32::MAX),
        direction: Direction::Backward,
        instant: false,
        categorize_labels: true,
        max_series: limits.max_query_series,
        cancel: None,
    };
    // The sample query and the field detection run as one piece of work
    // under the query slots and timeout.
    let ingester = app.ingester.clone();
    exec::run(app, move |cancel| {
        let mut req = req;
        req.cancel = Some(cancel);
        let (value, _) = evaluate(ingester.as_ref(), &req).map_err(super::query::engine_error)?;
        let QueryValue::Streams(streams) = value else {
            return Err(ApiError::bad_request(
                super::entry_filter::LOG_QUERY_REQUIRED,
            ));
        };
        let mut sample = FieldSample::new(limit, values_of, limit).map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("field detection failed: {e}"),
            )
        })?;
        for s in &streams {
            sample.add_stream(s);
        }
        Ok(sample)
    })
    .await
}

/// `GET /loki/api/v1/detected_fields`.
pub async fn detected_fields(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let s = sample(&app, &headers, &p, None).await?;
    Ok(json_response(s.fields_json()))
}

/// `GET /loki/api/v1/detected_field/{name}/values`.
pub async fn detected_field_values(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let s = sample(&app, &headers, &p, Some(name)).await?;
    Ok(json_response(s.values_json()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_query::engine::LogEntry;

    fn entry(line: &str, sm: &[(&str, &str)], parsed: &[(&str, &str)]) -> LogEntry {
        let own = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        LogEntry {
            ts: 1,
            line: line.into(),
            structured_metadata: own(sm),
            parsed: own(parsed),
        }
    }

    fn fields(entries: Vec<LogEntry>, labels: &[(&str, &str)]) -> serde_json::Value {
        let mut s = FieldSample::new(1000, None, 1000).unwrap();
        s.add_stream(&StreamResult {
            labels: LabelSet::from_pairs(labels.iter().copied()),
            entries,
        });
        serde_json::from_str(&s.fields_json()).unwrap()
    }

    fn field<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        j["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["label"] == name)
            .unwrap_or_else(|| panic!("no field {name} in {j}"))
    }

    #[test]
    fn types_in_lokis_order() {
        assert_eq!(FieldType::of("42"), FieldType::Int);
        assert_eq!(FieldType::of("-7"), FieldType::Int);
        assert_eq!(FieldType::of("1.5"), FieldType::Float);
        assert_eq!(FieldType::of("1e3"), FieldType::Float);
        assert_eq!(FieldType::of("true"), FieldType::Boolean);
        assert_eq!(FieldType::of("F"), FieldType::Boolean);
        assert_eq!(FieldType::of("1.5s"), FieldType::Duration);
        assert_eq!(FieldType::of("2h45m"), FieldType::Duration);
        assert_eq!(FieldType::of("10MB"), FieldType::Bytes);
        assert_eq!(FieldType::of("5 KiB"), FieldType::Bytes);
        assert_eq!(FieldType::of("GET"), FieldType::String);
        assert_eq!(FieldType::of(""), FieldType::String);
        assert_eq!(FieldType::Int.widen(FieldType::Float), FieldType::Float);
        assert_eq!(FieldType::Int.widen(FieldType::Duration), FieldType::String);
    }

    #[test]
    fn json_fields_with_paths_logfmt_and_metadata() {
        let j = fields(
            vec![
                entry(
                    r#"{"level":"info","req":{"status":200,"took":"1.5ms","user-agent":"curl"},"ok":true}"#,
                    &[("trace_id", "abc")],
                    &[],
                ),
                entry(
                    r#"{"level":"warn","req":{"status":503.5,"took":"2s","user-agent":"go"},"ok":false,"app":"x"}"#,
                    &[("trace_id", "def")],
                    &[],
                ),
                entry("method=GET bytes=10KB msg=\"hi there\"", &[], &[]),
                entry("plain words only", &[], &[]),
            ],
            &[("app", "api")],
        );
        let st = field(&j, "req_status");
        assert_eq!(st["type"], "float");
        assert_eq!(st["cardinality"], 2);
        assert_eq!(st["parsers"], serde_json::json!(["json"]));
        assert_eq!(st["jsonPath"], serde_json::json!(["req", "status"]));
        assert_eq!(field(&j, "req_took")["type"], "duration");
        assert_eq!(
            field(&j, "req_user_agent")["jsonPath"],
            serde_json::json!(["req", "user-agent"])
        );
        assert_eq!(field(&j, "ok")["type"], "boolean");
        // A key clashing with a stream label is renamed as `| json` does.
        assert_eq!(
            field(&j, "app_extracted")["jsonPath"],
            serde_json::json!(["app"])
        );
        let tr = field(&j, "trace_id");
        assert!(tr["parsers"].is_null());
        assert!(tr.get("jsonPath").is_none());
        assert_eq!(
            field(&j, "method")["parsers"],
            serde_json::json!(["logfmt"])
        );
        assert_eq!(field(&j, "bytes")["type"], "bytes");
        assert!(field(&j, "method").get("jsonPath").is_none());
        let lvl = field(&j, "detected_level");
        assert!(lvl["parsers"].is_null());
        // info, warn, unknown (logfmt line without level), unknown.
        assert_eq!(lvl["cardinality"], 2 + 1);
        assert_eq!(j["limit"], 1000);
        // The plain line contributes nothing beyond its level.
        assert!(
            j["fields"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["label"] != "plain")
        );
    }

    #[test]
    fn field_limit_and_values() {
        let mut s = FieldSample::new(2, None, 10).unwrap();
        s.add_stream(&StreamResult {
            labels: LabelSet::from_pairs([("app", "a")]),
            entries: vec![entry("a=1 b=x c=3", &[], &[]), entry("a=2 b=y", &[], &[])],
        });
        let j: serde_json::Value = serde_json::from_str(&s.fields_json()).unwrap();
        // detected_level came first, then `a`; `b` and `c` found no room.
        let names: Vec<&str> = j["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["label"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "detected_level"]);
        assert_eq!(j["limit"], 2);
        // Values of one field are collected whatever the field limit.
        let mut s = FieldSample::new(1, Some("b".into()), 10).unwrap();
        s.add_stream(&StreamResult {
            labels: LabelSet::from_pairs([("app", "a")]),
            entries: vec![
                entry("a=1 b=x c=3", &[], &[]),
                entry("a=2 b=y", &[], &[]),
                entry("b=x", &[], &[]),
            ],
        });
        let v: serde_json::Value = serde_json::from_str(&s.values_json()).unwrap();
        assert_eq!(v, serde_json::json!({"values": ["x", "y"], "limit": 10}));
        let mut s = FieldSample::new(1000, Some("b".into()), 1).unwrap();
        s.add_stream(&StreamResult {
            labels: LabelSet::from_pairs([("app", "a")]),
            entries: vec![entry("b=x", &[], &[]), entry("b=y", &[], &[])],
        });
        let v: serde_json::Value = serde_json::from_str(&s.values_json()).unwrap();
        assert_eq!(v["values"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn id_like_labels_are_left_out() {
        let set = |v: &[&'static str]| v.iter().copied().collect::<BTreeSet<&str>>();
        assert!(all_ids(&set(&["1", "2", "3"])));
        assert!(all_ids(&set(&["3fa85f64-5717-4562-b3fc-2c963f66afa6"])));
        assert!(!all_ids(&set(&["0", "1"])));
        assert!(!all_ids(&set(&["api", "2"])));
        assert!(!all_ids(&set(&["api"])));
        assert!(is_uuid(
            "3FA85F645717 4562B3FC2C963F66AFA6"
                .replace(' ', "")
                .as_str()
        ));
        assert!(!is_uuid("3fa85f64-5717-4562-b3fc-2c963f66afa"));
    }
}
