//! The plan: every image `cargo hive build` would produce, resolved and validated, with the origin of each value.
//! Its data type is `hive_build::plan::Plan`, the same one `plan --format json` prints, so what `build` consumes
//! and what users see cannot drift apart.

mod assemble;
mod command;
mod files;
mod git;
mod human;
mod nul;
mod reference;
mod template;

pub(crate) use command::{compute, run_command};
pub(crate) use git::{EpochSource, revision, source_date_epoch};
