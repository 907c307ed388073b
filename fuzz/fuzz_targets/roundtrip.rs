//! libFuzzer target `roundtrip`: see `oxdelta_fuzz::roundtrip` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxdelta_fuzz::roundtrip(data));
