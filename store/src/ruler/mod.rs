//! The ruler: LogQL alerting and recording rules, evaluated in the store's
//! process by the query engine, as Loki's ruler does.
//!
//! Rule groups are Prometheus rule files with LogQL expressions
//! (`larch-rules` reads and checks them), kept per tenant and namespace in
//! a [`RuleStore`] (a directory, [`DirRuleStore`], or the store's bucket,
//! [`BucketRuleStore`]). Each group runs at its interval ([`manager`]): its
//! rules' queries run on the blocking pool against the tenant's data
//! ([`eval`]); alerts go through Prometheus' lifecycle ([`alert`]) and are
//! sent to Alertmanager's API v2 ([`notifier`]); recorded samples, `ALERTS`
//! and `ALERTS_FOR_STATE` go to Prometheus remote write receivers
//! ([`remote_write`]). Alert state is saved to a file in the data
//! directory, or to the bucket ([`state`]), so that a restart neither
//! resolves nor re-fires what was firing. The rules API ([`api`]) serves
//! Loki's configuration routes and Prometheus' status JSON; a node without
//! the ruler may forward it to the one that runs it ([`forward`]).
//!
//! Module map:
//! * [`config`]: the `ruler:` configuration block.
//! * [`storage`]: where groups are kept.
//! * [`manager`]: which groups run, their schedule, the state file.
//! * [`eval`], [`alert`]: one evaluation; the alert lifecycle and
//!   templates.
//! * [`notifier`], [`remote_write`], [`http`]: what leaves the process.
//! * [`remote_eval`]: rules' queries asked of another node's API
//!   (`ruler.evaluation.mode: remote`).
//! * [`api`]: the HTTP routes.
//! * [`forward`]: the same routes on a node without the ruler, forwarded
//!   to the one that runs it.
//! * [`metrics`]: the `larch_ruler_*` metrics.

pub mod alert;
pub mod api;
pub mod config;
pub mod eval;
pub mod forward;
pub mod http;
pub mod manager;
pub mod metrics;
pub mod notifier;
pub mod remote_eval;
pub mod remote_write;
pub mod state;
pub mod storage;

pub use config::RulerConfig;
pub use manager::Ruler;
pub use metrics::RulerMetrics;
pub use storage::{BucketRuleStore, DirRuleStore, RuleStore};
