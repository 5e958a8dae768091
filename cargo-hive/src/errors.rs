//! The one top-level error type: it owns the exit code and how an error is shown.

use crate::buildkit::ConnectError;
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

/// Anything that makes `cargo hive` fail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HiveError {
    /// Errors in the user's input that have places (spans) in their files; all of them, rendered by miette.
    #[error("{} error{} in the image definitions", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Diagnostics(Vec<miette::Report>),
    /// BuildKit could not be reached or answered wrongly.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A message that needs no more structure; reads after "error: ".
    #[error("{0}")]
    Message(String),
    /// Writing the command's output failed.
    #[error("failed to write output")]
    Output(#[source] std::io::Error),
    /// A destination cannot take the images (e.g. `--load` with no Docker to load into).
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// SIGINT, SIGTERM or SIGHUP: the build was cancelled and cleaned up after.
    #[error("interrupted by {}", .0.name())]
    Interrupted(Signal),
}

impl HiveError {
    /// The process exit code for this error; every variant chooses its own.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            HiveError::Diagnostics(_) => exit_codes::FAILURE,
            HiveError::Connect(_) => exit_codes::FAILURE,
            HiveError::Message(_) => exit_codes::FAILURE,
            HiveError::Output(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                exit_codes::SUCCESS
            }
            HiveError::Output(_) => exit_codes::FAILURE,
            HiveError::Destination(_) => exit_codes::FAILURE,
            HiveError::Interrupted(Signal::Interrupt) => exit_codes::INTERRUPTED,
            HiveError::Interrupted(Signal::Terminate) => exit_codes::TERMINATED,
            HiveError::Interrupted(Signal::Hangup) => exit_codes::HANGUP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }
}
