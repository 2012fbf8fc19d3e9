//! Evaluating one group: every rule's query through the engine, in order,
//! at one timestamp ([`query_all`], on the blocking pool, no lock held);
//! then the results applied to the group's state ([`apply`], a short lock):
//! alerts advanced through their lifecycle, notifications due, and the
//! series to write (recorded samples, `ALERTS`, `ALERTS_FOR_STATE`, stale
//! markers for series that stopped).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use larch_query::LogSource;
use larch_query::engine::{QueryRequest, QueryValue, evaluate_with_threads};
use larch_rules::{RuleGroup, RuleKind};

use super::alert::{self, Alert, AlertState, Instance, Labels, TemplateData, Templates};

/// Prometheus' stale marker: a NaN that says "this series ended".
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// A group's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// The tenant whose data the rules read.
    pub tenant: String,
    /// The namespace (rule file).
    pub namespace: String,
    /// The group's name.
    pub group: String,
}

/// A group as loaded: its rules and their parsed templates.
#[derive(Debug)]
pub struct CompiledGroup {
    /// Identity.
    pub key: GroupKey,
    /// The group as read.
    pub group: RuleGroup,
    /// Its interval, in milliseconds (the default filled in).
    pub interval_ms: i64,
    /// Per rule, an alerting rule's templates.
    pub templates: Vec<Option<Templates>>,
}

impl CompiledGroup {
    /// Compiles `group`; `default_interval_ms` for groups without one.
    pub fn new(key: GroupKey, group: RuleGroup, default_interval_ms: i64) -> CompiledGroup {
        let interval_ms = group
            .interval
            .map(|d| d.as_millis())
            .filter(|ms| *ms > 0)
            .unwrap_or(default_interval_ms)
            .max(1);
        let templates = group
            .rules
            .iter()
            .map(|r| match &r.kind {
                RuleKind::Alerting {
                    alert, annotations, ..
                } => Some(Templates::new(alert, &r.labels, annotations)),
                RuleKind::Recording { .. } => None,
            })
            .collect();
        CompiledGroup {
            key,
            group,
            interval_ms,
            templates,
        }
    }
}

/// A rule's health, as the rules API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation worked.
    Ok,
    /// The last evaluation failed (`last_error`).
    Err,
}

impl Health {
    /// Prometheus' name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// A rule's state between evaluations.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    /// Health of the last evaluation.
    pub health: Health,
    /// Its error, if it failed.
    pub last_error: String,
    /// When it ran (ms), if it has.
    pub last_eval_ms: Option<i64>,
    /// How long it took.
    pub eval_seconds: f64,
    /// Alerts (alerting rules), by labels.
    pub active: BTreeMap<Labels, Alert>,
    /// Series written at the last evaluation (for stale markers).
    written: HashSet<Labels>,
}

impl RuleStatus {
    fn new() -> RuleStatus {
        RuleStatus {
            health: Health::Unknown,
            last_error: String::new(),
            last_eval_ms: None,
            eval_seconds: 0.0,
            active: BTreeMap::new(),
            written: HashSet::new(),
        }
    }

    /// The most advanced state of its alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

/// A group's state between evaluations.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    /// When the group last ran (ms).
    pub last_eval_ms: Option<i64>,
    /// How long it took.
    pub eval_seconds: f64,
    /// Per rule, in the group's order.
    pub rules: Vec<RuleStatus>,
}

impl GroupStatus {
    /// The state of a group never evaluated.
    pub fn new(group: &CompiledGroup) -> GroupStatus {
        GroupStatus {
            last_eval_ms: None,
            eval_seconds: 0.0,
            rules: group
                .group
                .rules
                .iter()
                .map(|_| RuleStatus::new())
                .collect(),
        }
    }
}

/// What evaluation needs besides the group.
pub struct EvalEnv<'a> {
    /// The store.
    pub source: &'a dyn LogSource,
    /// The tenant's `max_query_series`.
    pub max_series: usize,
    /// `ruler.external_labels`.
    pub external_labels: &'a BTreeMap<String, String>,
    /// `ruler.external_url`.
    pub external_url: &'a str,
    /// `ruler.datasource_uid`.
    pub datasource_uid: &'a str,
    /// `ruler.resend_delay` (ms).
    pub resend_delay_ms: i64,
    /// Whether series are written (remote write on).
    pub remote_write: bool,
    /// Raised when the ruler stops or the evaluation runs out of time.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// One rule's result: samples (labels sorted, `__name__` dropped) or an
/// error, and how long the query took.
pub type RuleResult = (Result<Vec<(Labels, f64)>, String>, f64);

/// Runs every rule's query at `ts_ms - query_offset`, in order. Blocking.
pub fn query_all(group: &CompiledGroup, env: &EvalEnv<'_>, ts_ms: i64) -> Vec<RuleResult> {
    let offset = group.group.query_offset.map_or(0, |d| d.as_millis());
    let at_ns = (ts_ms - offset).saturating_mul(1_000_000);
    group
        .group
        .rules
        .iter()
        .map(|rule| {
            let started = Instant::now();
            let req = QueryRequest {
                tenant: group.key.tenant.clone(),
                query: rule.expr.clone(),
                start: at_ns,
                end: at_ns,
                instant: true,
                max_series: env.max_series,
                cancel: env.cancel.clone(),
                ..QueryRequest::default()
            };
            // One scan thread per rule: many groups run at once, each
            // bounded by the ruler's evaluation slots.
            let result = match evaluate_with_threads(env.source, &req, 1) {
                Ok((QueryValue::Vector(samples), _)) => Ok(samples
                    .into_iter()
                    .map(|s| {
                        let labels = s
                            .labels
                            .iter()
                            .filter(|l| l.name != "__name__")
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect();
                        (labels, s.value)
                    })
                    .collect()),
                Ok((QueryValue::Scalar { value, .. }, _)) => Ok(vec![(Vec::new(), value)]),
                Ok(_) => Err("the query did not return a vector".to_string()),
                Err(e) => Err(e.to_string()),
            };
            (result, started.elapsed().as_secs_f64())
        })
        .collect()
}

/// An alert as Alertmanager receives it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AmAlert {
    /// Labels, external labels included.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// A link to the query in Grafana's Explore.
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// One sample to remote-write.
#[derive(Clone, Debug, PartialEq)]
pub struct RwSample {
    /// The tenant (`X-Scope-OrgID`).
    pub tenant: String,
    /// Complete label set, `__name__` included, sorted.
    pub labels: Labels,
    /// Milliseconds.
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct EvalOutput {
    /// Alerts due to be sent.
    pub notifications: Vec<AmAlert>,
    /// Samples to write.
    pub samples: Vec<RwSample>,
    /// Rules that failed.
    pub failures: u64,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn with_external(mut labels: Labels, external: &BTreeMap<String, String>) -> Labels {
    for (k, v) in external {
        if !labels.iter().any(|(n, _)| n == k) {
            labels.push((k.clone(), v.clone()));
        }
    }
    labels.sort();
    labels
}

/// Sets `name` in a sorted label list.
fn set_label(labels: &mut Labels, name: &str, value: &str) {
    match labels.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
        Ok(i) => labels[i].1 = value.to_string(),
        Err(i) => labels.insert(i, (name.to_string(), value.to_string())),
    }
}

/// Loki's `generatorURL`: the query in Grafana's Explore.
fn generator_url(env: &EvalEnv<'_>, expr: &str) -> String {
    if env.external_url.is_empty() {
        return String::new();
    }
    let left = serde_json::json!({
        "queries": [{
            "expr": expr,
            "queryType": "range",
            "datasource": {"type": "loki", "uid": env.datasource_uid},
        }]
    });
    let mut enc = String::new();
    for b in left.to_string().bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "{}/explore?left={enc}",
        env.external_url.trim_end_matches('/')
    )
}

/// Applies `results` (from [`query_all`] at `ts_ms`) to `status`.
pub fn apply(
    group: &CompiledGroup,
    status: &mut GroupStatus,
    results: Vec<RuleResult>,
    ts_ms: i64,
    env: &EvalEnv<'_>,
) -> EvalOutput {
    let mut out = EvalOutput::default();
    let offset = group.group.query_offset.map_or(0, |d| d.as_millis());
    let sample_ts = ts_ms - offset;
    let limit = group.group.limit;
    let mut total_seconds = 0.0;
    for (i, ((result, seconds), rule)) in results.into_iter().zip(&group.group.rules).enumerate() {
        total_seconds += seconds;
        let Some(st) = status.rules.get_mut(i) else {
            continue;
        };
        st.last_eval_ms = Some(ts_ms);
        st.eval_seconds = seconds;
        let mut written = HashSet::new();
        let outcome: Result<(), String> = result.and_then(|samples| {
            let what = match rule.kind {
                RuleKind::Alerting { .. } => "alerts",
                RuleKind::Recording { .. } => "series",
            };
            if limit > 0 && samples.len() as u64 > limit {
                return Err(format!(
                    "exceeded limit of {limit} with {} {what}",
                    samples.len()
                ));
            }
            match &rule.kind {
                RuleKind::Recording { record } => {
                    for (labels, value) in samples {
                        let mut l = labels;
                        for (k, v) in &rule.labels {
                            set_label(&mut l, k, v);
                        }
                        set_label(&mut l, "__name__", record);
                        let l = with_external(l, env.external_labels);
                        if env.remote_write {
                            written.insert(l.clone());
                            out.samples.push(RwSample {
                                tenant: group.key.tenant.clone(),
                                labels: l,
                                ts_ms: sample_ts,
                                value,
                            });
                        }
                    }
                    Ok(())
                }
                RuleKind::Alerting {
                    alert,
                    r#for,
                    keep_firing_for,
                    ..
                } => {
                    let templates = group.templates.get(i).and_then(Option::as_ref);
                    let mut instances = Vec::with_capacity(samples.len());
                    let mut seen = HashSet::with_capacity(samples.len());
                    for (labels, value) in samples {
                        let (extra, annotations) = match templates {
                            Some(t) => t.expand(&TemplateData {
                                labels: &labels,
                                value,
                                external_labels: env.external_labels,
                                external_url: env.external_url,
                            }),
                            None => (Vec::new(), BTreeMap::new()),
                        };
                        let mut l = labels;
                        for (k, v) in extra {
                            set_label(&mut l, &k, &v);
                        }
                        set_label(&mut l, "alertname", alert);
                        if !seen.insert(l.clone()) {
                            return Err("vector contains metrics with the same labelset after applying alert labels".to_string());
                        }
                        instances.push(Instance {
                            labels: l,
                            annotations,
                            value,
                        });
                    }
                    alert::update(
                        &mut st.active,
                        instances,
                        ts_ms,
                        r#for.as_millis(),
                        keep_firing_for.as_millis(),
                    );
                    let url = generator_url(env, &rule.expr);
                    for n in alert::due(
                        &mut st.active,
                        ts_ms,
                        env.resend_delay_ms,
                        group.interval_ms,
                    ) {
                        out.notifications.push(AmAlert {
                            labels: with_external(n.labels, env.external_labels)
                                .into_iter()
                                .collect(),
                            annotations: n.annotations,
                            starts_at: rfc3339_ms(n.starts_at),
                            ends_at: rfc3339_ms(n.ends_at),
                            generator_url: url.clone(),
                        });
                    }
                    if env.remote_write {
                        for a in st.active.values() {
                            if a.state == AlertState::Inactive {
                                continue;
                            }
                            let mut l = a.labels.clone();
                            set_label(&mut l, "__name__", "ALERTS");
                            set_label(&mut l, "alertstate", a.state.as_str());
                            let l = with_external(l, env.external_labels);
                            written.insert(l.clone());
                            out.samples.push(RwSample {
                                tenant: group.key.tenant.clone(),
                                labels: l,
                                ts_ms: sample_ts,
                                value: 1.0,
                            });
                            let mut l = a.labels.clone();
                            set_label(&mut l, "__name__", "ALERTS_FOR_STATE");
                            let l = with_external(l, env.external_labels);
                            written.insert(l.clone());
                            out.samples.push(RwSample {
                                tenant: group.key.tenant.clone(),
                                labels: l,
                                ts_ms: sample_ts,
                                value: (a.active_at / 1000) as f64,
                            });
                        }
                    }
                    Ok(())
                }
            }
        });
        match outcome {
            Ok(()) => {
                st.health = Health::Ok;
                st.last_error.clear();
                if env.remote_write {
                    for gone in st.written.difference(&written) {
                        out.samples.push(RwSample {
                            tenant: group.key.tenant.clone(),
                            labels: gone.clone(),
                            ts_ms: sample_ts,
                            value: f64::from_bits(STALE_NAN),
                        });
                    }
                }
                st.written = written;
            }
            Err(e) => {
                st.health = Health::Err;
                st.last_error = e;
                out.failures += 1;
            }
        }
    }
    status.last_eval_ms = Some(ts_ms);
    status.eval_seconds = total_seconds;
    out
}

/// Notifications resolving every alert of `status` still firing or
/// pending-and-sent, at `now_ms` (a group removed or replaced).
pub fn resolve_all(
    status: &GroupStatus,
    env_labels: &BTreeMap<String, String>,
    now_ms: i64,
) -> Vec<AmAlert> {
    let mut out = Vec::new();
    for r in &status.rules {
        for a in r.active.values() {
            if a.state != AlertState::Firing {
                continue;
            }
            out.push(AmAlert {
                labels: with_external(a.labels.clone(), env_labels)
                    .into_iter()
                    .collect(),
                annotations: a.annotations.clone(),
                starts_at: rfc3339_ms(a.fired_at.unwrap_or(a.active_at)),
                ends_at: rfc3339_ms(now_ms),
                generator_url: String::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use larch_query::LabelSet;
    use larch_query::engine::mem::{Entry, MemSource, Stream};

    const SEC: i64 = 1_000_000_000;

    fn source(now_ns: i64) -> MemSource {
        let stream = |pod: &str, n: usize| Stream {
            labels: LabelSet::from_pairs([("namespace", "shop"), ("pod", pod)]),
            entries: (0..n)
                .map(|i| Entry {
                    ts: now_ns - 10 * SEC + i as i64 * 1_000_000,
                    line: format!("level=error n={i}"),
                    meta: vec![],
                })
                .collect(),
        };
        MemSource::new(vec![stream("web-0", 5), stream("web-1", 2)], 2)
    }

    fn group(text: &str) -> CompiledGroup {
        let g = larch_rules::read_group(text).unwrap();
        CompiledGroup::new(
            GroupKey {
                tenant: "fake".into(),
                namespace: "ns".into(),
                group: g.name.clone(),
            },
            g,
            60_000,
        )
    }

    fn env<'a>(src: &'a MemSource, ext: &'a BTreeMap<String, String>) -> EvalEnv<'a> {
        EvalEnv {
            source: src,
            max_series: 500,
            external_labels: ext,
            external_url: "http://grafana:3000",
            datasource_uid: "larch",
            resend_delay_ms: 60_000,
            remote_write: true,
            cancel: None,
        }
    }

    #[test]
    fn recording_and_alerting_rules() {
        let now_ms = 1_700_000_000_000;
        let src = source(now_ms * 1_000_000);
        let ext: BTreeMap<String, String> = [("cluster".to_string(), "eu".to_string())].into();
        let env = env(&src, &ext);
        let g = group(
            r#"name: g
interval: 1s
rules:
  - record: pod:errors:count1m
    expr: sum by (pod) (count_over_time({namespace="shop"} |= "error" [1m]))
    labels: {team: a}
  - alert: ManyErrors
    expr: sum by (pod) (count_over_time({namespace="shop"} |= "error" [1m])) > 3
    for: 1s
    labels: {severity: "{{ if gt $value 4.0 }}page{{ end }}"}
    annotations: {summary: "{{ $labels.pod }} logged {{ $value }} errors"}
"#,
        );
        assert_eq!(g.interval_ms, 1000);
        let mut st = GroupStatus::new(&g);
        let out = apply(&g, &mut st, query_all(&g, &env, now_ms), now_ms, &env);
        assert_eq!(out.failures, 0, "{st:?}");
        let rec: Vec<_> = out
            .samples
            .iter()
            .filter(|s| s.labels.iter().any(|l| l.1 == "pod:errors:count1m"))
            .map(|s| (s.labels.clone(), s.value, s.ts_ms))
            .collect();
        let l = |pod: &str| -> Labels {
            vec![
                ("__name__".into(), "pod:errors:count1m".into()),
                ("cluster".into(), "eu".into()),
                ("pod".into(), pod.into()),
                ("team".into(), "a".into()),
            ]
        };
        assert_eq!(
            rec,
            vec![(l("web-0"), 5.0, now_ms), (l("web-1"), 2.0, now_ms)]
        );
        // The alert is pending: no notification, ALERTS{alertstate="pending"}.
        assert!(out.notifications.is_empty());
        assert_eq!(st.rules[1].state(), AlertState::Pending);
        let a = st.rules[1].active.values().next().unwrap();
        assert_eq!(
            a.labels,
            vec![
                ("alertname".to_string(), "ManyErrors".to_string()),
                ("pod".into(), "web-0".into()),
                ("severity".into(), "page".into()),
            ]
        );
        assert_eq!(a.annotations["summary"], "web-0 logged 5 errors");
        assert!(
            out.samples
                .iter()
                .any(|s| s.labels.contains(&("__name__".into(), "ALERTS".into()))
                    && s.labels.contains(&("alertstate".into(), "pending".into())))
        );
        // One second later it fires and is sent, with external labels.
        let out = apply(
            &g,
            &mut st,
            query_all(&g, &env, now_ms + 1000),
            now_ms + 1000,
            &env,
        );
        assert_eq!(st.rules[1].state(), AlertState::Firing);
        assert_eq!(out.notifications.len(), 1);
        let n = &out.notifications[0];
        assert_eq!(n.labels["cluster"], "eu");
        assert_eq!(n.starts_at, rfc3339_ms(now_ms + 1000));
        assert!(
            n.generator_url
                .starts_with("http://grafana:3000/explore?left=%7B%22queries%22"),
            "{}",
            n.generator_url
        );
        let for_state = out
            .samples
            .iter()
            .find(|s| {
                s.labels
                    .contains(&("__name__".into(), "ALERTS_FOR_STATE".into()))
            })
            .unwrap();
        assert_eq!(for_state.value, (now_ms / 1000) as f64);
        // The pending series is stale now that the alert fires.
        assert!(out.samples.iter().any(|s| s.value.to_bits() == STALE_NAN
            && s.labels.contains(&("alertstate".into(), "pending".into()))));
        let json = serde_json::to_string(&out.notifications).unwrap();
        assert!(
            json.contains("\"startsAt\":\"2023-11-14T22:13:21.000Z\""),
            "{json}"
        );
        // Removed: resolved at once.
        let r = resolve_all(&st, &ext, now_ms + 2000);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].ends_at, rfc3339_ms(now_ms + 2000));
    }

    #[test]
    fn failures_limits_and_offsets() {
        let now_ms = 1_700_000_000_000;
        let src = source(now_ms * 1_000_000);
        let ext = BTreeMap::new();
        let env = env(&src, &ext);
        let g = group(
            r#"name: g
limit: 1
query_offset: 1h
rules:
  - record: r
    expr: sum by (pod) (count_over_time({namespace="shop"}[1m]))
  - record: late
    expr: sum(count_over_time({namespace="shop"}[1m]))
"#,
        );
        let mut st = GroupStatus::new(&g);
        let out = apply(&g, &mut st, query_all(&g, &env, now_ms), now_ms, &env);
        // An hour ago there was nothing: no series, so no limit either.
        assert_eq!(out.failures, 0);
        assert!(out.samples.is_empty());
        let g = group(
            "name: g\nlimit: 1\nrules:\n  - record: r\n    expr: sum by (pod) (count_over_time({namespace=\"shop\"}[1m]))\n",
        );
        let mut st = GroupStatus::new(&g);
        let out = apply(&g, &mut st, query_all(&g, &env, now_ms), now_ms, &env);
        assert_eq!(out.failures, 1);
        assert_eq!(st.rules[0].health, Health::Err);
        assert_eq!(st.rules[0].last_error, "exceeded limit of 1 with 2 series");
    }
}
