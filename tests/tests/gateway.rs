//! The gateway build as the binary drives it, against the real daemon: what used to be `cargo-hive`'s own
//! daemon-bound unit tests of `buildkit::gateway` (a push through the `image` exporter is covered by
//! `build.rs`'s `pushed_image_pulls_back_and_runs`).

use std::io::Write;
use std::process::Stdio;

use hive_e2e::fixture::{Fixture, unique_repository};
use hive_e2e::{docker, host_arch, run};

/// An error of our frontend (here the loader check inside the build, for an image on a `hive:` base) is returned
/// to the daemon, so the solve ends with it instead of waiting for a result that never comes.
#[test]
fn a_frontend_error_ends_the_solve() {
    let fixture = Fixture::example("workspace");
    // Without crt-static the glibc binaries need glibc's loader, which `worker` (on scratch) does not have; the
    // linkers stay.
    let config = fixture.root().join(".cargo/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("+crt-static"), "{text}");
    let text: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains("+crt-static"))
        .collect();
    std::fs::write(&config, text.join("\n")).unwrap();
    let result = run(fixture.build().args(["--image", "worker-admin"]));
    fixture.assert_fails(
        &result,
        &[
            "image `worker-admin`",
            "dynamically linked",
            "the base `hive:worker` has no /lib",
        ],
    );
}

/// A base without the image's platform is refused, naming the platforms it has. The base here is a
/// single-platform image of another architecture: the daemon answers such an image whatever platform is asked, so
/// it is its config that tells.
#[test]
fn a_base_without_the_platform_names_the_ones_it_has() {
    let other = if host_arch() == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let base = format!(
        "localhost:5000/{}:latest",
        unique_repository(&format!("e2e/{other}-only"))
    );
    push_one_file_image(&base, &format!("linux/{other}"));
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        &format!("base = \"{base}\""),
    );
    let result = run(&mut fixture.build());
    fixture.assert_fails(
        &result,
        &[&format!(
            "{base} has no linux/{} image (it has: linux/{other})",
            host_arch()
        )],
    );
}

/// Pushes an image of `platform` holding one small file to the local registry as `reference`, leaving nothing in
/// Docker's store (so the daemon resolves it from the registry).
fn push_one_file_image(reference: &str, platform: &str) {
    let mut layer = tar::Builder::new(Vec::new());
    let data = b"a base of another platform\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    layer
        .append_data(&mut header, "hello.txt", &data[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let mut import = docker()
        .args(["import", "--platform", platform, "-", reference])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("docker runs");
    import.stdin.take().unwrap().write_all(&layer).unwrap();
    assert!(
        import.wait().unwrap().success(),
        "docker import {reference}"
    );
    let pushed = run(docker().args(["push", "--quiet", reference]));
    let _ = run(docker().args(["rmi", "--force", reference]));
    assert_eq!(pushed.code, 0, "{pushed:#?}");
}
