//! The bad-input corpus: every workspace under `tests/fixtures/bad/` must make `cargo hive plan` exit 1, without a
//! panic, with exactly the diagnostics in its `expected.txt` (colour off, paths relative). Each case runs in a copy in
//! a temporary directory, so nothing is written into the repository and git values are absent.
//! `HIVE_BLESS=1` rewrites the expected files.

use std::path::{Path, PathBuf};

use hive_e2e::{Run, cargo_hive, run, workspace_root};

/// The path fixtures use for their `hive-build` build-dependency, valid inside the repository.
const HIVE_BUILD_PATH: &str = "../../../../hive-build";

fn copy_fixture(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_fixture(&entry.path(), &target);
        } else if entry.file_name() == "expected.txt" {
            continue;
        } else if entry.file_name() == "Cargo.toml" {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let hive_build = workspace_root().join("hive-build");
            std::fs::write(
                &target,
                text.replace(HIVE_BUILD_PATH, &hive_build.display().to_string()),
            )
            .unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn cases() -> Vec<PathBuf> {
    let dir = workspace_root().join("tests").join("fixtures").join("bad");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

fn run_case(case: &Path) -> Run {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("ws");
    copy_fixture(case, &dir);
    if dir.join("build.rs").exists() {
        // The repository's lock file pins what hive-build needs; cargo prunes the rest.
        std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let mut command = cargo_hive();
    command
        .current_dir(&dir)
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target").join("hive-fixtures"),
        )
        .env_remove("HIVE_GIT_SHA")
        .env_remove("HIVE_GIT_BRANCH")
        .env_remove("HIVE_FIXTURE_UNSET")
        // A fixture outside any repository: git must not find one above the temporary directory.
        .env("GIT_CEILING_DIRECTORIES", temp.path())
        .args(["--quiet", "plan"]);
    let mut result = run(&mut command);
    result.stderr = result
        .stderr
        .replace(&dir.display().to_string(), "[fixture]");
    result
}

#[test]
fn bad_inputs_are_diagnosed() {
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "the corpus has {} cases, fewer than 25",
        cases.len()
    );
    let bless = std::env::var_os("HIVE_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let Run {
            code,
            stdout,
            stderr,
        } = run_case(case);
        if code != 1 || stderr.contains("panicked") || !stdout.is_empty() {
            failures.push(format!("{name}: exit {code}, stdout {stdout:?}\n{stderr}"));
            continue;
        }
        let expected_path = case.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stderr != expected {
            failures.push(format!("{name}: stderr differs from expected.txt\n--- expected\n{expected}\n--- actual\n{stderr}"));
        }
        // Diagnostics about a manifest name the file, line and column.
        if !case.join("build.rs").exists() && !stderr.contains("Cargo.toml:") {
            failures.push(format!("{name}: no `Cargo.toml:line:column` in\n{stderr}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (HIVE_BLESS=1 rewrites expected.txt):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
