//! `cargo hive build`: its flags as a [`BuildRequest`] for the engine.

use super::args::{BuildArgs, GlobalArgs, ProvenanceArg};
use super::{ProcessEnv, cargo, stderr_is_live_terminal};
use crate::buildkit::LayerCompression;
use crate::engine::{self, BuildRequest, SbomAsk};
use crate::errors::HiveError;
use crate::progress;
use crate::term::Term;

/// Runs `cargo hive build`.
pub(super) async fn run(
    global: &GlobalArgs,
    args: &BuildArgs,
    env: &ProcessEnv,
    term: &Term,
) -> Result<i32, HiveError> {
    let request = request(global, args, env);
    if let Some(compression) = request.compression {
        check_level(compression)?;
    }
    engine::run(&request, term).await
}

/// `--compression-level` must be a level of `--compression`: bad input, said before anything runs.
fn check_level(compression: LayerCompression) -> Result<(), HiveError> {
    let Some(level) = compression.level else {
        return Ok(());
    };
    let kind = compression.kind;
    match kind.levels() {
        Some(levels) if levels.contains(&level) => Ok(()),
        Some(levels) => Err(HiveError::Input(format!(
            "--compression-level {level} is not a level of {kind}: it takes {} to {}",
            levels.start(),
            levels.end()
        ))),
        None => Err(HiveError::Input(format!(
            "--compression-level {level} has no meaning with --compression {kind}: it takes no level"
        ))),
    }
}

/// The engine's request for these flags; destructured in full so that a new flag cannot be forgotten.
fn request(global: &GlobalArgs, args: &BuildArgs, env: &ProcessEnv) -> BuildRequest {
    let BuildArgs {
        selection,
        features,
        compile,
        connect,
        jobs,
        load,
        push,
        output,
        progress,
        metadata_file,
        no_cache,
        dry_run,
        provenance,
        sbom,
        compression,
        compression_level,
    } = args;
    BuildRequest {
        cargo: cargo(global, features, compile, env),
        selection: selection.to_selection(compile),
        connect: connect.to_options(&env.buildkit, global.verbose > 0),
        env: env.vars.clone(),
        jobs: *jobs,
        load: *load,
        push: *push,
        outputs: output.clone(),
        renderer: progress::choose(
            progress.requested(),
            stderr_is_live_terminal(env),
            env.is_ci(),
        ),
        redact: env.redact(),
        metadata_file: metadata_file.clone(),
        no_cache: *no_cache,
        dry_run: *dry_run,
        provenance: ProvenanceArg::to_flag(*provenance),
        sbom: SbomAsk {
            flag: *sbom,
            by_default: false,
        },
        compression: compression.map(|kind| LayerCompression {
            kind,
            level: *compression_level,
        }),
    }
}
