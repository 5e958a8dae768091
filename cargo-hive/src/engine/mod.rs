//! `cargo hive build`: plan → cargo → one gateway solve per image over one connection → outputs.

mod artifacts;
mod bases;
mod epoch;
mod errors;
mod fresh;
mod job;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hive_build::plan::Plan;

use crate::buildkit::{Buildkit, manifest_settings};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::compile::{self, CompileRequest};
use crate::errors::{HiveError, exit_codes};
use crate::interrupt;
use crate::output;
use crate::progress::{self, Event, Progress};
use crate::term::Term;

/// Runs `cargo hive build`.
pub(crate) async fn run(
    global: &GlobalArgs,
    args: &BuildArgs,
    term: &Term,
) -> Result<i32, HiveError> {
    // Cargo runs here (metadata, build scripts): a signal kills it, and the signal is what we report.
    let (plan, target_dir) = interrupt::prefer_signal(crate::plan::compute(
        global,
        &args.selection,
        &args.features,
        &args.compile,
    ))?;
    let destinations = output::destinations(args.load, args.push, &args.output)?;
    check_supported(&plan)?;
    check_one_file_per_image(&plan, &destinations)?;
    let workspace_root = PathBuf::from(&plan.workspace_root);
    let (epoch, epoch_source) = epoch::source_date_epoch(&workspace_root)
        .map_err(|err| HiveError::Message(err.to_string()))?;

    if args.dry_run {
        return dry_run(&plan, epoch);
    }

    // What builds killed outright (SIGKILL, a crash) left in target/hive/ goes now, if their build is gone.
    output::remove_stale(&target_dir);

    let mode = progress::detect(args.progress);
    // -q silences the human renderers; JSON is data and stays.
    let (progress, progress_handle) = if term.is_quiet() && mode != progress::Mode::Json {
        (Progress::disabled(), None)
    } else {
        let (progress, handle) = Progress::start(mode, term);
        (progress, Some(handle))
    };
    if epoch_source == epoch::EpochSource::Zero {
        progress.event(Event::Warning {
            image: None,
            message: "the workspace is not a git checkout with commits and SOURCE_DATE_EPOCH is unset: file and \
                      image times are 1970-01-01"
                .to_owned(),
        });
    }
    let result = build_all(
        global,
        args,
        &plan,
        &target_dir,
        destinations,
        epoch,
        &progress,
    )
    .await;
    progress.event(Event::BuildFinished {
        success: result.is_ok(),
    });
    if let Some(handle) = progress_handle {
        handle.finish().await;
    }
    result
}

async fn build_all(
    global: &GlobalArgs,
    args: &BuildArgs,
    plan: &Plan,
    target_dir: &Path,
    destinations: Vec<output::Destination>,
    epoch: i64,
    progress: &Progress,
) -> Result<i32, HiveError> {
    // Until the images start, a signal drops whatever runs (cargo's tree is killed, connections close).
    let context = interrupt::until_signal(prepare_context(
        global,
        args,
        plan,
        target_dir,
        destinations,
        epoch,
        progress,
    ))
    .await?;
    let context = Arc::new(context);
    let jobs = args.jobs.unwrap_or(usize::MAX).max(1);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.min(1024)));
    let mut tasks = tokio::task::JoinSet::new();
    for planned in plan.images.iter().filter(|image| image.selected).cloned() {
        let context = context.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let name = planned.name.clone();
            (name, job::build_image(&context, &planned).await)
        });
    }
    let mut built = Vec::new();
    let mut failures = Vec::new();
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                None => break,
                Some(Ok((_, Ok(image)))) => built.push(image),
                Some(Ok((name, Err(err)))) => failures.push((name, err.to_string())),
                Some(Err(err)) => failures.push(("?".to_owned(), format!("the build task failed: {err}"))),
            },
            signal = interrupt::wait() => {
                // Dropping the tasks drops their gRPC calls: the daemon cancels those solves; temp files and
                // load archives go with their sessions and guards, before we exit.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return Err(HiveError::Interrupted(signal));
            }
        }
    }
    built.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(path) = &args.metadata_file {
        job::write_metadata(path, &built).map_err(|err| HiveError::Message(err.to_string()))?;
    }
    if !failures.is_empty() {
        failures.sort();
        let text = failures
            .iter()
            .map(|(name, err)| format!("image `{name}`: {err}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(HiveError::Message(if failures.len() == 1 {
            text
        } else {
            format!("{} images failed:\n{text}", failures.len())
        }));
    }
    Ok(exit_codes::SUCCESS)
}

/// Everything before the images: cargo builds the binaries, BuildKit is connected, the destinations are checked
/// and the bases resolved.
async fn prepare_context(
    global: &GlobalArgs,
    args: &BuildArgs,
    plan: &Plan,
    target_dir: &Path,
    destinations: Vec<output::Destination>,
    epoch: i64,
    progress: &Progress,
) -> Result<job::BuildContext, HiveError> {
    let workspace_root = PathBuf::from(&plan.workspace_root);
    // Connection settings that cannot work are bad input: said before cargo spends minutes compiling.
    let manifest = manifest_settings(&workspace_root.join("Cargo.toml")).ok();
    let options = args.connect.options(manifest, global.verbose > 0);
    for message in options.check_tls()? {
        progress.event(Event::Warning {
            image: None,
            message,
        });
    }
    // The user's cargo builds the binaries, with their flags, cache and toolchain.
    let request = CompileRequest {
        manifest_path: global.manifest_path.clone(),
        targets: targets(plan),
        features: args.features.clone(),
        compile: args.compile.clone(),
        quiet: global.quiet,
        verbose: global.verbose,
    };
    progress.event(Event::CargoStarted);
    let cwd = std::env::current_dir().map_err(|err| HiveError::Message(err.to_string()))?;
    let artifacts = interrupt::prefer_signal(
        compile::build(&request, &cwd)
            .await
            .map_err(|err| HiveError::Message(err.to_string())),
    );
    progress.event(Event::CargoFinished {
        success: artifacts.is_ok(),
    });
    let artifacts = artifacts?;
    artifacts::check_architectures(plan, &artifacts.executables)
        .map_err(|err| HiveError::Message(err.to_string()))?;

    let buildkit = Buildkit::connect(&options).await?;
    let daemon = buildkit.daemon.kind;
    // Where the images go is known now: an exporter this daemon lacks, or a missing Docker for --load, fails
    // once, before anything is built for it.
    output::check_exporters(&destinations, daemon)?;
    let docker_socket = buildkit.daemon.docker_socket.clone();
    output::check_load_target(&destinations, daemon, docker_socket.as_deref()).await?;

    let bases = bases::prepare(&buildkit, needs(plan, &artifacts.executables))
        .await
        .map_err(|err| HiveError::Message(err.to_string()))?;
    Ok(job::BuildContext {
        buildkit,
        daemon,
        destinations,
        epoch,
        target_dir: target_dir.to_path_buf(),
        workspace_root: workspace_root.clone(),
        no_cache: args.no_cache,
        progress: progress.clone(),
        images: plan
            .images
            .iter()
            .map(|image| (image.name.clone(), image.clone()))
            .collect(),
        executables: artifacts.executables,
        revision: epoch::revision(&workspace_root),
        bases,
    })
}

/// What the first version of build does not do yet, said plainly instead of half-done.
fn check_supported(plan: &Plan) -> Result<(), HiveError> {
    for image in &plan.images {
        let host = format!("linux/{}", crate::buildkit::host_architecture());
        if image.platforms.iter().any(|platform| platform != &host) {
            return Err(HiveError::Message(format!(
                "image `{}` targets {}; this version builds for the host platform ({host}) only",
                image.name,
                image.platforms.join(", ")
            )));
        }
    }
    Ok(())
}

/// `--output type=oci|docker|tar,dest=PATH` names one file: with several images, each would replace the last.
fn check_one_file_per_image(
    plan: &Plan,
    destinations: &[output::Destination],
) -> Result<(), HiveError> {
    let selected: Vec<&str> = plan
        .images
        .iter()
        .filter(|image| image.selected)
        .map(|image| image.name.as_str())
        .collect();
    for destination in destinations {
        if let output::Destination::Raw {
            dest: Some(dest), ..
        } = destination
            && selected.len() > 1
        {
            return Err(HiveError::Message(format!(
                "--output with dest={} writes one file, but {} images are selected ({}): pick one with \
                 --image NAME, or leave --output out to get one archive per image (target/hive/<image>.oci.tar)",
                dest.display(),
                selected.len(),
                selected.join(", ")
            )));
        }
    }
    Ok(())
}

/// The registry bases of the selected images (at the bottom of any `hive:` chain) and the loaders their binaries need.
fn needs(
    plan: &Plan,
    executables: &BTreeMap<(String, String), compile::Executable>,
) -> std::collections::BTreeSet<bases::Need> {
    let by_name: BTreeMap<&str, &hive_build::plan::PlanImage> = plan
        .images
        .iter()
        .map(|image| (image.name.as_str(), image))
        .collect();
    let mut needs = std::collections::BTreeSet::new();
    for image in plan.images.iter().filter(|image| image.selected) {
        let mut current = image;
        let mut depth = 0;
        while let hive_build::plan::Base::Hive { image: below } = &current.base {
            match by_name.get(below.as_str()) {
                Some(next) if depth < plan.images.len() => current = *next,
                _ => break,
            }
            depth += 1;
        }
        let hive_build::plan::Base::Image { reference } = &current.base else {
            continue;
        };
        let loader = (depth == 0)
            .then(|| executables.get(&(image.package.name.clone(), image.binary.target.clone())))
            .flatten()
            .and_then(|executable| executable.interpreter.clone());
        for platform in &image.platforms {
            needs.insert(bases::Need {
                reference: reference.clone(),
                platform: platform.clone(),
                loader: loader.clone(),
            });
        }
    }
    needs
}

fn targets(plan: &Plan) -> BTreeMap<String, Vec<String>> {
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // `hive:` bases are in the plan unselected; their binaries go into the images built on them.
    for image in &plan.images {
        let bins = targets.entry(image.package.name.clone()).or_default();
        if !bins.contains(&image.binary.target) {
            bins.push(image.binary.target.clone());
        }
    }
    targets
}

fn dry_run(plan: &Plan, epoch: i64) -> Result<i32, HiveError> {
    use std::io::Write;
    let mut documents = Vec::new();
    for planned in plan.images.iter().filter(|image| image.selected) {
        documents.push(job::dry_run_json(planned, epoch));
    }
    let text = serde_json::to_string_pretty(
        &serde_json::json!({"format_version": 1, "images": documents}),
    )
    .expect("JSON values serialize");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(HiveError::Output)?;
    Ok(exit_codes::SUCCESS)
}
