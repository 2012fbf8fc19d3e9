//! The Larch agent: finds the log files of the pods on a node, reads them
//! through rotation and restarts, runs them through pipeline stages, and
//! pushes them to the store, advancing its saved positions only for lines
//! the store has acknowledged.
#![warn(missing_docs)]

mod agent;
pub mod batch;
pub mod client;
pub mod config;
pub mod discovery;
pub mod error;
pub mod file_id;
pub mod flags;
pub mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod kube;
pub mod labels;
pub mod metrics;
pub mod positions;
mod reader;
pub mod relabel;
mod sender;
mod server;
pub mod stages;
pub mod tailer;
pub mod time;

pub use agent::Agent;
pub use config::AgentConfig;
pub use error::{Error, Result};
