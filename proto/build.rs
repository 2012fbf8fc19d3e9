//! Compiles the `.proto` files with `protox` (a protobuf compiler written in
//! Rust), so building Larch needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/logproto/push.proto",
        "proto/otlp/logs.proto",
        "proto/prometheus/remote.proto",
        "proto/larch/replica.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
