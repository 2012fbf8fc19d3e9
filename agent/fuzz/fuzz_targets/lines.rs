//! Fuzzes what the agent does with a log file's lines: the CRI and docker
//! decoders with the joiner of partial records, or a pipeline of every
//! stage that reads the line. Never a panic, an overflow or a runaway.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = larch_agent::fuzz::fuzz_lines(data);
});
