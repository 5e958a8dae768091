//! `--load` freshness without local records (issue 12): every image we lay out carries its content fingerprint in
//! the comment of its newest history entry, so a fresh checkout (no `target/hive/.fresh/`) against a Docker that
//! already has the unchanged image under its name builds nothing; a changed binary or config, an image someone
//! else put under the name, or `--no-cache` build and load again. And the fingerprint is the image's own: the same
//! sources make the same image whether it is loaded or written as an archive.

use hive_e2e::docker;
use hive_e2e::fixture::*;

/// examples/hello loaded as a repository of its own (tags `0.1.0` and `latest`).
struct Hello {
    fixture: Fixture,
    reference: String,
    _cleanup: LocalImages,
}

impl Hello {
    fn new(name: &str) -> Hello {
        let repository = format!(
            "localhost:5000/{}",
            unique_repository(&format!("e2e/load-fresh-{name}"))
        );
        let (fixture, cleanup) = Fixture::hello_in(&repository);
        Hello {
            fixture,
            reference: format!("{repository}:0.1.0"),
            _cleanup: cleanup,
        }
    }

    /// The records of earlier builds are gone, as in a fresh CI checkout.
    fn forget_records(&self) {
        self.fixture.forget_records();
    }

    /// `cargo hive build --load` with `args`, and what it did.
    fn load(&self, args: &[&str]) -> ImageOutcome {
        ImageOutcome::build(&self.fixture, "hello", &[&["--load"], args].concat())
    }

    /// Docker's id of the image under the reference, and the comment of its newest history entry.
    fn in_docker(&self) -> (String, String) {
        let id = docker_inspect(&self.reference)["Id"]
            .as_str()
            .expect("Docker has the image")
            .to_owned();
        let history = succeed(docker().args([
            "image",
            "history",
            "--no-trunc",
            "--format",
            "{{.Comment}}",
            &self.reference,
        ]));
        let newest = history.stdout.lines().next().unwrap_or_default().to_owned();
        (id, newest)
    }
}

/// The comment that names a content fingerprint, and the fingerprint (64 hex digits).
fn fingerprint_of(comment: &str) -> &str {
    let print = comment
        .strip_prefix("cargo-hive fingerprint ")
        .unwrap_or_else(|| panic!("not a fingerprint comment: {comment:?}"));
    assert_eq!(print.len(), 64, "{comment}");
    assert!(print.bytes().all(|b| b.is_ascii_hexdigit()), "{comment}");
    print
}

/// Loaded, then found in Docker by a checkout without records: nothing solved, nothing sent, the digest and
/// platforms the load reported, and a record for the next build. `--no-cache` builds it again, into the same image.
#[test]
fn a_fresh_checkout_finds_its_unchanged_image_in_docker() {
    let hello = Hello::new("unchanged");
    let first = hello.load(&[]);
    assert!(first.solved, "the first load builds");
    let (id, comment) = hello.in_docker();
    let print = fingerprint_of(&comment).to_owned();
    assert_eq!(
        first.metadata["containerimage.digest"],
        id.as_str(),
        "{:#}",
        first.metadata
    );

    hello.forget_records();
    let again = hello.load(&[]);
    assert!(!again.solved, "BuildKit worked on an unchanged image");
    assert_eq!(again.bytes_sent, 0);
    assert_eq!(again.output, "docker (fresh)");
    assert_eq!(
        again.metadata["containerimage.digest"],
        first.metadata["containerimage.digest"]
    );
    assert_eq!(again.metadata["platforms"], first.metadata["platforms"]);
    assert_eq!(hello.in_docker().0, id, "the image in Docker changed");
    assert!(
        hello
            .fixture
            .target()
            .join("hive/.fresh/hello.json")
            .is_file(),
        "Docker's answer was not recorded"
    );
    // The record it left holds as one a load leaves.
    assert_eq!(hello.load(&[]).output, "docker (fresh)");

    hello.forget_records();
    let rebuilt = hello.load(&["--no-cache"]);
    assert!(rebuilt.solved, "--no-cache found the image fresh");
    let (rebuilt_id, rebuilt_comment) = hello.in_docker();
    assert_eq!(fingerprint_of(&rebuilt_comment), print);
    assert_eq!(rebuilt_id, id, "the same sources made another image");
}

/// A changed binary, a changed config, and an image someone else put under the name are never taken for the
/// image: a checkout without records builds and loads again, and Docker has the new image under the name.
#[test]
fn a_changed_or_replaced_image_is_loaded_again() {
    let hello = Hello::new("changed");
    hello.load(&[]);
    let (first_id, first_comment) = hello.in_docker();

    hello.fixture.edit("src/main.rs", "Hello from", "Hi from");
    hello.forget_records();
    assert!(hello.load(&[]).solved, "a changed binary was found fresh");
    let (binary_id, binary_comment) = hello.in_docker();
    assert_ne!(binary_id, first_id);
    assert_ne!(
        fingerprint_of(&binary_comment),
        fingerprint_of(&first_comment)
    );

    hello
        .fixture
        .set_image_keys("Cargo.toml", "hello", "env = { GREETING = \"hi\" }");
    hello.forget_records();
    assert!(hello.load(&[]).solved, "a changed config was found fresh");
    let (config_id, config_comment) = hello.in_docker();
    assert_ne!(config_id, binary_id);
    assert_ne!(
        fingerprint_of(&config_comment),
        fingerprint_of(&binary_comment)
    );
    let env = docker_inspect(&hello.reference)["Config"]["Env"].to_string();
    assert!(env.contains("GREETING=hi"), "{env}");

    succeed(docker().args([
        "tag",
        "localhost:5000/hive/busybox:latest",
        &hello.reference,
    ]));
    hello.forget_records();
    assert!(
        hello.load(&[]).solved,
        "another image under the name was found fresh"
    );
    assert_eq!(
        hello.in_docker(),
        (config_id, config_comment),
        "the name names the image again"
    );
}

/// The fingerprint is part of the image, not of where it goes: the archive of the same sources has the config
/// Docker got (the same comment, the same layers by their diff ids); only the manifest's media types differ (Docker
/// media types in Docker's store).
#[test]
fn the_archive_and_the_loaded_image_are_one_image() {
    let hello = Hello::new("same");
    let loaded = hello.load(&[]);
    let (_, comment) = hello.in_docker();
    succeed(&mut hello.fixture.build());
    let archive = OciArchive::open(&hello.fixture.archive("hello"));
    let history = archive.config()["history"].clone();
    let newest = history
        .as_array()
        .and_then(|entries| entries.last())
        .cloned();
    assert_eq!(
        newest.as_ref().and_then(|entry| entry["comment"].as_str()),
        Some(comment.as_str()),
        "{history:#}"
    );
    let (_, _, manifest) = archive.manifest();
    assert_eq!(
        manifest["config"]["digest"], loaded.metadata["containerimage.config.digest"],
        "Docker's image config is not the archive's"
    );
}

/// Another checkout of the same sources, elsewhere on disk with its own target dir (as a CI runner's), finds the
/// image the first loaded: nothing of the checkout's place is in the fingerprint.
#[test]
fn another_checkout_elsewhere_finds_the_same_image() {
    let first = Hello::new("elsewhere");
    let second = Fixture::example("hello");
    let repository = first.reference.trim_end_matches(":0.1.0");
    second.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!("repository = \"{repository}\""),
    );
    assert_ne!(first.fixture.root(), second.root());
    assert!(first.load(&["--release"]).solved);
    let binary = |fixture: &Fixture| std::fs::read(fixture.target().join("release/hello")).unwrap();
    let again = ImageOutcome::build(&second, "hello", &["--load", "--release"]);
    // Release builds of hello carry no path of their checkout (no debug info): the same bytes from both.
    assert!(
        binary(&first.fixture) == binary(&second),
        "the two checkouts built different binaries"
    );
    assert!(
        !again.solved,
        "the same image from another checkout was built again"
    );
    assert_eq!(again.output, "docker (fresh)");
}
