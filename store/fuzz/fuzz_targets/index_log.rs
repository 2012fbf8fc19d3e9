//! Fuzzes opening (and repairing) an index log.
//! Input layout and properties: `larch_store::fuzz::index_log`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = larch_store::fuzz::index_log(data);
});
