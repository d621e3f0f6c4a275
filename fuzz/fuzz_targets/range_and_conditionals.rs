//! `range_and_conditionals`: see `satchel_fuzz::checks::range_and_conditionals` for the input format and the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| satchel_fuzz::checks::range_and_conditionals::check(data)
);
