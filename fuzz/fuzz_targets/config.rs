#![no_main]
//! Body: `mcpctl::fuzzing::config` (replayed over `fuzz/corpus/config/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::config(data));
