//! Helpers: what the test kit shares (a store process on free ports, the
//! HTTP client, push bodies), and reading a data directory back in
//! process.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use larch_query::{Columns, Direction, LogSource, MatchOp, Matcher, ScanRequest};
use larch_store::config::Config;
use larch_store::ingester::Ingester;
use larch_store::metrics::Metrics;
pub use larch_testkit::http::{Response, request};
pub use larch_testkit::push::{PROTOBUF, protobuf, protobuf_lines};
pub use larch_testkit::{StoreProcess, free_port, now_ns};

/// Every (timestamp, line) of `tenant`'s streams matching `name=value`,
/// read by opening the data directory in process.
pub fn read_back(ing: &Ingester, tenant: &str, name: &str, value: &str) -> Vec<(i64, String)> {
    let m = [Matcher::new(name, MatchOp::Eq, value).unwrap()];
    let mut out = Vec::new();
    for s in ing.streams(tenant, &m, i64::MIN, i64::MAX).unwrap() {
        let req = ScanRequest {
            start: i64::MIN,
            end: i64::MAX,
            direction: Direction::Forward,
            columns: Columns::ALL,
            must_contain: vec![],
            whole: None,
        };
        ing.scan(tenant, &s, &req, &mut |b| {
            for i in 0..b.len() {
                out.push((
                    b.timestamps[i],
                    String::from_utf8(b.line(i).to_vec()).unwrap(),
                ));
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    out.sort();
    out
}

/// Opens a data directory in process (replaying its WAL).
pub fn open_dir(data: &Path) -> Arc<Ingester> {
    let config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    Ingester::open(config, Arc::new(Metrics::new())).unwrap().0
}
