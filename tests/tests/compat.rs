//! Doctor and build against Docker 20.10's embedded BuildKit (v0.8), started by `scripts/buildkit-up --docker20`:
//! no `Info` rpc, no containerd image store — reported, not failed; `--load` works, OCI archives are refused clearly.

use hive_e2e::fixture::docker20_addr;
use hive_e2e::{cargo_hive, run};

#[test]
fn doctor_on_docker_20_10() {
    let addr = docker20_addr();
    let result = run(cargo_hive().args(["doctor", "--format", "json", "--addr", &addr]));
    assert_eq!(result.code, 0, "{result:?}");
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(report["ready"], true, "{report:#}");
    let endpoint = &report["endpoint"];
    assert!(endpoint["buildkit_version"].is_null(), "{endpoint:#}");
    assert!(
        endpoint["version_note"]
            .as_str()
            .unwrap()
            .contains("no Info rpc"),
        "{endpoint:#}"
    );
    assert_eq!(endpoint["daemon"]["containerd_image_store"], false);
    assert!(
        endpoint["daemon"]["version"]
            .as_str()
            .unwrap()
            .starts_with("20.10"),
        "{endpoint:#}"
    );
    assert_eq!(
        endpoint["exporters"],
        serde_json::json!(["moby", "local", "tar"])
    );
    assert_eq!(endpoint["live_check"]["ok"], true);

    let human = run(cargo_hive().args(["doctor", "--addr", &addr]));
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("containerd-snapshotter"),
        "{}",
        human.stdout
    );
}

/// A copy of examples/hello in a temp dir, with its own cargo target dir.
fn hello_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("hello");
    hive_e2e::copy_workspace(
        &hive_e2e::workspace_root().join("examples/hello"),
        &workspace,
    );
    (dir, workspace)
}

#[test]
fn build_and_load_on_docker_20_10() {
    let addr = docker20_addr();
    let socket = addr.strip_prefix("docker+unix://").unwrap().to_owned();
    let (dir, workspace) = hello_copy();
    let result = run(cargo_hive()
        .args(["build", "--load", "--progress", "plain", "--addr", &addr])
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", dir.path().join("target")));
    assert_eq!(result.code, 0, "{result:?}");
    let output = run(hive_e2e::docker()
        .args(["run", "--rm", "hello:0.1.0"])
        .env("DOCKER_HOST", format!("unix://{socket}")));
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout, "Hello from a cargo-hive image!\n");

    // Without the containerd image store there is no OCI exporter: said before anything is built.
    let result = run(cargo_hive()
        .args(["build", "--addr", &addr])
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", dir.path().join("target")));
    assert_eq!(result.code, 1, "{result:?}");
    assert!(
        result.stderr.contains("containerd image store") && result.stderr.contains("--load"),
        "{result:?}"
    );
    assert!(!dir.path().join("target/hive/hello.oci.tar").exists());
}

/// Docker 20.10 cannot push from BuildKit: cargo hive exports with `moby` and pushes through the Docker API.
#[test]
fn push_on_docker_20_10_goes_through_the_docker_api() {
    let addr = docker20_addr();
    let (dir, workspace) = hello_copy();
    let repository = format!("localhost:5000/e2e/compat-push-{}", std::process::id());
    let manifest = workspace.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen(
        "[package.metadata.hive.images.hello]",
        &format!("[package.metadata.hive.images.hello]\nrepository = \"{repository}\""),
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    let result = run(cargo_hive()
        .args(["build", "--push", "--progress", "plain", "--addr", &addr])
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", dir.path().join("target")));
    assert_eq!(result.code, 0, "{result:?}");
    let path = repository.strip_prefix("localhost:5000/").unwrap();
    let status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .arg(format!("http://127.0.0.1:5000/v2/{path}/manifests/0.1.0"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "200",
        "the pushed manifest is not in the registry"
    );
}

/// An exporter the daemon lacks is found once, right after connecting: one error for the build, before any image
/// starts, not one per image.
#[test]
fn a_missing_exporter_is_one_error_before_any_image() {
    let fixture = hive_e2e::fixture::Fixture::example("workspace");
    let result = run(fixture
        .build_at(&docker20_addr())
        .args(["--progress", "json"]));
    fixture.assert_fails(&result, &["cannot write OCI archives"]);
    assert_eq!(
        result.stderr.matches("cannot write OCI archives").count(),
        1,
        "{result:#?}"
    );
    assert!(!result.stderr.contains("images failed"), "{result:#?}");
    let events = hive_e2e::fixture::events(&result);
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, hive_build::progress::Event::ImageStarted { .. })),
        "{events:#?}"
    );
}
