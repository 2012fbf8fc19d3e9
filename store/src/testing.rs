//! A store opened in process for the tests of the query engine over real
//! data: the ingester (WAL, heads, chunk files) in a temporary directory,
//! loaded through the store's own write path (`validate`, then
//! `Ingester::push`) and read through its `LogSource`, with the query
//! requests those tests send.
//!
//! Only with the `test-support` feature, which the store's own tests turn
//! on (the store is a dev-dependency of itself with that feature): the
//! whole-block property (`it`), Loki's conformance scripts and the
//! reference-evaluator properties (`logqltest`) set their store up here.
//! Like the test kit it panics when something fails, as the tests it
//! serves do. It lives here rather than in `larch-testkit` because the kit
//! is shared by crates that must not depend on the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use larch_config::{ByteSize, HumanDuration};
use larch_query::Direction;
use larch_query::engine::QueryRequest;

use crate::config::{Config, IngesterConfig, Limits, WalConfig};
use crate::ingester::Ingester;
use crate::metrics::Metrics;
use crate::push::{Push, PushStream};
use crate::tenant::TenantId;
use crate::validate::{Validated, validate};

/// The tenant every line is pushed for and every query asks as.
pub const TENANT: &str = "fake";

/// A store open in a temporary directory; shut down (every chunk
/// flushed) when dropped.
pub struct EngineStore {
    /// The store's ingester, which is the engine's `LogSource`.
    pub ing: Arc<Ingester>,
    limits: Limits,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl EngineStore {
    /// Opens an empty store whose limits take whatever a test loads: old
    /// entries, any rate, any number of streams, and no detected levels
    /// (neither Loki's engine harness nor the reference evaluator has a
    /// distributor that adds them). Chunks are cut by size only: their age
    /// and idle limits are ten thousand hours, which also lets entries
    /// arrive out of order within half of that. The WAL does not fsync.
    /// `sizes`: the block size and the chunk target size in bytes, or the
    /// store's defaults.
    pub fn open(sizes: Option<(u64, u64)>) -> EngineStore {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            reject_old_samples: false,
            ingestion_rate_mb: 1e6,
            ingestion_burst_size_mb: 1e6,
            max_streams_per_tenant: 0,
            discover_log_levels: false,
            ..Limits::default()
        };
        let mut ingester = IngesterConfig {
            max_chunk_age: HumanDuration::from_secs(10_000 * 3600),
            chunk_idle_period: HumanDuration::from_secs(10_000 * 3600),
            ..IngesterConfig::default()
        };
        if let Some((block, chunk)) = sizes {
            ingester.block_size = ByteSize(block);
            ingester.chunk_target_size = ByteSize(chunk);
        }
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            limits: limits.clone(),
            ingester,
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
        EngineStore {
            ing,
            limits,
            rt,
            _dir: dir,
        }
    }

    /// Validates `streams` with the store's limits as of `now` (Unix
    /// nanoseconds), lets `adjust` change what validation gave, and pushes
    /// it: the validation's errors joined, or the push's error, when the
    /// store refuses.
    pub fn push(
        &self,
        streams: Vec<PushStream>,
        now: i64,
        adjust: impl FnOnce(&mut Validated),
    ) -> Result<(), String> {
        let mut validated = validate(Push::new(streams), &self.limits, now, TENANT);
        if !validated.errors.is_empty() {
            return Err(validated.errors.join("; "));
        }
        adjust(&mut validated);
        let tenant = TenantId::new(TENANT).unwrap();
        self.rt
            .block_on(self.ing.push(&tenant, validated))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl Drop for EngineStore {
    fn drop(&mut self) {
        self.ing.shutdown();
    }
}

/// A query of [`TENANT`]'s data: an instant query at `end` or a range
/// query from `start` to `end` every `step` (nanoseconds); log queries
/// return at most 100 entries, oldest first.
pub fn request(query: &str, start: i64, end: i64, step: i64, instant: bool) -> QueryRequest {
    QueryRequest {
        tenant: TENANT.into(),
        query: query.into(),
        start,
        end,
        step,
        limit: 100,
        direction: Direction::Forward,
        instant,
        ..QueryRequest::default()
    }
}
