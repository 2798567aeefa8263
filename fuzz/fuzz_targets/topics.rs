#![no_main]
//! See `thingcall_server::fuzzing::topics` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| thingcall_server::fuzzing::topics(data));
