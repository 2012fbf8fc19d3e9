//! What Larch's integration tests and benchmarks share.
//!
//! * [`StoreProcess`] and [`AgentProcess`]: a real `larch-store` or
//!   `larch-agent` on free ports of 127.0.0.1, started from a builder,
//!   ready (its `/ready` answered 200) when the constructor returns, and
//!   killed when dropped. Their stdout and stderr go to files; when the
//!   guard is dropped while the test panics, the end of each is printed
//!   (libtest shows it with the failure) and the files are kept
//!   ([`Process`]).
//! * [`http`]: one small HTTP/1.1 client (one request per connection, or
//!   a keep-alive [`http::Connection`]), chunked decoding, percent-encoding.
//! * [`push`]: Loki push bodies (snappy protobuf, JSON).
//! * [`pki`]: a test CA and certificates made with `openssl`, for TLS
//!   and mTLS tests ([`http::Tls`] is the client side).
//! * [`s3`]: a real S3-compatible server (`s3s-fs`), installed once into
//!   `.test-deps/`.
//! * [`azurite`]: Azure Blob Storage's emulator (Azurite, from npm), the
//!   same way.
//! * [`free_port`], [`now_ns`], [`wait_for`], [`procfs`] (a process' memory,
//!   I/O and CPU time as Linux reports them), [`metrics`] (the Prometheus
//!   text format as a map).
//! * [`prometheus`]: Prometheus and Alertmanager from Debian's packages
//!   (installed when missing), on free ports, for end-to-end tests of the
//!   ruler and of the shipped scrape configuration.
//! * [`engine`]: the LogQL engine's reference evaluator and random cases,
//!   run by the query crate over memory and by the store's tests over the
//!   real ingester.
//!
//! # Which binary a test runs
//!
//! One rule, in [`binary`], for every binary every test or benchmark
//! starts (`larch-store`, `larch-agent`, `larch`): the first time a process
//! asks for a binary, the kit runs `cargo build --workspace --bins` for the
//! profile and target directory the running executable was built in (a
//! test in `target/debug/deps` gets `target/debug/<name>`, a benchmark in
//! `target/release/deps` gets `target/release/<name>`) and runs the path
//! cargo reports. Cargo decides what is fresh, so a test never runs a
//! binary older than the sources, whichever package's tests run and
//! whichever package the binary lives in. It is the build
//! `scripts/test-all` runs before the tests, with the same features, so
//! there it finds nothing to do; when nothing changed it costs about a
//! quarter of a second, once per test executable. (Building one binary
//! alone would unify features differently and compile a second copy of
//! the store and its dependencies.)
//!
//! The alternatives were worse: `env!("CARGO_BIN_EXE_<name>")` exists only
//! in the tests of the binary's own package (the agent's and the CLI's
//! tests need the store too, and the store's binary may live in a package
//! of its own), and a binary looked up next to the test executable is
//! whatever the last build left there, possibly stale.
//!
//! This crate is used only as a dev-dependency (and by the benches). Like
//! the tests it serves, it panics when something fails, with a message
//! that says what and where.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

mod agent;
pub mod azurite;
mod binary;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod pki;
mod port;
mod process;
pub mod procfs;
pub mod prometheus;
pub mod push;
pub mod s3;
mod store;
mod time;
pub mod tokens;

pub use agent::{AgentBuilder, AgentProcess};
pub use binary::binary;
pub use port::free_port;
pub use process::{Process, ProcessBuilder};
pub use store::{StoreBuilder, StoreProcess};
pub use time::{SEC, now_ns, wait_for};
