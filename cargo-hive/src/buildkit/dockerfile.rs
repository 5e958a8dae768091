//! The BuildKit side of a Dockerfile image: the daemon's own `dockerfile.v0` frontend, solved from inside our
//! frontend on the gateway (never a `# syntax=` image, so nothing is pulled), for one platform at a time; its
//! result comes back to us, so labels, outputs and progress stay ours.
//!
//! The frontend reads two local dirs of our session: the build context, filtered by its `.dockerignore` (which the
//! frontend reads first and turns into exclude patterns), and the Dockerfile's directory (the Dockerfile by name,
//! and a `<Dockerfile>.dockerignore` beside it, which then replaces the context's). The frontend always reads the
//! context from the dir named `context`, so a Dockerfile built inside another's solve (its `FROM hive-<name>`)
//! gets its context as an input instead ([`ContextSource::Input`]): a dir of its own that we filter with its
//! `.dockerignore`. The workspace's binaries are staged into the context under
//! `.hive/bin/<os>/<arch>[/<variant>]/` ([`staged_binary_path`]), and workspace images are named contexts
//! (`FROM hive-<name>`) where the frontend has them (BuildKit v0.10+): images of our layers as they are laid out,
//! and images the frontend builds (a Dockerfile image, or our layers on one) once they are built in the same solve,
//! from their result's definition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use hive_proto::pb;
use hive_proto::tonic::Status;

use super::gateway::{FrontendError, Gateway, ResultRef};
use super::layout::Llb;
use super::packing::Packing;
use super::session::LocalDir;
use super::solve::{PlatformBuild, build_platform};
use crate::plan::Platform;

/// The daemon's built-in Dockerfile frontend.
pub(crate) const DOCKERFILE_FRONTEND: &str = "dockerfile.v0";
/// What a workspace image is called in a Dockerfile: `FROM hive-<name>`.
pub(crate) const NAMED_CONTEXT_PREFIX: &str = "hive-";
/// The frontend capability of named contexts. Asked for, a Dockerfile frontend without it (BuildKit before
/// v0.10) fails at once with "unsupported frontend capability …" instead of pulling `docker.io/library/hive-…`.
const CONTEXTS_CAP: &str = "moby.buildkit.frontend.contexts";

/// Where a workspace binary is staged in the build context: `.hive/bin/<os>/<arch>[/<variant>]/<binary>`, so that
/// `COPY .hive/bin/$TARGETPLATFORM/api …` finds it.
pub(crate) fn staged_binary_path(platform: &Platform, binary: &str) -> String {
    format!(".hive/bin/{platform}/{binary}")
}

/// The session dir the frontend reads a build context from.
const CONTEXT_DIR: &str = "context";
/// The session dir the frontend reads the Dockerfile from, unless told another (`dockerfilekey`).
const DOCKERFILE_DIR: &str = "dockerfile";

/// Where the frontend reads a Dockerfile image's build context from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextSource {
    /// The session's `context` dir, which the frontend filters by the `.dockerignore` it reads there: the image the
    /// solve is of (or the one at the bottom of its `hive:` chain).
    Session,
    /// A session dir of the image's own, filtered by its `.dockerignore` as we read it, handed to the frontend as
    /// its `context` input: a Dockerfile built inside another's solve (the session has one `context` dir).
    Input {
        /// The session dir.
        dir: String,
        /// The `.dockerignore` patterns.
        excludes: Vec<String>,
    },
}

/// The session dirs of a Dockerfile image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerfileDirs {
    /// The build context's dir.
    pub(crate) context: String,
    /// The Dockerfile directory's.
    pub(crate) dockerfile: String,
}

impl DockerfileDirs {
    /// The dirs of the solve's own Dockerfile image: the frontend's defaults.
    pub(crate) fn main() -> DockerfileDirs {
        DockerfileDirs {
            context: CONTEXT_DIR.to_owned(),
            dockerfile: DOCKERFILE_DIR.to_owned(),
        }
    }

    /// The dirs of a Dockerfile image built inside another's solve: `<image>-context`, `<image>-dockerfile`.
    pub(crate) fn nested(image: &str) -> DockerfileDirs {
        DockerfileDirs {
            context: format!("{image}-context"),
            dockerfile: format!("{image}-dockerfile"),
        }
    }

    /// The session's local dirs: the context with `staged` files (relative path → file on disk, see
    /// [`staged_binary_path`]) and the Dockerfile's directory. Neither has an allowlist: what the frontend reads is
    /// up to the Dockerfile and its `.dockerignore`, as with `docker build`.
    pub(crate) fn local_dirs(
        &self,
        context: &Path,
        dockerfile_dir: &Path,
        staged: BTreeMap<String, PathBuf>,
    ) -> BTreeMap<String, LocalDir> {
        BTreeMap::from([
            (
                self.context.clone(),
                LocalDir {
                    root: context.to_owned(),
                    allow: None,
                    staged,
                },
            ),
            (
                self.dockerfile.clone(),
                LocalDir {
                    root: dockerfile_dir.to_owned(),
                    allow: None,
                    staged: BTreeMap::new(),
                },
            ),
        ])
    }

    /// Where the frontend reads the context from: the session's `context` dir, or ours as an input filtered by
    /// `excludes` (asked only then).
    pub(crate) fn context_source<E>(
        &self,
        excludes: impl FnOnce() -> Result<Vec<String>, E>,
    ) -> Result<ContextSource, E> {
        if self.context == CONTEXT_DIR {
            return Ok(ContextSource::Session);
        }
        Ok(ContextSource::Input {
            dir: self.context.clone(),
            excludes: excludes()?,
        })
    }
}

/// The `.dockerignore` patterns of a Dockerfile image as its frontend reads them: `<Dockerfile>.dockerignore`
/// beside the Dockerfile if there is one, else the context's `.dockerignore`; none if neither exists.
pub(crate) fn dockerignore_patterns(
    context: &Path,
    dockerfile: &Path,
) -> Result<Vec<String>, UnreadableIgnoreFile> {
    let beside = dockerfile.with_file_name(format!(
        "{}.dockerignore",
        dockerfile.file_name().unwrap_or_default().to_string_lossy()
    ));
    for candidate in [beside, context.join(".dockerignore")] {
        match std::fs::read_to_string(&candidate) {
            Ok(text) => return Ok(parse_dockerignore(&text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(detail) => {
                return Err(UnreadableIgnoreFile {
                    path: candidate,
                    detail,
                });
            }
        }
    }
    Ok(Vec::new())
}

/// A `.dockerignore` that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {detail}", .path.display())]
pub(crate) struct UnreadableIgnoreFile {
    /// The file.
    pub(crate) path: PathBuf,
    /// Why.
    pub(crate) detail: std::io::Error,
}

/// A `.dockerignore`'s patterns, as Docker reads them: `#` lines and blank lines skipped, each pattern trimmed and
/// cleaned (`.` and `..` resolved, a leading `/` dropped), a leading `!` kept.
fn parse_dockerignore(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        let (invert, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if pattern.is_empty() {
            continue;
        }
        let mut pattern = clean_path(pattern);
        if pattern.len() > 1 && pattern.starts_with('/') {
            pattern.remove(0);
        }
        patterns.push(if invert {
            format!("!{pattern}")
        } else {
            pattern
        });
    }
    patterns
}

/// A path cleaned lexically like Go's `filepath.Clean`: repeated `/` and `.` removed, `..` resolved against what
/// precedes it (kept at the start of a relative path, dropped at the root).
fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// The definition of a context served as an input: the session dir, filtered by `excludes`.
fn context_input(dir: &str, excludes: &[String], platform: &Platform) -> pb::Definition {
    let (mut source, mut metadata) = super::llb::local_source(dir, dir, &[], None);
    source.platform = Some(super::llb::platform(platform));
    if let (Some(pb::op::Op::Source(op)), false) = (&mut source.op, excludes.is_empty()) {
        let json = serde_json::to_string(excludes).expect("strings serialize");
        op.attrs.insert("local.excludepatterns".to_owned(), json);
        (metadata.caps).insert("source.local.excludepatterns".to_owned(), true);
    }
    metadata.description = BTreeMap::from([("llb.customname".to_owned(), format!("load {dir}"))]);
    let mut builder = super::llb::DefinitionBuilder::default();
    let output = builder.add(&source, metadata);
    builder.finish(&output)
}

/// A workspace image a Dockerfile names as `FROM hive-<name>`: its definition for the platform, and its image
/// config (so the stage starts from its env, user, workdir, entrypoint, as from a registry image).
#[derive(Debug, Clone)]
pub(crate) struct NamedContext {
    /// The image's LLB for the platform.
    pub(crate) definition: Llb,
    /// The image's config JSON for the platform.
    pub(crate) config: Vec<u8>,
}

/// One platform of a Dockerfile image, as the frontend is asked for it.
#[derive(Debug, Clone)]
pub(crate) struct DockerfileSolve {
    /// The one platform built by this call (the engine calls once per platform).
    pub(crate) platform: Platform,
    /// Where the frontend reads the build context from.
    pub(crate) context: ContextSource,
    /// The session dir the frontend reads the Dockerfile from.
    pub(crate) dockerfile_dir: String,
    /// The Dockerfile's name in its directory (`api.Dockerfile`).
    pub(crate) dockerfile_name: String,
    /// The stage to build (`--target`), or the last one.
    pub(crate) target: Option<String>,
    /// `--build-arg`s.
    pub(crate) build_args: BTreeMap<String, String>,
    /// Workspace images by name (without the `hive-` prefix): `FROM hive-<name>`.
    pub(crate) named_contexts: BTreeMap<String, NamedContext>,
    /// Workspace images the Dockerfile names that are built first in the same solve (a Dockerfile image, or our
    /// layers on one): named contexts once built, from their result's definition and config.
    pub(crate) built_contexts: BTreeMap<String, PlatformBuild>,
    /// `--no-cache`: every step of every stage runs again.
    pub(crate) no_cache: bool,
}

/// What the frontend built for the platform.
#[derive(Debug, Clone)]
pub(crate) struct DockerfileResult {
    /// The image's filesystem, to return (or to use as a `hive:` base).
    pub(crate) result: ResultRef,
    /// The image config the frontend made, to adjust (labels) and return with it.
    pub(crate) config: Vec<u8>,
}

/// Why a Dockerfile image could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerfileError {
    /// The daemon's Dockerfile frontend predates named contexts.
    #[error(
        "{} {} named contexts, which this daemon's Dockerfile frontend lacks (Docker 23+ / BuildKit v0.10+)",
        from_lines(.names),
        if .names.len() == 1 { "needs" } else { "need" }
    )]
    NamedContextsUnsupported {
        /// The images, as the Dockerfile names them (`hive-api`).
        names: Vec<String>,
    },
    /// A workspace image whose name cannot follow `FROM` (a bug in the plan: it checks names).
    #[error(
        "`{0}` cannot be named in a Dockerfile: an image name there is lowercase letters and digits separated by \
         `.`, `_`, `__` or dashes"
    )]
    InvalidContextName(String),
    /// The frontend failed: a Dockerfile error, a failing step, a missing file; the daemon's words.
    #[error("{0}")]
    Frontend(String),
    /// The frontend answered without an image for the platform.
    #[error("the Dockerfile frontend returned no image for {0}")]
    NoImage(Platform),
    /// The frontend answered without an image config for the platform.
    #[error("the Dockerfile frontend returned no image config for {0}")]
    NoConfig(Platform),
    /// A workspace image the Dockerfile names failed to build.
    #[error(transparent)]
    Context(#[from] FrontendError),
    /// A workspace image the Dockerfile names was built, but the daemon did not say from what.
    #[error(
        "`{0}` was built, but this daemon does not return the definition of a result, which a Dockerfile's \
         `FROM hive-{0}` needs"
    )]
    NoDefinition(String),
}

impl From<DockerfileError> for FrontendError {
    fn from(error: DockerfileError) -> FrontendError {
        FrontendError(error.to_string())
    }
}

/// `FROM hive-a`, `FROM hive-a, FROM hive-b`.
fn from_lines(names: &[String]) -> String {
    (names.iter())
        .map(|name| format!("FROM {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DockerfileSolve {
    /// The frontend's options: `filename` (in `dockerfilekey` when that is not the default dir), `target`,
    /// `build-arg:K` (the build's `SOURCE_DATE_EPOCH` among them, so the frontend dates the image and its history
    /// by it), one `platform`, `no-cache`, and per workspace image
    /// `context:hive-<name>` = `input:hive-<name>` with its config in `input-metadata:hive-<name>`, asking for the
    /// named-contexts capability so an older frontend refuses instead of pulling.
    pub(crate) fn frontend_opts(
        &self,
        epoch: i64,
    ) -> Result<BTreeMap<String, String>, DockerfileError> {
        let mut opts = BTreeMap::from([
            ("filename".to_owned(), self.dockerfile_name.clone()),
            ("platform".to_owned(), self.platform.to_string()),
        ]);
        if self.dockerfile_dir != DOCKERFILE_DIR {
            opts.insert("dockerfilekey".to_owned(), self.dockerfile_dir.clone());
        }
        if let Some(target) = &self.target {
            opts.insert("target".to_owned(), target.clone());
        }
        for (key, value) in &self.build_args {
            opts.insert(format!("build-arg:{key}"), value.clone());
        }
        // The build's epoch wins over a build arg of the same name: it is what every image of the build uses.
        opts.insert("build-arg:SOURCE_DATE_EPOCH".to_owned(), epoch.to_string());
        if self.no_cache {
            // Empty: every stage (a list would name stages).
            opts.insert("no-cache".to_owned(), String::new());
        }
        if !self.named_contexts.is_empty() {
            opts.insert("frontend.caps".to_owned(), CONTEXTS_CAP.to_owned());
        }
        for (name, context) in &self.named_contexts {
            let full = context_name(name)?;
            opts.insert(format!("context:{full}"), format!("input:{full}"));
            opts.insert(
                format!("input-metadata:{full}"),
                input_metadata(&context.config),
            );
        }
        Ok(opts)
    }

    /// The definitions the named contexts read (`input:hive-<name>`), and the build context when it is an input.
    pub(crate) fn frontend_inputs(&self) -> BTreeMap<String, pb::Definition> {
        let mut inputs: BTreeMap<String, pb::Definition> = (self.named_contexts.iter())
            .map(|(name, context)| {
                let full = format!("{NAMED_CONTEXT_PREFIX}{name}");
                (full, context.definition.0.clone())
            })
            .collect();
        if let ContextSource::Input { dir, excludes } = &self.context {
            inputs.insert(
                CONTEXT_DIR.to_owned(),
                context_input(dir, excludes, &self.platform),
            );
        }
        inputs
    }

    /// The names the Dockerfile uses for the workspace images (`hive-api`), sorted.
    fn context_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> = (self.named_contexts.keys())
            .chain(self.built_contexts.keys())
            .collect();
        (names.into_iter())
            .map(|name| format!("{NAMED_CONTEXT_PREFIX}{name}"))
            .collect()
    }

    /// Whether the Dockerfile names workspace images.
    fn has_contexts(&self) -> bool {
        !(self.named_contexts.is_empty() && self.built_contexts.is_empty())
    }
}

/// `hive-<name>`, checked against the reference grammar the frontend parses `FROM` with (one path component).
fn context_name(name: &str) -> Result<String, DockerfileError> {
    let full = format!("{NAMED_CONTEXT_PREFIX}{name}");
    if is_path_component(&full) {
        Ok(full)
    } else {
        Err(DockerfileError::InvalidContextName(full))
    }
}

/// Docker's reference path component: `[a-z0-9]+` runs separated by `.`, `_`, `__` or any number of `-`.
fn is_path_component(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut runs = text.split(alnum).peekable();
    // Splitting on the alphanumerics leaves the separators; the first and last pieces must be empty (the text
    // starts and ends alphanumeric), and each inner non-empty piece a separator.
    let (Some(first), true) = (runs.next(), text.chars().last().is_some_and(alnum)) else {
        return false;
    };
    first.is_empty()
        && runs.all(|separator| {
            matches!(separator, "" | "." | "_" | "__")
                || (!separator.is_empty() && separator.chars().all(|c| c == '-'))
        })
}

/// `input-metadata:<name>`: Go's JSON of a `map[string][]byte` (values base64) with the image config under
/// `containerimage.config`.
fn input_metadata(config: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(config);
    serde_json::json!({ "containerimage.config": encoded }).to_string()
}

/// Whether the frontend refused for lack of named contexts (`UnsupportedFrontendCapError`).
fn lacks_named_contexts(status: &Status) -> bool {
    (status.message()).contains(&format!("unsupported frontend capability {CONTEXTS_CAP}"))
}

/// Builds one platform of a Dockerfile image through the daemon's Dockerfile frontend, from inside our frontend
/// (the session must serve its [`LocalNames`]), after the workspace images it names that are built in the solve.
pub(super) async fn solve_dockerfile(
    gateway: &Gateway,
    solve: &DockerfileSolve,
    epoch: i64,
    packing: &Packing,
) -> Result<DockerfileResult, DockerfileError> {
    let unsupported = || DockerfileError::NamedContextsUnsupported {
        names: solve.context_names(),
    };
    if solve.has_contexts() && !gateway.caps().frontend_inputs() {
        return Err(unsupported());
    }
    let mut solve = solve.clone();
    for (name, build) in std::mem::take(&mut solve.built_contexts) {
        let (result, config) = build_platform(gateway, build, epoch, packing).await?;
        let definition =
            (result.definition().cloned()).ok_or(DockerfileError::NoDefinition(name.clone()))?;
        let context = NamedContext {
            definition: Llb(definition),
            config,
        };
        solve.named_contexts.insert(name, context);
    }
    let opts = solve.frontend_opts(epoch)?;
    let answer = gateway
        .solve_frontend(DOCKERFILE_FRONTEND, opts, solve.frontend_inputs())
        .await;
    let result = match answer {
        Ok(result) => result,
        Err(status) if lacks_named_contexts(&status) => return Err(unsupported()),
        Err(status) => return Err(DockerfileError::Frontend(status.message().to_owned())),
    };
    let id = solve.platform.to_string();
    let image = (result.result_for(&id).cloned())
        .ok_or_else(|| DockerfileError::NoImage(solve.platform.clone()))?;
    let config = (result.config_for(&id).map(<[u8]>::to_vec))
        .ok_or_else(|| DockerfileError::NoConfig(solve.platform.clone()))?;
    Ok(DockerfileResult {
        result: image,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::llb;
    use hive_proto::tonic::Code;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn solve() -> DockerfileSolve {
        DockerfileSolve {
            platform: platform("linux/arm/v7"),
            context: ContextSource::Session,
            dockerfile_dir: DOCKERFILE_DIR.to_owned(),
            dockerfile_name: "api.Dockerfile".to_owned(),
            target: None,
            build_args: BTreeMap::new(),
            named_contexts: BTreeMap::new(),
            built_contexts: BTreeMap::new(),
            no_cache: false,
        }
    }

    fn context(config: &[u8]) -> NamedContext {
        let definition = llb::file_on_scratch("/f", b"x", llb::platform(&platform("linux/arm/v7")));
        NamedContext {
            definition: Llb(definition),
            config: config.to_vec(),
        }
    }

    #[test]
    fn the_plain_options_of_one_platform() {
        let opts = solve().frontend_opts(1_700_000_000).unwrap();
        assert_eq!(
            opts,
            BTreeMap::from([
                (
                    "build-arg:SOURCE_DATE_EPOCH".to_owned(),
                    "1700000000".to_owned()
                ),
                ("filename".to_owned(), "api.Dockerfile".to_owned()),
                ("platform".to_owned(), "linux/arm/v7".to_owned()),
            ])
        );
        assert!(solve().frontend_inputs().is_empty());
    }

    #[test]
    fn target_build_args_and_no_cache() {
        let solve = DockerfileSolve {
            target: Some("runtime".to_owned()),
            build_args: BTreeMap::from([
                ("FEATURES".to_owned(), "tls".to_owned()),
                ("SOURCE_DATE_EPOCH".to_owned(), "1".to_owned()),
            ]),
            no_cache: true,
            ..solve()
        };
        let opts = solve.frontend_opts(42).unwrap();
        assert_eq!(opts["target"], "runtime");
        assert_eq!(opts["build-arg:FEATURES"], "tls");
        // The build's epoch is every image's.
        assert_eq!(opts["build-arg:SOURCE_DATE_EPOCH"], "42");
        assert_eq!(opts["no-cache"], "");
        assert!(!opts.contains_key("frontend.caps"));
    }

    #[test]
    fn workspace_images_are_named_contexts_read_from_inputs_with_their_config() {
        let solve = DockerfileSolve {
            named_contexts: BTreeMap::from([
                (
                    "base".to_owned(),
                    context(b"{\"config\":{\"User\":\"app\"}}"),
                ),
                ("tools".to_owned(), context(b"{}")),
            ]),
            ..solve()
        };
        let opts = solve.frontend_opts(0).unwrap();
        assert_eq!(opts["frontend.caps"], "moby.buildkit.frontend.contexts");
        assert_eq!(opts["context:hive-base"], "input:hive-base");
        assert_eq!(opts["context:hive-tools"], "input:hive-tools");
        // Go decodes a map[string][]byte from base64 strings.
        let metadata: serde_json::Value =
            serde_json::from_str(&opts["input-metadata:hive-base"]).unwrap();
        let config = base64::engine::general_purpose::STANDARD
            .decode(metadata["containerimage.config"].as_str().unwrap())
            .unwrap();
        assert_eq!(config, b"{\"config\":{\"User\":\"app\"}}");
        let inputs = solve.frontend_inputs();
        assert_eq!(
            inputs.keys().collect::<Vec<_>>(),
            ["hive-base", "hive-tools"]
        );
        assert_eq!(
            inputs["hive-base"],
            solve.named_contexts["base"].definition.0
        );
    }

    #[test]
    fn names_that_cannot_follow_from_are_refused() {
        for good in ["api", "api-debug", "a.b", "a_b", "a__b", "a---b", "v2"] {
            assert!(context_name(good).is_ok(), "{good}");
        }
        for bad in [
            "Api",
            "api@debug",
            "api-",
            "a..b",
            "a___b",
            "a/b",
            "a:b",
            "",
        ] {
            let solve = DockerfileSolve {
                named_contexts: BTreeMap::from([(bad.to_owned(), context(b"{}"))]),
                ..solve()
            };
            let error = solve.frontend_opts(0).unwrap_err();
            assert!(
                matches!(&error, DockerfileError::InvalidContextName(name) if *name == format!("hive-{bad}")),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn an_old_frontend_says_it_lacks_named_contexts() {
        // What BuildKit v0.8's Dockerfile frontend answers when asked for the capability.
        let status = Status::new(
            Code::Unimplemented,
            "unsupported frontend capability moby.buildkit.frontend.contexts",
        );
        assert!(lacks_named_contexts(&status));
        assert!(!lacks_named_contexts(&Status::unknown(
            "failed to solve: dockerfile parse error"
        )));
        let one = DockerfileError::NamedContextsUnsupported {
            names: vec!["hive-base".to_owned()],
        };
        assert_eq!(
            one.to_string(),
            "FROM hive-base needs named contexts, which this daemon's Dockerfile frontend lacks (Docker 23+ / \
             BuildKit v0.10+)"
        );
        let two = DockerfileError::NamedContextsUnsupported {
            names: vec!["hive-a".to_owned(), "hive-b".to_owned()],
        };
        assert!(
            two.to_string()
                .starts_with("FROM hive-a, FROM hive-b need named contexts"),
            "{two}"
        );
    }

    #[test]
    fn the_frontend_reads_the_context_with_the_binaries_and_the_dockerfiles_dir() {
        let staged = BTreeMap::from([(
            staged_binary_path(&platform("linux/amd64"), "api"),
            PathBuf::from("/ws/target/x86_64-unknown-linux-gnu/release/api"),
        )]);
        let dirs = DockerfileDirs::nested("api@debug").local_dirs(
            Path::new("/ws/api"),
            Path::new("/ws/api/docker"),
            staged.clone(),
        );
        assert_eq!(
            dirs.keys().collect::<Vec<_>>(),
            ["api@debug-context", "api@debug-dockerfile"]
        );
        assert_eq!(dirs["api@debug-context"].root, Path::new("/ws/api"));
        assert_eq!(dirs["api@debug-context"].staged, staged);
        assert_eq!(
            dirs["api@debug-dockerfile"].root,
            Path::new("/ws/api/docker")
        );
        assert!(dirs["api@debug-dockerfile"].staged.is_empty());
        assert!(dirs.values().all(|dir| dir.allow.is_none()));
    }

    #[test]
    fn a_nested_dockerfile_reads_its_context_as_an_input_filtered_by_its_dockerignore() {
        let main = DockerfileDirs::main().context_source(|| Err::<Vec<String>, ()>(()));
        assert_eq!(main, Ok(ContextSource::Session));
        let nested = DockerfileDirs::nested("tools");
        let excludes = || Ok::<_, ()>(vec!["target".to_owned(), "!target/keep".to_owned()]);
        let solve = DockerfileSolve {
            context: nested.context_source(excludes).unwrap(),
            dockerfile_dir: nested.dockerfile.clone(),
            ..solve()
        };
        let opts = solve.frontend_opts(0).unwrap();
        assert_eq!(opts["dockerfilekey"], "tools-dockerfile");
        let inputs = solve.frontend_inputs();
        let op =
            <pb::Op as hive_proto::prost::Message>::decode(inputs["context"].def[0].as_slice());
        let Some(pb::op::Op::Source(source)) = op.unwrap().op else {
            panic!("the context input is not a source")
        };
        assert_eq!(source.identifier, "local://tools-context");
        assert_eq!(
            source.attrs["local.excludepatterns"],
            r#"["target","!target/keep"]"#
        );
        // The solve's own Dockerfile keeps the frontend's defaults.
        assert!(
            !self::solve()
                .frontend_opts(0)
                .unwrap()
                .contains_key("dockerfilekey")
        );
        assert!(!self::solve().frontend_inputs().contains_key("context"));
    }

    #[test]
    fn dockerignore_files_read_as_docker_reads_them() {
        let text = "\u{feff}# comment\n\n  target  \n!target/keep\n/abs/./x/../y\n! spaced \n*.log\n../up\n";
        assert_eq!(
            parse_dockerignore(text),
            [
                "target",
                "!target/keep",
                "abs/y",
                "!spaced",
                "*.log",
                "../up"
            ]
        );
        for (path, clean) in [
            ("a//b/./c/..", "a/b"),
            ("/../a", "/a"),
            ("../../a", "../../a"),
            ("a/..", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean_path(path), clean, "{path}");
        }
        let dir = tempfile::tempdir().unwrap();
        let dockerfile = dir.path().join("docker/api.Dockerfile");
        std::fs::create_dir_all(dockerfile.parent().unwrap()).unwrap();
        assert!(
            dockerignore_patterns(dir.path(), &dockerfile)
                .unwrap()
                .is_empty()
        );
        std::fs::write(dir.path().join(".dockerignore"), "notes\n").unwrap();
        assert_eq!(
            dockerignore_patterns(dir.path(), &dockerfile).unwrap(),
            ["notes"]
        );
        // The Dockerfile's own ignore file wins.
        std::fs::write(
            dir.path().join("docker/api.Dockerfile.dockerignore"),
            "src\n",
        )
        .unwrap();
        assert_eq!(
            dockerignore_patterns(dir.path(), &dockerfile).unwrap(),
            ["src"]
        );
        // One that cannot be read is named (a directory here), not skipped.
        let other = dir.path().join("docker/other.Dockerfile");
        std::fs::create_dir(dir.path().join("docker/other.Dockerfile.dockerignore")).unwrap();
        let error = dockerignore_patterns(dir.path(), &other).unwrap_err();
        assert_eq!(
            error.path,
            dir.path().join("docker/other.Dockerfile.dockerignore")
        );
    }

    #[test]
    fn binaries_are_staged_under_their_platform() {
        assert_eq!(
            staged_binary_path(&platform("linux/amd64"), "api"),
            ".hive/bin/linux/amd64/api"
        );
        assert_eq!(
            staged_binary_path(&platform("linux/arm/v7"), "api"),
            ".hive/bin/linux/arm/v7/api"
        );
    }
}
