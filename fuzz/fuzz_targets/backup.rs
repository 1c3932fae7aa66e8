#![no_main]
//! Body: `mcpctl::fuzzing::backup` (replayed over `fuzz/corpus/backup/` by `cargo test`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpctl::fuzzing::backup(data));
