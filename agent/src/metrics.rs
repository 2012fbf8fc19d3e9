//! A small Prometheus metrics registry and its text exposition.
//!
//! The agent's own metrics and the ones the `metrics` pipeline stage derives
//! from lines live in one [`Registry`], rendered on `/metrics`. Values are
//! atomics, so updating a metric never takes a lock; a lock is taken only to
//! find or create the child of a labelled family, and hot paths keep the
//! child they use. Families are get-or-create by name, so two parts of the
//! agent asking for the same metric share it.
//!
//! Names follow `larch_agent_<name>_<unit>`, counters end in `_total`, and
//! label values are bounded (reasons, status classes), never paths.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::labels::Labels;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (every update is a single insert), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An `f64` stored in an `AtomicU64`.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// A monotonically increasing counter.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicF64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    /// Adds `n` (ignored if negative: counters never go down).
    pub fn add(&self, n: f64) {
        if n > 0.0 {
            self.0.add(n);
        }
    }
    /// Adds an integer amount.
    pub fn add_u64(&self, n: u64) {
        if n > 0 {
            self.0.add(n as f64);
        }
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicF64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: f64) {
        self.0.add(d);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

#[derive(Debug)]
struct HistogramInner {
    bounds: Vec<f64>,
    counts: Vec<AtomicU64>,
    sum: AtomicF64,
    count: AtomicU64,
}

/// A histogram with fixed bucket bounds.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramInner>);

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds: bounds.to_vec(),
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
            count: AtomicU64::new(0),
        }))
    }
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let h = &self.0;
        if let Some(i) = h.bounds.iter().position(|b| v <= *b) {
            h.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        h.sum.add(v);
        h.count.fetch_add(1, Ordering::Relaxed);
    }
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

/// Request latency buckets in seconds (5 ms to 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A child's label pairs, in the family's label order (or sorted by name
/// for families with dynamic labels).
type Key = Vec<(String, String)>;

/// A gauge computed when the metrics are rendered.
#[derive(Clone)]
struct GaugeFn(Arc<dyn Fn() -> f64 + Send + Sync>);

impl std::fmt::Debug for GaugeFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GaugeFn")
    }
}

#[derive(Debug)]
enum Kind {
    Counter(BTreeMap<Key, Counter>),
    Gauge(BTreeMap<Key, Gauge>),
    GaugeFn(GaugeFn),
    Histogram(Vec<f64>, BTreeMap<Key, Histogram>),
}

#[derive(Debug)]
struct Family {
    help: String,
    label_names: Vec<String>,
    kind: Kind,
}

/// A labelled family of counters.
#[derive(Clone, Debug)]
pub struct CounterVec {
    registry: Registry,
    name: String,
}

/// A labelled family of gauges.
#[derive(Clone, Debug)]
pub struct GaugeVec {
    registry: Registry,
    name: String,
}

/// A labelled family of histograms.
#[derive(Clone, Debug)]
pub struct HistogramVec {
    registry: Registry,
    name: String,
}

enum Child {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Registry {
    /// Finds or creates the child of family `name` under `key`; `key` is
    /// built from the family's label names and `values`, or is `pairs`.
    fn child(&self, name: &str, values: Option<&[&str]>, pairs: Option<&Labels>) -> Option<Child> {
        let mut fams = lock(&self.families);
        let f = fams.get_mut(name)?;
        let key: Key = match (values, pairs) {
            (Some(values), _) => f
                .label_names
                .iter()
                .zip(values)
                .map(|(n, v)| (n.clone(), v.to_string()))
                .collect(),
            (None, Some(l)) => l
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            (None, None) => Vec::new(),
        };
        Some(match &mut f.kind {
            Kind::Counter(c) => Child::Counter(c.entry(key).or_default().clone()),
            Kind::Gauge(c) => Child::Gauge(c.entry(key).or_default().clone()),
            Kind::GaugeFn(_) => return None,
            Kind::Histogram(bounds, c) => Child::Histogram(
                c.entry(key)
                    .or_insert_with(|| Histogram::new(bounds))
                    .clone(),
            ),
        })
    }
}

// A family is created with its kind before any handle to it exists and is
// never replaced, so a lookup of the wrong kind cannot happen; the
// fallbacks below keep counting into a detached value instead of panicking.
impl CounterVec {
    /// The child with these label values (in the family's label order).
    pub fn with(&self, values: &[&str]) -> Counter {
        match self.registry.child(&self.name, Some(values), None) {
            Some(Child::Counter(c)) => c,
            _ => Counter::default(),
        }
    }
    /// The child labelled with `labels` (families with dynamic labels).
    pub fn with_labels(&self, labels: &Labels) -> Counter {
        match self.registry.child(&self.name, None, Some(labels)) {
            Some(Child::Counter(c)) => c,
            _ => Counter::default(),
        }
    }
}

impl GaugeVec {
    /// The child with these label values.
    pub fn with(&self, values: &[&str]) -> Gauge {
        match self.registry.child(&self.name, Some(values), None) {
            Some(Child::Gauge(c)) => c,
            _ => Gauge::default(),
        }
    }
    /// The child labelled with `labels`.
    pub fn with_labels(&self, labels: &Labels) -> Gauge {
        match self.registry.child(&self.name, None, Some(labels)) {
            Some(Child::Gauge(c)) => c,
            _ => Gauge::default(),
        }
    }
}

impl HistogramVec {
    /// The child with these label values.
    pub fn with(&self, values: &[&str]) -> Histogram {
        match self.registry.child(&self.name, Some(values), None) {
            Some(Child::Histogram(c)) => c,
            _ => Histogram::new(&[]),
        }
    }
    /// The child labelled with `labels`.
    pub fn with_labels(&self, labels: &Labels) -> Histogram {
        match self.registry.child(&self.name, None, Some(labels)) {
            Some(Child::Histogram(c)) => c,
            _ => Histogram::new(&[]),
        }
    }
}

/// A set of metric families; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

/// Registering a name twice with a different type or label names.
#[derive(Debug, thiserror::Error)]
#[error("metric {0} is already registered with a different type or labels")]
pub struct Conflict(pub String);

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    fn family(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        make: impl FnOnce() -> Kind,
        same: impl Fn(&Kind) -> bool,
    ) -> Result<(), Conflict> {
        let mut fams = lock(&self.families);
        if let Some(f) = fams.get(name) {
            if !same(&f.kind) || f.label_names != labels {
                return Err(Conflict(name.to_string()));
            }
            return Ok(());
        }
        fams.insert(
            name.to_string(),
            Family {
                help: help.to_string(),
                label_names: labels.iter().map(|s| s.to_string()).collect(),
                kind: make(),
            },
        );
        Ok(())
    }

    /// A labelled counter family (get-or-create).
    pub fn try_counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<CounterVec, Conflict> {
        self.family(
            name,
            help,
            labels,
            || Kind::Counter(BTreeMap::new()),
            |k| matches!(k, Kind::Counter(_)),
        )?;
        Ok(CounterVec {
            registry: self.clone(),
            name: name.to_string(),
        })
    }

    /// A labelled gauge family (get-or-create).
    pub fn try_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, Conflict> {
        self.family(
            name,
            help,
            labels,
            || Kind::Gauge(BTreeMap::new()),
            |k| matches!(k, Kind::Gauge(_)),
        )?;
        Ok(GaugeVec {
            registry: self.clone(),
            name: name.to_string(),
        })
    }

    /// A labelled histogram family (get-or-create).
    pub fn try_histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, Conflict> {
        self.family(
            name,
            help,
            labels,
            || Kind::Histogram(buckets.to_vec(), BTreeMap::new()),
            |k| matches!(k, Kind::Histogram(..)),
        )?;
        Ok(HistogramVec {
            registry: self.clone(),
            name: name.to_string(),
        })
    }

    /// The agent's own metrics are registered once at startup with fixed
    /// names and types; a conflict is a programming error, reported by a
    /// detached child that still counts (and a log line), never a panic.
    fn fixed<T>(r: Result<T, Conflict>, fallback: impl FnOnce() -> T) -> T {
        r.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Metric registered twice.");
            fallback()
        })
    }

    /// An unlabelled counter (get-or-create).
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        Self::fixed(
            self.try_counter_vec(name, help, &[]).map(|v| v.with(&[])),
            Counter::default,
        )
    }

    /// A labelled counter family with fixed labels.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        let fallback = || CounterVec {
            registry: Registry::new(),
            name: name.to_string(),
        };
        Self::fixed(self.try_counter_vec(name, help, labels), fallback)
    }

    /// An unlabelled gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        Self::fixed(
            self.try_gauge_vec(name, help, &[]).map(|v| v.with(&[])),
            Gauge::default,
        )
    }

    /// An unlabelled gauge whose value `f` computes each time the metrics
    /// are rendered (`f` must be cheap and must not use this registry).
    /// Registering the name again replaces the function.
    pub fn gauge_fn(&self, name: &str, help: &str, f: impl Fn() -> f64 + Send + Sync + 'static) {
        let mut fams = lock(&self.families);
        let kind = Kind::GaugeFn(GaugeFn(Arc::new(f)));
        match fams.get_mut(name) {
            Some(fam) if matches!(fam.kind, Kind::GaugeFn(_)) => fam.kind = kind,
            Some(_) => tracing::error!(name, "Metric registered twice."),
            None => {
                fams.insert(
                    name.to_string(),
                    Family {
                        help: help.to_string(),
                        label_names: Vec::new(),
                        kind,
                    },
                );
            }
        }
    }

    /// A labelled histogram family with fixed labels.
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> HistogramVec {
        let fallback = || HistogramVec {
            registry: Registry::new(),
            name: name.to_string(),
        };
        Self::fixed(
            self.try_histogram_vec(name, help, labels, buckets),
            fallback,
        )
    }

    /// The Prometheus text exposition (format 0.0.4) of every family.
    pub fn render(&self) -> String {
        let fams = lock(&self.families);
        let mut out = String::with_capacity(4096);
        for (name, f) in fams.iter() {
            let typ = match f.kind {
                Kind::Counter(_) => "counter",
                Kind::Gauge(_) | Kind::GaugeFn(_) => "gauge",
                Kind::Histogram(..) => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {typ}");
            match &f.kind {
                Kind::Counter(children) => {
                    for (values, c) in children {
                        sample(&mut out, name, "", values, None, c.get());
                    }
                }
                Kind::Gauge(children) => {
                    for (values, g) in children {
                        sample(&mut out, name, "", values, None, g.get());
                    }
                }
                Kind::GaugeFn(g) => sample(&mut out, name, "", &Vec::new(), None, (g.0)()),
                Kind::Histogram(_, children) => {
                    for (values, h) in children {
                        let mut cumulative = 0u64;
                        for (b, c) in h.0.bounds.iter().zip(&h.0.counts) {
                            cumulative += c.load(Ordering::Relaxed);
                            let le = format_value(*b);
                            sample(
                                &mut out,
                                name,
                                "_bucket",
                                values,
                                Some(&le),
                                cumulative as f64,
                            );
                        }
                        let count = h.0.count.load(Ordering::Relaxed);
                        sample(
                            &mut out,
                            name,
                            "_bucket",
                            values,
                            Some("+Inf"),
                            count as f64,
                        );
                        sample(&mut out, name, "_sum", values, None, h.0.sum.get());
                        sample(&mut out, name, "_count", values, None, count as f64);
                    }
                }
            }
        }
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.is_nan() {
        "NaN".into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    pairs: &[(String, String)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !pairs.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (n, v) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(n);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        if let Some(le) = le {
            if !first {
                out.push(',');
            }
            out.push_str("le=\"");
            out.push_str(le);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let r = Registry::new();
        let c = r.counter("larch_agent_read_bytes_total", "Bytes read.");
        c.add_u64(10);
        c.inc();
        let d = r.counter_vec("larch_agent_dropped_entries_total", "Dropped.", &["reason"]);
        d.with(&["line_too_long"]).inc();
        let g = r.gauge("larch_agent_files_active", "Files.");
        g.set(3.0);
        g.add(-1.0);
        let h = r.histogram_vec(
            "larch_agent_request_duration_seconds",
            "Latency.",
            &["status"],
            &[0.1, 1.0],
        );
        h.with(&["204"]).observe(0.05);
        h.with(&["204"]).observe(0.5);
        h.with(&["204"]).observe(5.0);
        let text = r.render();
        assert!(
            text.contains(
                "# TYPE larch_agent_read_bytes_total counter\nlarch_agent_read_bytes_total 11\n"
            ),
            "{text}"
        );
        assert!(text.contains("larch_agent_dropped_entries_total{reason=\"line_too_long\"} 1\n"));
        assert!(text.contains("larch_agent_files_active 2\n"));
        assert!(text.contains(
            "larch_agent_request_duration_seconds_bucket{status=\"204\",le=\"0.1\"} 1\n"
        ));
        assert!(
            text.contains(
                "larch_agent_request_duration_seconds_bucket{status=\"204\",le=\"1\"} 2\n"
            )
        );
        assert!(text.contains(
            "larch_agent_request_duration_seconds_bucket{status=\"204\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains("larch_agent_request_duration_seconds_count{status=\"204\"} 3\n"));
    }

    #[test]
    fn same_name_is_shared_and_conflicts_are_errors() {
        let r = Registry::new();
        let a = r.counter("x_total", "x");
        let b = r.counter("x_total", "x");
        a.inc();
        assert_eq!(b.get(), 1.0);
        assert!(r.try_gauge_vec("x_total", "x", &[]).is_err());
        assert!(r.try_counter_vec("x_total", "x", &["a"]).is_err());
    }
}
