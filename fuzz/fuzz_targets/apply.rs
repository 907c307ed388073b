//! libFuzzer target `apply`: see `oxdelta_fuzz::apply` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxdelta_fuzz::apply(data));
