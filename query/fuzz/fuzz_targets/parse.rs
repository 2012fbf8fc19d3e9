//! Fuzzes the LogQL parser: any bytes must give a tree or an error, never
//! a panic, a hang or a stack overflow; a tree must survive the plan-time
//! checks and print to a text that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use larch_query::logql;

fuzz_target!(|data: &[u8]| {
    logql::fuzz_one(data);
});
