//! Messages to stderr in cargo's style (`error:`, `warning:`, `Caused by:`), honouring `--color`, `-v` and `-q`.

use std::io::Write;

use anstream::ColorChoice;
use owo_colors::OwoColorize;

use crate::errors::HiveError;

/// Where human-facing messages go, and how they look.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    choice: ColorChoice,
    quiet: bool,
}

impl Term {
    /// Messages coloured as `choice` says (the command line decides, from `--color` and `CARGO_TERM_COLOR`).
    pub(crate) fn new(choice: ColorChoice, quiet: bool) -> Self {
        Term { choice, quiet }
    }

    /// Whether colour escapes go to stderr.
    pub(crate) fn stderr_color(&self) -> bool {
        anstream::AutoStream::new(std::io::stderr(), self.choice).current_choice()
            != ColorChoice::Never
    }

    /// Whether colour escapes go to stdout.
    pub(crate) fn stdout_color(&self) -> bool {
        anstream::AutoStream::new(std::io::stdout(), self.choice).current_choice()
            != ColorChoice::Never
    }

    /// `-q`.
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet
    }

    fn stderr(&self) -> anstream::AutoStream<std::io::Stderr> {
        anstream::AutoStream::new(std::io::stderr(), self.choice)
    }

    /// An error line.
    pub(crate) fn error(&self, message: &str) {
        let _ = writeln!(self.stderr(), "{}: {message}", "error".red().bold());
    }

    /// A cargo-style status line, `    Released api: …` (none under `-q`).
    pub(crate) fn status(&self, verb: &str, message: &str) {
        if self.quiet {
            return;
        }
        let _ = writeln!(self.stderr(), "{:>12} {message}", verb.green().bold());
    }

    /// A warning line (none under `-q`, as with cargo).
    pub(crate) fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        let _ = writeln!(self.stderr(), "{}: {message}", "warning".yellow().bold());
    }

    /// Shows an error with its causes; diagnostics are rendered by miette with their source spans.
    pub(crate) fn report(&self, err: HiveError) {
        match err {
            HiveError::Diagnostics(reports) => {
                let count = reports.len();
                let handler = miette::GraphicalReportHandler::new_themed(if self.stderr_color() {
                    miette::GraphicalTheme::unicode()
                } else {
                    miette::GraphicalTheme::unicode_nocolor()
                });
                let mut out = String::new();
                for report in &reports {
                    out.clear();
                    let _ = handler.render_report(&mut out, report.as_ref());
                    let _ = writeln!(self.stderr(), "{out}");
                }
                self.error(&format!(
                    "{count} error{} in the image definitions",
                    if count == 1 { "" } else { "s" }
                ));
            }
            other => {
                let message = other.to_string();
                self.error(&message);
                let causes = crate::errors::unsaid_causes(&message, &other);
                if !causes.is_empty() {
                    let _ = writeln!(self.stderr(), "\nCaused by:");
                }
                for cause in causes {
                    let _ = writeln!(self.stderr(), "  {cause}");
                }
            }
        }
    }
}
