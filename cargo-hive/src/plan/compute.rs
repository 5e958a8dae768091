//! Computes the plan: load the definitions, resolve them, apply the selection.

use std::path::PathBuf;

use hive_build::plan::Plan;

use crate::commands::{CompileArgs, FeatureArgs, GlobalArgs, SelectionArgs};
use crate::config::{self, Diagnostics, LoadOptions};
use crate::errors::HiveError;
use crate::plan::resolve;
use crate::plan::template::{Context, GitRepo};

/// Computes the plan of the selected images: what `cargo hive build` builds, and cargo's target directory (where
/// `build` writes). Every mistake in the definitions is reported at once, as [`HiveError::Diagnostics`].
pub(crate) fn compute(
    global: &GlobalArgs,
    selection: &SelectionArgs,
    features: &FeatureArgs,
    compile: &CompileArgs,
) -> Result<(Plan, PathBuf), HiveError> {
    let mut diags = Diagnostics::default();
    let options = LoadOptions {
        manifest_path: global.manifest_path.as_deref(),
        selection,
        features,
        compile,
        quiet: global.quiet,
    };
    let definitions = config::load(options, &mut diags)?;
    let git = GitRepo::new(definitions.workspace.root.clone());
    let env = |name: &str| std::env::var(name).ok();
    let context = Context {
        profile: compile.profile_name(),
        git: &git,
        env: &env,
    };
    let images = resolve::resolve_all(&definitions, &context, &mut diags);
    diags.into_result()?;
    let packages_given = selection.workspace || !selection.packages.is_empty();
    let images = resolve::select(images, &definitions, &selection.images, packages_given)
        .map_err(HiveError::Message)?;
    let plan = resolve::plan(images, &definitions, compile.profile_name());
    Ok((plan, definitions.workspace.target_directory))
}

