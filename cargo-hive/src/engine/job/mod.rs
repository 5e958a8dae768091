//! One image: its `hive:` chain and base, its outputs, its LLB and config, the up-to-date check, the solve (through
//! the BuildKit façade), what Docker finishes, and the stamp for the next build, each a function of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hive_build::plan::{Base, PlanImage};
use hive_build::progress::Phase;
use sha2::{Digest, Sha256};

use super::errors::{JobError, NoLoader, StepFailed};
use super::fresh;
use crate::buildkit::LocalDir;
use crate::buildkit::dockerfile::{
    self as dockerfile, DockerfileDirs, DockerfileSolve, NamedContext,
};
use crate::buildkit::layout::{
    self as layout, ConfigOverrides, CopyEntry, ImageLayout, LayoutBase, Llb, LocalInput,
    PinnedBase,
};
use crate::buildkit::over_dockerfile::{LayersOverDockerfile, UpperLayer};
use crate::buildkit::steps::exec_steps;
use crate::buildkit::{
    BaseFacts, Buildkit, LoaderCheck, LoaderNeed, PlatformBuild, PlatformSolve, ProvenanceMode,
    SolveJob, Solved,
};
use crate::cargo::{ArtifactKey, Executable};
use crate::output::{self, Destination};
use crate::plan::{ImageFacts, Platform, PlatformFacts};
use crate::progress::{EngineEvent, Progress};

mod freshness;

/// What every image build shares.
pub(crate) struct BuildContext {
    /// The connection.
    pub(crate) buildkit: Buildkit,
    /// The Docker daemon behind `--load` and pushes through Docker, found once after connecting.
    pub(crate) docker_socket: PathBuf,
    /// The images under the Docker references (id, newest history comment), asked early for the `--load`
    /// up-to-date checks.
    pub(crate) docker_images: Option<fresh::DockerImages>,
    /// Where images go.
    pub(crate) destinations: Vec<Destination>,
    /// SOURCE_DATE_EPOCH.
    pub(crate) epoch: i64,
    /// Cargo's target directory (archives go to `target/hive/`).
    pub(crate) target_dir: PathBuf,
    /// The workspace root (part of the shared keys).
    pub(crate) workspace_root: PathBuf,
    /// `--no-cache`.
    pub(crate) no_cache: bool,
    /// Where progress goes.
    pub(crate) progress: Progress,
    /// Every image of the plan by name (for `hive:` bases).
    pub(crate) images: BTreeMap<String, PlanImage>,
    /// The resolved facts of every image of the plan, by name.
    pub(crate) facts: BTreeMap<String, ImageFacts>,
    /// What cargo built, by (package, bin target, triple).
    pub(crate) executables: BTreeMap<ArtifactKey, Executable>,
    /// The commit of the plan's git facts, for the `revision` label.
    pub(crate) revision: Option<String>,
    /// The bases, resolved once for all images.
    pub(crate) bases: BaseFacts,
    /// `--metadata-file` was asked for: each platform's manifest digest is read back after the build.
    pub(crate) wants_manifests: bool,
    /// The SLSA provenance the daemon generates for every image (settled against the daemon already).
    pub(crate) provenance: Option<ProvenanceMode>,
    /// Whether the images may carry attestations of their own (`PlatformSolve::attestations`): false when this
    /// daemon cannot keep them and they were on by default only.
    pub(crate) attestations_kept: bool,
    /// The SBOM maker, when some image wants one.
    pub(crate) sboms: Option<super::sboms::Sboms>,
    /// Every image's build secrets, read before the build started.
    pub(crate) secrets: super::secrets::ResolvedSecrets,
}

/// One image of a `hive:` chain: what it adds on top of the one below.
struct ChainLayer {
    planned: PlanImage,
    executable: Executable,
    inputs: Vec<LocalInput>,
}

impl BuildContext {
    fn executable(&self, planned: &PlanImage, triple: &str) -> Result<Executable, JobError> {
        let key = ArtifactKey {
            package: planned.package.name.clone(),
            bin: planned.binary.target.clone(),
            triple: triple.to_owned(),
        };
        self.executables
            .get(&key)
            .cloned()
            .ok_or_else(|| JobError::MissingBinary {
                binary: planned.binary.target.clone(),
                package: planned.package.name.clone(),
                image: planned.name.clone(),
            })
    }

    /// The image's facts (its platforms and their chains).
    fn facts(&self, planned: &PlanImage) -> &ImageFacts {
        self.facts
            .get(&planned.name)
            .expect("every image of the plan has its facts")
    }

    /// The layers of the image's `hive:` chain on one platform (as the plan resolved it), bottom first, and the
    /// base at the bottom (scratch, a registry image, or a Dockerfile: then the chain's bottom image is the
    /// Dockerfile image, built by its frontend, and not one of the layers).
    fn chain(
        &self,
        on: &PlatformFacts,
        several: bool,
    ) -> Result<(Base, Vec<ChainLayer>), JobError> {
        let mut layers = Vec::new();
        let built_by_dockerfile = usize::from(on.chain.root == Base::Dockerfile);
        for name in on.chain.images.iter().skip(built_by_dockerfile) {
            let current = self
                .images
                .get(name)
                .ok_or_else(|| JobError::NotInPlan(name.clone()))?;
            let current = on_platform(current, &on.platform);
            // Each image of the chain is built for the platform with its own triple (`targets` may differ).
            let triple = self
                .facts
                .get(name)
                .and_then(|facts| facts.on(&on.platform))
                .map_or(&on.triple, |below| &below.triple);
            let executable = self.executable(&current, triple)?;
            let suffix = several.then(|| on.platform.path_segment());
            let inputs = local_inputs(&current, &executable, suffix.as_deref())?;
            layers.push(ChainLayer {
                planned: current,
                executable,
                inputs,
            });
        }
        Ok((on.chain.root.clone(), layers))
    }
}

/// The secrets one image's solve serves: its own, then those of the rest of its `hive:` chain (built in the same
/// solve), on any platform.
fn solve_secrets(context: &BuildContext, planned: &PlanImage) -> crate::buildkit::SecretValues {
    let chain = (context.facts(planned).platforms.iter())
        .flat_map(|on| on.chain.images.iter().rev().map(String::as_str));
    context
        .secrets
        .for_solve(std::iter::once(planned.name.as_str()).chain(chain))
}

/// The image as it is on one platform: that platform's base, files and config (a build script may set them per
/// target).
fn on_platform(image: &PlanImage, platform: &Platform) -> PlanImage {
    let mut view = image.clone();
    let text = platform.to_string();
    if crate::plan::take_platform_values(&mut view, &text) {
        view.platforms = vec![text];
    }
    view
}

/// A built image.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BuiltImage {
    /// Image name.
    pub(crate) name: String,
    /// Full references.
    pub(crate) references: Vec<String>,
    /// Manifest digest (the index's, for a multi-platform image).
    pub(crate) digest: String,
    /// Each platform's manifest digest, when `--metadata-file` asked for them and the output can say.
    pub(crate) platforms: BTreeMap<String, String>,
    /// Config digest.
    pub(crate) config_digest: Option<String>,
    /// Each platform's SBOM file, when the image has SBOMs.
    pub(crate) sbom: BTreeMap<String, PathBuf>,
    /// Where it went (a path, "docker", "registry").
    pub(crate) output: String,
    /// The archive, when one was written.
    pub(crate) archive: Option<PathBuf>,
    /// File bytes our session sent to the daemon.
    pub(crate) bytes_sent: u64,
    /// How long the image took.
    pub(crate) duration: Duration,
}

/// A stable key per workspace and image: the daemon keeps each local source's last transfer under it.
fn shared_key(workspace_root: &Path, image: &str) -> String {
    let digest = Sha256::digest(format!("{}\0{image}", workspace_root.display()).as_bytes());
    format!("{image}-{}", &hex::encode(digest)[..16])
}

/// The local sources of an image: the binary's directory, and one per distinct directory of declared files. In a
/// multi-platform image each platform's sources are named apart (`suffix`).
fn local_inputs(
    planned: &PlanImage,
    executable: &Executable,
    suffix: Option<&str>,
) -> Result<Vec<LocalInput>, JobError> {
    let named = |name: String| match suffix {
        Some(suffix) => format!("{name}-{suffix}"),
        None => name,
    };
    let not_a_path = || JobError::NotAPath(executable.path.clone());
    let bin_dir = executable
        .path
        .parent()
        .ok_or_else(not_a_path)?
        .to_path_buf();
    let bin_name = executable
        .path
        .file_name()
        .ok_or_else(not_a_path)?
        .to_string_lossy()
        .into_owned();
    let mut inputs = vec![LocalInput {
        name: named(format!("{}-bin", planned.name)),
        root: bin_dir,
        entries: vec![CopyEntry {
            source: bin_name,
            destination: planned.binary.path.clone(),
            mode: Some(0o755),
        }],
    }];
    let mut by_dir: BTreeMap<PathBuf, Vec<CopyEntry>> = BTreeMap::new();
    for file in &planned.files {
        let source = Path::new(&file.source);
        let (Some(parent), Some(name)) = (source.parent(), source.file_name()) else {
            return Err(JobError::NotAPath(source.to_path_buf()));
        };
        if !source.exists() {
            return Err(JobError::MissingFile {
                source_path: file.source.clone(),
                destination: file.destination.clone(),
            });
        }
        by_dir
            .entry(parent.to_path_buf())
            .or_default()
            .push(CopyEntry {
                source: name.to_string_lossy().into_owned(),
                destination: file.destination.clone(),
                mode: file.mode.map(|mode| mode.0),
            });
    }
    for (index, (root, entries)) in by_dir.into_iter().enumerate() {
        inputs.push(LocalInput {
            name: named(format!("{}-files-{index}", planned.name)),
            root,
            entries,
        });
    }
    Ok(inputs)
}

fn overrides(planned: &PlanImage, epoch: i64, revision: Option<&str>) -> ConfigOverrides {
    let config = &planned.config;
    let mut labels = config.labels.clone();
    // The build's own facts, unless the definitions set them.
    labels
        .entry("org.opencontainers.image.created".to_owned())
        .or_insert_with(|| layout::rfc3339(epoch));
    if let Some(revision) = revision {
        labels
            .entry("org.opencontainers.image.revision".to_owned())
            .or_insert_with(|| revision.to_owned());
    }
    ConfigOverrides {
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        env: config.env.clone(),
        workdir: config.workdir.clone(),
        user: config.user.clone(),
        exposed_ports: config
            .exposed_ports
            .iter()
            .map(ToString::to_string)
            .collect(),
        labels,
        steps: (planned.run.iter())
            .map(|step| format!("cargo hive: run {}", step.args.join(" ")))
            .collect(),
    }
}

/// A failed RUN step with the place it is written in the plan; any other solve error as it is.
fn step_failed(context: &BuildContext, error: crate::buildkit::SolveError) -> JobError {
    let crate::buildkit::SolveError::Step(step, _) = &error else {
        return error.into();
    };
    let planned = context.images.get(&step.image);
    let key = format!("run[{}]", step.index);
    let place = (planned.and_then(|image| image.origins.get(&key))).map(|origin| match origin {
        hive_build::plan::Origin::Manifest {
            file, line, column, ..
        } => format!("{file}:{line}:{column}"),
        other => other.to_string(),
    });
    let command = (planned.and_then(|image| image.run.get(step.index)))
        .map_or_else(|| step.message.clone(), |run| run.args.join(" "));
    JobError::Step(Box::new(StepFailed {
        image: step.image.clone(),
        index: step.index,
        place,
        command,
        exit_code: step.exit_code,
        last_lines: step.last_lines.clone(),
    }))
}

/// Explains a dynamically linked binary on a base that cannot run it.
fn loader_error(planned: &PlanImage, interpreter: &str, base: &str) -> JobError {
    JobError::NoLoader(Box::new(NoLoader {
        binary: planned.binary.target.clone(),
        image: planned.name.clone(),
        // The image as it is on one platform: its one platform.
        platform: planned.platforms.join(", "),
        musl: (planned.platforms.first())
            .and_then(|text| Platform::parse(text).ok())
            .and_then(|platform| crate::plan::default_triple(&platform))
            .map_or_else(
                || "<arch>-unknown-linux-musl".to_owned(),
                |gnu| gnu.replace("gnu", "musl"),
            ),
        interpreter: interpreter.to_owned(),
        base: base.to_owned(),
    }))
}

/// Builds one image, reporting its progress.
pub(crate) async fn build_image(
    context: &BuildContext,
    planned: &PlanImage,
) -> Result<BuiltImage, JobError> {
    context.progress.event(EngineEvent::ImageStarted {
        image: planned.name.clone(),
        reference: planned.references.first().cloned().unwrap_or_default(),
        platforms: planned.platforms.clone(),
    });
    let result = build_one(context, planned).await;
    match &result {
        Ok(built) => {
            context.progress.event(EngineEvent::BytesSent {
                image: built.name.clone(),
                bytes_sent: built.bytes_sent,
            });
            context.progress.event(EngineEvent::ImageFinished {
                image: built.name.clone(),
                digest: Some(built.digest.clone()).filter(|digest| !digest.is_empty()),
                output: built.output.clone(),
            });
        }
        Err(error) => context.progress.event(EngineEvent::ImageFailed {
            image: planned.name.clone(),
            error: error.to_string(),
        }),
    }
    result
}

/// One image, step by step: its chain and base, its outputs, its LLB and config, the up-to-date check, the solve,
/// what Docker finishes, and the stamp for the next build.
async fn build_one(context: &BuildContext, planned: &PlanImage) -> Result<BuiltImage, JobError> {
    let started = Instant::now();
    let platforms = platforms_built(context, planned)?;
    let mut parts = platform_parts(context, planned, &platforms, Place::Own)?;
    let outputs = Outputs::of(context, planned, has_steps(&parts))?;
    // None for a Dockerfile image: its inputs are its whole context, so BuildKit's cache decides what is up to date.
    let fingerprint = freshness::fingerprint(&parts, &outputs.plan.exporters, context.provenance)?;
    let sbom: BTreeMap<String, PathBuf> = (parts.iter())
        .filter_map(|part| {
            let path = part.sbom.clone()?;
            Some((part.solve.platform.to_string(), path))
        })
        .collect();
    let phase = |phase, since| context.progress.phase(phase, Some(&planned.name), since);
    phase(Phase::Layout, started);
    let checked = Instant::now();
    let checked_freshness = freshness::check(
        context,
        planned,
        &outputs,
        &mut parts,
        fingerprint.as_deref(),
        &platforms,
    )
    .await?;
    phase(Phase::Fresh, checked);
    if let Some(built) = checked_freshness.fresh {
        return Ok(BuiltImage {
            duration: started.elapsed(),
            sbom,
            ..built
        });
    }
    fresh::forget(&outputs.stamp);
    // The docker archive for `--load` goes once Docker has it, and on every other way out (an error, a cancel).
    let _load_archive = outputs
        .plan
        .after
        .iter()
        .any(|step| matches!(step, output::After::DockerLoad(_)))
        .then(|| output::RemoveOnDrop(outputs.load_archive.clone()));
    if let Some(parent) = outputs.plan.file.as_deref().and_then(Path::parent) {
        std::fs::create_dir_all(parent).map_err(|detail| JobError::CreateDir {
            path: parent.to_path_buf(),
            detail,
        })?;
    }
    // The layers packed for this solve are read by the daemon during it, and needed no more after it.
    let pack_dir =
        output::RemoveDirOnDrop(output::pack_dir_path(&context.target_dir, &planned.name));
    let job = solve_job(
        context,
        planned,
        &outputs,
        parts,
        checked_freshness.annotation.as_deref(),
        &pack_dir.0,
    );
    let solving = Instant::now();
    let mut solved = (context.buildkit.solve(job, &context.progress).await)
        .map_err(|error| step_failed(context, error))?;
    phase(Phase::Solve, solving);
    let finishing = Instant::now();
    finish_outputs(context, &outputs, &mut solved).await?;
    let manifests = manifests(context, planned, &platforms, &solved).await?;
    if let Some(fingerprint) = fingerprint {
        freshness::save_stamp(context, planned, &outputs, fingerprint, &solved, &manifests).await;
    }
    phase(Phase::Finish, finishing);
    Ok(BuiltImage {
        name: planned.name.clone(),
        references: planned.references.clone(),
        platforms: manifests,
        digest: solved.digest,
        config_digest: solved.config_digest,
        sbom,
        output: outputs.description,
        archive: solved.file_written,
        bytes_sent: solved.bytes_sent,
        duration: started.elapsed(),
    })
}

/// Whether the image has RUN steps of ours: only they write files dated at build time (everything else we lay out
/// is dated at the epoch already; a Dockerfile's own steps are the frontend's to date).
fn has_steps(parts: &[Part]) -> bool {
    (parts.iter()).any(|part| match &part.solve.build {
        PlatformBuild::Layers { layout, .. } => layout.steps.iter().any(|s| !s.is_empty()),
        PlatformBuild::Dockerfile { .. } => false,
        PlatformBuild::OverDockerfile(over) => {
            over.layers.iter().any(|layer| !layer.run.is_empty())
        }
    })
}

/// The image's solve: every platform's part, the session's sources and dirs, and the exporters (a push annotated
/// with the image's content fingerprint, so a checkout without records finds it fresh).
fn solve_job(
    context: &BuildContext,
    planned: &PlanImage,
    outputs: &Outputs,
    parts: Vec<Part>,
    annotation: Option<&str>,
    pack_dir: &Path,
) -> SolveJob {
    let mut exporters = outputs.plan.exporters.clone();
    if let Some(print) = annotation {
        let index = freshness::exported_as_index(context, &parts);
        output::annotate_fingerprint(&mut exporters, print, index);
    }
    let inputs = (parts.iter())
        .flat_map(|part| part.inputs.clone())
        .collect();
    let dirs = merged_dirs(parts.iter().map(|part| part.dirs.clone()));
    SolveJob {
        name: planned.name.clone(),
        shared_key: shared_key(&context.workspace_root, &planned.name),
        inputs,
        export_file: outputs.plan.file.clone(),
        exporters,
        epoch: context.epoch,
        platforms: (parts.into_iter())
            .map(|part| PlatformSolve {
                // A daemon that cannot keep them gets none (they were on by default only: said once).
                attestations: if context.attestations_kept {
                    part.solve.attestations
                } else {
                    Vec::new()
                },
                ..part.solve
            })
            .collect(),
        provenance: context.provenance,
        secrets: solve_secrets(context, planned),
        no_cache: context.no_cache,
        compression: compression(planned),
        pack_dir: pack_dir.to_path_buf(),
        dirs,
    }
}

/// Where an image's parts are solved: as the image of the solve, or as one a Dockerfile of the solve names
/// `FROM hive-<name>` (then a Dockerfile it is built by cannot have the session's `context` dir, the solve's own
/// Dockerfile has that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The solve's own image.
    Own,
    /// An image a Dockerfile of the solve names.
    Named,
}

/// One platform of an image: what is solved for it, and the local sources it reads.
struct Part {
    solve: PlatformSolve,
    inputs: Vec<LocalInput>,
    /// The session dirs of the Dockerfiles it is built by (a Dockerfile's context and directory).
    dirs: BTreeMap<String, LocalDir>,
    /// The platform's SBOM file, when the image has one.
    sbom: Option<PathBuf>,
}

/// The platforms the solve builds: all of the image's, unless `--load` goes to a Docker that keeps one platform
/// per name (then the host's, said in one line).
fn platforms_built(context: &BuildContext, planned: &PlanImage) -> Result<Vec<Platform>, JobError> {
    let all: Vec<Platform> = (context.facts(planned).platforms.iter())
        .map(|on| on.platform.clone())
        .collect();
    let daemon = context.buildkit.daemon.kind;
    output::check_multi_platform(&context.destinations, daemon, &planned.name, &all)?;
    if !context.destinations.contains(&Destination::Load) {
        return Ok(all);
    }
    // A standalone buildkitd loads into the Docker of DOCKER_HOST; without its store's facts, one platform.
    let containerd = context.buildkit.daemon.kind == crate::buildkit::DaemonKind::DockerContainerd;
    let policy = output::load_platforms(
        context.buildkit.daemon.kind,
        containerd,
        &Platform::host(),
        &planned.name,
        &all,
    )?;
    match policy {
        output::LoadPlatforms::All => Ok(all),
        output::LoadPlatforms::HostOnly { note, .. } if context.destinations.len() > 1 => {
            Err(JobError::LoadWithOthers {
                image: planned.name.clone(),
                note,
            })
        }
        output::LoadPlatforms::HostOnly { platform, note } => {
            context.progress.event(EngineEvent::Warning {
                image: Some(planned.name.clone()),
                message: note,
            });
            Ok(vec![platform])
        }
    }
}

/// Each platform's manifest digest, for `--metadata-file`: from the archive written, else from the registry
/// pushed to; a single-platform image's is its digest.
async fn manifests(
    context: &BuildContext,
    planned: &PlanImage,
    platforms: &[Platform],
    solved: &Solved,
) -> Result<BTreeMap<String, String>, JobError> {
    // A stamp keeps them too, so a fresh image reports them without a build.
    if !(context.wants_manifests || freshness::checkable(context)) || solved.digest.is_empty() {
        return Ok(BTreeMap::new());
    }
    // One platform without attestations is a plain manifest; with them, an index like several platforms'.
    if let ([only], false) = (platforms, solved.attested) {
        return Ok(BTreeMap::from([(only.to_string(), solved.digest.clone())]));
    }
    let failed = |source| JobError::Manifests {
        image: planned.name.clone(),
        source: Box::new(source),
    };
    let manifests = if let Some(archive) = solved
        .file_written
        .as_deref()
        .filter(|_| context.destinations.contains(&Destination::OciArchive))
    {
        output::index_manifests_from_archive(archive).map_err(failed)?
    } else if let (true, Some(reference)) = (
        context.destinations.contains(&Destination::Push),
        planned.references.first(),
    ) {
        let first = platforms[0].to_string();
        output::index_manifests_from_registry(reference, &solved.digest, &first)
            .await
            .map_err(failed)?
    } else {
        Vec::new()
    };
    Ok(manifests
        .into_iter()
        .map(|manifest| (manifest.platform, manifest.digest))
        .collect())
}

/// Each platform's chain, base, LLB, config and loader check.
fn platform_parts(
    context: &BuildContext,
    planned: &PlanImage,
    platforms: &[Platform],
    place: Place,
) -> Result<Vec<Part>, JobError> {
    let facts = context.facts(planned);
    let several = platforms.len() > 1;
    let mut parts = Vec::new();
    for on in facts
        .platforms
        .iter()
        .filter(|on| platforms.contains(&on.platform))
    {
        if let Some(dockerfile) = &planned.dockerfile {
            parts.push(dockerfile_part(context, planned, on, dockerfile, place)?);
            continue;
        }
        let view = on_platform(planned, &on.platform);
        let (root, chain) = context.chain(on, several)?;
        if root == Base::Dockerfile {
            parts.push(over_dockerfile_part(context, &view, on, chain, place)?);
            continue;
        }
        let base = base_of(context, &view, &on.platform, &root, &chain)?;
        let (image_layout, definition, config) =
            lay_out(context, &view, &on.platform, base, &chain)?;
        let loader_check = loader_check(&view, &chain, &image_layout);
        let sbom = match &context.sboms {
            Some(sboms) => sboms.make(&view, on, image_layout.registry_base())?,
            None => None,
        };
        parts.push(Part {
            solve: PlatformSolve {
                platform: on.platform.clone(),
                build: PlatformBuild::Layers {
                    definition,
                    layout: Box::new(image_layout),
                    loader_check,
                    config,
                    fingerprint: None,
                },
                attestations: (sbom.iter()).map(|sbom| sbom.attestation.clone()).collect(),
            },
            inputs: chain
                .iter()
                .flat_map(|layer| layer.inputs.clone())
                .collect(),
            dirs: BTreeMap::new(),
            sbom: sbom.map(|sbom| sbom.path),
        });
    }
    Ok(parts)
}

/// One platform of a Dockerfile image: the daemon's Dockerfile frontend builds it from the context the session
/// serves (with the image's binary staged under `.hive/bin/<platform>/`), each `FROM hive-<name>` image given as a
/// named context; our labels go over the config it makes.
fn dockerfile_part(
    context: &BuildContext,
    planned: &PlanImage,
    on: &PlatformFacts,
    dockerfile: &hive_build::plan::PlanDockerfile,
    place: Place,
) -> Result<Part, JobError> {
    let built = dockerfile_solve(context, planned, &on.platform, dockerfile, place)?;
    Ok(Part {
        solve: PlatformSolve {
            platform: on.platform.clone(),
            build: PlatformBuild::Dockerfile {
                solve: built.solve,
                labels: built.labels,
            },
            attestations: Vec::new(),
        },
        inputs: built.inputs,
        dirs: built.dirs,
        sbom: None,
    })
}

/// One platform of a Dockerfile image as the solve needs it.
struct DockerfileBuilt {
    /// What the frontend is asked.
    solve: DockerfileSolve,
    /// A config whose labels go over the one the frontend makes.
    labels: Vec<u8>,
    /// The local sources of the images it names `FROM hive-<name>`.
    inputs: Vec<LocalInput>,
    /// Its context (with its binary for the platform staged) and Dockerfile directory, and those of the
    /// Dockerfiles the images it names are built by.
    dirs: BTreeMap<String, LocalDir>,
}

/// What the Dockerfile frontend is asked for one platform of a Dockerfile image, and what the session serves it:
/// each image it names `FROM hive-<name>` is a named context, laid out now (our layers) or built first in the
/// solve (a Dockerfile image, or our layers on one).
fn dockerfile_solve(
    context: &BuildContext,
    planned: &PlanImage,
    platform: &Platform,
    dockerfile: &hive_build::plan::PlanDockerfile,
    place: Place,
) -> Result<DockerfileBuilt, JobError> {
    let mut named_contexts = BTreeMap::new();
    let mut built_contexts = BTreeMap::new();
    let mut inputs = Vec::new();
    let mut dirs = Vec::new();
    for name in &dockerfile.hive_images {
        let below = (context.images.get(name)).ok_or_else(|| JobError::NotInPlan(name.clone()))?;
        for part in platform_parts(context, below, std::slice::from_ref(platform), Place::Named)? {
            inputs.extend(part.inputs);
            dirs.push(part.dirs);
            match part.solve.build {
                PlatformBuild::Layers {
                    definition, config, ..
                } => {
                    named_contexts.insert(name.clone(), NamedContext { definition, config });
                }
                built => {
                    built_contexts.insert(name.clone(), built);
                }
            }
        }
    }
    let session_dirs = match place {
        Place::Own => DockerfileDirs::main(),
        Place::Named => DockerfileDirs::nested(&planned.name),
    };
    dirs.push(dockerfile_dirs(
        context,
        planned,
        platform,
        dockerfile,
        &session_dirs,
    )?);
    let context_source = session_dirs.context_source(|| {
        let file = Path::new(&dockerfile.dockerfile);
        dockerfile::dockerignore_patterns(Path::new(&dockerfile.context), file).map_err(
            |unreadable| JobError::Unreadable {
                path: unreadable.path,
                detail: unreadable.detail,
            },
        )
    })?;
    let overrides = overrides(planned, context.epoch, context.revision.as_deref());
    let labels = layout::image_config(None, platform, &overrides, context.epoch)?;
    let dockerfile_name = Path::new(&dockerfile.dockerfile)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| JobError::NotAPath(PathBuf::from(&dockerfile.dockerfile)))?;
    let solve = DockerfileSolve {
        platform: platform.clone(),
        context: context_source,
        dockerfile_dir: session_dirs.dockerfile,
        dockerfile_name,
        target: dockerfile.target.clone(),
        build_args: dockerfile.build_args.clone(),
        named_contexts,
        built_contexts,
        no_cache: context.no_cache,
    };
    Ok(DockerfileBuilt {
        solve,
        labels,
        inputs,
        dirs: merged_dirs(dirs),
    })
}

/// A Dockerfile image's session dirs on one platform: its context, with its binary for the platform staged at
/// `.hive/bin/<platform>/<binary>`, and the Dockerfile's directory.
fn dockerfile_dirs(
    context: &BuildContext,
    planned: &PlanImage,
    platform: &Platform,
    dockerfile: &hive_build::plan::PlanDockerfile,
    names: &DockerfileDirs,
) -> Result<BTreeMap<String, LocalDir>, JobError> {
    let on = (context.facts(planned).on(platform))
        .ok_or_else(|| JobError::NotInPlan(planned.name.clone()))?;
    let executable = context.executable(planned, &on.triple)?;
    let binary = (executable.path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| JobError::NotAPath(executable.path.clone()))?;
    let staged = BTreeMap::from([(
        dockerfile::staged_binary_path(platform, &binary),
        executable.path.clone(),
    )]);
    let file = Path::new(&dockerfile.dockerfile);
    let dir = file
        .parent()
        .ok_or_else(|| JobError::NotAPath(file.to_path_buf()))?;
    Ok(names.local_dirs(Path::new(&dockerfile.context), dir, staged))
}

/// The session dirs of several platforms (or images) together: a dir named twice is the same directory, its
/// staged files those of every platform.
fn merged_dirs(
    all: impl IntoIterator<Item = BTreeMap<String, LocalDir>>,
) -> BTreeMap<String, LocalDir> {
    let mut merged: BTreeMap<String, LocalDir> = BTreeMap::new();
    for (name, dir) in all.into_iter().flatten() {
        match merged.entry(name) {
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                entry.get_mut().staged.extend(dir.staged);
            }
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(dir);
            }
        }
    }
    merged
}

/// One platform of an image whose `hive:` chain starts at a Dockerfile image: the Dockerfile image is built by its
/// frontend in the same solve, and the layers of the chain above it are laid out on its result there, once its
/// config is known.
fn over_dockerfile_part(
    context: &BuildContext,
    planned: &PlanImage,
    on: &PlatformFacts,
    chain: Vec<ChainLayer>,
    place: Place,
) -> Result<Part, JobError> {
    let below_name = (on.chain.images.first()).expect("a chain holds at least the image itself");
    let below =
        (context.images.get(below_name)).ok_or_else(|| JobError::NotInPlan(below_name.clone()))?;
    let below = on_platform(below, &on.platform);
    let dockerfile =
        (below.dockerfile.as_ref()).ok_or_else(|| JobError::NotInPlan(below_name.clone()))?;
    let built = dockerfile_solve(context, &below, &on.platform, dockerfile, place)?;
    let mut inputs = built.inputs;
    // The Dockerfile image is below even the image's own layer: its loader is always checked on what is below.
    let loader = (chain.last()).and_then(|own| own.executable.interpreter.clone());
    let loader = loader.map(|interpreter| loader_need(planned, interpreter));
    let sbom = match &context.sboms {
        Some(sboms) => sboms.make(planned, on, None)?,
        None => None,
    };
    let layers = (chain.iter())
        .map(|layer| UpperLayer {
            image: layer.planned.name.clone(),
            run: layer.planned.run.clone(),
            overrides: overrides(&layer.planned, context.epoch, context.revision.as_deref()),
        })
        .collect();
    let image_layout = ImageLayout {
        platform: on.platform.clone(),
        // The Dockerfile image's result and the steps over its config are laid in during the solve.
        base: None,
        layers: chain.iter().map(|layer| layer.inputs.clone()).collect(),
        steps: Vec::new(),
        shared_key_hint: shared_key(&context.workspace_root, &planned.name),
        epoch: context.epoch,
        uid: 0,
        gid: 0,
    };
    inputs.extend(chain.into_iter().flat_map(|layer| layer.inputs));
    let over = LayersOverDockerfile {
        below: built.solve,
        below_name: below_name.clone(),
        below_labels: built.labels,
        layout: image_layout,
        layers,
        loader,
    };
    Ok(Part {
        solve: PlatformSolve {
            platform: on.platform.clone(),
            build: PlatformBuild::OverDockerfile(Box::new(over)),
            attestations: (sbom.iter()).map(|sbom| sbom.attestation.clone()).collect(),
        },
        inputs,
        dirs: built.dirs,
        sbom: sbom.map(|sbom| sbom.path),
    })
}

/// The registry base at the bottom of the chain, resolved (once for all images, before them), with the loader
/// checks that need no build of their own: a dynamically linked binary right on scratch, or right on a registry
/// base without its loader.
fn base_of(
    context: &BuildContext,
    planned: &PlanImage,
    platform: &Platform,
    root: &Base,
    chain: &[ChainLayer],
) -> Result<Option<PinnedResolved>, JobError> {
    let own = chain
        .last()
        .expect("a chain holds at least the image itself");
    let interpreter = own
        .executable
        .interpreter
        .as_deref()
        .filter(|_| chain.len() == 1);
    if let (Some(interpreter), Base::Scratch) = (interpreter, root) {
        return Err(loader_error(
            planned,
            interpreter,
            "the base is `scratch`, which has no loader",
        ));
    }
    let Base::Image { reference } = root else {
        return Ok(None);
    };
    let platform = platform.clone();
    let resolved = match context
        .bases
        .bases
        .get(&(reference.clone(), platform.clone()))
    {
        Some(Ok(resolved)) => resolved.clone(),
        Some(Err(message)) => {
            return Err(JobError::BaseUnresolved {
                reference: reference.clone(),
                message: message.to_string(),
            });
        }
        None => return Err(JobError::BaseNotAsked(reference.clone())),
    };
    if let Some(interpreter) = interpreter {
        let key = (reference.clone(), platform, interpreter.to_owned());
        if context.bases.loaders.get(&key) == Some(&false) {
            return Err(loader_error(
                planned,
                interpreter,
                &format!("the base `{reference}` has no {interpreter}"),
            ));
        }
    }
    Ok(Some(PinnedResolved {
        base: PinnedBase {
            reference: reference.clone(),
            digest: resolved.digest,
        },
        config: resolved.config,
    }))
}

/// A registry base pinned to its digest, with its config.
struct PinnedResolved {
    base: PinnedBase,
    config: Vec<u8>,
}

/// How the image's layers are compressed (the manifests' keys, or `--compression`).
pub(crate) fn compression(planned: &PlanImage) -> crate::buildkit::LayerCompression {
    crate::buildkit::LayerCompression {
        kind: planned.compression,
        level: planned.compression_level,
    }
}

/// Where one image goes: its export plan, the files involved, and what an up-to-date check expects.
struct Outputs {
    plan: output::ExportPlan,
    archive: PathBuf,
    load_archive: PathBuf,
    stamp: PathBuf,
    description: String,
}

impl Outputs {
    fn of(context: &BuildContext, planned: &PlanImage, steps: bool) -> Result<Outputs, JobError> {
        let archive = output::archive_path(&context.target_dir, &planned.name);
        let load_archive = output::load_archive_path(&context.target_dir, &planned.name);
        let mut plan = output::export_plan(
            &context.destinations,
            &planned.references,
            &planned.config.annotations,
            context.buildkit.daemon.kind,
            &archive,
            &load_archive,
            output::Times {
                epoch: context.epoch,
                rewrite: steps,
            },
        )?;
        output::set_compression(&mut plan, compression(planned));
        Ok(Outputs {
            plan,
            description: describe_outputs(&context.destinations, &archive),
            stamp: fresh::record_path(&context.target_dir, &planned.name),
            archive,
            load_archive,
        })
    }
}

/// The image's LLB (every layer of its chain on its base) and its config (each layer's settings over the base's).
fn lay_out(
    context: &BuildContext,
    planned: &PlanImage,
    platform: &Platform,
    base: Option<PinnedResolved>,
    chain: &[ChainLayer],
) -> Result<(ImageLayout, Llb, Vec<u8>), JobError> {
    let platform = platform.clone();
    let (pinned, mut config) = match base {
        Some(resolved) => (Some(resolved.base), Some(resolved.config)),
        None => (None, None),
    };
    // Each layer's steps see the config of what is below them: the base's, then each `hive:` layer's over it.
    let mut steps = Vec::with_capacity(chain.len());
    for layer in chain {
        steps.push(exec_steps(
            &layer.planned.name,
            &layer.planned.run,
            config.as_deref(),
        )?);
        let overrides = overrides(&layer.planned, context.epoch, context.revision.as_deref());
        config = Some(layout::image_config(
            config.as_deref(),
            &platform,
            &overrides,
            context.epoch,
        )?);
    }
    let image_layout = ImageLayout {
        platform: platform.clone(),
        base: pinned.map(LayoutBase::Registry),
        layers: chain.iter().map(|layer| layer.inputs.clone()).collect(),
        steps,
        shared_key_hint: shared_key(&context.workspace_root, &planned.name),
        epoch: context.epoch,
        uid: 0,
        gid: 0,
    };
    let mut definition = layout::definition(&image_layout);
    if context.no_cache {
        definition.ignore_cache();
    }
    let config = config.expect("a chain has at least one layer");
    Ok((image_layout, definition, config))
}

/// With `hive:` layers below, the loader check needs those layers: the daemon answers it inside the image's build.
fn loader_check(
    planned: &PlanImage,
    chain: &[ChainLayer],
    image_layout: &ImageLayout,
) -> Option<LoaderCheck> {
    let own = chain.last()?;
    let interpreter = own
        .executable
        .interpreter
        .clone()
        .filter(|_| chain.len() > 1)?;
    let below = layout::base_definition(image_layout)?;
    Some(LoaderCheck {
        need: loader_need(planned, interpreter),
        below,
    })
}

/// The loader the image's binary needs, with the error when the layers below lack it.
fn loader_need(planned: &PlanImage, interpreter: String) -> LoaderNeed {
    let missing = format!("{} has no {interpreter}", base_name(planned));
    LoaderNeed {
        missing: loader_error(planned, &interpreter, &missing).to_string(),
        interpreter,
    }
}

/// The image's base as a loader error names it.
fn base_name(planned: &PlanImage) -> String {
    match &planned.base {
        Base::Hive { image } => format!("the base `hive:{image}`"),
        Base::Image { reference } => format!("the base `{reference}`"),
        Base::Scratch => "the base `scratch`".to_owned(),
        Base::Dockerfile => "the Dockerfile's base".to_owned(),
    }
}

/// What BuildKit could not do on this daemon, done through Docker; a loaded archive is gone afterwards.
async fn finish_outputs(
    context: &BuildContext,
    outputs: &Outputs,
    solved: &mut Solved,
) -> Result<(), JobError> {
    if outputs.plan.after.is_empty() {
        return Ok(());
    }
    let result = output::finish(&outputs.plan.after, &context.docker_socket).await;
    for step in &outputs.plan.after {
        if let output::After::DockerLoad(tar) = step
            && solved.file_written.as_deref() == Some(tar.as_path())
        {
            solved.file_written = None;
        }
    }
    Ok(result?)
}

/// Where an image goes, for people.
fn describe_outputs(destinations: &[Destination], archive: &Path) -> String {
    destinations
        .iter()
        .map(|destination| match destination {
            Destination::OciArchive => archive.display().to_string(),
            Destination::Load => "docker".to_owned(),
            Destination::Push => "registry".to_owned(),
            Destination::Raw { kind, dest, .. } => dest
                .as_ref()
                .map_or_else(|| format!("type={kind}"), |dest| dest.display().to_string()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--dry-run`: the LLB of an image as JSON (base not yet pinned: that needs the daemon).
pub(crate) fn dry_run_json(
    planned: &PlanImage,
    platform: &Platform,
    epoch: i64,
) -> serde_json::Value {
    let executable = Executable {
        target: planned.binary.target.clone(),
        path: PathBuf::from("/target").join(&planned.binary.target),
        interpreter: None,
        machine: None,
    };
    let inputs = local_inputs(planned, &executable, None).unwrap_or_default();
    let steps = exec_steps(&planned.name, &planned.run, None).unwrap_or_default();
    let definition = layout::definition(&ImageLayout {
        layers: vec![inputs],
        steps: vec![steps],
        platform: platform.clone(),
        base: match &planned.base {
            Base::Image { reference } => Some(LayoutBase::Registry(PinnedBase {
                reference: reference.clone(),
                digest: "sha256:<resolved at build>".to_owned(),
            })),
            _ => None,
        },
        shared_key_hint: planned.name.clone(),
        epoch,
        uid: 0,
        gid: 0,
    });
    serde_json::json!({"image": planned.name, "references": planned.references, "ops": definition.describe()})
}
