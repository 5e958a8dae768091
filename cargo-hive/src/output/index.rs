//! Each platform's manifest digest of a built image, for `--metadata-file`: read from the OCI archive the build
//! wrote, or from the registry it pushed to (`registry.rs`), and written as the image's metadata fragment.
//!
//! What BuildKit writes (seen with Docker 26's `oci` exporter): `index.json` names one descriptor per image name,
//! all of the same digest. For a multi-platform image that descriptor is itself an image index (the one pushed to
//! registries), whose `manifests[]` carry `platform`s; for a single-platform image it is the manifest, with its
//! `platform`. Attestation manifests (`vnd.docker.reference.type`, platform `unknown/unknown`) sit in the same
//! index and are skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The most of one JSON document (index, manifest, config) we hold.
const MAX_JSON: u64 = 4 << 20;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The annotation BuildKit puts on attestation manifests in an index.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// One platform's image in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlatformManifest {
    /// `os/arch[/variant]`.
    pub(crate) platform: String,
    /// The manifest's digest, `sha256:…`.
    pub(crate) digest: String,
}

/// Why the platforms' manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    /// The archive could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The archive.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a tarball.
    #[error("{} is not a tar archive: {source}", path.display())]
    NotTar {
        /// The file.
        path: PathBuf,
        /// What the tar reader found.
        source: std::io::Error,
    },
    /// A file the OCI layout needs is not in the archive.
    #[error("{} has no {name}: it is not an OCI image layout", path.display())]
    Missing {
        /// The archive.
        path: PathBuf,
        /// The missing file (`index.json`, `blobs/sha256/…`).
        name: String,
    },
    /// A JSON document is larger than we read.
    #[error("{what} is larger than {MAX_JSON} bytes")]
    TooLarge {
        /// Which document.
        what: String,
    },
    /// A document is not the JSON it should be.
    #[error("{what} is not a valid {expected}: {source}")]
    NotJson {
        /// Which document.
        what: String,
        /// What it should be.
        expected: &'static str,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A blob whose content does not have its digest.
    #[error("{what} does not match its digest {digest}")]
    DigestMismatch {
        /// Which document.
        what: String,
        /// The digest it should have.
        digest: String,
    },
    /// A digest that is not `sha256:<64 hex>`.
    #[error("`{0}` is not a sha256 digest")]
    BadDigest(String),
    /// `index.json` names several different images.
    #[error("{} holds {count} different images; expected one", path.display())]
    SeveralImages {
        /// The archive.
        path: PathBuf,
        /// How many distinct digests.
        count: usize,
    },
    /// A manifest or index of a media type we do not read.
    #[error("{what} has media type `{media_type}`, not an image index or manifest")]
    MediaType {
        /// Which document.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// An archive without an image the host runs, for a Docker that loads one.
    #[error("{} has no image for the host platform {host} (it has: {platforms})", path.display())]
    NoPlatformFor {
        /// The archive.
        path: PathBuf,
        /// The host's platform.
        host: String,
        /// The platforms it has, comma-separated.
        platforms: String,
    },
    /// A manifest whose platform is neither on its descriptor nor in its config.
    #[error("{what} names no platform")]
    NoPlatform {
        /// Which document.
        what: String,
    },
    /// An image reference that does not parse.
    #[error("`{reference}` is not an image reference: {detail}")]
    BadReference {
        /// The reference.
        reference: String,
        /// Why.
        detail: String,
    },
    /// The registry could not be asked, or refused.
    #[error("cannot read {reference} from its registry: {detail}")]
    Registry {
        /// What was asked for.
        reference: String,
        /// What went wrong (the client's words; they never hold credentials).
        detail: String,
    },
    /// The credentials for the registry could not be read.
    #[error("cannot read the credentials for {host}: {source}")]
    Credentials {
        /// The registry.
        host: String,
        /// Why.
        source: crate::buildkit::AuthError,
    },
}

/// A descriptor, as far as we read it.
#[derive(Debug, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    /// `sha256:…`.
    pub(super) digest: String,
    #[serde(default)]
    platform: Option<PlatformJson>,
    /// Its annotations (`io.containerd.image.name` on `index.json`'s descriptors).
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
}

/// An index or a manifest: `manifests` for the first, `config` for the second.
#[derive(Debug, Deserialize)]
pub(super) struct Document {
    /// Its media type, when it says.
    #[serde(rename = "mediaType", default)]
    pub(super) media_type: String,
    /// An index's manifests.
    #[serde(default)]
    pub(super) manifests: Vec<Descriptor>,
    /// A manifest's config.
    #[serde(default)]
    pub(super) config: Option<Descriptor>,
    /// A manifest's layers.
    #[serde(default)]
    pub(super) layers: Vec<Descriptor>,
    /// Its own annotations (an index's, or a manifest's).
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
}

/// A platform as an index or an image config writes it.
#[derive(Debug, Deserialize)]
struct PlatformJson {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl PlatformJson {
    fn text(&self) -> String {
        match self
            .variant
            .as_deref()
            .filter(|variant| !variant.is_empty())
        {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn is_unknown(&self) -> bool {
        self.os == "unknown" || self.architecture == "unknown"
    }
}

pub(super) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub(super) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// The media types a registry is asked for.
pub(super) const ACCEPTED: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Parses a JSON document, `what` naming it in errors.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    expected: &'static str,
) -> Result<T, IndexError> {
    serde_json::from_slice(bytes).map_err(|source| IndexError::NotJson {
        what: what.to_owned(),
        expected,
        source,
    })
}

/// The image manifests of an index, attestations skipped.
pub(super) fn image_manifests(index: &Document) -> Vec<PlatformManifest> {
    index
        .manifests
        .iter()
        .filter(|manifest| !manifest.annotations.contains_key(REFERENCE_TYPE))
        .filter_map(|manifest| {
            let platform = manifest.platform.as_ref()?;
            (!platform.is_unknown()).then(|| PlatformManifest {
                platform: platform.text(),
                digest: manifest.digest.clone(),
            })
        })
        .collect()
}

/// Checks that `bytes` have `digest`.
pub(super) fn verify(bytes: &[u8], digest: &str, what: &str) -> Result<(), IndexError> {
    let hex = hex_of(digest)?;
    if hex::encode(Sha256::digest(bytes)) == hex {
        Ok(())
    } else {
        Err(IndexError::DigestMismatch {
            what: what.to_owned(),
            digest: digest.to_owned(),
        })
    }
}

/// Checks that `digest` is `sha256:<64 hex digits>`, the only kind BuildKit writes.
pub(super) fn check_digest(digest: &str) -> Result<(), IndexError> {
    hex_of(digest).map(drop)
}

pub(super) fn hex_of(digest: &str) -> Result<&str, IndexError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| IndexError::BadDigest(digest.to_owned()))
}

/// Each platform's manifest of the image in an OCI archive (`--output type=oci` or our default archive): the
/// manifests of its index, or its one manifest.
pub(crate) fn index_manifests_from_archive(
    path: &Path,
) -> Result<Vec<PlatformManifest>, IndexError> {
    let mut archive = Archive::open(path)?;
    let top = archive.top()?;
    archive.platform_manifests(&top)
}

/// An OCI layout tarball, its entries found in one pass and read by seeking, so a large archive is read once.
pub(super) struct Archive {
    pub(super) path: PathBuf,
    pub(super) file: File,
    /// Entry name (without `./`) → (offset of its data, size).
    entries: BTreeMap<String, (u64, u64)>,
    /// Where the last entry's data ends (the end-of-archive blocks start there).
    pub(super) end: u64,
}

impl Archive {
    pub(super) fn open(path: &Path) -> Result<Archive, IndexError> {
        let failed = |source| IndexError::Read {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(failed)?;
        let not_tar = |source| IndexError::NotTar {
            path: path.to_owned(),
            source,
        };
        let mut entries = BTreeMap::new();
        let mut end = 0;
        let mut tar = tar::Archive::new(&file);
        for entry in tar.entries().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            let name = entry.path().map_err(not_tar)?;
            let name = name.to_string_lossy();
            let name = name.trim_start_matches("./").to_owned();
            let data = entry.raw_file_position();
            end = end.max(data + entry.size().div_ceil(512) * 512);
            entries.insert(name, (data, entry.size()));
        }
        Ok(Archive {
            path: path.to_owned(),
            file,
            entries,
            end,
        })
    }

    /// Whether the archive holds `name`.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// `index.json`, checked to name one image (one descriptor per image name, all of the same digest).
    pub(super) fn top(&mut self) -> Result<Document, IndexError> {
        let bytes = self.read("index.json")?;
        let top: Document = parse(&bytes, "index.json", "OCI image index")?;
        let mut digests: Vec<&str> = top.manifests.iter().map(|d| d.digest.as_str()).collect();
        digests.sort_unstable();
        digests.dedup();
        match digests.len() {
            1 => {}
            0 => {
                return Err(IndexError::Missing {
                    path: self.path.clone(),
                    name: "image in index.json".to_owned(),
                });
            }
            count => {
                return Err(IndexError::SeveralImages {
                    path: self.path.clone(),
                    count,
                });
            }
        }
        Ok(top)
    }

    /// Each platform's manifest of the image `index.json` names.
    pub(super) fn platform_manifests(
        &mut self,
        top: &Document,
    ) -> Result<Vec<PlatformManifest>, IndexError> {
        let image = &top.manifests[0];
        let what = format!("blob {}", image.digest);
        if is_index(&image.media_type) {
            let bytes = self.blob(&image.digest)?;
            let index: Document = parse(&bytes, &what, "image index")?;
            return Ok(image_manifests(&index));
        }
        if !is_manifest(&image.media_type) {
            return Err(IndexError::MediaType {
                what,
                media_type: image.media_type.clone(),
            });
        }
        let platform = match &image.platform {
            Some(platform) => platform.text(),
            None => self.config_platform(&image.digest)?,
        };
        Ok(vec![PlatformManifest {
            platform,
            digest: image.digest.clone(),
        }])
    }

    pub(super) fn read(&mut self, name: &str) -> Result<Vec<u8>, IndexError> {
        let Some(&(offset, size)) = self.entries.get(name) else {
            return Err(IndexError::Missing {
                path: self.path.clone(),
                name: name.to_owned(),
            });
        };
        if size > MAX_JSON {
            return Err(IndexError::TooLarge {
                what: name.to_owned(),
            });
        }
        let mut bytes = vec![0; usize::try_from(size).expect("at most MAX_JSON")];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|source| IndexError::Read {
                path: self.path.clone(),
                source,
            })?;
        Ok(bytes)
    }

    /// A blob, checked against its digest.
    pub(super) fn blob(&mut self, digest: &str) -> Result<Vec<u8>, IndexError> {
        let name = format!("blobs/sha256/{}", hex_of(digest)?);
        let bytes = self.read(&name)?;
        verify(&bytes, digest, &format!("blob {digest}"))?;
        Ok(bytes)
    }

    /// The platform in the config of the manifest `digest`, for a descriptor that does not say it.
    fn config_platform(&mut self, digest: &str) -> Result<String, IndexError> {
        let what = format!("manifest {digest}");
        let manifest: Document = parse(&self.blob(digest)?, &what, "image manifest")?;
        let Some(config) = manifest.config else {
            return Err(IndexError::NoPlatform { what });
        };
        let what = format!("config {}", config.digest);
        let platform: PlatformJson = parse(&self.blob(&config.digest)?, &what, "image config")?;
        if platform.os.is_empty() || platform.architecture.is_empty() {
            return Err(IndexError::NoPlatform { what });
        }
        Ok(platform.text())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A blob: its bytes and digest.
    pub(in crate::output) fn blob(json: &serde_json::Value) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(json).unwrap();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        (bytes, digest)
    }

    /// Writes an OCI layout tarball with these blobs and `index.json`, as BuildKit lays it out (`./`-less names,
    /// blobs first).
    fn archive(dir: &Path, blobs: &[&(Vec<u8>, String)], index: &serde_json::Value) -> PathBuf {
        let path = dir.join("image.oci.tar");
        let mut tar = tar::Builder::new(File::create(&path).unwrap());
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o444);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).unwrap();
        };
        // A large layer before the documents, so reading them means seeking past it.
        add("blobs/sha256/layer", &vec![7; 300_000]);
        for (bytes, digest) in blobs {
            add(
                &format!("blobs/sha256/{}", &digest["sha256:".len()..]),
                bytes,
            );
        }
        add("index.json", &serde_json::to_vec(index).unwrap());
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        tar.finish().unwrap();
        path
    }

    fn descriptor(media_type: &str, digest: &str) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": digest, "size": 1})
    }

    fn manifest_blob(config: &str) -> (Vec<u8>, String) {
        blob(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [],
        }))
    }

    #[test]
    fn a_one_platform_index_with_attestations_is_its_one_image() {
        // What a one-platform push with provenance (or an SBOM) is: an index of the image and its attestation
        // manifest; an attestation is known by its annotation even where its platform looks like an image's.
        let index: Document = serde_json::from_value(serde_json::json!({
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": "sha256:aa",
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:cc",
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {REFERENCE_TYPE: "attestation-manifest",
                                 "vnd.docker.reference.digest": "sha256:aa"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:dd",
                 "platform": {"os": "linux", "architecture": "amd64"},
                 "annotations": {REFERENCE_TYPE: "attestation-manifest"}},
            ],
        }))
        .unwrap();
        assert_eq!(
            image_manifests(&index),
            [PlatformManifest {
                platform: "linux/amd64".into(),
                digest: "sha256:aa".into()
            }]
        );
    }

    #[test]
    fn reads_each_platform_of_a_multi_platform_archive() {
        let dir = tempfile::tempdir().unwrap();
        let amd64 = manifest_blob("sha256:aa");
        let arm64 = manifest_blob("sha256:bb");
        let attestation = manifest_blob("sha256:cc");
        let mut amd = descriptor(OCI_MANIFEST, &amd64.1);
        amd["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
        let mut arm = descriptor(OCI_MANIFEST, &arm64.1);
        arm["platform"] =
            serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        let mut att = descriptor(OCI_MANIFEST, &attestation.1);
        att["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
        att["annotations"] = serde_json::json!({REFERENCE_TYPE: "attestation-manifest",
            "vnd.docker.reference.digest": amd64.1});
        let index = blob(
            &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [amd, arm, att]}),
        );
        // Two names, one image: BuildKit writes one descriptor per name.
        let mut first = descriptor(OCI_INDEX, &index.1);
        first["annotations"] =
            serde_json::json!({"io.containerd.image.name": "localhost:5000/a:1"});
        let mut second = descriptor(OCI_INDEX, &index.1);
        second["annotations"] =
            serde_json::json!({"io.containerd.image.name": "localhost:5000/a:2"});
        let top = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [first, second]});
        let path = archive(dir.path(), &[&amd64, &arm64, &attestation, &index], &top);
        assert_eq!(
            index_manifests_from_archive(&path).unwrap(),
            [
                PlatformManifest {
                    platform: "linux/amd64".into(),
                    digest: amd64.1.clone()
                },
                PlatformManifest {
                    platform: "linux/arm64/v8".into(),
                    digest: arm64.1.clone()
                },
            ]
        );
    }

    #[test]
    fn reads_the_one_manifest_of_a_single_platform_archive() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            blob(&serde_json::json!({"os": "linux", "architecture": "arm64", "rootfs": {}}));
        let manifest = manifest_blob(&config.1);
        // With the platform on the descriptor, as BuildKit writes it.
        let mut with = descriptor(OCI_MANIFEST, &manifest.1);
        with["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
        let top = |descriptor| serde_json::json!({"schemaVersion": 2, "manifests": [descriptor]});
        let path = archive(dir.path(), &[&manifest], &top(with));
        let expected = [PlatformManifest {
            platform: "linux/arm64".into(),
            digest: manifest.1.clone(),
        }];
        assert_eq!(index_manifests_from_archive(&path).unwrap(), expected);
        // Without it: read from the config.
        let path = archive(
            dir.path(),
            &[&manifest, &config],
            &top(descriptor(OCI_MANIFEST, &manifest.1)),
        );
        assert_eq!(index_manifests_from_archive(&path).unwrap(), expected);
    }

    #[test]
    fn broken_archives_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let index = blob(&serde_json::json!({"manifests": []}));
        let top = serde_json::json!({"manifests": [descriptor(OCI_INDEX, &index.1)]});
        // The index blob is missing.
        let path = archive(dir.path(), &[], &top);
        let err = index_manifests_from_archive(&path).unwrap_err();
        assert!(
            matches!(&err, IndexError::Missing { name, .. } if name.starts_with("blobs/sha256/")),
            "{err}"
        );
        // A blob under another digest's name.
        let other = blob(&serde_json::json!({"x": 1}));
        let forged = (other.0.clone(), index.1.clone());
        let path = archive(dir.path(), &[&forged], &top);
        let err = index_manifests_from_archive(&path).unwrap_err();
        assert!(matches!(err, IndexError::DigestMismatch { .. }), "{err}");
        // Two images.
        let two = serde_json::json!({"manifests": [descriptor(OCI_INDEX, &index.1),
            descriptor(OCI_INDEX, &other.1)]});
        let path = archive(dir.path(), &[&index, &other], &two);
        let err = index_manifests_from_archive(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("holds 2 different images; expected one"),
            "{err}"
        );
        // Not a tarball at all.
        let path = dir.path().join("junk.tar");
        std::fs::write(&path, b"not a tar").unwrap();
        let err = index_manifests_from_archive(&path).unwrap_err();
        assert!(matches!(err, IndexError::NotTar { .. }), "{err}");
        // A tarball without index.json.
        let path = dir.path().join("empty.tar");
        tar::Builder::new(File::create(&path).unwrap())
            .finish()
            .unwrap();
        let err = index_manifests_from_archive(&path).unwrap_err();
        assert!(
            matches!(&err, IndexError::Missing { name, .. } if name == "index.json"),
            "{err}"
        );
    }
}
