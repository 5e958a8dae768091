//! The command line: the only module that knows clap. It turns flags and the process environment into the engine's
//! types and calls the engine.

mod args;
mod plan;

pub(crate) use args::*;
