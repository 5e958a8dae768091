//! Every class of failure of `cargo hive build` says which it is: with `--progress json`, one `error` event with a
//! stable `kind`, then `build-finished`, so CI can tell a bad definition from a daemon that is down.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hive_build::progress::{ErrorKind, Event};
use hive_e2e::fixture::{EXIT_GUARD, Fixture, Spawned, events};
use hive_e2e::{Run, run};

/// The `error` event of a failed run: exactly one, just before a failed `build-finished`, which comes last.
fn error_event(result: &Run) -> (ErrorKind, String) {
    let events = events(result);
    let errors: Vec<(ErrorKind, String)> = events
        .iter()
        .filter_map(|event| match event {
            Event::Error { kind, message } => Some((*kind, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{result:#?}");
    let n = events.len();
    assert!(n >= 2, "{result:#?}");
    assert!(
        matches!(events[n - 2], Event::Error { .. }),
        "the error comes just before build-finished: {result:#?}"
    );
    assert!(
        matches!(events[n - 1], Event::BuildFinished { success: false, .. }),
        "{result:#?}"
    );
    errors.into_iter().next().unwrap()
}

/// Runs a build that must fail with exit 1, no panic, and the same message on stderr as in its error event.
fn failed_kind(command: &mut std::process::Command) -> (ErrorKind, String, Run) {
    let result = run(command);
    assert_eq!(result.code, 1, "{result:#?}");
    assert!(!result.stderr.contains("panicked"), "{result:#?}");
    let (kind, message) = error_event(&result);
    let first_line = message.lines().next().unwrap_or_default();
    assert!(
        result.stderr.contains(first_line),
        "stderr lacks {first_line:?}: {result:#?}"
    );
    (kind, message, result)
}

#[test]
fn invalid_definitions() {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys("Cargo.toml", "hello", "tags = 3");
    let result = run(fixture.build().args(["--progress", "json"]));
    assert_eq!(result.code, 1, "{result:#?}");
    // Before cargo runs: only the error and the end.
    let events = events(&result);
    assert_eq!(events.len(), 2, "{result:#?}");
    assert_eq!(error_event(&result).0, ErrorKind::InvalidDefinitions);
    assert!(result.stderr.contains("must be an array"), "{result:#?}");
    fixture.assert_fails(&result, &["1 error in the image definitions"]);
}

#[test]
fn invalid_definitions_in_plain_mode_print_no_progress() {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys("Cargo.toml", "hello", "tags = 3");
    let result = run(fixture.build().args(["--progress", "plain"]));
    fixture.assert_fails(&result, &["1 error in the image definitions"]);
    assert!(!result.stderr.contains("build ERROR"), "{result:#?}");
    assert!(result.stdout.is_empty(), "{result:#?}");
}

#[test]
fn cargo_failed() {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "src/main.rs",
        "fn main() {",
        "compile_error!(\"on purpose\");\nfn main() {",
    );
    let (kind, message, result) = failed_kind(fixture.build().args(["--progress", "json"]));
    assert_eq!(kind, ErrorKind::CargoFailed, "{message}");
    assert!(result.stderr.contains("on purpose"), "{result:#?}");
    fixture.assert_fails(&result, &["cargo build failed"]);
}

#[test]
fn daemon_unreachable() {
    let fixture = Fixture::example("hello");
    let missing = fixture.scratch("no-buildkitd.sock");
    let addr = format!("unix://{}", missing.display());
    let (kind, message, result) = failed_kind(fixture.build_at(&addr).args(["--progress", "json"]));
    assert_eq!(kind, ErrorKind::DaemonUnreachable, "{message}");
    fixture.assert_fails(&result, &[]);
}

#[test]
fn image_failed() {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        "base = \"localhost:5000/hive/no-such-base-image\"",
    );
    let (kind, message, result) = failed_kind(fixture.build().args(["--progress", "json"]));
    assert_eq!(kind, ErrorKind::ImageFailed, "{message}");
    assert!(message.contains("image `hello`"), "{message}");
    fixture.assert_fails(&result, &[]);
}

#[test]
fn output_failed() {
    let fixture = Fixture::example("hello");
    // A metadata file under a regular file: the images are built, the file cannot be written.
    let file = fixture.scratch("a-file");
    std::fs::write(&file, "").unwrap();
    let (kind, message, _) = failed_kind(
        fixture
            .build()
            .args(["--progress", "json", "--metadata-file"])
            .arg(file.join("metadata.json")),
    );
    assert_eq!(kind, ErrorKind::OutputFailed, "{message}");
    // The I/O error is the metadata error's cause: JSON readers get it too.
    assert!(
        message.contains("\ncaused by: Not a directory"),
        "{message}"
    );
}

/// A `CARGO` that reads the workspace as cargo does but, asked to build, marks that it started and waits: the build
/// is certainly inside cargo when the signal comes.
fn blocking_cargo(dir: &Path, marker: &Path) -> std::path::PathBuf {
    let real = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let script = dir.join("blocking-cargo");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = build ]; then touch '{}'; exec sleep 600 </dev/null >/dev/null 2>&1; fi\n\
             exec '{}' \"$@\"\n",
            marker.display(),
            Path::new(&real).display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn interrupted_during_cargo() {
    let fixture = Fixture::example("hello");
    let marker = fixture.scratch("cargo-build-started");
    let cargo = blocking_cargo(&fixture.scratch(""), &marker);
    let mut build = Spawned::start(
        fixture
            .build()
            .args(["--progress", "json"])
            .env("CARGO", &cargo),
    );
    let deadline = Instant::now() + EXIT_GUARD;
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "cargo build did not start within {EXIT_GUARD:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    build.interrupt();
    let (status, stdout, stderr) = build.finish();
    assert_eq!(status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let result = Run {
        code: 130,
        stdout,
        stderr,
    };
    assert_eq!(error_event(&result).0, ErrorKind::Interrupted);
    assert_eq!(fixture.outputs(), Vec::<String>::new());
}
