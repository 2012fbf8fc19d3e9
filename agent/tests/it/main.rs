//! Integration tests of `larch-agent`, one binary with modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod e2e;
mod fuzz;
mod kube;
mod support;
mod tailer_model;
