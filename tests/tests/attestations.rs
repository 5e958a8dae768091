//! Attestations end to end: the SLSA provenance the daemon writes for pushed images (on by default with `--push`,
//! `--provenance=false` turns it off), read back from the registry, and the daemons that cannot keep attestations
//! (Docker 20.10): asked for explicitly, an error before any image is built; on by default, one warning line.

use hive_build::progress::Event;
use hive_e2e::fixture::{
    Fixture, INDEX_MEDIA_TYPE, docker20_addr, events, read_json, registry_blob, registry_index,
    registry_manifest, succeed, unique_repository,
};
use hive_e2e::{host_arch, run};
use serde_json::Value;

/// The predicate type of SLSA provenance, whichever version the daemon writes (`v0.2`, `v1`).
const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/";

/// The `hello` example pushed to its own repository in the plain registry: the fixture and the repository's path.
fn hello_pushed_to(prefix: &str) -> (Fixture, String) {
    let fixture = Fixture::example("hello");
    let path = unique_repository(prefix);
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"localhost:5000/{path}\""),
    );
    (fixture, path)
}

/// The attestation manifests of an index: their descriptors.
fn attestation_manifests(index: &Value) -> Vec<Value> {
    index["manifests"]
        .as_array()
        .expect("an index lists manifests")
        .iter()
        .filter(|descriptor| {
            descriptor["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
        })
        .cloned()
        .collect()
}

/// `--push` asks the daemon for provenance by default: the tag names an index of the image and one attestation
/// manifest about it, whose in-toto statement is SLSA provenance with the image manifest as its subject; the
/// metadata file still names the platform's own manifest.
#[test]
fn a_push_carries_provenance_about_its_image() {
    let (fixture, path) = hello_pushed_to("e2e/attest-provenance");
    let metadata_file = fixture.scratch("metadata.json");
    succeed(
        fixture
            .build()
            .arg("--push")
            .arg("--metadata-file")
            .arg(&metadata_file),
    );
    let (digest, index) = registry_manifest(&path, "0.1.0");
    assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE, "{index:#}");
    let (_, images) = registry_index(&path, "0.1.0");
    let platform = format!("linux/{}", host_arch());
    let image = &images[&platform];
    assert_eq!(images.len(), 1, "{index:#}");

    let metadata = &read_json(&metadata_file)["images"]["hello"];
    assert_eq!(metadata["containerimage.digest"], digest.as_str());
    assert_eq!(metadata["platforms"][&platform], image.digest.as_str());

    let [attestation] =
        attestation_manifests(&index)
            .try_into()
            .unwrap_or_else(|list: Vec<Value>| {
                panic!(
                    "one attestation manifest expected, got {}: {index:#}",
                    list.len()
                )
            });
    assert_eq!(
        attestation["annotations"]["vnd.docker.reference.digest"],
        image.digest.as_str()
    );
    assert_eq!(attestation["platform"]["os"], "unknown");
    let (_, manifest) = registry_manifest(&path, attestation["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    let statements: Vec<Value> = layers
        .iter()
        .map(|layer| {
            assert_eq!(layer["mediaType"], "application/vnd.in-toto+json");
            serde_json::from_slice(&registry_blob(&path, layer["digest"].as_str().unwrap()))
                .unwrap()
        })
        .collect();
    let provenance = statements
        .iter()
        .find(|statement| {
            statement["predicateType"]
                .as_str()
                .is_some_and(|kind| kind.starts_with(SLSA_PROVENANCE))
        })
        .unwrap_or_else(|| panic!("no SLSA provenance among {statements:#?}"));
    let subjects = provenance["subject"].as_array().unwrap();
    assert!(!subjects.is_empty(), "{provenance:#}");
    let image_hex = image.digest.strip_prefix("sha256:").unwrap();
    for subject in subjects {
        assert_eq!(subject["digest"]["sha256"], image_hex, "{provenance:#}");
    }
}

/// `--provenance=false`: a one-platform push is a plain manifest, with no attestation, the one the metadata file
/// names with its config.
#[test]
fn provenance_false_pushes_no_attestation() {
    let (fixture, path) = hello_pushed_to("e2e/attest-none");
    let metadata_file = fixture.scratch("metadata.json");
    succeed(
        fixture
            .build()
            .args(["--push", "--provenance=false", "--metadata-file"])
            .arg(&metadata_file),
    );
    let (digest, manifest) = registry_manifest(&path, "0.1.0");
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest:#}"
    );
    let metadata = &read_json(&metadata_file)["images"]["hello"];
    assert_eq!(metadata["containerimage.digest"], digest.as_str());
    assert_eq!(
        manifest["config"]["digest"],
        metadata["containerimage.config.digest"]
    );
}

/// Docker 20.10's BuildKit (v0.8) makes no attestations: `--provenance=min` asked for explicitly is one error
/// before any image starts, naming the daemon and what to do.
#[test]
fn explicit_provenance_on_docker_20_10_fails_before_building() {
    let (fixture, _) = hello_pushed_to("e2e/attest-compat-explicit");
    let result = run(fixture.build_at(&docker20_addr()).args([
        "--push",
        "--provenance=min",
        "--progress",
        "json",
    ]));
    fixture.assert_fails(
        &result,
        &[
            "--provenance=min needs BuildKit v0.11 or newer",
            "Docker (20.10 or older)",
            "standalone buildkitd",
        ],
    );
    assert_eq!(result.code, 1, "{result:#?}");
    assert!(
        !events(&result)
            .iter()
            .any(|event| matches!(event, Event::ImageStarted { .. })),
        "{result:#?}"
    );
}

/// On Docker 20.10 the default provenance of `--push` is dropped with one warning line, and the push goes on.
#[test]
fn default_provenance_on_docker_20_10_warns_once_and_pushes() {
    let (fixture, path) = hello_pushed_to("e2e/attest-compat-default");
    let result =
        succeed(
            fixture
                .build_at(&docker20_addr())
                .args(["--push", "--progress", "plain"]),
        );
    let warnings: Vec<&str> = result
        .stderr
        .lines()
        .filter(|line| line.contains("building without attestations"))
        .collect();
    assert_eq!(warnings.len(), 1, "{result:#?}");
    assert!(
        warnings[0].contains("--provenance=min, on by default"),
        "{result:#?}"
    );
    // Docker pushes a plain manifest of its own: no index, so no attestation manifest.
    let (_, manifest) = registry_manifest(&path, "0.1.0");
    assert!(manifest["manifests"].is_null(), "{manifest:#}");
    assert!(manifest["config"].is_object(), "{manifest:#}");
}
