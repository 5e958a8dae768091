//! The user's cargo: the flags forwarded to it, how it is run, and what can go wrong. [`compile`] runs the one
//! build of the binaries for every target triple; [`toolchain`] checks, before that, that the triples are installed.

mod compile;
mod early;
mod toolchain;

#[cfg(test)]
mod test_scripts;

use std::ffi::OsString;
use std::path::PathBuf;

use cargo_metadata::PackageId;

use crate::elf::NotABinary;

pub(crate) use compile::{ArtifactKey, CompileRequest, Executable, LinkerHint, build, cargo_args};
pub(crate) use early::{EarlyRun, remember as remember_run, run_memory};
pub(crate) use toolchain::{
    NeededTarget, TargetsFound, ToolchainError, check_targets_installed, host_default_triple,
    sysroot_memory,
};

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
    /// The rustc program (`RUSTC`, else `rustc`), asked for its sysroot.
    pub(crate) rustc: OsString,
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
    /// Cargo failed to link for cross targets; its diagnostics are already on stderr.
    #[error(
        "cargo build failed to link ({status}); see cargo's messages above{}",
        .hints.iter().map(|hint| format!("\nhint: {hint}")).collect::<String>()
    )]
    LinkFailed {
        /// How cargo exited.
        status: String,
        /// One per cross triple of the run.
        hints: Vec<LinkerHint>,
    },
    /// Cargo's target dir could not be resolved after the build.
    #[error("cannot resolve cargo's target dir {path}: {source}")]
    TargetDir {
        /// The target dir, as `cargo metadata` named it.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An executable cargo reported could not be matched to the target triple it was built for.
    #[error("cannot tell which target cargo built {path} for: {why}")]
    UnplacedArtifact {
        /// The artifact path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A needed target is not installed, or the toolchain could not be asked.
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
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
}
