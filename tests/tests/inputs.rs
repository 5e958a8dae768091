//! Bad input that only shows on this machine (FIFOs, sockets, a build script's output file, the environment) or
//! that must stop `cargo hive build` itself: exit 1 with a clear message before cargo runs or the daemon is asked,
//! and nothing written. The daemon address is one nobody listens at, so a check that came too late would show as
//! a connection error instead of the expected message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hive_e2e::fixture::{EXIT_GUARD, Fixture};
use hive_e2e::{Run, cargo_hive, run, workspace_root};

/// A daemon address nothing answers at.
const NO_DAEMON: &str = "unix:///nonexistent/hive-inputs-test.sock";

/// `cargo hive build` against no daemon, in a copy of examples/hello with `lines` added to its image table.
fn build_hello_with(lines: &str) -> (Fixture, Run) {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys("Cargo.toml", "hello", lines);
    let result = run(&mut fixture.build_at(NO_DAEMON));
    (fixture, result)
}

/// The checks came before cargo: no binary was built (and so nothing reached a daemon either).
fn assert_cargo_did_not_run(fixture: &Fixture) {
    let binary = fixture.target().join("debug").join("hello");
    assert!(
        !binary.exists(),
        "cargo built {} before the input was checked",
        binary.display()
    );
}

#[test]
fn files_over_the_binary_or_each_other_fail_before_the_build() {
    let (fixture, result) = build_hello_with(
        r#"files = [
  { src = "src", dst = "/" },
  { src = "Cargo.toml", dst = "/usr/local/bin//hello/" },
  { src = "Cargo.toml", dst = "/usr/local/bin/hello/x" },
  { src = "src", dst = "/srv/src" },
  { src = "Cargo.toml", dst = "/srv/./src/" },
]"#,
    );
    fixture.assert_fails(
        &result,
        &[
            "hive::root-destination",
            "`dst = \"/\"` would copy over the root of the image",
            "`/usr/local/bin//hello/` (`/usr/local/bin/hello`) is where the binary goes",
            "`/usr/local/bin/hello/x` is inside `/usr/local/bin/hello`",
            "hive::duplicate-destination",
            "Cargo.toml:16:",
            "error: 4 errors in the image definitions",
        ],
    );
    assert!(!result.stderr.contains("connect"), "{result:#?}");
    assert_cargo_did_not_run(&fixture);
}

/// `mkfifo` at `path`.
fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn fifos_and_sockets_are_not_files_to_copy() {
    let fixture = Fixture::example("hello");
    make_fifo(&fixture.root().join("pipe"));
    let _listener = std::os::unix::net::UnixListener::bind(fixture.root().join("sock")).unwrap();
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        "files = [{ src = \"pipe\", dst = \"/pipe\" }, { src = \"sock\", dst = \"/sock\" }]",
    );
    let needles = [
        "hive::unsupported-file-type",
        "`pipe` is a FIFO (named pipe), not a regular file or directory",
        "`sock` is a socket, not a regular file or directory",
        "Cargo.toml:15:18",
        "Cargo.toml:15:51",
    ];

    let plan = run(cargo_hive()
        .current_dir(fixture.root())
        .env("CARGO_TARGET_DIR", fixture.target())
        .arg("plan"));
    assert_eq!(plan.code, 1, "{plan:#?}");
    for needle in needles {
        assert!(plan.stderr.contains(needle), "missing {needle:?}:\n{}", plan.stderr);
    }

    let build = run(&mut fixture.build_at(NO_DAEMON));
    fixture.assert_fails(&build, &needles);
    assert_cargo_did_not_run(&fixture);
}

#[test]
fn nul_bytes_in_the_image_config_fail_before_the_build() {
    let (fixture, result) = build_hello_with(
        "env = { GREETING = \"hi\\u0000there\" }\ncmd = [\"--loud\\u0000\"]",
    );
    fixture.assert_fails(
        &result,
        &[
            "hive::nul-byte",
            "`env.GREETING` contains a NUL byte",
            "`cmd[0]` contains a NUL byte",
            "Cargo.toml:15:20",
        ],
    );
    assert_cargo_did_not_run(&fixture);
}
