//! `cargo hive doctor`: its flags as a [`DoctorRequest`] for the engine.

use super::ProcessEnv;
use super::args::{DoctorArgs, Format, GlobalArgs};
use crate::doctor::{self, DoctorRequest};
use crate::errors::HiveError;
use crate::term::Term;

/// Runs `cargo hive doctor`.
pub(super) async fn run(
    global: &GlobalArgs,
    args: &DoctorArgs,
    env: &ProcessEnv,
    term: &Term,
) -> Result<i32, HiveError> {
    let DoctorArgs { connect, format } = args;
    let request = DoctorRequest {
        manifest_path: global.manifest_path.clone(),
        connect: connect.to_options(&env.buildkit, global.verbose > 0),
        json: *format == Format::Json,
    };
    doctor::run(&request, term).await
}
