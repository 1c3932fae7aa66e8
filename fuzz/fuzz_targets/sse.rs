#![no_main]
//! Body: `mcpctl::fuzzing::sse` (replayed over `fuzz/corpus/sse/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::sse(data));
