//! Variants end to end: `[package.metadata.hive.images.<name>.variants.<variant>]` is an image of its own,
//! `<name>@<variant>`, in `cargo hive plan` (JSON and text, with the image graph) and in a real build, where its
//! archive is `target/hive/<name>@<variant>.oci.tar` and its tags carry the suffix.

use hive_build::plan::{Base, Edge, Plan};
use hive_e2e::fixture::*;
use hive_e2e::run;

/// examples/hello with a `debug` variant (a static binary on busybox, one more env variable) and a `tool` image built on it.
fn hello_with_variant() -> Fixture {
    let fixture = Fixture::example("hello");
    let manifest = fixture.root().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        r#"
env = { GREETING = "hello" }

[package.metadata.hive.images.hello.variants.debug]
base = "localhost:5000/hive/busybox"
env = { RUST_LOG = "debug" }
# busybox has no glibc: the variant's binary is static.
targets = { "linux/amd64" = "x86_64-unknown-linux-musl" }

[package.metadata.hive.images.tool]
base = "hive:hello@debug"
tags = ["{version}"]
targets = { "linux/amd64" = "x86_64-unknown-linux-musl" }
"#,
    );
    std::fs::write(&manifest, text).unwrap();
    fixture
}

fn snapshot(name: &str, actual: &str) {
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!(name, actual);
    });
}

#[test]
fn plan_lists_a_variant_as_an_image_and_shows_the_graph() {
    let fixture = hello_with_variant();
    let json = succeed(
        fixture
            .redacted_plan()
            .args(["--quiet", "--format", "json"]),
    );
    let plan: Plan = serde_json::from_str(&json.stdout).unwrap();
    snapshot("plan_json", &json.stdout);
    let names: Vec<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["hello", "hello@debug", "tool"]);
    let debug = &plan.images[1];
    assert_eq!(
        debug.references,
        ["hello:0.1.0-debug", "hello:latest-debug"]
    );
    assert_eq!(debug.config.env["RUST_LOG"], "debug");
    assert_eq!(debug.config.env["GREETING"], "hello");
    assert_eq!(
        plan.images[2].base,
        Base::Hive {
            image: "hello@debug".into()
        }
    );
    assert_eq!(
        plan.edges,
        [Edge {
            from: "hello@debug".into(),
            to: "tool".into()
        }]
    );

    let human = succeed(fixture.redacted_plan().arg("--quiet"));
    snapshot("plan_human", &human.stdout);

    // `--image hello` is the image alone; `--image hello@debug` the variant alone.
    for (wanted, expected) in [("hello", "hello"), ("hello@debug", "hello@debug")] {
        let selected = succeed(
            fixture
                .plan()
                .args(["--quiet", "--format", "json", "--image", wanted]),
        );
        let plan: Plan = serde_json::from_str(&selected.stdout).unwrap();
        let names: Vec<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, [expected]);
    }
}

#[test]
fn a_debug_variant_builds_to_its_own_archive_with_its_env_and_suffixed_tags() {
    let fixture = hello_with_variant();
    let result = run(fixture.build().args(["--image", "hello@debug"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(fixture.outputs(), ["hello@debug.oci.tar"]);
    let archive = OciArchive::open(&fixture.archive("hello@debug"));
    let (_, names, _) = archive.manifest();
    assert_eq!(
        names,
        [
            "docker.io/library/hello:0.1.0-debug",
            "docker.io/library/hello:latest-debug"
        ]
    );
    let config = archive.config();
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect();
    assert!(env.contains(&"RUST_LOG=debug"), "{env:?}");
    assert!(env.contains(&"GREETING=hello"), "{env:?}");
}

#[test]
fn a_variant_is_the_hive_base_of_another_image() {
    let fixture = hello_with_variant();
    let result = run(fixture.build().args(["--image", "tool"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    // The variant is built first as the base, and only the selected image is written.
    assert_eq!(fixture.outputs(), ["tool.oci.tar"]);
    let config = OciArchive::open(&fixture.archive("tool")).config();
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("RUST_LOG=debug"), "{env}");
}
