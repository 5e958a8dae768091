//! Freshness without local records (issue 12): a push records its image's content fingerprint on the image (the
//! `dev.cargo-hive.fingerprint` annotation), so a fresh checkout (no `target/hive/.fresh/`) against the same
//! registry finds an unchanged image there and builds nothing; anything that changes the image, moves a tag, or
//! asks for a build regardless (`--no-cache`) builds and pushes again.
//!
//! Each test pushes to a repository of its own in the plain registry.

use hive_e2e::docker;
use hive_e2e::fixture::*;
use serde_json::Value;

/// The annotation a push records the content fingerprint in.
const ANNOTATION: &str = "dev.cargo-hive.fingerprint";

/// examples/hello pushed to a repository of its own (tags `0.1.0` and `latest`).
struct Hello {
    fixture: Fixture,
    /// The repository's path in the plain registry.
    path: String,
    _cleanup: LocalImages,
}

impl Hello {
    fn new(name: &str) -> Hello {
        Hello::in_registry(name, "localhost:5000")
    }

    fn in_registry(name: &str, registry: &str) -> Hello {
        let path = unique_repository(&format!("e2e/remote-fresh-{name}"));
        let (fixture, cleanup) = Fixture::hello_in(&format!("{registry}/{path}"));
        Hello {
            fixture,
            path,
            _cleanup: cleanup,
        }
    }

    /// The records of earlier builds are gone, as in a fresh CI checkout.
    fn forget_records(&self) {
        self.fixture.forget_records();
    }

    fn record_exists(&self) -> bool {
        self.fixture
            .target()
            .join("hive/.fresh/hello.json")
            .is_file()
    }

    /// `cargo hive build --push` with `args`, and what it did.
    fn push(&self, args: &[&str]) -> ImageOutcome {
        ImageOutcome::build(&self.fixture, "hello", &[&["--push"], args].concat())
    }

    /// The digest and JSON of what `tag` names in the registry.
    fn tagged(&self, tag: &str) -> (String, Value) {
        registry_manifest(&self.path, tag)
    }

    /// The fingerprint annotation of what `tag` names (on an index, or on a plain manifest).
    fn fingerprint(&self, tag: &str) -> Option<String> {
        let (_, document) = self.tagged(tag);
        document["annotations"][ANNOTATION]
            .as_str()
            .map(str::to_owned)
    }
}

/// The fresh-checkout shortcut for an image pushed with attestations (an index) or without (a plain manifest):
/// nothing solved, nothing sent, the same metadata as the push, a record for the next build; and `--no-cache`
/// builds it again, into the same bytes when nothing in it changes from build to build.
#[test]
fn a_fresh_checkout_finds_its_unchanged_image_in_the_registry() {
    for (name, args, kind) in [
        ("index", &[][..], INDEX_MEDIA_TYPE),
        (
            "manifest",
            &["--provenance=false"][..],
            "application/vnd.oci.image.manifest.v1+json",
        ),
    ] {
        let hello = Hello::new(name);
        let first = hello.push(args);
        assert!(first.solved, "{name}: the first push builds");
        let (digest, document) = hello.tagged("latest");
        assert_eq!(document["mediaType"], kind, "{name}: {document:#}");
        let print = hello.fingerprint("latest").unwrap_or_else(|| {
            panic!("{name}: no {ANNOTATION} annotation on {document:#}");
        });
        assert_eq!(print.len(), 64, "{name}: {print}");
        assert_eq!(hello.fingerprint("0.1.0").as_deref(), Some(print.as_str()));

        hello.forget_records();
        let again = hello.push(args);
        assert!(
            !again.solved,
            "{name}: BuildKit worked on an unchanged image"
        );
        assert_eq!(again.bytes_sent, 0, "{name}");
        assert_eq!(again.output, "registry (fresh)", "{name}");
        // What --metadata-file says of a fresh image is what the push said (digest, platforms, config), but for the
        // bytes sent.
        let without_bytes = |mut metadata: Value| {
            metadata["bytes_sent"].take();
            metadata
        };
        assert_eq!(
            without_bytes(again.metadata),
            without_bytes(first.metadata),
            "{name}"
        );
        assert_eq!(hello.tagged("latest").0, digest, "{name}: the tag moved");
        assert!(
            hello.record_exists(),
            "{name}: the registry's answer was not recorded"
        );

        hello.forget_records();
        let rebuilt = hello.push(&[args, &["--no-cache"]].concat());
        assert!(rebuilt.solved, "{name}: --no-cache found the image fresh");
        assert_eq!(hello.fingerprint("latest").as_deref(), Some(print.as_str()));
        if name == "manifest" {
            // Without provenance (its build's own times and id), the same inputs make the same image, bytes and all.
            assert_eq!(hello.tagged("latest").0, digest, "{name}: not reproducible");
        }
    }
}

/// A changed binary, another exporter (attestations asked or not) and another set of platforms each make a new
/// image: a fresh checkout builds and pushes it, never reports the old one fresh.
#[test]
fn a_changed_image_is_pushed_again() {
    let hello = Hello::new("changed");
    hello.push(&["--provenance=false"]);
    let before = hello.fingerprint("latest").expect("annotated");

    hello.fixture.edit("src/main.rs", "Hello from", "Hi from");
    hello.forget_records();
    let changed = hello.push(&["--provenance=false"]);
    assert!(changed.solved, "a changed binary was found fresh");
    let after = hello.fingerprint("latest").expect("annotated");
    assert_ne!(after, before);

    // The same binary with provenance is another image (an index with an attestation).
    hello.forget_records();
    let attested = hello.push(&[]);
    assert!(attested.solved, "another exporter's image was found fresh");
    assert_ne!(hello.fingerprint("latest").expect("annotated"), after);
    hello.forget_records();
    assert!(!hello.push(&[]).solved, "the attested image again");
    hello.forget_records();
    assert!(hello.push(&["--provenance=false"]).solved, "and back");

    // Another set of platforms: one image of examples/workspace for one platform, then for both.
    let registry = format!(
        "localhost:5000/{}",
        unique_repository("e2e/remote-fresh-platforms")
    );
    let fixture = workspace_under(&registry);
    let _cleanup = LocalImages(vec![format!("{registry}/worker:1.4.2")]);
    let push = |extra: &[&str]| {
        fixture.forget_records();
        let result = succeed(
            fixture
                .build()
                .args([
                    "--push",
                    "--provenance=false",
                    "--image",
                    "worker",
                    "--progress",
                    "json",
                ])
                .args(extra),
        );
        solved(&events(&result)).contains("worker")
    };
    assert!(push(&["--platform", "linux/amd64"]));
    assert!(!push(&["--platform", "linux/amd64"]), "one platform again");
    assert!(push(&[]), "both platforms were found fresh after one");
    let (_, index) = registry_manifest(&format!("{}/worker", registry_path(&registry)), "1.4.2");
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(2),
        "{index:#}"
    );
    assert!(!push(&[]), "both platforms again");
}

/// A tag that someone else moved to another image (here one of the image's two tags) means the registry no longer
/// holds the image under every reference: it is pushed again, and the tag names it again.
#[test]
fn a_tag_moved_by_someone_else_is_pushed_again() {
    let hello = Hello::new("moved");
    hello.push(&["--provenance=false"]);
    let (digest, _) = hello.tagged("latest");

    let latest = format!("localhost:5000/{}:latest", hello.path);
    succeed(docker().args(["tag", "localhost:5000/hive/busybox:latest", &latest]));
    succeed(docker().args(["push", "--quiet", &latest]));
    assert_ne!(hello.tagged("latest").0, digest);
    assert_eq!(hello.tagged("0.1.0").0, digest);

    hello.forget_records();
    let again = hello.push(&["--provenance=false"]);
    assert!(again.solved, "a moved tag was found fresh");
    assert_eq!(
        hello.tagged("latest").0,
        digest,
        "the tag names the image again"
    );
}

/// A registry that wants a login is read with the user's Docker credentials, as the push was made: an unchanged
/// image there is found fresh too.
#[test]
fn the_login_registry_is_read_with_the_users_credentials() {
    let hello = Hello::in_registry("login", AUTH_REGISTRY);
    let password = std::fs::read_to_string(AUTH_PASSWORD_FILE).unwrap_or_else(|err| {
        panic!("{AUTH_PASSWORD_FILE}: {err}: run `scripts/buildkit-up` first")
    });
    let auth = base64(format!("hive:{}", password.trim()).as_bytes());
    let config = serde_json::json!({"auths": {AUTH_REGISTRY: {"auth": auth}}});
    let config_path = hello.fixture.scratch("docker-config").join("config.json");
    std::fs::write(config_path, config.to_string()).unwrap();
    assert!(hello.push(&["--provenance=false"]).solved);
    hello.forget_records();
    let again = hello.push(&["--provenance=false"]);
    assert!(!again.solved, "BuildKit worked on an unchanged image");
    assert_eq!(again.output, "registry (fresh)");
}

/// Another checkout of the same sources, elsewhere on disk and with its own target dir (as a CI runner's), that
/// builds the same binary finds the image the first pushed: nothing of the checkout's place is in the fingerprint.
#[test]
fn another_checkout_elsewhere_finds_the_same_image() {
    let first = Hello::new("elsewhere");
    let second = Fixture::example("hello");
    let repository = format!("localhost:5000/{}", first.path);
    second.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    assert_ne!(first.fixture.root(), second.root());
    assert!(first.push(&["--release", "--provenance=false"]).solved);
    let binary = |fixture: &Fixture| std::fs::read(fixture.target().join("release/hello")).unwrap();
    let result = succeed(second.build().args([
        "--push",
        "--release",
        "--provenance=false",
        "--progress",
        "json",
    ]));
    // Release builds of hello carry no path of their checkout (no debug info): the same bytes from both.
    assert!(
        binary(&first.fixture) == binary(&second),
        "the two checkouts built different binaries"
    );
    let events = events(&result);
    assert!(
        !solved(&events).contains("hello"),
        "the same image from another checkout was built again"
    );
    assert_eq!(
        ImageOutcome::of(&result, "hello", Value::Null).output,
        "registry (fresh)"
    );
}
