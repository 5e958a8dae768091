//! Dockerfile images against the real daemons: built by the daemon's own Dockerfile frontend inside our build,
//! with the image's binary staged at `.hive/bin/$TARGETPLATFORM/`, a workspace image as `FROM hive-<name>` (Docker
//! 26), our labels over the Dockerfile's config; on Docker 20.10 the same without named contexts, and a clear error
//! with them.

use hive_e2e::fixture::{Fixture, LocalImages, OciArchive, docker20, docker20_addr, succeed};

/// The hello example with a second image, `hello-df`, built from `docker/hello.Dockerfile` (written by the test).
fn fixture_with_dockerfile(dockerfile: &str) -> Fixture {
    let fixture = Fixture::example("hello");
    let root = fixture.root();
    std::fs::create_dir_all(root.join("docker")).unwrap();
    std::fs::write(root.join("docker/hello.Dockerfile"), dockerfile).unwrap();
    let manifest = root.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[package.metadata.hive.images.hello-df]\ndockerfile = \"docker/hello.Dockerfile\"\n\
         labels = { \"org.example.team\" = \"core\" }\n",
    );
    std::fs::write(&manifest, text).unwrap();
    fixture
}

#[test]
fn a_dockerfile_image_builds_on_a_workspace_image_with_the_staged_binary() {
    let fixture = fixture_with_dockerfile(
        "FROM hive-hello\nARG TARGETPLATFORM\n\
         COPY .hive/bin/$TARGETPLATFORM/hello /usr/local/bin/hello-again\n\
         RUN [\"/usr/local/bin/hello-again\"]\nENV FROM_DOCKERFILE=yes\n\
         COPY src /ctx/src\nCOPY notes /ctx/notes\n",
    );
    // The context's `.dockerignore` applies, as with `docker build`.
    let notes = fixture.root().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("kept.txt"), "kept\n").unwrap();
    std::fs::write(notes.join("private.txt"), "ignored\n").unwrap();
    std::fs::write(fixture.root().join(".dockerignore"), "notes/private.txt\n").unwrap();
    let result = succeed(
        fixture
            .build()
            .args(["--image", "hello-df", "--progress", "plain"]),
    );
    // The RUN step ran the staged binary.
    assert!(
        result.stderr.contains("Hello from a cargo-hive image!"),
        "{result:#?}"
    );
    let archive = fixture.archive("hello-df");
    let config = OciArchive::open(&archive).config();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.example.team"], "core", "{config:#}");
    assert_eq!(
        labels["org.opencontainers.image.title"], "hello-df",
        "{config:#}"
    );
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("FROM_DOCKERFILE=yes"), "{config:#}");
    // `FROM hive-hello` starts from hello's own config: its entrypoint.
    assert_eq!(
        config["config"]["Entrypoint"][0], "/usr/local/bin/hello",
        "{config:#}"
    );
    let staged = OciArchive::open(&archive)
        .file("usr/local/bin/hello-again")
        .expect("the staged binary is in the image");
    let built = std::fs::read(fixture.target().join("debug/hello")).unwrap();
    assert!(staged == built, "the image holds the binary cargo built");
    assert!(
        OciArchive::open(&archive)
            .file("ctx/notes/kept.txt")
            .is_some()
    );
    assert!(OciArchive::open(&archive).file("ctx/src/main.rs").is_some());
    assert!(
        OciArchive::open(&archive)
            .file("ctx/notes/private.txt")
            .is_none(),
        ".dockerignore was not applied"
    );
    // Nothing was written into the user's tree.
    assert!(!fixture.root().join(".hive").exists());
}

#[test]
fn a_dockerfile_image_builds_on_docker_20_10() {
    let fixture = fixture_with_dockerfile(
        "FROM localhost:5000/hive/glibc\nARG TARGETPLATFORM\n\
         COPY .hive/bin/$TARGETPLATFORM/hello /usr/local/bin/hello\nENTRYPOINT [\"/usr/local/bin/hello\"]\n",
    );
    let _cleanup = LocalImages(vec![
        "hello-df:0.1.0".to_owned(),
        "hello-df:latest".to_owned(),
    ]);
    succeed(fixture.build_at(&docker20_addr()).args([
        "--image",
        "hello-df",
        "--load",
        "--progress",
        "plain",
    ]));
    let ran = succeed(docker20().args(["run", "--rm", "hello-df:0.1.0"]));
    assert!(
        ran.stdout.contains("Hello from a cargo-hive image!"),
        "{ran:#?}"
    );
    let _ = docker20()
        .args(["rmi", "--force", "hello-df:0.1.0", "hello-df:latest"])
        .output();
}

#[test]
fn from_a_workspace_image_on_docker_20_10_is_a_clear_error() {
    let fixture = fixture_with_dockerfile("FROM hive-hello\nENV X=1\n");
    let mut command = fixture.build_at(&docker20_addr());
    command.args(["--image", "hello-df", "--load"]);
    let result = hive_e2e::run(&mut command);
    fixture.assert_fails(
        &result,
        &["FROM hive-hello needs named contexts, which this daemon's Dockerfile frontend lacks"],
    );
}

#[test]
fn a_hive_base_on_a_dockerfile_image_is_refused_in_words() {
    let fixture = fixture_with_dockerfile("FROM localhost:5000/hive/glibc\nENV X=1\n");
    let manifest = fixture.root().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.hive.images.on-df]\nbase = \"hive:hello-df\"\n");
    std::fs::write(&manifest, text).unwrap();
    let mut command = fixture.build();
    command.args(["--image", "on-df"]);
    let result = hive_e2e::run(&mut command);
    fixture.assert_fails(
        &result,
        &[
            "`on-df` is built on the Dockerfile image `hello-df`",
            "FROM hive-hello-df",
        ],
    );
}

#[test]
fn from_a_dockerfile_image_is_refused_in_words() {
    let fixture = fixture_with_dockerfile("FROM localhost:5000/hive/glibc\nENV X=1\n");
    let root = fixture.root();
    std::fs::write(
        root.join("docker/on.Dockerfile"),
        "FROM hive-hello-df\nENV Y=2\n",
    )
    .unwrap();
    let manifest = root.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[package.metadata.hive.images.on-df]\ndockerfile = \"docker/on.Dockerfile\"\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let mut command = fixture.build();
    command.args(["--image", "on-df"]);
    let result = hive_e2e::run(&mut command);
    fixture.assert_fails(
        &result,
        &["the Dockerfile of `on-df` builds `FROM hive-hello-df`, a Dockerfile image"],
    );
}
