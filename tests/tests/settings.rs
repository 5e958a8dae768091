//! The manifest's connection keys are read once, with the rest of the manifest: `build` and `doctor` see the same
//! value, and a mistake in one points at its line, whichever command reads it.

use hive_e2e::fixture::Fixture;
use hive_e2e::{buildkit_addr, cargo_hive, run};

/// A hello workspace whose `[workspace.metadata.hive]` has `line`.
fn hello_with_workspace_key(line: &str) -> Fixture {
    let fixture = Fixture::example("hello");
    fixture.edit(
        "Cargo.toml",
        "[workspace]\n",
        &format!("[workspace]\n\n[workspace.metadata.hive]\n{line}\n"),
    );
    fixture
}

#[test]
fn a_bad_address_in_the_manifest_points_at_its_line_for_build_and_doctor() {
    let fixture = hello_with_workspace_key("buildkit = \"gopher://buildkit.internal:1234\"");
    let build = run(fixture.build().args(["--progress", "plain"]));
    fixture.assert_fails(
        &build,
        &[
            "hive::invalid-buildkit-address",
            "unknown scheme `gopher://`",
            "Cargo.toml:",
        ],
    );
    let doctor = run(cargo_hive()
        .args(["doctor", "--addr", &buildkit_addr()])
        .current_dir(fixture.root()));
    assert_eq!(doctor.code, 1, "{doctor:#?}");
    assert!(!doctor.stderr.contains("panicked"), "{doctor:#?}");
    for needle in [
        "hive::invalid-buildkit-address",
        "Cargo.toml:",
        "1 error in the image definitions",
    ] {
        assert!(doctor.stderr.contains(needle), "{needle:?}: {doctor:#?}");
    }
}

#[test]
fn doctor_reads_the_connection_keys_only() {
    // Broken image definitions are `build`'s and `plan`'s business, not the daemon's.
    let fixture = hello_with_workspace_key(&format!("buildkit = \"{}\"", buildkit_addr()));
    fixture.set_image_keys("Cargo.toml", "hello", "tags = 3");
    let doctor = run(cargo_hive()
        .args(["doctor", "--format", "json"])
        .env_remove("BUILDKIT_HOST")
        .current_dir(fixture.root()));
    assert_eq!(doctor.code, 0, "{doctor:#?}");
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    assert_eq!(report["endpoint"]["origin"], "manifest", "{doctor:#?}");
    let plan = run(cargo_hive().arg("plan").current_dir(fixture.root()));
    assert_eq!(plan.code, 1, "{plan:#?}");
    assert!(plan.stderr.contains("must be an array"), "{plan:#?}");
}
