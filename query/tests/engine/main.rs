//! Integration tests of the LogQL engine (`larch_query::engine`): property
//! tests against the test kit's reference evaluator
//! (`larch_testkit::engine`) and tests of specific behaviours,
//! over an in-memory source (`larch_query::engine::mem`, which says why). Loki's own engine
//! scripts run against the real store in `store/tests/logqltest`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod drilldown;
mod limits;
mod props;
