//! Which Rust targets the user's toolchain can build, found before cargo runs: a missing standard library for a
//! cross target is named with the `rustup` command that installs it, instead of surfacing as a pile of
//! `can't find crate for std` errors minutes into a build.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Cargo;

/// The target triple this `cargo hive` was built for: what cargo builds when no `--target` is passed (the usual
/// case; a `build.target` in the user's cargo configuration is caught when artifacts are placed).
pub(crate) fn host_default_triple() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_env = "musl")) {
        "x86_64-unknown-linux-musl"
    } else if cfg!(target_arch = "x86_64") {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_env = "musl")) {
        "aarch64-unknown-linux-musl"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else if cfg!(target_arch = "arm") {
        "armv7-unknown-linux-gnueabihf"
    } else if cfg!(target_arch = "x86") {
        "i686-unknown-linux-gnu"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64gc-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "powerpc64le-unknown-linux-gnu"
    } else if cfg!(target_arch = "s390x") {
        "s390x-unknown-linux-gnu"
    } else {
        "unknown"
    }
}

/// A target triple a build needs, and what for (said in the error when it is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeededTarget {
    /// The Rust target triple.
    pub(crate) triple: String,
    /// What needs it, e.g. "linux/arm64 of image `api`".
    pub(crate) needed_for: String,
}

/// One target that is not installed, with everything that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissingTarget {
    /// The Rust target triple.
    pub(crate) triple: String,
    /// What needs it, in the order asked.
    pub(crate) needed_for: Vec<String>,
}

impl fmt::Display for MissingTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target `{triple}` is not installed (needed for {needed_for}): run `rustup target add {triple}`",
            triple = self.triple,
            needed_for = self.needed_for.join(", "),
        )
    }
}

/// Why the toolchain cannot build the targets a build needs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolchainError {
    /// rustc could not be started.
    #[error(
        "failed to run `{program} --print sysroot` to find the installed Rust targets: {source}"
    )]
    Spawn {
        /// The rustc program (`RUSTC`, else `rustc`).
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// rustc ran but did not name its sysroot.
    #[error(
        "`{program} --print sysroot` failed ({status}), so the installed Rust targets are unknown: {stderr}"
    )]
    Sysroot {
        /// The rustc program.
        program: String,
        /// How it exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// Targets whose standard library is not in the sysroot; all of them, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    NotInstalled(Vec<MissingTarget>),
}

/// How the installed targets were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetsFound {
    /// Only the host's target (or custom target JSONs) is needed: nothing to look for.
    NothingToCheck,
    /// In the sysroot rustc named now.
    Asked,
    /// In the sysroot rustc named for the same program and directory last time, without running it: a toolchain
    /// switched since can only make cargo fail, after which [`check_targets_installed`] is asked again without it.
    Remembered,
}

/// Checks that every needed cross target has its standard library in the sysroot of the toolchain that cargo will
/// use in `cwd` (so `rust-toolchain.toml` applies). Runs rustc only when some triple is not the host's default,
/// and not at all when the sysroot remembered in `memory` (for the same rustc and directory) has every target;
/// what rustc names is remembered there.
pub(crate) fn check_targets_installed(
    cargo: &Cargo,
    needed: &[NeededTarget],
    cwd: &Path,
    memory: Option<&Path>,
) -> Result<TargetsFound, ToolchainError> {
    let checked: Vec<&NeededTarget> = needed
        .iter()
        .filter(|need| needs_check(&need.triple))
        .collect();
    if checked.is_empty() {
        return Ok(TargetsFound::NothingToCheck);
    }
    let remembered = memory.and_then(|path| Remembered::read(path, &cargo.rustc, cwd));
    if let Some(sysroot) = remembered
        && missing_targets(&sysroot, checked.iter().copied()).is_empty()
    {
        return Ok(TargetsFound::Remembered);
    }
    let sysroot = sysroot(&cargo.rustc, cwd)?;
    if let Some(path) = memory {
        Remembered::write(path, &cargo.rustc, cwd, &sysroot);
    }
    let missing = missing_targets(&sysroot, checked.into_iter());
    if missing.is_empty() {
        Ok(TargetsFound::Asked)
    } else {
        Err(ToolchainError::NotInstalled(missing))
    }
}

/// The host's target is always installed; a custom target JSON has no standard library to find (it is built
/// with `build-std`, or fails in cargo with its own message).
fn needs_check(triple: &str) -> bool {
    triple != host_default_triple() && !triple.ends_with(".json")
}

/// The sysroot rustc named last, for which rustc program and directory (`target/hive/.fresh/.sysroot.json`): rustc takes
/// tens of milliseconds of CPU to say it, every build.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Remembered {
    rustc: PathBuf,
    dir: PathBuf,
    sysroot: PathBuf,
}

impl Remembered {
    fn read(path: &Path, rustc: &OsString, cwd: &Path) -> Option<PathBuf> {
        let text = std::fs::read_to_string(path).ok()?;
        let remembered: Remembered = serde_json::from_str(&text).ok()?;
        (remembered.rustc.as_os_str() == rustc && remembered.dir == cwd)
            .then_some(remembered.sysroot)
    }

    /// Remembers atomically; failing to only costs the next build a rustc run.
    fn write(path: &Path, rustc: &OsString, cwd: &Path, sysroot: &Path) {
        let remembered = Remembered {
            rustc: PathBuf::from(rustc),
            dir: cwd.to_path_buf(),
            sysroot: sysroot.to_path_buf(),
        };
        let text = serde_json::to_string(&remembered).expect("a sysroot record serializes");
        crate::state::keep(path, &text);
    }
}

/// Where the sysroot rustc named last is remembered: with the up-to-date records, as state of this checkout's
/// builds (`.sysroot` cannot be an image's name).
pub(crate) fn sysroot_memory(target_dir: &Path) -> PathBuf {
    target_dir.join("hive").join(".fresh").join(".sysroot.json")
}

/// `rustc --print sysroot`, run where cargo runs.
fn sysroot(rustc: &OsString, cwd: &Path) -> Result<PathBuf, ToolchainError> {
    let program = rustc.to_string_lossy().into_owned();
    let mut command = std::process::Command::new(rustc);
    command.args(["--print", "sysroot"]).current_dir(cwd);
    let output =
        crate::interrupt::output(&mut command).map_err(|source| ToolchainError::Spawn {
            program: program.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = stdout.trim();
    if !output.status.success() || path.is_empty() {
        return Err(ToolchainError::Sysroot {
            program,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(PathBuf::from(path))
}

/// The needed targets without a standard library under `sysroot`, grouped by triple in the order first asked.
fn missing_targets<'a>(
    sysroot: &Path,
    needed: impl Iterator<Item = &'a NeededTarget>,
) -> Vec<MissingTarget> {
    let mut missing: Vec<MissingTarget> = Vec::new();
    for need in needed {
        if let Some(known) = missing.iter_mut().find(|known| known.triple == need.triple) {
            if !known.needed_for.contains(&need.needed_for) {
                known.needed_for.push(need.needed_for.clone());
            }
            continue;
        }
        if !has_std(sysroot, &need.triple) {
            missing.push(MissingTarget {
                triple: need.triple.clone(),
                needed_for: vec![need.needed_for.clone()],
            });
        }
    }
    missing
}

/// Whether `<sysroot>/lib/rustlib/<triple>/lib` holds the target's `std` (or, for a `no_std` target, `core`).
fn has_std(sysroot: &Path, triple: &str) -> bool {
    let dir = sysroot.join("lib").join("rustlib").join(triple).join("lib");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        (name.starts_with("libstd-") || name.starts_with("libcore-")) && name.ends_with(".rlib")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(triple: &str, needed_for: &str) -> NeededTarget {
        NeededTarget {
            triple: triple.into(),
            needed_for: needed_for.into(),
        }
    }

    /// A sysroot with `std` for x86_64 musl, only `core` for a bare-metal target, and an empty aarch64 gnu dir.
    fn fake_sysroot() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let rustlib = root.path().join("lib/rustlib");
        for (triple, file) in [
            ("x86_64-unknown-linux-musl", Some("libstd-0123abcd.rlib")),
            ("thumbv7em-none-eabihf", Some("libcore-4567ef.rlib")),
            ("aarch64-unknown-linux-gnu", None),
        ] {
            let lib = rustlib.join(triple).join("lib");
            std::fs::create_dir_all(&lib).unwrap();
            if let Some(file) = file {
                std::fs::write(lib.join(file), b"").unwrap();
            }
        }
        root
    }

    #[test]
    fn finds_std_or_core_in_the_sysroot() {
        let root = fake_sysroot();
        assert!(has_std(root.path(), "x86_64-unknown-linux-musl"));
        assert!(has_std(root.path(), "thumbv7em-none-eabihf"));
        assert!(!has_std(root.path(), "aarch64-unknown-linux-gnu"));
        assert!(!has_std(root.path(), "riscv64gc-unknown-linux-gnu"));
    }

    #[test]
    fn every_missing_target_is_named_once_with_all_that_need_it() {
        let root = fake_sysroot();
        let needed = [
            need("aarch64-unknown-linux-gnu", "linux/arm64 of image `api`"),
            need("x86_64-unknown-linux-musl", "linux/amd64 of image `api`"),
            need(
                "riscv64gc-unknown-linux-gnu",
                "linux/riscv64 of image `api`",
            ),
            need("aarch64-unknown-linux-gnu", "linux/arm64 of image `web`"),
        ];
        let missing = missing_targets(root.path(), needed.iter());
        let error = ToolchainError::NotInstalled(missing).to_string();
        assert_eq!(
            error,
            "target `aarch64-unknown-linux-gnu` is not installed (needed for linux/arm64 of image `api`, \
             linux/arm64 of image `web`): run `rustup target add aarch64-unknown-linux-gnu`\n\
             target `riscv64gc-unknown-linux-gnu` is not installed (needed for linux/riscv64 of image `api`): run \
             `rustup target add riscv64gc-unknown-linux-gnu`"
        );
    }

    #[test]
    fn rustc_runs_only_for_targets_other_than_the_host() {
        // A rustc that cannot run proves it was not asked.
        let cargo = Cargo {
            rustc: "/nonexistent/rustc".into(),
            ..Default::default()
        };
        let cwd = std::env::temp_dir();
        assert!(check_targets_installed(&cargo, &[], &cwd, None).is_ok());
        let host_only = [
            need(host_default_triple(), "linux/amd64 of image `api`"),
            need("/x/custom.json", "linux/amd64 of image `api`"),
        ];
        assert!(check_targets_installed(&cargo, &host_only, &cwd, None).is_ok());
        let cross = [need(
            "aarch64-unknown-linux-gnu",
            "linux/arm64 of image `api`",
        )];
        let error = check_targets_installed(&cargo, &cross, &cwd, None).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "failed to run `/nonexistent/rustc --print sysroot` to find the installed Rust targets: "
            ),
            "{error}"
        );
    }

    /// A rustc that answers `--print sysroot` with `sysroot` (or fails), counting its runs in `<dir>/runs`.
    fn counting_rustc(dir: &Path, sysroot: Option<&Path>) -> OsString {
        let answer = match sysroot {
            Some(path) => format!("echo {}", path.display()),
            None => "echo 'no sysroot here' >&2; exit 3".to_owned(),
        };
        crate::cargo::test_scripts::counting(dir, "rustc", &answer)
    }

    use crate::cargo::test_scripts::runs;

    #[test]
    fn a_remembered_sysroot_spares_rustc_while_it_has_every_target() {
        let root = fake_sysroot();
        let dir = tempfile::tempdir().unwrap();
        let memory = dir.path().join("hive/.sysroot.json");
        let cargo = Cargo {
            rustc: counting_rustc(dir.path(), Some(root.path())),
            ..Default::default()
        };
        let installed = [need(
            "x86_64-unknown-linux-musl",
            "linux/amd64 of image `api`",
        )];
        let check = |needed: &[NeededTarget], cwd: &Path| {
            check_targets_installed(&cargo, needed, cwd, Some(&memory))
        };
        assert_eq!(check(&installed, dir.path()).unwrap(), TargetsFound::Asked);
        assert_eq!(
            check(&installed, dir.path()).unwrap(),
            TargetsFound::Remembered
        );
        assert_eq!(runs(dir.path()), 1);
        // A target the remembered sysroot lacks is looked for in what rustc names now.
        let missing = [need(
            "aarch64-unknown-linux-gnu",
            "linux/arm64 of image `api`",
        )];
        let error = check(&missing, dir.path()).unwrap_err();
        assert!(matches!(error, ToolchainError::NotInstalled(ref m) if m.len() == 1));
        assert_eq!(runs(dir.path()), 2);
        // Elsewhere (another directory, so maybe another toolchain file), rustc is asked again.
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(
            check(&installed, elsewhere.path()).unwrap(),
            TargetsFound::Asked
        );
        assert_eq!(runs(dir.path()), 3);
        // Without the memory, rustc is always asked.
        let asked = check_targets_installed(&cargo, &installed, elsewhere.path(), None);
        assert_eq!(asked.unwrap(), TargetsFound::Asked);
        assert_eq!(runs(dir.path()), 4);
    }

    #[test]
    fn a_failing_rustc_is_reported_and_nothing_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let memory = dir.path().join(".sysroot.json");
        let cargo = Cargo {
            rustc: counting_rustc(dir.path(), None),
            ..Default::default()
        };
        let cross = [need(
            "aarch64-unknown-linux-gnu",
            "linux/arm64 of image `api`",
        )];
        let error = check_targets_installed(&cargo, &cross, dir.path(), Some(&memory)).unwrap_err();
        assert!(
            error.to_string().contains("--print sysroot` failed")
                && error.to_string().contains("no sysroot here"),
            "{error}"
        );
        assert!(!memory.exists());
    }

    #[test]
    fn the_real_toolchain_has_the_host_target() {
        let cargo = Cargo {
            rustc: "rustc".into(),
            ..Default::default()
        };
        let sysroot = sysroot(&cargo.rustc, &std::env::temp_dir()).unwrap();
        assert!(
            has_std(&sysroot, host_default_triple()),
            "{}",
            sysroot.display()
        );
        let bogus = [need("sparc-nonexistent-none", "linux/sparc of image `x`")];
        let error =
            check_targets_installed(&cargo, &bogus, &std::env::temp_dir(), None).unwrap_err();
        assert!(matches!(error, ToolchainError::NotInstalled(ref missing) if missing.len() == 1));
    }
}
