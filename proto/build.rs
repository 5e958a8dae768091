//! Generates the protocols `bollard-buildkit-proto` does not carry (today: containerd's content service, which
//! BuildKit calls on the session to read `oci-layout://` sources), with the pure-Rust `protox` compiler: no
//! `protoc` needed to build.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let protos = ["proto/content.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        // The client is for tests: they speak to our server over a real connection.
        .build_client(true)
        .build_server(true)
        // One `Timestamp` type for the whole API, the one the BuildKit types already use (prost's default maps the
        // well-known types to `prost-types`; turning that off is what lets the path below point elsewhere).
        .compile_well_known_types(true)
        .extern_path(
            ".google.protobuf",
            "::bollard_buildkit_proto::google::protobuf",
        )
        // Deterministic encoding, as everywhere else on the wire.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
