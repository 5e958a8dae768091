//! The gateway build as the binary drives it, against the real daemon: what used to be `cargo-hive`'s own
//! daemon-bound unit tests of `buildkit::gateway` (a push through the `image` exporter is covered by
//! `build.rs`'s `pushed_image_pulls_back_and_runs`).

use hive_e2e::fixture::Fixture;
use hive_e2e::run;

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
