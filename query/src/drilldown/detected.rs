//! What Logs Drilldown's discovery endpoints (`detected_labels`,
//! `detected_fields` and `detected_field/{name}/values`) report.
//!
//! * **Labels** ([`detect_labels`]) come from the label index alone: every label of the
//!   streams with data in the range, with its number of distinct values.
//!   As in Loki, a label whose values all look like ids (numbers or UUIDs,
//!   except a `0`/`1` flag) is left out, unless it is one of the labels
//!   Drilldown always shows (`cluster`, `namespace`, `instance`, `pod`).
//! * **Fields** ([`detect_fields`], [`FieldSample`]) come from a sample:
//!   the newest `line_limit` entries the
//!   query selects (the engine's ordinary log query, categorised), each
//!   line tried as JSON and then as logfmt with the engine's own parsers,
//!   so that a field's name is exactly what `| json` or `| logfmt` would
//!   call it. Structured metadata (the stored `detected_level` among it)
//!   counts as fields with no parser. JSON fields carry `jsonPath`, the keys that
//!   lead to the value (Drilldown reads its presence as "Loki 3.5 or
//!   newer").
//!
//! Types follow Loki's tests in order (int, float, boolean, duration,
//! bytes, string). Loki keeps whichever type the last sampled value had;
//! we widen instead (int and float give float, any other mix gives
//! string), so a field's type does not flip with the sample's order.
//! Cardinalities are exact counts over the sample.
//!
//! Results are values; the store writes them as Loki's JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use xxhash_rust::xxh3::xxh3_64;

use super::entry_filter::{EntryFilter, LOG_QUERY_REQUIRED};
use crate::engine::{EngineError, QueryRequest, QueryValue, StreamResult, evaluate};
use crate::labels::LabelSet;
use crate::logql::parse_matchers;
use crate::matcher::Matcher;
use crate::pipeline::parsers::json::{Kind, object_each};
use crate::pipeline::parsers::sanitize_into;
use crate::pipeline::{LabelCategory, Pipeline, PipelineError, StageSpec, StreamPipeline};

/// Label names never reported (Grafana hides them too).
const HIDDEN: &[&str] = &["__aggregated_metric__", "__tenant_id__", "__stream_shard__"];
/// Labels Drilldown always shows, whatever their values look like.
const STATIC_LABELS: &[&str] = &["cluster", "namespace", "instance", "pod"];
/// Streams looked at between two looks at the cancel flag.
const CANCEL_CHECK_EVERY: usize = 256;

/// A label of the streams in a range, with its number of distinct values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedLabel {
    /// The label's name.
    pub name: String,
    /// Distinct values among the streams.
    pub cardinality: usize,
}

/// The labels Drilldown offers for `streams` (the streams with data in
/// the range), in name order; see the module docs for what is left out.
/// Stops with [`EngineError::Cancelled`] once `cancel` is raised.
pub fn detect_labels<'a>(
    streams: impl IntoIterator<Item = &'a LabelSet>,
    cancel: &AtomicBool,
) -> Result<Vec<DetectedLabel>, EngineError> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (i, labels) in streams.into_iter().enumerate() {
        if i.is_multiple_of(CANCEL_CHECK_EVERY) && cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        for l in labels.iter() {
            if !HIDDEN.contains(&l.name.as_str()) {
                values.entry(&l.name).or_default().insert(&l.value);
            }
        }
    }
    Ok(values
        .into_iter()
        .filter(|(name, vals)| STATIC_LABELS.contains(name) || !all_ids(vals))
        .map(|(name, vals)| DetectedLabel {
            name: name.to_string(),
            cardinality: vals.len(),
        })
        .collect())
}

/// The stream selector of a `query` parameter: `None` for an empty query
/// or `{}`. Loki reads a bare selector; a full log query is accepted too
/// (its selector is used). The error is the selector's parse error.
pub fn label_selector(q: Option<&str>) -> Result<Option<Vec<Matcher>>, EngineError> {
    match q.map(str::trim) {
        None | Some("") | Some("{}") => Ok(None),
        Some(q) => match parse_matchers(q, true) {
            Ok(m) => Ok(Some(m)),
            Err(e) => match EntryFilter::parse(q) {
                Ok(f) => Ok(Some(f.matchers().to_vec())),
                Err(_) => Err(EngineError::Parse(e)),
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
    crate::pipeline::parse_go_float(v).is_ok()
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
        } else if crate::pipeline::parse_go_duration(v).is_ok() {
            FieldType::Duration
        } else if crate::pipeline::parse_bytes(v).is_ok() {
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

    /// The fields found, in name order (at most the field limit).
    pub fn fields(&self) -> impl Iterator<Item = DetectedField<'_>> {
        self.fields.iter().map(|(name, f)| DetectedField {
            name,
            ty: f.ty.unwrap_or(FieldType::String),
            cardinality: f.seen.len(),
            parsers: &f.parsers,
            json_path: f.json_path.as_deref(),
        })
    }

    /// The most fields kept.
    pub fn field_limit(&self) -> usize {
        self.field_limit
    }

    /// The distinct values of the field named at construction, sorted (at
    /// most the value limit); none when it was not seen.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values_of
            .as_ref()
            .and_then(|n| self.fields.get(n))
            .into_iter()
            .flat_map(|f| f.values.iter().map(String::as_str))
    }

    /// The most values kept.
    pub fn value_limit(&self) -> usize {
        self.value_limit
    }
}

/// One detected field, as [`FieldSample::fields`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectedField<'a> {
    /// The name `| json` or `| logfmt` gives it (or the metadata name).
    pub name: &'a str,
    /// Its type over every sampled value ([`FieldType::String`] if none).
    pub ty: FieldType,
    /// Distinct values in the sample.
    pub cardinality: usize,
    /// The parsers that found it (`json`, `logfmt`), in the order they
    /// did; empty for structured metadata (`detected_level` among it).
    pub parsers: &'a [&'static str],
    /// For JSON fields, the keys that lead to the value.
    pub json_path: Option<&'a [String]>,
}

/// Field name → JSON keys leading to it, named the way `| json` names
/// flattened fields (sanitised keys joined with `_`), read with the same
/// scanner `| json` uses. Only called for lines `| json` parsed without
/// error.
fn json_paths(line: &str) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let mut path = Vec::new();
    // A line `| json` accepted scans the same way here; an error could
    // only leave some paths out.
    let _ = walk(line.as_bytes(), &mut String::new(), &mut path, &mut out);
    out
}

fn walk(
    obj: &[u8],
    prefix: &mut String,
    path: &mut Vec<String>,
    out: &mut HashMap<String, Vec<String>>,
) -> Result<(), crate::pipeline::parsers::json::JsonError> {
    let mut key_buf = String::new();
    object_each(obj, &mut key_buf, &mut |key, kind, value| {
        let mark = prefix.len();
        if !key.trim().is_empty() {
            if !prefix.is_empty() {
                prefix.push('_');
            }
            sanitize_into(key, prefix);
        }
        path.push(key.to_string());
        let r = match kind {
            Kind::Object => walk(value, prefix, path, out),
            Kind::String | Kind::Number | Kind::Boolean if !prefix.is_empty() => {
                out.entry(prefix.clone()).or_insert_with(|| path.clone());
                Ok(())
            }
            _ => Ok(()),
        };
        path.pop();
        prefix.truncate(mark);
        r
    })
}

fn json_path_of<'p>(paths: &'p HashMap<String, Vec<String>>, name: &str) -> Option<&'p [String]> {
    paths
        .get(name)
        .or_else(|| name.strip_suffix("_extracted").and_then(|b| paths.get(b)))
        .map(Vec::as_slice)
}

/// What [`detect_fields`] samples and keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequest {
    /// Most fields kept.
    pub field_limit: usize,
    /// Follow this field only and keep its distinct values (the values
    /// endpoint).
    pub values_of: Option<String>,
    /// Most values kept.
    pub value_limit: usize,
}

/// Runs `query` (a log query; its `limit` is the sample's size, its
/// `categorize_labels` is forced on) and feeds every entry it returns to
/// a [`FieldSample`]: the query and the detection are one piece of work,
/// stopped by the query's cancel flag.
pub fn detect_fields(
    source: &dyn crate::source::LogSource,
    query: &QueryRequest,
    fields: FieldRequest,
) -> Result<FieldSample, EngineError> {
    // Checked before any work: only a log query gives entries to sample.
    EntryFilter::parse(&query.query)?;
    let mut sample = FieldSample::new(fields.field_limit, fields.values_of, fields.value_limit)
        .map_err(|e| EngineError::Invalid(format!("field detection failed: {e}")))?;
    let req = QueryRequest {
        categorize_labels: true,
        instant: false,
        ..query.clone()
    };
    let (value, _) = evaluate(source, &req)?;
    let QueryValue::Streams(streams) = value else {
        return Err(EngineError::Invalid(LOG_QUERY_REQUIRED.into()));
    };
    for s in &streams {
        sample.add_stream(s);
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LogEntry;

    /// The sample in the shape of Loki's response (as the store writes
    /// it), so that the assertions read like the API.
    fn fields_json(s: &FieldSample) -> serde_json::Value {
        let fields: Vec<serde_json::Value> = s
            .fields()
            .map(|f| {
                let mut o = serde_json::json!({
                    "label": f.name,
                    "type": f.ty.name(),
                    "cardinality": f.cardinality,
                    "parsers": if f.parsers.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::json!(f.parsers)
                    },
                });
                if let Some(p) = f.json_path {
                    o["jsonPath"] = serde_json::json!(p);
                }
                o
            })
            .collect();
        serde_json::json!({"fields": fields, "limit": s.field_limit()})
    }

    fn values_json(s: &FieldSample) -> serde_json::Value {
        let values: Vec<&str> = s.values().collect();
        serde_json::json!({"values": values, "limit": s.value_limit()})
    }

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
        fields_json(&s)
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
                    &[("trace_id", "abc"), ("detected_level", "info")],
                    &[],
                ),
                entry(
                    r#"{"level":"warn","req":{"status":503.5,"took":"2s","user-agent":"go"},"ok":false,"app":"x"}"#,
                    &[("trace_id", "def"), ("detected_level", "warn")],
                    &[],
                ),
                entry(
                    "method=GET bytes=10KB msg=\"hi there\"",
                    &[("detected_level", "unknown")],
                    &[],
                ),
                entry("plain words only", &[("detected_level", "unknown")], &[]),
                // Written without level discovery: no level to report.
                entry("level=error", &[], &[]),
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
        // The stored values: info, warn, unknown (twice).
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
            entries: vec![
                entry("a=1 b=x c=3", &[("detected_level", "unknown")], &[]),
                entry("a=2 b=y", &[("detected_level", "unknown")], &[]),
            ],
        });
        let j = fields_json(&s);
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
        let v = values_json(&s);
        assert_eq!(v, serde_json::json!({"values": ["x", "y"], "limit": 10}));
        let mut s = FieldSample::new(1000, Some("b".into()), 1).unwrap();
        s.add_stream(&StreamResult {
            labels: LabelSet::from_pairs([("app", "a")]),
            entries: vec![entry("b=x", &[], &[]), entry("b=y", &[], &[])],
        });
        let v = values_json(&s);
        assert_eq!(v["values"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn labels_of_the_streams() {
        let streams = [
            LabelSet::from_pairs([("app", "api"), ("pod", "1"), ("id", "7")]),
            LabelSet::from_pairs([("app", "db"), ("pod", "2"), ("id", "8")]),
            LabelSet::from_pairs([("app", "db"), ("__stream_shard__", "1"), ("flag", "0")]),
        ];
        let got = detect_labels(&streams, &AtomicBool::new(false)).unwrap();
        let got: Vec<(&str, usize)> = got
            .iter()
            .map(|l| (l.name.as_str(), l.cardinality))
            .collect();
        // `id` holds ids only; `pod` is always shown; hidden names never.
        assert_eq!(got, [("app", 2), ("flag", 1), ("pod", 2)]);
        let e = detect_labels(&streams, &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(e, EngineError::Cancelled));
    }

    #[test]
    fn label_selectors() {
        assert_eq!(label_selector(None).unwrap(), None);
        assert_eq!(label_selector(Some(" {} ")).unwrap(), None);
        let m = label_selector(Some(r#"{app="a"}"#)).unwrap().unwrap();
        assert_eq!(m.len(), 1);
        let m = label_selector(Some(r#"{app="a", x!="y"} |= "e" | json"#))
            .unwrap()
            .unwrap();
        assert_eq!(m.len(), 2);
        let e = label_selector(Some(r#"{app="#)).unwrap_err();
        assert!(e.to_string().starts_with("parse error"), "{e}");
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn fields_of_a_query_over_a_source() {
        use crate::engine::mem::{Entry, MemSource, Stream};
        let entry = |ts: i64, line: &str| Entry {
            ts,
            line: line.into(),
            meta: vec![("trace_id".into(), format!("t{ts}"))],
        };
        let source = MemSource::new(
            vec![Stream {
                labels: LabelSet::from_pairs([("app", "api")]),
                entries: vec![
                    entry(1, r#"{"status":200,"path":"/a"}"#),
                    entry(2, r#"{"status":503,"path":"/b"}"#),
                    entry(3, "status=404 path=/c"),
                ],
            }],
            2,
        );
        let req = QueryRequest {
            tenant: "t".into(),
            query: r#"{app="api"}"#.into(),
            start: 0,
            end: 10,
            limit: 2,
            direction: crate::source::Direction::Backward,
            ..QueryRequest::default()
        };
        let fields = FieldRequest {
            field_limit: 100,
            values_of: None,
            value_limit: 100,
        };
        let s = detect_fields(&source, &req, fields.clone()).unwrap();
        let j = fields_json(&s);
        // The newest two entries, newest first: a logfmt line, then JSON.
        let st = field(&j, "status");
        assert_eq!(st["cardinality"], 2);
        assert_eq!(st["parsers"], serde_json::json!(["logfmt", "json"]));
        assert_eq!(st["jsonPath"], serde_json::json!(["status"]));
        assert_eq!(field(&j, "trace_id")["cardinality"], 2);
        let values = FieldRequest {
            values_of: Some("path".into()),
            ..fields.clone()
        };
        let s = detect_fields(&source, &req, values).unwrap();
        assert_eq!(s.values().collect::<Vec<_>>(), ["/b", "/c"]);
        let metric = QueryRequest {
            query: r#"count_over_time({app="api"}[1m])"#.into(),
            ..req.clone()
        };
        let e = detect_fields(&source, &metric, fields.clone()).unwrap_err();
        assert_eq!(e.to_string(), LOG_QUERY_REQUIRED);
        let cancelled = QueryRequest {
            cancel: Some(Arc::new(AtomicBool::new(true))),
            ..req
        };
        let e = detect_fields(&source, &cancelled, fields).unwrap_err();
        assert!(matches!(e, EngineError::Cancelled), "{e}");
    }

    #[test]
    fn json_paths_follow_json_naming() {
        let p = json_paths(r#"{"a":{"b-c":1,"d":[1]},"1x":"v","e":null,"a_b_c":2}"#);
        assert_eq!(p["a_b_c"], ["a", "b-c"]);
        assert_eq!(p["_1x"], ["1x"]);
        assert!(!p.contains_key("a_d") && !p.contains_key("e"));
        assert!(json_paths("not json").is_empty());
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
