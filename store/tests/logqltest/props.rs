//! The engine against the reference evaluator on random data, through the
//! real store: entries are validated and pushed in two interleaved halves
//! (so blocks and chunks overlap in time and the read path must merge
//! them), with 1 KiB blocks and small chunks, and then optionally flushed,
//! so both memory and chunk files are read. The reference evaluator and
//! the case generator are the test kit's (`larch_testkit::engine`), which
//! the query crate's tests run over memory.

use larch_query::LabelSet;
use larch_store::push::{PushEntry, PushStream, StreamLabels};
use larch_testkit::engine::cases::{check_log, check_metric, data, log_case, metric_case, query};
use larch_testkit::engine::naive::RefStream;
use proptest::prelude::*;

use larch_store::testing::EngineStore;

fn load(data: &[RefStream], flush: bool) -> EngineStore {
    let store = EngineStore::open(Some((1024, 1024)));
    for half in 0..2 {
        let streams = data
            .iter()
            .map(|s| PushStream {
                labels: StreamLabels::Text(s.labels.to_string()),
                entries: s
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 2 == half)
                    .map(|(_, e)| PushEntry {
                        ts: e.ts,
                        line: e.line.as_str().into(),
                        metadata: e.meta.clone(),
                        omitted: 0,
                    })
                    .collect(),
            })
            .filter(|s| !s.entries.is_empty())
            .collect();
        store
            .push(streams, 0, |v| {
                // Loki's engine sees the streams as pushed (no service_name).
                for s in &mut v.streams {
                    std::sync::Arc::make_mut(&mut s.labels).remove("service_name");
                }
            })
            .unwrap();
    }
    if flush {
        store.ing.flush_all();
    }
    store
}

fn labels_ok(data: &[RefStream]) -> bool {
    data.iter()
        .all(|s| s.labels.get("service_name").is_none() && s.labels != LabelSet::new())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn log_queries_match_the_reference(
        data in data(), q in query(), c in log_case(), flush in any::<bool>(),
    ) {
        prop_assume!(labels_ok(&data));
        let store = load(&data, flush);
        check_log(&*store.ing, &data, &q, &c, 2)?;
    }

    #[test]
    fn metric_queries_match_the_reference(
        data in data(), q in query(), c in metric_case(), flush in any::<bool>(),
    ) {
        prop_assume!(labels_ok(&data));
        let store = load(&data, flush);
        check_metric(&*store.ing, &data, &q, &c, 2)?;
    }
}
