//! Runs the user's cargo to build the binaries the images need, and takes their paths from cargo's
//! `compiler-artifact` messages (never by guessing `target/` paths). Cargo's own diagnostics go to stderr as cargo
//! renders them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use cargo_metadata::{Message, PackageId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::elf::{self, InspectError, Machine, NotABinary};

/// Cargo's own flags that `cargo hive` forwards to every cargo it runs: feature selection and compilation options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CargoFlags {
    /// `--features`, each as given.
    pub(crate) features: Vec<String>,
    /// `--all-features`.
    pub(crate) all_features: bool,
    /// `--no-default-features`.
    pub(crate) no_default_features: bool,
    /// `--release`.
    pub(crate) release: bool,
    /// `--profile`.
    pub(crate) profile: Option<String>,
    /// `--locked`.
    pub(crate) locked: bool,
    /// `--offline`.
    pub(crate) offline: bool,
}

impl CargoFlags {
    /// The flags as cargo's arguments; destructured in full so that a new flag cannot be left out.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let CargoFlags {
            features,
            all_features,
            no_default_features,
            release,
            profile,
            locked,
            offline,
        } = self;
        let mut args = Vec::new();
        for feature in features {
            args.push("--features".to_owned());
            args.push(feature.clone());
        }
        let switches = [
            (*all_features, "--all-features"),
            (*no_default_features, "--no-default-features"),
            (*release, "--release"),
        ];
        args.extend(
            switches
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, flag)| (*flag).to_owned()),
        );
        if let Some(profile) = profile {
            args.push("--profile".to_owned());
            args.push(profile.clone());
        }
        let switches = [(*locked, "--locked"), (*offline, "--offline")];
        args.extend(
            switches
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, flag)| (*flag).to_owned()),
        );
        args
    }

    /// The cargo profile these flags select (`dev` by default, as cargo).
    pub(crate) fn profile_name(&self) -> &str {
        match (&self.profile, self.release) {
            (Some(profile), _) => profile,
            (None, true) => "release",
            (None, false) => "dev",
        }
    }
}

/// How the user's cargo is run: which program (`CARGO`, as cargo sets it for subcommands), on which manifest, with
/// which flags and verbosity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cargo {
    /// The cargo program.
    pub(crate) program: OsString,
    /// `--manifest-path`, passed through.
    pub(crate) manifest_path: Option<PathBuf>,
    /// Forwarded flags.
    pub(crate) flags: CargoFlags,
    /// `-q`: cargo stays quiet too.
    pub(crate) quiet: bool,
    /// `-v` count, passed on to cargo.
    pub(crate) verbose: u8,
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompileRequest {
    /// The cargo to run.
    pub(crate) cargo: Cargo,
    /// Packages and, for each, the bin targets to build.
    pub(crate) targets: BTreeMap<String, Vec<String>>,
}

/// A built executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Executable {
    /// The bin target's name.
    pub(crate) target: String,
    /// The file cargo produced.
    pub(crate) path: PathBuf,
    /// Its ELF program interpreter (the loader a dynamically linked binary needs), read once here.
    pub(crate) interpreter: Option<String>,
    /// The machine it runs on, read once here (`None` only before cargo ran, as in `--dry-run`).
    pub(crate) machine: Option<Machine>,
}

/// What cargo produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Artifacts {
    /// Every executable of a bin target, keyed by (package name, target name).
    pub(crate) executables: BTreeMap<(String, String), Executable>,
}

/// Why cargo could not read the workspace or give us the binaries.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CargoError {
    /// `cargo metadata` failed; its stderr says why.
    #[error("`cargo metadata` failed:\n{stderr}")]
    Metadata {
        /// Cargo's messages.
        stderr: String,
    },
    /// `cargo metadata` ran but its output could not be read.
    #[error("failed to read the workspace with `cargo metadata`: {0}")]
    MetadataOutput(cargo_metadata::Error),
    /// `cargo check`, which runs the build scripts that declare images, did not start or its output broke off.
    #[error("failed to run `cargo check`: {0}")]
    Check(std::io::Error),
    /// `cargo check` printed something that is not a cargo message.
    #[error("failed to read cargo's output: {0}")]
    CheckOutput(std::io::Error),
    /// A build script that uses `hive-build` did not run.
    #[error(
        "the build script of package `{package}` did not run: `cargo check` failed ({status}) before it finished"
    )]
    ScriptDidNotRun {
        /// Its package.
        package: String,
        /// How cargo exited.
        status: std::process::ExitStatus,
    },
    /// What a build script declared could not be read or understood.
    #[error("{0}")]
    ScriptOutput(String),
    /// Cargo did not start.
    #[error("failed to run cargo: {0}")]
    Spawn(std::io::Error),
    /// A built binary could not be read.
    #[error("cannot read the binary {path}: {source}")]
    Read {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something other than an executable is at the artifact path: an image of it could not start.
    #[error(
        "cargo's artifact {path} is {reason}: an image needs a regular, non-empty ELF executable there, or it \
         cannot start. Check what replaced it (a build script, a wrapper around cargo, another build in the same \
         target dir) and build again"
    )]
    NotABinary {
        /// The artifact path.
        path: PathBuf,
        /// What is there instead.
        reason: NotABinary,
    },
    /// Cargo failed; its diagnostics are already on stderr.
    #[error("cargo build failed ({0}); see cargo's messages above")]
    Failed(String),
}

/// The cargo command line for `request` (without the program).
pub(crate) fn cargo_args(request: &CompileRequest) -> Vec<String> {
    let mut args = vec![
        "build".to_owned(),
        "--message-format=json-render-diagnostics".to_owned(),
    ];
    if request.cargo.quiet {
        args.push("--quiet".to_owned());
    }
    for _ in 0..request.cargo.verbose {
        args.push("--verbose".to_owned());
    }
    if let Some(manifest) = &request.cargo.manifest_path {
        args.push("--manifest-path".to_owned());
        args.push(manifest.display().to_string());
    }
    for (package, bins) in &request.targets {
        args.push("--package".to_owned());
        args.push(package.clone());
        for bin in bins {
            args.push("--bin".to_owned());
            args.push(bin.clone());
        }
    }
    args.extend(request.cargo.flags.to_args());
    args
}

/// Runs cargo and collects the executables.
pub(crate) async fn build(request: &CompileRequest, cwd: &Path) -> Result<Artifacts, CargoError> {
    let mut command = Command::new(&request.cargo.program);
    command
        .args(cargo_args(request))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // Its own process group: a signal, or a cancelled build dropping this future, ends rustc and build scripts too.
    let (mut child, group) =
        crate::interrupt::spawn_async(&mut command).map_err(CargoError::Spawn)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut artifacts = Artifacts::default();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some((package, executable)) = parse_artifact(&line) {
            artifacts
                .executables
                .insert((package, executable.target.clone()), executable);
        }
    }
    let status = child.wait().await.map_err(CargoError::Spawn)?;
    group.reaped();
    if !status.success() {
        return Err(CargoError::Failed(status.to_string()));
    }
    // Checked before anything connects: an image of anything but an executable could never start.
    for executable in artifacts.executables.values_mut() {
        let path = executable.path.clone();
        let binary = elf::inspect(&path).map_err(|err| match err {
            InspectError::NotABinary(reason) => CargoError::NotABinary { path, reason },
            InspectError::Io(source) => CargoError::Read { path, source },
        })?;
        executable.interpreter = binary.interpreter;
        executable.machine = Some(binary.machine);
    }
    Ok(artifacts)
}

/// The package name and executable of one `compiler-artifact` message, if the line is one for a bin target.
fn parse_artifact(line: &str) -> Option<(String, Executable)> {
    // Anything else cargo prints (other messages, a wrapper's text) is not ours to read.
    let Ok(Message::CompilerArtifact(artifact)) = serde_json::from_str(line) else {
        return None;
    };
    if !artifact.target.is_bin() {
        return None;
    }
    let executable = Executable {
        target: artifact.target.name,
        path: artifact.executable?.into_std_path_buf(),
        interpreter: None,
        machine: None,
    };
    Some((package_name(&artifact.package_id)?, executable))
}

/// The package name in a package id. cargo_metadata keeps ids opaque; cargo's are `…#name@version`, or
/// `…/name#version` when the name equals the directory's.
fn package_name(id: &PackageId) -> Option<String> {
    let (location, fragment) = id.repr.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _version)) => Some(name.to_owned()),
        None => location.rsplit('/').next().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bin_artifacts_only() {
        // Real messages, as cargo 1.9x prints them.
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///ws/hello#0.1.0","manifest_path":"/ws/hello/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"hello","src_path":"/ws/hello/src/main.rs","edition":"2024","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/ws/target/debug/hello"],"executable":"/ws/target/debug/hello","fresh":true}"#;
        let lib = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0","manifest_path":"/x/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"serde","src_path":"/x/src/lib.rs","edition":"2021","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"0","debuginfo":0,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/ws/target/debug/deps/libserde.rlib"],"executable":null,"fresh":false}"#;
        let renamed = r#"{"reason":"compiler-artifact","package_id":"path+file:///ws/crates/api#api-server@0.2.0","manifest_path":"/ws/crates/api/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"api","src_path":"/ws/crates/api/src/main.rs","edition":"2024","doc":true,"doctest":false,"test":true},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/ws/target/debug/api"],"executable":"/ws/target/debug/api","fresh":false}"#;
        let (package, executable) = parse_artifact(bin).unwrap();
        assert_eq!(executable.path, PathBuf::from("/ws/target/debug/hello"));
        assert_eq!(executable.target, "hello");
        assert_eq!(package, "hello");
        assert!(parse_artifact(lib).is_none());
        assert_eq!(parse_artifact(renamed).unwrap().0, "api-server");
        assert!(parse_artifact(r#"{"reason":"build-finished","success":true}"#).is_none());
        assert!(parse_artifact("not json: a wrapper's own line").is_none());
    }

    #[test]
    fn every_flag_is_forwarded() {
        let flags = CargoFlags {
            features: vec!["a,b".into()],
            all_features: true,
            no_default_features: true,
            release: false,
            profile: Some("bench".into()),
            locked: true,
            offline: true,
        };
        assert_eq!(
            flags.to_args().join(" "),
            "--features a,b --all-features --no-default-features --profile bench \
             --locked --offline"
        );
        assert_eq!(flags.profile_name(), "bench");
        assert_eq!(CargoFlags::default().profile_name(), "dev");
    }

    #[test]
    fn command_line_forwards_everything() {
        let request = CompileRequest {
            cargo: Cargo {
                manifest_path: Some("/ws/Cargo.toml".into()),
                flags: CargoFlags {
                    release: true,
                    locked: true,
                    ..Default::default()
                },
                ..Default::default()
            },
            targets: BTreeMap::from([("a".into(), vec!["a1".into()]), ("b".into(), vec![])]),
        };
        assert_eq!(
            cargo_args(&request).join(" "),
            "build --message-format=json-render-diagnostics --manifest-path /ws/Cargo.toml --package a --bin a1 \
             --package b --release --locked"
        );
    }
}
