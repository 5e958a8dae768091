//! `compression` and `--compression`: zstd and uncompressed layers in the OCI archive, a zstd image that runs after
//! `--load` and after `--push` then `docker pull` (Docker 26), and the error where Docker's classic store cannot
//! keep them (Docker 20.10), said before any image is built.

use hive_e2e::fixture::*;
use hive_e2e::{docker, run};
use serde_json::Value;

const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// What Docker's `moby` exporter (containerd store) calls a zstd layer: it writes Docker media types.
const DOCKER_ZSTD_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// The media types of a manifest's layers.
fn layer_media_types(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {manifest:#}"))
        .iter()
        .map(|layer| layer["mediaType"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn zstd_and_uncompressed_archives_hold_such_layers() {
    let fixture = Fixture::example("hello");
    // A RUN step's layer is compressed by the daemon: the exporter is told the compression too.
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        "compression = \"zstd\"\nrun = [\"echo made > /step\"]",
    );
    succeed(&mut fixture.build());
    let archive = OciArchive::open(&fixture.archive("hello"));
    let (_, _, manifest) = archive.manifest();
    // The base's (recompressed by the exporter's force-compression), the step's (the daemon's) and ours (packed
    // as zstd).
    let types = layer_media_types(&manifest);
    assert!(
        types.len() >= 3 && types.iter().all(|t| t == ZSTD_LAYER),
        "{types:?}"
    );
    for digest in archive.layers() {
        let blob = archive.blob_bytes(&digest);
        assert_eq!(
            &blob[..4],
            &[0x28, 0xb5, 0x2f, 0xfd],
            "{digest} is not zstd"
        );
    }

    // The flag wins over the manifest.
    succeed(fixture.build().args(["--compression", "uncompressed"]));
    let archive = OciArchive::open(&fixture.archive("hello"));
    let (_, _, manifest) = archive.manifest();
    let types = layer_media_types(&manifest);
    assert!(
        types
            .iter()
            .all(|t| t == "application/vnd.oci.image.layer.v1.tar"),
        "{types:?}"
    );
    // Our layer (the top one) is the tar itself, binary included.
    let top = archive.layers().pop().unwrap();
    let binary = hive_e2e::tar_members(&archive.blob_bytes(&top))
        .into_iter()
        .find(|(name, _)| name.trim_start_matches("./") == "usr/local/bin/hello")
        .map(|(_, data)| data)
        .expect("the binary is in the plain tar layer");
    assert_eq!(elf_arch(&binary), hive_e2e::host_arch());
}

#[test]
fn a_zstd_image_runs_after_load() {
    let repository = unique_repository("localhost:5000/e2e/hello-zstd-load");
    let (fixture, _cleanup) = Fixture::hello_in(&repository);
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        "compression = \"zstd\"\ncompression-level = 9",
    );
    let reference = format!("{repository}:0.1.0");
    succeed(fixture.build().arg("--load"));
    let output = succeed(docker().args(["run", "--rm", &reference]));
    assert_eq!(output.stdout, GREETING);
    // What Docker keeps: `docker save` writes the image's own blobs.
    let saved = fixture.scratch("saved.tar");
    succeed(
        docker()
            .args(["save", "--output"])
            .arg(&saved)
            .arg(&reference),
    );
    let members: std::collections::BTreeMap<String, Vec<u8>> =
        hive_e2e::tar_members(&std::fs::read(&saved).unwrap())
            .into_iter()
            .collect();
    let blob = |digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&members[&format!("blobs/sha256/{hex}")]).unwrap()
    };
    let index: Value = serde_json::from_slice(&members["index.json"]).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let types = layer_media_types(&manifest);
    assert!(
        !types.is_empty()
            && types
                .iter()
                .all(|t| t == ZSTD_LAYER || t == DOCKER_ZSTD_LAYER),
        "{types:?}"
    );
}

#[test]
fn a_pushed_zstd_image_pulls_back_and_runs() {
    let path = unique_repository("e2e/hello-zstd-push");
    let repository = format!("localhost:5000/{path}");
    let (fixture, _cleanup) = Fixture::hello_in(&repository);
    let reference = format!("{repository}:0.1.0");
    // Without provenance the tag names the image's manifest itself.
    succeed(
        fixture
            .build()
            .args(["--push", "--provenance=false", "--compression", "zstd"]),
    );
    let (_, manifest) = registry_manifest(&path, "0.1.0");
    let types = layer_media_types(&manifest);
    assert!(
        !types.is_empty() && types.iter().all(|t| t == ZSTD_LAYER),
        "{types:?}"
    );
    let _ = docker().args(["rmi", "--force", &reference]).output();
    succeed(docker().args(["pull", "--quiet", &reference]));
    let output = succeed(docker().args(["run", "--rm", &reference]));
    assert_eq!(output.stdout, GREETING);
}

#[test]
fn docker_20_refuses_zstd_before_building() {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys("Cargo.toml", "hello", "compression = \"zstd\"");
    let result = run(fixture.build_at(&docker20_addr()).arg("--load"));
    assert_eq!(result.code, 1, "{result:#?}");
    for needle in [
        "image `hello` asks for zstd layers",
        "has no zstd",
        "containerd image store",
    ] {
        assert!(result.stderr.contains(needle), "{needle}: {result:#?}");
    }
    assert!(!result.stderr.contains("panicked"), "{result:#?}");
    // No image was started.
    assert!(!result.stderr.contains("[hello] building"), "{result:#?}");
}

#[test]
fn a_level_the_compression_lacks_is_bad_input() {
    let fixture = Fixture::example("hello");
    let result = run(fixture
        .build()
        .args(["--compression", "zstd", "--compression-level", "30"]));
    fixture.assert_fails(
        &result,
        &["--compression-level 30 is not a level of zstd: it takes 1 to 22"],
    );
    let usage = run(fixture.build().args(["--compression", "brotli"]));
    assert_eq!(usage.code, 2, "{usage:#?}");
    assert!(usage.stderr.contains("brotli"), "{usage:#?}");
}
