#![no_main]
//! Body: `mcpctl::fuzzing::token` (replayed over `fuzz/corpus/token/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::token(data));
