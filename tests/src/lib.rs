//! Helpers for cargo-hive's end-to-end tests: the freshly built binary, isolated environments, the real daemon.
//!
//! Tests that need BuildKit use [`buildkit_addr`]: it fails (never skips) when no daemon answers, with a message
//! saying to run `scripts/buildkit-up`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod bench;
pub mod fakes;
pub mod fixture;

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of an up-to-date `cargo-hive` binary (built once per test process).
pub fn cargo_hive_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "cargo-hive",
                "--bin",
                "cargo-hive",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building cargo-hive failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let bin = target.join("debug").join("cargo-hive");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// Environment variables that choose a BuildKit or change output; cleared so each test states what it wants.
pub const ISOLATED_VARS: &[&str] = &[
    "BUILDKIT_HOST",
    "DOCKER_HOST",
    "XDG_RUNTIME_DIR",
    "CARGO_TERM_COLOR",
    "NO_COLOR",
    "CLICOLOR_FORCE",
    "__HIVE_ROOTFUL_BUILDKIT_SOCKET",
    "__HIVE_DOCKER_DEFAULT_SOCKET",
];

/// A `cargo-hive` command with the BuildKit-selecting environment cleared and colour off.
pub fn cargo_hive() -> Command {
    let mut command = Command::new(cargo_hive_bin());
    for var in ISOLATED_VARS {
        command.env_remove(var);
    }
    command.arg("--color").arg("never");
    command
}

/// The address of the real BuildKit the suite runs against: `HIVE_TEST_BUILDKIT_HOST`, else Docker's default
/// socket. Panics with instructions when it does not answer: an e2e test never passes without its daemon.
pub fn buildkit_addr() -> String {
    let addr = std::env::var("HIVE_TEST_BUILDKIT_HOST")
        .unwrap_or_else(|_| "docker+unix:///var/run/docker.sock".to_owned());
    if let Some(path) = addr
        .strip_prefix("docker+unix://")
        .or_else(|| addr.strip_prefix("unix://"))
    {
        assert!(
            std::os::unix::net::UnixStream::connect(path).is_ok(),
            "no BuildKit answers at {addr}: run `scripts/buildkit-up` first (or set HIVE_TEST_BUILDKIT_HOST)"
        );
    }
    addr
}

/// The Docker API socket of the daemon under test.
pub fn docker_socket() -> PathBuf {
    let addr = buildkit_addr();
    PathBuf::from(
        addr.strip_prefix("docker+unix://")
            .expect("the suite's BuildKit is Docker's (docker+unix://)"),
    )
}

/// Output of a finished command, with stdout and stderr as text.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The contract of a failed command: exit 1, `error:` on stderr with every needle, no panic.
pub fn assert_error(result: &Run, needles: &[&str]) {
    assert_eq!(result.code, 1, "{result:#?}");
    assert!(!result.stderr.contains("panicked"), "{result:#?}");
    assert!(result.stderr.contains("error: "), "{result:#?}");
    for needle in needles {
        assert!(
            result.stderr.contains(needle),
            "missing {needle:?} in stderr:\n{}",
            result.stderr
        );
    }
}

/// Runs a command to completion.
pub fn run(command: &mut Command) -> Run {
    command.output().expect("command starts").into()
}

/// Copies the directory `from` into `to` (created), leaving out every `target/` directory: an example's own build
/// output is neither needed nor wanted in a test's copy.
pub fn copy_workspace(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|err| panic!("create {}: {err}", to.display()));
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|err| panic!("read {}: {err}", from.display()))
    {
        let entry = entry.unwrap();
        let source = entry.path();
        let destination = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if entry.file_name() != "target" {
                copy_workspace(&source, &destination);
            }
        } else if kind.is_file() {
            std::fs::copy(&source, &destination)
                .unwrap_or_else(|err| panic!("copy {}: {err}", source.display()));
        }
    }
}

/// A `docker` CLI command talking to the daemon under test.
pub fn docker() -> Command {
    let mut command = Command::new("docker");
    command.env(
        "DOCKER_HOST",
        format!("unix://{}", docker_socket().display()),
    );
    command
}

/// The host's architecture as OCI names it (`amd64`, `arm64`): what an image of a binary built here is for.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("the e2e suite knows no OCI name for the host architecture {other}"),
    }
}

/// The program interpreter of a glibc binary built on the host (its path in the image).
pub fn host_glibc_loader() -> &'static str {
    match host_arch() {
        "arm64" => "/lib/ld-linux-aarch64.so.1",
        _ => "/lib64/ld-linux-x86-64.so.2",
    }
}

/// A musl target of another architecture than the host's, for tests of a binary that does not fit its image:
/// (target triple, the ELF machine as cargo-hive describes it, its OCI architecture).
pub fn foreign_target() -> (&'static str, &'static str, &'static str) {
    if host_arch() == "arm64" {
        (
            "x86_64-unknown-linux-musl",
            "x86-64 (64-bit, little-endian)",
            "amd64",
        )
    } else {
        (
            "aarch64-unknown-linux-musl",
            "AArch64 (64-bit, little-endian)",
            "arm64",
        )
    }
}

/// The members of a tar archive, by name, in order. Panics unless `bytes` is a well-formed tar (valid header
/// checksums, no truncated member); a pax header's `path` names the member after it.
pub fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut members = Vec::new();
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.unwrap_or_else(|err| panic!("malformed tar: {err}"));
        if entry.header().entry_type().is_pax_global_extensions() {
            continue;
        }
        let name = entry
            .path()
            .unwrap_or_else(|err| panic!("tar member name: {err}"))
            .to_str()
            .expect("tar names are UTF-8")
            .to_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data)
            .unwrap_or_else(|err| panic!("tar member {name} truncated: {err}"));
        members.push((name, data));
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_members_reads_long_names_in_order() {
        let long = format!("blobs/sha256/{}", "a".repeat(120));
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("oci-layout", &b"{}"[..]), (long.as_str(), b"blob")] {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        assert_eq!(
            tar_members(&bytes),
            [
                ("oci-layout".to_owned(), b"{}".to_vec()),
                (long, b"blob".to_vec())
            ]
        );
    }

    #[test]
    #[should_panic(expected = "malformed tar")]
    fn tar_members_rejects_a_bad_checksum() {
        let mut header = tar::Header::new_ustar();
        header.set_size(0);
        header.set_path("x").unwrap();
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes[0] = b'y';
        bytes.extend([0; 1024]);
        tar_members(&bytes);
    }
}
