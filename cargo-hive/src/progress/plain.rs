//! `--progress plain`: stable lines on stderr for CI logs, in the shape of `buildctl --progress plain`.
//!
//! ```text
//! [hello] building docker.io/library/hello:0.1.0 for linux/amd64
//!
//! #1 [hello] [internal] load metadata for docker.io/library/debian:bookworm-slim
//! #1 DONE 0.3s
//!
//! #2 [hello] copy /hello /usr/local/bin/hello
//! #2 transferring hello: 1.20MB done
//! #2 DONE 0.1s
//!
//! [hello] DONE 0.6s -> target/hive/hello.oci.tar, sha256:…, sent 1.20MB
//! ```
//!
//! Steps are numbered across the whole build (not per image), so `#N` stays unambiguous while images interleave.
//! When output switches to another step, a blank line and the step's header come first, as in buildctl. Only
//! finished tasks are printed (`#2 transferring hello: 1.20MB done`), log lines without buildctl's time offset:
//! nothing in a line depends on timing but the durations, which `HIVE_REDACT=1` replaces.

use std::collections::HashMap;
use std::io::{self, Write};

use hive_build::progress::Event as Out;

use super::display::{self, Display};
use super::reporter::Sink;
use super::tracker::Tracker;

/// Where the previous line belonged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Build,
    Vertex(u32),
}

/// The plain renderer.
pub(super) struct Plain<W> {
    out: W,
    display: Display,
    /// `[image] name` per step number, for repeating a header.
    headers: HashMap<u32, String>,
    last: Option<Context>,
}

impl<W: Write + Send> Plain<W> {
    pub(super) fn new(out: W, display: Display) -> Self {
        Plain {
            out,
            display,
            headers: HashMap::new(),
            last: None,
        }
    }

    /// The text of a step's line (after its `#N`), if the event makes one.
    fn step_text(&mut self, event: &Out) -> Option<String> {
        let d = self.display;
        match event {
            Out::VertexStarted {
                image,
                vertex,
                name,
                ..
            } => {
                let header = format!("[{image}] {}", d.text(name));
                self.headers.insert(*vertex, header.clone());
                Some(header)
            }
            Out::VertexCached { .. } => Some("CACHED".to_owned()),
            Out::VertexCompleted { duration_secs, .. } => {
                Some(format!("DONE {}", d.secs(*duration_secs)))
            }
            Out::VertexErrored { error, .. } => Some(format!("ERROR: {}", d.text(error))),
            Out::VertexLog { line, .. } => Some(line.clone()),
            Out::VertexProgress {
                id,
                current,
                total,
                completed,
                ..
            } => {
                if !completed {
                    return None;
                }
                let amount = match total {
                    Some(total) if total != current => {
                        format!("{} / {}", display::bytes(*current), display::bytes(*total))
                    }
                    _ => display::bytes(*current),
                };
                Some(format!("{} {amount} done", d.text(id)))
            }
            Out::VertexWarning { message, .. } => Some(format!("WARN: {message}")),
            _ => None,
        }
    }

    /// Lines for `event`, each with the context it belongs to.
    fn lines(&mut self, event: &Out) -> Vec<(Context, String)> {
        let d = self.display;
        match event {
            // The error itself is printed once, on stderr, by the command's error report; phases are for tools.
            Out::CargoStarted {}
            | Out::BytesSent { .. }
            | Out::Error { .. }
            | Out::Phase { .. } => vec![],
            Out::CargoFinished {
                success,
                duration_secs,
            } => {
                let status = if *success { "DONE" } else { "ERROR after" };
                vec![(
                    Context::Build,
                    format!("cargo build {status} {}", d.secs(*duration_secs)),
                )]
            }
            Out::ImageStarted {
                image,
                reference,
                platforms,
            } => vec![(
                Context::Build,
                format!(
                    "[{image}] building {reference} for {}",
                    platforms.join(", ")
                ),
            )],
            Out::VertexStarted { vertex, .. }
            | Out::VertexCached { vertex, .. }
            | Out::VertexCompleted { vertex, .. }
            | Out::VertexErrored { vertex, .. }
            | Out::VertexLog { vertex, .. }
            | Out::VertexProgress { vertex, .. }
            | Out::VertexWarning { vertex, .. } => match self.step_text(event) {
                Some(text) => vec![(Context::Vertex(*vertex), format!("#{vertex} {text}"))],
                None => vec![],
            },
            Out::Warning { image, message } => {
                let prefix = image
                    .as_ref()
                    .map(|image| format!("[{image}] "))
                    .unwrap_or_default();
                vec![(Context::Build, format!("{prefix}warning: {message}"))]
            }
            Out::ImageFinished {
                image,
                digest,
                output,
                duration_secs,
                bytes_sent,
            } => {
                let mut line = format!("[{image}] DONE {} -> {output}", d.secs(*duration_secs));
                if let Some(digest) = digest {
                    line.push_str(&format!(", {}", d.text(digest)));
                }
                line.push_str(&format!(", sent {}", display::bytes(*bytes_sent)));
                vec![(Context::Build, line)]
            }
            Out::ImageFailed { image, error, .. } => {
                vec![(
                    Context::Build,
                    format!("[{image}] ERROR: {}", d.text(error)),
                )]
            }
            Out::BuildFinished {
                success,
                images_finished,
                images_failed,
                duration_secs,
            } => vec![(
                Context::Build,
                build_finished(
                    d,
                    *success,
                    *images_finished,
                    *images_failed,
                    *duration_secs,
                ),
            )],
        }
    }
}

/// The last line: what was built, or how it failed.
fn build_finished(
    d: Display,
    success: bool,
    images_finished: u32,
    images_failed: u32,
    duration_secs: f64,
) -> String {
    let images = display::images;
    if success {
        format!(
            "build DONE {} in {}",
            images(images_finished),
            d.secs(duration_secs)
        )
    } else if images_failed > 0 {
        format!(
            "build ERROR: {} of {} failed",
            images_failed,
            images(images_finished + images_failed)
        )
    } else {
        "build ERROR".to_owned()
    }
}

impl<W: Write + Send> Sink for Plain<W> {
    fn event(&mut self, event: &Out, _tracker: &Tracker) -> io::Result<()> {
        let mut text = String::new();
        let is_header = matches!(event, Out::VertexStarted { .. });
        for (context, line) in self.lines(event) {
            if self.last != Some(context) {
                if self.last.is_some() {
                    text.push('\n');
                }
                // Output of a step after another's: say again whose it is.
                if let (Context::Vertex(vertex), false) = (context, is_header)
                    && let Some(header) = self.headers.get(&vertex)
                {
                    text.push_str(&format!("#{vertex} {header}\n"));
                }
                self.last = Some(context);
            }
            text.push_str(&line);
            text.push('\n');
        }
        if !text.is_empty() {
            self.out.write_all(text.as_bytes())?;
        }
        Ok(())
    }

    fn finish(&mut self, _now: std::time::Duration, _tracker: &Tracker) -> io::Result<()> {
        self.out.flush()
    }
}
