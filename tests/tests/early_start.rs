//! The cargo build the last build ran is started again before the plan is known, while `cargo metadata` reads the
//! workspace (when stderr is not a terminal, as here): the build uses it when the plan asks for the same run, and
//! kills it unseen when the plan asks for another.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hive_e2e::fixture::*;

/// A cargo that counts its `build` runs in `<dir>/runs`, then is the real one.
fn counting_cargo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let real = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let script = dir.join("cargo");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = build ] && echo \"$*\" >> {}/runs\nexec {real} \"$@\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn builds(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_last_cargo_run_starts_early_and_is_used_only_when_the_plan_asks_for_it() {
    let fixture = Fixture::example("workspace");
    let counter = fixture.scratch("cargo-runs");
    let cargo = counting_cargo(&counter);
    let build = |image: &str| {
        succeed(
            fixture
                .build()
                .env("CARGO", &cargo)
                .args(["--image", image]),
        )
    };

    build("api");
    assert_eq!(builds(&counter).len(), 1, "nothing to start early yet");

    // The same run again: started early and used, so cargo built once.
    build("api");
    let runs = builds(&counter);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0], runs[1]);

    // Another image: the early run (api's) is killed, the plan's own runs, and nothing of the first is shown.
    let other = build("worker");
    let runs = builds(&counter);
    assert_eq!(runs.len(), 4, "{runs:#?}");
    assert_eq!(runs[2], runs[0], "the early run is the last build's");
    assert_ne!(runs[3], runs[0]);
    assert!(runs[3].contains("--package worker"), "{runs:#?}");
    assert!(!other.stderr.contains("error"), "{other:#?}");
    assert!(fixture.archive("worker").is_file(), "{other:#?}");
}
