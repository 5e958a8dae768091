use super::*;
use crate::cargo::CargoFlags;

fn request(triples: &[&str], pass_target: bool, target_dir: &Path) -> CompileRequest {
    CompileRequest {
        triples: triples.iter().map(|triple| (*triple).to_owned()).collect(),
        pass_target,
        target_dir: target_dir.to_path_buf(),
        ..Default::default()
    }
}

/// A `compiler-artifact` line for a bin target, as cargo 1.9x prints it.
fn artifact_line(package_id: &str, bin: &str, path: &Path) -> String {
    serde_json::json!({
        "reason": "compiler-artifact",
        "package_id": package_id,
        "manifest_path": "/ws/Cargo.toml",
        "target": {"kind": ["bin"], "crate_types": ["bin"], "name": bin, "src_path": "/ws/src/main.rs",
                   "edition": "2024", "doc": true, "doctest": false, "test": true},
        "profile": {"opt_level": "0", "debuginfo": 2, "debug_assertions": true, "overflow_checks": true,
                    "test": false},
        "features": [],
        "filenames": [path],
        "executable": path,
        "fresh": false,
    })
    .to_string()
}

fn read(lines: &[String]) -> (RunOutput, String) {
    let mut output = RunOutput::default();
    let mut diagnostics = Vec::new();
    for line in lines {
        output.read_line(line, &mut diagnostics);
    }
    (output, String::from_utf8(diagnostics).unwrap())
}

#[test]
fn one_target_flag_per_triple_and_none_for_a_host_build() {
    let mut request = CompileRequest {
        cargo: Cargo {
            manifest_path: Some("/ws/Cargo.toml".into()),
            flags: CargoFlags {
                release: true,
                locked: true,
                ..Default::default()
            },
            ..Default::default()
        },
        targets: BTreeMap::from([("a".into(), vec!["a1".into()]), ("b".into(), vec![])]),
        triples: vec!["x86_64-unknown-linux-gnu".into()],
        pass_target: false,
        target_dir: "/ws/target".into(),
    };
    assert_eq!(
        cargo_args(&request, false).join(" "),
        "build --message-format=json --manifest-path /ws/Cargo.toml --package a --bin a1 --package b --release \
         --locked"
    );
    request.triples = vec![
        "x86_64-unknown-linux-gnu".into(),
        "aarch64-unknown-linux-musl".into(),
    ];
    request.pass_target = true;
    request.cargo.quiet = true;
    assert_eq!(
        cargo_args(&request, true).join(" "),
        "build --message-format=json-diagnostic-rendered-ansi --quiet --manifest-path /ws/Cargo.toml --package a \
         --bin a1 --package b --target x86_64-unknown-linux-gnu --target aarch64-unknown-linux-musl --release \
         --locked"
    );
}

#[test]
fn reads_bin_artifacts_only() {
    let lib = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0","manifest_path":"/x/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"serde","src_path":"/x/src/lib.rs","edition":"2021","doc":true,"doctest":true,"test":true},"profile":{"opt_level":"0","debuginfo":0,"debug_assertions":true,"overflow_checks":true,"test":false},"features":[],"filenames":["/ws/target/debug/deps/libserde.rlib"],"executable":null,"fresh":false}"#;
    let (output, diagnostics) = read(&[
        artifact_line(
            "path+file:///ws/hello#0.1.0",
            "hello",
            Path::new("/ws/target/debug/hello"),
        ),
        lib.to_owned(),
        artifact_line(
            "path+file:///ws/crates/api#api-server@0.2.0",
            "api",
            Path::new("/ws/target/debug/api"),
        ),
        r#"{"reason":"build-finished","success":true}"#.to_owned(),
        "not json: a wrapper's own line".to_owned(),
    ]);
    let built: Vec<(&str, &str, &Path)> = output
        .built
        .iter()
        .map(|(package, executable)| {
            (
                package.as_str(),
                executable.target.as_str(),
                executable.path.as_path(),
            )
        })
        .collect();
    assert_eq!(
        built,
        [
            ("hello", "hello", Path::new("/ws/target/debug/hello")),
            ("api-server", "api", Path::new("/ws/target/debug/api")),
        ]
    );
    assert!(!output.link_failed);
    assert_eq!(diagnostics, "");
}

/// A real rustc message of a failed link (cargo 1.95, `CARGO_TARGET_…_LINKER=/nonexistent-linker`).
const LINKER_NOT_FOUND: &str = r#"{"reason":"compiler-message","package_id":"path+file:///tmp/w#0.1.0","manifest_path":"/tmp/w/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"w","src_path":"/tmp/w/src/main.rs","edition":"2024","doc":true,"doctest":false,"test":true},"message":{"rendered":"error: linker `/nonexistent-linker` not found\n  |\n  = note: No such file or directory (os error 2)\n\n","$message_type":"diagnostic","children":[{"children":[],"code":null,"level":"note","message":"No such file or directory (os error 2)","rendered":null,"spans":[]}],"level":"error","message":"linker `/nonexistent-linker` not found","spans":[],"code":null}}"#;

/// `message` as the error of a compiler-message line.
fn compiler_message(level: &str, message: &str) -> String {
    let mut line: serde_json::Value = serde_json::from_str(LINKER_NOT_FOUND).unwrap();
    line["message"]["level"] = level.into();
    line["message"]["message"] = message.into();
    line["message"]["rendered"] = format!("{level}: {message}\n").into();
    line.to_string()
}

#[test]
fn link_failures_are_told_from_other_errors_and_every_diagnostic_is_printed() {
    let (output, diagnostics) = read(&[LINKER_NOT_FOUND.to_owned()]);
    assert!(output.link_failed);
    assert_eq!(
        diagnostics,
        "error: linker `/nonexistent-linker` not found\n  |\n  = note: No such file or directory (os error 2)\n\n"
    );
    let (output, _) = read(&[compiler_message(
        "error",
        "linking with `cc` failed: exit status: 1",
    )]);
    assert!(output.link_failed);
    let (output, diagnostics) = read(&[
        compiler_message("warning", "unused variable: `x`"),
        compiler_message("error", "cannot find value `linker` in this scope"),
        compiler_message("warning", "linker `cc` not found"),
    ]);
    assert!(!output.link_failed);
    assert_eq!(
        diagnostics,
        "warning: unused variable: `x`\nerror: cannot find value `linker` in this scope\nwarning: linker `cc` not \
         found\n"
    );
}

#[test]
fn a_link_failure_hints_at_each_cross_targets_linker() {
    let host = host_default_triple();
    let request = request(
        &[
            host,
            "aarch64-unknown-linux-gnu",
            "aarch64-unknown-linux-musl",
        ],
        true,
        Path::new("/t"),
    );
    let error = failure(&request, "exit status: 101".into(), true);
    assert_eq!(
        error.to_string(),
        "cargo build failed to link (exit status: 101); see cargo's messages above\n\
         hint: to link for aarch64-unknown-linux-gnu, cargo needs a linker for that target: set \
         `target.aarch64-unknown-linux-gnu.linker` in .cargo/config.toml or \
         CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER (Debian: gcc-aarch64-linux-gnu provides \
         aarch64-linux-gnu-gcc; musl targets can use rust-lld)\n\
         hint: to link for aarch64-unknown-linux-musl, cargo needs a linker for that target: set \
         `target.aarch64-unknown-linux-musl.linker` in .cargo/config.toml or \
         CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER (musl targets can use rust-lld)"
    );
    assert!(matches!(
        failure(&request, "exit status: 101".into(), false),
        CargoError::Failed(_)
    ));
    // A host build that fails to link is the user's own linker setup: no cross hint.
    let host_only = self::request(&[host], false, Path::new("/t"));
    assert!(matches!(
        failure(&host_only, "exit status: 101".into(), true),
        CargoError::Failed(_)
    ));
    assert_eq!(
        LinkerHint {
            triple: "armv7-unknown-linux-gnueabihf".into()
        }
        .to_string(),
        "to link for armv7-unknown-linux-gnueabihf, cargo needs a linker for that target: set \
         `target.armv7-unknown-linux-gnueabihf.linker` in .cargo/config.toml or \
         CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER (Debian: gcc-arm-linux-gnueabihf provides \
         arm-linux-gnueabihf-gcc; musl targets can use rust-lld)"
    );
}

/// A target dir at `<tmp>/real/target` reached through the symlink `<tmp>/link`, with empty files at `files`.
fn fake_target_dir(files: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let real = root.path().join("real/target");
    for file in files {
        let path = real.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }
    std::os::unix::fs::symlink(root.path().join("real"), root.path().join("link")).unwrap();
    (root, real)
}

fn placed(request: &CompileRequest, lines: &[String]) -> Result<Vec<ArtifactKey>, CargoError> {
    let (output, _) = read(lines);
    Ok(place(request, output.built)?.into_keys().collect())
}

fn key(package: &str, bin: &str, triple: &str) -> ArtifactKey {
    ArtifactKey {
        package: package.into(),
        bin: bin.into(),
        triple: triple.into(),
    }
}

#[test]
fn artifacts_are_placed_on_the_triple_whose_directory_they_are_in() {
    let (root, real) = fake_target_dir(&[
        "x86_64-unknown-linux-gnu/release/api",
        "aarch64-unknown-linux-musl/release/api",
        "aarch64-unknown-linux-musl/release/worker",
    ]);
    // cargo names the target dir through the symlink; the artifacts come with their real paths.
    let triples = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-musl"];
    let request = request(&triples, true, &root.path().join("link/target"));
    let lines = [
        artifact_line(
            "path+file:///ws#api@0.1.0",
            "api",
            &real.join("x86_64-unknown-linux-gnu/release/api"),
        ),
        artifact_line(
            "path+file:///ws#api@0.1.0",
            "api",
            &real.join("aarch64-unknown-linux-musl/release/api"),
        ),
        artifact_line(
            "path+file:///ws#jobs@0.1.0",
            "worker",
            &root
                .path()
                .join("link/target/aarch64-unknown-linux-musl/release/worker"),
        ),
    ];
    assert_eq!(
        placed(&request, &lines).unwrap(),
        [
            key("api", "api", "aarch64-unknown-linux-musl"),
            key("api", "api", "x86_64-unknown-linux-gnu"),
            key("jobs", "worker", "aarch64-unknown-linux-musl"),
        ]
    );
}

#[test]
fn a_host_only_build_has_its_one_triple() {
    let (_root, real) = fake_target_dir(&["debug/api"]);
    let request = request(&["x86_64-unknown-linux-gnu"], false, &real);
    let lines = [artifact_line(
        "path+file:///ws#api@0.1.0",
        "api",
        &real.join("debug/api"),
    )];
    let (output, _) = read(&lines);
    let executables = place(&request, output.built).unwrap();
    assert_eq!(
        executables.keys().collect::<Vec<_>>(),
        [&key("api", "api", "x86_64-unknown-linux-gnu")]
    );
}

#[test]
fn an_artifact_that_cannot_be_placed_is_an_error_naming_it() {
    let (root, real) = fake_target_dir(&[
        "debug/api",
        "riscv64gc-unknown-linux-gnu/debug/api",
        "aarch64-unknown-linux-gnu/debug/api",
    ]);
    let outside = root.path().join("elsewhere/api");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::write(&outside, b"").unwrap();
    let cross = request(&["aarch64-unknown-linux-gnu"], true, &real);
    let host = request(&["x86_64-unknown-linux-gnu"], false, &real);
    let line = |path: &Path| [artifact_line("path+file:///ws#api@0.1.0", "api", path)];
    let cases = [
        (
            &cross,
            real.join("riscv64gc-unknown-linux-gnu/debug/api"),
            "`riscv64gc-unknown-linux-gnu` is none of the requested targets (aarch64-unknown-linux-gnu)",
        ),
        (
            &cross,
            real.join("debug/api"),
            "is not `<triple>/<profile>/<binary>`",
        ),
        (
            &host,
            real.join("aarch64-unknown-linux-gnu/debug/api"),
            "cargo built it for `aarch64-unknown-linux-gnu` without being asked (is `build.target` set in the \
             cargo configuration?)",
        ),
        (&host, outside.clone(), "it is not under cargo's target dir"),
        (
            &host,
            real.join("gone/debug/api"),
            "its directory cannot be read",
        ),
    ];
    for (request, path, why) in cases {
        let error = placed(request, &line(&path)).unwrap_err().to_string();
        let prefix = format!(
            "cannot tell which target cargo built {} for: ",
            path.display()
        );
        assert!(error.starts_with(&prefix), "{error}");
        assert!(error.contains(why), "{error}");
    }
}

/// Writes a little binary crate whose cargo configuration links aarch64 musl with rust-lld and aarch64 gnu with a
/// linker that does not exist.
fn scratch_crate(root: &Path) {
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        "fn main() { println!(\"hi\"); }\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        "[build]\ntarget-dir = \"out\"\n\n[target.aarch64-unknown-linux-musl]\nlinker = \"rust-lld\"\n\n\
         [target.aarch64-unknown-linux-gnu]\nlinker = \"/nonexistent-linker\"\n",
    )
    .unwrap();
}

/// A quiet build of the scratch crate for `triples`; `build.target-dir` moves the target dir, which is given as
/// cargo metadata would name it.
fn scratch_request(root: &Path, triples: &[&str]) -> CompileRequest {
    CompileRequest {
        cargo: Cargo {
            program: env!("CARGO").into(),
            quiet: true,
            ..Default::default()
        },
        targets: BTreeMap::from([("scratch".into(), vec!["scratch".into()])]),
        ..request(triples, true, &root.join("out"))
    }
}

#[tokio::test]
async fn a_real_link_failure_hints_at_the_linker() {
    let root = tempfile::tempdir().unwrap();
    scratch_crate(root.path());
    let request = scratch_request(root.path(), &["aarch64-unknown-linux-gnu"]);
    let error = build(&request, root.path(), None).await.unwrap_err();
    let CargoError::LinkFailed { hints, .. } = &error else {
        panic!("not a link failure: {error}");
    };
    assert_eq!(
        hints,
        &[LinkerHint {
            triple: "aarch64-unknown-linux-gnu".into()
        }]
    );
}

#[tokio::test]
async fn one_real_cargo_run_builds_every_triple() {
    let root = tempfile::tempdir().unwrap();
    scratch_crate(root.path());
    let request = scratch_request(
        root.path(),
        &["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-musl"],
    );
    let artifacts = build(&request, root.path(), None).await.unwrap();
    let architectures: Vec<(&str, Option<&str>)> = artifacts
        .executables
        .iter()
        .map(|(key, executable)| {
            (
                key.triple.as_str(),
                executable
                    .machine
                    .and_then(|machine| machine.architecture()),
            )
        })
        .collect();
    assert_eq!(
        architectures,
        [
            ("aarch64-unknown-linux-musl", Some("arm64")),
            ("x86_64-unknown-linux-gnu", Some("amd64")),
        ]
    );
}

/// A cargo that counts its runs in `<dir>/runs`, then is the real one.
fn counting_cargo(dir: &Path) -> std::ffi::OsString {
    let real = format!("exec {} \"$@\"", env!("CARGO"));
    crate::cargo::test_scripts::counting(dir, "cargo", &real)
}

use crate::cargo::test_scripts::runs;

#[tokio::test]
async fn an_early_run_is_used_only_when_it_is_the_run_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let counter = tempfile::tempdir().unwrap();
    scratch_crate(root.path());
    let mut request = scratch_request(root.path(), &["x86_64-unknown-linux-gnu"]);
    request.cargo.program = counting_cargo(counter.path());
    let memory = super::super::run_memory(&root.path().join("out"));
    assert!(super::super::EarlyRun::start(&memory, &request.cargo, root.path()).is_none());
    let args = cargo_args(&request, std::io::stderr().is_terminal());
    super::super::remember_run(&memory, &request.cargo.program, root.path(), &args);

    // The same run: started early, used, and cargo ran once.
    let early = super::super::EarlyRun::start(&memory, &request.cargo, root.path());
    let artifacts = build(&request, root.path(), early).await.unwrap();
    assert_eq!(artifacts.executables.len(), 1);
    assert_eq!(runs(counter.path()), 1);

    // Another run remembered (another package): started early, killed, and the asked run ran.
    let mut other = args.clone();
    other.extend(["--package".into(), "no-such-package".into()]);
    super::super::remember_run(&memory, &request.cargo.program, root.path(), &other);
    let early = super::super::EarlyRun::start(&memory, &request.cargo, root.path());
    assert!(early.is_some());
    // Once it has started (it would fail: no such package), the build kills it and runs its own.
    for _ in 0..1000 {
        if runs(counter.path()) == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(runs(counter.path()), 2, "the early run never started");
    let artifacts = build(&request, root.path(), early).await.unwrap();
    assert_eq!(artifacts.executables.len(), 1);
    assert_eq!(runs(counter.path()), 3);

    // A run remembered for another directory is not started.
    assert!(super::super::EarlyRun::start(&memory, &request.cargo, counter.path()).is_none());
}
