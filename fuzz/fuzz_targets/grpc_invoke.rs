#![no_main]
//! See `thingcall_server::fuzzing::grpc_invoke` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| thingcall_server::fuzzing::grpc_invoke(data));
