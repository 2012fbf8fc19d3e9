//! Logs Drilldown's discovery endpoints: `detected_labels`,
//! `detected_fields` and `detected_field/{name}/values`. What they report
//! (which labels, how fields are sampled and typed) is
//! [`larch_query::drilldown::detected`]; here are the parameters, the call
//! through [`exec::run`], and Loki's JSON.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use larch_query::Direction;
use larch_query::drilldown::{
    EntryFilter, FieldRequest, FieldSample, detect_fields, detect_labels, label_selector,
};
use larch_query::engine::QueryRequest;

use super::exec;
use super::params::{Params, bounds, now_ns};
use super::{ApiError, LokiParams, json, json_response, tenant};
use crate::server::AppState;

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
    let matchers = label_selector(p.get("query"))?;
    let ing = app.query_source();
    let labels = exec::run(&app, move |cancel| {
        let streams = ing
            .query_streams(&t, matchers.as_deref(), start, end)
            .map_err(|e| {
                ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            })?;
        let sets: Vec<larch_query::LabelSet> = streams.iter().map(|s| s.labels.to_set()).collect();
        Ok(detect_labels(sets.iter(), &cancel)?)
    })
    .await?;
    let mut out = String::from("{\"detectedLabels\":[");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        json::string(&mut out, &l.name);
        out.push_str(&format!(",\"cardinality\":{}}}", l.cardinality));
    }
    out.push_str("]}");
    Ok(json_response(out))
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

/// Checks the parameters and runs the sample query with field detection
/// as one piece of work through [`exec::run`].
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
    // Check it is a log query before the other parameters, as Loki does.
    EntryFilter::parse(&query)?;
    let line_limit = usize_param(p, &["line_limit"], DEFAULT_LINE_LIMIT)?;
    let max = limits.max_entries_limit_per_query;
    if max > 0 && line_limit > max {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({line_limit} > {max})"
        )));
    }
    let limit = usize_param(p, &["limit", "field_limit"], DEFAULT_FIELD_LIMIT)?;
    let mut req = QueryRequest {
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
    let fields = FieldRequest {
        field_limit: limit,
        values_of,
        value_limit: limit,
    };
    let ingester = app.query_source();
    exec::run(app, move |cancel| {
        req.cancel = Some(cancel);
        Ok(detect_fields(ingester.as_ref(), &req, fields)?)
    })
    .await
}

/// `{"fields":[...],"limit":N}`.
fn fields_json(s: &FieldSample) -> String {
    let mut out = String::from("{\"fields\":[");
    for (i, f) in s.fields().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        json::string(&mut out, f.name);
        out.push_str(",\"type\":\"");
        out.push_str(f.ty.name());
        out.push_str(&format!(
            "\",\"cardinality\":{},\"parsers\":",
            f.cardinality
        ));
        if f.parsers.is_empty() {
            out.push_str("null");
        } else {
            out.push_str(&json::string_array(f.parsers));
        }
        if let Some(p) = f.json_path {
            out.push_str(",\"jsonPath\":");
            out.push_str(&json::string_array(p));
        }
        out.push('}');
    }
    out.push_str(&format!("],\"limit\":{}}}", s.field_limit()));
    out
}

/// `{"values":[...],"limit":N}`.
fn values_json(s: &FieldSample) -> String {
    format!(
        "{{\"values\":{},\"limit\":{}}}",
        json::string_array(s.values()),
        s.value_limit()
    )
}

/// `GET /loki/api/v1/detected_fields`.
pub async fn detected_fields(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let s = sample(&app, &headers, &p, None).await?;
    Ok(json_response(fields_json(&s)))
}

/// `GET /loki/api/v1/detected_field/{name}/values`.
pub async fn detected_field_values(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let s = sample(&app, &headers, &p, Some(name)).await?;
    Ok(json_response(values_json(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_query::LabelSet;
    use larch_query::engine::{LogEntry, StreamResult};

    fn sample_of(lines: &[&str], values_of: Option<&str>) -> FieldSample {
        let mut s = FieldSample::new(1000, values_of.map(str::to_string), 1000).unwrap();
        s.add_stream(&StreamResult {
            labels: LabelSet::from_pairs([("app", "api")]),
            entries: lines
                .iter()
                .map(|l| LogEntry {
                    ts: 1,
                    line: l.to_string(),
                    structured_metadata: vec![
                        ("detected_level".into(), "info".into()),
                        ("trace_id".into(), "t\"1".into()),
                    ],
                    parsed: Vec::new(),
                })
                .collect(),
        });
        s
    }

    #[test]
    fn writes_lokis_shapes() {
        let s = sample_of(&[r#"{"req":{"status":200}}"#], None);
        let j: serde_json::Value = serde_json::from_str(&fields_json(&s)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"fields": [
                {"label": "detected_level", "type": "string", "cardinality": 1, "parsers": null},
                {"label": "req_status", "type": "int", "cardinality": 1, "parsers": ["json"],
                 "jsonPath": ["req", "status"]},
                {"label": "trace_id", "type": "string", "cardinality": 1, "parsers": null},
            ], "limit": 1000})
        );
        let s = sample_of(&["a=x", "a=\"y z\""], Some("a"));
        let j: serde_json::Value = serde_json::from_str(&values_json(&s)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"values": ["x", "y z"], "limit": 1000})
        );
        let s = sample_of(&["a=x"], Some("none"));
        assert_eq!(values_json(&s), r#"{"values":[],"limit":1000}"#);
    }

    #[test]
    fn limits_must_be_positive_integers() {
        let p = Params::parse("limit=0&line_limit=x");
        assert_eq!(
            usize_param(&p, &["limit"], 1).unwrap_err().message(),
            "limit must be a positive value"
        );
        assert!(
            usize_param(&p, &["line_limit"], 1)
                .unwrap_err()
                .message()
                .starts_with("strconv.ParseInt")
        );
        assert_eq!(usize_param(&p, &["field_limit"], 7).unwrap(), 7);
    }
}
