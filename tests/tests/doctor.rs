//! `cargo hive doctor` against the real daemon: by auto-detection, by every explicit source, over TLS, and every
//! failure the foundation issue lists.

use hive_e2e::fakes::{Pki, silent_tcp_port, silent_unix_socket, tls_front_for_docker};
use hive_e2e::fixture::Spawned;
use hive_e2e::{Run, buildkit_addr, cargo_hive, docker_socket, run};
use serde_json::Value;

/// What a silent endpoint is told: doctor's own bound, well inside the 10 s. Asserted in the message, not
/// measured: the machine's load must not decide a test.
const SILENT_ENDPOINT: &str = "did not answer within 6 s";

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{run:?}"))
}

fn assert_ready(report: &Value) {
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["ready"], true, "{report:#}");
    let endpoint = &report["endpoint"];
    assert_eq!(endpoint["live_check"]["ok"], true, "{report:#}");
    let workers = endpoint["workers"].as_array().expect("workers");
    assert!(!workers.is_empty(), "no workers: {report:#}");
    assert!(
        workers[0]["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("linux/"))
    );
}

/// Runs a failing doctor and checks the common contract: exit 1, a message naming `needle`, no panic (and, as a
/// guard against a hang, an exit within the suite's generous guard).
fn assert_fails(command: &mut std::process::Command, needles: &[&str]) -> Run {
    let (status, stdout, stderr) = Spawned::start(command).finish();
    let result = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    // Doctor's failure is its first line.
    assert!(result.stderr.starts_with("error: "), "{result:?}");
    hive_e2e::assert_error(&result, needles);
    result
}

/// Auto-detection with the buildkitd sockets moved away: only Docker's default socket can answer.
#[test]
fn auto_detects_docker_default_socket() {
    let socket = docker_socket();
    let xdg = tempfile::tempdir().unwrap();
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json"])
        .env("XDG_RUNTIME_DIR", xdg.path())
        .env(
            "__HIVE_ROOTFUL_BUILDKIT_SOCKET",
            xdg.path().join("absent.sock"),
        )
        .env("__HIVE_DOCKER_DEFAULT_SOCKET", &socket));
    assert_eq!(result.code, 0, "{result:?}");
    let report = json(&result);
    assert_ready(&report);
    let endpoint = &report["endpoint"];
    assert_eq!(endpoint["origin"], "docker-default");
    assert_eq!(
        endpoint["address"],
        format!("docker+unix://{}", socket.display())
    );
    assert!(
        endpoint["reason"]
            .as_str()
            .unwrap()
            .contains("after 2 earlier candidates"),
        "{endpoint:#}"
    );
    let candidates = report["candidates"].as_array().unwrap();
    let origins: Vec<&str> = candidates
        .iter()
        .map(|c| c["origin"].as_str().unwrap())
        .collect();
    assert_eq!(
        origins,
        ["rootless-buildkitd", "rootful-buildkitd", "docker-default"]
    );
    assert!(
        candidates[0]["error"]
            .as_str()
            .unwrap()
            .contains("no socket at"),
        "{candidates:#?}"
    );
    assert_eq!(candidates[2]["ok"], true);
    // Docker 26 with the containerd image store serves every exporter cargo hive uses.
    assert_eq!(endpoint["daemon"]["kind"], "docker");
    let exporters: Vec<&str> = endpoint["exporters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    if endpoint["daemon"]["containerd_image_store"] == true {
        assert_eq!(
            exporters,
            ["image", "oci", "docker", "moby", "local", "tar"]
        );
    } else {
        assert_eq!(exporters, ["moby", "local", "tar"]);
    }
}

#[test]
fn docker_host_is_tried_before_the_default_socket() {
    let socket = docker_socket();
    let xdg = tempfile::tempdir().unwrap();
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json"])
        .env("XDG_RUNTIME_DIR", xdg.path())
        .env(
            "__HIVE_ROOTFUL_BUILDKIT_SOCKET",
            xdg.path().join("absent.sock"),
        )
        .env(
            "__HIVE_DOCKER_DEFAULT_SOCKET",
            xdg.path().join("absent-docker.sock"),
        )
        .env("DOCKER_HOST", format!("unix://{}", socket.display())));
    assert_eq!(result.code, 0, "{result:?}");
    let report = json(&result);
    assert_ready(&report);
    assert_eq!(report["endpoint"]["origin"], "docker-host");
}

#[test]
fn explicit_address_flag() {
    let addr = buildkit_addr();
    let result = run(cargo_hive().args(["doctor", "--format", "json", "--addr", &addr]));
    assert_eq!(result.code, 0, "{result:?}");
    let report = json(&result);
    assert_ready(&report);
    assert_eq!(report["endpoint"]["origin"], "flag");
    assert_eq!(report["candidates"].as_array().unwrap().len(), 1);
}

#[test]
fn docker_scheme_means_the_default_docker_socket() {
    buildkit_addr();
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json", "--addr", "docker://"])
        .env(
            "DOCKER_HOST",
            format!("unix://{}", docker_socket().display()),
        ));
    assert_eq!(result.code, 0, "{result:?}");
    assert_ready(&json(&result));
}

#[test]
fn buildkit_host_env_beats_the_manifest() {
    let addr = buildkit_addr();
    let workspace = tempfile::tempdir().unwrap();
    let manifest = workspace.path().join("Cargo.toml");
    std::fs::write(
        &manifest,
        "[workspace]\n[workspace.metadata.hive]\nbuildkit = \"unix:///nonexistent.sock\"\n",
    )
    .unwrap();
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json", "--manifest-path"])
        .arg(&manifest)
        .env("BUILDKIT_HOST", &addr));
    assert_eq!(result.code, 0, "{result:?}");
    let report = json(&result);
    assert_ready(&report);
    assert_eq!(report["endpoint"]["origin"], "env");
}

#[test]
fn manifest_address_is_used_without_flag_or_env() {
    let addr = buildkit_addr();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(
        workspace.path().join("Cargo.toml"),
        format!("[workspace]\nmembers = []\n\n[workspace.metadata.hive]\nbuildkit = \"{addr}\"\n"),
    )
    .unwrap();
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json"])
        .current_dir(workspace.path()));
    assert_eq!(result.code, 0, "{result:?}");
    let report = json(&result);
    assert_ready(&report);
    assert_eq!(report["endpoint"]["origin"], "manifest");
}

#[test]
fn human_output_says_ready() {
    let addr = buildkit_addr();
    let result = run(cargo_hive().args(["doctor", "--addr", &addr]));
    assert_eq!(result.code, 0, "{result:?}");
    for needle in [
        "BuildKit      ",
        "given by --addr",
        "transport",
        "Workers",
        "Exporters",
        "Live check    ok",
        "Ready.",
    ] {
        assert!(
            result.stdout.contains(needle),
            "missing {needle:?} in:\n{}",
            result.stdout
        );
    }
}

#[test]
fn mutual_tls_to_the_real_daemon() {
    buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let port = tls_front_for_docker(&pki, &docker_socket(), true);
    let addr = format!("tcp://127.0.0.1:{port}");
    let result = run(cargo_hive()
        .args([
            "doctor",
            "--format",
            "json",
            "--addr",
            &addr,
            "--tlsservername",
            "buildkit.test",
        ])
        .arg("--tlscacert")
        .arg(&pki.ca)
        .arg("--tlscert")
        .arg(&pki.client_cert)
        .arg("--tlskey")
        .arg(&pki.client_key));
    assert_eq!(result.code, 0, "{result:?}");
    let report = json(&result);
    assert_ready(&report);
    assert_eq!(report["endpoint"]["transport"], "tcp (gRPC)");

    // The same daemon without the client certificate is refused by the server.
    let result = assert_fails(
        cargo_hive()
            .args([
                "doctor",
                "--addr",
                &addr,
                "--tlsservername",
                "buildkit.test",
                "--tlscacert",
            ])
            .arg(&pki.ca),
        &[&addr],
    );
    assert!(
        result.stderr.contains("TLS") || result.stderr.contains("cannot connect"),
        "{result:?}"
    );
}

#[test]
fn tls_settings_from_the_manifest() {
    buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let port = tls_front_for_docker(&pki, &docker_socket(), false);
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = []\n\n[workspace.metadata.hive]\nbuildkit = \"tcp://127.0.0.1:{port}\"\n\
             tlscacert = \"ca.pem\"\ntlsservername = \"buildkit.test\"\n"
        ),
    )
    .unwrap();
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json"])
        .current_dir(dir.path()));
    assert_eq!(result.code, 0, "{result:?}");
    assert_ready(&json(&result));
}

#[test]
fn tls_name_mismatch() {
    buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let port = tls_front_for_docker(&pki, &docker_socket(), false);
    let addr = format!("tcp://127.0.0.1:{port}");
    assert_fails(
        cargo_hive()
            .args([
                "doctor",
                "--addr",
                &addr,
                "--tlsservername",
                "other.test",
                "--tlscacert",
            ])
            .arg(&pki.ca),
        &["TLS to tcp://127.0.0.1", "--tlsservername", "certificate"],
    );
}

#[test]
fn tcp_with_missing_tls_files() {
    assert_fails(
        cargo_hive().args([
            "doctor",
            "--addr",
            "tcp://127.0.0.1:1234",
            "--tlscacert",
            "/nonexistent/ca.pem",
        ]),
        &[
            "tcp://127.0.0.1:1234",
            "cannot read --tlscacert file /nonexistent/ca.pem",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "x");
    assert_fails(
        cargo_hive()
            .args(["doctor", "--addr", "tcp://127.0.0.1:1234", "--tlscacert"])
            .arg(&pki.ca)
            .arg("--tlscert")
            .arg(&pki.client_cert),
        &["--tlscert was given without --tlskey"],
    );
    assert_fails(
        cargo_hive()
            .args(["doctor", "--addr", "tcp://127.0.0.1:1234", "--tlscacert"])
            .arg(dir.path().join("Cargo.toml")),
        &["cannot read --tlscacert"],
    );
}

#[test]
fn malformed_and_unknown_addresses() {
    let table: &[(&str, &[&str])] = &[
        (
            "tcp://localhost",
            &["`tcp://localhost` is malformed", "HOST:PORT"],
        ),
        ("tcp://localhost:99999", &["not a port number"]),
        ("unix://relative.sock", &["must be absolute"]),
        ("localhost:1234", &["not a BuildKit address"]),
        ("gopher://x", &["unknown scheme `gopher://`", "unix://"]),
        ("ssh://me@host", &["buildctl knows this scheme"]),
    ];
    for (addr, needles) in table {
        let mut needles = needles.to_vec();
        needles.push("--addr");
        assert_fails(cargo_hive().args(["doctor", "--addr", addr]), &needles);
    }
    // The same message names BUILDKIT_HOST when the address came from there.
    assert_fails(
        cargo_hive().args(["doctor"]).env("BUILDKIT_HOST", "bogus"),
        &["from BUILDKIT_HOST is invalid"],
    );
}

#[test]
fn socket_path_that_is_not_a_socket() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let addr = format!("unix://{}", file.path().display());
    assert_fails(
        cargo_hive().args(["doctor", "--addr", &addr]),
        &[&addr, "is not a socket"],
    );
    let addr = format!("docker+unix://{}", file.path().display());
    assert_fails(
        cargo_hive().args(["doctor", "--addr", &addr]),
        &[&addr, "is not a socket"],
    );
}

#[test]
fn missing_socket() {
    assert_fails(
        cargo_hive().args(["doctor", "--addr", "unix:///nonexistent/buildkitd.sock"]),
        &[
            "no BuildKit at unix:///nonexistent/buildkitd.sock",
            "does not exist",
            "scripts/buildkit-up",
        ],
    );
}

#[test]
fn connection_refused() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("tcp://127.0.0.1:{port}");
    assert_fails(
        cargo_hive().args(["doctor", "--addr", &addr]),
        &[&addr, "refused"],
    );
}

#[test]
fn endpoint_that_accepts_but_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("silent.sock");
    silent_unix_socket(&socket);
    for addr in [
        format!("unix://{}", socket.display()),
        format!("docker+unix://{}", socket.display()),
    ] {
        assert_fails(
            cargo_hive().args(["doctor", "--addr", &addr]),
            &[&addr, SILENT_ENDPOINT],
        );
    }
    let addr = format!("tcp://127.0.0.1:{}", silent_tcp_port());
    assert_fails(
        cargo_hive().args(["doctor", "--addr", &addr]),
        &[&addr, SILENT_ENDPOINT],
    );
}

#[test]
fn nothing_reachable_lists_every_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let result = assert_fails(
        cargo_hive()
            .arg("doctor")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env(
                "__HIVE_ROOTFUL_BUILDKIT_SOCKET",
                dir.path().join("rootful.sock"),
            )
            .env(
                "__HIVE_DOCKER_DEFAULT_SOCKET",
                dir.path().join("docker.sock"),
            )
            .env(
                "DOCKER_HOST",
                format!("unix://{}", dir.path().join("docker-host.sock").display()),
            ),
        &["no BuildKit found", "scripts/buildkit-up", "BUILDKIT_HOST"],
    );
    for candidate in [
        "buildkit/buildkitd.sock",
        "rootful.sock",
        "docker-host.sock",
        "docker.sock",
    ] {
        assert!(
            result.stderr.contains(candidate),
            "missing {candidate}:\n{}",
            result.stderr
        );
    }
    // JSON output reports the same, on stdout, still with exit 1.
    let result = run(cargo_hive()
        .args(["doctor", "--format", "json"])
        .env("XDG_RUNTIME_DIR", dir.path())
        .env(
            "__HIVE_ROOTFUL_BUILDKIT_SOCKET",
            dir.path().join("rootful.sock"),
        )
        .env(
            "__HIVE_DOCKER_DEFAULT_SOCKET",
            dir.path().join("docker.sock"),
        ));
    assert_eq!(result.code, 1);
    let report = json(&result);
    assert_eq!(report["ready"], false);
    assert_eq!(report["candidates"].as_array().unwrap().len(), 3);
}
