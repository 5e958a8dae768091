//! Why one image failed: each step of `job` says it with its own variant.

use std::path::PathBuf;

use crate::buildkit::{ConfigError, SolveError};
use crate::output::{DestinationError, IndexError, LoadError};

/// Why one image failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// The image's SBOM could not be made or written.
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    /// Cargo built no binary for the image.
    #[error(
        "cargo did not produce the binary `{binary}` of package `{package}` for image `{image}`"
    )]
    MissingBinary {
        /// The bin target.
        binary: String,
        /// Its package.
        package: String,
        /// The image.
        image: String,
    },
    /// A `hive:` base that the plan does not hold.
    #[error("the base `hive:{0}` is not in the plan")]
    NotInPlan(String),
    /// A path with no parent or no file name.
    #[error("`{0}` is not a file or directory path")]
    NotAPath(PathBuf),
    /// A declared file that is gone.
    #[error("`{source_path}` (for {destination}) does not exist")]
    MissingFile {
        /// The file as declared.
        source_path: String,
        /// Where it goes in the image.
        destination: String,
    },
    /// A dynamically linked binary on a base without its loader.
    #[error(transparent)]
    NoLoader(Box<NoLoader>),
    /// The base could not be resolved.
    #[error("cannot resolve the base image `{reference}`: {message}")]
    BaseUnresolved {
        /// The base.
        reference: String,
        /// The daemon's words.
        message: String,
    },
    /// The base was never asked for (a bug in what the engine asked the daemon).
    #[error("the base image `{0}` was not resolved (a bug)")]
    BaseNotAsked(String),
    /// The image cannot go where it was asked to.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The image config could not be made.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An input could not be read for the up-to-date check.
    #[error("cannot read {path}: {detail}")]
    Unreadable {
        /// The input.
        path: PathBuf,
        /// Why (in the message: these errors travel as text in the build's summary).
        detail: std::io::Error,
    },
    /// The directory of the exported file could not be made.
    #[error("cannot create {path}: {detail}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        detail: std::io::Error,
    },
    /// The solve failed.
    #[error(transparent)]
    Solve(#[from] SolveError),
    /// `--load` cannot load the image on this Docker.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `--load` would get one platform and the other outputs all of them: one build cannot do both.
    #[error(
        "image `{image}`: {note}; the other outputs would get every platform, so build with --load alone, then \
         without it"
    )]
    LoadWithOthers {
        /// The image.
        image: String,
        /// What the load can do.
        note: String,
    },
    /// A RUN step failed on the daemon.
    #[error(transparent)]
    Step(Box<StepFailed>),
    /// Each platform's manifest digest, for `--metadata-file`, could not be read back.
    #[error("cannot read the manifests of image `{image}` for --metadata-file: {source}")]
    Manifests {
        /// The image.
        image: String,
        /// Why.
        source: Box<IndexError>,
    },
}

/// `--metadata-file` could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the metadata file {}", path.display())]
pub(crate) struct MetadataError {
    /// The file.
    pub(crate) path: PathBuf,
    /// Why.
    #[source]
    pub(crate) source: std::io::Error,
}

/// A dynamically linked binary on a base without its loader.
#[derive(Debug, thiserror::Error)]
#[error(
    "the binary `{binary}` of image `{image}` for {platform} is dynamically linked (it needs the loader \
     {interpreter}), but {base}: the container would fail at start with \"no such file or directory\". Build a \
     static binary (a musl target in `targets`, e.g. `targets = {{ \"{platform}\" = \"{musl}\" }}`, or \
     `-C target-feature=+crt-static`), or use a base with glibc (e.g. \
     `base = \"localhost:5000/hive/glibc:latest\"` from scripts/buildkit-up, or a distroless/debian image)"
)]
pub(crate) struct NoLoader {
    /// The bin target.
    pub(crate) binary: String,
    /// The image.
    pub(crate) image: String,
    /// The platform whose binary it is.
    pub(crate) platform: String,
    /// The musl triple of that platform, for the hint.
    pub(crate) musl: String,
    /// The loader it needs.
    pub(crate) interpreter: String,
    /// What the base lacks, in words.
    pub(crate) base: String,
}

/// A RUN step that failed: which one, where it is written, how it ended and what it said last.
#[derive(Debug, thiserror::Error)]
#[error(
    "step `run[{index}]` of image `{image}`{} failed{}: {command}{}",
    place.as_ref().map(|place| format!(" ({place})")).unwrap_or_default(),
    exit_code.map(|code| format!(" with exit code {code}")).unwrap_or_default(),
    last_output(last_lines)
)]
pub(crate) struct StepFailed {
    /// The image whose `run` holds the step.
    pub(crate) image: String,
    /// Its index there.
    pub(crate) index: usize,
    /// Where it is written (`Cargo.toml:18:7`, `build.rs of api`).
    pub(crate) place: Option<String>,
    /// The command, as the container ran it.
    pub(crate) command: String,
    /// The exit code, when the daemon said one.
    pub(crate) exit_code: Option<i32>,
    /// The last lines of its output.
    pub(crate) last_lines: Vec<String>,
}

fn last_output(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n  its last output:");
    for line in lines {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}
