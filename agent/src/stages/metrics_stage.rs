//! The `metrics` stage: counters, gauges and histograms derived from
//! entries, served on the agent's `/metrics`.
//!
//! Names are `<prefix><name>` with the default prefix
//! `larch_agent_custom_` (Promtail's is `promtail_custom_`); other names
//! under `larch_agent_` are the agent's own and refused. A counter is
//! exposed as `<name>_total` (OpenMetrics), so `_total` is added to a
//! counter name without it. As in Promtail, every series carries the
//! entry's stream labels. The same name in two `metrics` stages is one
//! metric if type (and buckets) agree, and an error otherwise. The stage
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
use crate::metrics::{
    FloatCounter, FloatGauge, Histogram, HistogramVec, StreamCounters, StreamGauges,
};

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
    Counter(StreamCounters, HashMap<u64, FloatCounter>),
    Gauge(StreamGauges, HashMap<u64, FloatGauge>),
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
/// The prefix of names made by default.
const DEFAULT_PREFIX: &str = "larch_agent_custom_";
/// The agent's own metrics are under this prefix.
const OWN_PREFIX: &str = "larch_agent_";

impl MetricsStage {
    pub fn new(m: &BTreeMap<String, MetricConfig>, ctx: &BuildCtx<'_>) -> Result<Self, String> {
        if m.is_empty() {
            return Err("needs at least one metric".into());
        }
        let mut metrics = Vec::new();
        for (name, c) in m {
            let full = format!("{}{name}", c.prefix.as_deref().unwrap_or(DEFAULT_PREFIX));
            if !larch_go::labels::is_valid_metric_name(&full) {
                return Err(format!("invalid metric name {full:?}"));
            }
            if full.starts_with(OWN_PREFIX) && !full.starts_with(DEFAULT_PREFIX) {
                return Err(format!(
                    "metric {full}: names under {OWN_PREFIX} other than {DEFAULT_PREFIX} are the agent's own"
                ));
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
                        .try_stream_counters(&full, &help)
                        .map_err(conflict)?,
                    HashMap::new(),
                ),
                MetricKind::Gauge => Family::Gauge(
                    ctx.registry
                        .try_stream_gauges(&full, &help)
                        .map_err(conflict)?,
                    HashMap::new(),
                ),
                MetricKind::Histogram => {
                    let buckets = c
                        .config
                        .buckets
                        .clone()
                        .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
                    // An infinite bound is dropped: `+Inf` is always there.
                    if buckets.windows(2).any(|w| w[0] >= w[1])
                        || buckets.iter().any(|b| b.is_nan())
                    {
                        return Err(format!("metric {name}: buckets must be increasing"));
                    }
                    Family::Histogram(
                        ctx.registry
                            .try_stream_histograms(&full, &help, &buckets)
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
            // Promtail reads the value with Go's `strconv.ParseFloat`:
            // hex floats count, spaces and `_` do not.
            let num = src.and_then(|s| larch_go::strconv::parse_float(s).ok());
            match &mut m.family {
                Family::Counter(vec, cache) => {
                    let c = cached(cache, key, || vec.with_labels(&e.labels));
                    // Counters never go down: other amounts are ignored.
                    match (m.action, num) {
                        (Action::Add, _) if m.count_bytes => {
                            c.inc_by(e.line.len() as f64);
                        }
                        (Action::Add, Some(n)) if n > 0.0 => {
                            c.inc_by(n);
                        }
                        (Action::Add, _) => {}
                        _ => {
                            c.inc();
                        }
                    }
                }
                Family::Gauge(vec, cache) => {
                    let g = cached(cache, key, || vec.with_labels(&e.labels));
                    let _ = match (m.action, num) {
                        (Action::Inc, _) => g.inc(),
                        (Action::Dec, _) => g.dec(),
                        (Action::Set, Some(n)) => g.set(n),
                        (Action::Add, Some(n)) => g.inc_by(n),
                        (Action::Sub, Some(n)) => g.dec_by(n),
                        _ => 0.0,
                    };
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
        let m = larch_testkit::metrics::parse(&reg.render());
        for (series, want) in [
            (r#"larch_agent_custom_lines_total{app="a"}"#, 2.0),
            (r#"larch_agent_custom_lines_total{app="b"}"#, 1.0),
            (r#"larch_agent_custom_bytes_total{app="a"}"#, 37.0),
            (r#"larch_agent_custom_errors_total{app="a"}"#, 1.0),
            (
                r#"larch_agent_custom_took_seconds_bucket{le="1.0",app="a"}"#,
                1.0,
            ),
            (r#"larch_agent_custom_took_seconds_count{app="a"}"#, 2.0),
            (r#"larch_agent_custom_last_took{app="a"}"#, 2.0),
        ] {
            assert_eq!(m.get(series), Some(&want), "{series} in {m:?}");
        }
    }

    /// Values are read with Go's `strconv.ParseFloat`, as Promtail reads
    /// them: hex floats, `+` and `1e3` are numbers; `_`
    /// separators, `1e`, `0x10` (no `p` exponent) and surrounding spaces
    /// are not (Rust's `str::parse` after a trim read some of these the
    /// other way).
    #[test]
    fn values_are_read_as_go_reads_floats() {
        let (mut p, reg) = pipeline(
            r#"
- regex:
    expression: '^v=(?P<v>.*)$'
- metrics:
    added_total:
      type: Counter
      source: v
      config: {action: add}
    counted_total:
      type: Counter
      source: v
      config: {action: inc}
"#,
        );
        let lines = ["0x1p-2", "+2", "1e3", "1_000", "1e", "0x10", " 4", "8 "];
        run_lines(
            &mut p,
            lines
                .iter()
                .map(|v| entry(&format!("v={v}"), &[("app", "a")]))
                .collect(),
        );
        let m = larch_testkit::metrics::parse(&reg.render());
        assert_eq!(
            m.get(r#"larch_agent_custom_counted_total{app="a"}"#),
            Some(&(lines.len() as f64))
        );
        // 0.25 + 2 + 1000; Rust's rules after a trim gave 1014.
        assert_eq!(
            m.get(r#"larch_agent_custom_added_total{app="a"}"#),
            Some(&1002.25)
        );
    }

    /// The same name in two stages is one metric when type and buckets
    /// agree; otherwise, or in the agent's own namespace, the
    /// configuration is refused. A counter without `_total` gets it.
    #[test]
    fn duplicate_and_reserved_names() {
        let (mut p, reg) = pipeline(
            r#"
- metrics:
    lines_total: {type: Counter, config: {match_all: true}}
    seen: {type: Counter, config: {match_all: true}}
- match:
    selector: '{app="a"}'
    stages:
    - metrics:
        lines_total: {type: Counter, description: other help, config: {match_all: true}}
"#,
        );
        run_lines(
            &mut p,
            vec![entry("x", &[("app", "a")]), entry("y", &[("app", "b")])],
        );
        let text = reg.render();
        let m = larch_testkit::metrics::parse(&text);
        assert_eq!(
            m.get(r#"larch_agent_custom_lines_total{app="a"}"#),
            Some(&2.0)
        );
        assert_eq!(
            m.get(r#"larch_agent_custom_lines_total{app="b"}"#),
            Some(&1.0)
        );
        assert_eq!(
            m.get(r#"larch_agent_custom_seen_total{app="b"}"#),
            Some(&1.0)
        );
        assert_eq!(
            text.matches("# TYPE larch_agent_custom_lines counter")
                .count(),
            1
        );
        for (yaml, want) in [
            (
                "- metrics:\n    x: {type: Counter, config: {match_all: true}}\n- metrics:\n    x: {type: Gauge, source: a, config: {action: set}}\n",
                "already registered",
            ),
            (
                "- metrics:\n    h: {type: Histogram, source: a, config: {buckets: [1]}}\n- metrics:\n    h: {type: Histogram, source: a, config: {buckets: [2]}}\n",
                "already registered",
            ),
            (
                "- metrics:\n    x: {type: Counter, config: {match_all: true}}\n- metrics:\n    x_total: {type: Gauge, source: a, config: {action: set}}\n",
                "already registered",
            ),
            (
                "- metrics:\n    read_bytes_total: {type: Counter, prefix: larch_agent_, config: {match_all: true}}\n",
                "the agent's own",
            ),
            (
                "- metrics:\n    h: {type: Histogram, source: a, config: {buckets: [1, .nan]}}\n",
                "increasing",
            ),
        ] {
            let e = pipeline_err(yaml);
            assert!(e.contains(want), "{yaml}: {e}");
        }
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
