//! Multi-platform images end to end (issue 9): examples/workspace for linux/amd64 and linux/arm64, cross-compiled by
//! the user's cargo (the linkers are in the example's `.cargo/config.toml`), one OCI index per image in the registry
//! and in the archive, each platform's binary of the right ELF machine, the arm64 images run under qemu; `--load` on
//! both Docker daemons; the errors of a missing target, a base without the platform, and a wrong selection; per
//! platform freshness; and the plan of each platform.
//!
//! Images that reach a registry or a Docker store get a repository unique to the test (and process), and are removed
//! from the store at the end.

use std::collections::BTreeMap;

use hive_build::plan::{Origin, Plan};
use hive_e2e::fixture::*;
use hive_e2e::{Run, docker, host_arch, run};
use serde_json::Value;

/// The example's platforms, in its order.
const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];

/// One image of examples/workspace: its name, repository (under the workspace's registry), first tag, the path of
/// its binary in the image and what the image prints when run.
struct ExampleImage {
    name: &'static str,
    repository: &'static str,
    tag: &'static str,
    binary: &'static str,
    prints: &'static str,
}

const IMAGES: [ExampleImage; 4] = [
    ExampleImage {
        name: "acmectl",
        repository: "acmectl",
        tag: "1.4.2",
        binary: "/usr/local/bin/acmectl",
        prints: "acmectl: nothing to do\n",
    },
    ExampleImage {
        name: "api",
        repository: "api",
        tag: "1.4.2",
        binary: "/usr/local/bin/api",
        prints: "api would listen on 0.0.0.0:8080\n",
    },
    ExampleImage {
        name: "worker",
        repository: "worker",
        tag: "1.4.2",
        binary: "/usr/local/bin/worker",
        prints: "worker: waiting for jobs\n",
    },
    ExampleImage {
        name: "worker-admin",
        repository: "ops/worker-admin",
        tag: "1.4.2-admin",
        binary: "/usr/local/bin/worker-admin",
        prints: "worker-admin: no jobs to inspect\n",
    },
];

/// A registry prefix unique to a test of this process (`localhost:5000/e2e/mp-<what>-<pid>`).
fn unique_registry(what: &str) -> String {
    unique_repository(&format!("localhost:5000/e2e/mp-{what}"))
}

/// The OCI architecture of a platform (`linux/arm64` → `arm64`).
fn arch(platform: &str) -> &str {
    platform.split('/').nth(1).unwrap()
}

/// Checks one image's platforms: exactly the example's two, each config's os/architecture, each binary's ELF
/// machine.
fn assert_platforms(what: &str, images: &BTreeMap<String, PlatformImage>, binary: &str) {
    assert_eq!(
        images.keys().map(String::as_str).collect::<Vec<_>>(),
        PLATFORMS,
        "{what}"
    );
    for (platform, image) in images {
        assert_eq!(image.config["os"], "linux", "{what} {platform}");
        assert_eq!(
            image.config["architecture"],
            arch(platform),
            "{what} {platform}"
        );
        assert_eq!(
            image.binary_arch(binary),
            arch(platform),
            "{what} {platform}: the binary {binary} is for the wrong machine"
        );
    }
}

/// Checks a `--metadata-file` entry against the index it describes.
fn assert_metadata(entry: &Value, index_digest: &str, images: &BTreeMap<String, PlatformImage>) {
    assert_eq!(entry["containerimage.digest"], index_digest, "{entry:#}");
    let platforms: BTreeMap<&str, &str> = images
        .iter()
        .map(|(platform, image)| (platform.as_str(), image.digest.as_str()))
        .collect();
    assert_eq!(
        entry["platforms"],
        serde_json::json!(platforms),
        "{entry:#}"
    );
}

// --- the index, pushed, read back and run --------------------------------------------------------------------------

#[test]
fn pushed_workspace_is_one_index_per_image_and_its_arm64_images_run() {
    let registry = unique_registry("push");
    let fixture = workspace_under(&registry);
    let references: Vec<String> = IMAGES
        .iter()
        .map(|image| format!("{registry}/{}:{}", image.repository, image.tag))
        .collect();
    let _cleanup = LocalImages(references.clone());
    let metadata_file = fixture.scratch("metadata.json");

    succeed(
        fixture
            .build()
            .args(["--push", "--metadata-file"])
            .arg(&metadata_file),
    );
    let metadata = read_json(&metadata_file);
    for (image, reference) in IMAGES.iter().zip(&references) {
        let path = registry_path(&format!("{registry}/{}", image.repository)).to_owned();
        let (_, index) = registry_manifest(&path, image.tag);
        assert_eq!(
            index["mediaType"], INDEX_MEDIA_TYPE,
            "{reference}: {index:#}"
        );
        let (_, images) = registry_index(&path, image.tag);
        assert_platforms(reference, &images, image.binary);
    }
    // `worker-admin` is stacked on `worker` per platform: each platform's worker layer under its own.
    let worker = registry_index(registry_path(&format!("{registry}/worker")), "1.4.2").1;
    let admin = registry_index(
        registry_path(&format!("{registry}/ops/worker-admin")),
        "1.4.2-admin",
    )
    .1;
    for platform in PLATFORMS {
        // The `worker` image's own binary (its musl triple), not one built for worker-admin's triple.
        assert!(
            admin[platform].file("/usr/local/bin/worker")
                == worker[platform].file("/usr/local/bin/worker"),
            "{platform}: worker-admin's /usr/local/bin/worker is not the worker image's"
        );
        assert_eq!(
            admin[platform].manifest["layers"][0], worker[platform].manifest["layers"][0],
            "{platform}"
        );
    }

    // Under qemu, from the registry: the arm64 image of each (musl on scratch, static glibc on glibc and busybox).
    let _ = docker()
        .arg("rmi")
        .arg("--force")
        .args(&references)
        .output();
    for (image, reference) in IMAGES.iter().zip(&references) {
        let output =
            succeed(docker().args(["run", "--rm", "--platform", "linux/arm64", reference]));
        assert_eq!(output.stdout, image.prints, "{reference}");
    }

    // The metadata file names what the registry has: the index and each platform's manifest.
    for image in &IMAGES {
        let path = registry_path(&format!("{registry}/{}", image.repository)).to_owned();
        let (digest, images) = registry_index(&path, image.tag);
        assert_metadata(&metadata["images"][image.name], &digest, &images);
    }
}

// --- the OCI archive ---------------------------------------------------------------------------------------------

#[test]
fn oci_archive_is_an_index_of_both_platforms() {
    let fixture = Fixture::example("workspace");
    succeed(&mut fixture.build());
    for image in &IMAGES {
        let archive = OciArchive::open(&fixture.archive(image.name));
        let (_, names, index) = archive.manifest();
        assert_eq!(
            index["mediaType"], INDEX_MEDIA_TYPE,
            "{}: {index:#}",
            image.name
        );
        assert!(
            names.contains(&format!(
                "localhost:5000/acme/{}:{}",
                image.repository, image.tag
            )),
            "{names:?}"
        );
        let (_, images) = archive.index();
        assert_platforms(image.name, &images, image.binary);
    }
}

#[test]
fn metadata_file_records_the_index_and_each_platform_manifest() {
    let fixture = Fixture::example("workspace");
    let metadata_file = fixture.scratch("metadata.json");
    succeed(
        fixture
            .build()
            .args(["--image", "api", "--metadata-file"])
            .arg(&metadata_file),
    );
    let metadata = read_json(&metadata_file);
    let archive = OciArchive::open(&fixture.archive("api"));
    let (digest, images) = archive.index();
    assert_metadata(&metadata["images"]["api"], &digest, &images);
    assert!(
        images.values().all(|image| image.digest != digest),
        "the index digest is one of its manifests'"
    );
}

// --- --load --------------------------------------------------------------------------------------------------------

#[test]
fn load_into_the_containerd_store_loads_every_platform() {
    let registry = unique_registry("load");
    let fixture = workspace_under(&registry);
    let loaded = ["api", "worker"];
    let references: Vec<String> = loaded
        .iter()
        .flat_map(|name| {
            [
                format!("{registry}/{name}:1.4.2"),
                format!("{registry}/{name}:0123456"),
            ]
        })
        .collect();
    let _cleanup = LocalImages(references.clone());

    let result = succeed(
        fixture
            .build()
            .args(["--load", "--image", "api", "--image", "worker"]),
    );
    assert!(!result.stderr.contains("loads one platform"), "{result:#?}");
    // Never pushed: each platform can only come from the store (`--pull never`).
    for (name, prints) in [("api", IMAGES[1].prints), ("worker", IMAGES[2].prints)] {
        let reference = format!("{registry}/{name}:1.4.2");
        for platform in PLATFORMS {
            let output = succeed(docker().args([
                "run",
                "--rm",
                "--pull",
                "never",
                "--platform",
                platform,
                &reference,
            ]));
            assert_eq!(output.stdout, prints, "{reference} on {platform}");
        }
    }
}

/// Removes images from the Docker 20.10 store when dropped.
struct Docker20Images(Vec<String>);

impl Drop for Docker20Images {
    fn drop(&mut self) {
        let _ = docker20().arg("rmi").arg("--force").args(&self.0).output();
    }
}

#[test]
fn load_into_docker_20_10_loads_the_host_platform_and_says_so() {
    let registry = unique_registry("load20");
    let fixture = workspace_under(&registry);
    let reference = format!("{registry}/api:1.4.2");
    let _cleanup = Docker20Images(vec![reference.clone(), format!("{registry}/api:0123456")]);

    let result = succeed(
        fixture
            .build_at(&docker20_addr())
            .args(["--load", "--image", "api"]),
    );
    let notes: Vec<&str> = result
        .stderr
        .lines()
        .filter(|line| line.contains("loads one platform"))
        .collect();
    assert_eq!(notes.len(), 1, "{result:#?}");
    assert!(
        notes[0].contains(&format!("linux/{}", host_arch())),
        "the note names the platform it loads: {}",
        notes[0]
    );
    let inspect = succeed(docker20().args([
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        &reference,
    ]));
    assert_eq!(inspect.stdout.trim(), format!("linux/{}", host_arch()));
    let output = succeed(docker20().args(["run", "--rm", &reference]));
    assert_eq!(output.stdout, IMAGES[1].prints);
}

#[test]
fn load_into_docker_20_10_without_the_host_platform_is_refused() {
    // Two platforms, neither the host's. arm64 is the one foreign architecture the machines' toolchain mirror has
    // (armv7 is not there), so the second platform is arm64 spelt with its variant, built on musl.
    let registry = unique_registry("load20-foreign");
    let fixture = workspace_under(&registry);
    // Only in case it is loaded after all.
    let _cleanup = Docker20Images(vec![
        format!("{registry}/api:1.4.2"),
        format!("{registry}/api:0123456"),
    ]);
    fixture.set_image_keys(
        "crates/api/Cargo.toml",
        "api",
        "platforms = [\"linux/arm64\", \"linux/arm64/v8\"]\nbase = \"scratch\"\ntargets = { \"linux/arm64\" = \
         \"aarch64-unknown-linux-musl\", \"linux/arm64/v8\" = \"aarch64-unknown-linux-musl\" }",
    );
    let result = run(fixture
        .build_at(&docker20_addr())
        .args(["--load", "--image", "api"]));
    fixture.assert_fails(
        &result,
        &[
            "image `api` is built for linux/arm64, linux/arm64/v8 only",
            "loads only the host platform",
            "--push",
        ],
    );
}

/// Docker 20.10 keeps one image per name and pushes from there: pushing two platforms would push one, so it is
/// refused before anything is built for it, naming what works.
#[test]
fn push_of_two_platforms_through_docker_20_10_is_refused() {
    let fixture = workspace_under(&unique_registry("push20"));
    let result = run(fixture
        .build_at(&docker20_addr())
        .args(["--push", "--image", "api"]));
    fixture.assert_fails(
        &result,
        &["image `api`", "linux/amd64, linux/arm64", "--push"],
    );
    assert!(
        !result.stderr.contains("exporting"),
        "nothing was exported: {result:#?}"
    );
}

// --- errors --------------------------------------------------------------------------------------------------------

/// examples/workspace built for linux/amd64 and linux/riscv64 (a target these machines do not install).
fn workspace_on_riscv64() -> Fixture {
    let fixture = Fixture::example("workspace");
    fixture.edit(
        "Cargo.toml",
        "platforms = [\"linux/amd64\", \"linux/arm64\"]",
        "platforms = [\"linux/amd64\", \"linux/riscv64\"]",
    );
    fixture
}

#[test]
fn a_target_that_is_not_installed_is_named_with_its_rustup_command() {
    let triple = "riscv64gc-unknown-linux-gnu";
    let sysroot = succeed(std::process::Command::new("rustc").args(["--print", "sysroot"]));
    let installed = std::path::Path::new(sysroot.stdout.trim())
        .join("lib/rustlib")
        .join(triple);
    assert!(
        !installed.exists(),
        "{triple} is installed here ({}): this test needs a target that is not",
        installed.display()
    );
    let fixture = workspace_on_riscv64();
    let result = run(fixture.build().args(["--image", "api"]));
    fixture.assert_fails(&result, &[triple, &format!("rustup target add {triple}")]);
    // Found before cargo ran: nothing was compiled.
    assert!(!fixture.target().join("debug").exists(), "{result:#?}");
    assert!(!fixture.target().join(triple).exists(), "{result:#?}");
}

/// The sysroot remembered from an earlier build spares rustc while it has every target; when it is another
/// toolchain's (one that has the target), cargo fails, and the missing target is still what is said.
#[test]
fn a_missing_target_is_named_even_when_the_remembered_sysroot_has_it() {
    let triple = "riscv64gc-unknown-linux-gnu";
    let fixture = workspace_on_riscv64();
    let other = fixture.scratch("other-toolchain");
    let lib = other.join("lib/rustlib").join(triple).join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libstd-0123abcd.rlib"), b"").unwrap();
    let memory = fixture.target().join("hive/.fresh/.sysroot.json");
    std::fs::create_dir_all(memory.parent().unwrap()).unwrap();
    let remembered = serde_json::json!({"rustc": "rustc", "dir": fixture.root(), "sysroot": other});
    std::fs::write(&memory, remembered.to_string()).unwrap();
    let result = run(fixture.build().args(["--image", "api"]));
    fixture.assert_fails(&result, &[triple, &format!("rustup target add {triple}")]);
    // cargo ran (the remembered sysroot had the target) and failed for want of it.
    assert!(fixture.target().join(triple).exists(), "{result:#?}");
}

#[test]
fn a_base_without_the_platform_is_refused_at_its_key() {
    // A single-platform base: hello, pushed for linux/amd64 only.
    let hello = Fixture::example("hello");
    let base = unique_registry("amd64-only");
    hello.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{base}\"\nplatforms = [\"linux/amd64\"]"),
    );
    let _cleanup = LocalImages(vec![format!("{base}:0.1.0"), format!("{base}:latest")]);
    // No provenance: a plain manifest, whose config is what tells its platform.
    succeed(hello.build().args(["--push", "--provenance=false"]));
    let (_, manifest) = registry_manifest(registry_path(&base), "0.1.0");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let fixture = Fixture::example("workspace");
    let manifest = "crates/worker/Cargo.toml";
    fixture.edit(
        manifest,
        "base = \"scratch\"",
        &format!("base = \"{base}\""),
    );
    let line = fixture.line_of(manifest, &format!("base = \"{base}\""));
    let result = run(fixture.build().args(["--image", "worker"]));
    fixture.assert_fails(
        &result,
        &[
            &base,
            "has no linux/arm64 image (it has: linux/amd64)",
            &format!("Cargo.toml:{line}:"),
        ],
    );
}

/// `cargo hive plan` of the workspace with the `worker` image's `targets` replaced: exit 1, the diagnostic at the
/// `targets` line.
fn plan_with_worker_targets(targets: &str) -> (Fixture, Run, usize) {
    let fixture = Fixture::example("workspace");
    let manifest = "crates/worker/Cargo.toml";
    fixture.edit(
        manifest,
        "targets = { \"linux/amd64\" = \"x86_64-unknown-linux-musl\", \"linux/arm64\" = \"aarch64-unknown-linux-musl\" }",
        &format!("targets = {targets}"),
    );
    let line = fixture.line_of(manifest, "targets = ");
    let result = run(&mut fixture.plan());
    (fixture, result, line)
}

#[test]
fn a_triple_for_another_architecture_is_a_plan_error_at_its_key() {
    let (_fixture, result, line) =
        plan_with_worker_targets("{ \"linux/amd64\" = \"aarch64-unknown-linux-musl\" }");
    hive_e2e::assert_error(
        &result,
        &[
            "aarch64-unknown-linux-musl",
            "linux/amd64",
            &format!("crates/worker/Cargo.toml:{line}:"),
        ],
    );
}

#[test]
fn an_unknown_triple_is_a_plan_error_at_its_key() {
    let (_fixture, result, line) =
        plan_with_worker_targets("{ \"linux/amd64\" = \"x86_64-unknown-linux-gnux\" }");
    hive_e2e::assert_error(
        &result,
        &[
            "x86_64-unknown-linux-gnux",
            &format!("crates/worker/Cargo.toml:{line}:"),
        ],
    );
    assert!(
        result.stderr.to_lowercase().contains("unknown"),
        "{}",
        result.stderr
    );
}

#[test]
fn a_platform_no_image_has_is_an_error_listing_theirs() {
    let fixture = Fixture::example("workspace");
    let result = run(fixture.build().args(["--platform", "linux/s390x"]));
    fixture.assert_fails(
        &result,
        &[
            "no selected image has platform linux/s390x",
            "linux/amd64",
            "linux/arm64",
        ],
    );
}

#[test]
fn a_target_no_platform_is_built_for_is_an_error_naming_their_triples() {
    let fixture = Fixture::example("workspace");
    let result =
        run(fixture
            .build()
            .args(["--image", "api", "--target", "x86_64-unknown-linux-musl"]));
    fixture.assert_fails(
        &result,
        &[
            "x86_64-unknown-linux-musl",
            "linux/amd64",
            "x86_64-unknown-linux-gnu",
            "linux/arm64",
            "aarch64-unknown-linux-gnu",
        ],
    );
}

// --- selection -----------------------------------------------------------------------------------------------------

#[test]
fn target_selects_the_platforms_built_for_it() {
    let fixture = Fixture::example("workspace");
    let args = ["--image", "api", "--target", "aarch64-unknown-linux-gnu"];
    let plan = succeed(
        fixture
            .plan()
            .args(["--quiet", "--format", "json"])
            .args(args),
    );
    let plan: Plan = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan.images[0].platforms, ["linux/arm64"]);

    succeed(fixture.build().args(args));
    // One platform: a plain manifest, as before multi-platform.
    let archive = OciArchive::open(&fixture.archive("api"));
    let (_, _, manifest) = archive.manifest();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(archive.config()["architecture"], "arm64");
    let layer = gunzip(&archive.blob_bytes(archive.layers().last().unwrap()));
    let (_, binary) = hive_e2e::tar_members(&layer)
        .into_iter()
        .find(|(name, _)| name.trim_start_matches('/') == "usr/local/bin/api")
        .expect("the binary in the top layer");
    assert_eq!(elf_arch(&binary), "arm64");
    // Only that triple was compiled.
    assert!(!fixture.binary("x86_64-unknown-linux-gnu", "api").exists());
}

// --- freshness -----------------------------------------------------------------------------------------------------

#[test]
fn only_the_changed_platform_binary_is_sent_again() {
    let fixture = Fixture::example("workspace");
    let build = |extra_env: Option<(&str, &str)>, metadata: &str| {
        let path = fixture.scratch(metadata);
        let mut command = fixture.build();
        command
            .args(["--image", "worker", "--progress", "json", "--metadata-file"])
            .arg(&path);
        if let Some((key, value)) = extra_env {
            command.env(key, value);
        }
        let progress = events(&succeed(&mut command));
        (
            solved(&progress),
            read_json(&path)["images"]["worker"].clone(),
        )
    };
    let (first, _) = build(None, "first.json");
    assert!(first.contains("worker"));
    let (_, before) = OciArchive::open(&fixture.archive("worker")).index();
    let amd64 = fixture.binary("x86_64-unknown-linux-musl", "worker");
    let amd64_modified = std::fs::metadata(&amd64).unwrap().modified().unwrap();

    let (again, _) = build(None, "again.json");
    assert!(
        again.is_empty(),
        "nothing changed, yet BuildKit worked on {again:?}"
    );

    // Other flags for the arm64 target alone: cargo rebuilds only the arm64 binary, with other content — content
    // of this run only (its own symbol hashes), or the daemon could hold its layer from an earlier run already.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let flags = format!(
        "-C strip=debuginfo -C metadata=run{}-{}",
        std::process::id(),
        now.as_nanos()
    );
    let (third, entry) = build(
        Some(("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS", &flags)),
        "third.json",
    );
    assert!(third.contains("worker"));
    assert_eq!(
        std::fs::metadata(&amd64).unwrap().modified().unwrap(),
        amd64_modified,
        "the amd64 binary was rebuilt"
    );
    let (_, after) = OciArchive::open(&fixture.archive("worker")).index();
    // What went to the daemon is the arm64 image's own layer (its binary, packed), nothing of amd64's.
    let layer_size = |platform: &str| {
        let layers = after[platform].manifest["layers"].as_array().unwrap();
        layers.last().unwrap()["size"].as_u64().unwrap()
    };
    assert_eq!(
        entry["bytes_sent"],
        layer_size("linux/arm64"),
        "sent vs the arm64 layer's size (amd64's is {})",
        layer_size("linux/amd64")
    );
    assert_eq!(after["linux/amd64"].digest, before["linux/amd64"].digest);
    assert_ne!(after["linux/arm64"].digest, before["linux/arm64"].digest);
}

// --- plan ----------------------------------------------------------------------------------------------------------

#[test]
fn plan_shows_each_platform_triple_and_base_with_their_origins() {
    let fixture = Fixture::example("workspace");
    let result = succeed(fixture.plan().args(["--quiet", "--format", "json"]));
    let plan: Plan = serde_json::from_str(&result.stdout).unwrap();
    let per_platform = |name: &str| {
        let image = plan.images.iter().find(|image| image.name == name).unwrap();
        assert_eq!(image.platforms, PLATFORMS);
        image
            .per_platform
            .iter()
            .map(|entry| {
                (
                    entry.platform.as_str(),
                    entry.target.as_str(),
                    &entry.origins,
                )
            })
            .collect::<Vec<_>>()
    };
    let api = per_platform("api");
    assert_eq!(
        api.iter().map(|(p, t, _)| (*p, *t)).collect::<Vec<_>>(),
        [
            ("linux/amd64", "x86_64-unknown-linux-gnu"),
            ("linux/arm64", "aarch64-unknown-linux-gnu")
        ]
    );
    for (platform, _, origins) in &api {
        assert_eq!(origins.get("target"), Some(&Origin::Default), "{platform}");
    }
    let worker = per_platform("worker");
    assert_eq!(
        worker.iter().map(|(p, t, _)| (*p, *t)).collect::<Vec<_>>(),
        [
            ("linux/amd64", "x86_64-unknown-linux-musl"),
            ("linux/arm64", "aarch64-unknown-linux-musl")
        ]
    );
    for (platform, _, origins) in &worker {
        let Some(Origin::Manifest { file, line, .. }) = origins.get("target") else {
            panic!("{platform}: the target's origin is not the manifest: {origins:#?}")
        };
        assert_eq!(file, "crates/worker/Cargo.toml");
        assert_eq!(
            *line,
            fixture.line_of("crates/worker/Cargo.toml", "targets = ")
        );
    }

    // The human plan: each platform on a line of its own with its triple and its base.
    let human = succeed(fixture.plan().args(["--image", "worker"])).stdout;
    for (platform, triple) in [
        ("linux/amd64", "x86_64-unknown-linux-musl"),
        ("linux/arm64", "aarch64-unknown-linux-musl"),
    ] {
        assert!(
            human
                .lines()
                .any(|line| line.contains(platform) && line.contains(triple)),
            "no line with {platform} and {triple}:\n{human}"
        );
    }
    assert!(human.contains("scratch"), "{human}");
    assert!(human.contains("crates/worker/Cargo.toml"), "{human}");
}
