//! Outputs and the stores that receive them: `--load` from a standalone BuildKit into a Docker without the
//! containerd image store (Docker 20.10) goes through an `oci` archive to which cargo hive adds a `manifest.json`
//! (BuildKit's `docker` exporter cannot write multi-platform images; Docker 20.10 cannot read an OCI layout).
//! BuildKit is Docker 26's, reached over `tcp://` behind a TLS front, so it counts as a standalone buildkitd.

use hive_e2e::fakes::{Pki, tls_front_for_docker};
use hive_e2e::{cargo_hive, copy_workspace, docker, docker_socket, run, workspace_root};

/// Docker 20.10's socket, as `scripts/buildkit-up --docker20` starts it.
fn docker20_socket() -> std::path::PathBuf {
    let addr = std::env::var("HIVE_TEST_DOCKER20_HOST")
        .unwrap_or_else(|_| "docker+unix:///var/run/hive-docker20.sock".to_owned());
    let socket = std::path::PathBuf::from(addr.trim_start_matches("docker+unix://"));
    assert!(
        socket.exists(),
        "no Docker 20.10 at {}: run `scripts/buildkit-up --docker20` first",
        socket.display()
    );
    socket
}

#[test]
fn load_from_a_standalone_buildkit_into_docker_without_the_containerd_store() {
    let docker20 = docker20_socket();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let port = tls_front_for_docker(&pki, &docker_socket(), false);
    let workspace = dir.path().join("hello");
    copy_workspace(&workspace_root().join("examples/hello"), &workspace);
    let repository = format!("localhost:5000/e2e/load20-{}", std::process::id());
    let manifest = workspace.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "[package.metadata.hive.images.hello]",
        &format!("[package.metadata.hive.images.hello]\nrepository = \"{repository}\""),
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    let docker20_host = format!("unix://{}", docker20.display());
    let result = run(cargo_hive()
        .args(["build", "--load", "--progress", "plain"])
        .args(["--tlsservername", "buildkit.test", "--tlscacert"])
        .arg(&pki.ca)
        .arg("--addr")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .env("DOCKER_HOST", &docker20_host));
    assert_eq!(result.code, 0, "{result:?}");
    let reference = format!("{repository}:0.1.0");
    let docker20 = || {
        let mut command = docker();
        command.env("DOCKER_HOST", &docker20_host);
        command
    };
    let output = run(docker20().args(["run", "--rm", &reference]));
    let tags = run(docker20().args(["image", "inspect", "--format", "{{.RepoTags}}", &reference]));
    let _ = run(docker20().args(["rmi", "-f", &reference, &format!("{repository}:latest")]));
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout, "Hello from a cargo-hive image!\n");
    // Both names of the image, from the archive's index.json, are in manifest.json's RepoTags.
    assert!(
        tags.stdout.contains(&reference) && tags.stdout.contains(&format!("{repository}:latest")),
        "{tags:?}"
    );
}
