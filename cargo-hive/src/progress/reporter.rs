//! The engine's side of progress ([`Progress`], cheap to clone into every image's task) and the renderer thread it
//! feeds. Rendering runs on its own thread rather than a tokio task: writes to a slow or stalled stderr must not hold
//! up a runtime worker, and the engine never waits for output (the channel is unbounded; events are small).

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use hive_build::progress::Event as Out;
use tokio::sync::oneshot;

use super::display::Display;
use super::json::Json;
use super::plain::Plain;
use super::status::StatusBatch;
use super::tracker::Tracker;
use super::tty::{self, Tty};
use super::{EngineEvent, Renderer};
use crate::term::Term;

/// Time since the build started. Injected so rendered durations are deterministic in tests.
pub(crate) trait Clock: Send + Sync {
    /// The time elapsed since the build started.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock, counting from when progress started.
struct Monotonic(Instant);

impl Clock for Monotonic {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// One renderer of the event stream.
pub(super) trait Sink: Send {
    /// Renders one event; `tracker` is the state after the batch the event came from.
    fn event(&mut self, event: &Out, tracker: &Tracker) -> io::Result<()>;

    /// After each batch, and on every tick when [`Sink::ticks`]: draws what depends on the time.
    fn refresh(&mut self, _now: Duration, _tracker: &Tracker) -> io::Result<()> {
        Ok(())
    }

    /// Whether [`Sink::refresh`] wants calling while no events arrive (live timers).
    fn ticks(&self) -> bool {
        false
    }

    /// The last word: a final frame, a flush.
    fn finish(&mut self, now: Duration, tracker: &Tracker) -> io::Result<()>;
}

enum Message {
    Event(Duration, EngineEvent),
    Status(Duration, String, StatusBatch),
    Finish(oneshot::Sender<()>),
}

/// Where the engine reports progress. Clones share one renderer; messages after [`ProgressHandle::finish`] are
/// dropped.
#[derive(Clone)]
pub(crate) struct Progress {
    tx: Option<mpsc::Sender<Message>>,
    clock: Arc<dyn Clock>,
}

/// Owns the renderer thread: [`ProgressHandle::finish`] flushes it and leaves the terminal tidy.
pub(crate) struct ProgressHandle {
    tx: Option<mpsc::Sender<Message>>,
}

impl Progress {
    /// Starts `renderer`: tty and plain on stderr (colour from `term`), json on stdout. `redact` (`HIVE_REDACT=1`)
    /// replaces durations and digests in tty and plain output with placeholders.
    pub(crate) fn start(
        renderer: Renderer,
        term: &Term,
        redact: bool,
    ) -> (Progress, ProgressHandle) {
        let display = Display { redact };
        let sink: Box<dyn Sink> = match renderer {
            Renderer::Tty => Box::new(Tty::new(io::stderr(), display, term.stderr_color(), None)),
            Renderer::Plain => Box::new(Plain::new(io::stderr(), display)),
            Renderer::Json => Box::new(Json::new(io::stdout())),
        };
        Self::with_renderer(sink, Arc::new(Monotonic(Instant::now())))
    }

    /// Progress that goes nowhere (`--dry-run`, tests of the engine).
    pub(crate) fn disabled() -> Progress {
        Progress {
            tx: None,
            clock: Arc::new(Monotonic(Instant::now())),
        }
    }

    pub(super) fn with_renderer(
        renderer: Box<dyn Sink>,
        clock: Arc<dyn Clock>,
    ) -> (Progress, ProgressHandle) {
        let (tx, rx) = mpsc::channel();
        let thread_clock = Arc::clone(&clock);
        let spawned = std::thread::Builder::new()
            .name("hive-progress".to_owned())
            .spawn(move || run(rx, renderer, thread_clock.as_ref()));
        // Without a thread the build still runs, silently.
        let tx = spawned.ok().map(|_| tx);
        (
            Progress {
                tx: tx.clone(),
                clock,
            },
            ProgressHandle { tx },
        )
    }

    /// Reports an engine event.
    pub(crate) fn event(&self, event: EngineEvent) {
        self.send(|at| Message::Event(at, event));
    }

    /// Reports that `phase` (of `image`, for a stage of one image) ended; it began at `started`.
    pub(crate) fn phase(
        &self,
        phase: hive_build::progress::Phase,
        image: Option<&str>,
        started: Instant,
    ) {
        self.event(EngineEvent::Phase {
            phase,
            image: image.map(str::to_owned),
            duration: started.elapsed(),
        });
    }

    /// Feeds one batch of the daemon's status stream for `image`'s solve, as received.
    pub(crate) fn status(&self, image: &str, batch: StatusBatch) {
        self.send(|at| Message::Status(at, image.to_owned(), batch));
    }

    fn send(&self, message: impl FnOnce(Duration) -> Message) {
        if let Some(tx) = &self.tx {
            // Stamped here, not in the renderer: the time is when it happened.
            let _ = tx.send(message(self.clock.now()));
        }
    }
}

impl ProgressHandle {
    /// Renders everything sent so far, draws the last frame and returns when the output is flushed.
    pub(crate) async fn finish(mut self) {
        if let Some(tx) = self.tx.take() {
            let (done, finished) = oneshot::channel();
            if tx.send(Message::Finish(done)).is_ok() {
                let _ = finished.await;
            }
        }
    }
}

impl Drop for ProgressHandle {
    fn drop(&mut self) {
        // Dropped without `finish` (an early return): still end the frame, without waiting.
        if let Some(tx) = self.tx.take() {
            let (done, _) = oneshot::channel();
            let _ = tx.send(Message::Finish(done));
        }
    }
}

/// The renderer thread: applies messages to the tracker and hands the resulting events to the renderer. A failed
/// write (a closed pipe) stops the rendering, never the build.
fn run(rx: mpsc::Receiver<Message>, mut renderer: Box<dyn Sink>, clock: &dyn Clock) {
    let mut tracker = Tracker::default();
    let mut events = Vec::new();
    let mut ok = true;
    loop {
        let message = if renderer.ticks() {
            match rx.recv_timeout(tty::FRAME) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(message) => Some(message),
                Err(_) => break,
            }
        };
        let finish = match message {
            Some(Message::Event(at, event)) => {
                tracker.event(at, event, &mut events);
                None
            }
            Some(Message::Status(at, image, batch)) => {
                tracker.status(at, &image, batch, &mut events);
                None
            }
            Some(Message::Finish(done)) => Some(done),
            None => None,
        };
        for event in events.drain(..) {
            ok = ok && renderer.event(&event, &tracker).is_ok();
        }
        if let Some(done) = finish {
            if ok {
                let _ = renderer.finish(clock.now(), &tracker);
            }
            let _ = done.send(());
            return;
        }
        ok = ok && renderer.refresh(clock.now(), &tracker).is_ok();
    }
    if ok {
        let _ = renderer.finish(clock.now(), &tracker);
    }
}

/// A `Write` into shared memory, for tests of whole renderers.
#[cfg(test)]
#[derive(Clone, Default)]
pub(super) struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Buffer {
    pub(super) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
