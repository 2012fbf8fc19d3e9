//! The LogQL engine against a reference: random data and queries
//! ([`cases`]) and a plain evaluator to compare with ([`naive`]). Storage
//! does not matter to them: the query crate runs them over memory, the
//! store's tests over the real ingester.

pub mod cases;
pub mod naive;
