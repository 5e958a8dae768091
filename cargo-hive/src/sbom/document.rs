//! One SPDX document: the crates of one image's binary on one platform, the image, its base, and how they relate.
//! Deterministic: the time is the build's `SOURCE_DATE_EPOCH`, everything is sorted, and the namespace is derived
//! from the content.

use std::collections::{BTreeMap, BTreeSet};

use cargo_metadata::{Metadata, Package as CargoPackage, PackageId};
use hive_build::spdx::{
    Checksum, CreationInfo, DATA_LICENSE, DOCUMENT_ID, Document, ExternalRef, NOASSERTION, Package,
    Relationship, SPDX_VERSION,
};
use sha2::{Digest, Sha256};

use super::SbomError;
use super::describe::{crate_purl, download_location, image_purl, license_declared, spdx_id, tag};
use super::graph::{DependencyGraphs, closure, find_package};
use crate::plan::Platform;

/// What one document describes.
#[derive(Debug, Clone)]
pub(crate) struct SbomSubject<'a> {
    /// The image's name, e.g. `api`.
    pub(crate) image: &'a str,
    /// Its first reference, e.g. `localhost:5000/acme/api:1.4.2`.
    pub(crate) reference: &'a str,
    /// The workspace package's name.
    pub(crate) package: &'a str,
    /// Its `Cargo.toml` (cargo metadata's `manifest_path`), to pick the right node.
    pub(crate) manifest_path: &'a str,
    /// The bin target.
    pub(crate) binary: &'a str,
    /// The platform.
    pub(crate) platform: &'a Platform,
    /// The Rust target triple the binary is built for.
    pub(crate) triple: &'a str,
    /// The base image; `None` for scratch.
    pub(crate) base: Option<BaseImage<'a>>,
    /// `SOURCE_DATE_EPOCH`, in seconds.
    pub(crate) epoch: i64,
}

/// The registry image an image is built on, as resolved for the platform.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BaseImage<'a> {
    /// As written, e.g. `localhost:5000/hive/glibc`.
    pub(crate) reference: &'a str,
    /// The digest of its manifest for the platform (`sha256:…`).
    pub(crate) digest: &'a str,
}

const PACKAGE_MANAGER: &str = "PACKAGE-MANAGER";
const SHA256: &str = "SHA256";

impl DependencyGraphs {
    /// The SPDX 2.3 JSON document of one image on one platform, byte-for-byte deterministic.
    pub(crate) fn document(&self, subject: &SbomSubject<'_>) -> Result<Vec<u8>, SbomError> {
        let metadata = self
            .graphs
            .get(subject.triple)
            .ok_or_else(|| SbomError::TripleNotLoaded(subject.triple.to_owned()))?;
        let root =
            find_package(metadata, subject.package, subject.manifest_path).ok_or_else(|| {
                SbomError::PackageNotFound {
                    package: subject.package.to_owned(),
                    manifest_path: subject.manifest_path.to_owned(),
                    triple: subject.triple.to_owned(),
                }
            })?;
        let (mut packages, mut relationships, application) = self.crates(metadata, &root.id);
        let image_id = spdx_id("image", &[subject.image]);
        packages.push(image_package(&image_id, subject));
        relationships.push(relationship(DOCUMENT_ID, "DESCRIBES", &image_id));
        relationships.push(relationship(&image_id, "CONTAINS", &application));
        if let Some(base) = &subject.base {
            let base_id = spdx_id("base", &[subject.image]);
            packages.push(base_package(&base_id, base));
            // The image is the base's filesystem with our layers on top: the same lineage, which is what
            // DESCENDANT_OF says. DEPENDS_ON would read as a separate thing needed at run time.
            relationships.push(relationship(&image_id, "DESCENDANT_OF", &base_id));
        }
        packages.sort_by(|a, b| a.spdx_id.cmp(&b.spdx_id));
        relationships.sort();
        relationships.dedup();
        let document = Document {
            spdx_version: SPDX_VERSION.to_owned(),
            data_license: DATA_LICENSE.to_owned(),
            spdx_id: DOCUMENT_ID.to_owned(),
            name: format!(
                "{} on {} (binary {})",
                subject.reference, subject.platform, subject.binary
            ),
            document_namespace: String::new(),
            creation_info: CreationInfo {
                created: created(subject.epoch)?,
                creators: vec![format!("Tool: cargo-hive-{}", env!("CARGO_PKG_VERSION"))],
            },
            packages,
            relationships,
        };
        with_namespace(document, subject)
    }

    /// The SPDX packages of the crates in `root`'s binary, their `DEPENDS_ON` relationships, and the root's id.
    fn crates(
        &self,
        metadata: &Metadata,
        root: &PackageId,
    ) -> (Vec<Package>, Vec<Relationship>, String) {
        let closure = closure(metadata, root);
        let ids = crate_ids(metadata, &closure.packages);
        let packages = metadata
            .packages
            .iter()
            .filter(|package| closure.packages.contains(&package.id))
            .map(|package| {
                let purpose = if package.id == *root {
                    "APPLICATION"
                } else {
                    "LIBRARY"
                };
                self.crate_package(&ids[&package.id], package, purpose)
            })
            .collect();
        let relationships = closure
            .edges
            .iter()
            .map(|(from, to)| relationship(&ids[from], "DEPENDS_ON", &ids[to]))
            .collect();
        (packages, relationships, ids[root].clone())
    }

    fn crate_package(&self, id: &str, package: &CargoPackage, purpose: &str) -> Package {
        let name = package.name.as_str();
        let version = package.version.to_string();
        let source = package.source.as_ref().map(|source| source.repr.as_str());
        let checksums = source
            .and_then(|source| self.checksums.get(name, &version, source))
            .map(|value| Checksum {
                algorithm: SHA256.to_owned(),
                checksum_value: value.to_owned(),
            })
            .into_iter()
            .collect();
        Package {
            spdx_id: id.to_owned(),
            name: name.to_owned(),
            download_location: download_location(name, &version, source),
            files_analyzed: false,
            license_concluded: NOASSERTION.to_owned(),
            license_declared: license_declared(package.license.as_deref()),
            copyright_text: NOASSERTION.to_owned(),
            checksums,
            external_refs: vec![purl(crate_purl(name, &version))],
            primary_package_purpose: Some(purpose.to_owned()),
            version_info: Some(version),
        }
    }
}

/// Stable SPDX ids of `members`, from name and version; the rare crates that share both (from different sources)
/// get a hash of their source added, so ids stay unique and do not depend on paths on this machine.
fn crate_ids(metadata: &Metadata, members: &BTreeSet<PackageId>) -> BTreeMap<PackageId, String> {
    let packages: Vec<&CargoPackage> = metadata
        .packages
        .iter()
        .filter(|package| members.contains(&package.id))
        .collect();
    let plain = |package: &CargoPackage| {
        spdx_id(
            "crate",
            &[package.name.as_str(), &package.version.to_string()],
        )
    };
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for package in &packages {
        *uses.entry(plain(package)).or_default() += 1;
    }
    packages
        .iter()
        .map(|package| {
            let mut id = plain(package);
            if uses[&id] > 1 {
                let source = package
                    .source
                    .as_ref()
                    .map_or("path", |source| source.repr.as_str());
                id.push('-');
                id.push_str(&hex::encode(Sha256::digest(source.as_bytes()))[..8]);
            }
            (package.id.clone(), id)
        })
        .collect()
}

fn image_package(id: &str, subject: &SbomSubject<'_>) -> Package {
    let version = tag(subject.reference);
    Package {
        spdx_id: id.to_owned(),
        name: subject.image.to_owned(),
        download_location: NOASSERTION.to_owned(),
        files_analyzed: false,
        license_concluded: NOASSERTION.to_owned(),
        license_declared: NOASSERTION.to_owned(),
        copyright_text: NOASSERTION.to_owned(),
        checksums: Vec::new(),
        external_refs: image_purl(subject.reference, version.as_deref())
            .map(purl)
            .into_iter()
            .collect(),
        primary_package_purpose: Some("CONTAINER".to_owned()),
        version_info: version,
    }
}

fn base_package(id: &str, base: &BaseImage<'_>) -> Package {
    // The digest is the SHA-256 of the base's manifest: a checksum in SPDX's own terms.
    let checksums = base
        .digest
        .strip_prefix("sha256:")
        .map(|hex| Checksum {
            algorithm: SHA256.to_owned(),
            checksum_value: hex.to_owned(),
        })
        .into_iter()
        .collect();
    Package {
        spdx_id: id.to_owned(),
        name: base.reference.to_owned(),
        version_info: Some(base.digest.to_owned()),
        download_location: NOASSERTION.to_owned(),
        files_analyzed: false,
        license_concluded: NOASSERTION.to_owned(),
        license_declared: NOASSERTION.to_owned(),
        copyright_text: NOASSERTION.to_owned(),
        checksums,
        external_refs: image_purl(base.reference, Some(base.digest))
            .map(purl)
            .into_iter()
            .collect(),
        primary_package_purpose: Some("CONTAINER".to_owned()),
    }
}

fn purl(locator: String) -> ExternalRef {
    ExternalRef {
        reference_category: PACKAGE_MANAGER.to_owned(),
        reference_type: "purl".to_owned(),
        reference_locator: locator,
    }
}

fn relationship(from: &str, kind: &str, to: &str) -> Relationship {
    Relationship {
        spdx_element_id: from.to_owned(),
        relationship_type: kind.to_owned(),
        related_spdx_element: to.to_owned(),
    }
}

/// `epoch` as RFC 3339 UTC, `1970-01-01T00:00:00Z` form.
fn created(epoch: i64) -> Result<String, SbomError> {
    let time =
        time::OffsetDateTime::from_unix_timestamp(epoch).map_err(|_| SbomError::Epoch(epoch))?;
    time.format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| SbomError::Epoch(epoch))
}

/// Sets the namespace to a URL with the SHA-256 of the document serialized without it, and serializes the result.
fn with_namespace(mut document: Document, subject: &SbomSubject<'_>) -> Result<Vec<u8>, SbomError> {
    let unnamed = serialize(&document)?;
    let digest = hex::encode(Sha256::digest(&unnamed));
    let name = spdx_id("x", &[subject.image, &subject.platform.path_segment()]);
    let name = name.trim_start_matches("SPDXRef-x-");
    document.document_namespace = format!("https://spdx.org/spdxdocs/cargo-hive/{name}-{digest}");
    serialize(&document)
}

fn serialize(document: &Document) -> Result<Vec<u8>, SbomError> {
    let mut bytes = serde_json::to_vec_pretty(document).map_err(SbomError::Serialize)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cargo_metadata::MetadataCommand;

    use super::*;
    use crate::cargo::{Cargo, CargoFlags};

    const X86: &str = "x86_64-unknown-linux-gnu";
    const ARM: &str = "aarch64-unknown-linux-gnu";
    const BASE_DIGEST: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn library(dir: &Path, name: &str, extra: &str) {
        write(
            dir,
            &format!("{name}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 license = \"MIT/Apache-2.0\"\n{extra}"
            ),
        );
        write(dir, &format!("{name}/src/lib.rs"), "");
    }

    /// A workspace with path dependencies only (no network): `app` has a normal dependency (with one of its own),
    /// a dev, a build, an aarch64-only, a feature-gated and a proc-macro dependency.
    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "Cargo.toml",
            "[workspace]\nresolver = \"2\"\nmembers = [\"app\", \"normal\", \"deep\", \"devd\", \"buildd\", \
             \"armonly\", \"feat\", \"derive\"]\n",
        );
        write(
            root,
            "app/Cargo.toml",
            r#"[package]
name = "app"
version = "1.4.2"
edition = "2021"
license = "MIT"

[features]
extra = ["dep:feat"]

[dependencies]
normal = { path = "../normal" }
feat = { path = "../feat", optional = true }
derive = { path = "../derive" }

[dev-dependencies]
devd = { path = "../devd" }

[build-dependencies]
buildd = { path = "../buildd" }

[target.'cfg(target_arch = "aarch64")'.dependencies]
armonly = { path = "../armonly" }
"#,
        );
        write(root, "app/src/main.rs", "fn main() {}\n");
        library(
            root,
            "normal",
            "[dependencies]\ndeep = { path = \"../deep\" }\n",
        );
        for name in ["deep", "devd", "buildd", "armonly", "feat"] {
            library(root, name, "");
        }
        library(root, "derive", "[lib]\nproc-macro = true\n");
        dir
    }

    fn cargo(features: &[&str]) -> Cargo {
        Cargo {
            program: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            flags: CargoFlags {
                features: features.iter().map(|f| f.to_string()).collect(),
                offline: true,
                ..CargoFlags::default()
            },
            ..Cargo::default()
        }
    }

    fn subject<'a>(
        root: &'a str,
        platform: &'a Platform,
        triple: &'a str,
        epoch: i64,
    ) -> SbomSubject<'a> {
        SbomSubject {
            image: "app",
            reference: "localhost:5000/acme/app:1.4.2",
            package: "app",
            manifest_path: root,
            binary: "app",
            platform,
            triple,
            base: Some(BaseImage {
                reference: "localhost:5000/hive/glibc",
                digest: BASE_DIGEST,
            }),
            epoch,
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        manifest: String,
        amd64: Platform,
        arm64: Platform,
    }

    fn fixture() -> Fixture {
        let dir = workspace();
        let manifest = dir.path().join("app/Cargo.toml").display().to_string();
        Fixture {
            dir,
            manifest,
            amd64: Platform::parse("linux/amd64").unwrap(),
            arm64: Platform::parse("linux/arm64").unwrap(),
        }
    }

    fn parse(bytes: &[u8]) -> Document {
        serde_json::from_slice(bytes).unwrap()
    }

    fn crate_names(document: &Document) -> Vec<&str> {
        document
            .packages
            .iter()
            .filter(|package| package.spdx_id.starts_with("SPDXRef-crate-"))
            .map(|package| package.name.as_str())
            .collect()
    }

    #[test]
    fn each_platform_lists_the_crates_linked_into_its_binary() {
        let f = fixture();
        let triples = [X86.to_owned(), ARM.to_owned()];
        let graphs = DependencyGraphs::load(&cargo(&[]), &triples, f.dir.path()).unwrap();
        let amd64 = parse(
            &graphs
                .document(&subject(&f.manifest, &f.amd64, X86, 0))
                .unwrap(),
        );
        let arm64 = parse(
            &graphs
                .document(&subject(&f.manifest, &f.arm64, ARM, 0))
                .unwrap(),
        );
        // Dev and build dependencies, proc macros and the unrequested feature's crate are in neither.
        assert_eq!(crate_names(&amd64), ["app", "deep", "normal"]);
        assert_eq!(crate_names(&arm64), ["app", "armonly", "deep", "normal"]);

        let with_feature =
            DependencyGraphs::load(&cargo(&["app/extra"]), &triples[..1], f.dir.path()).unwrap();
        let amd64 = parse(
            &with_feature
                .document(&subject(&f.manifest, &f.amd64, X86, 0))
                .unwrap(),
        );
        assert_eq!(crate_names(&amd64), ["app", "deep", "feat", "normal"]);
    }

    #[test]
    fn the_document_says_what_the_issue_asks() {
        let f = fixture();
        let graphs = DependencyGraphs::load(&cargo(&[]), &[ARM.to_owned()], f.dir.path()).unwrap();
        let document = parse(
            &graphs
                .document(&subject(&f.manifest, &f.arm64, ARM, 1_700_000_000))
                .unwrap(),
        );
        assert_eq!(document.spdx_version, "SPDX-2.3");
        assert_eq!(
            document.name,
            "localhost:5000/acme/app:1.4.2 on linux/arm64 (binary app)"
        );
        assert_eq!(document.creation_info.created, "2023-11-14T22:13:20Z");
        assert_eq!(
            document.creation_info.creators,
            [format!("Tool: cargo-hive-{}", env!("CARGO_PKG_VERSION"))]
        );
        assert!(
            document
                .document_namespace
                .starts_with("https://spdx.org/spdxdocs/cargo-hive/app-linux-arm64-"),
            "{}",
            document.document_namespace
        );
        let ids: Vec<&str> = document
            .packages
            .iter()
            .map(|p| p.spdx_id.as_str())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);

        let package = |id: &str| document.packages.iter().find(|p| p.spdx_id == id).unwrap();
        let app = package("SPDXRef-crate-app-1.4.2");
        assert_eq!(app.primary_package_purpose.as_deref(), Some("APPLICATION"));
        assert_eq!(app.purl(), Some("pkg:cargo/app@1.4.2"));
        assert_eq!(app.license_declared, "MIT");
        assert_eq!(app.download_location, "NOASSERTION");
        let normal = package("SPDXRef-crate-normal-0.1.0");
        assert_eq!(normal.license_declared, "MIT OR Apache-2.0");
        assert_eq!(normal.primary_package_purpose.as_deref(), Some("LIBRARY"));
        assert!(normal.checksums.is_empty());

        let image = package("SPDXRef-image-app");
        assert_eq!(image.primary_package_purpose.as_deref(), Some("CONTAINER"));
        assert_eq!(image.version_info.as_deref(), Some("1.4.2"));
        assert_eq!(
            image.purl(),
            Some("pkg:docker/acme/app@1.4.2?repository_url=localhost:5000")
        );
        let base = package("SPDXRef-base-app");
        assert_eq!(base.version_info.as_deref(), Some(BASE_DIGEST));
        assert_eq!(base.checksums[0].checksum_value, &BASE_DIGEST[7..]);

        let related: Vec<(&str, &str, &str)> = document
            .relationships
            .iter()
            .map(|r| {
                (
                    r.spdx_element_id.as_str(),
                    r.relationship_type.as_str(),
                    r.related_spdx_element.as_str(),
                )
            })
            .collect();
        assert_eq!(
            related,
            [
                ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image-app"),
                (
                    "SPDXRef-crate-app-1.4.2",
                    "DEPENDS_ON",
                    "SPDXRef-crate-armonly-0.1.0"
                ),
                (
                    "SPDXRef-crate-app-1.4.2",
                    "DEPENDS_ON",
                    "SPDXRef-crate-normal-0.1.0"
                ),
                (
                    "SPDXRef-crate-normal-0.1.0",
                    "DEPENDS_ON",
                    "SPDXRef-crate-deep-0.1.0"
                ),
                ("SPDXRef-image-app", "CONTAINS", "SPDXRef-crate-app-1.4.2"),
                ("SPDXRef-image-app", "DESCENDANT_OF", "SPDXRef-base-app"),
            ]
        );
    }

    #[test]
    fn documents_are_byte_for_byte_deterministic() {
        let f = fixture();
        let triples = [X86.to_owned()];
        let first = DependencyGraphs::load(&cargo(&[]), &triples, f.dir.path()).unwrap();
        let second = DependencyGraphs::load(&cargo(&[]), &triples, f.dir.path()).unwrap();
        let one = first
            .document(&subject(&f.manifest, &f.amd64, X86, 0))
            .unwrap();
        assert_eq!(
            one,
            first
                .document(&subject(&f.manifest, &f.amd64, X86, 0))
                .unwrap()
        );
        assert_eq!(
            one,
            second
                .document(&subject(&f.manifest, &f.amd64, X86, 0))
                .unwrap()
        );

        // The namespace follows the content.
        let later = second
            .document(&subject(&f.manifest, &f.amd64, X86, 1))
            .unwrap();
        assert_ne!(
            parse(&one).document_namespace,
            parse(&later).document_namespace
        );
        let scratch = SbomSubject {
            base: None,
            ..subject(&f.manifest, &f.amd64, X86, 0)
        };
        let scratch = parse(&second.document(&scratch).unwrap());
        assert!(
            scratch
                .packages
                .iter()
                .all(|p| p.spdx_id != "SPDXRef-base-app")
        );
        assert!(
            scratch
                .relationships
                .iter()
                .all(|r| r.relationship_type != "DESCENDANT_OF")
        );
    }

    /// The example workspace, as the end-to-end tests release it: a crates.io crate with its Cargo.lock checksum,
    /// and `arm-support` only on arm64.
    #[test]
    fn the_example_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/workspace");
        let manifest = root.join("crates/api/Cargo.toml");
        let manifest = manifest.canonicalize().unwrap().display().to_string();
        let mut cargo = cargo(&[]);
        // The example's lock is committed: it must not change, and itoa is in cargo's cache (the root uses it).
        cargo.flags.locked = true;
        let triples = [X86.to_owned(), ARM.to_owned()];
        let graphs = DependencyGraphs::load(&cargo, &triples, &root).unwrap();
        let f = fixture();
        let api = |platform, triple| SbomSubject {
            image: "api",
            reference: "localhost:5000/acme/api:1.4.2",
            package: "api",
            binary: "api",
            ..subject(&manifest, platform, triple, 0)
        };
        let amd64 = parse(&graphs.document(&api(&f.amd64, X86)).unwrap());
        let arm64 = parse(&graphs.document(&api(&f.arm64, ARM)).unwrap());
        assert_eq!(crate_names(&amd64), ["api", "itoa"]);
        assert_eq!(crate_names(&arm64), ["api", "arm-support", "itoa"]);
        let itoa = amd64
            .packages
            .iter()
            .find(|package| package.name == "itoa")
            .unwrap();
        assert_eq!(itoa.version_info.as_deref(), Some("1.0.19"));
        assert_eq!(
            itoa.checksums,
            [Checksum {
                algorithm: "SHA256".into(),
                checksum_value: "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4"
                    .into(),
            }]
        );
        assert_eq!(
            itoa.download_location,
            "https://crates.io/api/v1/crates/itoa/1.0.19/download"
        );
        assert_eq!(itoa.license_declared, "MIT OR Apache-2.0");
    }

    /// Metadata as cargo prints it, for graphs a real workspace cannot make offline: `(id, name, source, proc
    /// macro)` packages and `(from, to, kinds)` edges.
    fn synthetic(
        packages: &[(&str, &str, Option<&str>, bool)],
        edges: &[(&str, &str, &[Option<&str>])],
    ) -> Metadata {
        let packages: Vec<serde_json::Value> = packages
            .iter()
            .map(|(id, name, source, proc_macro)| {
                let kind = if *proc_macro { "proc-macro" } else { "lib" };
                serde_json::json!({
                    "name": name, "version": "1.0.0", "id": id, "source": source,
                    "dependencies": [], "features": {}, "manifest_path": format!("/w/{id}/Cargo.toml"),
                    "targets": [{"kind": [kind], "crate_types": [kind], "name": name,
                                 "src_path": "/w/src/lib.rs", "edition": "2021"}],
                })
            })
            .collect();
        let mut nodes: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
        for package in &packages {
            nodes.entry(package["id"].as_str().unwrap()).or_default();
        }
        for (from, to, kinds) in edges {
            let kinds: Vec<_> = kinds
                .iter()
                .map(|kind| serde_json::json!({"kind": kind, "target": null}))
                .collect();
            nodes
                .entry(from)
                .or_default()
                .push(serde_json::json!({"name": to, "pkg": to, "dep_kinds": kinds}));
        }
        let nodes: Vec<_> = nodes
            .into_iter()
            .map(|(id, deps)| {
                serde_json::json!({"id": id, "dependencies": [], "deps": deps, "features": []})
            })
            .collect();
        let metadata = serde_json::json!({
            "packages": packages, "workspace_members": [], "target_directory": "/w/target",
            "workspace_root": "/w", "version": 1, "resolve": {"nodes": nodes, "root": null},
        });
        MetadataCommand::parse(metadata.to_string()).unwrap()
    }

    #[test]
    fn the_walk_follows_linked_edges_and_ids_stay_unique() {
        let metadata = synthetic(
            &[
                ("app", "app", None, false),
                ("dup-a", "dup", Some("sparse+https://a.example/"), false),
                ("dup-b", "dup", Some("sparse+https://b.example/"), false),
                ("both", "both", None, false),
                ("devonly", "devonly", None, false),
                ("derive", "derive", None, true),
                ("syn", "syn", None, false),
            ],
            &[
                ("app", "dup-a", &[None]),
                ("app", "dup-b", &[None]),
                // Normal on one edge kind is enough to be linked.
                ("app", "both", &[Some("dev"), None, Some("build")]),
                ("app", "devonly", &[Some("dev")]),
                ("app", "derive", &[None]),
                ("derive", "syn", &[None]),
            ],
        );
        let root = PackageId {
            repr: "app".to_owned(),
        };
        let walked = closure(&metadata, &root);
        let names: Vec<&str> = walked.packages.iter().map(|id| id.repr.as_str()).collect();
        assert_eq!(names, ["app", "both", "dup-a", "dup-b"]);
        assert_eq!(walked.edges.len(), 3);

        let ids = crate_ids(&metadata, &walked.packages);
        let id = |repr: &str| {
            ids[&PackageId {
                repr: repr.to_owned(),
            }]
                .as_str()
        };
        assert_eq!(id("app"), "SPDXRef-crate-app-1.0.0");
        let (a, b) = (id("dup-a"), id("dup-b"));
        assert!(a.starts_with("SPDXRef-crate-dup-1.0.0-"), "{a}");
        assert!(b.starts_with("SPDXRef-crate-dup-1.0.0-"), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn errors_say_what_is_missing() {
        let f = fixture();
        let graphs = DependencyGraphs::load(&cargo(&[]), &[X86.to_owned()], f.dir.path()).unwrap();
        let err = graphs
            .document(&subject(&f.manifest, &f.arm64, ARM, 0))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no dependency graph was loaded for target `{ARM}`")
        );
        let elsewhere = f
            .dir
            .path()
            .join("elsewhere/Cargo.toml")
            .display()
            .to_string();
        let err = graphs
            .document(&subject(&elsewhere, &f.amd64, X86, 0))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("package `app` ({elsewhere}) is not in cargo's resolve for target `{X86}`")
        );

        write(f.dir.path(), "app/Cargo.toml", "[package]\nname = \n");
        let err = DependencyGraphs::load(&cargo(&[]), &[X86.to_owned()], f.dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "`cargo metadata --filter-platform {X86}` failed, so no SBOM can be made:\n"
            )),
            "{message}"
        );
        assert!(message.contains("app/Cargo.toml"), "{message}");
    }
}
