//! The JSON of `cargo hive build --metadata-file` and of `target/hive/release.json`: what was built and where it
//! went, per image. Where buildx writes the same fact (`containerimage.digest`, `image.name`), the key is buildx's,
//! so CI scripts written for `docker buildx build --metadata-file` read ours.
//!
//! Stability: fields may be added in a minor release (readers must ignore unknown fields); removing or changing the
//! meaning of a field bumps [`FORMAT_VERSION`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of this format, the `format_version` of every [`Metadata`].
pub const FORMAT_VERSION: u32 = 1;

/// Every image of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Always [`FORMAT_VERSION`] for this crate's version of the format.
    pub format_version: u32,
    /// Per image name.
    pub images: BTreeMap<String, ImageMetadata>,
}

/// One image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMetadata {
    /// Every reference the image was written under (for a release: pushed).
    pub references: Vec<String>,
    /// buildx's key: the same references, comma-separated.
    #[serde(rename = "image.name")]
    pub image_name: String,
    /// The image's manifest digest (the index's, for a multi-platform image); empty when it was not built.
    #[serde(rename = "containerimage.digest")]
    pub digest: String,
    /// The config digest, when BuildKit said (one platform).
    #[serde(rename = "containerimage.config.digest")]
    pub config_digest: Option<String>,
    /// Each platform's manifest digest, when known.
    pub platforms: BTreeMap<String, String>,
    /// Each platform's SPDX document, when SBOMs were made: platform → path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sbom: BTreeMap<String, String>,
    /// The OCI archive, when one was written.
    pub archive: Option<String>,
    /// File bytes the session sent to the daemon.
    pub bytes_sent: u64,
    /// `release` only: the package version released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `release` only: every tag and what the release did with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagOutcome>,
    /// Why the image failed, when it did (its references were then not pushed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a release did with one tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagOutcome {
    /// The full reference.
    pub reference: String,
    /// `created`, `moved` or `left`.
    pub action: String,
    /// Why a tag was left where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the registry holds this image under it now.
    pub pushed: bool,
}
