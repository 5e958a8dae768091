//! One cargo run for every target triple the images need. Executables come from cargo's `compiler-artifact`
//! messages (never by guessing `target/` paths) and are placed on their triple by where cargo put them under the
//! target dir. Compiler messages are read too, to tell a link failure apart, and printed as cargo renders them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Component, Path, PathBuf};

use cargo_metadata::Message;

use super::early::{CargoRun, EarlyRun};
use super::{Cargo, CargoError, host_default_triple, package_name};
use crate::elf::{self, InspectError, Machine};

/// What to build, for which target triples.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompileRequest {
    /// The cargo to run.
    pub(crate) cargo: Cargo,
    /// Packages and, for each, the bin targets to build.
    pub(crate) targets: BTreeMap<String, Vec<String>>,
    /// The Rust target triples to build for.
    pub(crate) triples: Vec<String>,
    /// Whether to pass `--target` (one per triple). Without it there is exactly one triple, the host's, and
    /// `target/<profile>` stays shared with a plain `cargo build`.
    pub(crate) pass_target: bool,
    /// cargo's target dir (`cargo metadata`'s `target_directory`, which honours `CARGO_TARGET_DIR` and
    /// `build.target-dir`).
    pub(crate) target_dir: PathBuf,
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

/// Which executable: a bin target of a package, built for a target triple.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ArtifactKey {
    /// The package name.
    pub(crate) package: String,
    /// The bin target's name.
    pub(crate) bin: String,
    /// The Rust target triple it was built for.
    pub(crate) triple: String,
}

/// What cargo produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Artifacts {
    /// Every executable of a bin target, per triple.
    pub(crate) executables: BTreeMap<ArtifactKey, Executable>,
}

/// How to get a cross target linked: said when a cargo run with cross targets failed to link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkerHint {
    /// The cross target triple.
    pub(crate) triple: String,
}

impl fmt::Display for LinkerHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let triple = &self.triple;
        let variable = format!(
            "CARGO_TARGET_{}_LINKER",
            triple.to_uppercase().replace(['-', '.'], "_")
        );
        write!(
            f,
            "to link for {triple}, cargo needs a linker for that target: set `target.{triple}.linker` in \
             .cargo/config.toml or {variable}"
        )?;
        if triple.contains("-musl") {
            write!(f, " (musl targets can use rust-lld)")
        } else if let Some(gnu) = debian_gnu_triple(triple) {
            write!(
                f,
                " (Debian: gcc-{gnu} provides {gnu}-gcc; musl targets can use rust-lld)"
            )
        } else {
            Ok(())
        }
    }
}

/// The GNU triple Debian names its cross compilers by (`gcc-aarch64-linux-gnu`), for a Linux glibc Rust triple.
fn debian_gnu_triple(triple: &str) -> Option<String> {
    let (arch, rest) = triple.split_once('-')?;
    let env = rest.strip_prefix("unknown-linux-")?;
    if !env.starts_with("gnu") {
        return None;
    }
    let arch = match arch {
        "armv7" => "arm",
        "riscv64gc" => "riscv64",
        other => other,
    };
    Some(format!("{arch}-linux-{env}"))
}

/// The `--message-format` for a run: compiler messages as JSON (to see link failures), their rendered text with
/// colours only when it goes to a terminal, as cargo would show it.
fn message_format(ansi: bool) -> &'static str {
    if ansi {
        "--message-format=json-diagnostic-rendered-ansi"
    } else {
        "--message-format=json"
    }
}

/// The cargo command line for `request` (without the program); `ansi` as in [`message_format`].
pub(crate) fn cargo_args(request: &CompileRequest, ansi: bool) -> Vec<String> {
    let mut args = vec!["build".to_owned(), message_format(ansi).to_owned()];
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
    if request.pass_target {
        for triple in &request.triples {
            args.push("--target".to_owned());
            args.push(triple.clone());
        }
    }
    args.extend(request.cargo.flags.to_args());
    args
}

/// What one run's output said that we need.
#[derive(Debug, Default)]
struct RunOutput {
    /// (package, executable) of every bin artifact, not yet placed on a triple.
    built: Vec<(String, Executable)>,
    /// Whether some compiler error was a link failure.
    link_failed: bool,
}

impl RunOutput {
    /// Reads one line of cargo's stdout; compiler messages are printed to `diagnostics` as cargo renders them.
    fn read_line(&mut self, line: &str, diagnostics: &mut impl Write) {
        // Anything else cargo prints (other messages, a wrapper's text) is not ours to read.
        match serde_json::from_str(line) {
            Ok(Message::CompilerArtifact(artifact)) => {
                if let Some(built) = bin_artifact(artifact) {
                    self.built.push(built);
                }
            }
            Ok(Message::CompilerMessage(message)) => {
                let diagnostic = message.message;
                if let Some(rendered) = &diagnostic.rendered {
                    // A closed stderr must not stop the build; cargo would not stop either.
                    let _ = diagnostics.write_all(rendered.as_bytes());
                }
                let error = matches!(
                    diagnostic.level,
                    cargo_metadata::diagnostic::DiagnosticLevel::Error
                );
                self.link_failed |= error && is_link_failure(&diagnostic.message);
            }
            _ => {}
        }
    }
}

/// The package name and executable of a bin target's artifact.
fn bin_artifact(artifact: cargo_metadata::Artifact) -> Option<(String, Executable)> {
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

/// Whether a rustc error message says linking failed: the linker ran and failed, or could not be found.
fn is_link_failure(message: &str) -> bool {
    (message.starts_with("linking with `") && message.contains("` failed"))
        || (message.starts_with("linker `") && message.ends_with("` not found"))
}

/// Runs cargo once for every triple and collects the executables: the `early` run when it is the one the
/// request asks for, else a run of its own.
pub(crate) async fn build(
    request: &CompileRequest,
    cwd: &Path,
    early: Option<EarlyRun>,
) -> Result<Artifacts, CargoError> {
    debug_assert!(
        request.pass_target || request.triples.len() == 1,
        "a build without --target is for the one host triple"
    );
    let ansi = std::io::stderr().is_terminal();
    let args = cargo_args(request, ansi);
    let program = &request.cargo.program;
    let early = match early {
        Some(early) => early.take_if(program, cwd, &args).await,
        None => None,
    };
    let mut run = match early {
        Some(run) => run,
        None => CargoRun::start(program, cwd, &args, false).map_err(CargoError::Spawn)?,
    };
    let mut output = RunOutput::default();
    while let Some(line) = run.next_line().await {
        output.read_line(&line, &mut std::io::stderr().lock());
    }
    let status = run.wait().await.map_err(CargoError::Spawn)?;
    if !status.success() {
        return Err(failure(request, status.to_string(), output.link_failed));
    }
    let mut executables = place(request, output.built)?;
    // Checked before anything connects: an image of anything but an executable could never start.
    for executable in executables.values_mut() {
        inspect(executable)?;
    }
    Ok(Artifacts { executables })
}

/// The error of a failed run: with a linker hint per cross triple when it failed to link.
fn failure(request: &CompileRequest, status: String, link_failed: bool) -> CargoError {
    let hints: Vec<LinkerHint> = request
        .triples
        .iter()
        .filter(|triple| request.pass_target && triple.as_str() != host_default_triple())
        .map(|triple| LinkerHint {
            triple: triple.clone(),
        })
        .collect();
    if link_failed && !hints.is_empty() {
        CargoError::LinkFailed { status, hints }
    } else {
        CargoError::Failed(status)
    }
}

/// Reads the ELF facts of one executable.
fn inspect(executable: &mut Executable) -> Result<(), CargoError> {
    let path = executable.path.clone();
    let binary = elf::inspect(&path).map_err(|err| match err {
        InspectError::NotABinary(reason) => CargoError::NotABinary { path, reason },
        InspectError::Io(source) => CargoError::Read { path, source },
    })?;
    executable.interpreter = binary.interpreter;
    executable.machine = Some(binary.machine);
    Ok(())
}

/// Places each executable on its triple from its path: `<target_dir>/<triple>/<profile>/<bin>` when `--target`
/// was passed, `<target_dir>/<profile>/<bin>` (the one triple) otherwise. Paths are compared canonicalized, so a
/// symlinked or relative target dir still matches.
fn place(
    request: &CompileRequest,
    built: Vec<(String, Executable)>,
) -> Result<BTreeMap<ArtifactKey, Executable>, CargoError> {
    if built.is_empty() {
        return Ok(BTreeMap::new());
    }
    let target_dir = request
        .target_dir
        .canonicalize()
        .map_err(|source| CargoError::TargetDir {
            path: request.target_dir.clone(),
            source,
        })?;
    let mut executables = BTreeMap::new();
    for (package, executable) in built {
        let triple = triple_of(request, &target_dir, &executable.path)?;
        let key = ArtifactKey {
            package,
            bin: executable.target.clone(),
            triple,
        };
        executables.insert(key, executable);
    }
    Ok(executables)
}

/// The triple an artifact at `path` was built for; `target_dir` is canonical.
fn triple_of(
    request: &CompileRequest,
    target_dir: &Path,
    path: &Path,
) -> Result<String, CargoError> {
    let unplaced = |why: String| CargoError::UnplacedArtifact {
        path: path.to_path_buf(),
        why,
    };
    // The directory, not the file: what is at the artifact path (a dangling symlink, say) is the ELF check's to
    // explain.
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(unplaced("it is not a file path".to_owned()));
    };
    let canonical = dir
        .canonicalize()
        .map_err(|err| unplaced(format!("its directory cannot be read ({err})")))?
        .join(name);
    let relative = canonical.strip_prefix(target_dir).map_err(|_| {
        unplaced(format!(
            "it is not under cargo's target dir {}",
            target_dir.display()
        ))
    })?;
    let dirs: Vec<String> = relative
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    match (request.pass_target, dirs.as_slice()) {
        (false, [_profile]) => match request.triples.as_slice() {
            [triple] => Ok(triple.clone()),
            triples => Err(unplaced(format!(
                "cargo ran without `--target` for {} triples",
                triples.len()
            ))),
        },
        (false, [dir, _profile]) => Err(unplaced(format!(
            "cargo built it for `{dir}` without being asked (is `build.target` set in the cargo configuration?)"
        ))),
        (true, [dir, _profile]) => request
            .triples
            .iter()
            .find(|triple| target_dir_name(triple) == dir)
            .cloned()
            .ok_or_else(|| {
                unplaced(format!(
                    "`{dir}` is none of the requested targets ({})",
                    request.triples.join(", ")
                ))
            }),
        _ => Err(unplaced(format!(
            "its place under cargo's target dir {} is not `{}<profile>/<binary>`",
            target_dir.display(),
            if request.pass_target { "<triple>/" } else { "" }
        ))),
    }
}

/// The directory cargo builds a target in: the triple, or the file stem of a custom target's JSON.
fn target_dir_name(triple: &str) -> &str {
    if triple.ends_with(".json") {
        Path::new(triple)
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or(triple)
    } else {
        triple
    }
}

#[cfg(test)]
mod tests;
