//! The engine against the reference evaluator on random data: log queries
//! (filters, limit, direction) and metric queries (`count_over_time`,
//! `rate`, `sum by`), on one and on several threads, with random block
//! sizes.

use proptest::prelude::*;

use larch_query::engine::mem::{Entry, MemSource, Stream};
use larch_testkit::engine::cases::{check_log, check_metric, data, log_case, metric_case, query};
use larch_testkit::engine::naive::RefStream;

fn source(data: &[RefStream], block_len: usize) -> MemSource {
    MemSource::new(
        data.iter()
            .map(|s| Stream {
                labels: s.labels.clone(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| Entry {
                        ts: e.ts,
                        line: e.line.clone(),
                        meta: e.meta.clone(),
                    })
                    .collect(),
            })
            .collect(),
        block_len,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn log_queries_match_the_reference(
        data in data(), q in query(), c in log_case(), block_len in 1usize..8, threads in 1usize..4,
    ) {
        check_log(&source(&data, block_len), &data, &q, &c, threads)?;
    }

    #[test]
    fn metric_queries_match_the_reference(
        data in data(), q in query(), c in metric_case(), block_len in 1usize..8, threads in 1usize..4,
    ) {
        check_metric(&source(&data, block_len), &data, &q, &c, threads)?;
    }
}
