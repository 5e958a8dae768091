//! The workspace as cargo sees it: members, their binaries and `[package]` fields, from `cargo metadata`, and which
//! of them `-p`, `--workspace` and `--exclude` select.

use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, MetadataCommand, TargetKind};

use crate::cargo::CargoError;
use crate::config::diagnostic::did_you_mean;
use crate::errors::HiveError;

/// Which packages and images a command is about: cargo's `-p`, `--workspace` and `--exclude`, and `--image`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Package specs (`name`, `name@version`).
    pub(crate) packages: Vec<String>,
    /// Every member.
    pub(crate) workspace: bool,
    /// Packages left out of `--workspace`.
    pub(crate) exclude: Vec<String>,
    /// Only these images, by name.
    pub(crate) images: Vec<String>,
    /// Only these platforms (`--platform`), as written.
    pub(crate) platforms: Vec<String>,
    /// Only the platforms built for these triples (`--target`).
    pub(crate) targets: Vec<String>,
}

impl Selection {
    /// Whether packages were named (`-p` or `--workspace`): then an image must belong to one of them.
    pub(crate) fn names_packages(&self) -> bool {
        self.workspace || !self.packages.is_empty()
    }
}

/// A workspace member.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: cargo_metadata::semver::Version,
    pub(crate) manifest_path: PathBuf,
    pub(crate) description: Option<String>,
    pub(crate) license: Option<String>,
    pub(crate) repository: Option<String>,
    pub(crate) homepage: Option<String>,
    /// Names of its `[[bin]]` targets.
    pub(crate) bins: Vec<String>,
    /// Whether it has a build script that build-depends on `hive-build` (and so may declare images).
    pub(crate) uses_hive_build: bool,
}

impl Package {
    /// The directory holding its `Cargo.toml`, which `files` paths are relative to.
    pub(crate) fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }
}

/// The members of a workspace, and the ones selected.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) root_manifest: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR` and `.cargo/config.toml`).
    pub(crate) target_directory: PathBuf,
    /// Every member, in `cargo metadata`'s order.
    pub(crate) packages: Vec<Package>,
    /// Indices into `packages` of the selected members.
    pub(crate) selected: Vec<usize>,
}

/// `MetadataCommand::exec`, with cargo in its own process group so that a signal ends it (see `interrupt`).
fn exec(command: &MetadataCommand) -> Result<cargo_metadata::Metadata, cargo_metadata::Error> {
    let output = crate::interrupt::output(&mut command.cargo_command())?;
    if !output.status.success() {
        return Err(cargo_metadata::Error::CargoMetadata {
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let stdout = std::str::from_utf8(&output.stdout)?
        .lines()
        .find(|line| line.starts_with('{'))
        .ok_or(cargo_metadata::Error::NoJson)?;
    MetadataCommand::parse(stdout)
}

/// Runs `cargo metadata --no-deps` (no dependency resolution, no network) and applies the package selection.
pub(crate) fn load(
    manifest_path: Option<&Path>,
    selection: &Selection,
) -> Result<Workspace, HiveError> {
    let mut command = MetadataCommand::new();
    command.no_deps();
    if let Some(path) = manifest_path {
        command.manifest_path(path);
    }
    let metadata = exec(&command).map_err(|err| match err {
        cargo_metadata::Error::CargoMetadata { stderr } => CargoError::Metadata {
            stderr: stderr.trim_end().to_owned(),
        },
        other => CargoError::MetadataOutput(other),
    })?;
    let root = metadata.workspace_root.clone().into_std_path_buf();
    let members: Vec<&cargo_metadata::Package> = metadata.workspace_packages();
    let packages: Vec<Package> = members
        .iter()
        .map(|package| Package {
            id: package.id.repr.clone(),
            name: package.name.to_string(),
            version: package.version.clone(),
            manifest_path: package.manifest_path.clone().into_std_path_buf(),
            description: package.description.clone(),
            license: package.license.clone(),
            repository: package.repository.clone(),
            homepage: package.homepage.clone(),
            bins: package
                .targets
                .iter()
                .filter(|target| target.kind.contains(&TargetKind::Bin))
                .map(|target| target.name.clone())
                .collect(),
            uses_hive_build: package
                .targets
                .iter()
                .any(|target| target.kind.contains(&TargetKind::CustomBuild))
                && package
                    .dependencies
                    .iter()
                    .any(|dep| dep.name == "hive-build" && dep.kind == DependencyKind::Build),
        })
        .collect();

    let current = current_manifest(manifest_path);
    let default_members: Vec<usize> = if let Some(index) = current
        .as_ref()
        .and_then(|current| {
            packages
                .iter()
                .position(|package| same_file(&package.manifest_path, current))
        })
        .filter(|_| {
            !current
                .as_ref()
                .is_some_and(|current| same_file(current, &root.join("Cargo.toml")))
        }) {
        // Like cargo: a member's own manifest selects that member.
        vec![index]
    } else if metadata.workspace_default_members.is_available() {
        let defaults = &*metadata.workspace_default_members;
        (0..packages.len())
            .filter(|index| defaults.contains(&members[*index].id))
            .collect()
    } else {
        (0..packages.len()).collect()
    };
    let selected = select(&packages, default_members, selection)?;
    Ok(Workspace {
        root_manifest: root.join("Cargo.toml"),
        target_directory: metadata.target_directory.clone().into_std_path_buf(),
        root,
        packages,
        selected,
    })
}

/// The manifest cargo would use: `--manifest-path`, else the nearest `Cargo.toml` up from the current directory.
pub(crate) fn current_manifest(manifest_path: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = manifest_path {
        return std::path::absolute(path).ok();
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join("Cargo.toml"))
        .find(|path| path.is_file())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The package name of a cargo package spec (`name`, `name@1.2.3`, `name:1.2.3`).
fn spec_name(spec: &str) -> &str {
    spec.split(['@', ':']).next().unwrap_or(spec)
}

fn select(
    packages: &[Package],
    default: Vec<usize>,
    selection: &Selection,
) -> Result<Vec<usize>, HiveError> {
    let Selection {
        packages: specs,
        workspace,
        exclude,
        // Images and platforms are chosen in `plan`.
        images: _,
        platforms: _,
        targets: _,
    } = selection;
    let find = |spec: &String| -> Result<usize, HiveError> {
        packages
            .iter()
            .position(|package| package.name == spec_name(spec))
            .ok_or_else(|| {
                let mut message = format!("package `{spec}` is not a member of the workspace");
                if let Some(close) = did_you_mean(
                    spec_name(spec),
                    packages.iter().map(|package| package.name.as_str()),
                ) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                HiveError::Input(message)
            })
    };
    let mut selected: Vec<usize> = if *workspace {
        (0..packages.len()).collect()
    } else if specs.is_empty() {
        default
    } else {
        specs.iter().map(find).collect::<Result<_, _>>()?
    };
    if *workspace && !specs.is_empty() {
        // cargo treats `-p` together with `--workspace` as `--workspace`.
        specs.iter().map(find).collect::<Result<Vec<_>, _>>()?;
    }
    let excluded: Vec<usize> = exclude.iter().map(find).collect::<Result<_, _>>()?;
    selected.retain(|index| !excluded.contains(index));
    selected.sort_unstable();
    selected.dedup();
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> Package {
        Package {
            id: name.into(),
            name: name.into(),
            version: cargo_metadata::semver::Version::new(1, 0, 0),
            manifest_path: PathBuf::from(format!("/w/{name}/Cargo.toml")),
            description: None,
            license: None,
            repository: None,
            homepage: None,
            bins: vec![name.into()],
            uses_hive_build: false,
        }
    }

    #[test]
    fn selection_follows_cargo() {
        let packages = [package("api"), package("worker"), package("cli")];
        let args = |specs: &[&str], workspace: bool, exclude: &[&str]| Selection {
            packages: specs.iter().map(|s| s.to_string()).collect(),
            workspace,
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..Selection::default()
        };
        assert_eq!(
            select(&packages, vec![0], &args(&[], false, &[])).unwrap(),
            [0]
        );
        assert_eq!(
            select(&packages, vec![0], &args(&["cli", "api@1.0.0"], false, &[])).unwrap(),
            [0, 2]
        );
        assert_eq!(
            select(&packages, vec![0], &args(&[], true, &["worker"])).unwrap(),
            [0, 2]
        );
        let err = select(&packages, vec![0], &args(&["wroker"], false, &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "package `wroker` is not a member of the workspace; did you mean `worker`?"
        );
    }
}
