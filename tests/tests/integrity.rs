//! The image holds exactly what cargo built, end to end against the real daemon: a file rewritten while it is sent
//! fails the image; an artifact that is not an ELF executable, or one for another architecture than the image's
//! platform, is refused right after cargo; an up-to-date record only counts for the outputs this build expects.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hive_e2e::Run;
use hive_e2e::fixture::*;

/// Rewrites `path` in place (same inode, same size, new bytes) over and over until `stop` is set.
fn rewrite_until(path: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let mut writes = 0u64;
        while !stop.load(Ordering::Relaxed) {
            writes += 1;
            let offset = writes.wrapping_mul(7919 * 4096) % (len - 8);
            file.write_all_at(&writes.to_le_bytes(), offset).unwrap();
        }
        writes
    })
}

#[test]
fn a_file_rewritten_while_it_is_sent_fails_the_image() {
    let fixture = hello_with_big_file(400);
    let big = fixture.root().join("big.bin");
    // Rewritten from before the build until after it: whenever the file is read for the daemon (packed into the
    // layer, or sent as a local source), it changes under the reader.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = rewrite_until(big.clone(), stop.clone());
    let build = Spawned::start(fixture.build().args(["--progress", "json"]));
    let (status, stdout, stderr) = build.finish();
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    let result = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    fixture.assert_fails(
        &result,
        &[
            &big.display().to_string(),
            "changed while it was being sent",
            "rebuild",
        ],
    );
}

/// A `CARGO` for cargo-hive to run: the real cargo, then, after `cargo build`, `replace` (shell) runs with
/// `$artifact` set to the path cargo reported for hello's binary.
fn cargo_then(fixture: &Fixture, replace: &str) -> std::path::PathBuf {
    let real = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let script = fixture.scratch("cargo-wrapper");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n'{real}' \"$@\" || exit $?\n[ \"$1\" = build ] || exit 0\n\
             artifact=\"$CARGO_TARGET_DIR/debug/hello\"\nrm -f \"$artifact\"\n{replace}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

#[test]
fn an_artifact_that_is_not_an_executable_is_refused_before_connecting() {
    let cases = [
        (": > \"$artifact\"", "is an empty file"),
        ("mkdir \"$artifact\"", "is a directory"),
        (
            "printf '#!/bin/sh\\necho hi\\n' > \"$artifact\"; chmod +x \"$artifact\"",
            "is a script (`#!/bin/sh`)",
        ),
        (
            "ln -s /nonexistent/hello \"$artifact\"",
            "is a dangling symlink (to /nonexistent/hello",
        ),
    ];
    for (replace, what) in cases {
        let fixture = Fixture::example("hello");
        let cargo = cargo_then(&fixture, replace);
        // No daemon at this address: the artifact must be refused before any connection is tried.
        let result = hive_e2e::run(
            fixture
                .build_at("unix:///nonexistent/buildkitd.sock")
                .env("CARGO", &cargo),
        );
        let artifact = fixture.target().join("debug").join("hello");
        fixture.assert_fails(
            &result,
            &[&format!("{} {what}", artifact.display()), "ELF executable"],
        );
        assert!(
            !result.stderr.contains("nonexistent/buildkitd.sock"),
            "{result:#?}"
        );
    }
}

/// hello built by cargo for the foreign musl target (`hive_e2e::foreign_target`), outside the fixture's target dir.
fn foreign_hello(fixture: &Fixture, triple: &str) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target_dir = fixture.scratch("foreign-target");
    let linker = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace('-', "_")
    );
    succeed(
        std::process::Command::new(cargo)
            .args(["build", "--quiet", "--target", triple])
            .current_dir(fixture.root())
            .env("CARGO_TARGET_DIR", &target_dir)
            .env(linker, "rust-lld"),
    );
    target_dir.join(triple).join("debug/hello")
}

/// `--target` selects platforms now, so the binary cargo reports for the host is swapped for a foreign one after
/// cargo ran: the image is for the host platform, its binary is not.
#[test]
fn a_binary_for_another_architecture_is_refused() {
    let fixture = Fixture::example("hello");
    let (triple, machine, _) = hive_e2e::foreign_target();
    let foreign = foreign_hello(&fixture, triple);
    let cargo = cargo_then(
        &fixture,
        &format!("cp '{}' \"$artifact\"", foreign.display()),
    );
    let result = hive_e2e::run(fixture.build().env("CARGO", &cargo));
    let artifact = fixture.target().join("debug/hello");
    fixture.assert_fails(
        &result,
        &[
            &format!("image `hello` is for linux/{}", hive_e2e::host_arch()),
            &format!("{} is an executable for {machine}", artifact.display()),
        ],
    );
}

/// A target set in cargo's configuration (here through the environment) is one cargo hive did not ask for: its
/// binaries are refused rather than guessed at.
#[test]
fn a_build_target_cargo_was_not_asked_for_is_refused() {
    let fixture = Fixture::example("hello");
    let (triple, _, _) = hive_e2e::foreign_target();
    let linker = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace('-', "_")
    );
    let result = hive_e2e::run(
        fixture
            .build()
            .env("CARGO_BUILD_TARGET", triple)
            .env(linker, "rust-lld"),
    );
    fixture.assert_fails(
        &result,
        &[
            &format!("cargo built it for `{triple}` without being asked"),
            "build.target",
        ],
    );
}

#[test]
fn a_record_of_another_output_path_does_not_make_the_image_fresh() {
    let fixture = Fixture::example("hello");
    succeed(&mut fixture.build());
    let archive = fixture.archive("hello");
    let digest = OciArchive::open(&archive).manifest().0;
    // The archive moves away (a rename keeps its size and mtime) and the record is made to name where it went: an
    // intact output, but not the one this build writes.
    let elsewhere = fixture.scratch("elsewhere.oci.tar");
    std::fs::rename(&archive, &elsewhere).unwrap();
    let record_path = fixture.target().join("hive/.fresh/hello.json");
    let mut record = read_json(&record_path);
    assert_eq!(record["outputs"][0]["path"], archive.display().to_string());
    record["outputs"][0]["path"] = elsewhere.display().to_string().into();
    std::fs::write(&record_path, record.to_string()).unwrap();

    let result = succeed(fixture.build().args(["--progress", "json"]));
    let progress = events(&result);
    assert!(solved(&progress).contains("hello"), "{}", result.stdout);
    assert_eq!(OciArchive::open(&archive).manifest().0, digest);
    // Its new record names the archive it wrote: the next build is fresh again.
    let again = succeed(fixture.build().args(["--progress", "json"]));
    assert!(solved(&events(&again)).is_empty(), "{}", again.stdout);
}
