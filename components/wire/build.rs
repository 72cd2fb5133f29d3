//! Compiles `schema/*.proto` with protox (pure Rust, so no `protoc` is needed) and prost.
//! Every message also derives serde, because the same types are the services' JSON bodies.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): the compiled build script is shared by every checkout
    // that uses the same target directory, and must look in the one being built.
    let schema = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../schema");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&schema)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "proto"));
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&schema])?;
    prost_build::Config::new()
        .message_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(descriptors)?;
    Ok(())
}
