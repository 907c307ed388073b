//! libFuzzer target `decode_chunk`: see `oxdelta_fuzz::decode_chunk` for the property.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oxdelta_fuzz::decode_chunk(data));
