//! The `larch` binary against a real `larch-store` process: every
//! subcommand and output mode, checked on exact stdout, stderr and exit
//! codes. Known lines are pushed over HTTP (Loki JSON) and with `larch push`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod detected;
mod errors;
mod fixture;
mod meta;
mod parallel;
mod push;
mod query;
mod security;
mod support;
mod tail;
mod terminal;
