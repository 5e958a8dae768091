//! `cargo hive build` end to end against the real daemon: images built, loaded, pushed and run; their config,
//! reproducibility and incremental transfers checked; every failure the build issue lists; Ctrl-C; `--dry-run`.
//!
//! Each test copies an example into a temp dir of its own (outside any git checkout, so SOURCE_DATE_EPOCH is 0
//! unless a test sets it, and there is no `revision` label) with its own `CARGO_TARGET_DIR` beside it. The examples
//! have no dependencies, so compiling them again per test costs well under a second, while a shared target dir would
//! let parallel tests overwrite each other's uplifted binaries (`target/debug/hello`) and archives
//! (`target/hive/<image>.oci.tar`) between a build and what the test then checks. Images that reach the Docker
//! store or a registry get a repository unique to the test process, and are removed from the store at the end.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_build::progress::{Event, FORMAT_VERSION, Record};
use hive_e2e::{
    Run, buildkit_addr, cargo_hive, copy_workspace, docker, run, tar_members, workspace_root,
};
use serde_json::Value;

/// A fixed commit, so `{git.short_sha}` tags render the same everywhere.
const GIT_SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const GREETING: &str = "Hello from a cargo-hive image!\n";
/// The plain registry `scripts/buildkit-up` runs, and the one that wants a login.
const REGISTRY: &str = "127.0.0.1:5000";
const AUTH_REGISTRY: &str = "127.0.0.1:5001";
const AUTH_PASSWORD_FILE: &str = "/var/lib/hive/auth-registry.password";
/// Where a SIGINT'd build must have exited by: only a guard against a hang, far above any real build here.
const EXIT_GUARD: Duration = Duration::from_secs(120);

/// A copy of a workspace in a temp dir, with its own cargo target dir and an empty Docker config.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A copy of `examples/<name>`.
    fn example(name: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("hive-e2e-{name}-"))
            .tempdir()
            .unwrap();
        copy_workspace(
            &workspace_root().join("examples").join(name),
            &dir.path().join("ws"),
        );
        std::fs::create_dir(dir.path().join("docker-config")).unwrap();
        Fixture { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// A path in the fixture's temp dir but outside the workspace.
    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn archive(&self, image: &str) -> PathBuf {
        self.target().join("hive").join(format!("{image}.oci.tar"))
    }

    /// Replaces the one occurrence of `from` in a workspace file.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.root().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in {}",
            path.display()
        );
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Adds `lines` to the `[package.metadata.hive.images.<image>]` table of a manifest.
    fn set_image_keys(&self, manifest: &str, image: &str, lines: &str) {
        let header = format!("[package.metadata.hive.images.{image}]\n");
        self.edit(manifest, &header, &format!("{header}{lines}\n"));
    }

    /// `cargo hive build --addr <the suite's daemon>` in the workspace.
    fn build(&self) -> Command {
        self.build_at(&buildkit_addr())
    }

    fn build_at(&self, addr: &str) -> Command {
        let mut command = cargo_hive();
        command
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", self.target())
            .env("DOCKER_CONFIG", self.scratch("docker-config"))
            .env("HIVE_GIT_SHA", GIT_SHA)
            .env("HIVE_GIT_BRANCH", "main")
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["build", "--addr", addr]);
        command
    }

    /// What is in `<target>/hive/` (nothing when it does not exist), but for `.fresh/`, cargo-hive's records of
    /// what it built last (its up-to-date checks), which is bookkeeping rather than output.
    fn outputs(&self) -> Vec<String> {
        let mut names = files_in(&self.target().join("hive"));
        names.retain(|name| name != ".fresh");
        names
    }

    /// The common contract of a failed build: exit 1, `error:` on stderr with every needle, no panic, nothing
    /// written to `<target>/hive/` (neither an archive nor a `.partial` temp file).
    fn assert_fails(&self, result: &Run, needles: &[&str]) {
        assert_eq!(result.code, 1, "{result:#?}");
        assert!(!result.stderr.contains("panicked"), "{result:#?}");
        assert!(result.stderr.contains("error: "), "{result:#?}");
        for needle in needles {
            assert!(
                result.stderr.contains(needle),
                "missing {needle:?} in stderr:\n{}",
                result.stderr
            );
        }
        assert_eq!(
            self.outputs(),
            Vec::<String>::new(),
            "a failed build left output behind"
        );
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A repository name unique to this test process.
fn unique_repository(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

/// Removes images from the Docker store when dropped, so the suite leaves no tags behind (even when it fails).
struct LocalImages(Vec<String>);

impl Drop for LocalImages {
    fn drop(&mut self) {
        let _ = docker().arg("rmi").arg("--force").args(&self.0).output();
    }
}

fn succeed(command: &mut Command) -> Run {
    let result = run(command);
    assert_eq!(result.code, 0, "{result:#?}");
    assert!(!result.stderr.contains("panicked"), "{result:#?}");
    result
}

/// The `--progress json` events of a run; every line must decode with hive-build's types.
fn events(result: &Run) -> Vec<Event> {
    result
        .stdout
        .lines()
        .map(|line| {
            let record: Record = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a progress record ({err}): {line}"));
            assert_eq!(record.format_version, FORMAT_VERSION);
            record.event
        })
        .collect()
}

/// What each `image-finished` event said: (digest, bytes sent), by image.
fn finished(events: &[Event]) -> BTreeMap<String, (Option<String>, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::ImageFinished {
                image,
                digest,
                bytes_sent,
                ..
            } => Some((image.clone(), (digest.clone(), *bytes_sent))),
            _ => None,
        })
        .collect()
}

/// The images BuildKit worked on in a run (images that are up to date are finished without any step).
fn solved(events: &[Event]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::VertexStarted { image, .. } => Some(image.clone()),
            _ => None,
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// An OCI image layout archive, checked and opened.
struct OciArchive {
    members: BTreeMap<String, Vec<u8>>,
}

impl OciArchive {
    fn open(path: &Path) -> OciArchive {
        let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let members: BTreeMap<String, Vec<u8>> = tar_members(&bytes).into_iter().collect();
        let archive = OciArchive { members };
        assert_eq!(archive.json("oci-layout")["imageLayoutVersion"], "1.0.0");
        archive
    }

    fn json(&self, name: &str) -> Value {
        let bytes = self
            .members
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the archive: {:?}", self.members.keys()));
        serde_json::from_slice(bytes).unwrap()
    }

    fn blob(&self, digest: &str) -> Value {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.json(&format!("blobs/sha256/{hex}"))
    }

    /// The image's manifest: index.json lists it once per reference (the same digest each time). Returns its
    /// digest, the names it is listed under (`io.containerd.image.name`) and the manifest.
    fn manifest(&self) -> (String, Vec<String>, Value) {
        let index = self.json("index.json");
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let descriptors = index["manifests"]
            .as_array()
            .expect("index.json lists manifests");
        assert!(!descriptors.is_empty(), "{index:#}");
        let digest = descriptors[0]["digest"].as_str().unwrap().to_owned();
        let names = descriptors
            .iter()
            .map(|descriptor| {
                assert_eq!(
                    descriptor["digest"],
                    digest.as_str(),
                    "two images in one archive: {index:#}"
                );
                descriptor["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let manifest = self.blob(&digest);
        (digest, names, manifest)
    }

    fn config(&self) -> Value {
        let (_, _, manifest) = self.manifest();
        self.blob(manifest["config"]["digest"].as_str().unwrap())
    }

    fn layers(&self) -> Vec<String> {
        let (_, _, manifest) = self.manifest();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| {
                let digest = layer["digest"].as_str().unwrap().to_owned();
                let hex = digest.strip_prefix("sha256:").unwrap();
                assert!(
                    self.members.contains_key(&format!("blobs/sha256/{hex}")),
                    "layer {digest} missing"
                );
                digest
            })
            .collect()
    }
}

/// A GET from a registry over plain HTTP/1.0: (status, headers lowercased, body).
fn registry_get(
    host: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut stream =
        std::net::TcpStream::connect(host).unwrap_or_else(|err| panic!("registry {host}: {err}"));
    let mut request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, \
         application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\n"
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn docker_inspect(reference: &str) -> Value {
    let result = succeed(docker().args(["image", "inspect", reference]));
    let mut list: Vec<Value> = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(list.len(), 1);
    list.remove(0)
}

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
    let metadata_file = fixture.scratch("metadata.json");
    let result = succeed(
        fixture
            .build()
            .args(["--progress", "json", "--metadata-file"])
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
        assert_eq!(config["architecture"], "amd64");
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
    let result = succeed(fixture.build().args(["--progress", "json", "--jobs", "1"]));
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
    for tag in ["0.1.0", "latest"] {
        let (status, headers, body) =
            registry_get(REGISTRY, &format!("/v2/{path}/manifests/{tag}"), None);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["docker-content-digest"], digest);
        let manifest: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            manifest["config"]["digest"],
            metadata["images"]["hello"]["containerimage.config.digest"]
        );
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
    // No git checkout, no revision; nothing else sneaks in either (the glibc base has no labels).
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
    let api_binary = fixture.target().join("debug").join("api");
    let size = std::fs::metadata(&api_binary).unwrap().len();
    assert!(
        first["api"].1 >= size,
        "the first build sent {} bytes for api, less than its binary ({size})",
        first["api"].1
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
    let size = std::fs::metadata(&api_binary).unwrap().len();
    let (api_digest, api_sent) = &second["api"];
    assert!(*api_sent > 0, "nothing sent for the changed api binary");
    assert!(
        *api_sent as f64 <= size as f64 * 1.05,
        "{api_sent} bytes sent for the changed api binary of {size} bytes"
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
            "ld-linux-x86-64.so.2",
            "`scratch`",
            "x86_64-unknown-linux-musl",
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
            &format!("`{base}` has no /lib64/ld-linux-x86-64.so.2"),
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

/// A build running in the background, its output collected by threads (stdout also line by line).
struct Spawned {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Spawned {
    fn start(command: &mut Command) -> Spawned {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stdout.lines() {
                let line = line.unwrap();
                all.push_str(&line);
                all.push('\n');
                let _ = sender.send(line);
            }
            all
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        });
        Spawned {
            child,
            lines,
            stdout,
            stderr,
        }
    }

    /// Sends SIGINT, as a terminal's Ctrl-C does.
    fn interrupt(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the build had already exited ({status}) when SIGINT was to be sent");
        }
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -INT failed");
    }

    /// Waits for the exit: (status, stdout, stderr).
    fn finish(mut self) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + EXIT_GUARD;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the build did not exit within {EXIT_GUARD:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            status,
            self.stdout.join().unwrap(),
            self.stderr.join().unwrap(),
        )
    }
}

/// A copy of hello whose image also holds a sparse file of `mib` MiB: its transfer keeps the build busy.
fn hello_with_big_file(mib: u64) -> Fixture {
    let fixture = Fixture::example("hello");
    let big = std::fs::File::create(fixture.root().join("big.bin")).unwrap();
    big.set_len(mib * 1024 * 1024).unwrap();
    drop(big);
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        "files = [{ src = \"big.bin\", dst = \"/big.bin\" }]",
    );
    fixture
}

/// The contract of an interrupted build: exit 130, `interrupted` said, no panic, no image finished.
fn assert_interrupted(status: std::process::ExitStatus, stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains("\"type\":\"image-finished\"") && status.code() != Some(0),
        "the build finished before SIGINT arrived: make it take longer for this test to mean anything\n\
         {stdout}\n{stderr}"
    );
    assert_eq!(status.code(), Some(130), "{status}\n{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

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
    let mut build = Spawned::start(
        fixture
            .build()
            .args(["--progress", "json", "--output", &spec]),
    );
    loop {
        if build.child.try_wait().unwrap().is_some() {
            let (status, stdout, stderr) = build.finish();
            panic!(
                "the build ended ({status}) before a partial archive appeared in {}:\n{stdout}\n{stderr}",
                out.display()
            );
        }
        if files_in(&out).iter().any(|name| name.ends_with(".partial")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    build.interrupt();
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
