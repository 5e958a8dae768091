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
