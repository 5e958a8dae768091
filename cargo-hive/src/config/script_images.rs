//! Runs the build scripts that use `hive-build` and reads back what they declared.
//!
//! `cargo check --message-format=json-render-diagnostics` runs build scripts with the user's feature and compilation
//! flags; each `build-script-executed` message carries the script's `rustc-env` lines, among them
//! `HIVE_BUILD_IMAGES=<OUT_DIR>/hive-images.json` when the script called `emit`. Packages without such a build
//! script cost nothing: cargo is not run at all when none has one.

use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use cargo_metadata::Message;
use hive_build::{BuildScriptOutput, OUTPUT_ENV, OUTPUT_FORMAT_VERSION, OUTPUT_MAX_BYTES};

use crate::cargo::{Cargo, CargoError};
use crate::config::ScriptTargets;
use crate::config::diagnostic::file_kind;
use crate::config::workspace::Workspace;

/// What one package's build script emitted when cargo ran it for one target triple.
#[derive(Debug)]
pub(crate) struct ScriptOutput {
    /// Index into [`Workspace::packages`].
    pub(crate) package: usize,
    /// The triple it ran for.
    pub(crate) target: String,
    pub(crate) output: BuildScriptOutput,
}

/// The members whose build script uses `hive-build`, by index.
pub(crate) fn users(workspace: &Workspace) -> impl Iterator<Item = usize> + '_ {
    (0..workspace.packages.len()).filter(|i| workspace.packages[*i].uses_hive_build)
}

/// Runs the build scripts of every member that uses `hive-build`, once per triple of `targets` (cargo runs a
/// build script once per `--target`).
///
/// All of them, not only the selected packages': a `hive:` base or a duplicate image name can involve any member,
/// and the set of images must not depend on the selection.
pub(crate) fn run(
    workspace: &Workspace,
    cargo: &Cargo,
    targets: ScriptTargets<'_>,
) -> Result<Vec<ScriptOutput>, CargoError> {
    let users: Vec<usize> = users(workspace).collect();
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let mut command = Command::new(&cargo.program);
    command
        .arg("check")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&workspace.root_manifest)
        .args(cargo.flags.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // cargo's own errors (a failing build script) reach the user; `--quiet` drops only its progress.
        .stderr(Stdio::inherit());
    if cargo.quiet {
        command.arg("--quiet");
    }
    if targets.pass_target {
        for triple in targets.triples {
            command.arg("--target").arg(triple);
        }
    }
    for index in &users {
        command
            .arg("--package")
            .arg(&workspace.packages[*index].name);
    }
    // Its own process group: a signal ends cargo with its build scripts (see `interrupt`).
    let (mut child, group) =
        crate::interrupt::spawn_blocking(&mut command).map_err(CargoError::Check)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // One message per package and triple: each output file with the script's out dir.
    let mut files: Vec<Vec<(String, String)>> = vec![Vec::new(); users.len()];
    let mut ran = vec![false; users.len()];
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let message = message.map_err(CargoError::CheckOutput)?;
        let Message::BuildScriptExecuted(script) = message else {
            continue;
        };
        let Some(slot) = users
            .iter()
            .position(|index| workspace.packages[*index].id == script.package_id.repr)
        else {
            continue;
        };
        ran[slot] = true;
        if let Some((_, path)) = script.env.iter().find(|(name, _)| name == OUTPUT_ENV) {
            files[slot].push((path.clone(), script.out_dir.to_string()));
        }
    }
    // A compile error in the crate itself does not matter here: its build script ran before it.
    let status = child.wait().map_err(CargoError::Check)?;
    group.reaped();
    let mut outputs = Vec::new();
    for (slot, index) in users.iter().enumerate() {
        let package = &workspace.packages[*index];
        if !ran[slot] {
            return Err(CargoError::ScriptDidNotRun {
                package: package.name.clone(),
                status,
            });
        }
        for (path, out_dir) in &files[slot] {
            let output = read_script_output(&package.name, path)?;
            let target = match &output.target {
                Some(target) => target.clone(),
                None => run_target(targets, out_dir).ok_or_else(|| {
                    CargoError::ScriptOutput(format!(
                        "cannot tell which target the build script of `{}` ran for ({out_dir}): update its \
                         hive-build",
                        package.name
                    ))
                })?,
            };
            outputs.push(ScriptOutput {
                package: *index,
                target,
                output,
            });
        }
    }
    Ok(outputs)
}

/// The triple a script ran for, from its out dir (`<target dir>/<triple>/<profile>/build/…` with `--target`).
fn run_target(targets: ScriptTargets<'_>, out_dir: &str) -> Option<String> {
    if !targets.pass_target {
        return targets.triples.iter().next().cloned();
    }
    Path::new(out_dir)
        .components()
        .filter_map(|part| part.as_os_str().to_str())
        .find(|part| targets.triples.contains(*part))
        .map(str::to_owned)
}

/// Reads and checks one output file of `package`'s build script.
fn read_script_output(package: &str, path: &str) -> Result<BuildScriptOutput, CargoError> {
    let text = read_output(Path::new(path)).map_err(|err| {
        CargoError::ScriptOutput(format!(
            "failed to read the images of `{package}`'s build script from {path} ({OUTPUT_ENV}): {err}"
        ))
    })?;
    let output: BuildScriptOutput = serde_json::from_slice(&text).map_err(|err| {
        CargoError::ScriptOutput(format!(
            "the images of `{package}`'s build script in {path} are not valid: {err}"
        ))
    })?;
    if output.format_version > OUTPUT_FORMAT_VERSION {
        return Err(CargoError::ScriptOutput(format!(
            "the build script of `{package}` uses a newer hive-build (output format {}) than this cargo-hive reads \
             ({}); update cargo-hive",
            output.format_version, OUTPUT_FORMAT_VERSION
        )));
    }
    Ok(output)
}

/// Why a build script's output file could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// A FIFO would block and a device (`/dev/zero`) would never end: only regular files are read.
    #[error("it is {0}, not a regular file (hive-build writes one with `Images::emit`)")]
    NotAFile(&'static str),
    #[error("it is larger than {} MiB, the most cargo hive reads", OUTPUT_MAX_BYTES / (1024 * 1024))]
    TooLarge,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The output file's bytes: only a regular file, and at most [`OUTPUT_MAX_BYTES`] of it.
fn read_output(path: &Path) -> Result<Vec<u8>, ReadError> {
    // Checked before opening: opening a FIFO for reading blocks until a writer comes.
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile(file_kind(metadata.file_type())));
    }
    if metadata.len() > OUTPUT_MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    // The file may grow after the check; never read more than the cap.
    std::fs::File::open(path)?
        .take(OUTPUT_MAX_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > OUTPUT_MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_up_to_the_cap_are_read() {
        let err = read_output(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it is a character device, not a regular file (hive-build writes one with `Images::emit`)"
        );
        let err = read_output(Path::new("/")).unwrap_err();
        assert!(err.to_string().starts_with("it is a directory,"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(OUTPUT_MAX_BYTES + 1).unwrap();
        assert!(matches!(read_output(&big), Err(ReadError::TooLarge)));
        file.set_len(OUTPUT_MAX_BYTES).unwrap();
        assert_eq!(read_output(&big).unwrap().len() as u64, OUTPUT_MAX_BYTES);
    }
}
