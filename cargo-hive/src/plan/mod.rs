//! The plan: every image `cargo hive build` would produce, resolved and validated, with the origin of each value.
//! Its data type is `hive_build::plan::Plan`, the same one `plan --format json` prints, so what `build` consumes
//! and what users see cannot drift apart.

mod compute;
mod files;
pub(crate) mod human;
mod nul;
mod reference;
mod resolve;
pub(crate) mod template;

pub(crate) use compute::{PlanRequest, compute};
pub(crate) use reference::registry_host;
