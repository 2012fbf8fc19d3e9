//! The agent's error type.
//!
//! One enum for the whole crate, each variant carrying the context a reader
//! of the log needs (the path, the stage, the URL). Errors caused by the
//! world (files, network, the store) are values; the agent never panics on
//! them.

use std::path::PathBuf;

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message says which key and why.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The configuration file could not be read or parsed.
    #[error("cannot load configuration file {path}: {message}")]
    ConfigFile {
        /// The file given with `--config`.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A pipeline stage is misconfigured.
    #[error("pipeline stage {index} ({stage}): {message}")]
    Stage {
        /// Position of the stage in `pipeline_stages` (0-based, nested stages
        /// of `match` are numbered in their own list).
        index: usize,
        /// The stage's name, e.g. `regex`.
        stage: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the agent tried to do (`open`, `read`, `rename`, …).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The positions file exists but is damaged (from the strict reader,
    /// [`crate::positions::load`]; the agent itself uses the forgiving
    /// [`crate::positions::recover`]).
    #[error("positions file {path} is damaged: {message}")]
    Positions {
        /// The positions file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A push could not be delivered (after classification; see
    /// [`crate::client`] for which errors are retried).
    #[error("push to {url} failed: {message}")]
    Push {
        /// The store's URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// A request to the Kubernetes API failed.
    #[error("kubernetes API {url}: {message}")]
    Kube {
        /// The URL requested.
        url: String,
        /// What happened.
        message: String,
    },
    /// The HTTP server for /metrics and /ready could not start.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address from `http_addr`.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for an [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The agent's result type.
pub type Result<T> = std::result::Result<T, Error>;
