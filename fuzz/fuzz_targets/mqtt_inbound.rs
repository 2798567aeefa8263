#![no_main]
//! See `thingcall_server::fuzzing::mqtt_inbound` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| thingcall_server::fuzzing::mqtt_inbound(data));
