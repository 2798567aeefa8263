//! Compiles `thingcall/v1/*.proto` with protox (pure Rust, no system protoc)
//! and writes the descriptor set that server reflection serves.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=thingcall");
    let fds = protox::compile(["thingcall/v1/gateway.proto"], ["."])?;
    std::fs::write(
        out.join("thingcall_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .bytes(".thingcall.v1")
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_fds(fds)?;
    Ok(())
}
