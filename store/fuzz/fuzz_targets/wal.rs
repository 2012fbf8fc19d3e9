//! Fuzzes WAL records and segment replay, including a restart on the damaged WAL.
//! Input layout and properties: `larch_store::fuzz::wal`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = larch_store::fuzz::wal(data);
});
