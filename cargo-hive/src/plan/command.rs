//! `cargo hive plan`: load, resolve, select, and print the plan as text or versioned JSON.

use std::io::Write;
use std::path::PathBuf;

use crate::cli::{CompileArgs, FeatureArgs, Format, GlobalArgs, PlanArgs, SelectionArgs};
use crate::config::{self, Diagnostics, LoadOptions};
use crate::errors::{HiveError, exit_codes};
use crate::plan::Resolved;
use crate::plan::git::{GitFacts, GitOverrides};
use crate::plan::template::Context;
use crate::plan::{assemble, human};
use crate::term::Term;

/// Computes the plan of the selected images: what `cargo hive build` builds, and cargo's target directory (where
/// `build` writes). Every mistake in the definitions is reported at once, as [`HiveError::Diagnostics`].
pub(crate) fn compute(
    global: &GlobalArgs,
    selection: &SelectionArgs,
    features: &FeatureArgs,
    compile: &CompileArgs,
) -> Result<(Resolved, PathBuf), HiveError> {
    let mut diags = Diagnostics::default();
    let options = LoadOptions {
        manifest_path: global.manifest_path.as_deref(),
        selection,
        features,
        compile,
        quiet: global.quiet,
    };
    let definitions = config::load(options, &mut diags)?;
    let git = GitFacts::new(definitions.workspace.root.clone(), GitOverrides::from_env());
    let env = |name: &str| std::env::var(name).ok();
    let context = Context {
        profile: compile.profile_name(),
        git: &git,
        env: &env,
    };
    let assembled = assemble::resolve_all(&definitions, &context, &mut diags);
    diags.into_result()?;
    let packages_given = selection.workspace || !selection.packages.is_empty();
    let assembled = assemble::select(assembled, &definitions, &selection.images, packages_given)
        .map_err(|err| HiveError::Message(err.to_string()))?;
    let resolved = assemble::plan(assembled, &definitions, compile.profile_name(), git);
    Ok((resolved, definitions.workspace.target_directory))
}

/// Runs `cargo hive plan`.
pub(crate) fn run_command(
    global: &GlobalArgs,
    args: &PlanArgs,
    term: &Term,
) -> Result<i32, HiveError> {
    let PlanArgs {
        selection,
        features,
        compile,
        format,
    } = args;
    let (Resolved { mut plan, .. }, _) = compute(global, selection, features, compile)?;
    if std::env::var_os("HIVE_REDACT").is_some_and(|value| value == "1") {
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
fn redact(plan: &mut hive_build::plan::Plan) {
    let root = std::mem::replace(&mut plan.workspace_root, "[workspace]".to_owned());
    for image in &mut plan.images {
        for file in &mut image.files {
            if let Some(rest) = file.source.strip_prefix(&root) {
                file.source = format!("[workspace]{rest}");
            }
        }
    }
}
