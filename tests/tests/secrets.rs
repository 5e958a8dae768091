//! Build secrets: `plan` and `--dry-run` show where a secret is read from, never its value; a secret that cannot be
//! read stops the build before the daemon hears of it; and a secret a RUN step mounts appears nowhere: no layer, no
//! config, no history entry, no progress line (plain or JSON), no output of `plan` or `--dry-run`, no error.

use std::path::Path;

use hive_build::plan::Plan;
use hive_e2e::fixture::{Fixture, OciArchive, gunzip, succeed};
use hive_e2e::{Run, assert_error, cargo_hive, run, tar_members};

/// The value every test hides: long and unlikely enough that finding it anywhere is a leak.
const VALUE: &str = "hive-secret-value-7c1e9a52d4";
/// A second value, in a file.
const FILE_VALUE: &str = "hive-secret-file-value-b83f01";
/// The variable the secret `token` is read from.
const VARIABLE: &str = "HIVE_E2E_SECRET_TOKEN";

/// The hello example with a workspace-level env secret and an image-level file secret (relative to the manifest).
fn fixture_with_secrets() -> Fixture {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "[workspace]\n",
        &format!("[workspace]\n\n[workspace.metadata.hive]\nsecrets = {{ token = {{ env = \"{VARIABLE}\" }} }}\n"),
    );
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        "secrets = { netrc = { file = \"secrets/netrc\" } }",
    );
    std::fs::create_dir(fixture.root().join("secrets")).unwrap();
    std::fs::write(fixture.root().join("secrets/netrc"), FILE_VALUE).unwrap();
    fixture
}

fn plan(fixture: &Fixture, format: &str) -> Run {
    let mut command = cargo_hive();
    command
        .current_dir(fixture.root())
        .env("CARGO_TARGET_DIR", fixture.target())
        .env(VARIABLE, VALUE)
        .args(["--quiet", "plan", "--format", format]);
    succeed(&mut command)
}

/// Neither value anywhere in `text`.
fn assert_hidden(what: &str, text: &str) {
    assert!(
        !text.contains(VALUE),
        "the secret's value is in {what}:\n{text}"
    );
    assert!(
        !text.contains(FILE_VALUE),
        "the secret file's content is in {what}:\n{text}"
    );
}

#[test]
fn plan_shows_where_secrets_come_from_never_their_values() {
    let fixture = fixture_with_secrets();
    let human = plan(&fixture, "human");
    assert_hidden("`plan`", &format!("{}{}", human.stdout, human.stderr));
    let rows: Vec<Vec<&str>> = (human.stdout.lines())
        .filter(|line| line.trim_start().starts_with("secret "))
        .map(|line| line.split_whitespace().take(5).collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["secret", "netrc", "←", "file", "secrets/netrc"],
            vec!["secret", "token", "←", "env", VARIABLE],
        ],
        "{}",
        human.stdout
    );

    let json = plan(&fixture, "json");
    assert_hidden("`plan --format json`", &json.stdout);
    let plan: Plan = serde_json::from_str(&json.stdout).unwrap();
    let secrets = serde_json::to_value(&plan.images[0].secrets).unwrap();
    let netrc = fixture.root().join("secrets/netrc");
    assert_eq!(
        secrets,
        serde_json::json!({
            "netrc": { "file": netrc.display().to_string() },
            "token": { "env": VARIABLE },
        })
    );
}

#[test]
fn dry_run_shows_no_secret_value() {
    let fixture = fixture_with_secrets();
    let result = succeed(
        fixture
            .build_at("unix:///nonexistent.sock")
            .env(VARIABLE, VALUE)
            .arg("--dry-run"),
    );
    assert_hidden(
        "`--dry-run`",
        &format!("{}{}", result.stdout, result.stderr),
    );
}

#[test]
fn an_unset_variable_fails_before_the_daemon_naming_the_secret_and_variable() {
    let fixture = fixture_with_secrets();
    // No daemon at this address: the error must be the secret's, found before connecting (and before cargo).
    let result = run(fixture
        .build_at("unix:///nonexistent.sock")
        .env_remove(VARIABLE));
    assert_error(
        &result,
        &[
            "the secret `token` of image `hello`",
            &format!("the environment variable `{VARIABLE}`, which is not set"),
        ],
    );
    assert!(!result.stderr.contains("nonexistent.sock"), "{result:#?}");
    assert!(!result.stderr.contains("Compiling"), "{result:#?}");
    assert_eq!(fixture.outputs(), Vec::<String>::new());
}

#[test]
fn an_unreadable_file_fails_before_the_daemon_naming_the_secret_and_file() {
    let fixture = fixture_with_secrets();
    std::fs::remove_file(fixture.root().join("secrets/netrc")).unwrap();
    let result = run(fixture
        .build_at("unix:///nonexistent.sock")
        .env(VARIABLE, VALUE));
    let netrc = fixture.root().join("secrets/netrc");
    assert_error(
        &result,
        &[
            "the secret `netrc` of image `hello`",
            &format!("{}, which could not be read", netrc.display()),
        ],
    );
    assert_hidden("the error", &result.stderr);
}

/// Every blob of an OCI archive (layers decompressed and unpacked, configs with their history): none holds either
/// value.
fn assert_archive_hides_values(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    for (name, content) in tar_members(&bytes) {
        let text = String::from_utf8_lossy(&content);
        assert_hidden(&format!("archive member {name}"), &text);
    }
    let archive = OciArchive::open(path);
    let config = archive.config();
    assert_hidden("the config and its history", &config.to_string());
    for layer in archive.layers() {
        let unpacked = gunzip(&archive.blob_bytes(&layer));
        for (name, content) in tar_members(&unpacked) {
            assert_hidden(
                &format!("file {name} of layer {layer}"),
                &String::from_utf8_lossy(&content),
            );
        }
    }
}

/// The hello example on busybox (musl, static), with a step that reads the secret `token`.
fn fixture_with_a_secret_step(command: &str) -> Fixture {
    fixture_with_step(&format!(
        "{{ command = \"{command}\", secrets = [\"token\"] }}"
    ))
}

/// The hello example on busybox (musl, static), with one RUN step: `step`, a TOML table.
fn fixture_with_step(step: &str) -> Fixture {
    let fixture = fixture_with_secrets();
    fixture.edit(
        "Cargo.toml",
        "base = \"localhost:5000/hive/glibc\"",
        &format!(
            "base = \"localhost:5000/hive/busybox\"\ntargets = {{ \"linux/amd64\" = \"{}-unknown-linux-musl\" }}\n\
             run = [{step}]",
            std::env::consts::ARCH
        ),
    );
    fixture
}

/// The fixture built with the secret's variable set and plain progress, which must not show its value.
fn plain_build_hiding_the_value(fixture: &Fixture) -> hive_e2e::Run {
    let built =
        succeed(
            fixture
                .build()
                .env(VARIABLE, VALUE)
                .args(["--no-cache", "--progress", "plain"]),
        );
    assert_hidden(
        "plain progress",
        &format!("{}{}", built.stdout, built.stderr),
    );
    built
}

#[test]
fn secret_used_by_a_step_leaks_nowhere() {
    let fixture = fixture_with_a_secret_step(
        "cat /run/secrets/token > /dev/null && test -s /run/secrets/token",
    );
    plain_build_hiding_the_value(&fixture);
    assert_archive_hides_values(&fixture.archive("hello"));

    let json =
        succeed(
            fixture
                .build()
                .env(VARIABLE, VALUE)
                .args(["--no-cache", "--progress", "json"]),
        );
    assert_hidden("JSON progress", &format!("{}{}", json.stdout, json.stderr));
    assert_archive_hides_values(&fixture.archive("hello"));

    for format in ["human", "json"] {
        let planned = plan(&fixture, format);
        assert_hidden("`plan`", &format!("{}{}", planned.stdout, planned.stderr));
    }
    let dry_run = succeed(fixture.build().env(VARIABLE, VALUE).arg("--dry-run"));
    assert_hidden(
        "`--dry-run`",
        &format!("{}{}", dry_run.stdout, dry_run.stderr),
    );
}

#[test]
fn a_failing_step_using_a_secret_shows_no_value() {
    // The step reads the secret and fails: its error (last lines, exit code) must not carry the value.
    let fixture = fixture_with_a_secret_step("test -s /run/secrets/token && exit 3");
    for progress in ["plain", "json"] {
        let result =
            run(fixture
                .build()
                .env(VARIABLE, VALUE)
                .args(["--no-cache", "--progress", progress]));
        assert_error(&result, &[]);
        assert_hidden(
            &format!("a failed build's output ({progress})"),
            &format!("{}{}", result.stdout, result.stderr),
        );
    }
}

#[test]
fn a_build_with_declared_secrets_puts_none_of_them_in_the_image() {
    // Today's images have no steps: a build with secrets declared succeeds and nothing of them reaches the image.
    let fixture = fixture_with_secrets();
    let result = succeed(
        fixture
            .build()
            .env(VARIABLE, VALUE)
            .args(["--progress", "plain"]),
    );
    assert_hidden(
        "plain progress",
        &format!("{}{}", result.stdout, result.stderr),
    );
    assert_archive_hides_values(&fixture.archive("hello"));
}

/// A step that asks for the secret as an environment variable gets its value there (the same as the mounted
/// file), and the value is still nowhere in the image, its config or the progress.
#[test]
fn a_secret_as_an_environment_variable_reaches_the_step_only() {
    let fixture = fixture_with_step(
        "{ command = 'test \"$TOKEN\" = \"$(cat /run/secrets/token)\" && echo ${#TOKEN} > /token-length', \
         secrets = [\"token\"], secret-env = { TOKEN = \"token\" } }",
    );
    let built = plain_build_hiding_the_value(&fixture);
    let archive = fixture.archive("hello");
    assert_archive_hides_values(&archive);
    // The step saw the value: its length is in the image (the value itself is not).
    let length = (OciArchive::open(&archive).file("/token-length"))
        .map(|content| String::from_utf8_lossy(&content).trim().to_owned());
    assert_eq!(length, Some(VALUE.len().to_string()), "{built:#?}");
    let planned = plan(&fixture, "human");
    assert!(
        planned.stdout.contains("[secret token as $TOKEN]"),
        "{}",
        planned.stdout
    );
}
