//! The `larch-store` binary as its users meet it: configuration files
//! (Larch's and Loki's) and flags, the effective configuration printed and
//! served, the runtime overrides file, its own logs, and the README's
//! commands run as written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check_config;
mod config;
mod logs;
mod readme;
mod runtime;
