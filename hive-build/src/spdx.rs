//! The subset of SPDX 2.3 JSON that cargo-hive writes for an image's SBOM: the document, its creation info,
//! packages (with checksums and external references) and relationships.
//!
//! Field names and order follow the SPDX 2.3 JSON schema; serializing a [`Document`] twice gives the same bytes.
//! Readers (tests, CI scripts) can deserialize our documents with the same types; fields outside this subset are
//! ignored when reading.

use serde::{Deserialize, Serialize};

/// The `spdxVersion` of every document we write.
pub const SPDX_VERSION: &str = "SPDX-2.3";
/// The `dataLicense` SPDX requires of every document.
pub const DATA_LICENSE: &str = "CC0-1.0";
/// The `SPDXID` of the document itself.
pub const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
/// SPDX's "no assertion is made" value, for licenses, copyright and download locations.
pub const NOASSERTION: &str = "NOASSERTION";

/// An SPDX 2.3 document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// Always [`SPDX_VERSION`].
    pub spdx_version: String,
    /// Always [`DATA_LICENSE`].
    pub data_license: String,
    /// Always [`DOCUMENT_ID`].
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    /// The document's name.
    pub name: String,
    /// A URI unique to this document (ours contains a SHA-256 of the rest of the document).
    pub document_namespace: String,
    /// Who made it and when.
    pub creation_info: CreationInfo,
    /// The packages, sorted by `SPDXID`.
    #[serde(default)]
    pub packages: Vec<Package>,
    /// The relationships, sorted.
    #[serde(default)]
    pub relationships: Vec<Relationship>,
}

/// When and by what a document was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationInfo {
    /// RFC 3339 UTC time, `1970-01-01T00:00:00Z` form.
    pub created: String,
    /// `Tool: name-version`, `Organization: …` or `Person: …`.
    pub creators: Vec<String>,
}

/// One package: a crate, the image or its base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `SPDXRef-` and `[A-Za-z0-9.-]` only.
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    /// The package's name.
    pub name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<String>,
    /// Where it can be downloaded: a URL, a VCS location (`git+<url>@<commit>`) or [`NOASSERTION`].
    pub download_location: String,
    /// Whether files were analyzed: never, we describe packages.
    pub files_analyzed: bool,
    /// Always [`NOASSERTION`]: we did not conclude anything.
    pub license_concluded: String,
    /// The license expression the package declares, or [`NOASSERTION`].
    pub license_declared: String,
    /// Always [`NOASSERTION`].
    pub copyright_text: String,
    /// Its checksums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    /// Package URLs and the like.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
    /// `APPLICATION`, `CONTAINER`, `LIBRARY`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
}

/// A checksum of a package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    /// `SHA256`, …
    pub algorithm: String,
    /// Lowercase hex.
    pub checksum_value: String,
}

/// A reference from a package to something outside the document, e.g. its package URL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    /// `PACKAGE-MANAGER` for a purl.
    pub reference_category: String,
    /// `purl`.
    pub reference_type: String,
    /// The reference itself, e.g. `pkg:cargo/itoa@1.0.19`.
    pub reference_locator: String,
}

/// `spdx_element_id` has `relationship_type` to `related_spdx_element`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    /// The subject.
    #[serde(rename = "spdxElementId")]
    pub spdx_element_id: String,
    /// `DESCRIBES`, `CONTAINS`, `DEPENDS_ON`, `DESCENDANT_OF`, …
    pub relationship_type: String,
    /// The object.
    pub related_spdx_element: String,
}

impl Package {
    /// The package URL among its external references, if it has one.
    pub fn purl(&self) -> Option<&str> {
        self.external_refs
            .iter()
            .find(|reference| reference.reference_type == "purl")
            .map(|reference| reference.reference_locator.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_spdx_schema() {
        let document = Document {
            spdx_version: SPDX_VERSION.into(),
            data_license: DATA_LICENSE.into(),
            spdx_id: DOCUMENT_ID.into(),
            name: "api".into(),
            document_namespace: "https://example.com/x".into(),
            creation_info: CreationInfo {
                created: "1970-01-01T00:00:00Z".into(),
                creators: vec!["Tool: t".into()],
            },
            packages: vec![Package {
                spdx_id: "SPDXRef-a".into(),
                name: "a".into(),
                version_info: Some("1.0.0".into()),
                download_location: NOASSERTION.into(),
                files_analyzed: false,
                license_concluded: NOASSERTION.into(),
                license_declared: "MIT".into(),
                copyright_text: NOASSERTION.into(),
                checksums: vec![Checksum {
                    algorithm: "SHA256".into(),
                    checksum_value: "00".into(),
                }],
                external_refs: vec![ExternalRef {
                    reference_category: "PACKAGE-MANAGER".into(),
                    reference_type: "purl".into(),
                    reference_locator: "pkg:cargo/a@1.0.0".into(),
                }],
                primary_package_purpose: Some("LIBRARY".into()),
            }],
            relationships: vec![Relationship {
                spdx_element_id: DOCUMENT_ID.into(),
                relationship_type: "DESCRIBES".into(),
                related_spdx_element: "SPDXRef-a".into(),
            }],
        };
        let json = serde_json::to_value(&document).unwrap();
        for key in [
            "spdxVersion",
            "dataLicense",
            "SPDXID",
            "documentNamespace",
            "creationInfo",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        let package = &json["packages"][0];
        for key in [
            "SPDXID",
            "versionInfo",
            "downloadLocation",
            "filesAnalyzed",
            "licenseConcluded",
            "licenseDeclared",
            "copyrightText",
            "primaryPackagePurpose",
        ] {
            assert!(package.get(key).is_some(), "{key} missing");
        }
        assert_eq!(package["checksums"][0]["checksumValue"], "00");
        assert_eq!(package["externalRefs"][0]["referenceType"], "purl");
        assert_eq!(json["relationships"][0]["spdxElementId"], DOCUMENT_ID);
        assert_eq!(json["relationships"][0]["relatedSpdxElement"], "SPDXRef-a");
        let back: Document = serde_json::from_value(json).unwrap();
        assert_eq!(back, document);
        assert_eq!(back.packages[0].purl(), Some("pkg:cargo/a@1.0.0"));
    }
}
