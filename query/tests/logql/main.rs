//! LogQL parser tests against outside references: Loki's verdicts on its
//! own test queries, and the committed fuzz corpus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod corpus;
mod roundtrip;
