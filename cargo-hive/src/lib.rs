//! The engine behind `cargo hive`.
//!
//! Data flows one way: `commands` (flags and the environment, turned into engine types; the only module that sees
//! clap) → `config` (metadata, settings and build.rs output, read with spans) → `plan` (images × platforms × tags,
//! validated, with their facts resolved once) → `engine` (cargo, then the `buildkit` façade: connect, session, LLB,
//! solve) → `output`. Only `engine` and `doctor` talk to BuildKit. `ARCHITECTURE.md` at the repository root is the
//! map. The binary calls [`main_from_env`] and nothing else.

mod buildkit;
mod cargo;
mod commands;
mod config;
mod docker_api;
mod doctor;
mod elf;
mod engine;
mod errors;
mod interrupt;
mod output;
mod plan;
mod progress;
mod release;
mod sbom;
mod state;
mod term;

use std::process::ExitCode;

use errors::HiveError;
pub use errors::exit_codes;

/// Runs `cargo hive` (or `cargo-hive`) with the process's arguments and environment; returns the exit code.
pub fn main_from_env() -> ExitCode {
    let env = commands::ProcessEnv::capture();
    let args = commands::normalized_args(std::env::args_os());
    let cli = match commands::parse(args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit_codes::USAGE
            } else {
                exit_codes::SUCCESS
            };
            let _ = err.print();
            return ExitCode::from(code as u8);
        }
    };
    let term = commands::term(&cli.global, &env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            term.error(&format!("failed to start the async runtime: {err}"));
            return ExitCode::from(exit_codes::FAILURE as u8);
        }
    };
    // `build` cancels its own work on a signal (its images drain, its progress ends); the others just stop.
    let cancels_itself = matches!(cli.command, commands::Command::Build(_));
    let result = runtime.block_on(async {
        interrupt::listen().map_err(|source| HiveError::Setup {
            what: "listen for SIGINT, SIGTERM and SIGHUP",
            source,
        })?;
        let work = commands::dispatch(cli, &env, &term);
        if cancels_itself {
            interrupt::prefer_signal(work.await)
        } else {
            interrupt::until_signal(work).await
        }
    });
    // Lingering connection tasks must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(err) => {
            let code = err.exit_code();
            // A closed stdout (`cargo hive doctor --format json | head`) is the reader's choice, not an error.
            if code != exit_codes::SUCCESS {
                term.report(err);
            }
            ExitCode::from(code as u8)
        }
    }
}
