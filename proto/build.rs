//! Compiles the protos with `protox` (pure Rust), so a fresh machine needs
//! no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "sealplane/v1/audit.proto",
        "sealplane/v1/common.proto",
        "sealplane/v1/events.proto",
        "sealplane/v1/operations.proto",
        "sealplane/v1/principals.proto",
        "sealplane/v1/reactor.proto",
        "sealplane/v1/secrets.proto",
        "sealplane/v1/stores.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_build::configure().compile_fds(descriptors)?;
    Ok(())
}
