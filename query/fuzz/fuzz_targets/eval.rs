//! Fuzzes the engine: a query (the first line) evaluated over log lines
//! (the rest) must give a result or an error, never a panic, an overflow
//! or a runaway: templates, parsers, label filters, unwrap conversions and
//! aggregations on outside text; and Drilldown's field detection and
//! pattern mining over the same lines, whose patterns must match the lines
//! counted for them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use larch_query::fuzz;

fuzz_target!(|data: &[u8]| {
    fuzz::eval(data);
});
