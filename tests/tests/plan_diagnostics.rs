//! The bad-input corpus: every workspace under `tests/fixtures/bad/` must make `cargo hive plan` exit 1, without a
//! panic, with exactly the diagnostics of its insta snapshot `expected.snap` (colour off, paths relative). Each
//! directory is a test of its own, named after it; one without a snapshot fails. Each case runs in a copy in a
//! temporary directory, so nothing is written into the repository and git values are absent.
//! `cargo insta review` (or `INSTA_UPDATE=always`) updates the snapshots after an intended change.

use std::path::{Path, PathBuf};

use hive_e2e::{Run, cargo_hive, run, workspace_root};
use libtest_mimic::{Arguments, Failed, Trial};

/// The path fixtures use for their `hive-build` build-dependency, valid inside the repository.
const HIVE_BUILD_PATH: &str = "../../../../hive-build";

/// The file of a case's expected diagnostics, beside its `Cargo.toml`.
const SNAPSHOT: &str = "expected";

fn copy_fixture(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_fixture(&entry.path(), &target);
        } else if entry.path().extension().is_some_and(|ext| ext == "snap") {
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

/// Every directory of the corpus: a directory is a case, whatever it holds.
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
        // One target dir per case: cases run in parallel, and cargo names a build script's `OUT_DIR` after the
        // package alone, so two `server` packages in one target dir would read each other's declarations.
        .env(
            "CARGO_TARGET_DIR",
            workspace_root()
                .join("target")
                .join("hive-fixtures")
                .join(case.file_name().unwrap()),
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

/// One case: exit 1, no panic, nothing on stdout, the snapshot's diagnostics, and a place in the manifest.
fn check_case(case: &Path) -> Result<(), Failed> {
    if !case.join("Cargo.toml").is_file() {
        return Err("a case needs a Cargo.toml".into());
    }
    let Run {
        code,
        stdout,
        stderr,
    } = run_case(case);
    if code != 1 || stderr.contains("panicked") || !stdout.is_empty() {
        return Err(format!("exit {code}, stdout {stdout:?}\n{stderr}").into());
    }
    // Diagnostics about a manifest name the file, line and column.
    if !case.join("build.rs").exists() && !stderr.contains("Cargo.toml:") {
        return Err(format!("no `Cargo.toml:line:column` in\n{stderr}").into());
    }
    insta::with_settings!({
        snapshot_path => case,
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(SNAPSHOT, stderr);
    });
    Ok(())
}

fn main() {
    let cases = cases();
    let mut trials = vec![Trial::test("corpus_has_at_least_25_cases", {
        let count = cases.len();
        move || {
            if count >= 25 {
                Ok(())
            } else {
                Err(format!("the corpus has {count} cases, fewer than 25").into())
            }
        }
    })];
    trials.extend(cases.into_iter().map(|case| {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        Trial::test(name, move || check_case(&case))
    }));
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
