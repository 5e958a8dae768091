//! Live progress of `cargo hive build`.
//!
//! The engine reports what happens through [`Progress`]: its own [`EngineEvent`]s (facts the engine states; the
//! public event type is `hive_build::progress::Event`) and the daemon's status batches ([`StatusBatch`], converted from
//! the wire by `buildkit`, so nothing here knows BuildKit's wire types). The renderer thread turns both into one event
//! stream (`tracker`: de-duplicated vertex transitions, log lines, durations from an injected clock), which is the JSON
//! contract of `hive_build::progress` and which the renderers only consume:
//! `tty` (live lines on stderr), `plain` (stable lines on stderr, for CI) and `json` (one event per line on stdout).
//! `renderer::choose` decides which one runs.

mod display;
mod event;
mod json;
mod plain;
mod renderer;
mod reporter;
mod status;
mod tracker;
mod tty;

#[cfg(test)]
mod tests;

pub(crate) use event::EngineEvent;
pub(crate) use renderer::{Renderer, choose};
pub(crate) use reporter::{Progress, ProgressHandle};
pub(crate) use status::{StatusBatch, StepLog, StepStatus, StepWarning, TaskStatus};
