#![no_main]
//! Body: `mcpctl::fuzzing::edit` (replayed over `fuzz/corpus/edit/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::edit(data));
