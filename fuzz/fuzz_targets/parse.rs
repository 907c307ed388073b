//! libFuzzer target `parse`: see `oxdelta_fuzz::parse` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxdelta_fuzz::parse(data));
