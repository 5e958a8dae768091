//! Dockerfile images in `cargo hive plan`: an image with `dockerfile` (its `FROM hive-<name>` an edge of the image
//! graph, itself the `hive:` base of another image) in the JSON and the text, and the spanned errors for the keys a
//! Dockerfile replaces, a `FROM hive-<name>` naming no image, a missing stage and a cycle through a Dockerfile.

use hive_build::plan::{Base, Edge, Plan};
use hive_e2e::fixture::*;
use hive_e2e::run;

/// examples/hello plus `api`, built from `docker/api.Dockerfile` on `FROM hive-hello`, and `tool` on `hive:api`.
fn hello_with_dockerfile(dockerfile: &str, api_keys: &str) -> Fixture {
    let fixture = Fixture::example("hello");
    let root = fixture.root();
    std::fs::create_dir_all(root.join("docker")).unwrap();
    std::fs::write(root.join("docker/api.Dockerfile"), dockerfile).unwrap();
    let manifest = root.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        r#"
[package.metadata.hive.images.api]
dockerfile = "docker/api.Dockerfile"
{api_keys}

[package.metadata.hive.images.tool]
base = "hive:api"
tags = ["{{version}}"]
"#
    ));
    std::fs::write(&manifest, text).unwrap();
    fixture
}

const DOCKERFILE: &str = "# syntax=docker/dockerfile:1\n\
    FROM hive-hello AS runtime\n\
    COPY .hive/bin/linux/amd64/hello /usr/local/bin/api\n\
    ENTRYPOINT [\"/usr/local/bin/api\"]\n";

fn snapshot(name: &str, actual: &str) {
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!(name, actual);
    });
}

#[test]
fn plan_shows_a_dockerfile_image_and_its_graph() {
    let fixture = hello_with_dockerfile(
        DOCKERFILE,
        "context = \".\"\ntarget = \"runtime\"\nbuild-args = { PROFILE = \"release\" }\nlabels = { team = \"core\" }",
    );
    let json = succeed(
        fixture
            .redacted_plan()
            .args(["--quiet", "--format", "json"]),
    );
    let plan: Plan = serde_json::from_str(&json.stdout).unwrap();
    snapshot("plan_json", &json.stdout);
    let names: Vec<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["api", "hello", "tool"]);
    let api = &plan.images[0];
    assert_eq!(api.base, Base::Dockerfile);
    let dockerfile = api.dockerfile.as_ref().unwrap();
    assert_eq!(dockerfile.dockerfile, "[workspace]/docker/api.Dockerfile");
    assert_eq!(dockerfile.context, "[workspace]");
    assert_eq!(dockerfile.target.as_deref(), Some("runtime"));
    assert_eq!(dockerfile.build_args["PROFILE"], "release");
    assert_eq!(dockerfile.hive_images, ["hello"]);
    assert!(api.config.entrypoint.is_empty());
    assert_eq!(api.config.labels["team"], "core");
    // Images without a Dockerfile carry no `dockerfile` field at all.
    assert!(!json.stdout.contains("\"dockerfile\": null"));
    assert!(plan.images[1].dockerfile.is_none());
    let edge = |from: &str, to: &str| Edge {
        from: from.into(),
        to: to.into(),
    };
    assert_eq!(plan.edges, [edge("api", "tool"), edge("hello", "api")]);

    let human = succeed(fixture.redacted_plan().arg("--quiet"));
    snapshot("plan_human", &human.stdout);

    // `--image tool` brings `api` and, through its `FROM hive-hello`, `hello`.
    let selected = succeed(
        fixture
            .plan()
            .args(["--quiet", "--format", "json", "--image", "tool"]),
    );
    let plan: Plan = serde_json::from_str(&selected.stdout).unwrap();
    let picked: Vec<(&str, bool)> = (plan.images.iter())
        .map(|image| (image.name.as_str(), image.selected))
        .collect();
    assert_eq!(picked, [("api", false), ("hello", false), ("tool", true)]);
}

#[test]
fn plan_refuses_what_a_dockerfile_replaces_with_spans() {
    let fixture = hello_with_dockerfile(
        "FROM hive-helo AS build\n",
        "base = \"scratch\"\nfiles = [{ src = \"src\", dst = \"/src\" }]\nenv = { A = \"b\" }\ntarget = \"runtime\"",
    );
    let stderr = plan_errors(&fixture);
    snapshot("plan_errors", &stderr);
    for needle in [
        "hive::dockerfile-and-base",
        "the Dockerfile's FROM is the base",
        "hive::dockerfile-and-files",
        "COPY it in the Dockerfile",
        "hive::dockerfile-and-config",
        "set it in the Dockerfile",
        "hive::unknown-stage",
        "FROM hive-helo` names no other image",
        "did you mean `FROM hive-hello`?",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in:\n{stderr}");
    }
}

#[test]
fn plan_shows_a_cycle_through_a_dockerfile_with_every_edge() {
    let fixture = hello_with_dockerfile("FROM hive-tool\n", "");
    let stderr = plan_errors(&fixture);
    snapshot("plan_cycle", &stderr);
    let dockerfile_line = fixture.line_of("Cargo.toml", "dockerfile = ");
    let base_line = fixture.line_of("Cargo.toml", "base = \"hive:api\"");
    let needle = format!(
        "api → tool → api; `api` is built on `tool` (FROM hive-tool, Cargo.toml:{dockerfile_line}); \
         `tool` is built on `api` (base = \"hive:api\", Cargo.toml:{base_line})"
    );
    assert!(stderr.contains("hive::base-cycle"), "{stderr}");
    assert!(stderr.contains(&needle), "{needle:?} in:\n{stderr}");
}

/// `cargo hive plan`'s diagnostics, which must make it exit 1; colour off, the workspace path redacted.
fn plan_errors(fixture: &Fixture) -> String {
    let result = run(fixture.plan().env("NO_COLOR", "1").arg("--quiet"));
    assert_eq!(result.code, 1, "{}", result.stderr);
    (result.stderr).replace(fixture.root().to_str().unwrap(), "[workspace]")
}
