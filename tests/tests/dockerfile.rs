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

/// `fixture` with one more image, `on-df`, of the hello binary on `hive:hello-df` with `extra` keys.
fn with_image_on_dockerfile_image(fixture: &Fixture, extra: &str) {
    let manifest = fixture.root().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[package.metadata.hive.images.on-df]\nbase = \"hive:hello-df\"\n{extra}"
    ));
    std::fs::write(&manifest, text).unwrap();
}

#[test]
fn a_dockerfile_image_with_the_staged_binary_is_a_hive_base() {
    let fixture = fixture_with_dockerfile(
        "FROM localhost:5000/hive/glibc\nARG TARGETPLATFORM\n\
         COPY .hive/bin/$TARGETPLATFORM/hello /usr/local/bin/hello-df\n\
         ENV FROM_DOCKERFILE=yes\nWORKDIR /srv\n",
    );
    // Its steps start from the Dockerfile's config (env, workdir) and run the binary the Dockerfile copied.
    with_image_on_dockerfile_image(
        &fixture,
        "env = { ON_DF = \"1\" }\n\
         run = [\"echo \\\"$FROM_DOCKERFILE in $(pwd)\\\" > /step.txt\", \"/usr/local/bin/hello-df > /ran.txt\"]\n",
    );
    let _cleanup = LocalImages(vec!["on-df:0.1.0".to_owned(), "on-df:latest".to_owned()]);
    succeed(
        fixture
            .build()
            .args(["--image", "on-df", "--progress", "plain"]),
    );
    let archive = OciArchive::open(&fixture.archive("on-df"));
    let config = archive.config();
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("FROM_DOCKERFILE=yes"), "{config:#}");
    assert!(env.contains("ON_DF=1"), "{config:#}");
    assert_eq!(config["config"]["WorkingDir"], "/srv", "{config:#}");
    let labels = &config["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.title"], "on-df",
        "{config:#}"
    );
    assert_eq!(
        labels["org.example.team"], "core",
        "hello-df's labels carry over: {config:#}"
    );
    assert_eq!(archive.text("step.txt"), "yes in /srv\n");
    assert!(
        archive
            .text("ran.txt")
            .contains("Hello from a cargo-hive image!")
    );
    let built = std::fs::read(fixture.target().join("debug/hello")).unwrap();
    assert!(
        archive.file("usr/local/bin/hello-df").unwrap() == built,
        "the Dockerfile copied the binary cargo built"
    );
    assert!(archive.file("usr/local/bin/hello").unwrap() == built);
    // Loaded into Docker, it runs (its entrypoint is on-df's binary, on the Dockerfile's glibc base).
    succeed(fixture.build().args(["--image", "on-df", "--load"]));
    let ran = succeed(std::process::Command::new("docker").args(["run", "--rm", "on-df:0.1.0"]));
    assert!(
        ran.stdout.contains("Hello from a cargo-hive image!"),
        "{ran:#?}"
    );
    assert!(!fixture.root().join(".hive").exists());
}

#[test]
fn a_dockerfile_image_without_the_loader_is_no_base_for_a_dynamic_binary() {
    let fixture = fixture_with_dockerfile(
        "FROM scratch\nARG TARGETPLATFORM\nCOPY .hive/bin/$TARGETPLATFORM/hello /hello\n",
    );
    with_image_on_dockerfile_image(&fixture, "");
    let mut command = fixture.build();
    command.args(["--image", "on-df"]);
    let result = hive_e2e::run(&mut command);
    fixture.assert_fails(
        &result,
        &["the base `hive:hello-df` has no /lib64/ld-linux-x86-64.so.2"],
    );
}

#[test]
fn a_dockerfile_builds_from_a_dockerfile_image_and_from_layers_on_one() {
    let fixture = fixture_with_dockerfile(
        "FROM localhost:5000/hive/glibc\nARG TARGETPLATFORM\n\
         COPY .hive/bin/$TARGETPLATFORM/hello /usr/local/bin/hello-df\nENV FROM_DOCKERFILE=yes\n\
         COPY notes /notes\n",
    );
    // Built inside top's solve, hello-df's context is filtered by its `.dockerignore` too.
    let notes = fixture.root().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("kept.txt"), "kept\n").unwrap();
    std::fs::write(notes.join("private.txt"), "ignored\n").unwrap();
    std::fs::write(fixture.root().join(".dockerignore"), "notes/private.txt\n").unwrap();
    with_image_on_dockerfile_image(&fixture, "run = [\"echo on-df > /on-df.txt\"]\n");
    // A third image, from a Dockerfile of its own: `FROM` the image on the Dockerfile image, and a file of the
    // Dockerfile image itself; its own binary is staged in its own context.
    let root = fixture.root();
    std::fs::write(
        root.join("docker/top.Dockerfile"),
        "FROM hive-on-df\nARG TARGETPLATFORM\n\
         COPY --from=hive-hello-df /usr/local/bin/hello-df /copied/hello-df\n\
         COPY .hive/bin/$TARGETPLATFORM/hello /usr/local/bin/hello-top\n\
         RUN /usr/local/bin/hello-top > /top.txt\n",
    )
    .unwrap();
    let manifest = root.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[package.metadata.hive.images.top]\ndockerfile = \"docker/top.Dockerfile\"\n");
    std::fs::write(&manifest, text).unwrap();
    succeed(
        fixture
            .build()
            .args(["--image", "top", "--progress", "plain"]),
    );
    let archive = OciArchive::open(&fixture.archive("top"));
    assert_eq!(archive.text("on-df.txt"), "on-df\n");
    assert_eq!(archive.text("notes/kept.txt"), "kept\n");
    assert!(
        archive.file("notes/private.txt").is_none(),
        ".dockerignore was not applied"
    );
    assert!(
        archive
            .text("top.txt")
            .contains("Hello from a cargo-hive image!")
    );
    let built = std::fs::read(fixture.target().join("debug/hello")).unwrap();
    assert!(archive.file("copied/hello-df").unwrap() == built);
    assert!(archive.file("usr/local/bin/hello-top").unwrap() == built);
    // `FROM hive-on-df` starts from on-df's config: the Dockerfile's env under it, on-df's entrypoint.
    let config = archive.config();
    assert!(
        config["config"]["Env"]
            .to_string()
            .contains("FROM_DOCKERFILE=yes"),
        "{config:#}"
    );
    assert_eq!(
        config["config"]["Entrypoint"][0], "/usr/local/bin/hello",
        "{config:#}"
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"], "top",
        "{config:#}"
    );
}

#[test]
fn a_dockerfile_image_is_a_hive_base_on_docker_20_10() {
    let fixture = fixture_with_dockerfile(
        "FROM localhost:5000/hive/glibc\nARG TARGETPLATFORM\n\
         COPY .hive/bin/$TARGETPLATFORM/hello /usr/local/bin/hello-df\nENV FROM_DOCKERFILE=yes\n",
    );
    with_image_on_dockerfile_image(&fixture, "run = [\"/usr/local/bin/hello-df > /ran.txt\"]\n");
    let _cleanup = LocalImages(vec!["on-df:0.1.0".to_owned(), "on-df:latest".to_owned()]);
    // Docker 20.10's gateway returns the Dockerfile's definition too; our layers go on it by copies there.
    succeed(fixture.build_at(&docker20_addr()).args([
        "--image",
        "on-df",
        "--load",
        "--progress",
        "plain",
    ]));
    let ran = succeed(docker20().args(["run", "--rm", "on-df:0.1.0"]));
    assert!(
        ran.stdout.contains("Hello from a cargo-hive image!"),
        "{ran:#?}"
    );
    let ran = succeed(docker20().args([
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "on-df:0.1.0",
        "/ran.txt",
    ]));
    assert!(
        ran.stdout.contains("Hello from a cargo-hive image!"),
        "{ran:#?}"
    );
    let _ = docker20()
        .args(["rmi", "--force", "on-df:0.1.0", "on-df:latest"])
        .output();
}
