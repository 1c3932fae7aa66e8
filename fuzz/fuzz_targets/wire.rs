#![no_main]
//! Body: `mcpctl::fuzzing::wire` (replayed over `fuzz/corpus/wire/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::wire(data));
