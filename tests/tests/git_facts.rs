//! Git facts are computed once per build: the `{git.sha}` tags, the `org.opencontainers.image.revision` label and
//! the image's times (SOURCE_DATE_EPOCH taken from the commit) all name the same commit, with `HIVE_GIT_SHA` and
//! without it.

use std::path::Path;

use hive_e2e::fixture::{Fixture, OciArchive, succeed};

/// Runs git in `dir`, committing at `time` (seconds since 1970) when it commits; returns its output.
fn git(dir: &Path, args: &[&str], time: i64) -> String {
    hive_e2e::fixture::git_at(dir, args, time)
}

/// Builds `hello` with `HIVE_GIT_SHA` set to `pinned` (or unset); the names in its archive and its config.
fn build(fixture: &Fixture, pinned: Option<&str>) -> (Vec<String>, serde_json::Value) {
    let mut command = fixture.build();
    command
        .env_remove("HIVE_GIT_SHA")
        .env_remove("HIVE_GIT_BRANCH");
    if let Some(sha) = pinned {
        command.env("HIVE_GIT_SHA", sha);
    }
    succeed(&mut command);
    let archive = OciArchive::open(&fixture.archive("hello"));
    let (_, names, _) = archive.manifest();
    (names, archive.config())
}

#[test]
fn the_tags_the_revision_label_and_the_times_name_one_commit() {
    let fixture = Fixture::example("hello");
    fixture.set_image_keys(
        "Cargo.toml",
        "hello",
        r#"tags = ["{git.sha}", "{git.short_sha}"]"#,
    );
    let root = fixture.root();
    git(&root, &["init", "-q", "-b", "main"], 0);
    git(&root, &["add", "-A"], 0);
    git(&root, &["commit", "-q", "-m", "first"], 1_600_000_000);
    let first = git(&root, &["rev-parse", "HEAD"], 0);
    git(
        &root,
        &["commit", "-q", "--allow-empty", "-m", "head"],
        1_700_000_000,
    );
    let head = git(&root, &["rev-parse", "HEAD"], 0);

    // Without HIVE_GIT_SHA, HEAD; with it, the commit it names (here not HEAD), for everything alike.
    for (pinned, sha, time) in [
        (None, &head, "2023-11-14T22:13:20Z"),
        (Some(first.as_str()), &first, "2020-09-13T12:26:40Z"),
    ] {
        let (names, config) = build(&fixture, pinned);
        let mut tags: Vec<&str> = names
            .iter()
            .map(|name| name.rsplit_once(':').unwrap().1)
            .collect();
        tags.sort_unstable();
        let mut expected = [sha.as_str(), &sha[..7]];
        expected.sort_unstable();
        assert_eq!(tags, expected, "{names:?}");
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.revision"], sha.as_str());
        assert_eq!(labels["org.opencontainers.image.created"], time);
        assert_eq!(config["created"], time, "{config:#}");
    }
}
