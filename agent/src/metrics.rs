//! The agent's metrics, with the store's Prometheus library
//! (`prometheus-client`), served on `/metrics` in the store's exposition
//! format.
//!
//! The agent's own metrics and the ones the `metrics` pipeline stage derives
//! from lines live in one [`Registry`]. prometheus-client's registry takes
//! each metric once, by value; the agent's parts register theirs as they
//! start and the `metrics` stage registers names from the configuration, so
//! [`Registry`] keeps one behind a lock together with the handle of every
//! name it holds. Asking for a name again gives the same metric (the reader
//! and the sender share `larch_agent_dropped_entries_total`); asking for it
//! with another type, other label names or other buckets is a
//! [`Conflict`]. Updating a metric never takes this lock: handles are
//! atomics (histograms a short mutex of their own), and hot paths keep the
//! child of a labelled family they use.
//!
//! Exposition: OpenMetrics text ([`CONTENT_TYPE`]), as the store's. A
//! counter family `<name>` has the sample `<name>_total` (so names are
//! given here with their `_total`, as they are scraped); every help text
//! ends with one period; `# EOF` ends the text. Families without a series
//! yet are left out. The agent's own counters and gauges hold integers;
//! the `metrics` stage's counters and gauges hold `f64` (a source value
//! may be fractional).
//!
//! Names follow `larch_agent_<name>_<unit>`, counters end in `_total`, and
//! label values are bounded (reasons, status classes), never paths.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::{Family, MetricConstructor};

use crate::labels::Labels;

/// The content type of [`Registry::render`]'s text (the store's too).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A counter of the agent's own (whole numbers of things).
pub type Counter = prometheus_client::metrics::counter::Counter<u64>;
/// A gauge of the agent's own.
pub type Gauge = prometheus_client::metrics::gauge::Gauge<i64>;
/// A counter of the `metrics` stage (`add` may add a fraction).
pub type FloatCounter = prometheus_client::metrics::counter::Counter<f64, AtomicU64>;
/// A gauge of the `metrics` stage.
pub type FloatGauge = prometheus_client::metrics::gauge::Gauge<f64, AtomicU64>;
/// A histogram with fixed bucket bounds.
pub type Histogram = prometheus_client::metrics::histogram::Histogram;

/// Request latency buckets in seconds (5 ms to 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A series' label pairs: in the family's label order, or the stream's
/// labels (sorted by name) for the `metrics` stage's families.
type LabelSet = Vec<(String, String)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (every update is a single insert), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes the histograms of a family, all with the family's buckets.
#[derive(Clone, Debug)]
pub struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

fn label_set(names: &[String], values: &[&str]) -> LabelSet {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| (n.clone(), v.to_string()))
        .collect()
}

fn stream_label_set(labels: &Labels) -> LabelSet {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A counter family with fixed label names.
#[derive(Clone, Debug)]
pub struct CounterVec {
    family: Family<LabelSet, Counter>,
    names: Arc<[String]>,
}

impl CounterVec {
    /// The child with these label values (in the family's label order).
    pub fn with(&self, values: &[&str]) -> Counter {
        self.family
            .get_or_create_owned(&label_set(&self.names, values))
    }
}

/// A histogram family with fixed label names, or the stream's labels.
#[derive(Clone, Debug)]
pub struct HistogramVec {
    family: Family<LabelSet, Histogram, Buckets>,
    names: Arc<[String]>,
}

impl HistogramVec {
    /// The child with these label values (in the family's label order).
    pub fn with(&self, values: &[&str]) -> Histogram {
        self.family
            .get_or_create_owned(&label_set(&self.names, values))
    }
    /// The child labelled with `labels` (the `metrics` stage's families).
    pub fn with_labels(&self, labels: &Labels) -> Histogram {
        self.family.get_or_create_owned(&stream_label_set(labels))
    }
}

/// A counter family of the `metrics` stage, a series per stream.
#[derive(Clone, Debug)]
pub struct StreamCounters(Family<LabelSet, FloatCounter>);

impl StreamCounters {
    /// The series of the stream labelled `labels`.
    pub fn with_labels(&self, labels: &Labels) -> FloatCounter {
        self.0.get_or_create_owned(&stream_label_set(labels))
    }
}

/// A gauge family of the `metrics` stage, a series per stream.
#[derive(Clone, Debug)]
pub struct StreamGauges(Family<LabelSet, FloatGauge>);

impl StreamGauges {
    /// The series of the stream labelled `labels`.
    pub fn with_labels(&self, labels: &Labels) -> FloatGauge {
        self.0.get_or_create_owned(&stream_label_set(labels))
    }
}

type GaugeFnBox = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A gauge computed when the metrics are rendered.
#[derive(Clone)]
struct GaugeFn(Arc<RwLock<GaugeFnBox>>);

impl std::fmt::Debug for GaugeFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GaugeFn")
    }
}

impl EncodeMetric for GaugeFn {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let f = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        encoder.encode_gauge(&f())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// What a name was registered as: the handle handed out again, and what
/// must match for a second registration to share it.
#[derive(Clone, Debug)]
enum Known {
    Counter(Counter),
    Gauge(Gauge),
    GaugeFn(GaugeFn),
    CounterVec(CounterVec),
    HistogramVec(HistogramVec, Arc<[f64]>),
    StreamCounters(StreamCounters),
    StreamGauges(StreamGauges),
}

/// A set of metrics; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    registry: prometheus_client::registry::Registry,
    /// By family name (a counter's without its `_total`).
    known: HashMap<String, Known>,
    /// Family and sample names in use.
    taken: HashSet<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.0);
        let mut names: Vec<&String> = inner.known.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("names", &names).finish()
    }
}

/// Registering a name twice with a different type, labels or buckets.
#[derive(Debug, thiserror::Error)]
#[error("metric {0} is already registered with a different type, labels or buckets")]
pub struct Conflict(pub String);

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds the `process_*` figures and `larch_build_info` every Larch
    /// process serves (`larch-metrics`).
    pub fn register_process_metrics(&self) {
        let mut inner = lock(&self.0);
        larch_metrics::register(
            &mut inner.registry,
            "larch-agent",
            env!("CARGO_PKG_VERSION"),
        );
    }

    /// The metric registered as `name`, picked out of what it was
    /// registered as by `pick`; made by `make` and registered with `help`
    /// if the name is new. `Conflict` if `pick` refuses what `name` is, or
    /// if the new family's name or one of its sample names is another
    /// family's.
    fn get_or_register<T>(
        &self,
        name: &str,
        help: &str,
        kind: MetricType,
        make: impl FnOnce() -> Known,
        pick: impl Fn(&Known) -> Option<T>,
    ) -> Result<T, Conflict> {
        let conflict = || Conflict(name.to_string());
        // prometheus-client adds a counter's `_total`.
        let family = match kind {
            MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let mut inner = lock(&self.0);
        if let Some(k) = inner.known.get(family) {
            return pick(k).ok_or_else(conflict);
        }
        let samples: Vec<String> = match kind {
            MetricType::Counter => vec![format!("{family}_total")],
            MetricType::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family}{s}"))
                .collect(),
            _ => vec![family.to_string()],
        };
        if inner.taken.contains(family) || samples.iter().any(|s| inner.taken.contains(s)) {
            return Err(conflict());
        }
        let known = make();
        let handle = pick(&known).ok_or_else(conflict)?;
        // prometheus-client adds the help's final period.
        let help = escape_help(help.strip_suffix('.').unwrap_or(help));
        let r = &mut inner.registry;
        match known.clone() {
            Known::Counter(c) => r.register(family, help, c),
            Known::CounterVec(v) => r.register(family, help, v.family),
            Known::StreamCounters(c) => r.register(family, help, c.0),
            Known::Gauge(g) => r.register(family, help, g),
            Known::GaugeFn(g) => r.register(family, help, g),
            Known::StreamGauges(g) => r.register(family, help, g.0),
            Known::HistogramVec(v, _) => r.register(family, help, v.family),
        }
        inner.taken.insert(family.to_string());
        inner.taken.extend(samples);
        inner.known.insert(family.to_string(), known);
        Ok(handle)
    }

    /// An unlabelled counter named `name` (ending in `_total`).
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        Self::fixed(
            self.get_or_register(
                name,
                help,
                MetricType::Counter,
                || Known::Counter(Counter::default()),
                |k| match k {
                    Known::Counter(c) => Some(c.clone()),
                    _ => None,
                },
            ),
            Counter::default,
        )
    }

    /// A counter family named `name` (ending in `_total`) with fixed label
    /// names.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        let names: Arc<[String]> = labels.iter().map(|s| s.to_string()).collect();
        let fallback = {
            let names = names.clone();
            move || CounterVec {
                family: Family::default(),
                names,
            }
        };
        Self::fixed(
            self.get_or_register(
                name,
                help,
                MetricType::Counter,
                || {
                    Known::CounterVec(CounterVec {
                        family: Family::default(),
                        names: names.clone(),
                    })
                },
                |k| match k {
                    Known::CounterVec(v) if v.names == names => Some(v.clone()),
                    _ => None,
                },
            ),
            fallback,
        )
    }

    /// An unlabelled gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        Self::fixed(
            self.get_or_register(
                name,
                help,
                MetricType::Gauge,
                || Known::Gauge(Gauge::default()),
                |k| match k {
                    Known::Gauge(g) => Some(g.clone()),
                    _ => None,
                },
            ),
            Gauge::default,
        )
    }

    /// An unlabelled gauge whose value `f` computes each time the metrics
    /// are rendered (`f` must be cheap and must not use this registry).
    /// Registering the name again replaces the function.
    pub fn gauge_fn(&self, name: &str, help: &str, f: impl Fn() -> u64 + Send + Sync + 'static) {
        let f: GaugeFnBox = Arc::new(f);
        let made = f.clone();
        let r = self.get_or_register(
            name,
            help,
            MetricType::Gauge,
            move || Known::GaugeFn(GaugeFn(Arc::new(RwLock::new(made)))),
            |k| match k {
                Known::GaugeFn(g) => Some(g.clone()),
                _ => None,
            },
        );
        match r {
            Ok(g) => *g.0.write().unwrap_or_else(|p| p.into_inner()) = f,
            Err(e) => tracing::error!(error = %e, "Metric registered twice."),
        }
    }

    /// A histogram family with fixed label names.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let names: Arc<[String]> = labels.iter().map(|s| s.to_string()).collect();
        let fallback = {
            let names = names.clone();
            let buckets = Buckets(buckets.into());
            move || HistogramVec {
                family: Family::new_with_constructor(buckets),
                names,
            }
        };
        Self::fixed(self.try_histograms(name, help, names, buckets), fallback)
    }

    fn try_histograms(
        &self,
        name: &str,
        help: &str,
        names: Arc<[String]>,
        buckets: &[f64],
    ) -> Result<HistogramVec, Conflict> {
        let bounds: Arc<[f64]> = buckets.into();
        self.get_or_register(
            name,
            help,
            MetricType::Histogram,
            || {
                Known::HistogramVec(
                    HistogramVec {
                        family: Family::new_with_constructor(Buckets(bounds.clone())),
                        names: names.clone(),
                    },
                    bounds.clone(),
                )
            },
            |k| match k {
                Known::HistogramVec(v, b) if v.names == names && *b == bounds => Some(v.clone()),
                _ => None,
            },
        )
    }

    /// A counter family of the `metrics` stage, a series per stream.
    /// `name` is the exposed name: `_total` is added if it is missing.
    pub fn try_stream_counters(&self, name: &str, help: &str) -> Result<StreamCounters, Conflict> {
        let name = if name.ends_with("_total") {
            name.to_string()
        } else {
            format!("{name}_total")
        };
        self.get_or_register(
            &name,
            help,
            MetricType::Counter,
            || Known::StreamCounters(StreamCounters(Family::default())),
            |k| match k {
                Known::StreamCounters(c) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// A gauge family of the `metrics` stage, a series per stream.
    pub fn try_stream_gauges(&self, name: &str, help: &str) -> Result<StreamGauges, Conflict> {
        self.get_or_register(
            name,
            help,
            MetricType::Gauge,
            || Known::StreamGauges(StreamGauges(Family::default())),
            |k| match k {
                Known::StreamGauges(g) => Some(g.clone()),
                _ => None,
            },
        )
    }

    /// A histogram family of the `metrics` stage, a series per stream
    /// ([`HistogramVec::with_labels`]).
    pub fn try_stream_histograms(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<HistogramVec, Conflict> {
        self.try_histograms(name, help, Arc::new([]), buckets)
    }

    /// The agent's own metrics are registered with fixed names and types;
    /// a conflict is a programming error, reported by a detached metric
    /// that still counts (and a log line), never a panic.
    fn fixed<T>(r: Result<T, Conflict>, fallback: impl FnOnce() -> T) -> T {
        r.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Metric registered twice.");
            fallback()
        })
    }

    /// The OpenMetrics text of every metric ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let inner = lock(&self.0);
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &inner.registry);
        out
    }
}

/// Help text as OpenMetrics wants it: backslashes and line breaks escaped
/// (help of the `metrics` stage comes from the configuration).
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text() {
        let r = Registry::new();
        let c = r.counter("larch_agent_read_bytes_total", "Bytes read.");
        c.inc_by(10);
        c.inc();
        let d = r.counter_vec("larch_agent_dropped_entries_total", "Dropped.", &["reason"]);
        d.with(&["line_too_long"]).inc();
        let g = r.gauge("larch_agent_files_tailed", "Files.");
        g.set(3);
        g.dec();
        r.gauge_fn("larch_agent_unread_bytes", "Backlog.", || 42);
        let h = r.histogram_vec(
            "larch_agent_request_duration_seconds",
            "Latency.",
            &["status_code"],
            &[0.1, 1.0],
        );
        h.with(&["204"]).observe(0.05);
        h.with(&["204"]).observe(0.5);
        h.with(&["204"]).observe(5.0);
        let text = r.render();
        for want in [
            "# HELP larch_agent_read_bytes Bytes read.\n# TYPE larch_agent_read_bytes counter\nlarch_agent_read_bytes_total 11\n",
            "larch_agent_dropped_entries_total{reason=\"line_too_long\"} 1\n",
            "# TYPE larch_agent_files_tailed gauge\nlarch_agent_files_tailed 2\n",
            "larch_agent_unread_bytes 42\n",
            "# TYPE larch_agent_request_duration_seconds histogram\n",
            "larch_agent_request_duration_seconds_bucket{le=\"0.1\",status_code=\"204\"} 1\n",
            "larch_agent_request_duration_seconds_bucket{le=\"1.0\",status_code=\"204\"} 2\n",
            "larch_agent_request_duration_seconds_bucket{le=\"+Inf\",status_code=\"204\"} 3\n",
            "larch_agent_request_duration_seconds_count{status_code=\"204\"} 3\n",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("# HELP") && l.ends_with("..")),
            "{text}"
        );
    }

    #[test]
    fn same_name_is_shared_and_conflicts_are_errors() {
        let r = Registry::new();
        let a = r.counter("x_total", "x");
        let b = r.counter("x_total", "x");
        a.inc();
        assert_eq!(b.get(), 1);
        assert!(r.try_stream_gauges("x_total", "x").is_err());
        assert!(
            r.try_stream_counters("x", "x").is_err(),
            "x is exposed as x_total"
        );
        let v = r.counter_vec("y_total", "y", &["a"]);
        v.with(&["1"]).inc();
        assert_eq!(r.counter_vec("y_total", "y", &["a"]).with(&["1"]).get(), 1);
        let other = r.counter_vec("y_total", "y", &["b"]);
        other.with(&["1"]).inc();
        assert!(
            !r.render().contains("b=\"1\""),
            "a conflicting family is not served"
        );
        r.try_stream_histograms("h", "h", &[1.0]).unwrap();
        assert!(r.try_stream_histograms("h", "h", &[1.0]).is_ok());
        assert!(r.try_stream_histograms("h", "h", &[2.0]).is_err());
        // Registered once: one family in the text.
        assert_eq!(r.render().matches("# TYPE x counter").count(), 1);
    }

    #[test]
    fn help_from_configuration_stays_on_its_line() {
        let r = Registry::new();
        let c = r
            .try_stream_counters("c_total", "two\nlines \\ here")
            .unwrap();
        let mut l = Labels::default();
        l.set("app", "a");
        c.with_labels(&l).inc();
        let text = r.render();
        assert!(
            text.contains(
                "# HELP c two\\nlines \\\\ here.\n# TYPE c counter\nc_total{app=\"a\"} 1.0\n"
            ),
            "{text}"
        );
    }
}
