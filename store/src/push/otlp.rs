//! OTLP/HTTP logs (`POST /otlp/v1/logs`), protobuf or JSON, mapped to
//! streams the way Loki maps them:
//!
//! * a fixed list of resource attributes become stream labels (dots turned
//!   into underscores: `service.name` → `service_name`); a stream without
//!   `service.name` gets `service_name="unknown_service"`;
//! * every other resource attribute, the scope's name, version and
//!   attributes, the record's attributes, `severity_text`,
//!   `severity_number`, `trace_id`, `span_id` (hex), `flags`,
//!   `dropped_attributes_count` and `observed_timestamp` become
//!   structured metadata; nested maps flatten as `outer_inner`;
//! * the body, rendered as a string, is the line; the timestamp is
//!   `time_unix_nano`, else `observed_time_unix_nano`, else now.

use std::collections::BTreeMap;
use std::mem::size_of;

use larch_proto::otlp;
use prost::Message;

use super::json::Shape;
use super::meter::Meter;
use super::{DecodeError, Push, PushEntry, PushStream, StreamLabels};

/// Resource attributes that become stream labels.
const INDEX_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Decodes a protobuf `ExportLogsServiceRequest` (after content encoding).
pub fn decode_protobuf(body: &[u8], meter: &mut Meter) -> Result<Push, DecodeError> {
    meter.charge(scan::bound(body))?;
    let req = otlp::ExportLogsServiceRequest::decode(body)
        .map_err(|e| DecodeError::bad(format!("failed to parse OTLP logs protobuf: {e}")))?;
    to_push(req, now_ns(), meter)
}

/// Decodes OTLP's JSON encoding of `ExportLogsServiceRequest`.
pub fn decode_json(body: &[u8], meter: &mut Meter) -> Result<Push, DecodeError> {
    // The value tree, then the request built from it: per container at
    // most a record and a JSON object, per member a map entry, and every
    // string twice.
    let per_container = size_of::<otlp::LogRecord>() + size_of::<serde_json::Value>() + 64;
    let per_member = 2 * size_of::<serde_json::Value>() + size_of::<otlp::KeyValue>() + 64;
    let bound = Shape::of(body).bound(body.len().saturating_mul(2), per_container, per_member);
    meter.charge(bound)?;
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::bad(format!("failed to parse OTLP logs JSON: {e}")))?;
    let req =
        json::request(&v).map_err(|e| DecodeError::bad(format!("invalid OTLP logs JSON: {e}")))?;
    drop(v);
    to_push(req, now_ns(), meter)
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// Structured metadata pairs being built, each charged before it is added.
struct Pairs<'m> {
    meter: &'m mut Meter,
    pairs: Vec<(String, String)>,
}

impl Pairs<'_> {
    fn add(&mut self, name: String, value: String) -> Result<(), DecodeError> {
        self.meter.charge(name.len().saturating_add(value.len()))?;
        self.meter.push(&mut self.pairs, (name, value))
    }

    /// Adds a value rendered as a string (charged before rendering).
    fn add_value(
        &mut self,
        name: String,
        value: Option<&otlp::AnyValue>,
    ) -> Result<(), DecodeError> {
        self.meter.charge(render_bound(value))?;
        let value = any_to_string(value);
        self.meter.push(&mut self.pairs, (name, value))
    }

    /// Adds `key=value`, flattening maps as `key_inner`.
    fn flatten(&mut self, key: &str, value: Option<&otlp::AnyValue>) -> Result<(), DecodeError> {
        use otlp::any_value::Value;
        match value.and_then(|v| v.value.as_ref()) {
            Some(Value::KvlistValue(list)) => {
                for kv in &list.values {
                    self.meter.charge(key.len() + 1 + kv.key.len())?;
                    self.flatten(&format!("{key}_{}", kv.key), kv.value.as_ref())?;
                }
                Ok(())
            }
            _ => {
                self.meter.charge(key.len() + 4)?;
                self.add_value(normalize(key), value)
            }
        }
    }

    /// Bytes the pairs hold, as [`Pairs::extend`] copies them.
    fn size(pairs: &[(String, String)]) -> usize {
        pairs.iter().fold(0usize, |n, (k, v)| {
            n.saturating_add(k.len() + v.len() + size_of::<(String, String)>())
        })
    }

    fn extend(&mut self, more: &[(String, String)]) -> Result<(), DecodeError> {
        // The vector may double to take them.
        let growth = more.len().saturating_mul(size_of::<(String, String)>());
        self.meter
            .charge(Pairs::size(more).saturating_add(growth))?;
        self.pairs.extend_from_slice(more);
        Ok(())
    }
}

/// Maps a request to streams; `now` stamps records without any time.
/// Everything it allocates is charged to `meter` first (a resource's
/// attributes are copied into every record below it, so the copies can
/// outgrow the request many times over).
pub fn to_push(
    req: otlp::ExportLogsServiceRequest,
    now: i64,
    meter: &mut Meter,
) -> Result<Push, DecodeError> {
    let mut streams: BTreeMap<Vec<(String, String)>, Vec<PushEntry>> = BTreeMap::new();
    for rl in req.resource_logs {
        let mut labels = Pairs {
            meter: &mut *meter,
            pairs: Vec::new(),
        };
        let mut resource_meta = Vec::new();
        for kv in rl.resource.map(|r| r.attributes).unwrap_or_default() {
            if INDEX_ATTRIBUTES.contains(&kv.key.as_str()) {
                labels.meter.charge(kv.key.len() + 4)?;
                labels.add_value(normalize(&kv.key), kv.value.as_ref())?;
            } else {
                let mut meta = Pairs {
                    meter: &mut *labels.meter,
                    pairs: resource_meta,
                };
                meta.flatten(&kv.key, kv.value.as_ref())?;
                resource_meta = meta.pairs;
            }
        }
        let mut labels = labels.pairs;
        if !labels.iter().any(|(k, _)| k == "service_name") {
            meter.push(
                &mut labels,
                ("service_name".to_string(), "unknown_service".to_string()),
            )?;
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        let mut entries = streams.remove(&labels).unwrap_or_default();
        for sl in rl.scope_logs {
            let mut scope_meta = Pairs {
                meter: &mut *meter,
                pairs: Vec::new(),
            };
            if let Some(scope) = &sl.scope {
                for kv in &scope.attributes {
                    scope_meta.flatten(&kv.key, kv.value.as_ref())?;
                }
                if !scope.name.is_empty() {
                    scope_meta.add("scope_name".to_string(), scope.name.clone())?;
                }
                if !scope.version.is_empty() {
                    scope_meta.add("scope_version".to_string(), scope.version.clone())?;
                }
                if scope.dropped_attributes_count != 0 {
                    scope_meta.add(
                        "scope_dropped_attributes_count".to_string(),
                        scope.dropped_attributes_count.to_string(),
                    )?;
                }
            }
            let scope_meta = scope_meta.pairs;
            for rec in sl.log_records {
                let entry = record_to_entry(rec, &resource_meta, &scope_meta, now, meter)?;
                meter.push(&mut entries, entry)?;
            }
        }
        // The map holds the labels once per stream (a B-tree node each).
        meter.charge(Pairs::size(&labels).saturating_add(64))?;
        streams.insert(labels, entries);
    }
    meter.charge_items::<PushStream>(streams.len())?;
    let mut out = Vec::with_capacity(streams.len());
    for (labels, entries) in streams {
        if !entries.is_empty() {
            out.push(PushStream {
                labels: StreamLabels::Pairs(labels),
                entries,
            });
        }
    }
    Ok(Push::new(out))
}

fn record_to_entry(
    rec: otlp::LogRecord,
    resource_meta: &[(String, String)],
    scope_meta: &[(String, String)],
    now: i64,
    meter: &mut Meter,
) -> Result<PushEntry, DecodeError> {
    let mut meta = Pairs {
        meter,
        pairs: Vec::new(),
    };
    for kv in &rec.attributes {
        meta.flatten(&kv.key, kv.value.as_ref())?;
    }
    if rec.time_unix_nano != 0 && rec.observed_time_unix_nano != 0 {
        meta.add(
            "observed_timestamp".to_string(),
            rec.observed_time_unix_nano.to_string(),
        )?;
    }
    if rec.severity_number != 0 {
        meta.add(
            "severity_number".to_string(),
            rec.severity_number.to_string(),
        )?;
    }
    if !rec.severity_text.is_empty() {
        meta.add("severity_text".to_string(), rec.severity_text.clone())?;
    }
    if rec.dropped_attributes_count != 0 {
        meta.add(
            "dropped_attributes_count".to_string(),
            rec.dropped_attributes_count.to_string(),
        )?;
    }
    if rec.flags != 0 {
        meta.add("flags".to_string(), rec.flags.to_string())?;
    }
    if rec.trace_id.iter().any(|&b| b != 0) {
        meta.meter.charge(rec.trace_id.len().saturating_mul(2))?;
        meta.add("trace_id".to_string(), hex(&rec.trace_id))?;
    }
    if rec.span_id.iter().any(|&b| b != 0) {
        meta.meter.charge(rec.span_id.len().saturating_mul(2))?;
        meta.add("span_id".to_string(), hex(&rec.span_id))?;
    }
    meta.extend(resource_meta)?;
    meta.extend(scope_meta)?;
    let metadata = meta.pairs;
    let meter = meta.meter;
    let ts = [rec.time_unix_nano, rec.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0)
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(now);
    // A string body (held since decoding) is moved, anything else rendered.
    let line = match rec.body {
        Some(otlp::AnyValue {
            value: Some(otlp::any_value::Value::StringValue(s)),
        }) => s,
        other => {
            meter.charge(render_bound(other.as_ref()))?;
            any_to_string(other.as_ref())
        }
    };
    let (line, omitted) = meter.clip_line(line);
    Ok(PushEntry {
        ts,
        line: line.into(),
        metadata,
        omitted,
    })
}

/// An upper bound of what rendering `value` as a string allocates: the
/// JSON tree built for arrays and maps (a node and a map entry per value)
/// and the text (a string at most six times longer once escaped, bytes
/// four thirds once in base64, a number at most 24 characters).
fn render_bound(value: Option<&otlp::AnyValue>) -> usize {
    use otlp::any_value::Value;
    const NODE: usize = 160;
    match value.and_then(|v| v.value.as_ref()) {
        None => 0,
        Some(Value::StringValue(s)) => s.len().saturating_mul(8).saturating_add(NODE),
        Some(Value::BytesValue(b)) => b.len().saturating_mul(8).saturating_add(NODE),
        Some(Value::BoolValue(_) | Value::IntValue(_) | Value::DoubleValue(_)) => NODE,
        Some(Value::ArrayValue(a)) => a
            .values
            .iter()
            .fold(NODE, |n, v| n.saturating_add(render_bound(Some(v)))),
        Some(Value::KvlistValue(l)) => l.values.iter().fold(NODE, |n, kv| {
            n.saturating_add(kv.key.len().saturating_mul(8))
                .saturating_add(render_bound(kv.value.as_ref()))
                .saturating_add(NODE)
        }),
    }
}

/// Counting what prost allocates for a request, before it does.
mod scan {
    use std::mem::size_of;

    use larch_proto::otlp;

    use crate::push::protobuf::MAX_DEPTH;
    use crate::push::protobuf::wire::{LEN, Wire};

    /// The messages of an OTLP logs request, as far as they matter for
    /// what prost allocates.
    #[derive(Clone, Copy)]
    enum Kind {
        Request,
        ResourceLogs,
        Resource,
        ScopeLogs,
        Scope,
        LogRecord,
        KeyValue,
        AnyValue,
        /// An `ArrayValue` (of AnyValue) or `KeyValueList` (of KeyValue):
        /// both hold their elements in field 1.
        List,
    }

    impl Kind {
        /// The message held by `field` of this one.
        fn child(self, field: u32) -> Option<Kind> {
            use Kind::*;
            Some(match (self, field) {
                (Request, 1) => ResourceLogs,
                (ResourceLogs, 1) => Resource,
                (ResourceLogs, 2) => ScopeLogs,
                (Resource, 1) | (Scope, 3) | (LogRecord, 6) => KeyValue,
                (ScopeLogs, 1) => Scope,
                (ScopeLogs, 2) => LogRecord,
                (LogRecord, 5) | (KeyValue, 2) => AnyValue,
                (AnyValue, 5 | 6) => List,
                (List, 1) => AnyValue,
                _ => return None,
            })
        }

        /// Bytes a value of this kind occupies where it is held (for a
        /// list's element: the larger of AnyValue and KeyValue).
        fn size(self) -> usize {
            use Kind::*;
            match self {
                Request | Resource | Scope | List => 0,
                ResourceLogs => size_of::<otlp::ResourceLogs>(),
                ScopeLogs => size_of::<otlp::ScopeLogs>(),
                LogRecord => size_of::<otlp::LogRecord>(),
                KeyValue => size_of::<otlp::KeyValue>(),
                AnyValue => size_of::<otlp::AnyValue>().max(size_of::<otlp::KeyValue>()),
            }
        }
    }

    /// An upper bound of what prost allocates decoding `body` as a request:
    /// every message value (twice, for vector growth) and every string
    /// and byte field (together at most the body). A list's elements are
    /// walked both as AnyValues and as KeyValues, which bounds either.
    /// Malformed parts end the count; prost refuses them anyway.
    pub(super) fn bound(body: &[u8]) -> usize {
        let mut total = body.len();
        walk(body, Kind::Request, 0, &mut total);
        total
    }

    fn walk(msg: &[u8], kind: Kind, depth: usize, total: &mut usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let mut w = Wire(msg);
        while !w.0.is_empty() {
            let Ok((field, wire)) = w.key() else {
                return;
            };
            match kind.child(field).filter(|_| wire == LEN) {
                Some(child) => {
                    let Ok(inner) = w.bytes() else {
                        return;
                    };
                    *total = total.saturating_add(child.size().saturating_mul(2));
                    walk(inner, child, depth + 1, total);
                    if let (Kind::List, Kind::AnyValue) = (kind, child) {
                        walk(inner, Kind::KeyValue, depth + 1, total);
                    }
                }
                None => {
                    if w.skip(field, wire, depth).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Prometheus-style label name normalisation: every character outside
/// `[A-Za-z0-9_]` becomes `_`; a leading digit gets a `key_` prefix.
fn normalize(key: &str) -> String {
    let mut out = String::new();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        // Not empty, so the sanitiser adds no `_` of its own.
        out.push_str("key_");
    }
    larch_go::labels::push_sanitized(key, &mut out);
    out
}

/// Renders a value as OTLP's `AsString` does: strings as they are, numbers
/// and booleans in decimal, bytes in base64, arrays and maps as JSON.
fn any_to_string(value: Option<&otlp::AnyValue>) -> String {
    use otlp::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format_float(*d),
        Some(Value::BytesValue(b)) => base64(b),
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => any_to_json(v).to_string(),
    }
}

fn any_to_json(v: &otlp::any_value::Value) -> serde_json::Value {
    use otlp::any_value::Value;
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(base64(b)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map_or(J::Null, any_to_json))
                .collect(),
        ),
        Value::KvlistValue(l) => J::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value
                            .as_ref()
                            .and_then(|x| x.value.as_ref())
                            .map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
    }
}

fn format_float(d: f64) -> String {
    if d.is_finite() && d == d.trunc() && d.abs() < 1e21 {
        format!("{d:.0}")
    } else {
        d.to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OTLP's JSON encoding (lowerCamelCase keys, snake_case accepted too;
/// 64-bit integers as strings or numbers; ids as hex strings).
mod json {
    use larch_proto::otlp;
    use serde_json::Value;

    type R<T> = Result<T, String>;

    fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
        v.get(camel)
            .or_else(|| v.get(snake))
            .filter(|x| !x.is_null())
    }

    fn array<'a>(v: &'a Value, camel: &str, snake: &str) -> R<&'a [Value]> {
        match field(v, camel, snake) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(format!("{camel} must be an array")),
        }
    }

    fn string(v: &Value, camel: &str, snake: &str) -> R<String> {
        match field(v, camel, snake) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{camel} must be a string")),
        }
    }

    fn uint(v: &Value, camel: &str, snake: &str) -> R<u64> {
        match field(v, camel, snake) {
            None => Ok(0),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| format!("{camel} is not an integer: {s:?}")),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| format!("{camel} is not an unsigned integer")),
            Some(_) => Err(format!("{camel} must be an integer")),
        }
    }

    fn hex_bytes(v: &Value, camel: &str, snake: &str) -> R<Vec<u8>> {
        let s = string(v, camel, snake)?;
        let not_hex = || format!("{camel} is not hex");
        let bytes = s.as_bytes();
        if bytes.len() % 2 != 0 {
            return Err(not_hex());
        }
        // Byte-wise: the text may hold multi-byte characters, which are
        // simply not hex digits (slicing the str could split one).
        bytes
            .chunks_exact(2)
            .map(|pair| match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
                _ => Err(not_hex()),
            })
            .collect()
    }

    fn hex_digit(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }

    pub(super) fn request(v: &Value) -> R<otlp::ExportLogsServiceRequest> {
        let mut req = otlp::ExportLogsServiceRequest::default();
        for rl in array(v, "resourceLogs", "resource_logs")? {
            let mut out = otlp::ResourceLogs::default();
            if let Some(res) = field(rl, "resource", "resource") {
                out.resource = Some(otlp::Resource {
                    attributes: attributes(res)?,
                    dropped_attributes_count: 0,
                });
            }
            for sl in array(rl, "scopeLogs", "scope_logs")? {
                let mut scope_logs = otlp::ScopeLogs::default();
                if let Some(scope) = field(sl, "scope", "scope") {
                    scope_logs.scope = Some(otlp::InstrumentationScope {
                        name: string(scope, "name", "name")?,
                        version: string(scope, "version", "version")?,
                        attributes: attributes(scope)?,
                        dropped_attributes_count: uint(
                            scope,
                            "droppedAttributesCount",
                            "dropped_attributes_count",
                        )? as u32,
                    });
                }
                for lr in array(sl, "logRecords", "log_records")? {
                    scope_logs.log_records.push(record(lr)?);
                }
                out.scope_logs.push(scope_logs);
            }
            req.resource_logs.push(out);
        }
        Ok(req)
    }

    fn record(v: &Value) -> R<otlp::LogRecord> {
        let severity_number = match field(v, "severityNumber", "severity_number") {
            None => 0,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
            // Enum names such as "SEVERITY_NUMBER_INFO" are valid JSON too.
            Some(Value::String(s)) => severity_from_name(s),
            Some(_) => return Err("severityNumber must be a number".to_string()),
        };
        Ok(otlp::LogRecord {
            time_unix_nano: uint(v, "timeUnixNano", "time_unix_nano")?,
            observed_time_unix_nano: uint(v, "observedTimeUnixNano", "observed_time_unix_nano")?,
            severity_number,
            severity_text: string(v, "severityText", "severity_text")?,
            body: field(v, "body", "body").map(any_value).transpose()?,
            attributes: attributes(v)?,
            dropped_attributes_count: uint(v, "droppedAttributesCount", "dropped_attributes_count")?
                as u32,
            flags: uint(v, "flags", "flags")? as u32,
            trace_id: hex_bytes(v, "traceId", "trace_id")?,
            span_id: hex_bytes(v, "spanId", "span_id")?,
            event_name: string(v, "eventName", "event_name")?,
        })
    }

    fn severity_from_name(s: &str) -> i32 {
        const NAMES: [&str; 24] = [
            "TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3", "DEBUG4", "INFO",
            "INFO2", "INFO3", "INFO4", "WARN", "WARN2", "WARN3", "WARN4", "ERROR", "ERROR2",
            "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4",
        ];
        let short = s.strip_prefix("SEVERITY_NUMBER_").unwrap_or(s);
        NAMES
            .iter()
            .position(|n| *n == short)
            .map_or(0, |i| i as i32 + 1)
    }

    fn attributes(v: &Value) -> R<Vec<otlp::KeyValue>> {
        array(v, "attributes", "attributes")?
            .iter()
            .map(key_value)
            .collect()
    }

    fn key_value(v: &Value) -> R<otlp::KeyValue> {
        Ok(otlp::KeyValue {
            key: string(v, "key", "key")?,
            value: field(v, "value", "value").map(any_value).transpose()?,
        })
    }

    fn any_value(v: &Value) -> R<otlp::AnyValue> {
        use otlp::any_value::Value as A;
        let value = if let Some(s) = field(v, "stringValue", "string_value") {
            Some(A::StringValue(
                s.as_str()
                    .ok_or("stringValue must be a string")?
                    .to_string(),
            ))
        } else if let Some(b) = field(v, "boolValue", "bool_value") {
            Some(A::BoolValue(
                b.as_bool().ok_or("boolValue must be a boolean")?,
            ))
        } else if let Some(i) = field(v, "intValue", "int_value") {
            let n = match i {
                Value::String(s) => s
                    .parse()
                    .map_err(|_| format!("intValue {s:?} is not an integer"))?,
                Value::Number(n) => n.as_i64().ok_or("intValue is not an integer")?,
                _ => return Err("intValue must be an integer".to_string()),
            };
            Some(A::IntValue(n))
        } else if let Some(d) = field(v, "doubleValue", "double_value") {
            let x = match d {
                Value::Number(n) => n.as_f64().ok_or("doubleValue is not a number")?,
                Value::String(s) => s
                    .parse()
                    .map_err(|_| format!("doubleValue {s:?} is not a number"))?,
                _ => return Err("doubleValue must be a number".to_string()),
            };
            Some(A::DoubleValue(x))
        } else if let Some(a) = field(v, "arrayValue", "array_value") {
            Some(A::ArrayValue(otlp::ArrayValue {
                values: array(a, "values", "values")?
                    .iter()
                    .map(any_value)
                    .collect::<R<_>>()?,
            }))
        } else if let Some(l) = field(v, "kvlistValue", "kvlist_value") {
            Some(A::KvlistValue(otlp::KeyValueList {
                values: array(l, "values", "values")?
                    .iter()
                    .map(key_value)
                    .collect::<R<_>>()?,
            }))
        } else if let Some(b) = field(v, "bytesValue", "bytes_value") {
            // Kept as the base64 text it arrived in.
            Some(A::StringValue(
                b.as_str().ok_or("bytesValue must be a string")?.to_string(),
            ))
        } else {
            None
        };
        Ok(otlp::AnyValue { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::any_value::Value;

    fn json_body(body: &[u8]) -> Result<Push, DecodeError> {
        decode_json(body, &mut Meter::unlimited())
    }

    fn kv(k: &str, v: Value) -> otlp::KeyValue {
        otlp::KeyValue {
            key: k.to_string(),
            value: Some(otlp::AnyValue { value: Some(v) }),
        }
    }

    #[test]
    fn maps_resource_scope_and_record() {
        let req = otlp::ExportLogsServiceRequest {
            resource_logs: vec![otlp::ResourceLogs {
                resource: Some(otlp::Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("checkout".into())),
                        kv("k8s.namespace.name", Value::StringValue("shop".into())),
                        kv("host.name", Value::StringValue("n1".into())),
                    ],
                    dropped_attributes_count: 0,
                }),
                scope_logs: vec![otlp::ScopeLogs {
                    scope: Some(otlp::InstrumentationScope {
                        name: "lib".into(),
                        version: "1.2".into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    }),
                    log_records: vec![otlp::LogRecord {
                        time_unix_nano: 0,
                        observed_time_unix_nano: 77,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(otlp::AnyValue {
                            value: Some(Value::StringValue("paid".into())),
                        }),
                        attributes: vec![
                            kv("http.status", Value::IntValue(200)),
                            kv(
                                "req",
                                Value::KvlistValue(otlp::KeyValueList {
                                    values: vec![kv("id", Value::StringValue("r1".into()))],
                                }),
                            ),
                        ],
                        trace_id: vec![0xab; 16],
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let push = to_push(req, 5, &mut Meter::unlimited()).unwrap();
        assert_eq!(push.streams.len(), 1);
        let s = &push.streams[0];
        assert_eq!(
            s.labels,
            StreamLabels::Pairs(vec![
                ("k8s_namespace_name".into(), "shop".into()),
                ("service_name".into(), "checkout".into()),
            ])
        );
        let e = &s.entries[0];
        assert_eq!(e.ts, 77);
        assert_eq!(e.line, "paid");
        let m: BTreeMap<_, _> = e.metadata.iter().cloned().collect();
        assert_eq!(m["http_status"], "200");
        assert_eq!(m["req_id"], "r1");
        assert_eq!(m["host_name"], "n1");
        assert_eq!(m["scope_name"], "lib");
        assert_eq!(m["severity_text"], "INFO");
        assert_eq!(m["severity_number"], "9");
        assert_eq!(m["trace_id"], "ab".repeat(16));
    }

    #[test]
    fn json_form_and_unknown_service() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"pod","value":{"stringValue":"p"}}]},
          "scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":"SEVERITY_NUMBER_WARN",
          "body":{"kvlistValue":{"values":[{"key":"a","value":{"intValue":"3"}}]}},"spanId":"0102030405060708"}]}]}]}"#;
        let push = json_body(body).unwrap();
        let s = &push.streams[0];
        assert_eq!(
            s.labels,
            StreamLabels::Pairs(vec![("service_name".into(), "unknown_service".into())])
        );
        let e = &s.entries[0];
        assert_eq!(e.ts, 1_700_000_000_000_000_000);
        assert_eq!(e.line, r#"{"a":3}"#);
        let m: BTreeMap<_, _> = e.metadata.iter().cloned().collect();
        assert_eq!(m["severity_number"], "13");
        assert_eq!(m["span_id"], "0102030405060708");
        assert_eq!(m["pod"], "p");
        assert!(json_body(br#"{"resourceLogs":{}}"#).is_err());
        assert!(
            json_body(br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#)
                .is_err()
        );
        // Multi-byte characters are not hex digits, and neither is a sign.
        for bad in ["\u{e9}\u{e9}", "a\u{e9}b", "+f"] {
            let body = format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"spanId":"{bad}"}}]}}]}}]}}"#
            );
            let err = json_body(body.as_bytes()).map(|_| ()).unwrap_err();
            assert!(
                err.to_string().contains("spanId is not hex"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b""), "");
        assert_eq!(normalize("1a.b-c"), "key_1a_b_c");
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(2.5), "2.5");
    }

    #[test]
    fn garbage_protobuf_is_an_error() {
        assert!(decode_protobuf(b"\xff\xff\xff", &mut Meter::unlimited()).is_err());
    }
}
