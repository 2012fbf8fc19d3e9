//! Accumulators of the range functions.
//!
//! Most range functions are *decomposable*: the value over a window can be
//! computed from partial results over pieces of the window (a count, a
//! sum, a minimum, the first sample, a mean and sum of squared deviations).
//! The range evaluator keeps one [`Acc`] per series and time segment and
//! combines the segments of each window, so memory grows with the number
//! of series and steps, never with the number of lines.
//!
//! `quantile_over_time` and `rate_counter` need every sample of a window
//! in order; they keep raw samples ([`Func::is_raw`]).

use crate::logql::RangeOp;

/// A range function with what it needs to know to finish.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Func {
    /// The LogQL function.
    pub op: RangeOp,
    /// Whether the samples are unwrapped values (`rate` sums them).
    pub unwrap: bool,
    /// The range in seconds.
    pub range_secs: f64,
    /// φ of `quantile_over_time`.
    pub param: f64,
}

/// The partial state of one series over one time segment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Acc {
    /// Samples.
    pub n: u64,
    /// Sum, minimum, maximum, mean or the first/last value, by function.
    pub a: f64,
    /// Sum of squared deviations (variance).
    pub b: f64,
    /// Timestamp of the first/last value.
    pub t: i64,
}

impl Func {
    /// Whether the function keeps raw samples instead of an [`Acc`].
    pub fn is_raw(&self) -> bool {
        matches!(self.op, RangeOp::QuantileOverTime | RangeOp::RateCounter)
    }

    /// Adds one sample (`v` is 1 for counts, the line length for bytes).
    #[inline]
    pub fn add(&self, acc: &mut Acc, ts: i64, v: f64) {
        let first = acc.n == 0;
        acc.n += 1;
        match self.op {
            RangeOp::CountOverTime | RangeOp::AbsentOverTime => {}
            RangeOp::Rate if !self.unwrap => {}
            RangeOp::MinOverTime => {
                if first || v < acc.a || acc.a.is_nan() {
                    acc.a = v;
                }
            }
            RangeOp::MaxOverTime => {
                if first || v > acc.a || acc.a.is_nan() {
                    acc.a = v;
                }
            }
            RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
                let delta = v - acc.a;
                acc.a += delta / acc.n as f64;
                acc.b += delta * (v - acc.a);
            }
            RangeOp::FirstOverTime => {
                if first || ts < acc.t {
                    acc.a = v;
                    acc.t = ts;
                }
            }
            RangeOp::LastOverTime => {
                if first || ts >= acc.t {
                    acc.a = v;
                    acc.t = ts;
                }
            }
            _ => acc.a += v,
        }
    }

    /// Folds `other` into `acc`. When both come from one series, `other`
    /// is not earlier than `acc` for first/last to be exact on ties.
    pub fn merge(&self, acc: &mut Acc, other: &Acc) {
        if other.n == 0 {
            return;
        }
        if acc.n == 0 {
            *acc = *other;
            return;
        }
        match self.op {
            RangeOp::CountOverTime | RangeOp::AbsentOverTime => {}
            RangeOp::Rate if !self.unwrap => {}
            RangeOp::MinOverTime => {
                if other.a < acc.a || acc.a.is_nan() {
                    acc.a = other.a;
                }
            }
            RangeOp::MaxOverTime => {
                if other.a > acc.a || acc.a.is_nan() {
                    acc.a = other.a;
                }
            }
            RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
                let (na, nb) = (acc.n as f64, other.n as f64);
                let n = na + nb;
                let delta = other.a - acc.a;
                acc.a += delta * nb / n;
                acc.b += other.b + delta * delta * na * nb / n;
            }
            RangeOp::FirstOverTime => {
                if other.t < acc.t {
                    acc.a = other.a;
                    acc.t = other.t;
                }
            }
            RangeOp::LastOverTime => {
                if other.t >= acc.t {
                    acc.a = other.a;
                    acc.t = other.t;
                }
            }
            _ => acc.a += other.a,
        }
        acc.n += other.n;
    }

    /// The function's value over a window, `None` when it held no sample.
    pub fn finish(&self, acc: &Acc) -> Option<f64> {
        if acc.n == 0 {
            return None;
        }
        let n = acc.n as f64;
        Some(match self.op {
            RangeOp::CountOverTime => n,
            RangeOp::AbsentOverTime => 1.0,
            RangeOp::Rate if !self.unwrap => n / self.range_secs,
            RangeOp::Rate | RangeOp::BytesRate => acc.a / self.range_secs,
            RangeOp::AvgOverTime => acc.a / n,
            RangeOp::StdvarOverTime => acc.b / n,
            RangeOp::StddevOverTime => (acc.b / n).sqrt(),
            _ => acc.a,
        })
    }

    /// The function's value over a window's raw samples, sorted by time;
    /// the window is `(from, to]`.
    pub fn finish_raw(&self, samples: &[(i64, f64)], from: i64, to: i64) -> Option<f64> {
        if samples.is_empty() {
            return None;
        }
        Some(match self.op {
            RangeOp::QuantileOverTime => {
                let mut v: Vec<f64> = samples.iter().map(|s| s.1).collect();
                quantile(self.param, &mut v)
            }
            _ => counter_rate(samples, from, to, self.range_secs),
        })
    }
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `rate_counter`: Prometheus' extrapolated counter rate over samples in
/// time order within the window `(from, to]` (ns). A decrease is a counter
/// reset and adds the value before it. The increase is extrapolated to the
/// window's edges, but by at most half the average sample distance when
/// the nearest sample is farther than 1.1 times that distance, and never
/// back past the counter's zero point.
pub(crate) fn counter_rate(samples: &[(i64, f64)], from: i64, to: i64, range_secs: f64) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let (t0, v0) = samples[0];
    let (tn, vn) = samples[samples.len() - 1];
    let mut result = vn - v0;
    let mut last = 0.0;
    for &(_, v) in samples {
        if v < last {
            result += last;
        }
        last = v;
    }
    let mut to_start = (t0 - from) as f64 / 1e9;
    let mut to_end = (to - tn) as f64 / 1e9;
    let sampled = (tn - t0) as f64 / 1e9;
    if sampled <= 0.0 {
        return 0.0;
    }
    let avg_between = sampled / (samples.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if result > 0.0 && v0 >= 0.0 {
        let to_zero = sampled * (v0 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    result * ((sampled + to_start + to_end) / sampled) / range_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: RangeOp) -> Func {
        Func {
            op,
            unwrap: true,
            range_secs: 10.0,
            param: 0.5,
        }
    }

    #[test]
    fn split_and_merged_windows_agree() {
        let samples = [(1, 3.0), (2, -1.0), (3, 7.5), (4, 2.0), (5, 2.0)];
        for op in [
            RangeOp::SumOverTime,
            RangeOp::AvgOverTime,
            RangeOp::MinOverTime,
            RangeOp::MaxOverTime,
            RangeOp::StdvarOverTime,
            RangeOp::StddevOverTime,
            RangeOp::FirstOverTime,
            RangeOp::LastOverTime,
            RangeOp::CountOverTime,
            RangeOp::Rate,
        ] {
            let func = f(op);
            let mut whole = Acc::default();
            for &(t, v) in &samples {
                func.add(&mut whole, t, v);
            }
            let (mut a, mut b) = (Acc::default(), Acc::default());
            for &(t, v) in &samples[..2] {
                func.add(&mut a, t, v);
            }
            for &(t, v) in &samples[2..] {
                func.add(&mut b, t, v);
            }
            func.merge(&mut a, &b);
            let (x, y) = (func.finish(&whole).unwrap(), func.finish(&a).unwrap());
            assert!((x - y).abs() < 1e-12, "{op:?}: {x} vs {y}");
        }
        assert_eq!(f(RangeOp::FirstOverTime).finish(&Acc::default()), None);
    }

    #[test]
    fn min_max_skip_nan_unless_all_nan() {
        let func = f(RangeOp::MinOverTime);
        let mut a = Acc::default();
        func.add(&mut a, 1, f64::NAN);
        func.add(&mut a, 2, 4.0);
        assert_eq!(func.finish(&a), Some(4.0));
        let mut b = Acc::default();
        func.add(&mut b, 1, f64::NAN);
        assert!(func.finish(&b).unwrap().is_nan());
    }

    #[test]
    fn quantiles() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0]), 2.0);
        assert_eq!(quantile(0.25, &mut [1.0, 2.0, 3.0, 4.0, 5.0]), 2.0);
        assert_eq!(quantile(0.9, &mut [10.0, 20.0]), 19.0);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
    }
}
