//! Every way a build can be stopped cleans up after it: SIGINT, SIGTERM and SIGHUP cancel the build in any phase
//! (cargo's whole process tree included) and remove its temp files; what a SIGKILL leaves, the next build removes;
//! `--load` with no Docker to load into fails before anything is built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hive_build::progress::Event;
use hive_e2e::fakes::{Pki, tls_front_for_docker};
use hive_e2e::fixture::{
    EXIT_GUARD, Fixture, LocalImages, Signal, Spawned, events, files_in, hello_with_big_file,
    succeed, unique_repository,
};
use hive_e2e::{docker_socket, run};

/// What an interrupted build must show: the signal's exit code, `interrupted`, no panic, no image finished.
fn assert_cancelled(status: std::process::ExitStatus, stdout: &str, stderr: &str, code: i32) {
    assert!(
        !stdout.contains("\"type\":\"image-finished\"") && status.code() != Some(0),
        "the build finished before the signal arrived: make it take longer for this test to mean anything\n\
         {stdout}\n{stderr}"
    );
    assert_eq!(status.code(), Some(code), "{status}\n{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The signal named as `kill -s` names it (`INT`, `TERM`, `HUP`).
fn named(signal: &str) -> Signal {
    match signal {
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "HUP" => Signal::HUP,
        other => panic!("no test sends SIG{other}"),
    }
}

/// Sends a signal (`INT`, `TERM`, `HUP`) to the build process only, as `kill`, `timeout` or a CI runner does.
fn send(build: &mut Spawned, signal: &str) {
    build.signal(named(signal));
}

/// Waits until `found` says yes, failing if the build ends first (or, as a guard against a hang, after
/// [`EXIT_GUARD`]).
fn wait_until(mut build: Spawned, what: &str, found: impl Fn() -> bool) -> Spawned {
    let deadline = Instant::now() + EXIT_GUARD;
    loop {
        if found() {
            return build;
        }
        if build.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = build.child.kill();
            let (status, stdout, stderr) = build.finish();
            panic!("the build ended ({status}) before {what}:\n{stdout}\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs a command to its end, killing it after [`EXIT_GUARD`] (a guard against a hang): (status, stderr).
fn run_guarded(command: &mut Command) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let deadline = Instant::now() + EXIT_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not exit within {EXIT_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, stderr.join().unwrap())
}

fn partials(dir: &Path) -> Vec<String> {
    files_in(dir)
        .into_iter()
        .filter(|name| name.ends_with(".partial"))
        .collect()
}

/// An export into `target/hive/` that takes a while: 100 MiB, uncompressed.
fn slow_export(fixture: &Fixture) -> String {
    format!(
        "type=oci,dest={},compression=uncompressed,force-compression=true",
        fixture.archive("hello").display()
    )
}

/// SIGTERM and SIGHUP while the archive streams into `target/hive/`: exit 128 + the signal, nothing left there.
#[test]
fn sigterm_and_sighup_cancel_and_leave_nothing() {
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let fixture = hello_with_big_file(100);
        let spec = slow_export(&fixture);
        let build = Spawned::start(
            fixture
                .build()
                .args(["--progress", "json", "--output", &spec]),
        );
        let hive = fixture.target().join("hive");
        let build = build.signal_when(named(signal), "a partial archive appeared", || {
            !partials(&hive).is_empty()
        });
        let (status, stdout, stderr) = build.finish();
        assert_cancelled(status, &stdout, &stderr, code);
        assert!(stderr.contains(&format!("SIG{signal}")), "{stderr}");
        assert_eq!(
            fixture.outputs(),
            Vec::<String>::new(),
            "SIG{signal} left output behind"
        );
    }
}

/// A SIGKILL can't be handled: its partial archive stays, and the next build removes it. A partial archive whose
/// build is alive (here: named with this test's pid) is left alone.
#[test]
fn the_next_build_removes_what_a_sigkill_left() {
    let fixture = hello_with_big_file(100);
    let spec = slow_export(&fixture);
    let hive = fixture.target().join("hive");
    let build = Spawned::start(
        fixture
            .build()
            .args(["--progress", "json", "--output", &spec]),
    );
    let mut build = wait_until(build, "a partial archive appeared", || {
        !partials(&hive).is_empty()
    });
    build.child.kill().unwrap();
    let _ = build.finish();
    let left = partials(&hive);
    assert_eq!(left.len(), 1, "{left:?}");
    let running = format!(".hello.oci.tar.{}.AbC123.partial", std::process::id());
    std::fs::write(hive.join(&running), b"a concurrent build's").unwrap();

    succeed(fixture.build().args(["--progress", "json"]));
    assert_eq!(
        fixture.outputs(),
        [running, "hello.oci.tar".to_owned()],
        "the killed build's {} is still there",
        left[0]
    );
}

/// A build script that writes its pid to `$HIVE_E2E_PID_FILE` and then sleeps for a minute; without the variable
/// it does nothing (and cargo reruns it when the variable changes).
const SLEEPING_SCRIPT: &str = r#"
    println!("cargo::rerun-if-env-changed=HIVE_E2E_PID_FILE");
    if let Some(path) = std::env::var_os("HIVE_E2E_PID_FILE") {
        let path = std::path::PathBuf::from(path);
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, std::process::id().to_string()).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
"#;

/// hello with a build script that sleeps: cargo build is running it when the signal comes.
fn hello_with_sleeping_build_script() -> Fixture {
    let fixture = Fixture::example("hello");
    std::fs::write(
        fixture.root().join("build.rs"),
        format!("fn main() {{{SLEEPING_SCRIPT}}}\n"),
    )
    .unwrap();
    fixture
}

/// build-rs (whose build script declares images) with its script sleeping: the build-script pass that reads the
/// image definitions is running it when the signal comes.
fn build_rs_with_sleeping_script() -> Fixture {
    let fixture = Fixture::build_rs_example();
    fixture.edit(
        "build.rs",
        "fn main() {\n",
        &format!("fn main() {{\n{SLEEPING_SCRIPT}"),
    );
    fixture
}

/// Whether a process has ended (a zombie waiting for init to reap it has).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// A signal while cargo runs a build script ends cargo's whole tree, so cargo's lock is free at once.
fn signal_during_build_script(fixture: &Fixture, signal: &str, code: i32) {
    let pid_file = fixture.scratch("build-script.pid");
    let build = Spawned::start(
        fixture
            .build()
            .env("HIVE_E2E_PID_FILE", &pid_file)
            .args(["--progress", "json"]),
    );
    let mut build = wait_until(build, "the build script started", || pid_file.exists());
    let script: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    send(&mut build, signal);
    let (status, stdout, stderr) = build.finish();
    assert_cancelled(status, &stdout, &stderr, code);
    // The kill is sent before cargo hive exits; the guard only covers the kernel's reaping.
    let deadline = Instant::now() + EXIT_GUARD;
    while !ended(script) {
        assert!(
            Instant::now() < deadline,
            "the build script (pid {script}) outlived cargo hive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Nothing holds cargo's lock on the target dir: the user's next cargo command runs.
    let (status, stderr) = run_guarded(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .arg("build")
            .current_dir(fixture.root())
            .env("CARGO_TARGET_DIR", fixture.target())
            .env_remove("HIVE_E2E_PID_FILE"),
    );
    assert!(status.success(), "{status}\n{stderr}");
    // Only the target dir's lock counts: other cargo processes on the machine may hold the shared package cache.
    assert!(
        !stderr
            .lines()
            .any(|line| line.contains("Blocking waiting for file lock")
                && !line.contains("package cache")),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_during_cargo_build_ends_the_build_script() {
    signal_during_build_script(&hello_with_sleeping_build_script(), "INT", 130);
}

#[test]
fn sigterm_during_the_build_script_pass_ends_the_build_script() {
    signal_during_build_script(&build_rs_with_sleeping_script(), "TERM", 143);
}

/// 96 MiB that no compressor can shrink, so that the archive takes a while to load into Docker.
fn incompressible_file(path: &Path) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(96 << 20);
    while bytes.len() < 96 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// `cargo hive build` of hello against the real daemon seen as a standalone buildkitd (TLS front on tcp://).
fn build_through_tls_front(fixture: &Fixture, pki_dir: &Path) -> Command {
    let pki = Pki::generate(pki_dir, "buildkit.test");
    let port = tls_front_for_docker(&pki, &docker_socket(), false);
    let mut command = fixture.build_at(&format!("tcp://127.0.0.1:{port}"));
    command
        .args(["--tlsservername", "buildkit.test", "--tlscacert"])
        .arg(&pki.ca);
    command
}

/// Ctrl-C while Docker loads the archive from a standalone buildkitd: the archive goes too.
#[test]
fn ctrl_c_during_load_from_a_standalone_buildkit_removes_the_archive() {
    let fixture = Fixture::example("hello");
    incompressible_file(&fixture.root().join("noise.bin"));
    let repository = format!("localhost:5000/e2e/{}", unique_repository("signals-load"));
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!(
            "repository = \"{repository}\"\nfiles = [{{ src = \"noise.bin\", dst = \"/noise.bin\" }}]"
        ),
    );
    let _cleanup = LocalImages(vec![
        format!("{repository}:0.1.0"),
        format!("{repository}:latest"),
    ]);
    let pki_dir = fixture.scratch("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    let mut command = build_through_tls_front(&fixture, &pki_dir);
    command.args(["--load", "--progress", "json"]).env(
        "DOCKER_HOST",
        format!("unix://{}", docker_socket().display()),
    );
    let build = Spawned::start(&mut command);
    let load_dir = fixture.target().join("hive").join(".load");
    // The archive is complete (renamed from its partial file): Docker is reading it now.
    let build = build.signal_when(Signal::INT, "the docker archive was complete", || {
        files_in(&load_dir)
            .iter()
            .any(|name| name.ends_with(".tar"))
    });
    let (status, stdout, stderr) = build.finish();
    assert_cancelled(status, &stdout, &stderr, 130);
    assert_eq!(
        files_in(&load_dir),
        Vec::<String>::new(),
        "an interrupted --load left its archive behind"
    );
}

/// `--load` with a standalone BuildKit and no Docker at DOCKER_HOST: the error names the socket, and nothing is
/// built for an image that could not be loaded.
#[test]
fn load_without_docker_fails_before_building() {
    let fixture = Fixture::example("hello");
    let pki_dir = fixture.scratch("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    let missing: PathBuf = fixture.scratch("no-docker.sock");
    let mut command = build_through_tls_front(&fixture, &pki_dir);
    command
        .args(["--load", "--progress", "json"])
        .env("DOCKER_HOST", format!("unix://{}", missing.display()));
    let result = run(&mut command);
    fixture.assert_fails(
        &result,
        &[
            "--load",
            &format!("DOCKER_HOST=unix://{}", missing.display()),
            "No such file or directory",
        ],
    );
    let progress = events(&result);
    assert!(
        !progress.iter().any(|event| matches!(
            event,
            Event::ImageStarted { .. } | Event::VertexStarted { .. }
        )),
        "an image was built anyway:\n{}",
        result.stdout
    );
}
