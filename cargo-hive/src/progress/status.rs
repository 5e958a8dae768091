//! What progress needs of one batch of the daemon's status stream, in its own terms: `buildkit` converts the wire
//! messages into these, so the tracker and renderers never see BuildKit's wire types.

use std::time::SystemTime;

use hive_build::progress::LogStream;

/// One batch of the daemon's status stream for one image's solve: everything that changed since the last batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StatusBatch {
    /// Steps (BuildKit vertexes) announced, started or ended, in the daemon's order.
    pub(crate) steps: Vec<StepStatus>,
    /// Progress of tasks within steps (transfers, downloads).
    pub(crate) tasks: Vec<TaskStatus>,
    /// Chunks of steps' output.
    pub(crate) logs: Vec<StepLog>,
    /// Warnings about steps.
    pub(crate) warnings: Vec<StepWarning>,
}

/// The state of one step, resent whenever anything about it changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StepStatus {
    /// The step's digest: its identity within the image's solve.
    pub(crate) digest: String,
    /// What the step does, as the daemon names it; empty when the batch doesn't say.
    pub(crate) name: String,
    /// When the step started, by the daemon's clock.
    pub(crate) started: Option<SystemTime>,
    /// When the step ended, by the daemon's clock.
    pub(crate) completed: Option<SystemTime>,
    /// Whether the step's result came from the cache.
    pub(crate) cached: bool,
    /// Why the step failed, if it did.
    pub(crate) error: Option<String>,
}

/// The progress of one task within a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TaskStatus {
    /// The task's id, unique within its step (e.g. `transferring hello:`).
    pub(crate) id: String,
    /// The digest of the step it belongs to.
    pub(crate) step: String,
    /// Units done so far (usually bytes).
    pub(crate) current: u64,
    /// Units in all, when known.
    pub(crate) total: Option<u64>,
    /// Whether the task has finished.
    pub(crate) completed: bool,
}

/// A chunk of a step's output: not cut into lines, which may span chunks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepLog {
    /// The digest of the step that wrote it.
    pub(crate) step: String,
    /// Which stream it was written to.
    pub(crate) stream: LogStream,
    /// The bytes, as written.
    pub(crate) data: Vec<u8>,
}

/// A warning the daemon raised about a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StepWarning {
    /// The digest of the step it is about.
    pub(crate) step: String,
    /// The warning's one-line summary.
    pub(crate) message: String,
}
