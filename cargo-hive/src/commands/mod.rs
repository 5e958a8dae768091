//! The commands: the only code that sees clap. Each turns its flags and the process environment (read once, in
//! [`ProcessEnv`]) into the engine's types — [`crate::config::Selection`], [`crate::cargo::Cargo`],
//! [`crate::buildkit::ConnectOptions`], a progress [`crate::progress::Renderer`] — and calls the engine.

mod args;
mod build;
mod doctor;
mod env;
mod plan;
mod release;

use std::io::IsTerminal;

use anstream::ColorChoice;

pub(crate) use args::{Cli, Command, normalized_args, parse};
pub(crate) use env::ProcessEnv;

use crate::cargo::Cargo;
use crate::errors::HiveError;
use crate::term::Term;
use args::{ColorWhen, CompileArgs, FeatureArgs, GlobalArgs};

/// Where messages go and how they look: `--color` (or, for `auto`, `CARGO_TERM_COLOR`) and `-q`.
pub(crate) fn term(global: &GlobalArgs, env: &ProcessEnv) -> Term {
    let choice = match global.color {
        ColorWhen::Always => ColorChoice::Always,
        ColorWhen::Never => ColorChoice::Never,
        ColorWhen::Auto => env.term_color(),
    };
    Term::new(choice, global.quiet)
}

/// Runs the parsed command; `Ok` carries the exit code (a command such as `doctor` may report "not ready").
pub(crate) async fn dispatch(cli: Cli, env: &ProcessEnv, term: &Term) -> Result<i32, HiveError> {
    let Cli { global, command } = cli;
    match command {
        Command::Doctor(args) => doctor::run(&global, &args, env, term).await,
        Command::Plan(args) => plan::run(&global, &args, env, term),
        Command::Build(args) => build::run(&global, &args, env, term).await,
        Command::Release(args) => release::run(&global, &args, env, term).await,
    }
}

/// The user's cargo as the global flags and cargo's own flags say to run it.
fn cargo(
    global: &GlobalArgs,
    features: &FeatureArgs,
    compile: &CompileArgs,
    env: &ProcessEnv,
) -> Cargo {
    Cargo {
        program: env.cargo.clone(),
        manifest_path: global.manifest_path.clone(),
        flags: args::cargo_flags(features, compile),
        quiet: global.quiet,
        verbose: global.verbose,
        rustc: env.rustc.clone(),
    }
}

/// Whether stderr can show a live display: a terminal that can move its cursor.
fn stderr_is_live_terminal(env: &ProcessEnv) -> bool {
    std::io::stderr().is_terminal() && !env.dumb_terminal()
}
