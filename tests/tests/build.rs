//! `cargo hive build` end to end against the real daemon: images built, loaded, pushed and run; their config,
//! reproducibility and incremental transfers checked; every failure the build issue lists; Ctrl-C; `--dry-run`.
//!
//! Each test copies an example into a temp dir of its own (outside any git checkout, so SOURCE_DATE_EPOCH is 0
//! unless a test sets it, and the `revision` label is the fixture's `HIVE_GIT_SHA`) with its own `CARGO_TARGET_DIR`
//! beside it. The examples
//! have no dependencies, so compiling them again per test costs well under a second, while a shared target dir would
//! let parallel tests overwrite each other's uplifted binaries (`target/debug/hello`) and archives
//! (`target/hive/<image>.oci.tar`) between a build and what the test then checks. Images that reach the Docker
//! store or a registry get a repository unique to the test process, and are removed from the store at the end.

use std::collections::BTreeMap;

use hive_build::progress::{Event, Record};
use hive_e2e::fixture::*;
use hive_e2e::{docker, run};
use serde_json::Value;

// --- 1. load and run --------------------------------------------------------------------------------------------

#[test]
fn hello_is_loaded_and_runs() {
    let fixture = Fixture::example("hello");
    let repository = unique_repository("localhost:5000/e2e/hello-load");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    let references = [
        format!("{repository}:0.1.0"),
        format!("{repository}:latest"),
    ];
    let _cleanup = LocalImages(references.to_vec());

    succeed(fixture.build().arg("--load"));
    // --load alone writes no archive.
    assert_eq!(fixture.outputs(), Vec::<String>::new());
    let output = succeed(docker().args(["run", "--rm", &references[0]]));
    assert_eq!(output.stdout, GREETING);
    // Both tags name the same image.
    assert_eq!(
        docker_inspect(&references[0])["Id"],
        docker_inspect(&references[1])["Id"]
    );
}

// --- 2. a workspace's images, concurrently -----------------------------------------------------------------------

#[test]
fn workspace_builds_all_images_concurrently() {
    let fixture = Fixture::example("workspace");
    // The host's platform of the example's two: one plain manifest per image (multiplatform.rs has the indexes).
    let platform = format!("linux/{}", hive_e2e::host_arch());
    let metadata_file = fixture.scratch("metadata.json");
    let result = succeed(
        fixture
            .build()
            .args([
                "--platform",
                &platform,
                "--progress",
                "json",
                "--metadata-file",
            ])
            .arg(&metadata_file),
    );
    let progress = events(&result);
    let names = ["acmectl", "api", "worker", "worker-admin"];

    // Every image started before the first one finished: they were in flight together.
    let started: Vec<(usize, &str)> = progress
        .iter()
        .enumerate()
        .filter_map(|(at, event)| match event {
            Event::ImageStarted { image, .. } => Some((at, image.as_str())),
            _ => None,
        })
        .collect();
    let mut started_names: Vec<&str> = started.iter().map(|(_, name)| *name).collect();
    started_names.sort_unstable();
    assert_eq!(started_names, names);
    let first_finished = progress
        .iter()
        .position(|event| matches!(event, Event::ImageFinished { .. }))
        .expect("an image finished");
    assert!(
        started.iter().all(|(at, _)| *at < first_finished),
        "an image started only after another finished:\n{}",
        result.stdout
    );
    assert!(matches!(
        progress.last(),
        Some(Event::BuildFinished {
            success: true,
            images_finished: 4,
            images_failed: 0,
            ..
        })
    ));

    let finished = finished(&progress);
    let metadata = read_json(&metadata_file);
    assert_eq!(metadata["format_version"], 1);
    assert_eq!(
        metadata["images"].as_object().unwrap().len(),
        4,
        "{metadata:#}"
    );
    let mut archives = names.map(|name| format!("{name}.oci.tar"));
    archives.sort_unstable();
    assert_eq!(fixture.outputs(), archives);
    let mut layers = BTreeMap::new();
    for name in names {
        let entry = &metadata["images"][name];
        let archive_path = fixture.archive(name);
        assert_eq!(
            entry["archive"],
            archive_path.to_str().unwrap(),
            "{metadata:#}"
        );
        let digest = entry["containerimage.digest"].as_str().unwrap();
        assert_eq!(finished[name].0.as_deref(), Some(digest));

        let archive = OciArchive::open(&archive_path);
        let (manifest_digest, listed_as, manifest) = archive.manifest();
        assert_eq!(manifest_digest, digest);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            manifest["config"]["digest"],
            entry["containerimage.config.digest"]
        );
        // The archive names the image by each of its references, as `docker load` / `ctr import` expect.
        assert_eq!(serde_json::json!(listed_as), entry["references"]);
        if name == "api" {
            // The image's declared annotations are on its manifest.
            assert_eq!(
                manifest["annotations"]["org.opencontainers.image.documentation"],
                "https://example.com/acme/platform/api",
                "{manifest:#}"
            );
        }
        let config = archive.config();
        assert_eq!(config["architecture"], hive_e2e::host_arch());
        assert_eq!(
            config["config"]["Entrypoint"][0],
            format!("/usr/local/bin/{name}")
        );
        layers.insert(name, archive.layers());
    }
    // `worker-admin` is built on `hive:worker`: worker's layer, then its own.
    assert_eq!(layers["worker"].len(), 1);
    assert_eq!(layers["worker-admin"].len(), 2);
    assert_eq!(layers["worker-admin"][0], layers["worker"][0]);

    // The contrast: with --jobs 1 each image starts only after the one before finished. Without their archives
    // the images are not up to date, so all four go to BuildKit again.
    for name in names {
        std::fs::remove_file(fixture.archive(name)).unwrap();
    }
    let result = succeed(fixture.build().args([
        "--platform",
        &platform,
        "--progress",
        "json",
        "--jobs",
        "1",
    ]));
    let progress = events(&result);
    assert_eq!(
        solved(&progress),
        std::collections::BTreeSet::from(names.map(str::to_owned)),
        "{}",
        result.stdout
    );
    let mut in_flight = 0;
    for event in progress {
        match event {
            Event::ImageStarted { .. } => {
                in_flight += 1;
                assert_eq!(
                    in_flight, 1,
                    "two images in flight with --jobs 1:\n{}",
                    result.stdout
                );
            }
            Event::ImageFinished { .. } | Event::ImageFailed { .. } => in_flight -= 1,
            _ => {}
        }
    }
}

/// `--output type=oci,dest=FILE` names one file: one image may go there, several may not (each would replace the
/// one before).
#[test]
fn output_file_takes_one_image() {
    let fixture = Fixture::example("workspace");
    let dest = fixture.scratch("api.tar");
    let spec = format!("type=oci,dest={}", dest.display());
    let result = run(fixture.build().args(["--output", &spec]));
    fixture.assert_fails(
        &result,
        &[
            "writes one file, but 4 images are selected (acmectl, api, worker, worker-admin)",
            "--image NAME",
        ],
    );
    assert!(!dest.exists());

    let result =
        succeed(
            fixture
                .build()
                .args(["--output", &spec, "--image", "api", "--progress", "json"]),
        );
    let progress = finished(&events(&result));
    assert_eq!(progress.keys().collect::<Vec<_>>(), ["api"]);
    let (digest, names, _) = OciArchive::open(&dest).manifest();
    assert_eq!(progress["api"].0.as_deref(), Some(digest.as_str()));
    assert_eq!(
        names,
        [
            "localhost:5000/acme/api:1.4.2",
            "localhost:5000/acme/api:0123456"
        ]
    );
    // Only the requested file: no default archive next to it.
    assert_eq!(fixture.outputs(), Vec::<String>::new());
    assert!(dest.is_file());
}

// --- 3. push and pull back -----------------------------------------------------------------------------------------

/// A push whose inputs are unchanged and whose registry still holds what was pushed, under every tag, is fresh;
/// a tag that now names something else makes it push again.
#[test]
fn unchanged_push_is_fresh_until_the_registry_holds_something_else() {
    let fixture = Fixture::example("hello");
    let path = unique_repository("e2e/hello-fresh-push");
    let repository = format!("localhost:5000/{path}");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    let references = [
        format!("{repository}:0.1.0"),
        format!("{repository}:latest"),
    ];
    let _cleanup = LocalImages(references.to_vec());
    let push = || {
        let metadata_file = fixture.scratch("metadata.json");
        let result = succeed(
            fixture
                .build()
                .args(["--push", "--progress", "plain", "--metadata-file"])
                .arg(&metadata_file),
        );
        (result, read_json(&metadata_file)["images"]["hello"].clone())
    };
    let digest_of = |tag: &str| {
        let (status, headers, _) =
            registry_get(REGISTRY, &format!("/v2/{path}/manifests/{tag}"), None);
        assert_eq!(status, 200);
        headers["docker-content-digest"].clone()
    };

    let (_, first) = push();
    let (result, second) = push();
    assert!(result.stderr.contains("registry (fresh)"), "{result:#?}");
    assert_eq!(second["bytes_sent"], 0);
    assert_eq!(
        second["containerimage.digest"],
        first["containerimage.digest"]
    );

    // `latest` now names another image: the next build is not fresh, and puts the image back.
    let other = format!("{repository}:latest");
    succeed(docker().args(["tag", "localhost:5000/hive/busybox:latest", &other]));
    succeed(docker().args(["push", "--quiet", &other]));
    assert_ne!(
        Value::String(digest_of("latest")),
        first["containerimage.digest"]
    );
    let (result, third) = push();
    assert!(!result.stderr.contains("(fresh)"), "{result:#?}");
    // The same image again; its index is new, as the daemon's provenance records each build's own times and id.
    assert_eq!(third["platforms"], first["platforms"]);
    assert!(
        third["platforms"]
            .as_object()
            .is_some_and(|platforms| platforms.len() == 1),
        "{third:#}"
    );
    for tag in ["0.1.0", "latest"] {
        assert_eq!(
            Value::String(digest_of(tag)),
            third["containerimage.digest"]
        );
    }
}

#[test]
fn pushed_image_pulls_back_and_runs() {
    let fixture = Fixture::example("hello");
    let path = unique_repository("e2e/hello-push");
    let repository = format!("localhost:5000/{path}");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    let references = [
        format!("{repository}:0.1.0"),
        format!("{repository}:latest"),
    ];
    let _cleanup = LocalImages(references.to_vec());
    let metadata_file = fixture.scratch("metadata.json");

    succeed(
        fixture
            .build()
            .arg("--push")
            .arg("--metadata-file")
            .arg(&metadata_file),
    );
    assert_eq!(fixture.outputs(), Vec::<String>::new());
    let metadata = read_json(&metadata_file);
    let digest = metadata["images"]["hello"]["containerimage.digest"]
        .as_str()
        .unwrap();
    // `--push` asks for provenance by default, so each tag names an index: the one image and its attestation
    // (`attestations.rs` reads that; with `--provenance=false` the tag is the plain manifest).
    let platform = format!("linux/{}", hive_e2e::host_arch());
    let image_digest = metadata["images"]["hello"]["platforms"][&platform]
        .as_str()
        .unwrap_or_else(|| panic!("no {platform} manifest in {metadata:#}"));
    for tag in ["0.1.0", "latest"] {
        let (status, headers, body) =
            registry_get(REGISTRY, &format!("/v2/{path}/manifests/{tag}"), None);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["docker-content-digest"], digest);
        let (_, images) = registry_index(&path, tag);
        assert_eq!(images.keys().collect::<Vec<_>>(), [&platform]);
        assert_eq!(images[&platform].digest, image_digest);
    }

    // Nothing local: what runs next comes from the registry.
    let _ = docker()
        .arg("rmi")
        .arg("--force")
        .args(&references)
        .output();
    succeed(docker().args(["pull", "--quiet", &references[0]]));
    let output = succeed(docker().args(["run", "--rm", &references[0]]));
    assert_eq!(output.stdout, GREETING);
}

// --- 4. the image's config and files -------------------------------------------------------------------------------

#[test]
fn image_config_and_files_are_as_declared() {
    let fixture = Fixture::example("workspace");
    let repository = unique_repository("localhost:5000/e2e/api");
    fixture.set_image_keys(
        "crates/api/Cargo.toml",
        "api",
        &format!("repository = \"{repository}\""),
    );
    let reference = format!("{repository}:1.4.2");
    let _cleanup = LocalImages(vec![reference.clone(), format!("{repository}:0123456")]);

    let result = succeed(fixture.build().args(["--load", "--image", "api"]));
    assert!(result.stderr.contains("not a git checkout"), "{result:#?}");
    let image = docker_inspect(&reference);
    let config = &image["Config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/api"])
    );
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["--listen", "0.0.0.0:8080"])
    );
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(config["WorkingDir"], "/srv");
    let mut env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    env.sort_unstable();
    // The base sets no PATH, so the image gets the usual default (as a Dockerfile build does).
    assert_eq!(
        env,
        [
            "API_STATIC_DIR=/srv/static",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "RUST_LOG=info"
        ]
    );
    // Outside git and without SOURCE_DATE_EPOCH the build's time is 1970.
    let epoch = "1970-01-01T00:00:00Z";
    assert_eq!(image["Created"], epoch);
    let labels = config["Labels"].as_object().unwrap();
    let expected = [
        ("org.opencontainers.image.created", epoch),
        ("org.opencontainers.image.description", "The HTTP API."),
        ("org.opencontainers.image.licenses", "MIT OR Apache-2.0"),
        // HIVE_GIT_SHA (the fixture's) names the commit for the label as for the tags.
        ("org.opencontainers.image.revision", GIT_SHA),
        (
            "org.opencontainers.image.source",
            "https://example.com/acme/platform",
        ),
        ("org.opencontainers.image.title", "api"),
        ("org.opencontainers.image.vendor", "Acme"),
        ("org.opencontainers.image.version", "1.4.2"),
    ];
    for (key, value) in expected {
        assert_eq!(
            labels.get(key).and_then(Value::as_str),
            Some(value),
            "label {key}: {labels:#?}"
        );
    }
    // Nothing else sneaks in (the glibc base has no labels).
    assert_eq!(labels.len(), expected.len(), "{labels:#?}");

    // The image runs as declared (entrypoint + cmd).
    let output = succeed(docker().args(["run", "--rm", &reference]));
    assert_eq!(output.stdout, "api would listen on 0.0.0.0:8080\n");
    // The `files` entry, readable by the image's user, owned by root with the declared mode.
    let source =
        std::fs::read_to_string(fixture.root().join("crates/api/static/index.html")).unwrap();
    let output = succeed(docker().args([
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &reference,
        "-c",
        "id -u; ls -ln /srv/static/index.html; cat /srv/static/index.html",
    ]));
    let mut lines = output.stdout.lines();
    assert_eq!(lines.next(), Some("65532"), "{output:#?}");
    let listing: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        (listing[0], listing[2], listing[3]),
        ("-rw-r--r--", "0", "0"),
        "{output:#?}"
    );
    assert_eq!(listing[4], source.len().to_string());
    assert_eq!(lines.collect::<Vec<_>>().join("\n") + "\n", source);
}

// --- 5. reproducible -----------------------------------------------------------------------------------------------

#[test]
fn builds_are_reproducible() {
    let fixture = Fixture::example("hello");
    let build = |extra: &[&str], metadata: &str| {
        let path = fixture.scratch(metadata);
        succeed(
            fixture
                .build()
                .args(extra)
                .arg("--metadata-file")
                .arg(&path),
        );
        let metadata = read_json(&path);
        let archive = std::fs::read(fixture.archive("hello")).unwrap();
        (metadata["images"]["hello"].clone(), archive)
    };
    let (first, first_archive) = build(&[], "first.json");
    // Nothing changed: the image is up to date, its archive and digests stay as they are.
    let (again, again_archive) = build(&[], "again.json");
    assert_eq!(
        again["containerimage.digest"],
        first["containerimage.digest"]
    );
    assert_eq!(again["archive"], first["archive"]);
    assert!(again_archive == first_archive, "the archive changed");
    // The same again with every step recomputed (no cache, no up-to-date check), from the same binary.
    let (second, second_archive) = build(&["--no-cache"], "second.json");
    assert_eq!(
        first["containerimage.digest"],
        second["containerimage.digest"]
    );
    assert_eq!(
        first["containerimage.config.digest"],
        second["containerimage.config.digest"]
    );
    assert!(first_archive == second_archive, "the two archives differ");
    assert!(
        first["containerimage.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // SOURCE_DATE_EPOCH sets the image's time (and so its digest).
    let path = fixture.scratch("epoch.json");
    succeed(
        fixture
            .build()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("--metadata-file")
            .arg(&path),
    );
    let epoch = read_json(&path)["images"]["hello"].clone();
    assert_ne!(
        epoch["containerimage.digest"],
        first["containerimage.digest"]
    );
    let config = OciArchive::open(&fixture.archive("hello")).config();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    for entry in config["history"].as_array().unwrap() {
        if let Some(created) = entry.get("created") {
            assert!(
                created.as_str().unwrap() <= "2023-11-14T22:13:20Z",
                "history later than SOURCE_DATE_EPOCH: {config:#}"
            );
        }
    }
}

// --- 6. incremental transfer ---------------------------------------------------------------------------------------

#[test]
fn rebuild_sends_only_the_changed_binary() {
    let fixture = Fixture::example("workspace");
    let first = finished(&events(&succeed(
        fixture.build().args(["--progress", "json"]),
    )));
    // api's binary for each of the example's platforms.
    let api_size = || -> u64 {
        ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
            .map(|triple| {
                std::fs::metadata(fixture.binary(triple, "api"))
                    .unwrap()
                    .len()
            })
            .iter()
            .sum()
    };
    // The binaries go packed (a gzip'd layer each): less than their size, but never nothing.
    let first_sent = first["api"].1;
    assert!(
        first_sent > 0 && first_sent < api_size(),
        "the first build sent {first_sent} bytes for api's binaries of {} bytes",
        api_size()
    );

    fixture.edit(
        "crates/api/src/main.rs",
        "api would listen on",
        "api will listen on",
    );
    // Without their archives, the unchanged images are not up to date either: all four go to BuildKit, and the
    // session decides what to send.
    for name in ["acmectl", "api", "worker", "worker-admin"] {
        std::fs::remove_file(fixture.archive(name)).unwrap();
    }
    let progress = events(&succeed(fixture.build().args(["--progress", "json"])));
    assert_eq!(solved(&progress).len(), 4, "{progress:#?}");
    let second = finished(&progress);
    let (api_digest, api_sent) = &second["api"];
    assert!(*api_sent > 0, "nothing sent for the changed api binaries");
    assert!(
        *api_sent as f64 <= first_sent as f64 * 1.05,
        "{api_sent} bytes sent for the changed api binaries, {first_sent} the first time"
    );
    assert_ne!(api_digest, &first["api"].0);
    for unchanged in ["acmectl", "worker", "worker-admin"] {
        assert_eq!(
            second[unchanged].1, 0,
            "bytes sent for unchanged {unchanged}: {second:#?}"
        );
        assert_eq!(
            second[unchanged].0, first[unchanged].0,
            "{unchanged} changed"
        );
    }
}

// --- 7. errors -----------------------------------------------------------------------------------------------------

#[test]
fn compile_error_shows_cargo_diagnostic() {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "src/main.rs",
        "println!(\"Hello from a cargo-hive image!\");",
        "let greeting: u32 = \"not a number\";",
    );
    let result = run(&mut fixture.build());
    fixture.assert_fails(
        &result,
        &[
            "error[E0308]: mismatched types",
            "src/main.rs:2",
            "could not compile `hello`",
            "error: cargo build failed",
        ],
    );
}

#[test]
fn unreachable_daemon_is_a_clear_error() {
    let fixture = Fixture::example("hello");
    let result = run(&mut fixture.build_at("unix:///nonexistent.sock"));
    fixture.assert_fails(
        &result,
        &[
            "unix:///nonexistent.sock",
            "does not exist",
            "scripts/buildkit-up",
        ],
    );
}

#[test]
fn missing_base_is_a_clear_error() {
    let fixture = Fixture::example("hello");
    let base = "localhost:5000/hive/does-not-exist:latest";
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        &format!("base = \"{base}\""),
    );
    let result = run(&mut fixture.build());
    fixture.assert_fails(
        &result,
        &[
            "image `hello`",
            &format!("cannot resolve the base image `{base}`"),
            "not found",
        ],
    );
}

/// The auth registry's password, and the Docker config `auth` value of `hive` with it.
fn auth_registry_login() -> (String, String) {
    let password = std::fs::read_to_string(AUTH_PASSWORD_FILE).unwrap_or_else(|err| {
        panic!("{AUTH_PASSWORD_FILE}: {err}: run `scripts/buildkit-up` first")
    });
    let password = password.trim().to_owned();
    assert!(!password.is_empty());
    let auth = base64(format!("hive:{password}").as_bytes());
    (password, auth)
}

#[test]
fn push_without_credentials_is_refused() {
    auth_registry_login();
    let fixture = Fixture::example("hello");
    let repository = unique_repository(&format!("{AUTH_REGISTRY}/e2e/hello-refused"));
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    // With the containerd image store, Docker keeps what the daemon built (and then failed to push).
    let _cleanup = LocalImages(vec![
        format!("{repository}:0.1.0"),
        format!("{repository}:latest"),
    ]);
    // The fixture's Docker config dir is empty: no credentials for anything.
    let result = run(fixture.build().arg("--push"));
    fixture.assert_fails(
        &result,
        &[
            "image `hello`",
            &format!("failed to push {repository}:0.1.0"),
        ],
    );
    let stderr = result.stderr.to_ascii_lowercase();
    assert!(
        stderr.contains("401") || stderr.contains("unauthorized"),
        "{}",
        result.stderr
    );
}

#[test]
fn push_with_credentials_from_docker_config() {
    let (password, auth) = auth_registry_login();
    let fixture = Fixture::example("hello");
    let path = unique_repository("e2e/hello-auth");
    let repository = format!("{AUTH_REGISTRY}/{path}");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    // With the containerd image store, Docker keeps a copy of what it pushed.
    let _cleanup = LocalImages(vec![
        format!("{repository}:0.1.0"),
        format!("{repository}:latest"),
    ]);
    let config = serde_json::json!({"auths": {AUTH_REGISTRY: {"auth": auth}}});
    std::fs::write(
        fixture.scratch("docker-config").join("config.json"),
        config.to_string(),
    )
    .unwrap();
    let metadata_file = fixture.scratch("metadata.json");

    let result = succeed(
        fixture
            .build()
            .args([
                "--push",
                "--progress",
                "plain",
                "--verbose",
                "--metadata-file",
            ])
            .arg(&metadata_file),
    );
    for secret in [&password, &auth] {
        assert!(
            !result.stdout.contains(secret.as_str()) && !result.stderr.contains(secret.as_str()),
            "secret printed"
        );
    }
    let digest = read_json(&metadata_file)["images"]["hello"]["containerimage.digest"].clone();
    let basic = format!("Basic {auth}");
    let manifest = format!("/v2/{path}/manifests/0.1.0");
    let (status, _, _) = registry_get(AUTH_REGISTRY, &manifest, None);
    assert_eq!(status, 401, "the registry must want a login");
    let (status, headers, body) = registry_get(AUTH_REGISTRY, &manifest, Some(&basic));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["docker-content-digest"], digest.as_str().unwrap());
}

#[test]
fn dynamic_binary_on_scratch_is_refused() {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        "base = \"scratch\"",
    );
    let result = run(&mut fixture.build());
    fixture.assert_fails(
        &result,
        &[
            "dynamically linked",
            hive_e2e::host_glibc_loader(),
            "`scratch`",
            &format!("{}-unknown-linux-musl", std::env::consts::ARCH),
            "glibc",
        ],
    );
}

#[test]
fn dynamic_binary_on_base_without_its_loader_is_refused_before_building() {
    let fixture = Fixture::example("hello");
    let base = "localhost:5000/hive/busybox:latest";
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        &format!("base = \"{base}\""),
    );
    let result = run(fixture.build().args(["--progress", "json"]));
    fixture.assert_fails(
        &result,
        &[
            "dynamically linked",
            &format!("`{base}` has no {}", hive_e2e::host_glibc_loader()),
            "musl",
            "glibc",
        ],
    );
    // Caught before the image: the binary was never copied onto the base, nothing exported.
    let progress = events(&result);
    assert!(
        matches!(
            progress.last(),
            Some(Event::BuildFinished {
                success: false,
                images_finished: 0,
                ..
            })
        ),
        "{}",
        result.stdout
    );
    let built: Vec<&str> = progress
        .iter()
        .filter_map(|event| match event {
            Event::VertexStarted { name, .. }
                if name.contains("copy") || name.contains("export") =>
            {
                Some(name.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(built, Vec::<&str>::new(), "the image was built anyway");
}

// --- 8. Ctrl-C -----------------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_cancels_and_leaves_nothing() {
    let fixture = hello_with_big_file(400);
    let mut build = Spawned::start(fixture.build().args(["--progress", "json"]));
    loop {
        let Ok(line) = build.lines.recv() else {
            let (status, stdout, stderr) = build.finish();
            panic!("the build ended ({status}) before its image started:\n{stdout}\n{stderr}");
        };
        let record: Record = serde_json::from_str(&line).unwrap();
        if matches!(record.event, Event::ImageStarted { .. }) {
            break;
        }
    }
    build.interrupt();
    let (status, stdout, stderr) = build.finish();
    assert_interrupted(status, &stdout, &stderr);
    assert_eq!(
        fixture.outputs(),
        Vec::<String>::new(),
        "an interrupted build left output behind"
    );
}

/// Interrupted while the daemon streams the archive to us: the temp file it was going into goes too.
#[test]
fn ctrl_c_during_export_removes_the_partial_archive() {
    let fixture = hello_with_big_file(100);
    let out = fixture.scratch("out");
    std::fs::create_dir(&out).unwrap();
    // Uncompressed, the archive holds the 100 MiB: its transfer to us takes a while.
    let spec = format!(
        "type=oci,dest={},compression=uncompressed,force-compression=true",
        out.join("hello.tar").display()
    );
    let build = Spawned::start(
        fixture
            .build()
            .args(["--progress", "json", "--output", &spec]),
    )
    .signal_when(Signal::INT, "a partial archive appeared", || {
        files_in(&out).iter().any(|name| name.ends_with(".partial"))
    });
    let (status, stdout, stderr) = build.finish();
    assert_interrupted(status, &stdout, &stderr);
    assert_eq!(
        files_in(&out),
        Vec::<String>::new(),
        "an interrupted export left a file behind"
    );
    assert_eq!(fixture.outputs(), Vec::<String>::new());
}

// --- 9. dry run ----------------------------------------------------------------------------------------------------

#[test]
fn dry_run_prints_llb_without_a_daemon() {
    let fixture = Fixture::example("hello");
    let result = succeed(
        fixture
            .build_at("unix:///nonexistent.sock")
            .arg("--dry-run"),
    );
    let document: Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(document["format_version"], 1);
    let images = document["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["image"], "hello");
    assert_eq!(
        images[0]["references"],
        serde_json::json!(["hello:0.1.0", "hello:latest"])
    );
    let ops = images[0]["ops"].as_array().unwrap();
    assert!(ops.len() >= 3, "{document:#}");
    for op in ops {
        assert!(
            op["digest"].as_str().unwrap().starts_with("sha256:"),
            "{op:#}"
        );
    }
    let text = result.stdout.as_str();
    assert!(
        text.contains("docker-image://localhost:5000/hive/glibc"),
        "{text}"
    );
    assert!(
        text.contains("local://hello-bin") && text.contains("/usr/local/bin/hello"),
        "{text}"
    );
    assert_eq!(fixture.outputs(), Vec::<String>::new());
}
