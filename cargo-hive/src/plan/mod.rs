//! The plan: every image `cargo hive build` would produce, resolved and validated, with the origin of each value.
//! Its data type is `hive_build::plan::Plan`, the same one `plan --format json` prints, so what `build` consumes
//! and what users see cannot drift apart; [`Resolved`] carries it with the facts resolved once for it (typed
//! platforms, `hive:` chains, git facts).

mod assemble;
mod command;
mod facts;
mod files;
mod git;
mod human;
mod nul;
mod platform;
mod reference;
mod template;

pub(crate) use command::{compute, run_command};
pub(crate) use facts::{ImageFacts, Resolved};
pub(crate) use git::{EpochSource, source_date_epoch};
pub(crate) use platform::Platform;
