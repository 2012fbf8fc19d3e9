//! Fuzzes the token filter: arbitrary filter bytes, and no false negatives.
//! Input layout and properties: `larch_store::fuzz::filter`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = larch_store::fuzz::filter(data);
});
