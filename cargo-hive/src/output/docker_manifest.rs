//! Makes an `oci` archive loadable by every Docker: a `manifest.json` (the `docker save` format) naming one
//! platform's image is appended to it. BuildKit's `docker` exporter cannot write a multi-platform image at all, so
//! a standalone buildkitd's `--load` exports `oci` and this finishes the archive.
//!
//! Checked on this project's daemons: Docker with the containerd image store loads such an archive from its
//! `index.json` (the whole index, named by the `io.containerd.image.name` annotations BuildKit's `oci` exporter
//! writes, one per name) and ignores `manifest.json`; Docker without it (20.10 too) loads the one image
//! `manifest.json` names, with its `RepoTags`, and fails on an archive without one.

use std::io::{Seek, SeekFrom};
use std::path::Path;

use super::index::{Archive, Document, IndexError, PlatformManifest, hex_of, parse};
use crate::plan::Platform;

/// The annotation that names an image in `index.json`.
const IMAGE_NAME: &str = "io.containerd.image.name";

/// Appends to the OCI archive at `path` a `manifest.json` naming its image for `host` (any variant of the host's
/// architecture; a single-platform image whatever its platform), tagged with the names in `index.json`. Returns
/// the platform it names. An archive that has a `manifest.json` already is left as it is.
pub(crate) fn add_docker_manifest(
    path: &Path,
    host: &Platform,
) -> Result<Option<PlatformManifest>, IndexError> {
    let mut archive = Archive::open(path)?;
    if archive.contains("manifest.json") {
        return Ok(None);
    }
    let top = archive.top()?;
    let manifests = archive.platform_manifests(&top)?;
    let chosen = choose(&manifests, host).ok_or_else(|| IndexError::NoPlatformFor {
        path: path.to_owned(),
        host: host.to_string(),
        platforms: manifests
            .iter()
            .map(|manifest| manifest.platform.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let what = format!("manifest {}", chosen.digest);
    let manifest: Document = parse(&archive.blob(&chosen.digest)?, &what, "image manifest")?;
    let Some(config) = &manifest.config else {
        return Err(IndexError::NoPlatform { what });
    };
    let blob = |digest: &str| hex_of(digest).map(|hex| format!("blobs/sha256/{hex}"));
    let layers = manifest
        .layers
        .iter()
        .map(|layer| blob(&layer.digest))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tags: Vec<&str> = top
        .manifests
        .iter()
        .filter_map(|descriptor| descriptor.annotations.get(IMAGE_NAME).map(String::as_str))
        .collect();
    tags.dedup();
    let json = serde_json::json!([{
        "Config": blob(&config.digest)?,
        "RepoTags": tags,
        "Layers": layers,
    }]);
    append(
        &mut archive,
        &serde_json::to_vec(&json).expect("JSON values serialize"),
    )?;
    Ok(Some(chosen.clone()))
}

/// The host's manifest (same OS and architecture), or the only one.
fn choose<'a>(manifests: &'a [PlatformManifest], host: &Platform) -> Option<&'a PlatformManifest> {
    let host_prefix = format!("{}/{}", host.os(), host.architecture());
    let is_host = |manifest: &&PlatformManifest| {
        manifest.platform == host_prefix
            || manifest
                .platform
                .strip_prefix(&host_prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    match manifests {
        [only] => Some(only),
        _ => manifests.iter().find(is_host),
    }
}

/// Writes `manifest.json` over the archive's end-of-archive blocks, and new ones after it.
fn append(archive: &mut Archive, bytes: &[u8]) -> Result<(), IndexError> {
    let failed = |source| IndexError::Read {
        path: archive.path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&archive.path)
        .map_err(failed)?;
    file.set_len(archive.end).map_err(failed)?;
    file.seek(SeekFrom::Start(archive.end)).map_err(failed)?;
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut tar = tar::Builder::new(file);
    tar.append_data(&mut header, "manifest.json", bytes)
        .and_then(|()| tar.finish())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs::File;
    use std::io::Read;

    use crate::output::index::tests::blob;

    /// An OCI archive of a two-platform image named twice, as BuildKit's `oci` exporter writes it.
    fn two_platform_archive(path: &Path) -> (String, String) {
        let layer = format!("sha256:{}", "1".repeat(64));
        let manifest = |config: &str| {
            blob(&serde_json::json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 1}]}))
        };
        let amd_config = format!("sha256:{}", "a".repeat(64));
        let (amd, arm) = (
            manifest(&amd_config),
            manifest(&format!("sha256:{}", "b".repeat(64))),
        );
        let index = blob(&serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.1, "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.1, "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}}]}));
        let named = |name: &str| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index.1,
                "size": 1, "annotations": {IMAGE_NAME: name}})
        };
        let top = serde_json::json!({"schemaVersion": 2,
            "manifests": [named("localhost:5000/a:1"), named("localhost:5000/a:latest")]});
        let mut tar = tar::Builder::new(File::create(path).unwrap());
        for (name, bytes) in [
            (format!("blobs/sha256/{}", &amd.1[7..]), amd.0),
            (format!("blobs/sha256/{}", &arm.1[7..]), arm.0),
            (format!("blobs/sha256/{}", &index.1[7..]), index.0),
            // 513 bytes: the next entry starts after padding.
            (format!("blobs/sha256/{}", "1".repeat(64)), vec![9; 513]),
            ("index.json".to_owned(), serde_json::to_vec(&top).unwrap()),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes.as_slice())
                .unwrap();
        }
        tar.finish().unwrap();
        (amd.1, amd_config)
    }

    #[test]
    fn names_the_host_platform_for_docker_and_keeps_the_archive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.oci.tar");
        let (amd, amd_config) = two_platform_archive(&path);
        let host = Platform::parse("linux/amd64").unwrap();
        let chosen = add_docker_manifest(&path, &host).unwrap().unwrap();
        assert_eq!(
            (chosen.platform.as_str(), chosen.digest.as_str()),
            ("linux/amd64", amd.as_str())
        );

        let mut tar = tar::Archive::new(File::open(&path).unwrap());
        let mut names = Vec::new();
        let mut manifest = String::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            if name == "manifest.json" {
                entry.read_to_string(&mut manifest).unwrap();
            }
            names.push(name);
        }
        assert_eq!(names.len(), 6, "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some("manifest.json"));
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{
                "Config": format!("blobs/sha256/{}", &amd_config[7..]),
                "RepoTags": ["localhost:5000/a:1", "localhost:5000/a:latest"],
                "Layers": [format!("blobs/sha256/{}", "1".repeat(64))],
            }])
        );
        // The index is still readable, and a second call changes nothing.
        assert_eq!(
            super::super::index_manifests_from_archive(&path)
                .unwrap()
                .len(),
            2
        );
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(add_docker_manifest(&path, &host).unwrap(), None);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    }

    #[test]
    fn an_archive_without_the_host_platform_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.oci.tar");
        two_platform_archive(&path);
        let err =
            add_docker_manifest(&path, &Platform::parse("linux/riscv64").unwrap()).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "has no image for the host platform linux/riscv64 (it has: linux/arm64, linux/amd64)"
            ),
            "{err}"
        );
    }
}
