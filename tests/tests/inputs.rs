//! Bad input that only shows on this machine (FIFOs, sockets, a build script's output file, the environment) or
//! that must stop `cargo hive build` itself: exit 1 with a clear message before cargo runs or the daemon is asked,
//! and nothing written. The daemon address is one nobody listens at, so a check that came too late would show as
//! a connection error instead of the expected message.

use std::path::Path;
use std::process::Command;

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
  { src = "Cargo.toml", dst = "/usr/local/bin//hello" },
  { src = "Cargo.toml", dst = "/usr/local/bin/hello/x" },
  { src = "src", dst = "/srv/src" },
  { src = "src", dst = "/srv/./src/" },
]"#,
    );
    fixture.assert_fails(
        &result,
        &[
            "hive::root-destination",
            "`dst = \"/\"` would copy over the root of the image",
            "`/usr/local/bin//hello` (`/usr/local/bin/hello`) is where the binary goes",
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
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
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
        assert!(
            plan.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            plan.stderr
        );
    }

    let build = run(&mut fixture.build_at(NO_DAEMON));
    fixture.assert_fails(&build, &needles);
    assert_cargo_did_not_run(&fixture);
}

#[test]
fn nul_bytes_in_the_image_config_fail_before_the_build() {
    let (fixture, result) =
        build_hello_with("env = { GREETING = \"hi\\u0000there\" }\ncmd = [\"--loud\\u0000\"]");
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

/// A one-package workspace whose build script build-depends on hive-build but points `HIVE_BUILD_IMAGES` at
/// `output` instead of emitting, as a build script with a bug (or a stale path) would. Each test names its package
/// differently: cargo gives same-named root packages the same build-script directory in the shared target dir.
fn workspace_with_output_at(package: &str, output: &Path) -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("ws");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let hive_build = workspace_root().join("hive-build");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{package}\"\nversion = \"1.0.0\"\nedition = \"2024\"\npublish = false\n\n[workspace]\n\n\
             [build-dependencies]\nhive-build = {{ path = {:?} }}\n\n[package.metadata.hive.images.{package}]\n",
            hive_build.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src").join("main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        dir.join("build.rs"),
        format!(
            "fn main() {{\n    println!(\"cargo::rustc-env=HIVE_BUILD_IMAGES={}\");\n}}\n",
            output.display()
        ),
    )
    .unwrap();
    // The repository's lock file pins what hive-build needs, so nothing is resolved online.
    std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    temp
}

/// `cargo hive plan` in `workspace`, killed (and the test failed) if it has not finished within [`EXIT_GUARD`]:
/// reading a FIFO used to block forever.
fn plan_guarded(workspace: &Path) -> Run {
    let child = cargo_hive()
        .current_dir(workspace.join("ws"))
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target").join("hive-fixtures"),
        )
        .args(["--quiet", "plan"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cargo hive starts");
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(EXIT_GUARD) {
        Ok(output) => output.expect("cargo hive runs").into(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("cargo hive plan still running after {EXIT_GUARD:?}");
        }
    }
}

#[test]
fn a_build_script_output_that_is_a_fifo_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("images.fifo");
    make_fifo(&fifo);
    let workspace = workspace_with_output_at("fifo-output", &fifo);
    let result = plan_guarded(workspace.path());
    assert_eq!(result.code, 1, "{result:#?}");
    assert!(!result.stderr.contains("panicked"), "{result:#?}");
    let expected = format!(
        "error: failed to read the images of `fifo-output`'s build script from {} (HIVE_BUILD_IMAGES): it is a FIFO (named \
         pipe), not a regular file",
        fifo.display()
    );
    assert!(result.stderr.contains(&expected), "{result:#?}");
}

#[test]
fn a_build_script_output_over_the_size_cap_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let big = scratch.path().join("images.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(hive_build::OUTPUT_MAX_BYTES + 1).unwrap();
    let workspace = workspace_with_output_at("big-output", &big);
    let result = plan_guarded(workspace.path());
    assert_eq!(result.code, 1, "{result:#?}");
    let expected = format!(
        "error: failed to read the images of `big-output`'s build script from {} (HIVE_BUILD_IMAGES): it is larger than 8 \
         MiB, the most cargo hive reads",
        big.display()
    );
    assert!(result.stderr.contains(&expected), "{result:#?}");
}

#[test]
fn an_unusable_source_date_epoch_fails_before_the_build() {
    let fixture = Fixture::example("hello");
    for value in ["253402300800", "9223372037", "-1", "", "1e9", "soon"] {
        let result = run(fixture.build_at(NO_DAEMON).env("SOURCE_DATE_EPOCH", value));
        fixture.assert_fails(
            &result,
            &[
                &format!("error: SOURCE_DATE_EPOCH is `{value}`, "),
                "it must be whole seconds since 1970-01-01 UTC, from 0 to 9223372036 (2262-04-11T23:47:16Z)",
            ],
        );
        assert_cargo_did_not_run(&fixture);
    }
    // The last second of the range is accepted, and reaches the file times exactly, in nanoseconds.
    let dry_run = run(fixture
        .build_at(NO_DAEMON)
        .env("SOURCE_DATE_EPOCH", "9223372036")
        .arg("--dry-run"));
    assert_eq!(dry_run.code, 0, "{dry_run:#?}");
    assert!(
        dry_run.stdout.contains("timestamp: 9223372036000000000,"),
        "{}",
        dry_run.stdout
    );
}
