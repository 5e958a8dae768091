//! Cargo's resolved dependency graph per target triple: `cargo metadata --filter-platform`, run once per triple,
//! and the walk from an image's package to the crates linked into its binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Package, PackageId, TargetKind};

use super::SbomError;
use super::lock::Checksums;
use crate::cargo::{Cargo, CargoFlags};

/// How many of cargo's last stderr lines an error quotes.
const STDERR_TAIL_LINES: usize = 20;

/// Cargo's resolved dependency graph per target triple, loaded once per build.
#[derive(Debug)]
pub(crate) struct DependencyGraphs {
    /// `cargo metadata`'s output (with its resolve) by triple.
    pub(super) graphs: BTreeMap<String, Metadata>,
    /// The checksums in the workspace's `Cargo.lock`.
    pub(super) checksums: Checksums,
}

/// The crates in one binary: every package reached from the root through normal dependencies, and the edges.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Closure {
    /// The packages, the root among them.
    pub(super) packages: BTreeSet<PackageId>,
    /// `(dependent, dependency)` pairs.
    pub(super) edges: BTreeSet<(PackageId, PackageId)>,
}

impl DependencyGraphs {
    /// Runs `cargo metadata --format-version 1 --filter-platform <triple>` (with the user's cargo, manifest path and
    /// feature flags) once per triple, concurrently, and reads the checksums from the workspace's Cargo.lock.
    pub(crate) fn load(
        cargo: &Cargo,
        triples: &[String],
        cwd: &Path,
    ) -> Result<DependencyGraphs, SbomError> {
        let wanted: BTreeSet<&String> = triples.iter().collect();
        let results: Vec<(String, Result<Metadata, SbomError>)> = std::thread::scope(|scope| {
            let runs: Vec<_> = wanted
                .iter()
                .map(|triple| {
                    let triple = triple.as_str();
                    scope.spawn(move || (triple.to_owned(), metadata(cargo, triple, cwd)))
                })
                .collect();
            runs.into_iter()
                .map(|run| run.join().expect("a `cargo metadata` thread panicked"))
                .collect()
        });
        let mut graphs = BTreeMap::new();
        for (triple, result) in results {
            graphs.insert(triple, result?);
        }
        let checksums = match graphs.values().next() {
            Some(metadata) => {
                Checksums::read(metadata.workspace_root.join("Cargo.lock").as_std_path())?
            }
            None => Checksums::default(),
        };
        Ok(DependencyGraphs { graphs, checksums })
    }
}

/// `cargo metadata`'s arguments for the user's flags: feature selection and how cargo may resolve (`--release` and
/// `--profile` do not change the resolve, and `cargo metadata` refuses them).
fn metadata_flags(flags: &CargoFlags) -> Vec<String> {
    CargoFlags {
        release: false,
        profile: None,
        ..flags.clone()
    }
    .to_args()
}

/// One `cargo metadata` run for `triple`.
fn metadata(cargo: &Cargo, triple: &str, cwd: &Path) -> Result<Metadata, SbomError> {
    let mut command = Command::new(&cargo.program);
    command
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            triple,
        ])
        .args(metadata_flags(&cargo.flags))
        .current_dir(cwd);
    if let Some(manifest) = &cargo.manifest_path {
        command.arg("--manifest-path").arg(manifest);
    }
    // Its own process group, so that a signal ends it (see `interrupt`).
    let output = crate::interrupt::output(&mut command).map_err(|source| SbomError::Spawn {
        triple: triple.to_owned(),
        source,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.trim_end().lines().collect();
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
        return Err(SbomError::Metadata {
            triple: triple.to_owned(),
            stderr: tail,
        });
    }
    let output_error = |source| SbomError::MetadataOutput {
        triple: triple.to_owned(),
        source,
    };
    let stdout = std::str::from_utf8(&output.stdout)
        .map_err(|err| output_error(err.into()))?
        .lines()
        .find(|line| line.starts_with('{'))
        .ok_or_else(|| output_error(cargo_metadata::Error::NoJson))?;
    MetadataCommand::parse(stdout).map_err(output_error)
}

/// The package of `metadata` whose manifest is `manifest_path` and whose name is `name`.
pub(super) fn find_package<'m>(
    metadata: &'m Metadata,
    name: &str,
    manifest_path: &str,
) -> Option<&'m Package> {
    let wanted = Path::new(manifest_path);
    let same = |path: &Path| {
        path == wanted
            || matches!((path.canonicalize(), wanted.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == name && same(package.manifest_path.as_std_path()))
}

/// Every crate linked into `root`'s binary: a walk through the edges that are normal dependencies on this platform.
/// Dev and build dependencies are left out (tests and build scripts are not in the binary), and so are proc macros
/// and what only they use: they run inside the compiler.
pub(super) fn closure(metadata: &Metadata, root: &PackageId) -> Closure {
    // Without a resolve (never with our flags) the root is all we know.
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> = metadata
        .resolve
        .iter()
        .flat_map(|resolve| &resolve.nodes)
        .map(|node| (&node.id, node))
        .collect();
    let proc_macros: BTreeSet<&PackageId> = metadata
        .packages
        .iter()
        .filter(|package| {
            package
                .targets
                .iter()
                .any(|target| target.kind.contains(&TargetKind::ProcMacro))
        })
        .map(|package| &package.id)
        .collect();
    let mut closure = Closure::default();
    let mut pending = vec![root.clone()];
    while let Some(id) = pending.pop() {
        if !closure.packages.insert(id.clone()) {
            continue;
        }
        let Some(node) = nodes.get(&id) else {
            continue;
        };
        for dep in &node.deps {
            let linked = dep
                .dep_kinds
                .iter()
                .any(|kind| kind.kind == DependencyKind::Normal);
            if linked && !proc_macros.contains(&dep.pkg) {
                closure.edges.insert((id.clone(), dep.pkg.clone()));
                pending.push(dep.pkg.clone());
            }
        }
    }
    closure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_resolve_flags_reach_cargo_metadata() {
        let flags = CargoFlags {
            features: vec!["a,b".into()],
            all_features: true,
            no_default_features: true,
            release: true,
            profile: Some("bench".into()),
            locked: true,
            offline: true,
        };
        assert_eq!(
            metadata_flags(&flags).join(" "),
            "--features a,b --all-features --no-default-features --locked --offline"
        );
    }
}
