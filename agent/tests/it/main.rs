//! Integration tests of `larch-agent`, one binary with modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tailer_model;
