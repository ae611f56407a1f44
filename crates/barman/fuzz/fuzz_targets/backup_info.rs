#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| barman::fuzzing::backup_info(data));
