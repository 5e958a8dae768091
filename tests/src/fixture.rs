//! Shared by the end-to-end tests: a copied example workspace with its own target dir and Docker config, the
//! contract of a failed or interrupted build, OCI archives, registry reads and builds running in the background.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hive_build::progress::{Event, FORMAT_VERSION, Record};
use rustix::process::{Pid, kill_process};
use serde_json::Value;

pub use rustix::process::Signal;

use crate::{
    Run, buildkit_addr, cargo_hive, copy_workspace, docker, run, tar_members, workspace_root,
};

/// A fixed commit, so `{git.short_sha}` tags render the same everywhere.
pub const GIT_SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// What examples/hello prints.
pub const GREETING: &str = "Hello from a cargo-hive image!\n";
/// The plain registry `scripts/buildkit-up` runs.
pub const REGISTRY: &str = "127.0.0.1:5000";
/// The local registry that wants a login (user `hive`).
pub const AUTH_REGISTRY: &str = "127.0.0.1:5001";
/// Where `scripts/buildkit-up` keeps that registry's password.
pub const AUTH_PASSWORD_FILE: &str = "/var/lib/hive/auth-registry.password";
/// Where a SIGINT'd build must have exited by: only a guard against a hang, far above any real build here.
pub const EXIT_GUARD: Duration = Duration::from_secs(120);

/// A copy of a workspace in a temp dir, with its own cargo target dir and an empty Docker config.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A copy of `examples/<name>`.
    pub fn example(name: &str) -> Fixture {
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

    /// A copy of `examples/build-rs` (whose build script declares images), its path dependency on hive-build
    /// pointed back into this repository: the copy is outside it.
    pub fn build_rs_example() -> Fixture {
        let fixture = Fixture::example("build-rs");
        fixture.edit(
            "Cargo.toml",
            "path = \"../../hive-build\"",
            &format!(
                "path = \"{}\"",
                workspace_root().join("hive-build").display()
            ),
        );
        fixture
    }

    /// A copy of `examples/hello` whose image goes to `repository`, and a guard that removes what Docker kept of
    /// it (its two tags).
    pub fn hello_in(repository: &str) -> (Fixture, LocalImages) {
        let fixture = Fixture::example("hello");
        fixture.set_image_keys(
            "Cargo.toml",
            "hello",
            &format!("repository = \"{repository}\""),
        );
        let cleanup = LocalImages(vec![
            format!("{repository}:0.1.0"),
            format!("{repository}:latest"),
        ]);
        (fixture, cleanup)
    }

    /// The workspace copy.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    /// Its cargo target dir.
    pub fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// Removes cargo hive's records of earlier builds (`target/hive/.fresh/`), as in a fresh CI checkout.
    pub fn forget_records(&self) {
        let records = self.target().join("hive/.fresh");
        if records.exists() {
            std::fs::remove_dir_all(records).unwrap();
        }
    }

    /// A path in the fixture's temp dir but outside the workspace.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The default OCI archive of an image.
    pub fn archive(&self, image: &str) -> PathBuf {
        self.target().join("hive").join(format!("{image}.oci.tar"))
    }

    /// Replaces the one occurrence of `from` in a workspace file.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
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
    pub fn set_image_keys(&self, manifest: &str, image: &str, lines: &str) {
        let header = format!("[package.metadata.hive.images.{image}]\n");
        self.edit(manifest, &header, &format!("{header}{lines}\n"));
    }

    /// `cargo hive build --addr <the suite's daemon>` in the workspace.
    pub fn build(&self) -> Command {
        self.build_at(&buildkit_addr())
    }

    /// `cargo hive build --addr ADDR` in the workspace.
    pub fn build_at(&self, addr: &str) -> Command {
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
    pub fn outputs(&self) -> Vec<String> {
        let mut names = files_in(&self.target().join("hive"));
        names.retain(|name| name != ".fresh");
        names
    }

    /// The common contract of a failed build: exit 1, `error:` on stderr with every needle, no panic, nothing
    /// written to `<target>/hive/` (neither an archive nor a `.partial` temp file).
    pub fn assert_fails(&self, result: &Run, needles: &[&str]) {
        crate::assert_error(result, needles);
        assert_eq!(
            self.outputs(),
            Vec::<String>::new(),
            "a failed build left output behind"
        );
    }
}

/// The names in a directory, sorted (none when it does not exist).
pub fn files_in(dir: &Path) -> Vec<String> {
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
pub fn unique_repository(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

/// Removes images from the Docker store when dropped, so the suite leaves no tags behind (even when it fails).
pub struct LocalImages(pub Vec<String>);

impl Drop for LocalImages {
    fn drop(&mut self) {
        let _ = docker().arg("rmi").arg("--force").args(&self.0).output();
    }
}

/// Runs a command that must succeed without a panic.
pub fn succeed(command: &mut Command) -> Run {
    let result = run(command);
    assert_eq!(result.code, 0, "{result:#?}");
    assert!(!result.stderr.contains("panicked"), "{result:#?}");
    result
}

/// The `--progress json` events of a run; every line must decode with hive-build's types.
pub fn events(result: &Run) -> Vec<Event> {
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
pub fn finished(events: &[Event]) -> BTreeMap<String, (Option<String>, u64)> {
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

/// What one build did to one image: whether BuildKit worked on it, what its `image-finished` event said, and what
/// `--metadata-file` recorded of it.
pub struct ImageOutcome {
    /// BuildKit ran a step for it (it was not up to date).
    pub solved: bool,
    /// Where it went, as `image-finished` says (`docker (fresh)`, `registry`, …).
    pub output: String,
    /// What the session sent for it.
    pub bytes_sent: u64,
    /// Its entry in the `--metadata-file` (null when none was asked).
    pub metadata: Value,
}

impl ImageOutcome {
    /// Builds `fixture` with `args`, JSON progress and a metadata file, and tells what happened to `image`.
    pub fn build(fixture: &Fixture, image: &str, args: &[&str]) -> ImageOutcome {
        let metadata_file = fixture.scratch("metadata.json");
        let result = succeed(
            fixture
                .build()
                .args(["--progress", "json", "--metadata-file"])
                .arg(&metadata_file)
                .args(args),
        );
        ImageOutcome::of(
            &result,
            image,
            read_json(&metadata_file)["images"][image].clone(),
        )
    }

    /// What a JSON-progress run did to `image`, with `metadata` recorded of it.
    pub fn of(result: &Run, image: &str, metadata: Value) -> ImageOutcome {
        let events = events(result);
        let (output, bytes_sent) = (events.iter())
            .find_map(|event| match event {
                Event::ImageFinished {
                    image: finished,
                    output,
                    bytes_sent,
                    ..
                } if finished == image => Some((output.clone(), *bytes_sent)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{image} did not finish: {}", result.stdout));
        ImageOutcome {
            solved: solved(&events).contains(image),
            output,
            bytes_sent,
            metadata,
        }
    }
}

/// The images BuildKit worked on in a run (images that are up to date are finished without any step).
pub fn solved(events: &[Event]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::VertexStarted { image, .. } => Some(image.clone()),
            _ => None,
        })
        .collect()
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// An OCI image layout archive, checked and opened.
pub struct OciArchive {
    members: BTreeMap<String, Vec<u8>>,
}

impl OciArchive {
    /// Opens and checks an archive.
    pub fn open(path: &Path) -> OciArchive {
        let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let members: BTreeMap<String, Vec<u8>> = tar_members(&bytes).into_iter().collect();
        let archive = OciArchive { members };
        assert_eq!(archive.json("oci-layout")["imageLayoutVersion"], "1.0.0");
        archive
    }

    /// A JSON member of the archive.
    pub fn json(&self, name: &str) -> Value {
        let bytes = self
            .members
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the archive: {:?}", self.members.keys()));
        serde_json::from_slice(bytes).unwrap()
    }

    /// A JSON blob by digest.
    pub fn blob(&self, digest: &str) -> Value {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.json(&format!("blobs/sha256/{hex}"))
    }

    /// The image's manifest: index.json lists it once per reference (the same digest each time). Returns its
    /// digest, the names it is listed under (`io.containerd.image.name`) and the manifest.
    pub fn manifest(&self) -> (String, Vec<String>, Value) {
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

    /// The image config.
    pub fn config(&self) -> Value {
        let (_, _, manifest) = self.manifest();
        self.blob(manifest["config"]["digest"].as_str().unwrap())
    }

    /// The layer digests, each present in the archive.
    pub fn layers(&self) -> Vec<String> {
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
pub fn registry_get(
    host: &str,
    path: &str,
    authorization: Option<&str>,
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut stream =
        std::net::TcpStream::connect(host).unwrap_or_else(|err| panic!("registry {host}: {err}"));
    let mut request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, \
         application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
         application/vnd.docker.distribution.manifest.list.v2+json\r\n"
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

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
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

/// `docker image inspect` of one reference.
pub fn docker_inspect(reference: &str) -> Value {
    let result = succeed(docker().args(["image", "inspect", reference]));
    let mut list: Vec<Value> = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(list.len(), 1);
    list.remove(0)
}

/// A build running in the background, its output collected by threads (stdout also line by line).
pub struct Spawned {
    /// The build process.
    pub child: std::process::Child,
    /// Its stdout, line by line, as it comes.
    pub lines: std::sync::mpsc::Receiver<String>,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Spawned {
    /// Starts a command with piped output.
    pub fn start(command: &mut Command) -> Spawned {
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
    pub fn interrupt(&mut self) {
        self.signal(Signal::INT);
    }

    /// Sends `signal` to the process only, as `kill`, `timeout` or a CI runner does. Directly: starting `kill`
    /// would put a process start between the moment a test chose and the signal.
    pub fn signal(&mut self, signal: Signal) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the build had already exited ({status}) when {signal:?} was to be sent");
        }
        kill_process(Pid::from_child(&self.child), signal)
            .unwrap_or_else(|err| panic!("sending {signal:?}: {err}"));
    }

    /// Sends `signal` at a moment when `holds()`, whatever the machine's load: waits until it holds, stops the
    /// process (SIGSTOP), checks it again while nothing moves, queues the signal and lets the process go on
    /// (SIGCONT), which meets the signal first. Fails if the build ends first, or gets past `what` before it is
    /// stopped (it then needs more work for the test to mean anything).
    pub fn signal_when(mut self, signal: Signal, what: &str, holds: impl Fn() -> bool) -> Spawned {
        let deadline = Instant::now() + EXIT_GUARD;
        while !holds() {
            if self.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                self.fail(&format!("the build ended (or hung) before {what}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.signal(Signal::STOP);
        if !holds() {
            self.signal(Signal::CONT);
            self.fail(&format!("the build got past {what} before it was stopped"));
        }
        self.signal(signal);
        self.signal(Signal::CONT);
        self
    }

    fn fail(mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let (status, stdout, stderr) = self.finish();
        panic!("{why} ({status}):\n{stdout}\n{stderr}");
    }

    /// Waits for the exit: (status, stdout, stderr).
    pub fn finish(mut self) -> (std::process::ExitStatus, String, String) {
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
pub fn hello_with_big_file(mib: u64) -> Fixture {
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

/// The hello example with `mib` MiB of noise (no compressor shrinks it) copied into the image as `/noise.bin`: a
/// layer that is as big on the wire as on disk.
pub fn hello_with_noise_file(mib: u64) -> Fixture {
    let fixture = Fixture::example("hello");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = Vec::with_capacity((mib * 1024 * 1024) as usize);
    while noise.len() < noise.capacity() {
        // xorshift64: cheap, and random enough that gzip finds nothing to take out.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(fixture.root().join("noise.bin"), noise).unwrap();
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        "files = [{ src = \"noise.bin\", dst = \"/noise.bin\" }]",
    );
    fixture
}

/// The contract of an interrupted build: exit 130, `interrupted` said, no panic, no image finished.
pub fn assert_interrupted(status: std::process::ExitStatus, stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains("\"type\":\"image-finished\"") && status.code() != Some(0),
        "the build finished before SIGINT arrived: make it take longer for this test to mean anything\n\
         {stdout}\n{stderr}"
    );
    assert_eq!(status.code(), Some(130), "{status}\n{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// --- multi-platform images: indexes, their platforms' images, the binaries in their layers ---------------------------

/// The example workspace with every image pushed under `registry` (`localhost:5000/e2e/x-123`) instead of
/// `localhost:5000/acme`, `worker-admin`'s own repository included.
pub fn workspace_under(registry: &str) -> Fixture {
    let fixture = Fixture::example("workspace");
    fixture.edit(
        "Cargo.toml",
        "registry = \"localhost:5000/acme\"",
        &format!("registry = \"{registry}\""),
    );
    fixture.edit(
        "crates/worker/Cargo.toml",
        "repository = \"localhost:5000/acme/ops/worker-admin\"",
        &format!("repository = \"{registry}/ops/worker-admin\""),
    );
    fixture
}

/// The media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of Docker's manifest list, the index `docker push` writes.
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// The OCI architecture (`amd64`, `arm64`) of an ELF file's machine. Panics on anything but a little-endian ELF of
/// a machine the suite knows, naming what it found.
pub fn elf_arch(bytes: &[u8]) -> &'static str {
    assert!(
        bytes.len() > 20 && bytes.starts_with(b"\x7fELF"),
        "not an ELF file ({} bytes)",
        bytes.len()
    );
    assert_eq!(bytes[5], 1, "not a little-endian ELF");
    match u16::from_le_bytes([bytes[18], bytes[19]]) {
        62 => "amd64",
        183 => "arm64",
        other => panic!("an ELF file for machine {other}, which the suite has no OCI name for"),
    }
}

/// `bytes`, gunzipped by the system's `gzip` when they are gzip (BuildKit's default layer compression), else as
/// they are.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes.to_vec();
    }
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    // Fed from a thread: gzip's output fills its pipe long before all of its input is written.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap().expect("gzip reads its input");
    assert!(
        output.status.success(),
        "gzip -dc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// One platform's image in an index, read whole: its manifest, config and layers (uncompressed tars).
#[derive(Debug)]
pub struct PlatformImage {
    /// `os/arch[/variant]`, from the index's descriptor.
    pub platform: String,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest.
    pub manifest: Value,
    /// The image config.
    pub config: Value,
    /// Each layer, uncompressed, in manifest order.
    pub layers: Vec<Vec<u8>>,
}

impl PlatformImage {
    /// The content of the file at `path` (absolute, in the image) as the top layer holding it has it.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        file_in_layers(&self.layers, path)
    }

    /// The OCI architecture of the ELF executable at `path` in the image.
    pub fn binary_arch(&self, path: &str) -> &'static str {
        let bytes = self
            .file(path)
            .unwrap_or_else(|| panic!("no {path} in the {} image", self.platform));
        elf_arch(&bytes)
    }
}

/// `os/arch[/variant]` of a descriptor's `platform`. `arm64/v8` is `arm64`, as containerd normalizes it (the
/// registry's arm64 bases say `v8`).
pub fn platform_name(descriptor: &Value) -> String {
    let platform = &descriptor["platform"];
    let mut name = format!(
        "{}/{}",
        platform["os"].as_str().expect("platform.os"),
        platform["architecture"]
            .as_str()
            .expect("platform.architecture")
    );
    if let Some(variant) = platform["variant"]
        .as_str()
        .filter(|variant| !(name == "linux/arm64" && *variant == "v8"))
    {
        name.push('/');
        name.push_str(variant);
    }
    name
}

/// The images an OCI index lists, by platform, each read through `manifest` and `blob` (bytes by digest: a
/// registry serves manifests and blobs at different paths). Attestation manifests (platform `unknown/unknown`, which
/// buildx adds) are left out; two manifests for one platform fail.
pub fn platform_images(
    index: &Value,
    manifest: impl Fn(&str) -> Vec<u8>,
    blob: impl Fn(&str) -> Vec<u8>,
) -> BTreeMap<String, PlatformImage> {
    assert!(
        index["mediaType"] == INDEX_MEDIA_TYPE || index["mediaType"] == DOCKER_LIST_MEDIA_TYPE,
        "not an index: {index:#}"
    );
    let mut images = BTreeMap::new();
    for descriptor in index["manifests"]
        .as_array()
        .expect("an index lists manifests")
    {
        let platform = platform_name(descriptor);
        if platform == "unknown/unknown" {
            continue;
        }
        let digest = descriptor["digest"].as_str().unwrap().to_owned();
        let manifest: Value = serde_json::from_slice(&manifest(&digest)).unwrap();
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        let layers = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| gunzip(&blob(layer["digest"].as_str().unwrap())))
            .collect();
        let image = PlatformImage {
            platform: platform.clone(),
            digest,
            manifest,
            config,
            layers,
        };
        assert!(
            images.insert(platform.clone(), image).is_none(),
            "two manifests for {platform}: {index:#}"
        );
    }
    images
}

/// The content of the file at `path` (absolute, in the image) in the top one of `layers` (uncompressed tars,
/// bottom first) holding it.
fn file_in_layers(layers: &[Vec<u8>], path: &str) -> Option<Vec<u8>> {
    let wanted = path.trim_start_matches('/');
    layers.iter().rev().find_map(|layer| {
        tar_members(layer)
            .into_iter()
            .find(|(name, _)| name.trim_start_matches("./").trim_start_matches('/') == wanted)
            .map(|(_, data)| data)
    })
}

impl OciArchive {
    /// The content of the file at `path` (absolute) in the archive's one image, as its top layer holding it has
    /// it.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        let layers: Vec<Vec<u8>> = (self.layers().iter())
            .map(|digest| gunzip(&self.blob_bytes(digest)))
            .collect();
        file_in_layers(&layers, path)
    }

    /// [`OciArchive::file`] as UTF-8 text; the file must be there.
    pub fn text(&self, path: &str) -> String {
        let bytes = self
            .file(path)
            .unwrap_or_else(|| panic!("{path} is in the image"));
        String::from_utf8(bytes).unwrap()
    }

    /// A blob's bytes by digest.
    pub fn blob_bytes(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.members
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("blob {digest} missing from the archive"))
            .clone()
    }

    /// The archive's one image as an index (a multi-platform image): its digest and its platforms' images.
    pub fn index(&self) -> (String, BTreeMap<String, PlatformImage>) {
        let (digest, _, index) = self.manifest();
        let images = platform_images(
            &index,
            |digest| self.blob_bytes(digest),
            |digest| self.blob_bytes(digest),
        );
        (digest, images)
    }
}

/// A repository path in the plain registry (`e2e/x-1/api`) of a reference to it (`localhost:5000/e2e/x-1/api`).
pub fn registry_path(repository: &str) -> &str {
    repository
        .strip_prefix("localhost:5000/")
        .or_else(|| repository.strip_prefix("127.0.0.1:5000/"))
        .unwrap_or_else(|| panic!("{repository} is not in the plain registry {REGISTRY}"))
}

/// A blob from the plain registry.
pub fn registry_blob(path: &str, digest: &str) -> Vec<u8> {
    let (status, _, body) = registry_get(REGISTRY, &format!("/v2/{path}/blobs/{digest}"), None);
    assert_eq!(
        status,
        200,
        "blob {digest} of {path}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

/// A manifest or index from the plain registry, by tag or digest: its digest and bytes.
pub fn registry_manifest_bytes(path: &str, reference: &str) -> (String, Vec<u8>) {
    let (status, headers, body) =
        registry_get(REGISTRY, &format!("/v2/{path}/manifests/{reference}"), None);
    assert_eq!(
        status,
        200,
        "{path}:{reference}: {}",
        String::from_utf8_lossy(&body)
    );
    (headers["docker-content-digest"].clone(), body)
}

/// A manifest or index from the plain registry, by tag or digest: its digest and content.
pub fn registry_manifest(path: &str, reference: &str) -> (String, Value) {
    let (digest, body) = registry_manifest_bytes(path, reference);
    (digest, serde_json::from_slice(&body).unwrap())
}

/// A multi-platform image in the plain registry: the index's digest and its platforms' images.
pub fn registry_index(path: &str, reference: &str) -> (String, BTreeMap<String, PlatformImage>) {
    let (digest, index) = registry_manifest(path, reference);
    let images = platform_images(
        &index,
        |digest| registry_manifest_bytes(path, digest).1,
        |digest| registry_blob(path, digest),
    );
    (digest, images)
}

impl Fixture {
    /// `cargo hive plan` in the workspace.
    pub fn plan(&self) -> Command {
        let mut command = cargo_hive();
        command
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", self.target())
            .env("HIVE_GIT_SHA", GIT_SHA)
            .env("HIVE_GIT_BRANCH", "main")
            .arg("plan");
        command
    }

    /// [`Fixture::plan`] with the workspace's paths redacted (`[workspace]/…`), as the plan snapshots are.
    pub fn redacted_plan(&self) -> Command {
        let mut command = self.plan();
        command.env("HIVE_REDACT", "1");
        command
    }

    /// A binary cargo built for `triple` (with `--target`, so under `<target>/<triple>/debug/`).
    pub fn binary(&self, triple: &str, name: &str) -> PathBuf {
        self.target().join(triple).join("debug").join(name)
    }

    /// The 1-based line of the one line of a workspace file that contains `needle`.
    pub fn line_of(&self, file: &str, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.root().join(file)).unwrap();
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(needle))
            .map(|(at, _)| at + 1)
            .collect();
        assert_eq!(lines.len(), 1, "{needle:?} in {file}: lines {lines:?}");
        lines[0]
    }
}

/// The Docker 20.10 daemon of the compatibility run (`scripts/buildkit-up --docker20`), as a BuildKit address.
pub fn docker20_addr() -> String {
    let addr = std::env::var("HIVE_TEST_DOCKER20_HOST")
        .unwrap_or_else(|_| "docker+unix:///var/run/hive-docker20.sock".to_owned());
    let path = addr
        .strip_prefix("docker+unix://")
        .expect("a docker+unix:// address");
    assert!(
        std::os::unix::net::UnixStream::connect(path).is_ok(),
        "no Docker 20.10 at {addr}: run `scripts/buildkit-up --docker20` first"
    );
    addr
}

/// A `docker` CLI command talking to the Docker 20.10 daemon.
pub fn docker20() -> Command {
    let addr = docker20_addr();
    let mut command = Command::new("docker");
    command.env("DOCKER_HOST", addr.replacen("docker+unix://", "unix://", 1));
    command
}

/// Runs git in `dir` as a fixed identity, committing at `time` (seconds since 1970) when it commits; returns its
/// output. Panics when git fails.
pub fn git_at(dir: &Path, args: &[&str], time: i64) -> String {
    let date = format!("@{time} +0000");
    let output = Command::new("git")
        .args(["-c", "user.name=Hive", "-c", "user.email=hive@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[cfg(test)]
mod multiplatform_tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), bytes).unwrap();
        let output = Command::new("gzip")
            .arg("-c")
            .arg(path.path())
            .output()
            .unwrap();
        assert!(output.status.success());
        output.stdout
    }

    #[test]
    fn elf_arch_reads_the_machine_of_this_test_binary() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(elf_arch(&bytes), crate::host_arch());
    }

    #[test]
    #[should_panic(expected = "not an ELF file")]
    fn elf_arch_refuses_a_script() {
        elf_arch(b"#!/bin/sh\necho hello from a script\n");
    }

    #[test]
    fn gunzip_inflates_gzip_and_keeps_anything_else() {
        let big: Vec<u8> = (0..300_000u32).flat_map(u32::to_le_bytes).collect();
        assert!(gunzip(&gzip(&big)) == big);
        assert_eq!(gunzip(b"plain tar"), b"plain tar");
    }

    #[test]
    fn platform_names_drop_the_v8_of_arm64_only() {
        let name = |platform: Value| platform_name(&serde_json::json!({ "platform": platform }));
        assert_eq!(
            name(serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
            "linux/arm64"
        );
        assert_eq!(
            name(serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"})),
            "linux/arm/v7"
        );
        assert_eq!(
            name(serde_json::json!({"os": "linux", "architecture": "amd64"})),
            "linux/amd64"
        );
    }

    #[test]
    fn a_file_of_an_image_is_the_top_layer_s() {
        let image = PlatformImage {
            platform: "linux/amd64".into(),
            digest: "sha256:0".into(),
            manifest: Value::Null,
            config: Value::Null,
            layers: vec![
                tar_of(&[("usr/local/bin/app", b"old"), ("etc/base", b"base")]),
                tar_of(&[("./usr/local/bin/app", b"new")]),
            ],
        };
        assert_eq!(image.file("/usr/local/bin/app").unwrap(), b"new");
        assert_eq!(image.file("/etc/base").unwrap(), b"base");
        assert_eq!(image.file("/missing"), None);
    }

    #[test]
    fn platform_images_skip_attestations_and_read_each_manifest() {
        let index = serde_json::json!({
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {"digest": "sha256:m1", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
            ]
        });
        let layer = gzip(&tar_of(&[("bin/x", b"x")]));
        let blobs: BTreeMap<&str, Vec<u8>> = BTreeMap::from([
            (
                "sha256:m1",
                serde_json::to_vec(&serde_json::json!({
                    "config": {"digest": "sha256:c1"},
                    "layers": [{"digest": "sha256:l1"}]
                }))
                .unwrap(),
            ),
            ("sha256:c1", br#"{"architecture":"arm64"}"#.to_vec()),
            ("sha256:l1", layer),
        ]);
        let fetch = |digest: &str| blobs[digest].clone();
        let images = platform_images(&index, fetch, fetch);
        assert_eq!(images.keys().collect::<Vec<_>>(), ["linux/arm64"]);
        let arm64 = &images["linux/arm64"];
        assert_eq!(arm64.digest, "sha256:m1");
        assert_eq!(arm64.config["architecture"], "arm64");
        assert_eq!(arm64.file("/bin/x").unwrap(), b"x");
    }
}
