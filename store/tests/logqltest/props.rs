//! The engine against the reference evaluator on random data, through the
//! real store: entries are validated and pushed in two interleaved halves
//! (so blocks and chunks overlap in time and the read path must merge
//! them), with 1 KiB blocks and small chunks, and then optionally flushed,
//! so both memory and chunk files are read. The reference evaluator and
//! the case generator are the test kit's (`larch_testkit::engine`), which
//! the query crate's tests run over memory.

use std::sync::Arc;

use larch_config::{ByteSize, HumanDuration};
use larch_query::LabelSet;
use larch_store::config::{Config, IngesterConfig, Limits, WalConfig};
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;
use larch_store::push::{Push, PushEntry, PushStream, StreamLabels};
use larch_store::tenant::TenantId;
use larch_store::validate::validate;
use larch_testkit::engine::cases::{check_log, check_metric, data, log_case, metric_case, query};
use larch_testkit::engine::naive::RefStream;
use proptest::prelude::*;

struct Loaded {
    ing: Arc<Ingester>,
    _dir: tempfile::TempDir,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.ing.shutdown();
    }
}

fn load(data: &[RefStream], flush: bool) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        reject_old_samples: false,
        ingestion_rate_mb: 1e6,
        ingestion_burst_size_mb: 1e6,
        max_streams_per_tenant: 0,
        // The reference evaluator knows no detected levels.
        discover_log_levels: false,
        ..Limits::default()
    };
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        limits: limits.clone(),
        ingester: IngesterConfig {
            block_size: ByteSize(1024),
            chunk_target_size: ByteSize(1024),
            max_chunk_age: HumanDuration::from_secs(10_000 * 3600),
            chunk_idle_period: HumanDuration::from_secs(10_000 * 3600),
            ..IngesterConfig::default()
        },
        wal: WalConfig {
            fsync: false,
            ..WalConfig::default()
        },
        ..Config::default()
    };
    let (ing, _) = Ingester::open(config, Arc::new(Metrics::new())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tenant = TenantId::new("fake").unwrap();
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
        let mut v = validate(Push::new(streams), &limits, 0, tenant.as_str());
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        // Loki's engine sees the streams as pushed (no service_name).
        for s in &mut v.streams {
            std::sync::Arc::make_mut(&mut s.labels).remove("service_name");
        }
        rt.block_on(ing.push(&tenant, v)).unwrap();
    }
    if flush {
        ing.flush_all();
    }
    Loaded { ing, _dir: dir }
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
