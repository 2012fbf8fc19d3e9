//! Blocks delivered without their timestamps (`ScanRequest::whole`): a
//! range aggregation counting entries or adding up their bytes reads a
//! block lying wholly inside one window segment from its index entry (and
//! its lines when a line filter or metadata needs them), not its
//! timestamps column. Every query here gives exactly what the same store
//! gives with the full decode of every block (a source that drops the
//! request's `whole`), on random data and windows: blocks in chunk files
//! and in memory, blocks straddling window edges, overlapping blocks,
//! structured metadata, metadata filters and deletes.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use larch_query::engine::{QueryValue, evaluate_with_threads};
use larch_query::{Block, LogSource, Matcher, ScanRequest, ScanStats, SourceError, StreamInfo};
use larch_store::deletes::NewRequest;
use larch_store::ingester::Ingester;
use larch_store::push::{PushEntry, PushStream, StreamLabels};
use larch_store::tenant::TenantId;
use proptest::prelude::*;

use larch_store::testing::{EngineStore, TENANT, request};

const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000_000 * MS;

/// The store with `whole` dropped from every request and lines decoded
/// wherever their lengths are asked for (`full`), or as it is, counting
/// the blocks that come without timestamps.
struct Source<'a> {
    ing: &'a Ingester,
    full: bool,
    whole: AtomicU64,
}

impl LogSource for Source<'_> {
    fn streams(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<StreamInfo>, SourceError> {
        self.ing.streams(tenant, matchers, start, end)
    }

    fn scan(
        &self,
        tenant: &str,
        stream: &StreamInfo,
        request: &ScanRequest,
        visit: &mut dyn FnMut(&Block<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats, SourceError> {
        let mut req = request.clone();
        if self.full {
            req.whole = None;
            // Line bytes decoded too where their lengths were enough.
            req.columns.lines |= req.columns.lengths;
        }
        self.ing.scan(tenant, stream, &req, &mut |b| {
            if b.whole.is_some() {
                assert!(b.timestamps.is_empty());
                self.whole.fetch_add(1, Ordering::Relaxed);
            }
            visit(b)
        })
    }
}

/// One entry: stream (app), offset in ms, word index, metadata choice.
type Entry = (usize, i64, usize, usize);

const WORDS: [&str; 5] = [
    "alpha error",
    "beta",
    "gamma ERROR x",
    "delta warn",
    "epsilon",
];

/// Loads `entries`: those before `flush_at` ms pushed and flushed to chunk
/// files (first every even entry, then every odd one when `overlap`, so
/// blocks overlap in time), the rest left in memory.
fn load(entries: &[Entry], flush_at: i64, overlap: bool, block: u64) -> EngineStore {
    let store = EngineStore::open(Some((block, 4 * block)));
    let push = |part: &[&Entry]| {
        let streams = (0..2)
            .map(|app| PushStream {
                labels: StreamLabels::Text(format!("{{app=\"{}\"}}", ["a", "b"][app])),
                entries: part
                    .iter()
                    .filter(|e| e.0 == app)
                    .map(|&&(_, ms, w, m)| PushEntry {
                        ts: T0 + ms * MS,
                        line: format!("{} {ms}", WORDS[w]).into(),
                        metadata: match m {
                            0 => Vec::new(),
                            1 => vec![("tid".into(), "x".into())],
                            _ => vec![("tid".into(), "y".into())],
                        },
                        omitted: 0,
                    })
                    .collect(),
            })
            .filter(|s| !s.entries.is_empty())
            .collect();
        store.push(streams, T0 + 86_400_000 * MS, |_| {}).unwrap();
    };
    let (old, new): (Vec<&Entry>, Vec<&Entry>) = entries.iter().partition(|e| e.1 < flush_at);
    if overlap {
        for half in 0..2 {
            let part: Vec<&Entry> = old
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == half)
                .map(|(_, e)| *e)
                .collect();
            push(&part);
        }
    } else {
        push(&old);
    }
    store.ing.flush_all();
    push(&new);
    store
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::btree_map(
        (0usize..2, 0i64..600_000),
        (0usize..WORDS.len(), 0usize..3),
        0..300,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|((app, ms), (w, meta))| (app, ms, w, meta))
            .collect()
    })
}

/// A metric query over both streams.
fn query() -> impl Strategy<Value = String> {
    (
        0usize..4,
        prop_oneof![
            Just(""),
            Just(r#" |= "error""#),
            Just(r#" |~ "(?i)error""#),
            Just(r#" != "beta""#),
            Just(r#" |= "ERROR" != "x""#),
        ],
        prop_oneof![Just(""), Just(r#" | tid="x""#)],
        prop_oneof![
            Just(("", "")),
            Just(("sum(", ")")),
            Just(("sum by (tid) (", ")")),
            Just(("sum by (app) (", ")")),
        ],
        prop_oneof![Just("1m"), Just("30s"), Just("5m"), Just("20m")],
    )
        .prop_map(|(f, filter, meta, (open, close), range)| {
            let f = ["count_over_time", "bytes_over_time", "rate", "bytes_rate"][f];
            format!(r#"{open}{f}({{app=~"a|b"}}{filter}{meta} [{range}]){close}"#)
        })
}

fn eval(
    src: &dyn LogSource,
    q: &str,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
) -> QueryValue {
    evaluate_with_threads(src, &request(q, start, end, step, instant), 2)
        .unwrap()
        .0
}

fn same_answer(
    ing: &Ingester,
    q: &str,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
) -> Result<u64, TestCaseError> {
    let fast = Source {
        ing,
        full: false,
        whole: AtomicU64::new(0),
    };
    let full = Source {
        ing,
        full: true,
        whole: AtomicU64::new(0),
    };
    let a = eval(&fast, q, start, end, step, instant);
    let b = eval(&full, q, start, end, step, instant);
    prop_assert_eq!(full.whole.load(Ordering::Relaxed), 0);
    prop_assert_eq!(a, b, "{}", q);
    Ok(fast.whole.load(Ordering::Relaxed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn whole_blocks_give_the_full_decodes_answer(
        data in entries(),
        flush_at in 0i64..700_000,
        overlap in any::<bool>(),
        block in prop_oneof![Just(256u64), Just(1024), Just(8192)],
        q in query(),
        start in 0i64..300,
        step in prop_oneof![Just(10i64), Just(60), Just(300), Just(600)],
        n in 1i64..12,
        instant in any::<bool>(),
        delete in any::<bool>(),
    ) {
        let store = load(&data, flush_at * MS, overlap, block);
        if delete {
            // A pending delete: its lines are left out of every answer,
            // found by their timestamps.
            store.ing.deletes.add(
                &TenantId::new(TENANT).unwrap(),
                NewRequest {
                    query: r#"{app="a"} |= "beta""#.into(),
                    start_ms: T0 / MS + 100_000,
                    end_ms: T0 / MS + 400_000,
                    max_interval_ms: 0,
                },
                T0 / MS + 700_000,
            ).unwrap();
        }
        let start = T0 + start * 1000 * MS;
        let step = step * 1000 * MS;
        let end = start + (n - 1) * step;
        let (s, e) = if instant { (end, end) } else { (start, end) };
        same_answer(&store.ing, &q, s, e, step, instant)?;
    }
}

/// The fast path is taken where it can be (the property above would pass
/// without it): flushed blocks inside one window come without
/// timestamps, and a count without filters reads no column at all.
#[test]
fn whole_blocks_are_delivered_and_read_nothing_for_a_count() {
    let data: Vec<Entry> = (0..3000).map(|i| (0, i * 100, i as usize % 5, 0)).collect();
    let store = load(&data, i64::MAX, false, 1024);
    let end = T0 + 300_000 * MS;
    for q in [
        r#"sum(count_over_time({app="a"}[1h]))"#,
        r#"sum(bytes_over_time({app="a"}[1h]))"#,
        r#"sum(count_over_time({app="a"} |= "error" [1h]))"#,
        r#"sum by (app) (rate({app="a"} != "beta" [1m]))"#,
    ] {
        let whole = same_answer(&store.ing, q, T0, end, 60_000 * MS, false).unwrap();
        assert!(whole > 10, "{q}: {whole} blocks without timestamps");
    }
    let fast = Source {
        ing: &store.ing,
        full: false,
        whole: AtomicU64::new(0),
    };
    let req = request(r#"sum(count_over_time({app="a"}[1h]))"#, end, end, 0, true);
    let (v, stats) = evaluate_with_threads(&fast, &req, 1).unwrap();
    assert_eq!(
        v,
        eval(&fast, &req.query, end, end, 1, true),
        "the same answer twice"
    );
    match v {
        QueryValue::Vector(v) => assert_eq!(v[0].value, 3000.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(stats.scan.compressed_bytes, 0, "no column read");
}

/// `bytes_over_time` without a filter reads the lengths column, never the
/// lines: over windows that cut through blocks, in chunk files and in
/// memory, with the same answer as the full decode.
#[test]
fn bytes_over_time_reads_line_lengths_not_lines() {
    let data: Vec<Entry> = (0..3000).map(|i| (0, i * 100, i as usize % 5, 0)).collect();
    let store = load(&data, 200_000 * MS, false, 1024);
    let end = T0 + 300_000 * MS;
    let fast = Source {
        ing: &store.ing,
        full: false,
        whole: AtomicU64::new(0),
    };
    let full = Source {
        ing: &store.ing,
        full: true,
        whole: AtomicU64::new(0),
    };
    let q = r#"sum(bytes_over_time({app="a"}[7s]))"#;
    let req = request(q, T0, end, 3_000 * MS, false);
    let (a, fast_stats) = evaluate_with_threads(&fast, &req, 1).unwrap();
    let (b, full_stats) = evaluate_with_threads(&full, &req, 1).unwrap();
    assert_eq!(a, b, "{q}");
    let QueryValue::Matrix(m) = &a else {
        panic!("{a:?}")
    };
    assert!(m[0].points.iter().any(|&(_, v)| v > 0.0), "{a:?}");
    assert!(fast_stats.scan.compressed_bytes > 0, "columns were read");
    assert_eq!(
        fast_stats.scan.decompressed_bytes, 0,
        "no line decompressed"
    );
    assert!(full_stats.scan.decompressed_bytes > 0);
    assert!(
        fast_stats.scan.compressed_bytes * 2 < full_stats.scan.compressed_bytes,
        "timestamps and lengths: {} bytes, with the lines: {}",
        fast_stats.scan.compressed_bytes,
        full_stats.scan.compressed_bytes
    );
}
