//! `cargo hive`: container images for Rust workspaces, built by your own BuildKit.

fn main() -> std::process::ExitCode {
    cargo_hive::main_from_env()
}
