//! Cargo's artifacts checked against the plan right after cargo, before anything connects: each image's binary
//! must run on the image's platform (an amd64 image holding an aarch64 binary builds fine and never starts).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cargo::Executable;
use crate::elf::Machine;
use crate::plan::{Platform, Resolved};

/// An image whose binary is for another architecture than its platform.
#[derive(Debug, thiserror::Error)]
#[error(
    "image `{image}` is for {platform}, but its binary {path} is an executable for {machine}, {runs}: an image of it \
     could not start. Build the binary for {platform} (without a `--target` for another architecture){declare}"
)]
pub(crate) struct WrongArchitecture {
    image: String,
    platform: String,
    path: PathBuf,
    machine: Machine,
    runs: String,
    declare: String,
}

/// Checks the binary of every image of the plan (`hive:` bases included) against each of the image's platforms.
pub(crate) fn check_architectures(
    resolved: &Resolved,
    executables: &BTreeMap<(String, String), Executable>,
) -> Result<(), Box<WrongArchitecture>> {
    let host = Platform::host();
    for image in &resolved.plan.images {
        let key = (image.package.name.clone(), image.binary.target.clone());
        let Some(executable) = executables.get(&key) else {
            continue;
        };
        let Some(machine) = executable.machine else {
            continue;
        };
        for platform in resolved
            .facts(&image.name)
            .platforms
            .iter()
            .map(|on| &on.platform)
        {
            let wanted = platform.architecture();
            let actual = machine.architecture();
            if actual == Some(wanted) {
                continue;
            }
            let (runs, declare) = match actual {
                Some(actual) => (
                    format!("which runs on linux/{actual}"),
                    format!(
                        ", or declare `platforms = [\"linux/{actual}\"]` for the image in Cargo.toml (this version \
                         builds images for the host platform, {host}, only)"
                    ),
                ),
                None => ("which no image platform runs".to_owned(), String::new()),
            };
            return Err(Box::new(WrongArchitecture {
                image: image.name.clone(),
                platform: platform.to_string(),
                path: executable.path.clone(),
                machine,
                runs,
                declare,
            }));
        }
    }
    Ok(())
}
