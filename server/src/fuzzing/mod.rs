//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz) and of the
//! test that replays their committed corpus. **Not an API**: hidden from
//! the docs, outside any compatibility promise, free to change with any
//! commit. It exists so the targets drive the gateway's own parsers the way
//! the gateway drives them, without making those internals public.
//!
//! Each function takes the fuzzer's bytes, feeds them to one parser (or,
//! for the HTTP surfaces, to the gateway's whole in-process router), and
//! panics when an invariant breaks: a panic is what the fuzzer reports as a
//! crash. Inputs the transport itself would never deliver (a request line
//! that is not a valid URI, say) are skipped, not counted as findings.
//! `docs/fuzzing.md` lists what each one checks.

mod grpc_invoke;
mod grpc_web;
mod http;
mod mqtt;
mod rig;

pub use grpc_invoke::grpc_invoke;
pub use grpc_web::grpc_web;
pub use http::{http_json, seed_query};
pub use mqtt::{mqtt_inbound, topics};

/// One target: the fuzzer's bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the names of `fuzz/fuzz_targets/*.rs` and of
/// `fuzz/corpus/*/`), for the test that replays the corpus.
pub const TARGETS: [(&str, Target); 6] = [
    ("http_json", http_json),
    ("seed_query", seed_query),
    ("mqtt_inbound", mqtt_inbound),
    ("topics", topics),
    ("grpc_web", grpc_web),
    ("grpc_invoke", grpc_invoke),
];
