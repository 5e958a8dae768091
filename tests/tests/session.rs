//! The session as the binary drives it, against the real daemon: what used to be `cargo-hive`'s own daemon-bound
//! unit tests of `buildkit::session` (a rebuild that re-sends only what changed is `build.rs`'s
//! `rebuild_sends_only_the_changed_binary`; a failed or interrupted export that leaves no file is covered by
//! `build.rs` and `signals.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hive_e2e::fixture::{Fixture, events, finished, succeed};

fn write(path: &Path, data: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One member of a tar listing.
#[derive(Debug)]
struct Member {
    /// Type and mode, as `ls -l` shows them.
    mode: String,
    /// `uid/gid`.
    owner: String,
    path: String,
    /// What follows the path (`-> target` for a symlink).
    rest: String,
}

/// `tar -tv` of the members under `prefix`.
fn listing(tar: &Path, prefix: &str) -> Vec<Member> {
    let output = std::process::Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(tar)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches("./");
            path.starts_with(prefix).then(|| Member {
                mode: fields[0].to_owned(),
                owner: fields[1].to_owned(),
                path: path.trim_end_matches('/').to_owned(),
                rest: fields[6..].join(" "),
            })
        })
        .collect()
}

/// A declared directory arrives whole (nested files, modes, a symlink as a symlink, owned by root), a declared
/// file arrives alone (its undeclared sibling is not in the image), and what the session sends is one packed layer
/// of those files.
#[test]
fn the_session_serves_the_declared_files_and_only_them() {
    let fixture = Fixture::example("hello");
    let root = fixture.root();
    write(&root.join("assets/run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("assets/nested/deep/file.txt"), b"deep\n", 0o600);
    std::os::unix::fs::symlink("nested/deep/file.txt", root.join("assets/link")).unwrap();
    write(&root.join("extra/one.txt"), b"one\n", 0o644);
    write(&root.join("extra/two.txt"), b"undeclared\n", 0o644);
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        r#"files = [{ src = "assets", dst = "/srv/assets" }, { src = "extra/one.txt", dst = "/srv/one.txt" }]"#,
    );
    let rootfs = fixture.scratch("rootfs.tar");
    let output = format!("type=tar,dest={}", rootfs.display());
    let result = succeed(
        fixture
            .build()
            .args(["--progress", "json", "--output", &output]),
    );

    let entries = listing(&rootfs, "srv");
    let modes: Vec<(&str, &str)> = entries
        .iter()
        .map(|member| (member.path.as_str(), member.mode.as_str()))
        .collect();
    assert_eq!(
        modes,
        [
            ("srv", "drwxr-xr-x"),
            ("srv/assets", "drwxr-xr-x"),
            ("srv/assets/link", "lrwxrwxrwx"),
            ("srv/assets/nested", "drwxr-xr-x"),
            ("srv/assets/nested/deep", "drwxr-xr-x"),
            ("srv/assets/nested/deep/file.txt", "-rw-------"),
            ("srv/assets/run.sh", "-rwxr-xr-x"),
            ("srv/one.txt", "-rw-r--r--"),
        ],
        "{entries:#?}"
    );
    let link = entries
        .iter()
        .find(|member| member.path == "srv/assets/link");
    assert!(
        link.unwrap().rest.ends_with("-> nested/deep/file.txt"),
        "{entries:#?}"
    );
    assert!(
        entries.iter().all(|member| member.owner == "0/0"),
        "{entries:#?}"
    );

    let binary = std::fs::metadata(fixture.target().join("debug/hello"))
        .unwrap()
        .len();
    let files: u64 = [
        "assets/run.sh",
        "assets/nested/deep/file.txt",
        "extra/one.txt",
    ]
    .iter()
    .map(|path| std::fs::metadata(root.join(path)).unwrap().len())
    .sum();
    // One packed layer (gzip'd) of exactly those files went to the daemon: some bytes, fewer than the files'.
    let sent = finished(&events(&result))["hello"].1;
    assert!(
        sent > 0 && sent < binary + files,
        "{sent} bytes: {result:#?}"
    );
}
