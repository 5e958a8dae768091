//! Turns the engine's [`Event`]s and BuildKit's raw status batches into the event stream every renderer consumes
//! ([`hive_build::progress::Event`]), keeping the state the tty renderer draws from.
//!
//! BuildKit resends a vertex whenever anything about it changes, and sends vertexes before they start (the whole
//! graph as soon as it is loaded). Per image and vertex digest, a small state machine (pending → running → cached,
//! completed or errored) emits each transition once; a vertex gets its number (`#N`, counted across the whole build
//! so interleaved images stay unambiguous in one log) when it starts, so numbers have no gaps for steps that never
//! run. Once a vertex is terminal, resends are ignored. Log chunks are cut into lines here, so every renderer agrees
//! on them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use hive_build::progress::{Event as Out, LogStream, Phase as Stage};

use super::EngineEvent;
use super::status::{StatusBatch, StepStatus, StepWarning, TaskStatus};

/// Log lines kept per step, for showing a failed step's output.
const LOG_TAIL: usize = 10;

/// The state of the whole build.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    images: Vec<ImageState>,
    next_vertex: u32,
    cargo_started: Option<Duration>,
    cargo_failed: bool,
}

/// One image's solve.
#[derive(Debug)]
pub(super) struct ImageState {
    pub(super) name: String,
    pub(super) started_at: Duration,
    pub(super) outcome: Outcome,
    pub(super) bytes_sent: u64,
    vertexes: HashMap<String, VertexState>,
    /// Digests of the vertexes that started, in the order they did.
    started: Vec<String>,
}

/// How an image's solve ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    Running,
    Finished { output: String, duration: f64 },
    Failed { error: String, duration: f64 },
}

/// One BuildKit vertex (a step) of an image.
#[derive(Debug)]
pub(super) struct VertexState {
    pub(super) number: Option<u32>,
    pub(super) name: String,
    pub(super) phase: Phase,
    /// When it started by our clock: the live timer; the daemon's timestamps give the final duration.
    pub(super) seen_at: Duration,
    started: Option<SystemTime>,
    /// How long it ran by the daemon's clock, once it ended and the daemon said.
    ran: Option<f64>,
    pub(super) log_tail: VecDeque<String>,
    /// Bytes of an unfinished line, per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
    /// The last progress reported per task id: (current, total, completed).
    tasks: HashMap<String, (u64, Option<u64>, bool)>,
}

/// Where a vertex is in its life.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Phase {
    Pending,
    Running,
    Cached,
    Completed,
    Errored(String),
}

impl Phase {
    pub(super) fn is_terminal(&self) -> bool {
        matches!(self, Phase::Cached | Phase::Completed | Phase::Errored(_))
    }
}

impl Tracker {
    /// The images in the order they started.
    pub(super) fn images(&self) -> &[ImageState] {
        &self.images
    }

    /// Whether cargo is compiling (and drawing its own progress on stderr).
    pub(super) fn cargo_running(&self) -> bool {
        self.cargo_started.is_some()
    }

    /// Applies an engine event, appending what it means to `out`.
    pub(super) fn event(&mut self, at: Duration, event: EngineEvent, out: &mut Vec<Out>) {
        match event {
            EngineEvent::CargoStarted => {
                self.cargo_started = Some(at);
                out.push(Out::CargoStarted {});
            }
            EngineEvent::CargoFinished { success } => {
                let started = self.cargo_started.take().unwrap_or(at);
                self.cargo_failed |= !success;
                out.push(Out::CargoFinished {
                    success,
                    duration_secs: secs(at.saturating_sub(started)),
                });
            }
            EngineEvent::ImageStarted {
                image,
                reference,
                platforms,
            } => {
                let state = self.image_mut(&image, at);
                state.started_at = at;
                out.push(Out::ImageStarted {
                    image,
                    reference,
                    platforms,
                });
            }
            EngineEvent::BytesSent { image, bytes_sent } => {
                let state = self.image_mut(&image, at);
                if bytes_sent > state.bytes_sent {
                    state.bytes_sent = bytes_sent;
                    out.push(Out::BytesSent { image, bytes_sent });
                }
            }
            EngineEvent::ImageFinished {
                image,
                digest,
                output,
            } => {
                let state = self.image_mut(&image, at);
                let duration = secs(at.saturating_sub(state.started_at));
                state.outcome = Outcome::Finished {
                    output: output.clone(),
                    duration,
                };
                out.push(Out::ImageFinished {
                    bytes_sent: state.bytes_sent,
                    image,
                    digest,
                    output,
                    duration_secs: duration,
                });
            }
            EngineEvent::ImageFailed { image, error } => {
                let state = self.image_mut(&image, at);
                let duration = secs(at.saturating_sub(state.started_at));
                state.outcome = Outcome::Failed {
                    error: error.clone(),
                    duration,
                };
                out.push(Out::ImageFailed {
                    image,
                    error,
                    duration_secs: duration,
                });
            }
            EngineEvent::Phase {
                phase,
                image,
                duration,
            } => self.phase(phase, image, duration, out),
            EngineEvent::Warning { image, message } => out.push(Out::Warning { image, message }),
            EngineEvent::Failed { kind, message } => out.push(Out::Error { kind, message }),
            EngineEvent::BuildFinished { success } => {
                let count = |pred: fn(&Outcome) -> bool| {
                    self.images
                        .iter()
                        .filter(|image| pred(&image.outcome))
                        .count() as u32
                };
                let images_finished = count(|outcome| matches!(outcome, Outcome::Finished { .. }));
                let images_failed = count(|outcome| matches!(outcome, Outcome::Failed { .. }));
                out.push(Out::BuildFinished {
                    success: success && !self.cargo_failed && images_failed == 0,
                    images_finished,
                    images_failed,
                    duration_secs: secs(at),
                });
            }
        }
    }

    /// A phase that ended. An image's solve includes the daemon's export (one RPC does both): its exporter steps
    /// (`exporting to …`, by the daemon's clock) are told apart as the `export` phase, the rest stays `solve`.
    fn phase(
        &mut self,
        phase: Stage,
        image: Option<String>,
        duration: Duration,
        out: &mut Vec<Out>,
    ) {
        let total = secs(duration);
        let export = match (phase, &image) {
            (Stage::Solve, Some(name)) => Some(
                (self.images.iter().find(|state| &state.name == name))
                    .map_or(0.0, ImageState::export_secs)
                    .min(total),
            ),
            _ => None,
        };
        out.push(Out::Phase {
            phase,
            image: image.clone(),
            duration_secs: total - export.unwrap_or(0.0),
        });
        if let Some(export) = export {
            out.push(Out::Phase {
                phase: Stage::Export,
                image,
                duration_secs: export,
            });
        }
    }

    /// Applies one batch of BuildKit's status stream for `image`, appending the transitions to `out`.
    pub(super) fn status(
        &mut self,
        at: Duration,
        image: &str,
        batch: StatusBatch,
        out: &mut Vec<Out>,
    ) {
        let index = self.image_index(image, at);
        let next_vertex = &mut self.next_vertex;
        let state = &mut self.images[index];
        let StatusBatch {
            steps,
            tasks,
            logs,
            warnings,
        } = batch;

        // In the batch's order, except that a step with output in this batch ends after it: its logs and tasks
        // belong between its start and its end.
        let busy: HashSet<String> = tasks
            .iter()
            .map(|status| status.step.clone())
            .chain(logs.iter().map(|log| log.step.clone()))
            .collect();
        for vertex in &steps {
            let entry = vertex_entry(&mut state.vertexes, &vertex.digest);
            if entry.phase == Phase::Pending {
                if !vertex.name.is_empty() {
                    entry.name.clone_from(&vertex.name);
                }
                if vertex.started.is_some() || vertex.completed.is_some() || vertex.cached {
                    *next_vertex += 1;
                    entry.start(image, *next_vertex, vertex, at, out);
                    state.started.push(vertex.digest.clone());
                }
            }
            if entry.phase == Phase::Running && !busy.contains(&vertex.digest) {
                entry.finish(image, vertex, out);
            }
        }

        task_progress(&mut state.vertexes, image, tasks, out);

        for log in logs {
            let entry = vertex_entry(&mut state.vertexes, &log.step);
            entry.partial[stream_index(log.stream)].extend_from_slice(&log.data);
            if entry.number.is_some() {
                entry.drain_lines(image, log.stream, false, out);
            }
        }

        step_warnings(&state.vertexes, image, warnings, out);

        for vertex in &steps {
            if !busy.contains(&vertex.digest) {
                continue;
            }
            let Some(entry) = state.vertexes.get_mut(&vertex.digest) else {
                continue;
            };
            if entry.phase == Phase::Running {
                entry.finish(image, vertex, out);
            }
        }
    }

    fn image_index(&mut self, image: &str, at: Duration) -> usize {
        if let Some(index) = self.images.iter().position(|state| state.name == image) {
            return index;
        }
        // A status batch before `ImageStarted` still gets a line.
        self.images.push(ImageState {
            name: image.to_owned(),
            started_at: at,
            outcome: Outcome::Running,
            bytes_sent: 0,
            vertexes: HashMap::new(),
            started: Vec::new(),
        });
        self.images.len() - 1
    }

    fn image_mut(&mut self, image: &str, at: Duration) -> &mut ImageState {
        let index = self.image_index(image, at);
        &mut self.images[index]
    }
}

impl ImageState {
    /// The steps that started, in the order they did.
    pub(super) fn steps(&self) -> impl DoubleEndedIterator<Item = &VertexState> {
        self.started.iter().map(|digest| &self.vertexes[digest])
    }

    /// Steps BuildKit announced, started or not: the build's size once its graph is loaded.
    pub(super) fn known_steps(&self) -> usize {
        self.vertexes
            .values()
            .filter(|vertex| !vertex.name.is_empty())
            .count()
    }

    /// The step whose failure failed the image: the first errored one that wasn't merely cancelled.
    pub(super) fn failed_step(&self) -> Option<&VertexState> {
        let errored = || {
            self.steps()
                .filter(|step| matches!(step.phase, Phase::Errored(_)))
        };
        errored()
            .find(|step| !matches!(&step.phase, Phase::Errored(error) if error.contains("context canceled")))
            .or_else(|| errored().next())
    }
}

impl ImageState {
    /// The time the daemon's exporter steps of this image ran, in seconds.
    fn export_secs(&self) -> f64 {
        (self.vertexes.values())
            .filter(|vertex| vertex.name.starts_with("exporting "))
            .filter_map(|vertex| vertex.ran)
            .sum()
    }
}

impl VertexState {
    /// The transition to running, with number `number`.
    fn start(
        &mut self,
        image: &str,
        number: u32,
        vertex: &StepStatus,
        at: Duration,
        out: &mut Vec<Out>,
    ) {
        self.number = Some(number);
        self.phase = Phase::Running;
        self.seen_at = at;
        self.started = vertex.started.or(vertex.completed);
        out.push(Out::VertexStarted {
            image: image.to_owned(),
            vertex: number,
            digest: vertex.digest.clone(),
            name: self.name.clone(),
        });
        // Output that arrived before the step was reported as started.
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            self.drain_lines(image, stream, false, out);
        }
    }

    /// The terminal transition `vertex` reports, if any.
    fn finish(&mut self, image: &str, vertex: &StepStatus, out: &mut Vec<Out>) {
        let number = self.number.expect("a running vertex has a number");
        let ended = vertex.cached || vertex.error.is_some() || vertex.completed.is_some();
        if !ended {
            return;
        }
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            self.drain_lines(image, stream, true, out);
        }
        let image = image.to_owned();
        let duration = self
            .started
            .zip(vertex.completed)
            .map(|(start, end)| span(start, end));
        self.ran = duration;
        if vertex.cached {
            self.phase = Phase::Cached;
            out.push(Out::VertexCached {
                image,
                vertex: number,
            });
        } else if let Some(error) = &vertex.error {
            self.phase = Phase::Errored(error.clone());
            out.push(Out::VertexErrored {
                image,
                vertex: number,
                error: error.clone(),
                duration_secs: duration,
            });
        } else {
            self.phase = Phase::Completed;
            out.push(Out::VertexCompleted {
                image,
                vertex: number,
                duration_secs: duration.unwrap_or(0.0),
            });
        }
    }

    /// Emits the complete lines buffered for `stream`, and with `all` the unfinished rest too.
    fn drain_lines(&mut self, image: &str, stream: LogStream, all: bool, out: &mut Vec<Out>) {
        let Some(number) = self.number else {
            return;
        };
        let buffer = &mut self.partial[stream_index(stream)];
        let end = if all {
            buffer.len()
        } else {
            match buffer.iter().rposition(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                None => return,
            }
        };
        let mut chunk: Vec<u8> = buffer.drain(..end).collect();
        let terminated = chunk.last() == Some(&b'\n');
        if terminated {
            chunk.pop();
        } else if chunk.is_empty() {
            return;
        }
        for raw in chunk.split(|&byte| byte == b'\n') {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            // A carriage return redraws the line in a terminal: only what was drawn last remains.
            let raw = match raw.iter().rposition(|&byte| byte == b'\r') {
                Some(cr) => &raw[cr + 1..],
                None => raw,
            };
            let line = String::from_utf8_lossy(raw).into_owned();
            if self.log_tail.len() == LOG_TAIL {
                self.log_tail.pop_front();
            }
            self.log_tail.push_back(line.clone());
            out.push(Out::VertexLog {
                image: image.to_owned(),
                vertex: number,
                stream,
                line,
            });
        }
    }
}

/// The progress of tasks within steps, each sent when it changed.
fn task_progress(
    vertexes: &mut HashMap<String, VertexState>,
    image: &str,
    tasks: Vec<TaskStatus>,
    out: &mut Vec<Out>,
) {
    for status in tasks {
        let Some(entry) = vertexes.get_mut(&status.step) else {
            continue;
        };
        let Some(number) = entry.number else {
            continue;
        };
        let (current, total, completed) = (status.current, status.total, status.completed);
        let last = entry.tasks.get(&status.id);
        if last.is_some_and(|&(_, _, done)| done) || last == Some(&(current, total, completed)) {
            continue;
        }
        entry
            .tasks
            .insert(status.id.clone(), (current, total, completed));
        out.push(Out::VertexProgress {
            image: image.to_owned(),
            vertex: number,
            id: status.id,
            current,
            total,
            completed,
        });
    }
}

/// BuildKit's warnings: about a step when it has a number, else about the image.
fn step_warnings(
    vertexes: &HashMap<String, VertexState>,
    image: &str,
    warnings: Vec<StepWarning>,
    out: &mut Vec<Out>,
) {
    for warning in warnings {
        let message = warning.message;
        match vertexes.get(&warning.step).and_then(|entry| entry.number) {
            Some(number) => out.push(Out::VertexWarning {
                image: image.to_owned(),
                vertex: number,
                message,
            }),
            None => out.push(Out::Warning {
                image: Some(image.to_owned()),
                message,
            }),
        }
    }
}

/// The state of vertex `digest`, pending when first heard of.
fn vertex_entry<'a>(
    vertexes: &'a mut HashMap<String, VertexState>,
    digest: &str,
) -> &'a mut VertexState {
    vertexes
        .entry(digest.to_owned())
        .or_insert_with(|| VertexState {
            number: None,
            name: String::new(),
            phase: Phase::Pending,
            seen_at: Duration::ZERO,
            started: None,
            ran: None,
            log_tail: VecDeque::new(),
            partial: [Vec::new(), Vec::new()],
            tasks: HashMap::new(),
        })
}

fn stream_index(stream: LogStream) -> usize {
    match stream {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// `end - start` in seconds; never negative.
fn span(start: SystemTime, end: SystemTime) -> f64 {
    // Through whole nanoseconds, so the seconds round as they always have.
    end.duration_since(start).unwrap_or_default().as_nanos() as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::super::status::StepLog;
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn vertex(digest: &str, started: Option<u64>, completed: Option<u64>) -> StepStatus {
        StepStatus {
            digest: digest.to_owned(),
            name: format!("step {digest}"),
            started: started.map(at),
            completed: completed.map(at),
            ..StepStatus::default()
        }
    }

    fn log(digest: &str, stream: LogStream, msg: &str) -> StepLog {
        StepLog {
            step: digest.to_owned(),
            stream,
            data: msg.as_bytes().to_vec(),
        }
    }

    fn apply(tracker: &mut Tracker, response: StatusBatch) -> Vec<Out> {
        let mut out = Vec::new();
        tracker.status(Duration::ZERO, "img", response, &mut out);
        out
    }

    fn lines(events: &[Out]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|event| match event {
                Out::VertexLog { line, .. } => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn output_before_the_start_waits_for_it() {
        let mut tracker = Tracker::default();
        let early = apply(
            &mut tracker,
            StatusBatch {
                steps: vec![vertex("a", None, None)],
                logs: vec![log("a", LogStream::Stdout, "early\npart")],
                ..StatusBatch::default()
            },
        );
        assert_eq!(early, []);
        let started = apply(
            &mut tracker,
            StatusBatch {
                steps: vec![vertex("a", Some(1), None)],
                ..StatusBatch::default()
            },
        );
        assert!(
            matches!(&started[0], Out::VertexStarted { vertex: 1, name, .. } if name == "step a")
        );
        assert_eq!(lines(&started), ["early"]);
        // The unfinished line is flushed when the step ends.
        let ended = apply(
            &mut tracker,
            StatusBatch {
                steps: vec![vertex("a", Some(1), Some(3))],
                ..StatusBatch::default()
            },
        );
        assert_eq!(lines(&ended), ["part"]);
        assert!(matches!(
            ended.last(),
            Some(Out::VertexCompleted { vertex: 1, duration_secs, .. }) if *duration_secs == 2.0
        ));
    }

    #[test]
    fn carriage_returns_keep_what_was_drawn_last() {
        let mut tracker = Tracker::default();
        let events = apply(
            &mut tracker,
            StatusBatch {
                steps: vec![vertex("a", Some(1), None)],
                logs: vec![log("a", LogStream::Stderr, "10%\r50%\r100%\r\n\nnext\n")],
                ..StatusBatch::default()
            },
        );
        assert_eq!(lines(&events), ["100%", "", "next"]);
    }

    #[test]
    fn resends_and_strays_are_ignored() {
        let mut tracker = Tracker::default();
        let done = || StatusBatch {
            steps: vec![vertex("a", Some(1), Some(2))],
            ..StatusBatch::default()
        };
        assert_eq!(apply(&mut tracker, done()).len(), 2);
        assert_eq!(apply(&mut tracker, done()), []);
        // Restarted after completing: still one start and one end.
        let restarted = StatusBatch {
            steps: vec![vertex("a", Some(5), None)],
            tasks: vec![TaskStatus {
                id: "task".to_owned(),
                step: "unknown".to_owned(),
                current: 3,
                ..TaskStatus::default()
            }],
            ..StatusBatch::default()
        };
        assert_eq!(apply(&mut tracker, restarted), []);
        let image = &tracker.images()[0];
        assert_eq!(image.steps().count(), 1);
        assert_eq!(image.known_steps(), 1);
    }

    #[test]
    fn the_failed_step_is_not_a_cancelled_one() {
        let mut tracker = Tracker::default();
        let errored = |digest: &str, error: &str| StepStatus {
            error: Some(error.to_owned()),
            ..vertex(digest, Some(1), Some(2))
        };
        apply(
            &mut tracker,
            StatusBatch {
                steps: vec![
                    errored("a", "context canceled"),
                    errored("b", "exit code: 1"),
                    vertex("c", Some(1), None),
                ],
                ..StatusBatch::default()
            },
        );
        let image = &tracker.images()[0];
        assert_eq!(image.failed_step().unwrap().name, "step b");
        assert_eq!(
            image
                .steps()
                .filter(|step| step.phase == Phase::Running)
                .count(),
            1
        );
    }
}
