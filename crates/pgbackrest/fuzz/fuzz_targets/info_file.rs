#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgbackrest::fuzzing::info_file(data));
