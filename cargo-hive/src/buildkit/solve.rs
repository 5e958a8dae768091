//! The façade's solves: one image ([`Buildkit::solve`]: its session, gateway build, status stream, loader checks
//! and export; one platform gives a plain manifest, several one index from the same build), the short build that
//! resolves every base for every platform before the images ([`Buildkit::inspect_bases`], with
//! [`BaseError::MissingPlatform`] for a base without the platform), and doctor's live check. Callers hand in LLB,
//! config and exporters; no wire type leaves this module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hive_proto::control::{SolveRequest, StatusRequest};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::client::Buildkit;
use super::dockerfile::{self, DockerfileSolve};
use super::gateway::{
    self, AttestationRef, BuildError, ExporterSpec, FrontendError, GatewayRequest, ResolvedImage,
};
use super::layout;
use super::layout::{ImageLayout, LayoutBase, Llb, LocalInput, PinnedBase, base_definition};
use super::over_dockerfile::{self, LayersOverDockerfile};
use super::pack::LayerCompression;
use super::packing::Packing;
use super::session::{ContentBlobs, LocalDir, SecretValues, Session, SessionConfig, SessionError};
use super::{llb, new_id, status};
use crate::plan::Platform;
use crate::progress::Progress;

/// How long the status stream may take to deliver its last messages after the build.
const STATUS_DRAIN: Duration = Duration::from_secs(2);

/// A loader the image's binary needs, checked inside the build on the layers below the image's own.
#[derive(Debug, Clone)]
pub(crate) struct LoaderCheck {
    /// The loader, and the error when it is missing.
    pub(crate) need: LoaderNeed,
    /// The layers below the image's own.
    pub(crate) below: Llb,
}

/// A loader the image's binary needs, and the error when what is below lacks it.
#[derive(Debug, Clone)]
pub(crate) struct LoaderNeed {
    /// The loader's path (`/lib64/ld-linux-x86-64.so.2`).
    pub(crate) interpreter: String,
    /// The error when it is missing.
    pub(crate) missing: String,
}

/// SLSA provenance the daemon generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProvenanceMode {
    /// Build timestamps, the frontend and its attributes, the sources' digests.
    Min,
    /// Also the build steps (the LLB) and their sources.
    Max,
}

impl ProvenanceMode {
    /// The mode as BuildKit's `attest:provenance` attribute spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProvenanceMode::Min => "min",
            ProvenanceMode::Max => "max",
        }
    }
}

/// An in-toto attestation of one platform's image: a file the frontend attaches to the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InTotoAttestation {
    /// The statement's `predicateType` (`https://spdx.dev/Document`).
    pub(crate) predicate_type: String,
    /// Where the predicate file is in the attestation's own filesystem (`/sbom.spdx.json`).
    pub(crate) path: String,
    /// The predicate.
    pub(crate) content: Vec<u8>,
}

/// What BuildKit says when it would resume a half-done transfer from a source that can only stream.
const UNRESUMABLE_TRANSFER: &str = "unsupported offset";

/// One platform of an image: how it is built, and its attestations.
#[derive(Debug, Clone)]
pub(crate) struct PlatformSolve {
    /// The platform (its id keys the result and the config in a multi-platform result).
    pub(crate) platform: Platform,
    /// How the platform's image is built, and its config.
    pub(crate) build: PlatformBuild,
    /// In-toto attestations of this platform's image (the daemon's provenance is not among them).
    pub(crate) attestations: Vec<InTotoAttestation>,
}

/// How one platform's image is built.
#[derive(Debug, Clone)]
pub(crate) enum PlatformBuild {
    /// Our LLB, after a loader check when `hive:` layers are below. `definition` copies our files; a daemon that
    /// takes OCI layouts and merges gets the layers of `layout` packed instead.
    Layers {
        /// The LLB with copies.
        definition: Llb,
        /// What `definition` was made from (boxed: the largest part of a platform's solve).
        layout: Box<ImageLayout>,
        /// A loader to check first.
        loader_check: Option<LoaderCheck>,
        /// The image config JSON.
        config: Vec<u8>,
        /// The content fingerprint our history entry in `config` gets before the result is returned (known
        /// already, or computed beside the solve); `None` leaves `config` as it is.
        fingerprint: Option<LateFingerprint>,
    },
    /// A Dockerfile image: the daemon's Dockerfile frontend builds it.
    Dockerfile {
        /// What the frontend is asked.
        solve: DockerfileSolve,
        /// A config we laid out for the image: its labels go over the Dockerfile's config.
        labels: Vec<u8>,
    },
    /// Our layers on a Dockerfile image built first in the same solve (a `hive:` chain with a Dockerfile image at
    /// the bottom): laid out once the frontend has built it.
    OverDockerfile(Box<LayersOverDockerfile>),
}

/// A platform's content fingerprint, stamped into its config when the result is returned, at the end of the solve:
/// known already, or still being computed beside the solve (hashing a big binary then costs no time of its own: it
/// runs while the layers are packed and the daemon solves them).
#[derive(Clone)]
pub(crate) struct LateFingerprint(Shared<BoxFuture<'static, Result<String, FrontendError>>>);

impl LateFingerprint {
    /// A fingerprint known already.
    pub(crate) fn known(print: String) -> LateFingerprint {
        LateFingerprint(futures::future::ready(Ok(print)).boxed().shared())
    }

    /// The fingerprint `print` will give (started by the caller already), or why it could not.
    pub(crate) fn new<E: std::fmt::Display>(
        print: impl Future<Output = Result<String, E>> + Send + 'static,
    ) -> LateFingerprint {
        let print = print.map(|print| print.map_err(|err| FrontendError(err.to_string())));
        LateFingerprint(print.boxed().shared())
    }
}

impl std::fmt::Debug for LateFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateFingerprint")
    }
}

/// One image's solve: what the session serves, what is solved, and where it goes.
#[derive(Debug)]
pub(crate) struct SolveJob {
    /// The image's name (the session's name, and what progress is reported under).
    pub(crate) name: String,
    /// The stable key the daemon keeps the local sources' last transfer under.
    pub(crate) shared_key: String,
    /// The local sources the session serves (every platform's: their names must differ between platforms, since
    /// the session serves one directory per name).
    pub(crate) inputs: Vec<LocalInput>,
    /// The file an exporter writes through the session, if any.
    pub(crate) export_file: Option<PathBuf>,
    /// The exporters.
    pub(crate) exporters: Vec<ExporterSpec>,
    /// SOURCE_DATE_EPOCH.
    pub(crate) epoch: i64,
    /// The image's platforms: one gives a plain manifest, several one index (and so does one with
    /// attestations).
    pub(crate) platforms: Vec<PlatformSolve>,
    /// SLSA provenance for every platform, generated by the daemon (`None`: none).
    pub(crate) provenance: Option<ProvenanceMode>,
    /// The build secrets the session serves to this solve's steps.
    pub(crate) secrets: SecretValues,
    /// `--no-cache`: every op runs again (the packed definition too).
    pub(crate) no_cache: bool,
    /// How the layers we pack are compressed (the exporters are told the same).
    pub(crate) compression: LayerCompression,
    /// Where packed layers are written while the solve runs (removed after it).
    pub(crate) pack_dir: PathBuf,
    /// Local dirs the session serves besides `inputs` (a Dockerfile image's context and Dockerfile directory).
    pub(crate) dirs: BTreeMap<String, LocalDir>,
}

/// What a solve produced.
#[derive(Debug, Clone)]
pub(crate) struct Solved {
    /// The digest of what was exported: the manifest's for one platform, the index's for several (empty when the
    /// exporters name none).
    pub(crate) digest: String,
    /// The config digest (one platform only: an index has no single config).
    pub(crate) config_digest: Option<String>,
    /// The file written through the session, if any.
    pub(crate) file_written: Option<PathBuf>,
    /// File bytes the session sent to the daemon.
    pub(crate) bytes_sent: u64,
    /// Attestations went with the image (provenance, or the platforms' own): even one platform is an index
    /// then, and `digest` is the index's.
    pub(crate) attested: bool,
}

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SolveError {
    /// The session did not start.
    #[error("failed to start the BuildKit session: {0}")]
    SessionStart(SessionError),
    /// A local file changed while it was sent, or the export could not be delivered.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The build failed (the frontend, the daemon, or the connection).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A RUN step failed (the build's error with what the status stream said of the step).
    #[error("{}", .1)]
    Step(Box<status::FailedStep>, Box<SolveError>),
    /// The job named no platform: there is nothing to build (a bug in the caller).
    #[error("image `{0}` has no platform to build")]
    NoPlatforms(String),
}

impl Buildkit {
    /// Solves one image: starts its session, runs the gateway build (each platform's loader check and solve, then
    /// one result with the configs), streams its status to `progress`, and takes the export.
    pub(crate) async fn solve(
        &self,
        job: SolveJob,
        progress: &Progress,
    ) -> Result<Solved, SolveError> {
        if job.platforms.is_empty() {
            return Err(SolveError::NoPlatforms(job.name));
        }
        match self.solve_once(&job, progress, true).await {
            // BuildKit cannot resume a transfer from an `oci-layout` source that an interrupted build left half
            // done (it reads the session's blobs as a stream): copying the files instead still builds the image.
            Err(error) if error.to_string().contains(UNRESUMABLE_TRANSFER) => {
                progress.event(crate::progress::EngineEvent::Warning {
                    image: Some(job.name.clone()),
                    message: "the daemon holds a half-sent layer of this image from an interrupted build, which \
                              it cannot resume: its files are sent as they are instead"
                        .to_owned(),
                });
                self.solve_once(&job, progress, false).await
            }
            other => other,
        }
    }

    /// One attempt at [`Buildkit::solve`]; `pack` lets the layers go packed where the daemon takes them so.
    async fn solve_once(
        &self,
        job: &SolveJob,
        progress: &Progress,
        pack: bool,
    ) -> Result<Solved, SolveError> {
        let content = Arc::new(ContentBlobs::default());
        let session = self.start_session(job, content.clone()).await?;
        let packing = Packing {
            content,
            dir: job.pack_dir.clone(),
            no_cache: job.no_cache,
            image: job.name.clone(),
            enabled: pack,
            compression: job.compression,
        };
        let build_ref = new_id();
        let request = GatewayRequest {
            build_ref: build_ref.clone(),
            session_id: session.id().to_owned(),
            exporters: job.exporters.clone(),
            frontend_attrs: frontend_attrs(job.epoch, job.provenance),
        };
        let status = self.spawn_status(&build_ref, &job.name, progress.clone());
        let epoch = job.epoch;
        let attested = job.provenance.is_some()
            || job
                .platforms
                .iter()
                .any(|part| !part.attestations.is_empty());
        let result = gateway::build(self, request, |gateway| {
            frontend(gateway, job.platforms.clone(), epoch, packing)
        })
        .await;
        // The status stream ends with the build; its last messages (the final steps) are worth a short wait.
        let trail = (tokio::time::timeout(STATUS_DRAIN, status).await)
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut solved = finish_session(session, result).await.map_err(|error| {
            match (&error, trail.failed()) {
                (SolveError::Build(_), Some(step)) => {
                    SolveError::Step(Box::new(step), Box::new(error))
                }
                _ => error,
            }
        })?;
        solved.attested = attested;
        Ok(solved)
    }

    async fn start_session(
        &self,
        job: &SolveJob,
        content: Arc<ContentBlobs>,
    ) -> Result<Session, SolveError> {
        let local_dirs = job
            .inputs
            .iter()
            .map(|input| {
                let dir = LocalDir {
                    root: input.root.clone(),
                    allow: Some(input.include_patterns()),
                    staged: BTreeMap::new(),
                };
                (input.name.clone(), dir)
            })
            .chain(job.dirs.clone())
            .collect();
        let config = SessionConfig {
            name: job.name.clone(),
            shared_key: job.shared_key.clone(),
            local_dirs,
            export: job.export_file.clone(),
            secrets: job.secrets.clone(),
            content,
        };
        Session::start(self, config)
            .await
            .map_err(SolveError::SessionStart)
    }

    /// Streams the build's status to `progress` until the build ends.
    fn spawn_status(
        &self,
        build_ref: &str,
        image: &str,
        progress: Progress,
    ) -> tokio::task::JoinHandle<status::StepTrail> {
        let mut control = self.control();
        let request = StatusRequest {
            r#ref: build_ref.to_owned(),
        };
        let image = image.to_owned();
        tokio::spawn(async move {
            let mut trail = status::StepTrail::default();
            let Ok(response) = control.status(request).await else {
                return trail;
            };
            let mut stream = response.into_inner();
            while let Ok(Some(message)) = stream.message().await {
                trail.record(&message);
                progress.status(&image, status::batch(message));
            }
            trail
        })
    }
}

/// The `Control.Solve`'s frontend attributes: the build's SOURCE_DATE_EPOCH, which the controller takes from here
/// (the exporters and the provenance get it too), and the provenance the daemon is to generate.
fn frontend_attrs(epoch: i64, provenance: Option<ProvenanceMode>) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::from([("build-arg:SOURCE_DATE_EPOCH".to_owned(), epoch.to_string())]);
    if let Some(mode) = provenance {
        // Frontends may not send provenance themselves: the daemon writes it from what it saw of the build.
        attrs.insert(
            "attest:provenance".to_owned(),
            format!("mode={}", mode.as_str()),
        );
    }
    attrs
}

/// The build of one image: each platform's loader check, solve and attestation files, concurrently, then one
/// result — a single ref for one platform without attestations (a plain manifest), else refs keyed by platform id
/// (one index, the attestations under the same keys).
async fn frontend(
    gateway: gateway::Gateway,
    platforms: Vec<PlatformSolve>,
    epoch: i64,
    packing: Packing,
) -> Result<(), FrontendError> {
    let keyed = platforms.len() > 1 || platforms.iter().any(|part| !part.attestations.is_empty());
    let on: Vec<Platform> = platforms.iter().map(|part| part.platform.clone()).collect();
    let solves = platforms
        .into_iter()
        .map(|part| solve_platform(&gateway, part, epoch, &packing));
    let mut results = futures::future::try_join_all(solves).await?;
    // The configs are known now: a Dockerfile image's comes from its frontend.
    let metadata = result_metadata(
        (on.iter()).zip(results.iter().map(|solved| solved.config.as_slice())),
        keyed,
    );
    if !keyed {
        let only = results.pop().expect("one result");
        return Ok(gateway.return_result(&only.image, metadata).await?);
    }
    let mut refs = BTreeMap::new();
    let mut attestations = BTreeMap::new();
    for (platform, solved) in on.iter().zip(results) {
        let id = platform_id(platform);
        refs.insert(id.clone(), solved.image);
        attestations.insert(id, solved.attestations);
    }
    Ok(gateway.return_refs(&refs, metadata, &attestations).await?)
}

/// What one platform's solve gives the result: the image, its config, its attestations' files.
struct PlatformSolved {
    image: gateway::ResultRef,
    config: Vec<u8>,
    attestations: Vec<AttestationRef>,
}

/// One platform: its loader check, then its definition (our layers packed where the daemon takes them so) or its
/// Dockerfile, and its attestations' files.
async fn solve_platform(
    gateway: &gateway::Gateway,
    part: PlatformSolve,
    epoch: i64,
    packing: &Packing,
) -> Result<PlatformSolved, FrontendError> {
    let files = part
        .attestations
        .iter()
        .map(|attestation| solve_attestation(gateway, attestation, &part.platform, epoch));
    let image = build_platform(gateway, part.build, epoch, packing);
    let ((image, config), attestations) =
        futures::future::try_join(image, futures::future::try_join_all(files)).await?;
    Ok(PlatformSolved {
        image,
        config,
        attestations,
    })
}

/// A platform's image and its config, however it is built. Boxed: a Dockerfile's `FROM hive-<name>` image may be
/// built first through here, from inside the Dockerfile's build.
pub(super) fn build_platform<'a>(
    gateway: &'a gateway::Gateway,
    build: PlatformBuild,
    epoch: i64,
    packing: &'a Packing,
) -> futures::future::BoxFuture<'a, Result<(gateway::ResultRef, Vec<u8>), FrontendError>> {
    Box::pin(async move {
        match build {
            PlatformBuild::Dockerfile { solve, labels } => {
                let built = dockerfile::solve_dockerfile(gateway, &solve, epoch, packing).await?;
                let config = layout::labels_over(&built.config, &labels)
                    .map_err(|err| FrontendError(err.to_string()))?;
                Ok((built.result, config))
            }
            PlatformBuild::Layers {
                definition,
                layout,
                loader_check,
                config,
                fingerprint,
            } => {
                let definition = (packing.definition(gateway.caps(), definition, *layout)).await?;
                let image = solve_image(gateway, definition, loader_check).await?;
                let config = match fingerprint {
                    Some(late) => layout::with_fingerprint(&config, &late.0.await?)
                        .map_err(|err| FrontendError(err.to_string()))?,
                    None => config,
                };
                Ok((image, config))
            }
            PlatformBuild::OverDockerfile(over) => {
                over_dockerfile::solve(gateway, *over, epoch, packing).await
            }
        }
    })
}

/// An attestation's predicate as a file on scratch, dated at the build's epoch so its layer is the same on
/// every build of the same content.
async fn solve_attestation(
    gateway: &gateway::Gateway,
    attestation: &InTotoAttestation,
    platform: &Platform,
    epoch: i64,
) -> Result<AttestationRef, FrontendError> {
    let definition = llb::file_on_scratch_at(
        &attestation.path,
        &attestation.content,
        llb::platform(platform),
        Some(epoch),
    );
    Ok(AttestationRef {
        predicate_type: attestation.predicate_type.clone(),
        path: attestation.path.clone(),
        result: gateway.solve(definition).await?,
    })
}

/// One platform's image: its loader check, then its definition.
pub(super) async fn solve_image(
    gateway: &gateway::Gateway,
    definition: Llb,
    loader_check: Option<LoaderCheck>,
) -> Result<gateway::ResultRef, FrontendError> {
    if let Some(check) = loader_check {
        let below = gateway.solve(check.below.0).await?;
        if !gateway.exists(&below, &check.need.interpreter).await? {
            return Err(FrontendError(check.need.missing));
        }
    }
    Ok(gateway.solve(definition.0).await?)
}

/// A platform's id in a multi-platform result: containerd's `platforms.Format` text (`linux/arm/v7`), which is
/// how [`Platform`] prints.
fn platform_id(platform: &Platform) -> String {
    platform.to_string()
}

/// The metadata the exporters read with the result: `containerimage.config` for a single ref; for refs keyed by
/// platform id (`keyed`), `containerimage.config/<id>` each and `refs.platforms` listing them (BuildKit's
/// `exptypes.Platforms`). Keys are ours then: without `refs.platforms` BuildKit would key a single ref by the
/// normalized platform of its config, which need not be the id the attestations are under.
fn result_metadata<'a>(
    platforms: impl ExactSizeIterator<Item = (&'a Platform, &'a [u8])>,
    keyed: bool,
) -> BTreeMap<String, Vec<u8>> {
    if !keyed {
        return platforms
            .map(|(_, config)| ("containerimage.config".to_owned(), config.to_vec()))
            .collect();
    }
    let mut metadata = BTreeMap::new();
    let mut listed = Vec::new();
    for (platform, config) in platforms {
        let id = platform_id(platform);
        metadata.insert(format!("containerimage.config/{id}"), config.to_vec());
        listed.push(platform);
    }
    metadata.insert("refs.platforms".to_owned(), platforms_json(&listed));
    metadata
}

/// `refs.platforms`: Go's encoding of `exptypes.Platforms`, whose fields have no JSON tags (so `Platforms`, `ID`,
/// `Platform`), each platform an OCI `Platform` (`architecture`, `os`, `variant` when there is one).
fn platforms_json(platforms: &[&Platform]) -> Vec<u8> {
    let listed: Vec<serde_json::Value> = platforms
        .iter()
        .map(|platform| {
            let mut spec = serde_json::json!({
                "architecture": platform.architecture(),
                "os": platform.os(),
            });
            if let Some(variant) = platform.variant() {
                spec["variant"] = serde_json::json!(variant);
            }
            serde_json::json!({"ID": platform_id(platform), "Platform": spec})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Platforms": listed })).expect("JSON values serialize")
}

/// Takes the export and closes the session, whatever the build's outcome.
async fn finish_session(
    session: Session,
    result: Result<hive_proto::control::SolveResponse, BuildError>,
) -> Result<Solved, SolveError> {
    if let Some(path) = session.changed_file() {
        session.close().await;
        return Err(SessionError::ChangedWhileSent { path }.into());
    }
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            session.close().await;
            return Err(err.into());
        }
    };
    let file_written = session.commit_export().await?;
    let bytes_sent = session.bytes_sent();
    session.close().await;
    let answer = |key: &str| response.exporter_response.get(key).cloned();
    Ok(Solved {
        digest: answer("containerimage.digest").unwrap_or_default(),
        config_digest: answer("containerimage.config.digest"),
        file_written,
        bytes_sent,
        attested: false,
    })
}

/// A registry base to resolve for one platform, with a loader an image on it needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BaseQuery {
    /// The base reference.
    pub(crate) reference: String,
    /// Its platform.
    pub(crate) platform: Platform,
    /// A loader an image on it needs, if any.
    pub(crate) loader: Option<String>,
}

/// A registry base for one platform.
pub(crate) type BaseKey = (String, Platform);

/// What the images need to know about their bases.
#[derive(Debug, Default)]
pub(crate) struct BaseFacts {
    /// Each base's digest and config for the platform, or why it could not be resolved.
    pub(crate) bases: BTreeMap<BaseKey, Result<ResolvedImage, BaseError>>,
    /// Whether a base has a loader (`(base, platform, loader path)`).
    pub(crate) loaders: BTreeMap<(String, Platform, String), bool>,
}

impl Buildkit {
    /// Resolves every base of `queries` once and checks each (base, loader) pair once, in one gateway build.
    pub(crate) async fn inspect_bases(
        &self,
        queries: BTreeSet<BaseQuery>,
    ) -> Result<BaseFacts, SolveError> {
        if queries.is_empty() {
            return Ok(BaseFacts::default());
        }
        // A session for the registry credentials of private bases; nothing local is served.
        let config = SessionConfig {
            name: "prepare".to_owned(),
            ..Default::default()
        };
        let session = Session::start(self, config)
            .await
            .map_err(SolveError::SessionStart)?;
        let session_id = session.id().to_owned();
        let request = GatewayRequest {
            build_ref: new_id(),
            session_id: session_id.clone(),
            ..Default::default()
        };
        let facts = Arc::new(Mutex::new(BaseFacts::default()));
        let shared = facts.clone();
        let result = gateway::build(self, request, |gateway| async move {
            let bases = resolve_all(&gateway, &queries, &session_id).await;
            let checks = queries.iter().filter_map(|query| {
                let loader = query.loader.as_ref()?;
                let key = (query.reference.clone(), query.platform.clone());
                let Some(Ok(resolved)) = bases.get(&key) else {
                    return None;
                };
                let gateway = &gateway;
                Some(async move {
                    let (solved, found) =
                        has_loader(gateway, query, resolved.clone(), loader).await?;
                    let key = (key.0, key.1, loader.clone());
                    Ok::<_, FrontendError>((key, solved, found))
                })
            });
            let checked = futures::future::try_join_all(checks).await?;
            let mut last = None;
            {
                let mut facts = shared.lock().expect("not poisoned");
                facts.bases = bases;
                for (key, solved, found) in checked {
                    facts.loaders.insert(key, found);
                    last = Some(solved);
                }
            }
            match last {
                Some(solved) => gateway.return_result(&solved, BTreeMap::new()).await,
                None => gateway.return_empty().await,
            }
            .map_err(FrontendError::from)
        })
        .await;
        session.close().await;
        result?;
        let facts = std::mem::take(&mut *facts.lock().expect("not poisoned"));
        Ok(facts)
    }
}

/// Why a base could not be resolved for a platform.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum BaseError {
    /// The base has no image for the platform (an index without it, or a single image of another platform).
    #[error("{reference} has no {platform} image (it has: {})", list(available))]
    MissingPlatform {
        /// The base, as the plan wrote it.
        reference: String,
        /// The platform asked for.
        platform: Platform,
        /// The platforms it has, of those cargo hive probes for.
        available: Vec<Platform>,
    },
    /// The daemon could not resolve it (not found, unauthorized, unreachable, ...): its words.
    #[error(transparent)]
    Resolve(FrontendError),
}

fn list(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return format!("none of {}", PROBED.join(", "));
    }
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The platforms probed for a base that lacks the one asked for, to say which it has.
const PROBED: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

/// Every distinct (base, platform) of `queries`, resolved concurrently: a multi-platform build asks for each base
/// once per platform.
async fn resolve_all(
    gateway: &gateway::Gateway,
    queries: &BTreeSet<BaseQuery>,
    session_id: &str,
) -> BTreeMap<BaseKey, Result<ResolvedImage, BaseError>> {
    let keys: BTreeSet<BaseKey> = queries
        .iter()
        .map(|query| (query.reference.clone(), query.platform.clone()))
        .collect();
    let resolves = keys
        .iter()
        .map(|(reference, platform)| resolve_base(gateway, reference, platform, session_id));
    let resolved = futures::future::join_all(resolves).await;
    keys.into_iter().zip(resolved).collect()
}

/// One base for one platform, or why it cannot be had (with the platforms it has, when it lacks this one).
async fn resolve_base(
    gateway: &gateway::Gateway,
    reference: &str,
    platform: &Platform,
    session_id: &str,
) -> Result<ResolvedImage, BaseError> {
    match resolve_for(gateway, reference, platform, session_id).await {
        Ok(Some(resolved)) => Ok(resolved),
        Ok(None) => Err(BaseError::MissingPlatform {
            reference: reference.to_owned(),
            platform: platform.clone(),
            available: available_platforms(gateway, reference, session_id).await,
        }),
        // Docker 20.10 answers a platform its own store lacks by asking the registry, which may not have the image
        // at all: when other platforms resolve, the platform is what is missing.
        Err(error) => {
            let available = available_platforms(gateway, reference, session_id).await;
            if available.is_empty() || available.contains(platform) {
                return Err(BaseError::Resolve(error));
            }
            Err(BaseError::MissingPlatform {
                reference: reference.to_owned(),
                platform: platform.clone(),
                available,
            })
        }
    }
}

/// The base's image for `platform`, or `None` when it has none: the daemon found no match in an index, or
/// answered with a config of another platform (a single-platform base answers whatever platform is asked).
async fn resolve_for(
    gateway: &gateway::Gateway,
    reference: &str,
    platform: &Platform,
    session_id: &str,
) -> Result<Option<ResolvedImage>, FrontendError> {
    match gateway
        .resolve_image_config(reference, &llb::platform(platform), session_id)
        .await
    {
        Ok(resolved) if config_matches(&resolved.config, platform) => Ok(Some(resolved)),
        Ok(_) => Ok(None),
        Err(status) if lacks_platform(status.message()) => Ok(None),
        Err(status) => Err(status.into()),
    }
}

/// Whether a resolve error says the image has no manifest for the platform: containerd's "no match for platform
/// in manifest", or Docker's own image store ("… does not provide the specified platform", "… does not match the
/// specified platform").
fn lacks_platform(message: &str) -> bool {
    [
        "no match for platform",
        "does not provide the specified platform",
        "does not match the specified platform",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Whether an image config is for `platform`: same OS and architecture, and the same variant when both name one.
/// A config that names no OS or architecture cannot be judged, and passes.
fn config_matches(config: &[u8], platform: &Platform) -> bool {
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(config) else {
        return true;
    };
    let field = |name: &str| {
        config
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let (Some(os), Some(architecture)) = (field("os"), field("architecture")) else {
        return true;
    };
    let variants_agree = match (field("variant"), platform.variant()) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => true,
    };
    os == platform.os()
        && oci_architecture(architecture) == platform.architecture()
        && variants_agree
}

/// The OCI name of an architecture some images' configs spell the kernel's way.
fn oci_architecture(architecture: &str) -> &str {
    match architecture {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Which of [`PROBED`] the base has, asked concurrently (only once resolving a platform failed).
async fn available_platforms(
    gateway: &gateway::Gateway,
    reference: &str,
    session_id: &str,
) -> Vec<Platform> {
    let probes = PROBED.iter().map(|text| async move {
        let platform = Platform::parse(text).expect("the probed platforms are valid");
        match resolve_for(gateway, reference, &platform, session_id).await {
            Ok(Some(_)) => Some(platform),
            _ => None,
        }
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether the resolved base of `query` has `loader`; the solved base is returned to keep the build's result.
async fn has_loader(
    gateway: &gateway::Gateway,
    query: &BaseQuery,
    resolved: ResolvedImage,
    loader: &str,
) -> Result<(gateway::ResultRef, bool), FrontendError> {
    let layout = ImageLayout {
        platform: query.platform.clone(),
        base: Some(LayoutBase::Registry(PinnedBase {
            reference: query.reference.clone(),
            digest: resolved.digest,
        })),
        layers: vec![Vec::new()],
        steps: Vec::new(),
        shared_key_hint: String::new(),
        epoch: 0,
        uid: 0,
        gid: 0,
    };
    let below = base_definition(&layout).expect("a registry base is below");
    let solved = gateway.solve(below.0).await?;
    let found = gateway.exists(&solved, loader).await?;
    Ok((solved, found))
}

/// Why doctor's live check failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LiveCheckError {
    /// No answer in time.
    #[error("the solve did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The daemon failed the solve.
    #[error("the solve failed: {0}")]
    Failed(String),
}

impl Buildkit {
    /// Doctor's live check: a file made on scratch, solved for the daemon's first platform; how long it took, and
    /// whether it worked.
    pub(crate) async fn live_check(
        &self,
        timeout: Duration,
    ) -> (Duration, Result<(), LiveCheckError>) {
        let platform = self
            .workers
            .first()
            .and_then(|worker| worker.platforms.first().cloned())
            .unwrap_or_else(|| llb::platform(&Platform::host()));
        let definition = llb::file_on_scratch("/hive-doctor", b"cargo hive doctor\n", platform);
        let request = SolveRequest {
            r#ref: new_id(),
            definition: Some(definition),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, self.control().solve(request)).await {
            Err(_) => Err(LiveCheckError::Timeout(timeout)),
            Ok(Err(status)) => Err(LiveCheckError::Failed(status.message().to_owned())),
            Ok(Ok(_)) => Ok(()),
        };
        (started.elapsed(), result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn one_platform_is_a_plain_config() {
        let amd64 = platform("linux/amd64");
        let metadata = result_metadata([(&amd64, b"{}".as_slice())].into_iter(), false);
        assert_eq!(
            metadata,
            BTreeMap::from([("containerimage.config".to_owned(), b"{}".to_vec())])
        );
    }

    #[test]
    fn one_platform_with_attestations_is_keyed_and_listed() {
        let arm64 = platform("linux/arm64");
        let metadata = result_metadata([(&arm64, b"{}".as_slice())].into_iter(), true);
        assert_eq!(
            metadata.keys().collect::<Vec<_>>(),
            ["containerimage.config/linux/arm64", "refs.platforms"]
        );
        assert_eq!(
            String::from_utf8(metadata["refs.platforms"].clone()).unwrap(),
            r#"{"Platforms":[{"ID":"linux/arm64","Platform":{"architecture":"arm64","os":"linux"}}]}"#
        );
    }

    #[test]
    fn provenance_is_asked_of_the_daemon_in_the_frontend_attributes() {
        let none = frontend_attrs(7, None);
        assert_eq!(
            none,
            BTreeMap::from([("build-arg:SOURCE_DATE_EPOCH".to_owned(), "7".to_owned())])
        );
        for (mode, value) in [
            (ProvenanceMode::Min, "mode=min"),
            (ProvenanceMode::Max, "mode=max"),
        ] {
            let attrs = frontend_attrs(7, Some(mode));
            assert_eq!(attrs["attest:provenance"], value);
            assert_eq!(attrs["build-arg:SOURCE_DATE_EPOCH"], "7");
        }
    }

    #[test]
    fn several_platforms_are_keyed_by_id_and_listed() {
        let (amd64, arm) = (platform("linux/amd64"), platform("linux/arm/v7"));
        let metadata = result_metadata(
            [
                (&amd64, b"{\"a\":1}".as_slice()),
                (&arm, b"{\"b\":2}".as_slice()),
            ]
            .into_iter(),
            true,
        );
        assert_eq!(
            metadata.keys().collect::<Vec<_>>(),
            [
                "containerimage.config/linux/amd64",
                "containerimage.config/linux/arm/v7",
                "refs.platforms"
            ]
        );
        assert_eq!(metadata["containerimage.config/linux/arm/v7"], b"{\"b\":2}");
        // Byte for byte what Go's encoding of exptypes.Platforms gives (its fields have no JSON tags).
        assert_eq!(
            String::from_utf8(metadata["refs.platforms"].clone()).unwrap(),
            r#"{"Platforms":[{"ID":"linux/amd64","Platform":{"architecture":"amd64","os":"linux"}},{"ID":"linux/arm/v7","Platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#
        );
    }

    #[test]
    fn a_config_of_another_platform_does_not_match() {
        let config = |value: Value| serde_json::to_vec(&value).unwrap();
        let amd64 = config(json!({"os": "linux", "architecture": "amd64"}));
        assert!(config_matches(&amd64, &platform("linux/amd64")));
        assert!(!config_matches(&amd64, &platform("linux/arm64")));
        // Variants count only when both sides name one.
        let arm64_v8 = config(json!({"os": "linux", "architecture": "arm64", "variant": "v8"}));
        assert!(config_matches(&arm64_v8, &platform("linux/arm64")));
        let arm_v6 = config(json!({"os": "linux", "architecture": "arm", "variant": "v6"}));
        assert!(!config_matches(&arm_v6, &platform("linux/arm/v7")));
        assert!(config_matches(&arm_v6, &platform("linux/arm/v6")));
        // The kernel's spelling is the OCI architecture.
        let x86_64 = config(json!({"os": "linux", "architecture": "x86_64"}));
        assert!(config_matches(&x86_64, &platform("linux/amd64")));
        // Nothing to judge by: it passes.
        assert!(config_matches(b"{}", &platform("linux/arm64")));
        assert!(config_matches(b"not json", &platform("linux/arm64")));
    }

    #[test]
    fn resolve_errors_that_mean_the_platform_is_missing() {
        assert!(lacks_platform(
            "docker.io/x/y:latest: no match for platform in manifest: not found"
        ));
        assert!(lacks_platform(
            "image with reference x was found but does not provide the specified platform (linux/arm64)"
        ));
        assert!(!lacks_platform(
            "pull access denied, repository does not exist"
        ));
    }

    #[test]
    fn missing_platform_reads_like_prose() {
        let error = BaseError::MissingPlatform {
            reference: "localhost:5000/hive/glibc".to_owned(),
            platform: platform("linux/arm64"),
            available: vec![platform("linux/amd64")],
        };
        assert_eq!(
            error.to_string(),
            "localhost:5000/hive/glibc has no linux/arm64 image (it has: linux/amd64)"
        );
        let none = BaseError::MissingPlatform {
            reference: "x".to_owned(),
            platform: platform("linux/arm64"),
            available: vec![],
        };
        assert!(
            none.to_string().starts_with(
                "x has no linux/arm64 image (it has: none of linux/amd64, linux/arm64,"
            ),
            "{none}"
        );
        assert!(PROBED.iter().all(|text| Platform::parse(text).is_ok()));
    }
}
