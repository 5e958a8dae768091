//! Computes the plan: load the definitions, resolve them, apply the selection.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cargo::Cargo;
use crate::config::{self, ConnectionSettings, Diagnostics, LoadOptions, Selection};
use crate::errors::HiveError;
use crate::plan::assemble;
use crate::plan::facts::Resolved;
use crate::plan::git::{GitFacts, GitOverrides};
use crate::plan::template::Context;

/// What a plan is computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanRequest<'a> {
    /// The cargo that reads the workspace (its flags choose the profile and run the build scripts).
    pub(crate) cargo: &'a Cargo,
    /// Which packages and images.
    pub(crate) selection: &'a Selection,
    /// The process environment, for `{env.NAME}` templates.
    pub(crate) env: &'a BTreeMap<String, String>,
}

/// A computed plan and what else the workspace said.
#[derive(Debug)]
pub(crate) struct Computed {
    /// What `cargo hive build` builds, with its resolved facts.
    pub(crate) resolved: Resolved,
    /// Cargo's target directory (where `build` writes).
    pub(crate) target_dir: PathBuf,
    /// How the manifest says to reach BuildKit.
    pub(crate) connection: ConnectionSettings,
}

/// Computes the plan of the selected images. Every mistake in the definitions is reported at once, as
/// [`HiveError::Diagnostics`].
pub(crate) fn compute(request: PlanRequest<'_>) -> Result<Computed, HiveError> {
    let PlanRequest {
        cargo,
        selection,
        env,
    } = request;
    let mut diags = Diagnostics::default();
    let definitions = config::load(LoadOptions { cargo, selection }, &mut diags)?;
    let overrides = GitOverrides {
        sha: env.get("HIVE_GIT_SHA").cloned(),
        branch: env.get("HIVE_GIT_BRANCH").cloned(),
    };
    let git = GitFacts::new(definitions.workspace.root.clone(), overrides);
    let env = |name: &str| env.get(name).cloned();
    let profile = cargo.flags.profile_name();
    let context = Context {
        profile,
        git: &git,
        env: &env,
    };
    let assembled = assemble::resolve_all(&definitions, &context, &mut diags);
    diags.into_result()?;
    let assembled = assemble::select(
        assembled,
        &definitions,
        &selection.images,
        selection.names_packages(),
    )
    .map_err(|err| HiveError::Input(err.to_string()))?;
    let resolved = assemble::plan(assembled, &definitions, profile, git);
    Ok(Computed {
        resolved,
        target_dir: definitions.workspace.target_directory,
        connection: definitions.connection,
    })
}
