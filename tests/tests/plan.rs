//! `cargo hive plan` end to end on the examples: the JSON, decoded with hive-build's own types, must equal its insta
//! snapshot in `snapshots/`. `cargo insta review` (or `INSTA_UPDATE=always`) updates them after an intended change.

use std::path::Path;
use std::process::Command;

use hive_build::plan::{Base, FORMAT_VERSION, Origin, Plan};
use hive_e2e::{Run, cargo_hive, run, workspace_root};

/// A fixed commit, so `{git.short_sha}` renders the same on every machine.
const GIT_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn plan_command(example: &str) -> Command {
    let root = workspace_root();
    let mut command = cargo_hive();
    command
        .current_dir(&root)
        .env("HIVE_REDACT", "1")
        .env("HIVE_GIT_SHA", GIT_SHA)
        .env("HIVE_GIT_BRANCH", "main")
        // Build scripts compile outside the example, so the repository stays clean.
        .env(
            "CARGO_TARGET_DIR",
            root.join("target").join("hive-examples"),
        )
        .arg("plan")
        .arg("--manifest-path")
        .arg(Path::new("examples").join(example).join("Cargo.toml"));
    command
}

/// Checks `actual` against the snapshot `snapshots/plan__<name>.snap`.
fn check_snapshot(name: &str, actual: &str) {
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!(name, actual);
    });
}

fn plan_json(example: &str) -> Plan {
    let Run {
        code,
        stdout,
        stderr,
    } = run(plan_command(example).args(["--quiet", "--format", "json"]));
    assert_eq!(code, 0, "plan failed for {example}:\n{stderr}");
    let plan: Plan =
        serde_json::from_str(&stdout).expect("plan --format json decodes with hive-build's types");
    check_snapshot(example, &stdout);
    plan
}

#[test]
fn hello() {
    let plan = plan_json("hello");
    assert_eq!(plan.format_version, FORMAT_VERSION);
    assert_eq!(plan.workspace_root, "[workspace]");
    let [image] = &plan.images[..] else {
        panic!("one image expected: {plan:#?}")
    };
    assert_eq!(image.references, ["hello:0.1.0", "hello:latest"]);
    assert_eq!(image.binary.target, "hello");
    assert_eq!(image.origins["tags"], Origin::Default);
}

#[test]
fn workspace() {
    let plan = plan_json("workspace");
    let names: Vec<&str> = plan
        .images
        .iter()
        .map(|image| image.name.as_str())
        .collect();
    assert_eq!(names, ["acmectl", "api", "worker", "worker-admin"]);
    let api = &plan.images[1];
    assert_eq!(
        api.references,
        [
            "localhost:5000/acme/api:1.4.2",
            "localhost:5000/acme/api:0123456"
        ]
    );
    assert_eq!(api.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(api.files[0].source, "[workspace]/crates/api/static");
    // Maps merge across layers: the package's RUST_LOG and the image's own variable.
    assert_eq!(api.config.env.len(), 2);
    let Origin::Manifest { file, table, .. } = &api.origins["env.RUST_LOG"] else {
        panic!("manifest origin")
    };
    assert_eq!(
        (file.as_str(), table.as_str()),
        ("crates/api/Cargo.toml", "package.metadata.hive")
    );
    assert_eq!(
        plan.images[3].base,
        Base::Hive {
            image: "worker".into()
        }
    );
    assert_eq!(
        plan.images[0].config.labels["org.opencontainers.image.vendor"],
        "Acme Tools"
    );

    let Run {
        code,
        stdout,
        stderr,
    } = run(&mut plan_command("workspace"));
    assert_eq!(code, 0, "{stderr}");
    check_snapshot("workspace-human", &stdout);
}

#[test]
fn selection() {
    let Run {
        code,
        stdout,
        stderr,
    } = run(plan_command("workspace").args([
        "--quiet",
        "--format",
        "json",
        "--image",
        "worker-admin",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let plan: Plan = serde_json::from_str(&stdout).unwrap();
    // The `hive:worker` base comes along, marked as not selected itself.
    let picked: Vec<(&str, bool)> = plan
        .images
        .iter()
        .map(|image| (image.name.as_str(), image.selected))
        .collect();
    assert_eq!(picked, [("worker", false), ("worker-admin", true)]);

    let Run { code, stdout, .. } =
        run(plan_command("workspace").args(["--quiet", "--format", "json", "-p", "api"]));
    assert_eq!(code, 0);
    let plan: Plan = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan.images.len(), 1);

    let Run { code, stderr, .. } = run(plan_command("workspace").args(["--image", "wroker"]));
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: no image named `wroker` in the workspace; did you mean `worker`?\n"
    );
    let Run { code, stderr, .. } = run(plan_command("workspace").args(["-p", "nope"]));
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: package `nope` is not a member of the workspace\n"
    );
}

#[test]
fn build_rs() {
    let plan = plan_json("build-rs");
    let server = &plan.images[0];
    let build_script = Origin::BuildScript {
        package: "server".into(),
    };
    // build.rs wins over the manifest for the base; the manifest's env entry survives next to build.rs's.
    assert_eq!(server.origins["base"], build_script);
    assert_eq!(server.origins["env.SERVER_BUILD_PROFILE"], build_script);
    assert!(matches!(
        server.origins["env.SERVER_MODE"],
        Origin::Manifest { .. }
    ));
    assert_eq!(plan.images[1].declared_in, build_script);
    assert_eq!(plan.images[1].references, ["server-debug:0.3.0-debug"]);
}

#[test]
fn json_to_a_closed_pipe_is_not_an_error() {
    let mut child = plan_command("workspace")
        .args(["--quiet", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
