#![no_main]
//! See docs/fuzzing.md and `demls_fuzz::targets::engine`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| demls_fuzz::targets::engine::bytes(data));
