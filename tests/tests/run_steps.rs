//! RUN steps end to end against the real daemon: a step's file in the image, below the binary's layer; a cache
//! mount that a second build finds; a failing step's exit code and span; Ctrl-C during a long step.
//!
//! The base is `localhost:5000/hive/glibc` (hello's own): busybox with `/bin/sh`, plus the loader the hello binary
//! needs. `localhost:5000/hive/busybox` has the same shell but no glibc, so a default (glibc) hello would be
//! refused on it before any step ran.

use std::collections::BTreeMap;

use hive_e2e::fixture::*;
use hive_e2e::{run, tar_members};

/// Every layer of the archive's image, bottom first, as its members by name.
fn layers(archive_path: &std::path::Path) -> Vec<BTreeMap<String, Vec<u8>>> {
    let archive = OciArchive::open(archive_path);
    let bytes = std::fs::read(archive_path).unwrap();
    let members: BTreeMap<String, Vec<u8>> = tar_members(&bytes).into_iter().collect();
    archive
        .layers()
        .iter()
        .map(|digest| {
            let blob = &members[&format!("blobs/sha256/{}", &digest["sha256:".len()..])];
            tar_members(&gunzip(blob)).into_iter().collect()
        })
        .collect()
}

/// The content of `path` (no leading `/`) in the topmost layer that has it.
fn file_in(layers: &[BTreeMap<String, Vec<u8>>], path: &str) -> Option<String> {
    layers
        .iter()
        .rev()
        .find_map(|layer| layer.get(path))
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

#[test]
fn a_step_writes_a_file_below_the_binary_layer() {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        r#"run = ["mkdir -p /etc/hive && echo installed > /etc/hive/marker", { command = ["/bin/sh", "-c", "echo $GREETING > /etc/hive/env; pwd > /etc/hive/pwd"], env = { GREETING = "hi" }, workdir = "/tmp" }]"#,
    );
    succeed(fixture.build().args(["--progress", "plain"]));
    let layers = layers(&fixture.archive("hello"));
    assert_eq!(
        file_in(&layers, "etc/hive/marker").as_deref(),
        Some("installed\n")
    );
    assert_eq!(file_in(&layers, "etc/hive/env").as_deref(), Some("hi\n"));
    assert_eq!(file_in(&layers, "etc/hive/pwd").as_deref(), Some("/tmp\n"));
    // The binary's layer is last and holds only our files; the steps' layers are below it.
    let last = layers.last().unwrap();
    assert!(
        last.contains_key("usr/local/bin/hello"),
        "{:?}",
        last.keys()
    );
    assert!(
        !last.keys().any(|name| name.starts_with("etc/")),
        "{:?}",
        last.keys()
    );
    let config = OciArchive::open(&fixture.archive("hello")).config();
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["created_by"].as_str())
        .filter(|by| by.starts_with("cargo hive"))
        .collect();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(
        history[0].starts_with("cargo hive: run /bin/sh -c mkdir"),
        "{history:?}"
    );
}

#[test]
fn a_cache_mount_is_found_by_the_next_build() {
    let fixture = Fixture::example("hello");
    // The step appends a line to the cache and records how many it finds; changing ROUND runs it again.
    let step = |round: u32| {
        format!(
            r#"run = [{{ command = "echo x >> /cache/log && wc -l < /cache/log > /count", env = {{ ROUND = "{round}" }}, cache = [{{ target = "/cache", sharing = "locked" }}] }}]"#
        )
    };
    fixture.set_image_keys("Cargo.toml", "hello", &step(1));
    succeed(&mut fixture.build());
    let first = file_in(&layers(&fixture.archive("hello")), "count").unwrap();
    fixture.edit("Cargo.toml", "ROUND = \"1\"", "ROUND = \"2\"");
    succeed(&mut fixture.build());
    let layers = layers(&fixture.archive("hello"));
    let second = file_in(&layers, "count").unwrap();
    let (first, second): (u32, u32) = (
        first.trim().parse().unwrap(),
        second.trim().parse().unwrap(),
    );
    assert_eq!(second, first + 1, "the second build did not find the cache");
    // The cache itself is never in the image.
    assert!(
        layers
            .iter()
            .all(|layer| !layer.keys().any(|name| name.starts_with("cache/")))
    );
}

#[test]
fn a_failing_step_shows_its_place_exit_code_and_last_lines() {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        r#"run = ["true", "echo early; echo late >&2; exit 3"]"#,
    );
    let result = run(&mut fixture.build());
    // The step is written on the line after the image's table header.
    let text = std::fs::read_to_string(fixture.root().join("Cargo.toml")).unwrap();
    let line = 1 + text
        .lines()
        .position(|line| line.starts_with("run = "))
        .unwrap();
    let column = 1 + text.lines().nth(line - 1).unwrap().find("\"echo").unwrap();
    fixture.assert_fails(
        &result,
        &[
            "step `run[1]` of image `hello`",
            &format!("(Cargo.toml:{line}:{column})"),
            "failed with exit code 3",
            "its last output:",
            "    early",
            "    late",
        ],
    );
}

/// The command lines of the processes on this machine, by pid (the daemon's containers run here too).
fn processes_running(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(token) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// Ctrl-C while a step sleeps: the build exits 130 and the daemon cancels the step. Docker's embedded BuildKit
/// runs steps as runc containers that `docker ps` never lists, so what is checked is the step's own processes on
/// this machine (the shell, whose command line carries a token unique to this test, and its `sleep`).
#[test]
fn ctrl_c_during_a_step_cancels_it_on_the_daemon() {
    let fixture = Fixture::example("hello");
    let token = format!("hive-ctrl-c-{}", std::process::id());
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        &format!(r#"run = ["sleep 30; echo {token}"]"#),
    );
    let mut build = Spawned::start(fixture.build().args(["--progress", "json"]));
    let started = std::time::Instant::now();
    loop {
        let Ok(line) = build.lines.recv() else {
            let (status, stdout, stderr) = build.finish();
            panic!("the build ended ({status}) before its step started:\n{stdout}\n{stderr}");
        };
        if line.contains("\"vertex-started\"") && line.contains("run[0]") {
            break;
        }
    }
    // The step's container is up when its shell is.
    while processes_running(&token).is_empty() {
        assert!(started.elapsed() < EXIT_GUARD, "the step never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    build.interrupt();
    let (status, stdout, stderr) = build.finish();
    assert_interrupted(status, &stdout, &stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the build waited for the step"
    );
    assert_eq!(fixture.outputs(), Vec::<String>::new());
    // The daemon kills the step's container when the solve is cancelled; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_running(&token).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step still runs after the build was interrupted: {:?}",
            processes_running(&token)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
