//! Computes the plan: load the definitions, resolve them, apply the selection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hive_build::progress::Phase;

use crate::cargo::Cargo;
use crate::cargo::host_default_triple as host_triple;
use crate::config::{
    self, ConnectionSettings, Definitions, Diagnostics, LoadOptions, ScriptTargets, Selection,
};
use crate::errors::HiveError;
use crate::plan::assemble;
use crate::plan::facts::Resolved;
use crate::plan::git::{GitFacts, GitOverrides};
use crate::plan::template::Context;
use crate::plan::triple::default_triple;
use crate::plan::{Platform, assemble::Layers};

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
    /// How long each planning phase took, in the order they ran (`build-scripts` only when the pass ran).
    pub(crate) phases: Vec<(Phase, Duration)>,
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
    let started = Instant::now();
    let mut definitions = config::load(LoadOptions { cargo, selection }, &mut diags)?;
    let mut phases = vec![(Phase::CargoMetadata, started.elapsed())];
    let started = Instant::now();
    let overrides = GitOverrides {
        sha: env.get("HIVE_GIT_SHA").cloned(),
        branch: env.get("HIVE_GIT_BRANCH").cloned(),
    };
    let git = GitFacts::new(definitions.workspace.root.clone(), overrides);
    let profile = cargo.flags.profile_name();
    let lookup = |name: &str| env.get(name).cloned();
    let context = Context {
        profile,
        git: &git,
        env: &lookup,
    };
    // git runs (for the epoch, and the sha on the way) while the definitions are assembled, rather than when a tag
    // or the build first asks.
    let (assembled, scripts) = std::thread::scope(|scope| {
        scope.spawn(|| git.commit_time());
        assemble_selected(cargo, selection, &mut definitions, &context, diags)
    })?;
    let resolved = assemble::plan(assembled, &definitions, profile, git);
    if let Some(scripts) = scripts {
        phases.push((Phase::BuildScripts, scripts));
    }
    phases.push((
        Phase::Plan,
        started
            .elapsed()
            .saturating_sub(scripts.unwrap_or_default()),
    ));
    Ok(Computed {
        resolved,
        target_dir: definitions.workspace.target_directory,
        connection: definitions.connection,
        phases,
    })
}

/// The selected images, assembled from the definitions after the build scripts that declare images ran; and how
/// long the build-script pass took, when it ran.
fn assemble_selected(
    cargo: &Cargo,
    selection: &Selection,
    definitions: &mut Definitions,
    context: &Context<'_>,
    mut diags: Diagnostics,
) -> Result<(assemble::Assembled, Option<Duration>), HiveError> {
    let mut scripts = None;
    // Build scripts run once per triple their package's images need. The manifests name most of them; a platform
    // only a build script adds needs a second run that includes its triple.
    let mut triples = script_triples(definitions);
    let mut assembled = None;
    for _pass in 0..2 {
        if definitions
            .workspace
            .packages
            .iter()
            .any(|p| p.uses_hive_build)
        {
            let pass = Instant::now();
            let pass_target = triples.iter().any(|triple| triple != host_triple());
            let targets = ScriptTargets {
                triples: &triples,
                pass_target,
            };
            check_installed(cargo, &triples)?;
            config::run_build_scripts(definitions, cargo, targets, &mut diags)?;
            *scripts.get_or_insert(Duration::ZERO) += pass.elapsed();
        }
        let mut pass_diags = Diagnostics::default();
        let this_pass = assemble::resolve_all(definitions, context, &mut pass_diags);
        let missing = this_pass.missing_triples.clone();
        assembled = Some((this_pass, pass_diags));
        if missing.is_subset(&triples) {
            break;
        }
        triples.extend(missing);
    }
    let (assembled, pass_diags) = assembled.expect("the loop runs");
    diags.extend(pass_diags);
    if let Some(triple) = assembled.missing_triples.iter().next() {
        return Err(HiveError::Input(format!(
            "a build script did not declare its images for target {triple}, which one of its platforms is built for"
        )));
    }
    diags.into_result()?;
    let wanted = assemble::Wanted {
        images: &selection.images,
        platforms: &selection.platforms,
        targets: &selection.targets,
    };
    let selected = assemble::select(assembled, definitions, &wanted, selection.names_packages())
        .map_err(|err| HiveError::Input(err.to_string()))?;
    Ok((selected, scripts))
}

/// The triples the build scripts run for first: those of the platforms the manifests give the images of every
/// package that declares images in its build script (and of its defaults, for the images the script declares).
fn script_triples(definitions: &Definitions) -> BTreeSet<String> {
    let mut triples = BTreeSet::new();
    let mut add = |layers: &[config::Layer]| {
        let layers = Layers(layers);
        let platforms: Vec<String> = match layers.pick(|def| def.platforms.as_ref()) {
            Some((platforms, _)) => platforms.clone(),
            None => (hive_build::schema::defaults::PLATFORMS.iter())
                .map(|p| (*p).to_owned())
                .collect(),
        };
        let targets = layers.merged(|def| &def.targets);
        for text in &platforms {
            let Ok(platform) = Platform::parse(text) else {
                continue;
            };
            match targets.get(&text[..]) {
                Some((triple, _)) => triples.insert((*triple).to_owned()),
                None => default_triple(&platform).is_some_and(|t| triples.insert(t.to_owned())),
            };
        }
    };
    for (index, package) in definitions.workspace.packages.iter().enumerate() {
        if !package.uses_hive_build {
            continue;
        }
        let defaults: Vec<config::Layer> = (definitions.workspace_defaults.iter())
            .chain(definitions.package_defaults[index].iter())
            .cloned()
            .collect();
        add(&defaults);
        for image in definitions.images.iter().filter(|i| i.package == index) {
            add(&image.layers);
        }
    }
    if triples.is_empty() {
        triples.insert(host_triple().to_owned());
    }
    triples
}

/// `cargo check --target` needs each triple's standard library: a missing one is said with its `rustup` command.
fn check_installed(cargo: &Cargo, triples: &BTreeSet<String>) -> Result<(), HiveError> {
    let needed: Vec<crate::cargo::NeededTarget> = triples
        .iter()
        .map(|triple| crate::cargo::NeededTarget {
            triple: triple.clone(),
            needed_for: "the build scripts that declare images".to_owned(),
        })
        .collect();
    let cwd = std::env::current_dir().map_err(|source| HiveError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    crate::cargo::check_targets_installed(cargo, &needed, &cwd, None)
        .map(drop)
        .map_err(|err| HiveError::Input(err.to_string()))
}
