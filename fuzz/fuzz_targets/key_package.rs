#![no_main]
//! See docs/fuzzing.md and `demls_fuzz::targets::key_package`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| demls_fuzz::targets::key_package::run(data));
