//! `--progress tty`: one line per image on stderr, redrawn in place at most ten times a second.
//!
//! ```text
//!     Building api     1.4s  [3/5] copy /api /usr/local/bin/api 0.2s
//!        Built hello   0.9s  target/hive/hello.oci.tar, 3 steps, 2 cached
//!       Failed worker  0.4s  [2/4] exec false: process "false" did not complete successfully: exit code: 1
//! ```
//!
//! Frames are plain ANSI: the cursor goes back up over the previous frame, which is cleared and drawn again in one
//! write. Lines are cut to the terminal's width, since a wrapped line would throw off the count of lines to go back
//! over. Warnings and a failed step's last log lines are printed above the frame, where they stay. Nothing is drawn
//! while cargo compiles: cargo draws its own progress on the same terminal.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use hive_build::progress::Event as Out;
use owo_colors::{OwoColorize, Style};

use super::display::{self, Display};
use super::reporter::Sink;
use super::tracker::{ImageState, Outcome, Phase, Tracker};

/// The shortest time between two frames.
pub(super) const FRAME: Duration = Duration::from_millis(100);

/// The width of the status verb column, as cargo's (`   Compiling`).
const VERB_WIDTH: usize = 12;

/// The tty renderer.
pub(super) struct Tty<W> {
    out: W,
    display: Display,
    color: bool,
    /// A fixed size in columns and rows (tests), or `None` to ask the terminal before each frame.
    size: Option<(usize, usize)>,
    /// Whether anything changed since the last frame.
    dirty: bool,
    /// Lines of the frame on screen.
    drawn: usize,
    last_frame: Option<Duration>,
    /// Text to print above the next frame.
    above: String,
    summary: Option<String>,
}

impl<W: Write + Send> Tty<W> {
    pub(super) fn new(out: W, display: Display, color: bool, size: Option<(usize, usize)>) -> Self {
        Tty {
            out,
            display,
            color,
            size,
            dirty: false,
            drawn: 0,
            last_frame: None,
            above: String::new(),
            summary: None,
        }
    }

    fn paint(&self, text: &str, style: Style) -> String {
        if self.color {
            text.style(style).to_string()
        } else {
            text.to_owned()
        }
    }

    fn size(&self) -> (usize, usize) {
        self.size.unwrap_or_else(|| {
            terminal_size::terminal_size_of(io::stderr()).map_or(
                (80, 24),
                |(terminal_size::Width(columns), terminal_size::Height(rows))| {
                    (usize::from(columns), usize::from(rows))
                },
            )
        })
    }

    /// The lines of a frame at `now`; `last` for the final one, which stays on screen whatever its height.
    fn frame(&self, now: Duration, tracker: &Tracker, last: bool) -> Vec<String> {
        let (columns, rows) = self.size();
        // One column short: writing the last column leaves some terminals' cursor pending a wrap.
        let width = columns.saturating_sub(1).max(VERB_WIDTH + 10);
        let mut images: Vec<&ImageState> = tracker.images().iter().collect();
        let name_width = images
            .iter()
            .map(|image| image.name.chars().count())
            .max()
            .unwrap_or(0);
        // The cursor can't go back over a frame taller than the screen: images still building (or failed) first,
        // the built ones counted.
        let room = rows.saturating_sub(2).max(1);
        let mut hidden = 0;
        if !last && images.len() > room {
            images.sort_by_key(|image| matches!(image.outcome, Outcome::Finished { .. }));
            hidden = images.len() - (room - 1);
            images.truncate(room - 1);
        }
        let mut lines: Vec<String> = images
            .into_iter()
            .map(|image| {
                let (verb, style, rest) = self.image_line(now, image, name_width);
                let rest = display::truncate(&rest, width - VERB_WIDTH - 1);
                format!(
                    "{} {rest}",
                    self.paint(&format!("{verb:>VERB_WIDTH$}"), style)
                )
            })
            .collect();
        if hidden > 0 {
            lines.push(format!(
                "{:>VERB_WIDTH$} {hidden} more image{}",
                "…",
                if hidden == 1 { "" } else { "s" }
            ));
        }
        lines
    }

    fn image_line(
        &self,
        now: Duration,
        image: &ImageState,
        name_width: usize,
    ) -> (&'static str, Style, String) {
        let d = self.display;
        let name = format!("{:<name_width$}", image.name);
        let steps = image.steps().count();
        let done = image
            .steps()
            .filter(|step| step.phase.is_terminal())
            .count();
        match &image.outcome {
            Outcome::Running => {
                let elapsed = d.secs(now.saturating_sub(image.started_at).as_secs_f64());
                let mut line = format!(
                    "{name} {elapsed:>6}  [{done}/{}]",
                    image.known_steps().max(steps)
                );
                let mut running = image
                    .steps()
                    .rev()
                    .filter(|step| step.phase == Phase::Running);
                if let Some(step) = running.next() {
                    let step_elapsed = d.secs(now.saturating_sub(step.seen_at).as_secs_f64());
                    let _ = write!(line, " {} {step_elapsed}", d.text(&step.name));
                    let more = running.count();
                    if more > 0 {
                        let _ = write!(line, " (+{more})");
                    }
                }
                ("Building", Style::new().cyan().bold(), line)
            }
            Outcome::Finished { output, duration } => {
                let cached = image
                    .steps()
                    .filter(|step| step.phase == Phase::Cached)
                    .count();
                let line = format!(
                    "{name} {:>6}  {}, {steps} step{}, {cached} cached",
                    d.secs(*duration),
                    d.text(output),
                    if steps == 1 { "" } else { "s" }
                );
                ("Built", Style::new().green().bold(), line)
            }
            Outcome::Failed { error, duration } => {
                let mut line = format!("{name} {:>6}  ", d.secs(*duration));
                if let Some(step) = image.failed_step() {
                    let _ = write!(line, "{}: ", d.text(&step.name));
                }
                line.push_str(&d.text(error.lines().next().unwrap_or_default()));
                ("Failed", Style::new().red().bold(), line)
            }
        }
    }

    /// Replaces the frame on screen with `text` above a new frame.
    fn draw(&mut self, now: Duration, tracker: &Tracker, last: bool) -> io::Result<()> {
        let mut text = String::new();
        if self.drawn > 0 {
            // Back to the frame's first line, then clear to the end of the screen.
            let _ = write!(text, "\x1b[{}A\r\x1b[J", self.drawn);
        }
        text.push_str(&std::mem::take(&mut self.above));
        let lines = self.frame(now, tracker, last);
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        self.drawn = lines.len();
        self.last_frame = Some(now);
        self.dirty = false;
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// The failing step of `image` and its last log lines, framed like buildx does.
    fn failure(&self, image: &ImageState) -> String {
        let Some(step) = image.failed_step() else {
            return String::new();
        };
        let d = self.display;
        let rule = self.paint("------", Style::new().red());
        let mut text = format!("{rule}\n > [{}] {}:\n", image.name, d.text(&step.name));
        for line in &step.log_tail {
            let _ = writeln!(text, "   {line}");
        }
        let _ = writeln!(text, "{rule}");
        text
    }
}

impl<W: Write + Send> Sink for Tty<W> {
    fn event(&mut self, event: &Out, tracker: &Tracker) -> io::Result<()> {
        self.dirty = true;
        let warning = |tty: &Self, message: &str| {
            format!(
                "{}: {message}\n",
                tty.paint("warning", Style::new().yellow().bold())
            )
        };
        match event {
            Out::Warning { image, message } => {
                let message = match image {
                    Some(image) => format!("[{image}] {message}"),
                    None => message.clone(),
                };
                self.above.push_str(&warning(self, &message));
            }
            Out::VertexWarning { image, message, .. } => {
                self.above
                    .push_str(&warning(self, &format!("[{image}] {message}")));
            }
            Out::ImageFailed { image, .. } => {
                if let Some(state) = tracker.images().iter().find(|state| &state.name == image) {
                    self.above.push_str(&self.failure(state));
                }
            }
            Out::BuildFinished {
                success,
                images_finished,
                images_failed,
                duration_secs,
            } => {
                let d = self.display;
                let images = display::images;
                self.summary = Some(if *success {
                    format!(
                        "{} {} in {}",
                        self.paint(
                            &format!("{:>VERB_WIDTH$}", "Finished"),
                            Style::new().green().bold()
                        ),
                        images(*images_finished),
                        d.secs(*duration_secs)
                    )
                } else if *images_failed > 0 {
                    format!(
                        "{}: {images_failed} of {} failed",
                        self.paint("error", Style::new().red().bold()),
                        images(images_finished + images_failed)
                    )
                } else {
                    // Stopped by something other than an image (cargo, the connection, Ctrl-C): its own error
                    // follows.
                    format!(
                        "{}: the build stopped",
                        self.paint("error", Style::new().red().bold())
                    )
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn refresh(&mut self, now: Duration, tracker: &Tracker) -> io::Result<()> {
        let due = self
            .last_frame
            .is_none_or(|last| now.saturating_sub(last) >= FRAME);
        // Warnings printed while cargo runs go out at once; the frame waits for cargo to finish.
        if tracker.cargo_running() && self.drawn == 0 {
            if !self.above.is_empty() {
                let text = std::mem::take(&mut self.above);
                self.out.write_all(text.as_bytes())?;
            }
            return Ok(());
        }
        // Running images' timers move on without events.
        let running = tracker
            .images()
            .iter()
            .any(|image| image.outcome == Outcome::Running);
        if due
            && (self.dirty || running)
            && (!tracker.images().is_empty() || !self.above.is_empty())
        {
            self.draw(now, tracker, false)?;
        }
        Ok(())
    }

    fn ticks(&self) -> bool {
        true
    }

    fn finish(&mut self, now: Duration, tracker: &Tracker) -> io::Result<()> {
        if !tracker.images().is_empty() || !self.above.is_empty() {
            self.draw(now, tracker, true)?;
        }
        if let Some(summary) = self.summary.take() {
            writeln!(self.out, "{summary}")?;
        }
        self.out.flush()
    }
}
