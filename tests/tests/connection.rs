//! The connection to BuildKit fails clearly and in bounded time: TLS settings that cannot apply, a peer that is not
//! BuildKit, a daemon that goes away mid-build, and client certificates buildctl accepts.

use std::path::{Path, PathBuf};

use hive_e2e::fakes::{self, Pki};
use hive_e2e::fixture::{self, Fixture, Spawned};
use hive_e2e::{Run, assert_error, buildkit_addr, cargo_hive, docker_socket};

/// Runs a command to completion; one that hangs is killed after the suite's guard and fails the test.
fn timed(command: &mut std::process::Command) -> Run {
    let (status, stdout, stderr) = Spawned::start(command).finish();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// TLS flags with a unix or Docker address are an error naming the flags and the address, whatever the scheme and
/// wherever the address came from.
#[test]
fn tls_flags_with_a_socket_address_are_an_error() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "unix:///run/buildkit/buildkitd.sock",
            "a unix socket",
            &["--tlscacert"],
        ),
        (
            "docker+unix:///var/run/docker.sock",
            "Docker's API socket",
            &["--tlscacert", "--tlsservername"],
        ),
        (
            "docker://",
            "Docker's API socket",
            &["--tlscert", "--tlskey"],
        ),
    ];
    for (addr, kind, flags) in table {
        let mut command = cargo_hive();
        command.args(["doctor", "--addr", addr]);
        for flag in *flags {
            command.args([flag, "/nonexistent/tls-file"]);
        }
        let result = timed(&mut command);
        let shown = if *addr == "docker://" {
            "`docker+unix://".to_owned()
        } else {
            format!("`{addr}` (from --addr)")
        };
        let named = flags.join(", ");
        assert_error(
            &result,
            &[&format!("TLS options ({named})"), &shown, kind, "tcp://"],
        );
    }
    // From BUILDKIT_HOST, the message says so.
    let result = timed(
        cargo_hive()
            .args(["doctor", "--tlscacert", "/nonexistent/ca.pem"])
            .env("BUILDKIT_HOST", "unix:///run/buildkit/buildkitd.sock"),
    );
    assert_error(&result, &["--tlscacert", "(from BUILDKIT_HOST)"]);
    // No address at all: auto-detection only finds local sockets.
    let result = timed(cargo_hive().args(["doctor", "--tlscacert", "/nonexistent/ca.pem"]));
    assert_error(&result, &["--tlscacert", "no BuildKit address is set"]);
}

/// The manifest's TLS keys beside its own unix `buildkit` contradict each other: an error naming the keys.
#[test]
fn manifest_tls_keys_with_its_own_socket_address_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\nmembers = []\n\n[workspace.metadata.hive]\nbuildkit = \"unix:///run/buildkit/buildkitd.sock\"\n\
         tlscacert = \"ca.pem\"\ntlscert = \"cert.pem\"\n",
    )
    .unwrap();
    let result = timed(cargo_hive().arg("doctor").current_dir(dir.path()));
    assert_error(
        &result,
        &[
            "`tlscacert`, `tlscert` in [workspace.metadata.hive]",
            "Cargo.toml",
            "`unix:///run/buildkit/buildkitd.sock` (from `buildkit` in [workspace.metadata.hive]",
        ],
    );
}

/// The manifest's TLS keys are for its TCP daemon; `--addr` naming a local socket overrides that address, and the
/// keys are ignored with a warning.
#[test]
fn manifest_tls_keys_overridden_by_a_socket_flag_warn() {
    let addr = buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\nmembers = []\n\n[workspace.metadata.hive]\nbuildkit = \"tcp://buildkit.internal:1234\"\n\
         tlscacert = \"ca.pem\"\n",
    )
    .unwrap();
    let result = timed(
        cargo_hive()
            .args(["doctor", "--addr", &addr])
            .current_dir(dir.path()),
    );
    assert_eq!(result.code, 0, "{result:#?}");
    assert!(
        result.stderr.contains(&format!(
            "warning: TLS settings `tlscacert` in [workspace.metadata.hive] of {} are ignored: the BuildKit \
             address `{addr}` (from --addr)",
            dir.path().join("Cargo.toml").display()
        )),
        "{result:#?}"
    );
}

/// `cargo hive build` says so too, before cargo compiles anything, and writes nothing.
#[test]
fn build_with_tls_flags_and_a_socket_address_fails_before_compiling() {
    let fixture = Fixture::example("hello");
    let addr = buildkit_addr();
    let result = timed(fixture.build_at(&addr).args([
        "--tlscacert",
        "/nonexistent/ca.pem",
        "--progress",
        "plain",
    ]));
    fixture.assert_fails(&result, &["TLS options (--tlscacert)", &addr]);
    assert!(
        !fixture.target().join("debug").exists(),
        "cargo ran before the bad connection settings were reported"
    );
}

/// A build whose manifest holds TLS keys for another daemon warns and builds against the `--addr` socket.
#[test]
fn build_warns_about_manifest_tls_keys_it_ignores() {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "[workspace]\n",
        "[workspace]\n\n[workspace.metadata.hive]\ntlscacert = \"ca.pem\"\n",
    );
    let result = timed(fixture.build().args(["--progress", "plain"]));
    assert_eq!(result.code, 0, "{result:#?}");
    assert!(
        result
            .stderr
            .contains("warning: TLS settings `tlscacert` in [workspace.metadata.hive]"),
        "{result:#?}"
    );
}

/// Something that is not BuildKit on the other end (an HTTP/1.1 server, random bytes) is said in words, for doctor
/// and build; the transport's own wording shows with `-v` only.
#[test]
fn a_peer_that_is_not_buildkit_is_named_as_such() {
    const HTTP: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const RANDOM: &[u8] =
        b"\x13\x37\xfe\xed garbage that is not an HTTP/2 frame \x00\x01\x02\x03\x04\x05\x06";
    for reply in [HTTP, RANDOM] {
        let addr = format!("tcp://127.0.0.1:{}", fakes::junk_tcp_port(reply));
        let expected = format!("{addr} did not answer as BuildKit (it is not a gRPC/HTTP2 server)");
        let result = timed(cargo_hive().args(["doctor", "--addr", &addr]));
        assert_error(&result, &[&expected]);
        for raw in ["tonic::", "transport error", "h2 protocol", "Error("] {
            assert!(!result.stderr.contains(raw), "{raw:?} in {result:#?}");
        }
        let verbose = timed(cargo_hive().args(["doctor", "-v", "--addr", &addr]));
        assert_error(&verbose, &[&expected, "the transport said: "]);

        let fixture = Fixture::example("hello");
        let result = timed(fixture.build_at(&addr).args(["--progress", "plain"]));
        fixture.assert_fails(&result, &[&expected]);
        assert!(!result.stderr.contains("tonic::"), "{result:#?}");
    }
}

/// A daemon that goes away mid-build (a proxy in front of the real one cuts every connection while the image's
/// files are on their way) is reported in words, naming the image; nothing is left half-written.
#[test]
fn a_connection_lost_mid_build_is_said_in_words() {
    let fixture = fixture::hello_with_noise_file(64);
    // Well past the requests that start the build, well before the 64 MiB file is through.
    let port = fakes::cutting_front_for_docker(&docker_socket(), 8 * 1024 * 1024);
    let addr = format!("tcp://127.0.0.1:{port}");
    let result = timed(fixture.build_at(&addr).args(["--progress", "plain"]));
    fixture.assert_fails(
        &result,
        &[&format!(
            "image `hello`: the connection to BuildKit at {addr} was lost while the image was building"
        )],
    );
    for raw in ["tonic::", "transport error", "h2 protocol", "http2 error"] {
        assert!(!result.stderr.contains(raw), "{raw:?} in {result:#?}");
    }
    // With -v the transport's own words follow.
    let port = fakes::cutting_front_for_docker(&docker_socket(), 8 * 1024 * 1024);
    let addr = format!("tcp://127.0.0.1:{port}");
    let result = timed(fixture.build_at(&addr).args(["-v", "--progress", "plain"]));
    fixture.assert_fails(
        &result,
        &[
            "was lost while the image was building",
            "; the transport said: ",
        ],
    );
    // The daemon may keep a half-received layer from the cut builds, which it cannot resume from the session:
    // the next build, with the connection intact, still makes the image.
    let result = fixture::succeed(fixture.build().args(["--progress", "plain"]));
    let (_, _, manifest) = fixture::OciArchive::open(&fixture.archive("hello")).manifest();
    let top = &manifest["layers"].as_array().unwrap().last().unwrap()["size"];
    // 64 MiB of noise does not compress: the image's own layer holds all of it.
    assert!(
        top.as_u64().unwrap() >= 64 * 1024 * 1024,
        "{top} {result:#?}"
    );
}

/// Runs `openssl` (as a user making certificates by hand would) and returns its stdout.
fn openssl(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is installed");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
    output.stdout
}

/// A P-256 key and an X.509 v1 certificate for `cn`, signed by the test CA: what `openssl x509 -req` makes
/// without `-extfile`. Returns (certificate, key).
fn v1_certificate(pki: &Pki, dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let path = |suffix: &str| dir.join(format!("{name}{suffix}")).display().to_string();
    let (cert, key, csr) = (path(".pem"), path("-key.pem"), path(".csr"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &key,
    ]);
    let subject = format!("/CN={cn}");
    openssl(&["req", "-new", "-key", &key, "-subj", &subject, "-out", &csr]);
    let (ca, ca_key) = (
        pki.ca.display().to_string(),
        pki.ca_key.display().to_string(),
    );
    let serial = path(".srl");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAserial",
        &serial,
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &cert,
    ]);
    let text = String::from_utf8(openssl(&["x509", "-in", &cert, "-noout", "-text"])).unwrap();
    assert!(
        text.contains("Version: 1 (0x0)"),
        "not a v1 certificate:\n{text}"
    );
    (PathBuf::from(cert), PathBuf::from(key))
}

/// Mutual TLS with a client certificate without v3 extensions works, as with buildctl against buildkitd: the
/// daemon (Go-like, behind the TLS front) requires exactly that certificate.
#[test]
fn a_v1_client_certificate_is_accepted_as_buildctl_accepts_it() {
    buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let (cert, key) = v1_certificate(&pki, dir.path(), "client-v1", "hive-client");
    let cert_der = openssl(&[
        "x509",
        "-in",
        &cert.display().to_string(),
        "-outform",
        "DER",
    ]);
    let spki = openssl(&[
        "pkey",
        "-in",
        &key.display().to_string(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    let config = pki.go_like_server_config(Some((cert_der, spki)));
    let addr = format!(
        "tcp://127.0.0.1:{}",
        fakes::tls_front_with_config(config, &docker_socket())
    );
    let result = timed(
        cargo_hive()
            .args(["doctor", "--format", "json", "--addr", &addr])
            .args(["--tlsservername", "buildkit.test", "--tlscacert"])
            .arg(&pki.ca)
            .arg("--tlscert")
            .arg(&cert)
            .arg("--tlskey")
            .arg(&key),
    );
    assert_eq!(result.code, 0, "{result:#?}");
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap();
    assert_eq!(report["ready"], true, "{report:#}");
    assert_eq!(report["endpoint"]["live_check"]["ok"], true, "{report:#}");

    // The key must still belong to the certificate: checked before connecting, naming both files.
    let (_, other_key) = v1_certificate(&pki, dir.path(), "other", "other");
    let result = timed(
        cargo_hive()
            .args(["doctor", "--addr", &addr, "--tlscacert"])
            .arg(&pki.ca)
            .arg("--tlscert")
            .arg(&cert)
            .arg("--tlskey")
            .arg(&other_key),
    );
    assert_error(
        &result,
        &[
            &format!("--tlskey file {}", other_key.display()),
            &format!("does not belong to the certificate in {}", cert.display()),
        ],
    );
}

/// A daemon that refuses a v1 client certificate (rustls-based servers do): the message names --tlscert and how to
/// make a v3 one.
#[test]
fn a_v1_client_certificate_refused_by_the_daemon_is_named() {
    buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let (cert, key) = v1_certificate(&pki, dir.path(), "client-v1", "hive-client");
    let port = fakes::tls_front_for_docker(&pki, &docker_socket(), true);
    let addr = format!("tcp://127.0.0.1:{port}");
    let result = timed(
        cargo_hive()
            .args([
                "doctor",
                "--addr",
                &addr,
                "--tlsservername",
                "buildkit.test",
            ])
            .arg("--tlscacert")
            .arg(&pki.ca)
            .arg("--tlscert")
            .arg(&cert)
            .arg("--tlskey")
            .arg(&key),
    );
    assert_error(
        &result,
        &[
            &format!("TLS to {addr} failed"),
            &format!("the --tlscert file {}", cert.display()),
            "X.509 v1",
            "-extfile",
            "extendedKeyUsage=clientAuth",
        ],
    );
}

/// A daemon certificate without v3 extensions cannot be accepted (webpki verifies only v3, and a custom verifier
/// is no option): the message blames the daemon's certificate, not ours, and says how to make a v3 one.
#[test]
fn a_v1_daemon_certificate_is_named_with_the_fix() {
    buildkit_addr();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "buildkit.test");
    let (cert, key) = v1_certificate(&pki, dir.path(), "server-v1", "buildkit.test");
    std::fs::copy(&cert, &pki.server_cert).unwrap();
    std::fs::copy(&key, &pki.server_key).unwrap();
    let config = pki.go_like_server_config(None);
    let addr = format!(
        "tcp://127.0.0.1:{}",
        fakes::tls_front_with_config(config, &docker_socket())
    );
    let result = timed(
        cargo_hive()
            .args([
                "doctor",
                "--addr",
                &addr,
                "--tlsservername",
                "buildkit.test",
            ])
            .arg("--tlscacert")
            .arg(&pki.ca),
    );
    assert_error(
        &result,
        &[
            &format!("TLS to {addr} failed"),
            "the daemon's certificate (buildkitd's own --tlscert) is an X.509 v1 certificate",
            "subjectAltName=DNS:",
            "extendedKeyUsage=serverAuth",
        ],
    );
    assert!(!result.stderr.contains("--tlscert file"), "{result:#?}");
}
