// libFuzzer's entry point is an exported C symbol.
#![allow(unsafe_code)]
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vcount_fuzz::youtube_url(data));
