//! Which renderer runs: decided once, from the requested `--progress`, whether stderr is a terminal and whether we
//! run in CI.

use std::io::IsTerminal;

use crate::commands::ProgressMode;

/// A renderer of the build's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One line per image on stderr, redrawn in place.
    Tty,
    /// Stable lines on stderr, like `buildctl --progress plain`.
    Plain,
    /// One JSON event per line on stdout.
    Json,
}

/// The renderer for `--progress requested`. `auto` draws live only on an interactive terminal: CI logs capture every
/// redraw, so CI gets plain lines even when it allocates a pseudo-terminal.
pub(crate) fn choose(requested: ProgressMode, stderr_is_terminal: bool, is_ci: bool) -> Mode {
    match requested {
        ProgressMode::Tty => Mode::Tty,
        ProgressMode::Plain => Mode::Plain,
        ProgressMode::Json => Mode::Json,
        ProgressMode::Auto if stderr_is_terminal && !is_ci => Mode::Tty,
        ProgressMode::Auto => Mode::Plain,
    }
}

/// [`choose`] for this process: stderr's terminal-ness, `CI` and a dumb terminal read from the environment.
pub(crate) fn detect(requested: ProgressMode) -> Mode {
    // A dumb terminal can't move the cursor: treat it like a pipe.
    let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
    choose(requested, std::io::stderr().is_terminal() && !dumb, is_ci())
}

/// Whether we run in CI: `CI` is set by GitHub Actions, GitLab, CircleCI, Travis, Buildkite and others;
/// `TF_BUILD` by Azure Pipelines.
fn is_ci() -> bool {
    let set = |name: &str| {
        std::env::var_os(name)
            .is_some_and(|value| !value.is_empty() && value != "false" && value != "0")
    };
    set("CI") || set("TF_BUILD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_table() {
        use Mode::*;
        use ProgressMode as R;
        // (requested, stderr is a terminal, CI) → mode
        let table = [
            (R::Auto, true, false, Tty),
            (R::Auto, true, true, Plain),
            (R::Auto, false, false, Plain),
            (R::Auto, false, true, Plain),
            (R::Tty, false, true, Tty),
            (R::Tty, true, false, Tty),
            (R::Plain, true, false, Plain),
            (R::Plain, false, true, Plain),
            (R::Json, true, false, Json),
            (R::Json, false, true, Json),
        ];
        for (requested, terminal, ci, expected) in table {
            assert_eq!(
                choose(requested, terminal, ci),
                expected,
                "--progress {requested:?}, terminal: {terminal}, CI: {ci}"
            );
        }
    }
}
