//! The rules API as Loki serves it, so that Grafana's alerting UI and
//! `lokitool`/`cortextool`-style clients work:
//!
//! | route | answers |
//! |---|---|
//! | GET `/loki/api/v1/rules` (and `/api/prom/rules`, Grafana's path) | YAML map `namespace: [groups]`; 404 `no rule groups found` |
//! | GET `…/rules/{namespace}` | the same map with one key; 404 `no rule groups found` |
//! | GET `…/rules/{namespace}/{group}` | one group; 404 `group does not exist` |
//! | POST `…/rules/{namespace}` | body: one group (YAML), created or replaced by name; 202 |
//! | DELETE `…/rules/{namespace}/{group}` | 202; 404 `group does not exist` |
//! | DELETE `…/rules/{namespace}` | 202; 404 `group namespace does not exist` |
//! | GET `/prometheus/api/v1/rules` | Prometheus' JSON of every group, its rules, their health and alerts |
//! | GET `/prometheus/api/v1/alerts` | Prometheus' JSON of the pending and firing alerts |
//!
//! Groups are per tenant (`X-Scope-OrgID`). The configuration routes read
//! and write the rule store; a write is live when it is answered (the
//! ruler syncs before replying). The status routes show what runs. Error
//! bodies are plain text, but for the status routes' JSON envelope
//! (`{"status":"error","errorType":"bad_data",...}`). A namespace must be a
//! plain file name: `..` or `/` get 400 `invalid namespace: path traversal
//! not allowed` (Loki answers 500 with these words; it is the request
//! that is wrong).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use larch_go::floatfmt::format_float_e;
use larch_rules::{RuleGroup, RuleKind};
use serde_json::{Value, json};

use super::Ruler;
use super::alert::AlertState;
use super::storage::{RuleStore, StoreError, check_namespace};
use crate::api::{ApiError, tenant};
use crate::server::AppState;
use crate::tenant::TenantId;

/// Largest rule group accepted in one request.
pub const MAX_GROUP_BYTES: usize = 1 << 20;

/// The routes (merged into the store's router when the ruler runs and
/// `ruler.enable_api` is set).
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for prefix in ["/loki/api/v1/rules", "/api/prom/rules"] {
        r = r
            .route(prefix, get(list_rules))
            .route(
                &format!("{prefix}/{{namespace}}"),
                get(get_namespace).post(post_group).delete(delete_namespace),
            )
            .route(
                &format!("{prefix}/{{namespace}}/{{group}}"),
                get(get_group).delete(delete_group),
            );
    }
    r.route("/prometheus/api/v1/rules", get(prometheus_rules))
        .route("/prometheus/api/v1/alerts", get(prometheus_alerts))
        .layer(DefaultBodyLimit::max(MAX_GROUP_BYTES))
}

fn ruler(app: &AppState) -> Result<Arc<Ruler>, ApiError> {
    app.ruler
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the ruler is not running"))
}

fn yaml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/yaml")],
        body,
    )
        .into_response()
}

/// Loki's 202 answer to a change.
fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"success","data":null,"errorType":"","error":""}"#,
    )
        .into_response()
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn not_found(msg: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, msg)
}

/// Runs a rule store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(store_error)
}

fn namespace(ns: &str) -> Result<(), ApiError> {
    check_namespace(ns).map_err(ApiError::bad_request)
}

/// A tenant's namespaces; a file that does not read is a 500.
async fn load(
    store: Arc<dyn RuleStore>,
    t: TenantId,
) -> Result<BTreeMap<String, Vec<RuleGroup>>, ApiError> {
    let rules = blocking(move || store.load(&t)).await?;
    let mut out = BTreeMap::new();
    for (ns, groups) in rules {
        match groups {
            Ok(g) if g.is_empty() => {}
            Ok(g) => {
                out.insert(ns, g);
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("namespace {ns}: {e}"),
                ));
            }
        }
    }
    Ok(out)
}

async fn list_rules(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let r = ruler(&app)?;
    let t = tenant(&headers, app.config.auth_enabled)?;
    let all = load(r.store(), t).await?;
    if all.is_empty() {
        return Err(not_found("no rule groups found"));
    }
    Ok(yaml(larch_rules::write_namespaces(&all)))
}

async fn get_namespace(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let r = ruler(&app)?;
    let t = tenant(&headers, app.config.auth_enabled)?;
    namespace(&ns)?;
    let mut all = load(r.store(), t).await?;
    let Some(groups) = all.remove(&ns) else {
        return Err(not_found("no rule groups found"));
    };
    let mut one = BTreeMap::new();
    one.insert(ns, groups);
    Ok(yaml(larch_rules::write_namespaces(&one)))
}

async fn get_group(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((ns, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = ruler(&app)?;
    let t = tenant(&headers, app.config.auth_enabled)?;
    namespace(&ns)?;
    let all = load(r.store(), t).await?;
    let g = all
        .get(&ns)
        .and_then(|gs| gs.iter().find(|g| g.name == group))
        .ok_or_else(|| not_found("group does not exist"))?;
    Ok(yaml(larch_rules::write_group(g)))
}

async fn post_group(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = ruler(&app)?;
    let t = tenant(&headers, app.config.auth_enabled)?;
    namespace(&ns)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("unable to decoded rule group: not UTF-8"))?;
    let group = larch_rules::read_group(text).map_err(|errors| {
        ApiError::bad_request(
            errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })?;
    let cfg = r.config();
    if cfg.max_rules_per_rule_group > 0 && group.rules.len() > cfg.max_rules_per_rule_group {
        return Err(ApiError::bad_request(format!(
            "per-user rules per rule group limit (limit: {} actual: {}) exceeded",
            cfg.max_rules_per_rule_group,
            group.rules.len()
        )));
    }
    let max_groups = cfg.max_rule_groups_per_tenant;
    let store = r.store();
    let name = group.name.clone();
    let ns2 = ns.clone();
    let t2 = t.clone();
    // The limit counts the tenant's other groups; checked and written
    // under the store's own serialisation of writes is not needed for a
    // bound (a race can pass it by the number of concurrent posts).
    let existing = blocking(move || store.load(&t2)).await?;
    let others = existing
        .iter()
        .map(|(n, g)| {
            g.as_ref().map_or(0, |gs| {
                gs.iter().filter(|g| !(n == &ns2 && g.name == name)).count()
            })
        })
        .sum::<usize>();
    if max_groups > 0 && others + 1 > max_groups {
        return Err(ApiError::bad_request(format!(
            "per-user rule groups limit (limit: {max_groups} actual: {}) exceeded",
            others + 1
        )));
    }
    let store = r.store();
    blocking(move || store.put_group(&t, &ns, &group)).await?;
    r.sync().await;
    Ok(accepted())
}

async fn delete_group(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((ns, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let r = ruler(&app)?;
    let t = tenant(&headers, app.config.auth_enabled)?;
    namespace(&ns)?;
    let store = r.store();
    if !blocking(move || store.delete_group(&t, &ns, &group)).await? {
        return Err(not_found("group does not exist"));
    }
    r.sync().await;
    Ok(accepted())
}

async fn delete_namespace(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let r = ruler(&app)?;
    let t = tenant(&headers, app.config.auth_enabled)?;
    namespace(&ns)?;
    let store = r.store();
    if !blocking(move || store.delete_namespace(&t, &ns)).await? {
        return Err(not_found("group namespace does not exist"));
    }
    r.sync().await;
    Ok(accepted())
}

// --- Prometheus' JSON ---------------------------------------------------------

/// Prometheus' JSON error.
fn json_error(status: StatusCode, kind: &str, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "error", "data": null, "errorType": kind, "error": msg}).to_string(),
    )
        .into_response()
}

fn json_ok(data: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": "success", "data": data, "errorType": "", "error": ""}).to_string(),
    )
        .into_response()
}

/// RFC 3339 with nanoseconds as needed (Go's `RFC3339Nano`); Go's zero
/// time for "never".
pub fn rfc3339(ms: Option<i64>) -> String {
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn labels_json<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn alert_json(a: &super::alert::Alert) -> Value {
    let mut v = json!({
        "labels": labels_json(a.labels.iter().map(|(k, v)| (k, v))),
        "annotations": labels_json(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": rfc3339(Some(a.active_at)),
        "value": format_float_e(a.value),
    });
    if let (Some(k), Value::Object(m)) = (a.keep_firing_since, &mut v) {
        m.insert("keepFiringSince".into(), Value::String(rfc3339(Some(k))));
    }
    v
}

/// A parameter's values, given as `key` or `key[]`, repeated or not.
fn param_list(p: &crate::api::params::Params, key: &str) -> Option<Vec<String>> {
    let mut v: Vec<String> = p.all(key).to_vec();
    v.extend(p.all(&format!("{key}[]")).iter().cloned());
    (!v.is_empty()).then_some(v)
}

async fn prometheus_rules(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let r = match ruler(&app) {
        Ok(r) => r,
        Err(e) => return json_error(e.status(), "unavailable", e.message()),
    };
    let t = match tenant(&headers, app.config.auth_enabled) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let p = crate::api::params::Params::parse(q.as_deref().unwrap_or(""));
    let kind = p.get("type");
    let (alerting, recording) = match kind {
        None | Some("") => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                &format!("not supported value {other:?}"),
            );
        }
    };
    let names = param_list(&p, "rule_name");
    let groups_f = param_list(&p, "rule_group");
    let files = param_list(&p, "file");
    let exclude_alerts = p.get("exclude_alerts") == Some("true");
    let filtered = names.is_some() || kind.is_some_and(|k| !k.is_empty());
    let mut out = Vec::new();
    for v in r.groups() {
        let k = &v.group.key;
        if k.tenant != t.as_str()
            || files.as_ref().is_some_and(|f| !f.contains(&k.namespace))
            || groups_f.as_ref().is_some_and(|g| !g.contains(&k.group))
        {
            continue;
        }
        let mut rules = Vec::new();
        for (rule, st) in v.group.group.rules.iter().zip(&v.status.rules) {
            if names
                .as_ref()
                .is_some_and(|n| !n.iter().any(|x| x == rule.name()))
            {
                continue;
            }
            let common = |mut m: serde_json::Map<String, Value>| {
                m.insert("name".into(), Value::String(rule.name().to_string()));
                m.insert("query".into(), Value::String(rule.expr.clone()));
                m.insert("labels".into(), labels_json(&rule.labels));
                m.insert("health".into(), Value::String(st.health.as_str().into()));
                m.insert("lastError".into(), Value::String(st.last_error.clone()));
                m.insert(
                    "lastEvaluation".into(),
                    Value::String(rfc3339(st.last_eval_ms)),
                );
                m.insert("evaluationTime".into(), json!(st.eval_seconds));
                Value::Object(m)
            };
            match &rule.kind {
                RuleKind::Alerting {
                    r#for,
                    keep_firing_for,
                    annotations,
                    ..
                } if alerting => {
                    let alerts: Vec<Value> = if exclude_alerts {
                        Vec::new()
                    } else {
                        st.active
                            .values()
                            .filter(|a| a.state != AlertState::Inactive)
                            .map(alert_json)
                            .collect()
                    };
                    let mut m = serde_json::Map::new();
                    m.insert("state".into(), Value::String(st.state().as_str().into()));
                    m.insert("duration".into(), json!(r#for.as_secs_f64()));
                    m.insert("keepFiringFor".into(), json!(keep_firing_for.as_secs_f64()));
                    m.insert("annotations".into(), labels_json(annotations));
                    m.insert("alerts".into(), Value::Array(alerts));
                    m.insert("type".into(), Value::String("alerting".into()));
                    rules.push(common(m));
                }
                RuleKind::Recording { .. } if recording => {
                    let mut m = serde_json::Map::new();
                    m.insert("type".into(), Value::String("recording".into()));
                    rules.push(common(m));
                }
                _ => {}
            }
        }
        if filtered && rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": k.group,
            "file": k.namespace,
            "rules": rules,
            "interval": v.group.interval_ms as f64 / 1000.0,
            "limit": v.group.group.limit,
            "lastEvaluation": rfc3339(v.status.last_eval_ms),
            "evaluationTime": v.status.eval_seconds,
        }));
    }
    json_ok(json!({ "groups": out }))
}

async fn prometheus_alerts(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let r = match ruler(&app) {
        Ok(r) => r,
        Err(e) => return json_error(e.status(), "unavailable", e.message()),
    };
    let t = match tenant(&headers, app.config.auth_enabled) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let mut alerts = Vec::new();
    for v in r.groups() {
        if v.group.key.tenant != t.as_str() {
            continue;
        }
        for st in &v.status.rules {
            alerts.extend(
                st.active
                    .values()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(alert_json),
            );
        }
    }
    json_ok(json!({ "alerts": alerts }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_forms() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(1_700_000_000_500)), "2023-11-14T22:13:20.500Z");
        assert_eq!(rfc3339(Some(1_700_000_000_000)), "2023-11-14T22:13:20Z");
    }
}
