//! Which renderer runs: decided once, from the requested `--progress`, whether stderr is a terminal and whether we
//! run in CI.

/// A renderer of the build's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renderer {
    /// One line per image on stderr, redrawn in place.
    Tty,
    /// Stable lines on stderr, like `buildctl --progress plain`.
    Plain,
    /// One JSON event per line on stdout.
    Json,
}

/// The renderer for `requested` (`None`: auto). Auto draws live only on an interactive terminal: CI logs capture
/// every redraw, so CI gets plain lines even when it allocates a pseudo-terminal.
pub(crate) fn choose(
    requested: Option<Renderer>,
    stderr_is_terminal: bool,
    is_ci: bool,
) -> Renderer {
    match requested {
        Some(renderer) => renderer,
        None if stderr_is_terminal && !is_ci => Renderer::Tty,
        None => Renderer::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_table() {
        use Renderer::*;
        // (requested, stderr is a terminal, CI) → renderer
        let table = [
            (None, true, false, Tty),
            (None, true, true, Plain),
            (None, false, false, Plain),
            (None, false, true, Plain),
            (Some(Tty), false, true, Tty),
            (Some(Tty), true, false, Tty),
            (Some(Plain), true, false, Plain),
            (Some(Plain), false, true, Plain),
            (Some(Json), true, false, Json),
            (Some(Json), false, true, Json),
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
