//! What `cargo hive release` decides before it builds.

pub(crate) mod aliases;
