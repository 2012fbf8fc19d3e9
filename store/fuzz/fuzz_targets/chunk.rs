//! Fuzzes chunk files: both index readers and every block's decoding.
//! Input layout and properties: `larch_store::fuzz::chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = larch_store::fuzz::chunk(data);
});
