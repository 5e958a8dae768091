//! What the daemon found under a base's digest (its config per platform, whether a loader is there) is kept in
//! `target/hive/.fresh/.bases/` and used while the base's tag still names that digest: the registry is asked what the tag
//! names on every build (one HEAD), the daemon only about digests it has not answered for. A moved tag is resolved
//! again; `--no-cache` asks the daemon regardless.

use std::path::PathBuf;

use hive_e2e::fixture::*;
use serde_json::Value;

/// examples/hello pushed to a repository of its own: the base of the image under test.
struct PushedBase {
    fixture: Fixture,
    path: String,
    _cleanup: LocalImages,
}

impl PushedBase {
    fn new() -> PushedBase {
        let path = unique_repository("e2e/known-bases");
        let (fixture, cleanup) = Fixture::hello_in(&format!("localhost:5000/{path}"));
        let base = PushedBase {
            fixture,
            path,
            _cleanup: cleanup,
        };
        base.push();
        base
    }

    fn push(&self) {
        succeed(self.fixture.build().arg("--push"));
    }

    /// What `latest` names in the registry now (an index).
    fn digest(&self) -> String {
        let (status, headers, _) = registry_get(
            "localhost:5000",
            &format!("/v2/{}/manifests/latest", self.path),
            None,
        );
        assert_eq!(status, 200);
        headers["docker-content-digest"].clone()
    }

    /// The linux/amd64 image's layers, as pushed.
    fn layers(&self) -> Vec<String> {
        let get = |reference: &str| {
            let (status, _, body) = registry_get(
                "localhost:5000",
                &format!("/v2/{}/manifests/{reference}", self.path),
                None,
            );
            assert_eq!(status, 200);
            serde_json::from_slice::<Value>(&body).unwrap()
        };
        let index = get("latest");
        let amd64 = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|manifest| manifest["platform"]["architecture"] == "amd64")
            .unwrap_or_else(|| panic!("no amd64 image in {index:#}"));
        let manifest = get(amd64["digest"].as_str().unwrap());
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| layer["digest"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// examples/hello again, on the pushed image.
fn image_on(base: &PushedBase) -> Fixture {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        &format!("base = \"localhost:5000/{}\"", base.path),
    );
    fixture
}

/// Where the answers about `digest` are kept.
fn kept(fixture: &Fixture, digest: &str) -> PathBuf {
    let file = digest.replacen(':', "-", 1) + ".json";
    fixture.target().join("hive/.fresh/.bases").join(file)
}

/// Adds `KEPT=1` to the config kept for linux/amd64 under `digest`, so a build shows whether it used it.
fn mark_kept_config(fixture: &Fixture, digest: &str) {
    let path = kept(fixture, digest);
    let mut known = read_json(&path);
    let text = known["platforms"]["linux/amd64"]["config"]
        .as_str()
        .unwrap_or_else(|| panic!("no linux/amd64 config in {known:#}"))
        .to_owned();
    let mut config: Value = serde_json::from_str(&text).unwrap();
    let env = config["config"]["Env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut env = env;
    env.push(Value::from("KEPT=1"));
    config["config"]["Env"] = Value::from(env);
    known["platforms"]["linux/amd64"]["config"] = Value::from(config.to_string());
    std::fs::write(&path, known.to_string()).unwrap();
}

fn built_env(fixture: &Fixture) -> Vec<String> {
    let config = OciArchive::open(&fixture.archive("hello")).config();
    config["config"]["Env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|var| var.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_base_is_used_as_kept_until_its_tag_moves() {
    let base = PushedBase::new();
    let first = base.digest();
    let image = image_on(&base);

    succeed(&mut image.build());
    let layers = OciArchive::open(&image.archive("hello")).layers();
    assert!(layers.starts_with(&base.layers()), "{layers:?}");
    assert!(kept(&image, &first).is_file(), "nothing kept for {first}");
    assert!(!built_env(&image).contains(&"KEPT=1".to_owned()));

    // The tag still names the same digest: what is kept is what the build uses (the daemon is not asked).
    mark_kept_config(&image, &first);
    succeed(&mut image.build());
    assert!(
        built_env(&image).contains(&"KEPT=1".to_owned()),
        "the kept config was not used"
    );

    // --no-cache asks the daemon again.
    succeed(image.build().arg("--no-cache"));
    assert!(
        !built_env(&image).contains(&"KEPT=1".to_owned()),
        "--no-cache used the kept config"
    );

    // The tag moves: the new digest is resolved by the daemon and the image is built on it.
    base.fixture.edit(
        "src/main.rs",
        "Hello from a cargo-hive image!",
        "Hello again!",
    );
    base.push();
    let second = base.digest();
    assert_ne!(first, second, "the base's tag did not move");
    succeed(&mut image.build());
    let layers = OciArchive::open(&image.archive("hello")).layers();
    assert!(
        layers.starts_with(&base.layers()),
        "built on the old base: {layers:?}"
    );
    assert!(!built_env(&image).contains(&"KEPT=1".to_owned()));
    assert!(kept(&image, &second).is_file(), "nothing kept for {second}");
}
