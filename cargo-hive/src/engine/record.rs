//! The record of a run for CI: `--metadata-file`, and `target/hive/release.json` for a release
//! ([`hive_build::metadata`]).

use std::path::Path;

use hive_build::metadata::{FORMAT_VERSION, ImageMetadata, Metadata};

use super::errors::MetadataError;
use super::job::BuiltImage;

/// What the record says of a built image.
pub(crate) fn image_metadata(image: &BuiltImage) -> ImageMetadata {
    ImageMetadata {
        references: image.references.clone(),
        image_name: image.references.join(","),
        digest: image.digest.clone(),
        config_digest: image.config_digest.clone(),
        platforms: image.platforms.clone(),
        sbom: (image.sbom.iter())
            .map(|(platform, path)| (platform.clone(), path.display().to_string()))
            .collect(),
        archive: image
            .archive
            .as_ref()
            .map(|path| path.display().to_string()),
        bytes_sent: image.bytes_sent,
        ..ImageMetadata::default()
    }
}

/// The record of the images built.
pub(crate) fn metadata(built: &[BuiltImage]) -> Metadata {
    Metadata {
        format_version: FORMAT_VERSION,
        images: built
            .iter()
            .map(|image| (image.name.clone(), image_metadata(image)))
            .collect(),
    }
}

/// Writes a record atomically: a temp file beside `path`, renamed over it.
pub(crate) fn write(path: &Path, metadata: &Metadata) -> Result<(), MetadataError> {
    let failed = |source: std::io::Error| MetadataError {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(metadata).expect("the record serializes");
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(failed)?;
    std::io::Write::write_all(&mut temp, b"\n").map_err(failed)?;
    temp.persist(path).map_err(|err| failed(err.error))?;
    Ok(())
}
