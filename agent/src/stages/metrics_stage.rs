//! The `metrics` stage: counters, gauges and histograms derived from
//! entries, served on the agent's `/metrics`.
//!
//! Names are `<prefix><name>` with the default prefix
//! `larch_agent_custom_` (Promtail's is `promtail_custom_`). As in
//! Promtail, every series carries the entry's stream labels. The stage
//! keeps, per metric, a small cache from the label set's hash to its
//! series, so the per-entry cost is a hash and an atomic add.
//!
//! * Counter: `action: inc` (default) or `add`; counts entries whose
//!   `source` equals `value` (or whose source exists when no value is set),
//!   or every entry with `match_all`; `count_entry_bytes` adds the line's
//!   length instead of 1 (with `match_all` and `add`).
//! * Gauge: `action: set|inc|dec|add|sub`, with the source's numeric value
//!   for `set`, `add` and `sub`.
//! * Histogram: observes the source's numeric value into `buckets`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{BuildCtx, Entry, FileState, Stage};
use crate::metrics::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec};

/// The type of a derived metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricKind {
    /// Monotonic counter.
    #[serde(alias = "counter")]
    Counter,
    /// Value that goes up and down.
    #[serde(alias = "gauge")]
    Gauge,
    /// Distribution of values.
    #[serde(alias = "histogram")]
    Histogram,
}

/// The `config` block of a derived metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSettings {
    /// Only entries whose source equals this value count.
    #[serde(default)]
    pub value: Option<String>,
    /// What to do (see the module documentation).
    #[serde(default)]
    pub action: Option<String>,
    /// Count every entry (counters).
    #[serde(default)]
    pub match_all: bool,
    /// Add the line length instead of 1 (counters with `add`).
    #[serde(default)]
    pub count_entry_bytes: bool,
    /// Bucket bounds (histograms).
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
}

/// One derived metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricConfig {
    /// `Counter`, `Gauge` or `Histogram`.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Help text.
    #[serde(default)]
    pub description: Option<String>,
    /// Extracted value read by the metric.
    #[serde(default)]
    pub source: Option<String>,
    /// Name prefix. Default `larch_agent_custom_`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Type-specific settings.
    #[serde(default)]
    pub config: MetricSettings,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Inc,
    Add,
    Set,
    Dec,
    Sub,
    Observe,
}

enum Family {
    Counter(CounterVec, HashMap<u64, Counter>),
    Gauge(GaugeVec, HashMap<u64, Gauge>),
    Histogram(HistogramVec, HashMap<u64, Histogram>),
}

struct Metric {
    source: Option<String>,
    value: Option<String>,
    action: Action,
    match_all: bool,
    count_bytes: bool,
    family: Family,
}

pub(crate) struct MetricsStage {
    metrics: Vec<Metric>,
}

const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const CACHE_MAX: usize = 4096;

fn valid_metric_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

impl MetricsStage {
    pub fn new(m: &BTreeMap<String, MetricConfig>, ctx: &BuildCtx<'_>) -> Result<Self, String> {
        if m.is_empty() {
            return Err("needs at least one metric".into());
        }
        let mut metrics = Vec::new();
        for (name, c) in m {
            let full = format!(
                "{}{name}",
                c.prefix.as_deref().unwrap_or("larch_agent_custom_")
            );
            if !valid_metric_name(&full) {
                return Err(format!("invalid metric name {full:?}"));
            }
            let help = c
                .description
                .clone()
                .unwrap_or_else(|| format!("Derived from log entries ({name})."));
            let action = match (c.kind, c.config.action.as_deref()) {
                (MetricKind::Counter, None | Some("inc")) => Action::Inc,
                (MetricKind::Counter, Some("add")) => Action::Add,
                (MetricKind::Gauge, Some("set")) => Action::Set,
                (MetricKind::Gauge, Some("inc")) => Action::Inc,
                (MetricKind::Gauge, Some("dec")) => Action::Dec,
                (MetricKind::Gauge, Some("add")) => Action::Add,
                (MetricKind::Gauge, Some("sub")) => Action::Sub,
                (MetricKind::Histogram, None) => Action::Observe,
                (k, a) => {
                    return Err(format!(
                        "metric {name}: action {a:?} is not valid for {k:?}"
                    ));
                }
            };
            if !c.config.match_all && c.source.is_none() {
                return Err(format!(
                    "metric {name}: needs a source (or match_all for counters)"
                ));
            }
            if c.config.match_all && c.kind != MetricKind::Counter {
                return Err(format!("metric {name}: match_all is for counters"));
            }
            let conflict = |e: crate::metrics::Conflict| e.to_string();
            let family = match c.kind {
                MetricKind::Counter => Family::Counter(
                    ctx.registry
                        .try_counter_vec(&full, &help, &[])
                        .map_err(conflict)?,
                    HashMap::new(),
                ),
                MetricKind::Gauge => Family::Gauge(
                    ctx.registry
                        .try_gauge_vec(&full, &help, &[])
                        .map_err(conflict)?,
                    HashMap::new(),
                ),
                MetricKind::Histogram => {
                    let buckets = c
                        .config
                        .buckets
                        .clone()
                        .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
                    if buckets.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(format!("metric {name}: buckets must be increasing"));
                    }
                    Family::Histogram(
                        ctx.registry
                            .try_histogram_vec(&full, &help, &[], &buckets)
                            .map_err(conflict)?,
                        HashMap::new(),
                    )
                }
            };
            metrics.push(Metric {
                source: c.source.clone(),
                value: c.config.value.clone(),
                action,
                match_all: c.config.match_all,
                count_bytes: c.config.count_entry_bytes,
                family,
            });
        }
        Ok(MetricsStage { metrics })
    }
}

fn cached<T: Clone>(cache: &mut HashMap<u64, T>, key: u64, make: impl FnOnce() -> T) -> &T {
    if cache.len() >= CACHE_MAX && !cache.contains_key(&key) {
        cache.clear();
    }
    cache.entry(key).or_insert_with(make)
}

impl Stage for MetricsStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let key = e.labels.hash();
        for m in &mut self.metrics {
            let src = m.source.as_deref().and_then(|s| e.extracted.get(s));
            let applies = m.match_all
                || match (&m.value, src) {
                    (_, None) => false,
                    (Some(v), Some(s)) => v == s,
                    (None, Some(_)) => true,
                };
            if !applies {
                continue;
            }
            let num = src.and_then(|s| s.trim().parse::<f64>().ok());
            match &mut m.family {
                Family::Counter(vec, cache) => {
                    let c = cached(cache, key, || vec.with_labels(&e.labels));
                    match m.action {
                        Action::Add if m.count_bytes => c.add_u64(e.line.len() as u64),
                        Action::Add => {
                            if let Some(n) = num {
                                c.add(n)
                            }
                        }
                        _ => c.inc(),
                    }
                }
                Family::Gauge(vec, cache) => {
                    let g = cached(cache, key, || vec.with_labels(&e.labels));
                    match (m.action, num) {
                        (Action::Inc, _) => g.add(1.0),
                        (Action::Dec, _) => g.add(-1.0),
                        (Action::Set, Some(n)) => g.set(n),
                        (Action::Add, Some(n)) => g.add(n),
                        (Action::Sub, Some(n)) => g.add(-n),
                        _ => {}
                    }
                }
                Family::Histogram(vec, cache) => {
                    if let Some(n) = num {
                        cached(cache, key, || vec.with_labels(&e.labels)).observe(n);
                    }
                }
            }
        }
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn derives_metrics() {
        let (mut p, reg) = pipeline(
            r#"
- regex:
    expression: 'level=(?P<level>\w+) took=(?P<took>[\d.]+)'
- metrics:
    lines_total:
      type: Counter
      config: {match_all: true}
    bytes_total:
      type: Counter
      config: {match_all: true, count_entry_bytes: true, action: add}
    errors_total:
      type: Counter
      source: level
      config: {value: error}
    took_seconds:
      type: Histogram
      source: took
      config: {buckets: [0.1, 1]}
    last_took:
      type: Gauge
      source: took
      config: {action: set}
"#,
        );
        run_lines(
            &mut p,
            vec![
                entry("level=error took=0.5", &[("app", "a")]),
                entry("level=info took=2", &[("app", "a")]),
                entry("nothing", &[("app", "b")]),
            ],
        );
        let m = reg.render();
        assert!(
            m.contains("larch_agent_custom_lines_total{app=\"a\"} 2\n"),
            "{m}"
        );
        assert!(
            m.contains("larch_agent_custom_lines_total{app=\"b\"} 1\n"),
            "{m}"
        );
        assert!(
            m.contains("larch_agent_custom_bytes_total{app=\"a\"} 37\n"),
            "{m}"
        );
        assert!(
            m.contains("larch_agent_custom_errors_total{app=\"a\"} 1\n"),
            "{m}"
        );
        assert!(
            m.contains("larch_agent_custom_took_seconds_bucket{app=\"a\",le=\"1\"} 1\n"),
            "{m}"
        );
        assert!(
            m.contains("larch_agent_custom_took_seconds_count{app=\"a\"} 2\n"),
            "{m}"
        );
        assert!(
            m.contains("larch_agent_custom_last_took{app=\"a\"} 2\n"),
            "{m}"
        );
    }

    #[test]
    fn bad_metric_configs() {
        assert!(pipeline_err("- metrics:\n    x:\n      type: Gauge\n      source: a\n      config: {action: observe}\n").contains("not valid"));
        assert!(
            pipeline_err("- metrics:\n    x:\n      type: Counter\n").contains("needs a source")
        );
        assert!(
            pipeline_err("- metrics:\n    x:\n      type: Counter\n      max_idle_duration: 1h\n")
                .contains("unknown field")
        );
        assert!(
            pipeline_err(
                "- metrics:\n    bad-name:\n      type: Counter\n      config: {match_all: true}\n"
            )
            .contains("invalid metric name")
        );
    }
}
