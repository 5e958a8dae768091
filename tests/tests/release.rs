//! `cargo hive release` end to end against the real daemon and the local registry: examples/workspace (both
//! platforms) in a git checkout, released with alias tags that only move forward, an SPDX SBOM and provenance
//! attached to every platform's image, a record in `target/hive/release.json`, and the refusals (a dirty tree).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use hive_e2e::fixture::{
    AUTH_PASSWORD_FILE, AUTH_REGISTRY, Fixture, REGISTRY, base64, docker20, docker20_addr,
    registry_blob, registry_get, registry_manifest, registry_path, succeed, unique_repository,
    workspace_under,
};
use hive_e2e::{assert_error, buildkit_addr, cargo_hive, run};
use serde_json::Value;

/// A commit time for the fixture's checkout (2026-11-01), so SOURCE_DATE_EPOCH comes from git.
const COMMIT_TIME: i64 = 1_793_491_200;

/// Runs git in `dir` with a fixed identity and commit time.
fn git(dir: &Path, args: &[&str]) {
    hive_e2e::fixture::git_at(dir, args, COMMIT_TIME);
}

/// Commits everything in the workspace.
fn commit(fixture: &Fixture, message: &str) {
    git(&fixture.root(), &["add", "-A"]);
    git(&fixture.root(), &["commit", "-q", "-m", message]);
}

/// examples/workspace under a registry prefix unique to the test, every image tagged `{version}` and `latest`
/// with alias tags, in a git checkout of its own.
fn released_workspace(what: &str) -> (Fixture, String) {
    let registry = unique_repository(&format!("localhost:5000/e2e/rel-{what}"));
    let fixture = workspace_under(&registry);
    fixture.edit(
        "Cargo.toml",
        "tags = [\"{version}\", \"{git.short_sha}\"]",
        "tags = [\"{version}\", \"latest\"]\naliases = true",
    );
    git(&fixture.root(), &["init", "-q", "-b", "main"]);
    commit(&fixture, "one");
    (fixture, registry)
}

/// `cargo hive release` in the fixture, against the suite's daemon.
fn release(fixture: &Fixture) -> Command {
    release_at(fixture, &buildkit_addr())
}

/// `cargo hive release --addr ADDR` in the fixture.
fn release_at(fixture: &Fixture, addr: &str) -> Command {
    let mut command = cargo_hive();
    command
        .current_dir(fixture.root())
        .env("CARGO_TARGET_DIR", fixture.target())
        .env("DOCKER_CONFIG", fixture.scratch("docker-config"))
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("HIVE_GIT_SHA")
        .env_remove("HIVE_GIT_BRANCH")
        .args(["release", "--addr", addr]);
    command
}

/// The tags of a repository in the plain registry (none when it does not exist).
fn registry_tags(repository: &str) -> Vec<String> {
    let path = registry_path(repository);
    let (status, _, body) = registry_get(REGISTRY, &format!("/v2/{path}/tags/list"), None);
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let value: Value = serde_json::from_slice(&body).unwrap();
    let mut tags: Vec<String> = value["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|tag| tag.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The digest a tag names.
fn tag_digest(repository: &str, tag: &str) -> String {
    registry_manifest(registry_path(repository), tag).0
}

/// The in-toto statements attached to each platform of an index: platform → predicate type → statement.
fn attestations(repository: &str, tag: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    let path = registry_path(repository);
    let (_, index) = registry_manifest(path, tag);
    let manifests = index["manifests"].as_array().expect("an index");
    let platform_of = |digest: &str| {
        let entry = manifests
            .iter()
            .find(|entry| entry["digest"] == digest)
            .unwrap_or_else(|| panic!("{digest} is not in the index"));
        format!(
            "{}/{}",
            entry["platform"]["os"].as_str().unwrap(),
            entry["platform"]["architecture"].as_str().unwrap()
        )
    };
    let mut found: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for entry in manifests {
        let annotations = &entry["annotations"];
        if annotations["vnd.docker.reference.type"] != "attestation-manifest" {
            continue;
        }
        let platform = platform_of(annotations["vnd.docker.reference.digest"].as_str().unwrap());
        let (_, manifest) = registry_manifest(path, entry["digest"].as_str().unwrap());
        for layer in manifest["layers"].as_array().unwrap() {
            let predicate_type = layer["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
                .to_owned();
            let statement: Value =
                serde_json::from_slice(&registry_blob(path, layer["digest"].as_str().unwrap()))
                    .unwrap();
            found
                .entry(platform.clone())
                .or_default()
                .insert(predicate_type, statement);
        }
    }
    found
}

/// The package names and versions an SPDX document lists.
fn spdx_packages(document: &Value) -> BTreeMap<String, String> {
    document["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            (
                package["name"].as_str().unwrap().to_owned(),
                package["versionInfo"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// A version from the example's Cargo.lock (`name = "…"` followed by `version = "…"`).
fn locked_version(fixture: &Fixture, name: &str) -> String {
    let lock = std::fs::read_to_string(fixture.root().join("Cargo.lock")).unwrap();
    let marker = format!("name = \"{name}\"\nversion = \"");
    let start = lock
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} is not in Cargo.lock"))
        + marker.len();
    lock[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn aliases_move_only_forward_and_every_platform_carries_its_sbom_and_provenance() {
    let (fixture, registry) = released_workspace("forward");
    let api = format!("{registry}/api");

    // A dry run says what would happen and writes nothing.
    let dry = succeed(release(&fixture).args(["--dry-run", "-p", "api"]));
    let text = dry.stdout.clone();
    for tag in ["1.4.2", "1.4", "1", "latest"] {
        assert!(
            text.contains(&format!("{api}:{tag}")) && text.contains("would be created"),
            "{text}"
        );
    }
    assert_eq!(registry_tags(&api), Vec::<String>::new());

    // 1.4.2: every tag created.
    succeed(release(&fixture).args(["-p", "api"]));
    assert_eq!(registry_tags(&api), ["1", "1.4", "1.4.2", "latest"]);
    let first = tag_digest(&api, "1.4.2");
    for tag in ["1", "1.4", "latest"] {
        assert_eq!(tag_digest(&api, tag), first, "{tag}");
    }
    let record: Value =
        serde_json::from_slice(&std::fs::read(fixture.target().join("hive/release.json")).unwrap())
            .unwrap();
    let entry = &record["images"]["api"];
    assert_eq!(entry["containerimage.digest"], first.as_str());
    assert_eq!(entry["version"], "1.4.2");
    assert_eq!(entry["platforms"].as_object().unwrap().len(), 2);
    assert!(
        entry["image.name"]
            .as_str()
            .unwrap()
            .contains(&format!("{api}:1.4"))
    );

    // Each platform's image has an SPDX SBOM and SLSA provenance; the SBOM is Cargo.lock's, per platform.
    let attached = attestations(&api, "1.4.2");
    assert_eq!(attached.len(), 2, "{attached:#?}");
    let itoa = locked_version(&fixture, "itoa");
    for (platform, statements) in &attached {
        assert!(
            statements
                .keys()
                .any(|kind| kind.starts_with("https://slsa.dev/provenance")),
            "{platform}: {:?}",
            statements.keys()
        );
        let sbom = &statements["https://spdx.dev/Document"]["predicate"];
        let packages = spdx_packages(sbom);
        assert_eq!(
            packages.get("itoa"),
            Some(&itoa),
            "{platform}: {packages:?}"
        );
        assert_eq!(
            packages.contains_key("arm-support"),
            platform == "linux/arm64",
            "{platform}: {packages:?}"
        );
        let file = fixture
            .target()
            .join(format!("hive/api/{}.spdx.json", platform.replace('/', "-")));
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(&written, sbom, "{}", file.display());
    }

    // A 1.3.9 hotfix after 1.4.2: its own tags move, `1` and `latest` stay on 1.4.2.
    fixture.edit("Cargo.toml", "version = \"1.4.2\"", "version = \"1.3.9\"");
    fixture.edit(
        "crates/api/src/main.rs",
        "fn main() {",
        "fn main() {\n    let _hotfix = 139;",
    );
    commit(&fixture, "hotfix");
    let dry = succeed(release(&fixture).args(["--dry-run", "-p", "api"]));
    let text = dry.stdout.clone();
    assert!(text.contains(&format!("{api}:latest")), "{text}");
    assert!(text.contains("1.4.2 is a higher release"), "{text}");
    succeed(release(&fixture).args(["-p", "api"]));
    assert_eq!(
        registry_tags(&api),
        ["1", "1.3", "1.3.9", "1.4", "1.4.2", "latest"]
    );
    let hotfix = tag_digest(&api, "1.3.9");
    assert_ne!(hotfix, first);
    assert_eq!(tag_digest(&api, "1.3"), hotfix);
    assert_eq!(tag_digest(&api, "1"), first);
    assert_eq!(tag_digest(&api, "latest"), first);
    let record: Value =
        serde_json::from_slice(&std::fs::read(fixture.target().join("hive/release.json")).unwrap())
            .unwrap();
    let left: Vec<&Value> = record["images"]["api"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|tag| tag["action"] == "left")
        .collect();
    assert_eq!(left.len(), 2, "{record:#}");
    assert!(left.iter().all(|tag| tag["pushed"] == false));
}

#[test]
fn a_dirty_tree_is_refused_and_a_pre_release_gets_no_aliases() {
    let (fixture, registry) = released_workspace("pre");
    let api = format!("{registry}/api");
    fixture.edit(
        "Cargo.toml",
        "version = \"1.4.2\"",
        "version = \"2.0.0-rc.1\"",
    );

    let refused = run(release(&fixture).args(["-p", "api"]));
    assert_error(&refused, &["Cargo.toml", "--allow-dirty"]);
    assert_eq!(registry_tags(&api), Vec::<String>::new());

    succeed(release(&fixture).args(["-p", "api", "--allow-dirty"]));
    assert_eq!(registry_tags(&api), ["2.0.0-rc.1"]);
}

/// Each platform's manifest digest, from the release record.
fn released_platforms(fixture: &Fixture, image: &str) -> Value {
    let record: Value =
        serde_json::from_slice(&std::fs::read(fixture.target().join("hive/release.json")).unwrap())
            .unwrap();
    record["images"][image]["platforms"].clone()
}

#[test]
fn two_releases_of_one_commit_give_the_same_digests() {
    let (fixture, registry) = released_workspace("repro");
    let api = format!("{registry}/api");
    let sbom = fixture.target().join("hive/api/linux-arm64.spdx.json");
    let forget = || std::fs::remove_dir_all(fixture.target().join("hive")).unwrap();
    succeed(release(&fixture).args(["-p", "api"]));
    let first = tag_digest(&api, "1.4.2");
    let platforms = released_platforms(&fixture, "api");
    let first_sbom = std::fs::read(&sbom).unwrap();
    // Nothing local to lean on: the second release builds again. Its provenance differs (BuildKit writes the
    // build's id and times into it), its images and SBOMs do not, so every tag keeps naming the first index.
    forget();
    succeed(release(&fixture).args(["-p", "api"]));
    assert_eq!(released_platforms(&fixture, "api"), platforms);
    assert_eq!(std::fs::read(&sbom).unwrap(), first_sbom);
    for tag in ["1.4.2", "1.4", "1", "latest"] {
        assert_eq!(tag_digest(&api, tag), first, "{tag}");
    }
    // Without provenance the index is another one (fewer attestations), reproducible by itself.
    forget();
    succeed(release(&fixture).args(["-p", "api", "--provenance=false"]));
    let plain = tag_digest(&api, "1.4.2");
    assert_ne!(plain, first);
    assert_eq!(released_platforms(&fixture, "api"), platforms);
    forget();
    succeed(release(&fixture).args(["-p", "api", "--provenance=false"]));
    assert_eq!(tag_digest(&api, "1.4.2"), plain);
    assert_eq!(std::fs::read(&sbom).unwrap(), first_sbom);
}

#[test]
fn a_release_to_the_login_registry_reads_its_tags_and_pushes_with_the_docker_config() {
    let registry = unique_repository(&format!("{AUTH_REGISTRY}/e2e/rel-auth"));
    let fixture = workspace_under(&registry);
    fixture.edit(
        "Cargo.toml",
        "tags = [\"{version}\", \"{git.short_sha}\"]",
        "tags = [\"{version}\"]\naliases = true",
    );
    git(&fixture.root(), &["init", "-q", "-b", "main"]);
    commit(&fixture, "one");
    let password = std::fs::read_to_string(AUTH_PASSWORD_FILE).unwrap_or_else(|err| {
        panic!("{AUTH_PASSWORD_FILE}: {err}: run `scripts/buildkit-up` first")
    });
    let basic = base64(format!("hive:{}", password.trim()).as_bytes());
    std::fs::write(
        fixture.scratch("docker-config").join("config.json"),
        serde_json::json!({"auths": {AUTH_REGISTRY: {"auth": basic}}}).to_string(),
    )
    .unwrap();

    let result = succeed(release(&fixture).args(["-p", "api", "--platform", "linux/amd64"]));
    assert!(
        !result.stderr.contains(password.trim()),
        "{}",
        result.stderr
    );
    let path = registry.strip_prefix(&format!("{AUTH_REGISTRY}/")).unwrap();
    let authorization = format!("Basic {basic}");
    let (status, _, body) = registry_get(
        AUTH_REGISTRY,
        &format!("/v2/{path}/api/tags/list"),
        Some(&authorization),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let tags: Value = serde_json::from_slice(&body).unwrap();
    let mut tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1", "1.4", "1.4.2"]);
}

#[test]
fn docker_20_10_releases_without_attestations_and_says_so_once() {
    let (fixture, registry) = released_workspace("docker20");
    let api = format!("{registry}/api");
    let result = succeed(release_at(&fixture, &docker20_addr()).args([
        "-p",
        "api",
        "--platform",
        "linux/amd64",
    ]));
    let warnings: Vec<&str> = result
        .stderr
        .lines()
        .filter(|line| line.contains("without attestations"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", result.stderr);
    assert_eq!(registry_tags(&api), ["1", "1.4", "1.4.2", "latest"]);
    // The SBOM is still written for the record.
    assert!(
        fixture
            .target()
            .join("hive/api/linux-amd64.spdx.json")
            .is_file()
    );
    let images = [
        format!("{api}:1.4.2"),
        format!("{api}:latest"),
        format!("{api}:1.4"),
        format!("{api}:1"),
    ];
    let _ = docker20().arg("rmi").args(&images).output();
}
