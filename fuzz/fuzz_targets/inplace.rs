//! libFuzzer target `inplace`: see `oxdelta_fuzz::inplace` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxdelta_fuzz::inplace(data));
