//! `cargo hive plan`: load, resolve, select, and print the plan as text or versioned JSON.

use std::io::Write;

use hive_build::plan::Plan;

use super::args::{Format, GlobalArgs, PlanArgs};
use super::{ProcessEnv, cargo};
use crate::errors::{HiveError, exit_codes};
use crate::plan::{PlanRequest, human};
use crate::term::Term;

/// Runs `cargo hive plan`.
pub(super) fn run(
    global: &GlobalArgs,
    args: &PlanArgs,
    env: &ProcessEnv,
    term: &Term,
) -> Result<i32, HiveError> {
    let PlanArgs {
        selection,
        features,
        compile,
        format,
    } = args;
    let request = PlanRequest {
        cargo: &cargo(global, features, compile, env),
        selection: &selection.to_selection(compile),
        env: &env.vars,
    };
    let mut plan = crate::plan::compute(request)?.resolved.plan;
    if env.redact() {
        redact(&mut plan);
    }
    let text = match format {
        Format::Json => {
            let mut json = serde_json::to_string_pretty(&plan).expect("the plan serializes");
            json.push('\n');
            json
        }
        Format::Human => human::render(&plan, term.stdout_color()),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(HiveError::Output)?;
    Ok(exit_codes::SUCCESS)
}

/// `HIVE_REDACT=1`: machine-specific paths become `[workspace]`, so output can be compared across machines.
fn redact(plan: &mut Plan) {
    let root = std::mem::replace(&mut plan.workspace_root, "[workspace]".to_owned());
    for image in &mut plan.images {
        let per_platform = image.per_platform.iter_mut().map(|plan| &mut plan.files);
        for file in std::iter::once(&mut image.files)
            .chain(per_platform)
            .flatten()
        {
            if let Some(rest) = file.source.strip_prefix(&root) {
                file.source = format!("[workspace]{rest}");
            }
        }
        if let Some(dockerfile) = &mut image.dockerfile {
            for path in [&mut dockerfile.dockerfile, &mut dockerfile.context] {
                if let Some(rest) = path.strip_prefix(&root) {
                    *path = format!("[workspace]{rest}");
                }
            }
        }
        for source in image.secrets.values_mut() {
            if let hive_build::SecretSource::File(path) = source
                && let Some(rest) = path.strip_prefix(&root)
            {
                *path = format!("[workspace]{rest}");
            }
        }
    }
}
