//! Compiles `proto/*.proto` with protox (pure Rust, so no `protoc` is needed) and prost-build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/client.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.compile_fds(fds)?;
    Ok(())
}
