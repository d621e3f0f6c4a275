//! `proxy_header`: see `satchel_fuzz::checks::proxy_header` for the input format and the
//! properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| satchel_fuzz::checks::proxy_header::check(data));
