//! SBOMs: one SPDX 2.3 JSON document per image and platform, made from Cargo's own resolve of the image's package
//! for that platform's target triple and the user's feature flags — exactly the crates linked into the binary, not a
//! scanner's guess. [`graph`] loads the resolve once per triple, [`lock`] reads the checksums from `Cargo.lock`,
//! [`describe`] says how one crate, image or base becomes an SPDX package, and [`document`] puts a document
//! together, byte-for-byte deterministic. Where the document goes (an attestation, a file) is decided by the caller.

mod describe;
mod document;
mod graph;
mod lock;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::plan::Platform;

pub(crate) use document::{BaseImage, SbomSubject};
pub(crate) use graph::DependencyGraphs;

/// The in-toto predicate type of an SPDX document attached as an attestation.
pub(crate) const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document";

/// Why an SBOM could not be made or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SbomError {
    /// `cargo metadata` for a triple did not run.
    #[error("failed to run `cargo metadata --filter-platform {triple}` for the SBOM: {source}")]
    Spawn {
        /// The target triple.
        triple: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `cargo metadata` for a triple failed; the end of its stderr says why.
    #[error(
        "`cargo metadata --filter-platform {triple}` failed, so no SBOM can be made:\n{stderr}"
    )]
    Metadata {
        /// The target triple.
        triple: String,
        /// The last lines cargo printed.
        stderr: String,
    },
    /// `cargo metadata` printed something we could not read.
    #[error("failed to read the output of `cargo metadata --filter-platform {triple}`: {source}")]
    MetadataOutput {
        /// The target triple.
        triple: String,
        /// Why.
        #[source]
        source: cargo_metadata::Error,
    },
    /// `Cargo.lock` could not be read or parsed.
    #[error("failed to read the checksums in {}: {why}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A document was asked for a triple whose graph was not loaded (a bug in the caller).
    #[error("no dependency graph was loaded for target `{0}`")]
    TripleNotLoaded(String),
    /// The image's package is not in cargo's resolve for the triple.
    #[error(
        "package `{package}` ({manifest_path}) is not in cargo's resolve for target `{triple}`"
    )]
    PackageNotFound {
        /// The package name.
        package: String,
        /// Its manifest.
        manifest_path: String,
        /// The target triple.
        triple: String,
    },
    /// `SOURCE_DATE_EPOCH` is not a time SPDX can write.
    #[error("the build time {0} (SOURCE_DATE_EPOCH) is out of range for an SBOM's `created` date")]
    Epoch(i64),
    /// The document could not be serialized (a bug).
    #[error("failed to serialize the SBOM: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The document could not be written.
    #[error("failed to write the SBOM {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where an image's document for one platform is written: `target/hive/<image>/<os>-<arch>[-<variant>].spdx.json`.
pub(crate) fn sbom_path(target_dir: &Path, image: &str, platform: &Platform) -> PathBuf {
    target_dir
        .join("hive")
        .join(image)
        .join(format!("{}.spdx.json", platform.path_segment()))
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so that a reader never sees a
/// half-written document (and an interrupted build leaves the previous one). A document already there with these
/// bytes is left alone: every build makes the documents again (they are part of the fingerprint), and an unchanged
/// build should not rewrite and sync them.
pub(crate) fn write_document(path: &Path, bytes: &[u8]) -> Result<(), SbomError> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(());
    }
    let error = |source| SbomError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    file.persist(path).map_err(|err| error(err.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_live_under_target_hive_per_platform() {
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            sbom_path(Path::new("/w/target"), "api", &arm),
            Path::new("/w/target/hive/api/linux-arm-v7.spdx.json")
        );
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            sbom_path(Path::new("t"), "api", &amd),
            Path::new("t/hive/api/linux-amd64.spdx.json")
        );
    }

    #[test]
    fn write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hive/api/linux-amd64.spdx.json");
        write_document(&path, b"first, longer content").unwrap();
        write_document(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // Only the document is left: no temp file beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn write_names_the_file_it_could_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let err = write_document(&blocker.join("x.spdx.json"), b"{}").unwrap_err();
        assert!(err.to_string().starts_with("failed to write the SBOM "));
        assert!(err.to_string().contains("file/x.spdx.json"));
    }
}
