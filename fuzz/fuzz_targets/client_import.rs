#![no_main]
//! Body: `mcpctl::fuzzing::client_import` (replayed over `fuzz/corpus/client_import/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::client_import(data));
