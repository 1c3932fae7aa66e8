#![no_main]
//! Body: `mcpctl::fuzzing::client_link` (replayed over `fuzz/corpus/client_link/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::client_link(data));
