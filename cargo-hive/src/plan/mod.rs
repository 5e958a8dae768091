//! The plan: every image `cargo hive build` would produce, resolved and validated, with the origin of each value.
//! Its data type is `hive_build::plan::Plan`, the same one `plan --format json` prints, so what `build` consumes
//! and what users see cannot drift apart; [`Resolved`] carries it with the facts resolved once for it (typed
//! platforms, `hive:` chains, git facts).

mod assemble;
mod compute;
mod dockerfile;
mod facts;
mod files;
mod git;
pub(crate) mod human;
mod nul;
mod platform;
mod reference;
mod run;
mod template;
mod triple;

pub(crate) use compute::{Computed, PlanRequest, compute};
pub(crate) use facts::{ImageFacts, PlatformFacts, Resolved, take_platform_values};
pub(crate) use git::{EpochSource, source_date_epoch};
pub(crate) use platform::Platform;
pub(crate) use reference::{ImageReference, registry_host};
pub(crate) use triple::default_triple;
