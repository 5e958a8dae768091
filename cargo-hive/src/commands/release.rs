//! `cargo hive release`: its flags as a [`ReleaseRequest`] for the engine.

use super::args::{GlobalArgs, ProvenanceArg, ReleaseArgs};
use super::{ProcessEnv, cargo, stderr_is_live_terminal};
use crate::engine::{self, BuildRequest, ReleaseRequest, SbomAsk};
use crate::errors::HiveError;
use crate::progress;
use crate::term::Term;

/// Runs `cargo hive release`.
pub(super) async fn run(
    global: &GlobalArgs,
    args: &ReleaseArgs,
    env: &ProcessEnv,
    term: &Term,
) -> Result<i32, HiveError> {
    engine::release(&request(global, args, env), term).await
}

/// The engine's request for these flags; destructured in full so that a new flag cannot be forgotten.
fn request(global: &GlobalArgs, args: &ReleaseArgs, env: &ProcessEnv) -> ReleaseRequest {
    let ReleaseArgs {
        selection,
        features,
        compile,
        connect,
        jobs,
        progress,
        metadata_file,
        dry_run,
        allow_dirty,
        provenance,
    } = args;
    let mut cargo = cargo(global, features, compile, env);
    // A release is built like `cargo publish` would ship it: optimized, unless a profile is named.
    if cargo.flags.profile.is_none() {
        cargo.flags.release = true;
    }
    ReleaseRequest {
        build: BuildRequest {
            cargo,
            selection: selection.to_selection(compile),
            connect: connect.to_options(&env.buildkit, global.verbose > 0),
            env: env.vars.clone(),
            jobs: *jobs,
            load: false,
            push: true,
            outputs: Vec::new(),
            renderer: progress::choose(
                progress.requested(),
                stderr_is_live_terminal(env),
                env.is_ci(),
            ),
            redact: env.redact(),
            metadata_file: metadata_file.clone(),
            no_cache: false,
            // A release compresses as the manifests say.
            compression: None,
            dry_run: false,
            provenance: ProvenanceArg::to_flag(*provenance),
            // Every image of a release gets one; a daemon that cannot keep them gets a warning, not an error.
            sbom: SbomAsk {
                flag: false,
                by_default: true,
            },
        },
        allow_dirty: *allow_dirty,
        dry_run: *dry_run,
    }
}
