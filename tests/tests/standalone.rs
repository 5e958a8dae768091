//! A BuildKit reached over `tcp://` is treated as a standalone buildkitd: `--load` goes through an `oci` archive
//! (plus a `manifest.json` for Docker without the containerd store) that cargo hive loads into Docker through its
//! API. The daemon is the real one, behind a TLS front.

use hive_e2e::fakes::{Pki, tls_front_for_docker};
use hive_e2e::{cargo_hive, docker, docker_socket, run};

#[test]
fn load_from_a_standalone_buildkit_goes_through_the_docker_api() {
    hive_e2e::buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let port = tls_front_for_docker(&pki, &docker_socket(), false);
    let workspace = dir.path().join("hello");
    hive_e2e::copy_workspace(
        &hive_e2e::workspace_root().join("examples/hello"),
        &workspace,
    );
    let repository = format!("localhost:5000/e2e/standalone-load-{}", std::process::id());
    let manifest = workspace.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "[package.metadata.hive.images.hello]",
        &format!("[package.metadata.hive.images.hello]\nrepository = \"{repository}\""),
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    let target = dir.path().join("target");
    let result = run(cargo_hive()
        .args([
            "build",
            "--load",
            "--progress",
            "plain",
            "--tlsservername",
            "buildkit.test",
        ])
        .arg("--addr")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--tlscacert")
        .arg(&pki.ca)
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", &target)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", docker_socket().display()),
        ));
    assert_eq!(result.code, 0, "{result:?}");
    assert!(
        result.stderr.contains("exporting to oci image format"),
        "{}",
        result.stderr
    );
    // The intermediate archive is gone.
    let leftovers: Vec<_> = std::fs::read_dir(target.join("hive/.load"))
        .map(|dir| dir.collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let reference = format!("{repository}:0.1.0");
    let output = run(docker().args(["run", "--rm", &reference]));
    let _ = run(docker().args(["rmi", "-f", &reference, &format!("{repository}:latest")]));
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout, "Hello from a cargo-hive image!\n");
}
