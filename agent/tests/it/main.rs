//! Integration tests of `larch-agent`, one binary with modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod confine;
mod delivery;
mod discovery;
mod e2e;
mod fuzz;
mod kube;
mod positions;
mod security;
mod support;
mod tailer_model;
