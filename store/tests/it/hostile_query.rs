//! No request can take the store down: the two GET requests that used to
//! hang it, the peak memory of a high-cardinality metric query under a
//! small `max_query_series`, and `/ready` answering while heavy reads run
//! on every data endpoint at once. Each test prints its figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use larch_testkit::http::percent;
use larch_testkit::procfs;
use larch_testkit::push::protobuf;

use super::support::*;

fn push(port: u16, body: &[u8]) {
    let r = request(
        port,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/x-protobuf")],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// A store with `config` (YAML) in `dir`.
fn start_with(dir: &std::path::Path, config: &str) -> StoreProcess {
    let path = dir.join("larch.yaml");
    std::fs::write(&path, config).unwrap();
    let data = dir.join("data");
    StoreProcess::start(&data, &["--config", path.to_str().unwrap()])
}

const TOO_MANY_POINTS: &str = "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter";

#[test]
fn the_two_hanging_get_requests_answer_400_promptly_and_the_store_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path(), &[]);
    let p = store.http;
    let t0 = now_ns() - 60_000_000_000;
    let lines: Vec<String> = (0..50).map(|i| format!("level=info n={i}")).collect();
    push(p, &protobuf_lines(r#"{app="h"}"#, t0, &lines));

    let extreme = "start=-9223372036854775808&end=9223372036854775807&step=1";
    let metric = percent(r#"sum(count_over_time({app="h"}[1m]))"#);
    let log = percent(r#"{app="h"}"#);
    for path in [
        format!("/loki/api/v1/index/volume_range?query={log}&{extreme}"),
        format!("/loki/api/v1/query_range?query={metric}&{extreme}"),
        format!("/loki/api/v1/query_range?query={log}&{extreme}"),
        format!("/loki/api/v1/patterns?query={log}&{extreme}"),
        format!("/api/prom/query?query={log}&{extreme}"),
        format!(
            "/loki/api/v1/index/volume_range?query={log}&start=-9223372036854775808&end=9223372036854775807"
        ),
        format!(
            "/loki/api/v1/query_range?query={metric}&start=0&end=9223372036854775807&step=0.001"
        ),
    ] {
        let started = Instant::now();
        let r = request(p, "GET", &path, &[], b"").unwrap();
        let took = started.elapsed();
        eprintln!("{path}: {} in {took:?}", r.status);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.text().trim_end(), TOO_MANY_POINTS, "{path}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        // The store keeps answering, reads included.
        let r = request(p, "GET", "/ready", &[], b"").unwrap();
        assert_eq!(r.status, 200);
    }
    let r = request(
        p,
        "GET",
        &format!(
            "/loki/api/v1/query_range?query={metric}&start={}&end={}&step=60",
            t0 - 60_000_000_000,
            t0 + 120_000_000_000
        ),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // The entries lie within one nanosecond window: the steps at t0 and
    // t0 + 60 s see them.
    assert_eq!(
        j["data"]["result"][0]["values"].as_array().unwrap().len(),
        2
    );
    // The whole range with the engine's default step is a legal query.
    let r = request(
        p,
        "GET",
        &format!(
            "/loki/api/v1/query_range?query={metric}&start=-9223372036854775808&end=9223372036854775807"
        ),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_high_cardinality_sum_by_stays_within_the_memory_bound() {
    // 250,000 JSON lines, each with four fields of distinct values (a
    // million values), on one stream over the last 50 minutes. Without
    // the limit at series creation, `sum by (id)` built 250,000 series
    // with a value per step before answering 400.
    const LINES: i64 = 250_000;
    const BOUND_KIB: u64 = 512 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let store = start_with(
        dir.path(),
        "limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_query_series: 100\nwal:\n  fsync: false\n",
    );
    let p = store.http;
    let pid = store.pid();
    let end = now_ns();
    let t0 = end - 50 * 60 * 1_000_000_000;
    let spacing = (end - t0 - 1_000_000_000) / LINES;
    let started = Instant::now();
    for batch in 0..(LINES / 25_000) {
        let entries: Vec<(i64, String)> = (batch * 25_000..(batch + 1) * 25_000)
            .map(|i| {
                (
                    t0 + i * spacing,
                    format!(
                        r#"{{"id":"id-{i:06}","trace":"t{i:x}","span":"s{}","user":"u{}","lvl":"{}"}}"#,
                        i * 7,
                        i * 13,
                        ["info", "warn"][i as usize % 2]
                    ),
                )
            })
            .collect();
        push(p, &protobuf(vec![(r#"{app="hc"}"#.to_string(), entries)]));
    }
    let ingest = started.elapsed();
    let after_ingest = procfs::status_kib(pid, "VmHWM");

    let range = format!("start={t0}&end={end}");
    let limit_text = "maximum number of series (100) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()";
    let started = Instant::now();
    for (path, status) in [
        (
            format!(
                "/loki/api/v1/query_range?query={}&{range}&step=1",
                percent(r#"sum by (id) (count_over_time({app="hc"} | json [1m]))"#)
            ),
            400,
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&{range}",
                percent(r#"sum by (id) (count_over_time({app="hc"} | json [1m]))"#)
            ),
            400,
        ),
        (
            format!(
                "/loki/api/v1/query?query={}&time={end}",
                percent(r#"sum by (id) (count_over_time({app="hc"} | json [1h]))"#)
            ),
            400,
        ),
        (
            format!(
                "/loki/api/v1/query_range?query={}&{range}",
                percent(r#"max by (lvl) (count_over_time({app="hc"} | json [1m]))"#)
            ),
            400,
        ),
        (
            format!(
                "/loki/api/v1/query?query={}&time={end}",
                percent(r#"sum(count_over_time({app="hc"}[1h]))"#)
            ),
            200,
        ),
    ] {
        let one = Instant::now();
        let r = request(p, "GET", &path, &[], b"").unwrap();
        eprintln!("{path}: {} in {:?}", r.status, one.elapsed());
        assert_eq!(r.status, status, "{path}: {}", r.text());
        if status == 400 {
            assert_eq!(r.text().trim_end(), limit_text, "{path}");
        }
    }
    let queries = started.elapsed();
    let peak = procfs::status_kib(pid, "VmHWM");
    eprintln!(
        "high-cardinality sum by: {LINES} lines ingested in {ingest:?}, peak RSS after ingest {} MiB; \
         queries answered in {queries:?}; peak RSS {} MiB (bound {} MiB)",
        after_ingest / 1024,
        peak / 1024,
        BOUND_KIB / 1024
    );
    assert!(
        peak < BOUND_KIB,
        "peak RSS {peak} KiB over the {BOUND_KIB} KiB bound"
    );
    let r = request(p, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn ready_answers_within_a_second_while_hostile_requests_run() {
    const STREAMS: usize = 2_000;
    const PER_STREAM: i64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let store = start_with(
        dir.path(),
        "limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\nwal:\n  fsync: false\nquery:\n  timeout: 5s\n",
    );
    let p = store.http;
    let now = now_ns();
    let t0 = now - 90 * 60 * 1_000_000_000;
    for batch in 0..(STREAMS / 200) {
        let streams: Vec<(String, Vec<(i64, String)>)> = (batch * 200..(batch + 1) * 200)
            .map(|s| {
                let entries: Vec<(i64, String)> = (0..PER_STREAM)
                    .map(|k| {
                        (
                            t0 + k * 60_000_000_000 + s as i64,
                            format!(
                                "level=info pod=p{s} request={k} took={}ms path=/api/v{}",
                                k * 3,
                                s % 7
                            ),
                        )
                    })
                    .collect();
                (
                    format!(r#"{{app="a{}", pod="p{s}", team="t{}"}}"#, s % 4, s % 13),
                    entries,
                )
            })
            .collect();
        push(p, &protobuf(streams));
    }

    // Hostile reads over 30 days on every data endpoint, eight clients in
    // a loop (four query slots).
    let month = 30 * 24 * 3600 * 1_000_000_000i64;
    let range = format!("start={}&end={now}", now - month);
    let sel = percent(r#"{app=~".+"}"#);
    let paths: Vec<String> = vec![
        format!(
            "/loki/api/v1/query_range?query={}&{range}&limit=5000",
            percent(r#"{app=~".+"} |~ "(?i)re+q.*t+ook=[0-9]*7ms""#)
        ),
        format!(
            "/loki/api/v1/query_range?query={}&{range}&step=236",
            percent(r#"sum by (app) (count_over_time({app=~".+"} | logfmt [5m]))"#)
        ),
        format!("/loki/api/v1/labels?{range}"),
        format!("/loki/api/v1/label/pod/values?{range}"),
        format!("/loki/api/v1/series?match[]={sel}&{range}"),
        format!("/loki/api/v1/index/stats?query={sel}&{range}"),
        format!("/loki/api/v1/index/volume?query={sel}&{range}&limit=1000"),
        format!("/loki/api/v1/index/volume_range?query={sel}&{range}&step=236&limit=1000"),
        format!("/loki/api/v1/detected_labels?{range}"),
        format!("/loki/api/v1/detected_fields?query={sel}&{range}&line_limit=5000"),
        format!("/loki/api/v1/patterns?query={sel}&{range}&step=236"),
        format!(
            "/loki/api/v1/index/volume_range?query={sel}&start=-9223372036854775808&end=9223372036854775807&step=1"
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (stop, done, slowest) = (stop.clone(), done.clone(), slowest_ms.clone());
            let paths = paths.clone();
            std::thread::spawn(move || {
                let mut i = c;
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let path = &paths[i % paths.len()];
                    let started = Instant::now();
                    let r = request(p, "GET", path, &[], b"").unwrap();
                    slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    assert!(
                        matches!(r.status, 200 | 400 | 504),
                        "{path}: {} {}",
                        r.status,
                        r.text()
                    );
                    statuses.push(r.status);
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                statuses
            })
        })
        .collect();

    // Meanwhile, /ready every 50 ms for 8 s.
    std::thread::sleep(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while Instant::now() < deadline {
        let started = Instant::now();
        let r = request(p, "GET", "/ready", &[], b"").unwrap();
        let took = started.elapsed();
        assert_eq!(r.status, 200);
        worst = worst.max(took);
        probes += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut statuses: Vec<u16> = Vec::new();
    for c in clients {
        statuses.extend(c.join().unwrap());
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    eprintln!(
        "/ready under load: {probes} probes, slowest {worst:?}; hostile requests: {} done ({ok} answered 200, {} 400, {} 504), slowest {} ms",
        done.load(Ordering::Relaxed),
        statuses.iter().filter(|&&s| s == 400).count(),
        statuses.iter().filter(|&&s| s == 504).count(),
        slowest_ms.load(Ordering::Relaxed),
    );
    assert!(worst < Duration::from_secs(1), "/ready took {worst:?}");
    assert!(ok > 0, "no hostile request ran to completion");
    // Still serving when the load is gone.
    let r = request(p, "GET", &format!("/loki/api/v1/labels?{range}"), &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn every_data_endpoint_honours_the_query_timeout() {
    // A timeout shorter than any work: every endpoint whose work grows
    // with the data answers 504 with Loki's text (the work does not even
    // start); the others are unaffected.
    let dir = tempfile::tempdir().unwrap();
    let store = start_with(dir.path(), "query:\n  timeout: 1ns\n");
    let p = store.http;
    let t0 = now_ns() - 60_000_000_000;
    let lines: Vec<String> = (0..20).map(|i| format!("level=info n={i}")).collect();
    push(p, &protobuf_lines(r#"{app="t"}"#, t0, &lines));
    let sel = percent(r#"{app="t"}"#);
    let metric = percent(r#"count_over_time({app="t"}[1m])"#);
    let timeout = "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed";
    for path in [
        format!("/loki/api/v1/query_range?query={sel}"),
        format!("/loki/api/v1/query_range?query={metric}"),
        format!("/loki/api/v1/query?query={metric}"),
        format!("/api/prom/query?query={sel}"),
        "/loki/api/v1/labels".to_string(),
        "/loki/api/v1/label".to_string(),
        "/loki/api/v1/label/app/values".to_string(),
        format!("/loki/api/v1/series?match[]={sel}"),
        format!("/loki/api/v1/index/stats?query={sel}"),
        format!("/loki/api/v1/index/volume?query={sel}"),
        format!("/loki/api/v1/index/volume_range?query={sel}"),
        "/loki/api/v1/detected_labels".to_string(),
        format!("/loki/api/v1/detected_fields?query={sel}"),
        format!("/loki/api/v1/detected_field/level/values?query={sel}"),
        format!("/loki/api/v1/patterns?query={sel}"),
    ] {
        let r = request(p, "GET", &path, &[], b"").unwrap();
        assert_eq!(r.status, 504, "{path}: {}", r.text());
        assert_eq!(r.text().trim_end(), timeout, "{path}");
    }
    for path in [
        "/ready",
        "/loki/api/v1/status/buildinfo",
        "/loki/api/v1/drilldown-limits",
        "/loki/api/v1/format_query?query=%7Bapp%3D%22t%22%7D",
    ] {
        let r = request(p, "GET", path, &[], b"").unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
}
