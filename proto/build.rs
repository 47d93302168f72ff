//! Generates the `base.v1` (and CEL `google.api.expr.v1alpha1`) Rust types, tonic clients and
//! servers, and a file descriptor set for reflection and JSON transcoding.
//!
//! protoc comes from `protoc-bin-vendored` (works offline) and is handed to prost-build through
//! its config, not through `PROTOC` (`env::set_var` is unsafe in edition 2024). The same crate
//! ships the well-known types (`google/protobuf/*.proto`).

use std::env;
use std::error::Error;
use std::path::PathBuf;

/// Our own .proto files, relative to this crate's root (which is also the import root).
const PROTOS: &[&str] = &[
    "base/v1/base.proto",
    "base/v1/errors.proto",
    "base/v1/service.proto",
    "google/api/expr/v1alpha1/syntax.proto",
    "google/api/expr/v1alpha1/checked.proto",
];

/// File name of the descriptor set in OUT_DIR (read back by `src/lib.rs`).
const DESCRIPTOR_SET: &str = "lookout_descriptor_set.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let wkt_include = protoc_bin_vendored::include_path()?;

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `impl prost::Name` for every message, with Permify's type URL domain, so that
    // `M::full_name()` and `prost_types::Any::from_msg` produce `type.googleapis.com/base.v1.X`.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");

    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let includes = [root.clone(), wkt_include];

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join(DESCRIPTOR_SET))
        .compile_with_config(config, &protos, &includes)?;

    for dir in ["base", "google"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
