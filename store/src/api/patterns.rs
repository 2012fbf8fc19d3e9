//! `/loki/api/v1/patterns`: the log patterns of the lines a query
//! selects in a range, with line counts per `step`, mined when asked.
//!
//! Loki keeps a pattern ingester that mines lines as they are pushed;
//! Larch mines at query time instead ([`super::drain`]), so ingest pays
//! nothing and any range that is still stored can be asked for. The scan
//! reads the selected streams newest first, runs the query's filters and
//! pipeline on each entry ([`EntryFilter`]) and feeds the line with its
//! `detected_level` and time bucket to the miner.
//!
//! Work and memory are bounded: at most [`MAX_LINES`] lines are mined per
//! request, shared fairly between the streams (each stream gets an equal
//! budget; fewer than [`MIN_LINES_PER_STREAM`] lines per stream means only
//! the first streams in label order are read); the miner keeps at most
//! `drain::MAX_CLUSTERS` clusters with one counter per step. The scan runs
//! through [`super::exec::run`] (query slot, blocking pool, timeout) and
//! stops when the client goes away.
//!
//! Response (Loki's): `{"status":"success","data":[{"pattern":"...",
//! "samples":[[<unix s>,<count>],...],"level":"info"}]}`, patterns with
//! the most lines first; samples are step-aligned bucket starts with
//! non-zero counts. Templates without any literal text (`<_> <_>`) are
//! left out: they say nothing and would select every line.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use larch_query::engine::Deriver;
use larch_query::{Columns, Direction, LogSource, ScanRequest};

use super::drain::Miner;
use super::entry_filter::EntryFilter;
use super::params::{END_BEFORE_START, MAX_POINTS, TOO_MANY_POINTS, bounds, now_ns, step};
use super::{ApiError, LokiParams, exec, json, json_response, tenant};
use crate::server::AppState;

/// Lines mined per request at most.
pub const MAX_LINES: usize = 200_000;
/// The smallest per-stream budget.
pub const MIN_LINES_PER_STREAM: usize = 1_000;

/// What to mine.
struct Job {
    tenant: String,
    filter: EntryFilter,
    start: i64,
    end: i64,
    step: i64,
}

/// The first bucket's start: `start` rounded down to a multiple of `step`
/// (saturating at the earliest representable time).
fn first_bucket(start: i64, step: i64) -> i64 {
    start.saturating_sub(start.rem_euclid(step.max(1)))
}

/// The number of buckets from `first` that cover `[start, end)`; the
/// request's checks bound it by `MAX_POINTS + 2`.
fn bucket_count(first: i64, end: i64, step: i64) -> usize {
    let span = (i128::from(end) - 1 - i128::from(first)).max(0);
    let n = span / i128::from(step.max(1)) + 1;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Mines the job's lines (see the module docs).
fn mine(source: &dyn LogSource, job: &Job, cancel: &AtomicBool) -> Result<Miner, ApiError> {
    let first = first_bucket(job.start, job.step);
    let buckets = bucket_count(first, job.end, job.step);
    if buckets > MAX_POINTS as usize + 2 {
        return Err(ApiError::bad_request(TOO_MANY_POINTS));
    }
    let mut miner = Miner::new(buckets);
    let mut streams = source
        .streams(&job.tenant, job.filter.matchers(), job.start, job.end)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    streams.sort_by(|a, b| a.labels.cmp(&b.labels));
    let budget = (MAX_LINES / streams.len().max(1)).max(MIN_LINES_PER_STREAM);
    let mut total = 0usize;
    let mut deriver = Deriver::default();
    let req = ScanRequest {
        start: job.start,
        end: job.end,
        direction: Direction::Backward,
        columns: Columns::ALL,
        must_contain: job.filter.must_contain(),
    };
    for info in &streams {
        if total >= MAX_LINES || cancel.load(Ordering::Relaxed) {
            break;
        }
        let mut sf = job.filter.for_stream(info.labels.clone());
        let mut taken = 0usize;
        let labels = info.labels.clone();
        source
            .scan(&job.tenant, info, &req, &mut |b| {
                if cancel.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                for i in (0..b.len()).rev() {
                    let ts = b.timestamps[i];
                    if ts < job.start || ts >= job.end {
                        continue;
                    }
                    if taken >= budget || total >= MAX_LINES {
                        return ControlFlow::Break(());
                    }
                    let (line, meta) = (b.line(i), b.metadata(i));
                    let Some(kept) = sf.process(ts, line, meta) else {
                        continue;
                    };
                    taken += 1;
                    total += 1;
                    let Ok(text) = std::str::from_utf8(kept.line) else {
                        continue;
                    };
                    let level = deriver.level(&labels, meta, line);
                    let bucket = usize::try_from(
                        (i128::from(ts) - i128::from(first)) / i128::from(job.step),
                    )
                    .unwrap_or(usize::MAX);
                    miner.add(text, level, bucket);
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    if miner.unclustered() > 0 {
        tracing::debug!(
            unclustered = miner.unclustered(),
            "Pattern cluster cap reached; some lines were not mined."
        );
    }
    Ok(miner)
}

/// The response body.
fn render(miner: &Miner, first: i64, step: i64) -> String {
    let mut clusters: Vec<_> = miner
        .clusters()
        .iter()
        .filter(|c| c.has_literal() && c.total() > 0)
        .collect();
    clusters.sort_by(|a, b| {
        b.total()
            .cmp(&a.total())
            .then_with(|| a.pattern().cmp(&b.pattern()))
    });
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, c) in clusters.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"pattern\":");
        json::string(&mut out, &c.pattern());
        out.push_str(",\"samples\":[");
        let mut first_sample = true;
        for (k, &n) in c.counts().iter().enumerate() {
            if n == 0 {
                continue;
            }
            if !first_sample {
                out.push(',');
            }
            first_sample = false;
            out.push('[');
            let t = i128::from(first) + k as i128 * i128::from(step);
            json::seconds(
                &mut out,
                t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            );
            out.push_str(&format!(",{n}]"));
        }
        out.push_str("],\"level\":");
        json::string(&mut out, miner.level(c));
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// `GET /loki/api/v1/patterns`.
pub async fn patterns(
    State(app): State<AppState>,
    headers: HeaderMap,
    LokiParams(p): LokiParams,
) -> Result<Response, ApiError> {
    let t = tenant(&headers, app.config.auth_enabled)?;
    let (start, end) = bounds(&p, now_ns())?;
    if end <= start {
        return Err(ApiError::bad_request(END_BEFORE_START));
    }
    let job = Job {
        tenant: t.to_string(),
        filter: EntryFilter::parse(p.get("query").unwrap_or_default())?,
        start,
        end,
        step: step(&p, start, end)?,
    };
    let ingester = app.ingester.clone();
    let body = exec::run(&app, move |cancel| {
        let miner = mine(ingester.as_ref(), &job, &cancel)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(exec::cancelled());
        }
        Ok(render(&miner, first_bucket(job.start, job.step), job.step))
    })
    .await?;
    Ok(json_response(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_the_step() {
        assert_eq!(
            first_bucket(1_000_000_000_123, 10_000_000_000),
            1_000_000_000_000
        );
        assert_eq!(first_bucket(15_000_000_000, 10_000_000_000), 10_000_000_000);
        assert_eq!(first_bucket(-5, 10), -10);
    }

    #[test]
    fn renders_lokis_shape() {
        let mut m = Miner::new(3);
        m.add("user alice logged in", "info", 0);
        m.add("user bob logged in", "info", 2);
        m.add("user carol logged in", "info", 2);
        m.add("42", "unknown", 1);
        let body = render(&m, 10_000_000_000, 5_000_000_000);
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"status": "success", "data": [
                {"pattern": "user <_> logged in", "samples": [[10, 1], [20, 2]], "level": "info"}
            ]})
        );
    }
}
