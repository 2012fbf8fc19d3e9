//! Fuzzes push decoding (protobuf, JSON v1/v0, OTLP, content encodings) and validation.
//! Input layout and properties: `larch_store::fuzz::push`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = larch_store::fuzz::push(data);
});
