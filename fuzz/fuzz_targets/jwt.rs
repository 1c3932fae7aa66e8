#![no_main]
//! Body: `mcpctl::fuzzing::jwt` (replayed over `fuzz/corpus/jwt/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::jwt(data));
