//! `/loki/api/v1/patterns`: the log patterns of the lines a query
//! selects in a range, with line counts per `step`. The mining (which
//! lines, how they are clustered, what it may cost) is
//! [`larch_query::drilldown::patterns`]; here are the parameters, the call
//! through [`exec::run`], and Loki's JSON.
//!
//! Response (Loki's): `{"status":"success","data":[{"pattern":"...",
//! "samples":[[<unix s>,<count>],...],"level":"info"}]}`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use larch_query::drilldown::{EntryFilter, Pattern, PatternQuery, mine_patterns};

use super::params::{END_BEFORE_START, bounds, now_ns, step};
use super::{ApiError, LokiParams, exec, json, json_response, tenant};
use crate::server::AppState;

/// The response body.
fn render(patterns: &[Pattern]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"pattern\":");
        json::string(&mut out, &p.pattern);
        out.push_str(",\"samples\":[");
        for (k, &(t, n)) in p.samples.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push('[');
            json::seconds(&mut out, t);
            out.push_str(&format!(",{n}]"));
        }
        out.push_str("],\"level\":");
        json::string(&mut out, &p.level);
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// `GET /loki/api/v1/patterns`.
pub async fn patterns(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = tenant(&headers, app.config.auth_enabled)?;
    let (start, end) = bounds(&p, now_ns())?;
    if end <= start {
        return Err(ApiError::bad_request(END_BEFORE_START));
    }
    let q = PatternQuery {
        tenant: t.to_string(),
        filter: EntryFilter::parse(p.get("query").unwrap_or_default())?,
        start,
        end,
        step: step(&p, start, end)?,
    };
    let ingester = app.query_source();
    let found = exec::run(&app, move |cancel| {
        Ok(mine_patterns(ingester.as_ref(), &q, &cancel)?)
    })
    .await?;
    if found.unclustered > 0 {
        tracing::debug!(
            unclustered = found.unclustered,
            "Pattern cluster cap reached; some lines were not mined."
        );
    }
    Ok(json_response(render(&found.patterns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lokis_shape() {
        let body = render(&[
            Pattern {
                pattern: "user <_> said \"hi\"".into(),
                level: "info".into(),
                samples: vec![(10_000_000_000, 1), (20_500_000_000, 2)],
                total: 3,
            },
            Pattern {
                pattern: "x <_>".into(),
                level: "error".into(),
                samples: vec![],
                total: 0,
            },
        ]);
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"status": "success", "data": [
                {"pattern": "user <_> said \"hi\"", "samples": [[10, 1], [20.5, 2]], "level": "info"},
                {"pattern": "x <_>", "samples": [], "level": "error"}
            ]})
        );
        assert_eq!(render(&[]), r#"{"status":"success","data":[]}"#);
    }
}
