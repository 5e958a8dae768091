//! Helpers for cargo-hive's end-to-end tests: the freshly built binary, isolated environments, the real daemon.
//!
//! Tests that need BuildKit use [`buildkit_addr`]: it fails (never skips) when no daemon answers, with a message
//! saying to run `scripts/buildkit-up`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The members of a tar archive, by name, in order. Panics unless `bytes` is a well-formed tar (ustar headers with
/// valid checksums, ending in zero blocks); a pax header's `path` names the member after it.
pub fn tar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    fn octal(field: &[u8]) -> u64 {
        let text = std::str::from_utf8(field).expect("tar numbers are ASCII");
        let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
        u64::from_str_radix(text, 8).unwrap_or_else(|_| panic!("bad tar number {text:?}"))
    }
    fn text(field: &[u8]) -> String {
        let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
        String::from_utf8(field[..end].to_vec()).expect("tar names are UTF-8")
    }
    let mut members = Vec::new();
    let mut offset = 0;
    let mut pax_path = None;
    loop {
        let header = bytes
            .get(offset..offset + 512)
            .unwrap_or_else(|| panic!("tar truncated at {offset} (no end-of-archive blocks)"));
        if header.iter().all(|b| *b == 0) {
            return members;
        }
        let expected = octal(&header[148..156]);
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        assert_eq!(sum, expected, "tar header checksum at offset {offset}");
        let size = usize::try_from(octal(&header[124..136])).unwrap();
        let mut name = text(&header[..100]);
        if &header[257..262] == b"ustar" {
            let prefix = text(&header[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let data_start = offset + 512;
        let data = bytes
            .get(data_start..data_start + size)
            .unwrap_or_else(|| panic!("tar member {name} truncated"))
            .to_vec();
        match header[156] {
            b'x' => {
                let records = String::from_utf8(data).expect("pax records are UTF-8");
                pax_path = records.lines().find_map(|record| {
                    let (_, field) = record.split_once(' ')?;
                    field.strip_prefix("path=").map(str::to_owned)
                });
            }
            b'g' => {}
            _ => members.push((pax_path.take().unwrap_or(name), data)),
        }
        offset = data_start + size.div_ceil(512) * 512;
    }
}
