//! `request_head`: see `satchel_fuzz::checks::request_head` for the input format and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| satchel_fuzz::checks::request_head::check(data));
