//! Registry credentials end to end: a broken Docker config or credential helper answer fails the build with a
//! message naming the file or helper and the key, never any part of the credential (in every progress mode, with
//! `-vv`, through the daemon's build error and through Docker's push API), and a helper that never answers is asked
//! once per registry for the whole build, with one bounded wait.
//!
//! Every build pushes to the registry on 5001, which wants a login: its 401 is what makes BuildKit ask the session
//! for credentials (the plain registry on 5000 never does).

use std::path::{Path, PathBuf};

use hive_e2e::fixture::*;
use hive_e2e::{docker, run};

/// Digits that stand for a secret: no message may contain them.
const SECRET_NUMBER: &str = "73195028461937";

/// Docker 20.10, whose pushes go through Docker's API with `X-Registry-Auth` rather than BuildKit's session.
const DOCKER20: &str = "docker+unix:///var/run/hive-docker20.sock";

/// The login registry's password, which must exist for these tests to mean anything.
fn auth_registry_password() -> String {
    let password = std::fs::read_to_string(AUTH_PASSWORD_FILE).unwrap_or_else(|err| {
        panic!("{AUTH_PASSWORD_FILE}: {err}: run `scripts/buildkit-up` first")
    });
    let password = password.trim().to_owned();
    assert!(!password.is_empty());
    password
}

/// A copy of hello whose image goes to the login registry; the guard removes what Docker kept of it.
fn hello_for_the_login_registry(name: &str) -> (Fixture, LocalImages) {
    Fixture::hello_in(&unique_repository(&format!("{AUTH_REGISTRY}/e2e/{name}")))
}

/// Writes the fixture's Docker config.
fn write_docker_config(fixture: &Fixture, config: &serde_json::Value) -> PathBuf {
    let path = fixture.scratch("docker-config").join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// Writes `docker-credential-<name>` into a dir of the fixture and returns a `PATH` that finds it first.
fn fake_helper(fixture: &Fixture, name: &str, script: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = fixture.scratch("helpers");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

/// One way of breaking the credentials for the login registry, with what may never be printed and what the
/// error must say.
struct Variant {
    what: &'static str,
    config: serde_json::Value,
    /// A `(name, script)` credential helper.
    helper: Option<(&'static str, String)>,
    secrets: Vec<String>,
    needles: Vec<String>,
}

fn variants(config_path: &Path) -> Vec<Variant> {
    let password = auth_registry_password();
    let entry = format!("`auths.\"{AUTH_REGISTRY}\"");
    let user_pass = base64(format!("hive:{password}").as_bytes());
    vec![
        Variant {
            what: "a password that is a number",
            config: serde_json::json!({"auths": {AUTH_REGISTRY: {
                "username": "hive",
                "password": SECRET_NUMBER.parse::<u64>().unwrap(),
            }}}),
            helper: None,
            secrets: vec![SECRET_NUMBER.to_owned()],
            needles: vec![format!(
                "{entry}.password` in {} must be a string, not a number",
                config_path.display()
            )],
        },
        Variant {
            what: "an auths entry that is a bare string",
            config: serde_json::json!({"auths": {AUTH_REGISTRY: user_pass}}),
            helper: None,
            secrets: vec![user_pass.clone(), password.clone()],
            needles: vec![format!(
                "{entry}` in {} must be an object, not a string",
                config_path.display()
            )],
        },
        Variant {
            what: "a credential helper whose Secret is a number",
            config: serde_json::json!({"credHelpers": {AUTH_REGISTRY: "hive-numeric"}}),
            helper: Some((
                "hive-numeric",
                format!(
                    "#!/bin/sh\ncat >/dev/null\nprintf '{{\"Username\":\"hive\",\"Secret\":{SECRET_NUMBER}}}'\n"
                ),
            )),
            secrets: vec![SECRET_NUMBER.to_owned()],
            needles: vec![
                "credential helper docker-credential-hive-numeric".to_owned(),
                format!("answered for {AUTH_REGISTRY} with `Secret` as a number, not a string"),
            ],
        },
    ]
}

/// Builds with each broken variant in `modes` against `addr`: every build fails with the key named and nothing
/// of the secret anywhere in its output.
fn no_secret_in_any_message(addr: &str, modes: &[&[&str]]) {
    for mode in modes {
        let (fixture, _cleanup) = hello_for_the_login_registry("hello-secret");
        let config_path = fixture.scratch("docker-config").join("config.json");
        for variant in variants(&config_path) {
            write_docker_config(&fixture, &variant.config);
            let mut command = fixture.build_at(addr);
            command.arg("--push").args(*mode);
            if let Some((name, script)) = &variant.helper {
                command.env("PATH", fake_helper(&fixture, name, script));
            }
            let result = run(&mut command);
            for secret in &variant.secrets {
                assert!(
                    !result.stdout.contains(secret.as_str())
                        && !result.stderr.contains(secret.as_str()),
                    "{} with {mode:?} printed the secret:\n{}\n{}",
                    variant.what,
                    result.stdout,
                    result.stderr
                );
            }
            let needles: Vec<&str> = variant.needles.iter().map(String::as_str).collect();
            fixture.assert_fails(&result, &needles);
        }
    }
}

/// Through BuildKit's session (Docker 26 with the containerd store pushes itself): the error comes back from the
/// daemon as the push's error.
#[test]
fn broken_credentials_are_never_quoted_through_the_session() {
    no_secret_in_any_message(
        &hive_e2e::buildkit_addr(),
        &[
            &["--progress", "tty"],
            &["--progress", "plain"],
            &["--progress", "json"],
            &["--progress", "plain", "-vv"],
            &["--progress", "json", "-vv"],
        ],
    );
}

/// Through Docker's push API (Docker 20.10 has no containerd store: cargo hive reads the credentials itself and
/// sends them in `X-Registry-Auth`).
#[test]
fn broken_credentials_are_never_quoted_through_docker_push() {
    let path = DOCKER20.strip_prefix("docker+unix://").unwrap();
    assert!(
        std::os::unix::net::UnixStream::connect(path).is_ok(),
        "no Docker 20.10 at {DOCKER20}: run `scripts/buildkit-up --docker20` first"
    );
    no_secret_in_any_message(
        DOCKER20,
        &[&["--progress", "plain", "-vv"], &["--progress", "json"]],
    );
}

/// A helper that prints half an answer and fails: its output may hold the secret, so it is not quoted.
#[test]
fn a_failing_helper_output_is_not_quoted() {
    let (fixture, _cleanup) = hello_for_the_login_registry("hello-helper-fails");
    write_docker_config(&fixture, &serde_json::json!({"credsStore": "hive-broken"}));
    let path = fake_helper(
        &fixture,
        "hive-broken",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nprintf '{{\"Secret\":\"{SECRET_NUMBER}'\n\
             echo \"cannot decode {SECRET_NUMBER}\" >&2\nexit 1\n"
        ),
    );
    let result =
        run(fixture
            .build()
            .env("PATH", path)
            .args(["--push", "--progress", "plain", "-vv"]));
    assert!(
        !result.stdout.contains(SECRET_NUMBER) && !result.stderr.contains(SECRET_NUMBER),
        "{result:#?}"
    );
    fixture.assert_fails(
        &result,
        &[&format!(
            "credential helper docker-credential-hive-broken failed for {AUTH_REGISTRY}"
        )],
    );
}

/// Removes, when dropped, the images Docker keeps under a prefix (with the containerd store it keeps what failed
/// to push), listed then so that a failed test cleans up too.
struct ImagesUnder(String);

impl Drop for ImagesUnder {
    fn drop(&mut self) {
        let listed = run(docker().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
        let names: Vec<String> = listed
            .stdout
            .lines()
            .filter(|name| name.starts_with(&self.0))
            .map(str::to_owned)
            .collect();
        drop(LocalImages(names));
    }
}

/// A helper that never answers: asked once for the whole build (four images, each with its own session, and
/// BuildKit asking again after each failure), killed after one bounded wait, and named in the error.
#[test]
fn a_helper_that_never_answers_is_asked_once_per_build() {
    let registry = unique_repository(&format!("{AUTH_REGISTRY}/e2e/stuck"));
    let _cleanup = ImagesUnder(format!("{registry}/"));
    let fixture = workspace_under(&registry);
    let counter = fixture.scratch("asked");
    write_docker_config(
        &fixture,
        &serde_json::json!({"credHelpers": {AUTH_REGISTRY: "hive-stuck"}}),
    );
    let path = fake_helper(
        &fixture,
        "hive-stuck",
        &format!(
            "#!/bin/sh\necho asked >> '{}'\nexec sleep 600\n",
            counter.display()
        ),
    );
    // Only a guard against a hang (three asks of 50 s each before the fix).
    let spawned =
        Spawned::start(
            fixture
                .build()
                .env("PATH", path)
                .args(["--push", "--progress", "plain"]),
        );
    let (status, stdout, stderr) = spawned.finish();
    let result = hive_e2e::Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    };
    fixture.assert_fails(
        &result,
        &[&format!(
            "credential helper docker-credential-hive-stuck did not answer for {AUTH_REGISTRY} within 20 s"
        )],
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        "asked\n",
        "the helper must be asked once"
    );
}
