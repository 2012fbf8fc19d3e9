//! Alerts of one alerting rule: Prometheus' lifecycle (pending, firing,
//! resolved), what is sent to Alertmanager and when, and the templates of
//! labels and annotations.
//!
//! ```text
//!  result appears ──► pending ──(held `for`)──► firing ──(result gone,
//!       ▲                │                        │      `keep_firing_for` over)
//!       │   result gone  ▼                        ▼
//!       └──────────── (dropped)            inactive (resolved) ──15m──► dropped
//! ```
//!
//! Pending alerts are never sent. A firing alert is sent when it fires and
//! again every `resend_delay`; a resolved one at once and then every
//! `resend_delay` while it is kept (15 minutes). Each send carries
//! `endsAt`: the resolve time, or while firing `now + 4 × max(interval,
//! resend_delay)`, after which Alertmanager resolves it by itself (so a
//! ruler that stops sending does not leave alerts firing forever, and a
//! ruler restarted within that time does not let them resolve).
//!
//! Every time here is in Unix milliseconds.

use std::collections::BTreeMap;

use larch_go::template::{Context, Dialect, Template};
use serde::{Deserialize, Serialize};

/// Alert labels, sorted by name (the alert's identity).
pub type Labels = Vec<(String, String)>;

/// How long a resolved alert is kept (and re-sent) before it is forgotten
/// (Prometheus: 15m).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an alert is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (kept a while to tell Alertmanager).
    Inactive,
    /// Condition holds, not yet for `for`.
    Pending,
    /// Condition held for `for`.
    Firing,
}

impl AlertState {
    /// Prometheus' name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Result labels, the rule's labels (expanded) and `alertname`.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it is.
    pub state: AlertState,
    /// The result's value at the last evaluation.
    #[serde(with = "float_text")]
    pub value: f64,
    /// When the condition started to hold.
    pub active_at: i64,
    /// When it fired.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// When it was last sent.
    pub last_sent_at: Option<i64>,
    /// `endsAt` of the last send while firing.
    pub valid_until: Option<i64>,
    /// Since when the condition no longer holds while `keep_firing_for`
    /// keeps it firing.
    pub keep_firing_since: Option<i64>,
}

/// Floats as text in the state file (JSON has no NaN).
mod float_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One instance of an evaluation's result, labels and annotations
/// expanded.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// Alert labels (sorted).
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Applies one evaluation's results at `ts` (Prometheus' rules):
/// `hold` is the rule's `for`, `keep_firing_for` its own; both in
/// milliseconds.
pub fn update(
    active: &mut BTreeMap<Labels, Alert>,
    results: Vec<Instance>,
    ts: i64,
    hold: i64,
    keep_firing_for: i64,
) {
    let mut present = std::collections::HashSet::with_capacity(results.len());
    for r in results {
        present.insert(r.labels.clone());
        match active.get_mut(&r.labels) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = r.value;
                a.annotations = r.annotations;
            }
            _ => {
                active.insert(
                    r.labels.clone(),
                    Alert {
                        labels: r.labels,
                        annotations: r.annotations,
                        state: AlertState::Pending,
                        value: r.value,
                        active_at: ts,
                        fired_at: None,
                        resolved_at: None,
                        last_sent_at: None,
                        valid_until: None,
                        keep_firing_since: None,
                    },
                );
            }
        }
    }
    active.retain(|labels, a| {
        if !present.contains(labels) {
            if a.state == AlertState::Firing && keep_firing_for > 0 {
                let since = *a.keep_firing_since.get_or_insert(ts);
                if ts - since < keep_firing_for {
                    return true;
                }
            }
            if a.state == AlertState::Pending {
                return false;
            }
            if let Some(resolved) = a.resolved_at
                && a.state == AlertState::Inactive
                && ts - resolved > RESOLVED_RETENTION_MS
            {
                return false;
            }
            if a.state != AlertState::Inactive {
                a.state = AlertState::Inactive;
                a.resolved_at = Some(ts);
            }
            return true;
        }
        a.keep_firing_since = None;
        if a.state == AlertState::Pending && ts - a.active_at >= hold {
            a.state = AlertState::Firing;
            a.fired_at = Some(ts);
        }
        true
    });
}

/// What Alertmanager receives for one alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Labels (external labels not yet added).
    pub labels: Labels,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired.
    pub starts_at: i64,
    /// When it resolved, or until when it is valid.
    pub ends_at: i64,
}

/// The alerts due to be sent at `ts`, marked as sent.
pub fn due(
    active: &mut BTreeMap<Labels, Alert>,
    ts: i64,
    resend_delay: i64,
    interval: i64,
) -> Vec<Notification> {
    let mut out = Vec::new();
    for a in active.values_mut() {
        if a.state == AlertState::Pending {
            continue;
        }
        let resolved_since_sent = match (a.resolved_at, a.last_sent_at) {
            (Some(r), Some(s)) => r > s,
            (Some(_), None) => true,
            _ => false,
        };
        let resend = a.last_sent_at.is_none_or(|s| s + resend_delay < ts);
        if !(resolved_since_sent || resend) {
            continue;
        }
        a.last_sent_at = Some(ts);
        let valid_until = ts + 4 * interval.max(resend_delay);
        let ends_at = match a.resolved_at {
            Some(r) if a.state == AlertState::Inactive => r,
            _ => {
                a.valid_until = Some(valid_until);
                valid_until
            }
        };
        out.push(Notification {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.fired_at.unwrap_or(a.active_at),
            ends_at,
        });
    }
    out
}

/// An alerting rule's label and annotation templates, parsed once.
#[derive(Clone, Debug)]
pub struct Templates {
    name: String,
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
}

impl Templates {
    /// Parses the templates of alert `alert` (checked when the rule was
    /// read, so a failure here is reported in the text itself).
    pub fn new(
        alert: &str,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Templates {
        let name = format!("__alert_{alert}");
        let parse = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter_map(|(k, v)| {
                    Template::parse(&name, v, &Dialect::PROMETHEUS)
                        .ok()
                        .map(|t| (k.clone(), t))
                })
                .collect()
        };
        Templates {
            labels: parse(labels),
            annotations: parse(annotations),
            name,
        }
    }

    /// The rule's labels and annotations expanded for one result.
    pub fn expand(&self, data: &TemplateData<'_>) -> (Labels, BTreeMap<String, String>) {
        let one = |t: &Template| {
            let mut out = Vec::new();
            match t.execute(data, &mut out) {
                Ok(()) => String::from_utf8_lossy(&out).into_owned(),
                Err(e) => format!(
                    "<error expanding template: error executing template {}: {e}>",
                    self.name
                ),
            }
        };
        let labels = self
            .labels
            .iter()
            .map(|(k, t)| (k.clone(), one(t)))
            .collect();
        let annotations = self
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), one(t)))
            .collect();
        (labels, annotations)
    }
}

/// What a template sees: one result's labels and value, the external
/// labels and URL.
pub struct TemplateData<'a> {
    /// The result's labels, sorted.
    pub labels: &'a [(String, String)],
    /// The result's value.
    pub value: f64,
    /// External labels.
    pub external_labels: &'a BTreeMap<String, String>,
    /// External URL.
    pub external_url: &'a str,
}

impl Context for TemplateData<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in self.labels {
            f(k, v);
        }
    }
    fn line(&self) -> &[u8] {
        b""
    }
    fn timestamp(&self) -> i64 {
        0
    }
    fn value(&self) -> f64 {
        self.value
    }
    fn for_each_external_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in self.external_labels {
            f(k, v);
        }
    }
    fn external_url(&self) -> &str {
        self.external_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(pod: &str, v: f64) -> Instance {
        Instance {
            labels: vec![("alertname".into(), "A".into()), ("pod".into(), pod.into())],
            annotations: BTreeMap::new(),
            value: v,
        }
    }

    fn states(active: &BTreeMap<Labels, Alert>) -> Vec<(String, AlertState)> {
        active
            .values()
            .map(|a| (a.labels[1].1.clone(), a.state))
            .collect()
    }

    #[test]
    fn lifecycle() {
        let mut a = BTreeMap::new();
        let hold = 2000;
        update(&mut a, vec![inst("x", 1.0)], 0, hold, 0);
        assert_eq!(states(&a), [("x".into(), AlertState::Pending)]);
        assert!(
            due(&mut a, 0, 60_000, 1000).is_empty(),
            "pending is not sent"
        );
        update(&mut a, vec![inst("x", 2.0)], 1000, hold, 0);
        assert_eq!(a.values().next().unwrap().state, AlertState::Pending);
        update(&mut a, vec![inst("x", 3.0)], 2000, hold, 0);
        let x = a.values().next().unwrap();
        assert_eq!(
            (x.state, x.fired_at, x.value),
            (AlertState::Firing, Some(2000), 3.0)
        );
        let sent = due(&mut a, 2000, 60_000, 1000);
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].starts_at, sent[0].ends_at), (2000, 2000 + 240_000));
        // Not again before the resend delay.
        update(&mut a, vec![inst("x", 3.0)], 3000, hold, 0);
        assert!(due(&mut a, 3000, 60_000, 1000).is_empty());
        update(&mut a, vec![inst("x", 3.0)], 62_001, hold, 0);
        assert_eq!(due(&mut a, 62_001, 60_000, 1000).len(), 1);
        // Gone: resolved, sent at once with endsAt = resolve time.
        update(&mut a, vec![], 63_000, hold, 0);
        assert_eq!(a.values().next().unwrap().state, AlertState::Inactive);
        let sent = due(&mut a, 63_000, 60_000, 1000);
        assert_eq!(sent[0].ends_at, 63_000);
        assert!(due(&mut a, 64_000, 60_000, 1000).is_empty());
        // Kept 15 minutes, then forgotten.
        update(&mut a, vec![], 63_000 + RESOLVED_RETENTION_MS, hold, 0);
        assert_eq!(a.len(), 1);
        update(&mut a, vec![], 63_001 + RESOLVED_RETENTION_MS, hold, 0);
        assert!(a.is_empty());
    }

    #[test]
    fn pending_alerts_vanish_and_come_back_new() {
        let mut a = BTreeMap::new();
        update(&mut a, vec![inst("x", 1.0)], 0, 5000, 0);
        update(&mut a, vec![], 1000, 5000, 0);
        assert!(a.is_empty());
        // A resolved alert that returns starts over as pending.
        update(&mut a, vec![inst("y", 1.0)], 0, 0, 0);
        assert_eq!(
            a.values().next().unwrap().state,
            AlertState::Firing,
            "for: 0 fires at once"
        );
        update(&mut a, vec![], 1000, 0, 0);
        update(&mut a, vec![inst("y", 1.0)], 2000, 1000, 0);
        let y = a.values().next().unwrap();
        assert_eq!((y.state, y.active_at), (AlertState::Pending, 2000));
    }

    #[test]
    fn keep_firing_for() {
        let mut a = BTreeMap::new();
        update(&mut a, vec![inst("x", 1.0)], 0, 0, 3000);
        update(&mut a, vec![], 1000, 0, 3000);
        let x = a.values().next().unwrap();
        assert_eq!(
            (x.state, x.keep_firing_since),
            (AlertState::Firing, Some(1000))
        );
        update(&mut a, vec![], 3999, 0, 3000);
        assert_eq!(a.values().next().unwrap().state, AlertState::Firing);
        // Back before the time is over: the clock restarts.
        update(&mut a, vec![inst("x", 1.0)], 3500, 0, 3000);
        assert_eq!(a.values().next().unwrap().keep_firing_since, None);
        update(&mut a, vec![], 5000, 0, 3000);
        update(&mut a, vec![], 8000, 0, 3000);
        assert_eq!(a.values().next().unwrap().state, AlertState::Inactive);
    }

    #[test]
    fn templates_expand_per_result() {
        let mut labels = BTreeMap::new();
        labels.insert(
            "severity".into(),
            "{{ if gt $value 10.0 }}page{{ else }}ticket{{ end }}".into(),
        );
        let mut ann = BTreeMap::new();
        ann.insert(
            "summary".into(),
            "{{ $labels.pod }}: {{ $value | humanize }} in {{ $externalLabels.cluster }}".into(),
        );
        ann.insert("bad".into(), "{{ humanize $labels.pod }}".into());
        let t = Templates::new("A", &labels, &ann);
        let ext: BTreeMap<String, String> = [("cluster".to_string(), "eu".to_string())].into();
        let res = vec![("pod".to_string(), "web-0".to_string())];
        let (l, a) = t.expand(&TemplateData {
            labels: &res,
            value: 12345.0,
            external_labels: &ext,
            external_url: "",
        });
        assert_eq!(l, vec![("severity".to_string(), "page".to_string())]);
        assert_eq!(a["summary"], "web-0: 12.35k in eu");
        assert!(a["bad"].starts_with("<error expanding template: error executing template __alert_A: template: __alert_A:1:"), "{}", a["bad"]);
    }

    #[test]
    fn state_file_form_keeps_nan() {
        let mut a = BTreeMap::new();
        update(&mut a, vec![inst("x", f64::NAN)], 0, 0, 0);
        let x = a.values().next().unwrap();
        let json = serde_json::to_string(x).unwrap();
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert!(back.value.is_nan());
        assert_eq!(back.labels, x.labels);
    }
}
