//! The `limit` stage: a token bucket of `rate` entries per second with
//! `burst`, globally or per value of the label `by_label_name`.
//!
//! Over the limit, an entry is dropped (`drop: true`, counted with reason
//! `ratelimit`) or the reader waits for a token (`drop: false`, the
//! default): reading pauses and the file holds the backlog, so nothing is
//! lost. Per-label buckets are bounded by `max_distinct_labels`; when the
//! table is full it is cleared, so a burst of new label values can never
//! grow memory without bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{BuildCtx, Entry, FileState, Stage};
use crate::metrics::Counter;

fn default_max_distinct() -> usize {
    // Promtail's default.
    10_000
}

/// Settings of the `limit` stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Entries per second.
    pub rate: f64,
    /// Bucket size (entries allowed at once).
    pub burst: u64,
    /// Drop entries over the limit instead of waiting. Default false.
    #[serde(default)]
    pub drop: bool,
    /// One bucket per value of this label.
    #[serde(default)]
    pub by_label_name: Option<String>,
    /// Most per-label buckets. Default 10000.
    #[serde(default = "default_max_distinct")]
    pub max_distinct_labels: usize,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }
}

pub(crate) struct LimitStage {
    rate: f64,
    burst: f64,
    drop: bool,
    by_label: Option<String>,
    max_distinct: usize,
    global: Bucket,
    per_label: HashMap<String, Bucket>,
    dropped: Counter,
}

impl LimitStage {
    pub fn new(c: &LimitConfig, ctx: &BuildCtx<'_>) -> Result<Self, String> {
        if !(c.rate > 0.0 && c.rate.is_finite()) {
            return Err("rate must be greater than 0".into());
        }
        if c.burst == 0 {
            return Err("burst must be greater than 0".into());
        }
        let burst = c.burst as f64;
        Ok(LimitStage {
            rate: c.rate,
            burst,
            drop: c.drop,
            by_label: c.by_label_name.clone(),
            max_distinct: c.max_distinct_labels.max(1),
            global: Bucket {
                tokens: burst,
                last: Instant::now(),
            },
            per_label: HashMap::new(),
            dropped: ctx.dropped.with(&["ratelimit"]),
        })
    }
}

impl Stage for LimitStage {
    fn process(&mut self, e: &mut Entry, _: &mut FileState, next: &mut dyn FnMut(&mut Entry)) {
        let (rate, burst) = (self.rate, self.burst);
        let bucket = match &self.by_label {
            None => &mut self.global,
            Some(name) => match e.labels.get(name) {
                None => return next(e),
                Some(v) => {
                    if !self.per_label.contains_key(v) {
                        if self.per_label.len() >= self.max_distinct {
                            self.per_label.clear();
                        }
                        self.per_label.insert(
                            v.to_string(),
                            Bucket {
                                tokens: burst,
                                last: Instant::now(),
                            },
                        );
                    }
                    match self.per_label.get_mut(v) {
                        Some(b) => b,
                        None => return next(e),
                    }
                }
            },
        };
        bucket.refill(Instant::now(), rate, burst);
        if bucket.tokens < 1.0 {
            if self.drop {
                self.dropped.inc();
                return;
            }
            let wait = (1.0 - bucket.tokens) / rate;
            std::thread::sleep(Duration::from_secs_f64(wait.min(60.0)));
            bucket.refill(Instant::now(), rate, burst);
        }
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        next(e);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use std::time::{Duration, Instant};

    #[test]
    fn drops_over_the_burst() {
        let (mut p, reg) = pipeline("- limit:\n    rate: 0.001\n    burst: 3\n    drop: true\n");
        let out = run_lines(
            &mut p,
            (0..10).map(|i| entry(&i.to_string(), &[])).collect(),
        );
        assert_eq!(out.len(), 3);
        assert!(reg.render().contains(r#"reason="ratelimit"} 7"#));
    }

    #[test]
    fn per_label_buckets() {
        let (mut p, _) = pipeline(
            "- limit:\n    rate: 0.001\n    burst: 1\n    drop: true\n    by_label_name: app\n",
        );
        let out = run_lines(
            &mut p,
            vec![
                entry("1", &[("app", "a")]),
                entry("2", &[("app", "a")]),
                entry("3", &[("app", "b")]),
                entry("4", &[]),
            ],
        );
        let lines: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, vec!["1", "3", "4"]);
    }

    #[test]
    fn waits_instead_of_dropping() {
        let (mut p, _) = pipeline("- limit:\n    rate: 100\n    burst: 1\n");
        let t = Instant::now();
        let out = run_lines(&mut p, (0..4).map(|i| entry(&i.to_string(), &[])).collect());
        assert_eq!(out.len(), 4);
        assert!(
            t.elapsed() >= Duration::from_millis(25),
            "three waits of 10ms"
        );
        assert!(pipeline_err("- limit:\n    rate: 0\n    burst: 1\n").contains("rate must be"));
    }
}
