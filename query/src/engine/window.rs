//! Window segments and the per-series accumulators behind range
//! aggregations.
//!
//! At instant `t` a range aggregation's window is `(t - offset - range,
//! t - offset]`. The ends of all windows of a query cut the time line into
//! segments; every window is a run of whole segments ([`Segments`]). A
//! series keeps one [`Acc`] per segment that holds samples
//! ([`SeriesAcc`]), so its memory grows with the number of steps, never
//! with the number of lines, and [`windows`] then slides over the
//! segments to produce one value per step, combining each segment once.

use super::acc::{Acc, Func};
use super::matrix::Grid;
use crate::labels::LabelSet;

/// Window segments of a grid.
#[derive(Debug)]
pub(crate) struct Segments {
    /// Sorted distinct window ends; segment `j` is `(bounds[j],
    /// bounds[j + 1]]`.
    pub bounds: Vec<i64>,
    /// Window `k` is segments `windows[k].0 .. windows[k].1`.
    pub windows: Vec<(u32, u32)>,
    /// Whether segment `j` lies in some window.
    pub covered: Vec<bool>,
}

impl Segments {
    pub fn new(grid: &Grid, range: i64, offset: i64) -> Segments {
        let ends: Vec<i64> = (0..grid.n)
            .map(|k| grid.t(k).saturating_sub(offset))
            .collect();
        let mut bounds: Vec<i64> = ends
            .iter()
            .flat_map(|&e| [e.saturating_sub(range), e])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let pos = |x: i64| bounds.partition_point(|&b| b < x) as u32;
        let windows: Vec<(u32, u32)> = ends
            .iter()
            .map(|&e| (pos(e.saturating_sub(range)), pos(e)))
            .collect();
        // Segment j is covered when some window starts at or before it and
        // ends after it: a running count of opened minus closed windows,
        // linear in windows plus segments however much windows overlap.
        let segments = bounds.len().saturating_sub(1);
        let mut delta = vec![0i64; segments + 1];
        for &(lo, hi) in &windows {
            if lo < hi {
                delta[lo as usize] += 1;
                delta[hi as usize] -= 1;
            }
        }
        let mut open = 0i64;
        let covered = delta[..segments]
            .iter()
            .map(|d| {
                open += d;
                open > 0
            })
            .collect();
        Segments {
            bounds,
            windows,
            covered,
        }
    }

    /// The segment holding `ts`, if a window covers it.
    #[inline]
    pub fn of(&self, ts: i64) -> Option<u32> {
        let j = self.bounds.partition_point(|&b| b < ts);
        if j == 0 || j >= self.bounds.len() {
            return None;
        }
        let s = j - 1;
        self.covered[s].then_some(s as u32)
    }

    /// `[start, end)` covering every window.
    pub fn scan_range(&self) -> (i64, i64) {
        match (self.bounds.first(), self.bounds.last()) {
            (Some(&lo), Some(&hi)) => (lo.saturating_add(1), hi.saturating_add(1)),
            _ => (0, 0),
        }
    }
}

/// A series' samples: accumulators per segment or raw samples.
#[derive(Debug)]
pub(crate) enum Data {
    /// `(segment, acc)` sorted by segment.
    Accs(Vec<(u32, Acc)>),
    /// Raw `(ts, value)` samples.
    Raw(Vec<(i64, f64)>),
}

/// One series being collected.
#[derive(Debug)]
pub(crate) struct SeriesAcc {
    /// The series' labels.
    pub labels: LabelSet,
    /// Its samples.
    pub data: Data,
}

impl SeriesAcc {
    pub fn new(labels: LabelSet, raw: bool) -> SeriesAcc {
        SeriesAcc {
            labels,
            data: if raw {
                Data::Raw(Vec::new())
            } else {
                Data::Accs(Vec::new())
            },
        }
    }

    #[inline]
    pub fn add(&mut self, func: &Func, seg: u32, ts: i64, v: f64) {
        match &mut self.data {
            Data::Raw(r) => r.push((ts, v)),
            Data::Accs(a) => {
                let acc = match a.last_mut() {
                    Some((s, acc)) if *s == seg => acc,
                    Some((s, _)) if *s > seg => {
                        let i = match a.binary_search_by_key(&seg, |x| x.0) {
                            Ok(i) => i,
                            Err(i) => {
                                a.insert(i, (seg, Acc::default()));
                                i
                            }
                        };
                        &mut a[i].1
                    }
                    _ => {
                        a.push((seg, Acc::default()));
                        let last = a.len() - 1;
                        &mut a[last].1
                    }
                };
                func.add(acc, ts, v);
            }
        }
    }

    /// Adds `count` samples of segment `seg` whose values add up to `sum`
    /// (the function adds values, or only counts them), the last at `ts`.
    pub fn add_whole(&mut self, func: &Func, seg: u32, count: u64, sum: f64, ts: i64) {
        if count == 0 {
            return;
        }
        let part = Acc {
            n: count,
            a: sum,
            b: 0.0,
            t: ts,
        };
        match &mut self.data {
            Data::Raw(r) => r.extend(std::iter::repeat_n((ts, 1.0), count as usize)),
            Data::Accs(a) => match a.binary_search_by_key(&seg, |x| x.0) {
                Ok(i) => func.merge(&mut a[i].1, &part),
                Err(i) => a.insert(i, (seg, part)),
            },
        }
    }

    pub fn absorb(&mut self, func: &Func, other: SeriesAcc) {
        match (&mut self.data, other.data) {
            (Data::Raw(a), Data::Raw(b)) => a.extend(b),
            (Data::Accs(a), Data::Accs(b)) => {
                let mut out = Vec::with_capacity(a.len() + b.len());
                let mut bi = b.into_iter().peekable();
                for (s, mut acc) in a.drain(..) {
                    while let Some((t, x)) = bi.next_if(|(t, _)| *t < s) {
                        out.push((t, x));
                    }
                    if let Some((_, x)) = bi.next_if(|(t, _)| *t == s) {
                        func.merge(&mut acc, &x);
                    }
                    out.push((s, acc));
                }
                out.extend(bi);
                *a = out;
            }
            _ => {}
        }
    }
}

/// The combination of the segments in a window that slides forward, in
/// amortised constant time per segment (two stacks: the older part keeps
/// suffix combinations, the newer part a running combination). Segments
/// are always combined oldest first, so first/last stay exact.
#[derive(Default)]
struct SlidingWindow {
    /// Older segments, oldest on top, each with the combination of itself
    /// and every newer segment of this stack.
    front: Vec<(u32, Acc)>,
    /// Newer segments in order, and their combination.
    back: Vec<(u32, Acc)>,
    back_acc: Acc,
}

impl SlidingWindow {
    fn push(&mut self, func: &Func, seg: (u32, Acc)) {
        func.merge(&mut self.back_acc, &seg.1);
        self.back.push(seg);
    }

    fn evict_before(&mut self, func: &Func, lo: u32) {
        loop {
            if self.front.is_empty() {
                if self.back.first().is_none_or(|s| s.0 >= lo) {
                    return;
                }
                // Move the newer part over, building suffix combinations
                // from the newest back.
                let mut suffix = Acc::default();
                while let Some((seg, acc)) = self.back.pop() {
                    let mut combined = acc;
                    func.merge(&mut combined, &suffix);
                    suffix = combined;
                    self.front.push((seg, combined));
                }
                self.back_acc = Acc::default();
            }
            match self.front.last() {
                Some(&(seg, _)) if seg < lo => {
                    self.front.pop();
                }
                _ => return,
            }
        }
    }

    fn value(&self, func: &Func) -> Acc {
        let mut acc = self.front.last().map(|f| f.1).unwrap_or_default();
        func.merge(&mut acc, &self.back_acc);
        acc
    }
}

/// The value of every window of one series.
pub(crate) fn windows(func: &Func, segs: &Segments, grid: &Grid, data: Data) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(grid.n);
    match data {
        Data::Accs(accs) => {
            let mut w = SlidingWindow::default();
            let mut p = 0usize;
            for &(lo, hi) in &segs.windows {
                while p < accs.len() && accs[p].0 < hi {
                    if accs[p].0 >= lo {
                        w.push(func, accs[p]);
                    }
                    p += 1;
                }
                w.evict_before(func, lo);
                out.push(func.finish(&w.value(func)));
            }
        }
        Data::Raw(mut samples) => {
            samples.sort_by_key(|s| s.0);
            for &(lo, hi) in &segs.windows {
                let (from, to) = (segs.bounds[lo as usize], segs.bounds[hi as usize]);
                let a = samples.partition_point(|s| s.0 <= from);
                let b = samples.partition_point(|s| s.0 <= to);
                out.push(func.finish_raw(&samples[a..b], from, to));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::RangeOp;

    #[test]
    fn sliding_window_equals_combining_each_window() {
        // Overlapping, gapped and shrinking-to-nothing windows over 40
        // segments, some empty.
        let sets: Vec<Vec<(u32, u32)>> = vec![
            (0..36u32).map(|k| (k, k + 5)).collect(),
            (0..13u32).map(|k| (3 * k, 3 * k + 1)).collect(),
            (0..30u32)
                .map(|k| (k + k % 2, (2 * k + 1).min(40)))
                .collect(),
        ];
        let accs: Vec<(u32, Acc)> = (0..40u32)
            .filter(|s| s % 3 != 1)
            .map(|s| {
                let v = f64::from((s * 37) % 11) - 4.0;
                (
                    s,
                    Acc {
                        n: 1,
                        a: v,
                        b: 0.0,
                        t: i64::from(s),
                    },
                )
            })
            .collect();
        for op in [
            RangeOp::SumOverTime,
            RangeOp::FirstOverTime,
            RangeOp::LastOverTime,
            RangeOp::MinOverTime,
            RangeOp::CountOverTime,
        ] {
            let func = Func {
                op,
                unwrap: true,
                range_secs: 1.0,
                param: 0.0,
            };
            for windows in &sets {
                let mut w = SlidingWindow::default();
                let mut p = 0;
                for &(lo, hi) in windows {
                    while p < accs.len() && accs[p].0 < hi {
                        if accs[p].0 >= lo {
                            w.push(&func, accs[p]);
                        }
                        p += 1;
                    }
                    w.evict_before(&func, lo);
                    let mut want = Acc::default();
                    for (_, a) in accs.iter().filter(|(s, _)| *s >= lo && *s < hi) {
                        func.merge(&mut want, a);
                    }
                    assert_eq!(
                        func.finish(&w.value(&func)),
                        func.finish(&want),
                        "{op:?} ({lo}, {hi})"
                    );
                }
            }
        }
    }

    #[test]
    fn segments_of_overlapping_and_gapped_windows() {
        // Steps 60, 90, 120 with a 60 range: windows (0,60], (30,90], (60,120].
        let g = Grid {
            start: 60,
            step: 30,
            n: 3,
        };
        let s = Segments::new(&g, 60, 0);
        assert_eq!(s.bounds, vec![0, 30, 60, 90, 120]);
        assert_eq!(s.windows, vec![(0, 2), (1, 3), (2, 4)]);
        assert_eq!(s.of(0), None);
        assert_eq!(s.of(1), Some(0));
        assert_eq!(s.of(30), Some(0));
        assert_eq!(s.of(120), Some(3));
        assert_eq!(s.of(121), None);
        assert_eq!(s.scan_range(), (1, 121));
        // Range shorter than the step: gaps are not covered.
        let s = Segments::new(&g, 10, 0);
        assert_eq!(s.bounds, vec![50, 60, 80, 90, 110, 120]);
        assert_eq!(s.of(70), None);
        assert_eq!(s.of(85), Some(2));
    }
}
