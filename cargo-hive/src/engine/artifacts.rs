//! Cargo's artifacts checked against the plan right after cargo, before anything connects: each image's binary
//! must run on the image's platform (an amd64 image holding an aarch64 binary builds fine and never starts).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cargo::{ArtifactKey, Executable};
use crate::elf::Machine;
use crate::plan::Resolved;

/// An image whose binary is for another architecture than its platform.
#[derive(Debug, thiserror::Error)]
#[error(
    "image `{image}` is for {platform}, but its binary {path} is an executable for {machine}, {runs}: an image of it \
     could not start. The image's target for {platform} is {triple}: check that nothing makes cargo build another \
     (`build.target` in cargo's config, CARGO_BUILD_TARGET, a wrapper around rustc), or set the right triple in \
     `targets`"
)]
pub(crate) struct WrongArchitecture {
    image: String,
    platform: String,
    triple: String,
    path: PathBuf,
    machine: Machine,
    runs: String,
}

/// Checks the binary of every image of the plan (`hive:` bases included) against each of the image's platforms:
/// the binary built for that platform's triple must run there.
pub(crate) fn check_architectures(
    resolved: &Resolved,
    executables: &BTreeMap<ArtifactKey, Executable>,
) -> Result<(), Box<WrongArchitecture>> {
    for image in &resolved.plan.images {
        for on in &resolved.facts(&image.name).platforms {
            let key = ArtifactKey {
                package: image.package.name.clone(),
                bin: image.binary.target.clone(),
                triple: on.triple.clone(),
            };
            let Some(executable) = executables.get(&key) else {
                continue;
            };
            let Some(machine) = executable.machine else {
                continue;
            };
            let actual = machine.architecture();
            if actual == Some(on.platform.architecture()) {
                continue;
            }
            let runs = match actual {
                Some(actual) => format!("which runs on linux/{actual}"),
                None => "which no image platform runs".to_owned(),
            };
            return Err(Box::new(WrongArchitecture {
                image: image.name.clone(),
                platform: on.platform.to_string(),
                triple: on.triple.clone(),
                path: executable.path.clone(),
                machine,
                runs,
            }));
        }
    }
    Ok(())
}
