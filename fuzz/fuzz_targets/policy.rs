#![no_main]
//! See docs/fuzzing.md and `demls_fuzz::targets::policy`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| demls_fuzz::targets::policy::run(data));
