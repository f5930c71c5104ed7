#![no_main]
//! See docs/fuzzing.md and `demls_fuzz::targets::consensus`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| demls_fuzz::targets::consensus::run(data));
