//! `cargo hive build`: plan → cargo → one gateway solve per image over one connection → outputs.

mod artifacts;
mod bases;
mod errors;
mod fresh;
mod job;
mod record;
mod release;
mod sboms;
mod secrets;

pub(crate) use errors::MetadataError;
pub(crate) use release::{ReleaseRequest, run as release};
pub(crate) use sboms::SbomAsk;
pub(crate) use secrets::SecretError;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hive_build::progress::Phase;

use crate::buildkit::{Buildkit, ConnectOptions, ProvenanceMode};
use crate::cargo::{self, ArtifactKey, Cargo, CompileRequest};
use crate::config::Selection;
use crate::errors::{HiveError, ImageFailures, exit_codes};
use crate::interrupt;
use crate::output;
use crate::plan::Resolved;
use crate::progress::{EngineEvent, Progress, ProgressHandle, Renderer};
use crate::term::Term;

/// Everything `cargo hive build` is asked to do, in the engine's terms.
#[derive(Debug, Clone)]
pub(crate) struct BuildRequest {
    /// The user's cargo and its flags.
    pub(crate) cargo: Cargo,
    /// Which packages and images.
    pub(crate) selection: Selection,
    /// How to reach BuildKit, before the manifest's settings are added.
    pub(crate) connect: ConnectOptions,
    /// The process environment, for `{env.NAME}` templates.
    pub(crate) env: BTreeMap<String, String>,
    /// Images built at once (`None`: all).
    pub(crate) jobs: Option<usize>,
    /// `--load`.
    pub(crate) load: bool,
    /// `--push`.
    pub(crate) push: bool,
    /// `--output` specs, as given.
    pub(crate) outputs: Vec<String>,
    /// Which progress renderer runs.
    pub(crate) renderer: Renderer,
    /// Durations and digests in human progress become placeholders (`HIVE_REDACT=1`).
    pub(crate) redact: bool,
    /// `--metadata-file`.
    pub(crate) metadata_file: Option<PathBuf>,
    /// `--no-cache`.
    pub(crate) no_cache: bool,
    /// `--dry-run`: print the LLB instead of building.
    pub(crate) dry_run: bool,
    /// `--provenance`.
    pub(crate) provenance: ProvenanceFlag,
    /// Which images get an SBOM besides those with `sbom = true`.
    pub(crate) sbom: SbomAsk,
    /// `--compression` (and `--compression-level`): every image's, over what the manifests say.
    pub(crate) compression: Option<crate::buildkit::LayerCompression>,
}

/// `--provenance`, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProvenanceFlag {
    /// Not given: `min` when the images are pushed, none otherwise.
    Default,
    /// `--provenance=false`.
    Off,
    /// `--provenance=min|max`.
    Mode(ProvenanceMode),
}

impl ProvenanceFlag {
    /// The provenance asked for these destinations, and how it was asked (for the daemon check).
    fn asked(self, destinations: &[output::Destination]) -> Option<(ProvenanceMode, bool)> {
        match self {
            ProvenanceFlag::Off => None,
            ProvenanceFlag::Mode(mode) => Some((mode, true)),
            ProvenanceFlag::Default => destinations
                .iter()
                .any(pushes)
                .then_some((ProvenanceMode::Min, false)),
        }
    }
}

/// Whether a destination pushes to a registry (`--push`, or `--output type=registry|image,push=true`).
fn pushes(destination: &output::Destination) -> bool {
    match destination {
        output::Destination::Push => true,
        output::Destination::Raw { kind, attrs, .. } => {
            kind == "image" && attrs.get("push").is_some_and(|value| value == "true")
        }
        output::Destination::OciArchive | output::Destination::Load => false,
    }
}

/// The attestations the images get, settled against the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attesting {
    /// The provenance the daemon generates.
    provenance: Option<ProvenanceMode>,
    /// Whether the images carry attestations at all (false: those on by default were dropped).
    kept: bool,
    /// The one line that says defaults were dropped, to show once cargo is done.
    warning: Option<String>,
}

/// The attestations the images get, settled once against the daemon before any image is built: one asked for
/// explicitly that it cannot keep is an error; defaults it cannot keep are dropped with one warning line. Every
/// kind of attestation the build makes is one ask here.
fn settle_attestations(
    request: &BuildRequest,
    resolved: &Resolved,
    destinations: &[output::Destination],
    daemon: &crate::buildkit::Daemon,
) -> Result<Attesting, HiveError> {
    let provenance = request.provenance.asked(destinations);
    let mut asks: Vec<output::AttestationAsk> = provenance
        .iter()
        .map(|(mode, explicit)| output::AttestationAsk {
            flag: format!("--provenance={}", mode.as_str()),
            explicit: *explicit,
        })
        .collect();
    if request.sbom.any(resolved) {
        let explicit = request.sbom.explicit(resolved);
        asks.push(output::AttestationAsk {
            flag: if explicit { "--sbom" } else { "the SBOM" }.to_owned(),
            explicit,
        });
    }
    match output::settle_attestations(&asks, destinations, daemon.kind, daemon.info_rpc)
        .map_err(output::DestinationError::from)?
    {
        output::Settled::Keep => Ok(Attesting {
            provenance: provenance.map(|(mode, _)| mode),
            kept: true,
            warning: None,
        }),
        output::Settled::Dropped { warning } => Ok(Attesting {
            provenance: None,
            kept: false,
            warning: Some(warning),
        }),
    }
}

/// Runs `cargo hive build`.
pub(crate) async fn run(request: &BuildRequest, term: &Term) -> Result<i32, HiveError> {
    let mut reporting = Reporting {
        renderer: request.renderer,
        redact: request.redact,
        term,
        started: None,
    };
    let result = stages(request, &mut reporting).await;
    reporting.end(&result).await;
    result
}

/// The build's progress output: started when the images' preparation begins, as the human renderers have nothing to
/// show before; a JSON reader still learns why a build failed earlier.
struct Reporting<'t> {
    renderer: Renderer,
    redact: bool,
    term: &'t Term,
    started: Option<(Progress, Option<ProgressHandle>)>,
}

impl Reporting<'_> {
    fn start(&mut self) -> Progress {
        let (renderer, term, redact) = (self.renderer, self.term, self.redact);
        let (progress, _) = self.started.get_or_insert_with(|| {
            // -q silences the human renderers; JSON is data and stays.
            if term.is_quiet() && renderer != Renderer::Json {
                (Progress::disabled(), None)
            } else {
                let (progress, handle) = Progress::start(renderer, term, redact);
                (progress, Some(handle))
            }
        });
        progress.clone()
    }

    /// Says why the build failed (JSON only, unless progress was running) and that it is over.
    async fn end(mut self, result: &Result<i32, HiveError>) {
        if self.started.is_none() && (result.is_ok() || self.renderer != Renderer::Json) {
            return;
        }
        let progress = self.start();
        if let Err(err) = result {
            progress.event(EngineEvent::Failed {
                kind: err.kind(),
                message: err.with_causes(),
            });
        }
        progress.event(EngineEvent::BuildFinished {
            success: result.is_ok(),
        });
        if let Some((_, Some(handle))) = self.started.take() {
            handle.finish().await;
        }
    }
}

/// Plan, checks, then cargo, BuildKit and the images.
async fn stages(request: &BuildRequest, reporting: &mut Reporting<'_>) -> Result<i32, HiveError> {
    // While cargo reads the workspace, cargo builds what the last build built (used if the plan asks for the same).
    let early_run = (!request.dry_run)
        .then(|| early_cargo_run(request))
        .flatten();
    let computed = compute(request)?;
    if request.dry_run {
        let (epoch, _) = epoch(request, &computed.resolved)?;
        return dry_run(&computed.resolved, epoch);
    }
    let built = build_computed(request, &computed, early_run, reporting).await?;
    if let Some(path) = &request.metadata_file {
        record::write(path, &record::metadata(&built.images))?;
    }
    built.into_result()
}

/// The plan of the request's images.
fn compute(request: &BuildRequest) -> Result<crate::plan::Computed, HiveError> {
    // Cargo runs here (metadata, build scripts): a signal kills it, and the signal is what we report.
    let mut computed = interrupt::prefer_signal(crate::plan::compute(crate::plan::PlanRequest {
        cargo: &request.cargo,
        selection: &request.selection,
        env: &request.env,
    }))?;
    if let Some(compression) = request.compression {
        for image in &mut computed.resolved.plan.images {
            (image.compression, image.compression_level) = (compression.kind, compression.level);
        }
    }
    Ok(computed)
}

/// The build's SOURCE_DATE_EPOCH and where it came from.
fn epoch(
    request: &BuildRequest,
    resolved: &Resolved,
) -> Result<(i64, crate::plan::EpochSource), HiveError> {
    let source_date_epoch = request
        .env
        .get("SOURCE_DATE_EPOCH")
        .map(std::ffi::OsStr::new);
    crate::plan::source_date_epoch(source_date_epoch, &resolved.git)
        .map_err(|err| HiveError::Input(err.to_string()))
}

/// What the images of one run came to.
#[derive(Debug, Default)]
pub(crate) struct Built {
    /// The images built (or found up to date), by name.
    pub(crate) images: Vec<job::BuiltImage>,
    /// The images that failed, by name, with why.
    pub(crate) failures: Vec<(String, String)>,
}

impl Built {
    /// Success, or the failed images as the run's error.
    fn into_result(self) -> Result<i32, HiveError> {
        if self.failures.is_empty() {
            Ok(exit_codes::SUCCESS)
        } else {
            Err(ImageFailures(self.failures).into())
        }
    }
}

/// Everything after the plan: destinations, cargo, BuildKit, the images.
async fn build_computed(
    request: &BuildRequest,
    computed: &crate::plan::Computed,
    early_run: Option<cargo::EarlyRun>,
    reporting: &mut Reporting<'_>,
) -> Result<Built, HiveError> {
    let resolved = &computed.resolved;
    let destinations = output::destinations(request.load, request.push, &request.outputs)?;
    check_one_file_per_image(&resolved.plan, &destinations)?;
    let (epoch, epoch_source) = epoch(request, resolved)?;

    // What builds killed outright (SIGKILL, a crash) left in target/hive/ goes now, if their build is gone.
    output::remove_stale(&computed.target_dir);

    let progress = reporting.start();
    for (phase, duration) in &computed.phases {
        progress.event(EngineEvent::Phase {
            phase: *phase,
            image: None,
            duration: *duration,
        });
    }
    if epoch_source == crate::plan::EpochSource::Zero {
        progress.event(EngineEvent::Warning {
            image: None,
            message: "the workspace is not a git checkout with commits and SOURCE_DATE_EPOCH is unset: file and \
                      image times are 1970-01-01"
                .to_owned(),
        });
    }
    let mut connect = request.connect.clone();
    connect.manifest = Some(computed.connection.to_buildkit());
    let inputs = Inputs {
        request,
        connect,
        resolved,
        target_dir: &computed.target_dir,
        epoch,
        progress: &progress,
        early_run,
    };
    build_all(inputs, destinations).await
}

/// What the stages after the plan share.
struct Inputs<'a> {
    request: &'a BuildRequest,
    /// The connection options, the manifest's settings included.
    connect: ConnectOptions,
    resolved: &'a Resolved,
    target_dir: &'a Path,
    epoch: i64,
    progress: &'a Progress,
    /// The last build's cargo run, started before the plan was known; used only if the plan asks for it. (Nothing
    /// else starts that early: Docker's image ids or a BuildKit connection asked then made the no-op slower, as on
    /// 2 cores they compete with `cargo metadata`.)
    early_run: Option<cargo::EarlyRun>,
}

/// Images built at once unless `--jobs` says: a daemon given hundreds of sessions at once stops accepting them
/// in time (200 images at once failed on Docker 26), while a few dozen keep it busy.
const DEFAULT_JOBS: usize = 32;

async fn build_all(
    inputs: Inputs<'_>,
    destinations: Vec<output::Destination>,
) -> Result<Built, HiveError> {
    let mut inputs = inputs;
    let early_run = inputs.early_run.take();
    // Until the images start, a signal drops whatever runs (cargo's tree is killed, connections close).
    let context =
        interrupt::until_signal(prepare_context(&inputs, destinations, early_run)).await?;
    let Inputs {
        request, resolved, ..
    } = inputs;
    let plan = &resolved.plan;
    let context = Arc::new(context);
    let jobs = request.jobs.unwrap_or(DEFAULT_JOBS).max(1);
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
    failures.sort();
    Ok(Built {
        images: built,
        failures,
    })
}

/// Everything before the images: cargo builds the binaries, BuildKit is connected, the destinations are checked
/// and the bases resolved.
async fn prepare_context(
    inputs: &Inputs<'_>,
    destinations: Vec<output::Destination>,
    early_run: Option<cargo::EarlyRun>,
) -> Result<job::BuildContext, HiveError> {
    let Inputs {
        request,
        connect: options,
        resolved,
        target_dir,
        epoch,
        progress,
        ..
    } = inputs;
    let plan = &resolved.plan;
    let workspace_root = PathBuf::from(&plan.workspace_root);
    // Connection settings that cannot work are bad input: said before cargo spends minutes compiling.
    for message in options.check_tls()? {
        progress.event(EngineEvent::Warning {
            image: None,
            message,
        });
    }
    // A secret that cannot be read stops the build before cargo runs and before the daemon hears of it.
    let secrets = secrets::resolve(plan, &request.env)?;
    let cwd = std::env::current_dir().map_err(|source| HiveError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    // BuildKit is connected and the daemon checked while cargo builds; cargo's failure is still the one reported
    // when both fail, as when they ran one after the other.
    let started = Instant::now();
    let compiled = async {
        let executables =
            build_binaries(request, resolved, target_dir, &cwd, early_run, progress).await;
        progress.phase(Phase::CargoBuild, None, started);
        executables
    };
    let connected = async {
        let connected = connect(inputs, &destinations).await;
        progress.phase(Phase::Connect, None, started);
        connected
    };
    let docker_images = prefetch_docker_images(inputs, &destinations);
    let base_references = (needs(resolved, &BTreeMap::new()).into_iter())
        .map(|need| need.reference)
        .collect();
    let heads = bases::Heads::ask(base_references);
    let (connected, executables) = tokio::join!(connected, compiled);
    let executables = executables?;
    let Connected {
        buildkit,
        attesting,
        docker_socket,
    } = connected?;
    if let Some(message) = attesting.warning.clone() {
        progress.event(EngineEvent::Warning {
            image: None,
            message,
        });
    }

    let bases = prepare_bases(inputs, &buildkit, &executables, heads).await?;
    // Cargo's resolve for the SBOMs: once, for every triple an image that wants one is built for.
    let sboms = sboms::Sboms::load(
        inputs.request.sbom,
        &inputs.request.cargo,
        resolved,
        &cwd,
        target_dir,
        *epoch,
    )?;
    Ok(job::BuildContext {
        buildkit,
        docker_socket,
        docker_images,
        destinations,
        epoch: *epoch,
        target_dir: target_dir.to_path_buf(),
        workspace_root: workspace_root.clone(),
        no_cache: inputs.request.no_cache,
        progress: (*progress).clone(),
        images: plan
            .images
            .iter()
            .map(|image| (image.name.clone(), image.clone()))
            .collect(),
        facts: resolved.image_facts.clone(),
        executables,
        revision: resolved.git.sha().ok().map(str::to_owned),
        bases,
        wants_manifests: inputs.request.metadata_file.is_some(),
        provenance: attesting.provenance,
        attestations_kept: attesting.kept,
        sboms,
        secrets,
    })
}

/// The registry bases' facts for the binaries cargo built (their loaders), from the answers kept for the digests
/// the registries named (`heads`) or from the daemon; a base without a platform is the user's mistake.
async fn prepare_bases(
    inputs: &Inputs<'_>,
    buildkit: &Buildkit,
    executables: &BTreeMap<ArtifactKey, cargo::Executable>,
    heads: bases::Heads,
) -> Result<crate::buildkit::BaseFacts, HiveError> {
    let started = Instant::now();
    let known = bases::known_dir(inputs.target_dir);
    let needs = needs(inputs.resolved, executables);
    let facts = bases::prepare(buildkit, needs, heads, &known, inputs.request.no_cache).await?;
    bases::check_platforms(inputs.resolved, &facts)?;
    inputs.progress.phase(Phase::Bases, None, started);
    Ok(facts)
}

/// BuildKit, connected and checked against where the images go.
struct Connected {
    buildkit: Buildkit,
    attesting: Attesting,
    docker_socket: PathBuf,
}

/// Connects BuildKit and checks the daemon once: its exporters for the destinations, the attestations it can keep,
/// the Docker `--load` goes to.
async fn connect(
    inputs: &Inputs<'_>,
    destinations: &[output::Destination],
) -> Result<Connected, HiveError> {
    let options = &inputs.connect;
    let buildkit = Buildkit::connect(options).await?;
    let daemon = buildkit.daemon.kind;
    // Where the images go is known now: an exporter this daemon lacks, or a missing Docker for --load, fails
    // once, before anything is built for it.
    output::check_exporters(destinations, daemon)?;
    // Only the selected images' solves are exported (a `hive:` base goes in its image's layers and compression).
    let images = (inputs.resolved.plan.images.iter())
        .filter(|image| image.selected)
        .map(|image| (image.name.as_str(), job::compression(image)));
    output::check_compression(destinations, daemon, images)?;
    let attesting = settle_attestations(
        inputs.request,
        inputs.resolved,
        destinations,
        &buildkit.daemon,
    )?;
    let buildkit_docker = buildkit.daemon.docker_socket.clone();
    let docker_host = options.env.docker_host.as_deref();
    output::check_load_target(
        destinations,
        daemon,
        buildkit_docker.as_deref(),
        docker_host,
    )
    .await?;
    let docker_socket = output::docker_endpoint(buildkit_docker.as_deref(), docker_host).socket;
    Ok(Connected {
        buildkit,
        attesting,
        docker_socket,
    })
}

/// The Docker images (id, newest history comment) the `--load` up-to-date checks compare, asked while cargo
/// builds and BuildKit connects, of the Docker the images are expected to go to.
fn prefetch_docker_images(
    inputs: &Inputs<'_>,
    destinations: &[output::Destination],
) -> Option<fresh::DockerImages> {
    if inputs.request.no_cache || !destinations.contains(&output::Destination::Load) {
        return None;
    }
    let options = &inputs.connect;
    let buildkit_docker = options.explicit_docker_socket();
    let docker_host = options.env.docker_host.as_deref();
    let socket = output::docker_endpoint(buildkit_docker.as_deref(), docker_host).socket;
    let references = (inputs.resolved.plan.images.iter())
        .filter(|image| image.selected)
        .filter_map(|image| image.references.first().cloned())
        .collect();
    Some(fresh::DockerImages::prefetch(socket, references))
}

/// The cargo build the last build ran here, started again now. Its memory is found before cargo has said where the
/// target dir is: under `CARGO_TARGET_DIR`, or the nearest `target/` above here that has one. Not on a terminal:
/// piping its stderr would take cargo's progress bar away.
fn early_cargo_run(request: &BuildRequest) -> Option<cargo::EarlyRun> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    let memory = match request.env.get("CARGO_TARGET_DIR") {
        Some(dir) => cargo::run_memory(&cwd.join(dir)),
        None => (cwd.ancestors())
            .map(|dir| cargo::run_memory(&dir.join("target")))
            .find(|memory| memory.is_file())?,
    };
    cargo::EarlyRun::start(&memory, &request.cargo, &cwd)
}

/// The user's cargo builds the binaries, with their flags, cache and toolchain: one run for every triple, after the
/// installed targets are checked; each binary is then checked against its platforms.
async fn build_binaries(
    request: &BuildRequest,
    resolved: &Resolved,
    target_dir: &Path,
    cwd: &Path,
    early_run: Option<cargo::EarlyRun>,
    progress: &Progress,
) -> Result<BTreeMap<ArtifactKey, cargo::Executable>, HiveError> {
    // A missing rustup target is said before cargo runs, with the command that installs it.
    let memory = cargo::sysroot_memory(target_dir);
    let found = check_targets(request, resolved, cwd, Some(memory)).await?;
    let compile = compile_request(request, resolved, target_dir);
    progress.event(EngineEvent::CargoStarted);
    let artifacts = cargo::build(&compile, cwd, early_run).await;
    if artifacts.is_ok() {
        let args = cargo::cargo_args(
            &compile,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
        cargo::remember_run(
            &cargo::run_memory(target_dir),
            &compile.cargo.program,
            cwd,
            &args,
        );
    }
    let artifacts = interrupt::prefer_signal(artifacts.map_err(HiveError::Cargo));
    progress.event(EngineEvent::CargoFinished {
        success: artifacts.is_ok(),
    });
    // The sysroot remembered from an earlier build may not be this toolchain's: when cargo fails, a missing target
    // is what to say.
    if matches!(artifacts, Err(HiveError::Cargo(_))) && found == cargo::TargetsFound::Remembered {
        check_targets(request, resolved, cwd, None).await?;
    }
    let executables = artifacts?.executables;
    artifacts::check_architectures(resolved, &executables)
        .map_err(|err| HiveError::Input(err.to_string()))?;
    Ok(executables)
}

/// Whether the cross targets the plan needs are installed (rustc's sysroot, or the one remembered in `memory`). Off
/// the runtime's threads: it may wait for rustc, and BuildKit is being connected meanwhile.
async fn check_targets(
    request: &BuildRequest,
    resolved: &Resolved,
    cwd: &Path,
    memory: Option<PathBuf>,
) -> Result<cargo::TargetsFound, HiveError> {
    let (toolchain, needed, dir) = (
        request.cargo.clone(),
        needed_targets(resolved),
        cwd.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        cargo::check_targets_installed(&toolchain, &needed, &dir, memory.as_deref())
    })
    .await
    .map_err(|err| HiveError::Setup {
        what: "check the installed Rust targets",
        source: std::io::Error::other(err),
    })?
    .map_err(|err| HiveError::Input(err.to_string()))
}

/// `--output type=oci|docker|tar,dest=PATH` names one file: with several images, each would replace the last.
fn check_one_file_per_image(
    plan: &hive_build::plan::Plan,
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
            return Err(HiveError::Input(format!(
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

/// The registry bases of the selected images (at the bottom of their `hive:` chains), per platform, and the loaders
/// their binaries need.
fn needs(
    resolved: &Resolved,
    executables: &BTreeMap<ArtifactKey, cargo::Executable>,
) -> std::collections::BTreeSet<bases::Need> {
    let mut needs = std::collections::BTreeSet::new();
    // The selected images, and the images named `FROM hive-<name>` by the Dockerfile each selected image is built
    // by, itself or at the bottom of its `hive:` chain (built in the same solve).
    let dockerfile_images: std::collections::BTreeSet<&str> = (resolved.plan.images.iter())
        .filter(|image| image.selected)
        .flat_map(|image| &resolved.facts(&image.name).platforms)
        .filter(|on| on.chain.root == hive_build::plan::Base::Dockerfile)
        .filter_map(|on| on.chain.images.first().map(String::as_str))
        .collect();
    let from_dockerfiles: std::collections::BTreeSet<&str> = (resolved.plan.images.iter())
        .filter(|image| dockerfile_images.contains(image.name.as_str()))
        .filter_map(|image| image.dockerfile.as_ref())
        .flat_map(|dockerfile| dockerfile.hive_images.iter().map(String::as_str))
        .collect();
    let built = |image: &&hive_build::plan::PlanImage| {
        image.selected || from_dockerfiles.contains(image.name.as_str())
    };
    for image in resolved.plan.images.iter().filter(built) {
        for on in &resolved.facts(&image.name).platforms {
            let hive_build::plan::Base::Image { reference } = &on.chain.root else {
                continue;
            };
            // Only an image right on the registry base is checked here; one on `hive:` layers is checked in its
            // build.
            let key = ArtifactKey {
                package: image.package.name.clone(),
                bin: image.binary.target.clone(),
                triple: on.triple.clone(),
            };
            let loader = (on.chain.is_direct())
                .then(|| executables.get(&key))
                .flatten()
                .and_then(|executable| executable.interpreter.clone());
            needs.insert(bases::Need {
                reference: reference.clone(),
                platform: on.platform.clone(),
                loader,
            });
        }
    }
    needs
}

/// The cross targets the plan's images are built for, each with what needs it.
fn needed_targets(resolved: &Resolved) -> Vec<cargo::NeededTarget> {
    let mut needed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for image in &resolved.plan.images {
        for on in &resolved.facts(&image.name).platforms {
            needed
                .entry(&on.triple)
                .or_default()
                .push(format!("{} of image `{}`", on.platform, image.name));
        }
    }
    needed
        .into_iter()
        .map(|(triple, users)| cargo::NeededTarget {
            triple: triple.to_owned(),
            needed_for: users.join(", "),
        })
        .collect()
}

/// One cargo run for every package, bin and triple of the plan (`hive:` bases included: their binaries go into the
/// images built on them). Without `--target` when the host's triple is the only one, so `target/<profile>` stays
/// shared with a plain `cargo build`.
fn compile_request(
    request: &BuildRequest,
    resolved: &Resolved,
    target_dir: &Path,
) -> CompileRequest {
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut triples = std::collections::BTreeSet::new();
    for image in &resolved.plan.images {
        let bins = targets.entry(image.package.name.clone()).or_default();
        if !bins.contains(&image.binary.target) {
            bins.push(image.binary.target.clone());
        }
        for on in &resolved.facts(&image.name).platforms {
            triples.insert(on.triple.clone());
        }
    }
    let host = cargo::host_default_triple();
    let pass_target = triples.iter().any(|triple| triple != host);
    if triples.is_empty() {
        triples.insert(host.to_owned());
    }
    CompileRequest {
        cargo: request.cargo.clone(),
        targets,
        triples: triples.into_iter().collect(),
        pass_target,
        target_dir: target_dir.to_path_buf(),
    }
}

fn dry_run(resolved: &Resolved, epoch: i64) -> Result<i32, HiveError> {
    use std::io::Write;
    let mut documents = Vec::new();
    for planned in resolved.plan.images.iter().filter(|image| image.selected) {
        let platforms = &resolved.facts(&planned.name).platforms;
        for on in platforms {
            let mut document = job::dry_run_json(planned, &on.platform, epoch);
            if platforms.len() > 1 {
                document["platform"] = serde_json::Value::String(on.platform.to_string());
            }
            documents.push(document);
        }
    }
    let text = serde_json::to_string_pretty(
        &serde_json::json!({"format_version": 1, "images": documents}),
    )
    .expect("JSON values serialize");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(HiveError::Output)?;
    Ok(exit_codes::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use output::Destination;

    #[test]
    fn provenance_is_min_by_default_for_pushes_only() {
        let registry = Destination::Raw {
            kind: "image".into(),
            attrs: BTreeMap::from([("push".to_owned(), "true".to_owned())]),
            dest: None,
        };
        let stored = Destination::Raw {
            kind: "image".into(),
            attrs: BTreeMap::new(),
            dest: None,
        };
        let default = ProvenanceFlag::Default;
        let min = Some((ProvenanceMode::Min, false));
        assert_eq!(default.asked(&[Destination::Push]), min);
        assert_eq!(default.asked(&[Destination::Load, registry]), min);
        assert_eq!(default.asked(&[Destination::OciArchive]), None);
        assert_eq!(default.asked(&[Destination::Load, stored]), None);
        // Given, it holds whatever the destinations: explicitly.
        let max = ProvenanceFlag::Mode(ProvenanceMode::Max);
        assert_eq!(
            max.asked(&[Destination::OciArchive]),
            Some((ProvenanceMode::Max, true))
        );
        assert_eq!(ProvenanceFlag::Off.asked(&[Destination::Push]), None);
    }
}
