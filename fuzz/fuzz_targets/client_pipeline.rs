//! `client_pipeline`: see `satchel_fuzz::checks::client_pipeline` for the input format and the
//! properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| satchel_fuzz::checks::client_pipeline::check(data));
