#![no_main]
//! See `thingcall_server::fuzzing::seed_query` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| thingcall_server::fuzzing::seed_query(data));
