//! The one top-level error type: it owns the exit code and how an error is shown.

use hive_build::progress::ErrorKind;

use crate::buildkit::ConnectError;
use crate::cargo::CargoError;
use crate::interrupt::Signal;
use crate::output::DestinationError;

/// Documented exit codes of `cargo hive`.
pub mod exit_codes {
    /// Everything worked.
    pub const SUCCESS: i32 = 0;
    /// Any error: bad input, an unreachable daemon, a failed build, a daemon that is not ready.
    pub const FAILURE: i32 = 1;
    /// The command line could not be parsed (clap's usage errors).
    pub const USAGE: i32 = 2;
    /// Interrupted by SIGHUP (the terminal closed): 128 + 1, as a shell reports a process the signal ended.
    pub const HANGUP: i32 = 129;
    /// Interrupted by SIGINT (Ctrl-C): 128 + 2.
    pub const INTERRUPTED: i32 = 130;
    /// Interrupted by SIGTERM (`kill`, `timeout`, a CI cancel): 128 + 15.
    pub const TERMINATED: i32 = 143;
}

/// Anything that makes `cargo hive` fail: one variant per failure class, each keeping its cause.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HiveError {
    /// Errors in the user's input that have places (spans) in their files; all of them, rendered by miette.
    #[error("{} error{} in the image definitions", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Diagnostics(Vec<miette::Report>),
    /// Bad input with no place in a file: a flag, a package name, an environment variable; reads after "error: ".
    #[error("{0}")]
    Input(String),
    /// A file of the workspace could not be read.
    #[error("failed to read {}", .path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The user's cargo failed or could not run (`cargo metadata`, build scripts, the build itself).
    #[error(transparent)]
    Cargo(#[from] CargoError),
    /// BuildKit could not be reached or answered wrongly.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// What every image needs from the daemon (its bases) could not be had.
    #[error(transparent)]
    Prepare(#[from] crate::buildkit::SolveError),
    /// One or more images failed; the others were built.
    #[error(transparent)]
    Images(#[from] ImageFailures),
    /// A destination cannot take the images (e.g. `--load` with no Docker to load into).
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// A release cannot start: a dirty tree, a version that is not semver, a registry's tag list unreadable.
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// Cargo's resolve for the SBOMs could not be read.
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    /// A build secret could not be read before the build (its variable unset, its file unreadable).
    #[error(transparent)]
    Secret(#[from] crate::engine::SecretError),
    /// `--metadata-file` could not be written.
    #[error(transparent)]
    MetadataFile(#[from] crate::engine::MetadataError),
    /// Writing the command's output failed.
    #[error("failed to write output")]
    Output(#[source] std::io::Error),
    /// The process could not set itself up (the async runtime, signal handlers).
    #[error("failed to {what}")]
    Setup {
        /// What could not be done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SIGINT, SIGTERM or SIGHUP: the build was cancelled and cleaned up after.
    #[error("interrupted by {}", .0.name())]
    Interrupted(Signal),
}

/// The images that failed, by name, each with its error.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ImageFailures(pub(crate) Vec<(String, String)>);

impl std::fmt::Display for ImageFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self
            .0
            .iter()
            .map(|(name, err)| format!("image `{name}`: {err}"))
            .collect::<Vec<_>>()
            .join("\n");
        match self.0.len() {
            1 => f.write_str(&text),
            count => write!(f, "{count} images failed:\n{text}"),
        }
    }
}

impl HiveError {
    /// The process exit code for this error; every variant chooses its own.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            HiveError::Output(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                exit_codes::SUCCESS
            }
            HiveError::Diagnostics(_)
            | HiveError::Input(_)
            | HiveError::Read { .. }
            | HiveError::Cargo(_)
            | HiveError::Connect(_)
            | HiveError::Prepare(_)
            | HiveError::Images(_)
            | HiveError::Destination(_)
            | HiveError::MetadataFile(_)
            | HiveError::Release(_)
            | HiveError::Sbom(_)
            | HiveError::Secret(_)
            | HiveError::Output(_)
            | HiveError::Setup { .. } => exit_codes::FAILURE,
            HiveError::Interrupted(Signal::Interrupt) => exit_codes::INTERRUPTED,
            HiveError::Interrupted(Signal::Terminate) => exit_codes::TERMINATED,
            HiveError::Interrupted(Signal::Hangup) => exit_codes::HANGUP,
        }
    }

    /// The message, then every cause it does not already say on a line of its own (`caused by: …`): what a JSON
    /// reader gets where stderr shows "Caused by:".
    pub(crate) fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let causes = unsaid_causes(&text, self);
        for cause in causes {
            text.push_str("\ncaused by: ");
            text.push_str(&cause);
        }
        text
    }

    /// The failure's class, as `--progress json` reports it in its `error` event.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            HiveError::Diagnostics(_)
            | HiveError::Input(_)
            | HiveError::Read { .. }
            | HiveError::Secret(_) => ErrorKind::InvalidDefinitions,
            HiveError::Cargo(_) | HiveError::Sbom(_) => ErrorKind::CargoFailed,
            HiveError::Connect(_) => ErrorKind::DaemonUnreachable,
            HiveError::Prepare(_) | HiveError::Images(_) => ErrorKind::ImageFailed,
            HiveError::Destination(_) | HiveError::MetadataFile(_) | HiveError::Output(_) => {
                ErrorKind::OutputFailed
            }
            HiveError::Release(crate::release::ReleaseError::Tags { .. }) => {
                ErrorKind::OutputFailed
            }
            HiveError::Release(_) => ErrorKind::InvalidDefinitions,
            HiveError::Interrupted(_) => ErrorKind::Interrupted,
            HiveError::Setup { .. } => ErrorKind::Internal,
        }
    }
}

/// The causes of `err` that its message (or an earlier cause) does not already say: many messages end with
/// `: {source}`, and a "Caused by:" line repeating it would only be noise.
pub(crate) fn unsaid_causes(message: &str, err: &dyn std::error::Error) -> Vec<String> {
    let mut said = message.to_owned();
    let mut causes = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !said.contains(&text) {
            said.push('\n');
            said.push_str(&text);
            causes.push(text);
        }
        source = cause.source();
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /x: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the build failed")]
    struct Outer {
        #[source]
        source: Quoting,
    }

    #[test]
    fn causes_already_said_are_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let quoting = Quoting { source: io() };
        assert_eq!(
            unsaid_causes(&quoting.to_string(), &quoting),
            Vec::<String>::new()
        );
        let outer = Outer {
            source: Quoting { source: io() },
        };
        assert_eq!(
            unsaid_causes(&outer.to_string(), &outer),
            ["cannot read /x: no such file"]
        );
        let top = HiveError::MetadataFile(crate::engine::MetadataError {
            path: "/m.json".into(),
            source: io(),
        });
        assert_eq!(
            top.with_causes(),
            "cannot write the metadata file /m.json\ncaused by: no such file"
        );
    }

    #[test]
    fn a_signal_exits_with_128_plus_its_number() {
        for (signal, code) in [
            (Signal::Hangup, 129),
            (Signal::Interrupt, 130),
            (Signal::Terminate, 143),
        ] {
            let err = HiveError::Interrupted(signal);
            assert_eq!(err.exit_code(), code);
            assert_eq!(err.to_string(), format!("interrupted by {}", signal.name()));
            assert_eq!(err.kind(), ErrorKind::Interrupted);
        }
    }

    #[test]
    fn failed_images_are_listed_one_a_line() {
        let one = ImageFailures(vec![("a".into(), "boom".into())]);
        assert_eq!(one.to_string(), "image `a`: boom");
        let two = ImageFailures(vec![("a".into(), "x".into()), ("b".into(), "y".into())]);
        assert_eq!(
            two.to_string(),
            "2 images failed:\nimage `a`: x\nimage `b`: y"
        );
        assert_eq!(HiveError::Images(two).kind(), ErrorKind::ImageFailed);
    }
}
