//! Compiles the protobuf schema with protox (pure Rust), so no system `protoc` is needed.

fn main() {
    println!("cargo:rerun-if-changed=proto");
    let fds =
        protox::compile(["proto/events.proto", "proto/catalog.proto"], ["proto"]).expect("the .proto files compile");
    prost_build::Config::new().compile_fds(fds).expect("prost generates Rust for the schemas");
}
