//! Sessions against the real daemon at /var/run/docker.sock (Docker's embedded BuildKit): local dirs copied into
//! a scratch filesystem through our FileSync, exported as a tar through our FileSend. These fail, never skip, when
//! the daemon does not answer.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hive_proto::control::{Exporter, SolveRequest};
use hive_proto::pb;

use super::errors::SessionError;
use super::{LocalDir, Session, SessionConfig};
use crate::buildkit::llb::{self, CopyOptions, DefinitionBuilder};
use crate::buildkit::{Buildkit, new_id, test_daemon as connect};

const SOLVE_TIMEOUT: Duration = Duration::from_secs(120);

/// `local://context` (optionally limited to `include`) copied onto scratch: the whole dir at `/`.
fn copy_context(include: &[String], hint: &str) -> pb::Definition {
    let mut builder = DefinitionBuilder::default();
    let (source, metadata) = llb::local_source("context", hint, include, None);
    let local = builder.add(&source, metadata);
    let options = CopyOptions {
        dir_copy_contents: true,
        create_dest_path: true,
        ..Default::default()
    };
    let (copy, metadata) = llb::copy(None, &local, "/", "/", &options);
    let copied = builder.add(&copy, metadata);
    builder.finish(&copied)
}

fn config(
    root: &Path,
    shared_key: &str,
    export: PathBuf,
    allow: Option<Vec<String>>,
) -> SessionConfig {
    SessionConfig {
        name: "cargo-hive-session-test".into(),
        shared_key: shared_key.into(),
        local_dirs: BTreeMap::from([(
            "context".to_owned(),
            LocalDir {
                root: root.to_owned(),
                allow,
            },
        )]),
        export: Some(export),
    }
}

/// Solves `definition` in `session`, exporting a tar through it.
async fn solve(
    buildkit: &Buildkit,
    session: &Session,
    definition: pb::Definition,
) -> Result<(), hive_proto::tonic::Status> {
    let request = SolveRequest {
        r#ref: new_id(),
        definition: Some(definition),
        session: session.id().to_owned(),
        exporters: vec![Exporter {
            r#type: "tar".into(),
            attrs: HashMap::new(),
        }],
        ..Default::default()
    };
    tokio::time::timeout(SOLVE_TIMEOUT, buildkit.control().solve(request))
        .await
        .expect("the solve finishes in time")
        .map(|_| ())
}

/// A workspace-like dir: nested files, an executable, a symlink.
fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, data: &[u8], mode: u32| {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write("bin/app", &binary, 0o755);
    write("bin/other", b"#!/bin/sh\necho other\n", 0o755);
    write("etc/conf/app.toml", b"key = 1\n", 0o644);
    write("data/nested/deep/file.txt", b"deep\n", 0o600);
    symlink("conf/app.toml", root.join("etc/link")).unwrap();
    dir
}

#[derive(Debug)]
struct TarEntry {
    path: String,
    mode: u32,
    uid: u32,
    kind: u8,
    linkname: String,
    data: Vec<u8>,
}

/// The entries of an exported tar, paths relative (no `./`, no trailing `/`).
fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        if header.entry_type().is_pax_global_extensions() {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let linkname = entry
            .link_name()
            .unwrap()
            .map_or_else(String::new, |link| link.to_string_lossy().into_owned());
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        entries.push(TarEntry {
            path: path.trim_start_matches("./").trim_matches('/').to_owned(),
            mode: header.mode().unwrap() & 0o7777,
            uid: u32::try_from(header.uid().unwrap()).unwrap(),
            kind: header.entry_type().as_byte(),
            linkname,
            data,
        });
    }
    entries
}

fn tar_paths(entries: &[TarEntry]) -> Vec<&str> {
    let mut paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    paths.sort();
    paths
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn local_dir_copied_and_exported_as_tar() {
    let buildkit = connect().await;
    let context = context();
    let out = tempfile::tempdir().unwrap();
    let destination = out.path().join("rootfs.tar");
    let started = Instant::now();
    let session = Session::start(
        &buildkit,
        config(context.path(), &new_id(), destination.clone(), None),
    )
    .await
    .unwrap();
    let setup = started.elapsed();
    let solved = Instant::now();
    solve(&buildkit, &session, copy_context(&[], "tree"))
        .await
        .unwrap();
    let solve_time = solved.elapsed();
    assert_eq!(
        session.commit_export().await.unwrap(),
        Some(destination.clone())
    );
    let sent = session.bytes_sent();
    let closing = Instant::now();
    session.close().await;
    eprintln!(
        "session setup {setup:?}, solve+export {solve_time:?}, close {:?}, {sent} bytes sent",
        closing.elapsed()
    );

    let entries = read_tar(&fs::read(&destination).unwrap());
    assert_eq!(
        tar_paths(&entries),
        [
            "bin",
            "bin/app",
            "bin/other",
            "data",
            "data/nested",
            "data/nested/deep",
            "data/nested/deep/file.txt",
            "etc",
            "etc/conf",
            "etc/conf/app.toml",
            "etc/link"
        ]
    );
    let find = |path: &str| entries.iter().find(|entry| entry.path == path).unwrap();
    let app = find("bin/app");
    assert_eq!(app.data, fs::read(context.path().join("bin/app")).unwrap());
    assert_eq!(app.mode, 0o755);
    assert_eq!(
        app.uid,
        fs::metadata(context.path().join("bin/app")).unwrap().uid()
    );
    assert_eq!(find("data/nested/deep/file.txt").mode, 0o600);
    assert_eq!(find("data/nested/deep/file.txt").data, b"deep\n");
    assert_eq!(find("etc/conf/app.toml").mode, 0o644);
    let link = find("etc/link");
    assert_eq!((link.kind, link.linkname.as_str()), (b'2', "conf/app.toml"));
    assert_eq!(find("bin").kind, b'5');
    let total: u64 = [
        "bin/app",
        "bin/other",
        "etc/conf/app.toml",
        "data/nested/deep/file.txt",
    ]
    .iter()
    .map(|path| fs::metadata(context.path().join(path)).unwrap().len())
    .sum();
    assert_eq!(sent, total);
    // Only the archive, no temp file.
    assert_eq!(dir_names(out.path()), ["rootfs.tar"]);
}

#[tokio::test]
async fn a_rebuild_sends_only_the_changed_file() {
    let buildkit = connect().await;
    let context = context();
    let out = tempfile::tempdir().unwrap();
    // Fresh per run, so the daemon has no snapshot from an earlier run; stable across the two solves.
    let shared_key = new_id();
    let mut sent = Vec::new();
    for round in 0..3 {
        if round == 2 {
            // Same size, new content and mtime: the daemon decides by stat, so only this one is re-sent.
            let app = context.path().join("bin/app");
            let mut data = fs::read(&app).unwrap();
            data[0] ^= 0xff;
            fs::write(&app, data).unwrap();
        }
        let destination = out.path().join(format!("round{round}.tar"));
        let started = Instant::now();
        let session = Session::start(
            &buildkit,
            config(context.path(), &shared_key, destination.clone(), None),
        )
        .await
        .unwrap();
        solve(&buildkit, &session, copy_context(&[], "tree"))
            .await
            .unwrap();
        session.commit_export().await.unwrap();
        sent.push(session.bytes_sent());
        session.close().await;
        eprintln!(
            "round {round}: {} bytes sent in {:?}",
            sent[round],
            started.elapsed()
        );
        let entries = read_tar(&fs::read(&destination).unwrap());
        let app = entries
            .iter()
            .find(|entry| entry.path == "bin/app")
            .unwrap();
        assert_eq!(app.data, fs::read(context.path().join("bin/app")).unwrap());
    }
    let app_size = fs::metadata(context.path().join("bin/app")).unwrap().len();
    assert!(sent[0] > app_size);
    assert_eq!(sent[1], 0, "nothing changed");
    assert_eq!(sent[2], app_size, "only bin/app changed");
}

#[tokio::test]
async fn include_patterns_and_the_allowlist_limit_what_is_sent() {
    let buildkit = connect().await;
    let context = context();
    let out = tempfile::tempdir().unwrap();

    // The daemon's include patterns.
    let destination = out.path().join("include.tar");
    let session = Session::start(
        &buildkit,
        config(context.path(), &new_id(), destination.clone(), None),
    )
    .await
    .unwrap();
    let include = ["bin/app".to_owned(), "etc/**/*.toml".to_owned()];
    solve(&buildkit, &session, copy_context(&include, "include"))
        .await
        .unwrap();
    session.commit_export().await.unwrap();
    let sent = session.bytes_sent();
    session.close().await;
    let entries = read_tar(&fs::read(&destination).unwrap());
    assert_eq!(
        tar_paths(&entries),
        ["bin", "bin/app", "etc", "etc/conf", "etc/conf/app.toml"]
    );
    let expected = fs::metadata(context.path().join("bin/app")).unwrap().len()
        + fs::metadata(context.path().join("etc/conf/app.toml"))
            .unwrap()
            .len();
    assert_eq!(sent, expected);

    // Our allowlist, whatever the daemon asks for.
    let destination = out.path().join("allow.tar");
    let allow = vec!["bin/other".to_owned(), "etc".to_owned()];
    let session = Session::start(
        &buildkit,
        config(context.path(), &new_id(), destination.clone(), Some(allow)),
    )
    .await
    .unwrap();
    solve(&buildkit, &session, copy_context(&[], "allow"))
        .await
        .unwrap();
    session.commit_export().await.unwrap();
    session.close().await;
    let entries = read_tar(&fs::read(&destination).unwrap());
    assert_eq!(
        tar_paths(&entries),
        [
            "bin",
            "bin/other",
            "etc",
            "etc/conf",
            "etc/conf/app.toml",
            "etc/link"
        ]
    );
}

#[tokio::test]
async fn a_failed_export_leaves_no_file() {
    let buildkit = connect().await;
    let context = context();
    let out = tempfile::tempdir().unwrap();

    // The solve fails: nothing is exported.
    let destination = out.path().join("failed.tar");
    let session = Session::start(
        &buildkit,
        config(context.path(), &new_id(), destination.clone(), None),
    )
    .await
    .unwrap();
    let mut builder = DefinitionBuilder::default();
    let (source, metadata) = llb::local_source("context", "failing", &[], None);
    let local = builder.add(&source, metadata);
    let (copy, metadata) = llb::copy(None, &local, "/no/such/file", "/x", &CopyOptions::default());
    let copied = builder.add(&copy, metadata);
    let err = solve(&buildkit, &session, builder.finish(&copied))
        .await
        .unwrap_err();
    assert!(err.message().contains("no/such/file"), "{}", err.message());
    session.close().await;
    assert!(dir_names(out.path()).is_empty());

    // The solve is cancelled while the archive streams in: the partial file goes away.
    fs::write(context.path().join("big"), vec![0x5a; 96 * 1024 * 1024]).unwrap();
    let destination = out.path().join("cancelled.tar");
    let session = Session::start(
        &buildkit,
        config(context.path(), &new_id(), destination.clone(), None),
    )
    .await
    .unwrap();
    let solving = {
        let buildkit = buildkit.clone();
        let request = SolveRequest {
            r#ref: new_id(),
            definition: Some(copy_context(&[], "cancel")),
            session: session.id().to_owned(),
            exporters: vec![Exporter {
                r#type: "tar".into(),
                attrs: HashMap::new(),
            }],
            ..Default::default()
        };
        tokio::spawn(async move { buildkit.control().solve(request).await })
    };
    let deadline = Instant::now() + SOLVE_TIMEOUT;
    while dir_names(out.path()).is_empty() && !solving.is_finished() {
        assert!(Instant::now() < deadline, "the export never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let caught_mid_export = !solving.is_finished();
    solving.abort();
    let _ = solving.await;
    if caught_mid_export {
        // The daemon resets the export stream; the export is then failed, never committable.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match session.commit_export().await {
                Err(SessionError::ExportFailed { .. }) => break,
                Err(SessionError::ExportIncomplete { .. }) => {}
                other => panic!("a cancelled export must not commit: {other:?}"),
            }
            assert!(Instant::now() < deadline, "the export was never reset");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    session.close().await;
    eprintln!("cancelled mid-export: {caught_mid_export}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dir_names(out.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            dir_names(out.path())
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_session_without_local_dirs_is_refused_by_local_sources() {
    let buildkit = connect().await;
    let started = Instant::now();
    let session = Session::start(&buildkit, SessionConfig::default())
        .await
        .unwrap();
    let setup = started.elapsed();
    let err = solve(&buildkit, &session, copy_context(&[], "none"))
        .await
        .unwrap_err();
    session.close().await;
    eprintln!("bare session setup {setup:?}");
    assert!(
        err.message().contains("no local sources enabled"),
        "{}",
        err.message()
    );
}
