//! The façade's solves: one image ([`Buildkit::solve`]: its session, gateway build, status stream, loader check
//! and export), the short build that resolves every base before the images ([`Buildkit::inspect_bases`]), and
//! doctor's live check. Callers hand in LLB, config and exporters; no wire type leaves this module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hive_proto::control::{SolveRequest, StatusRequest};

use super::client::Buildkit;
use super::gateway::{
    self, BuildError, ExporterSpec, FrontendError, GatewayRequest, ResolvedImage,
};
use super::layout::{ImageLayout, Llb, LocalInput, PinnedBase, base_definition};
use super::session::{LocalDir, Session, SessionConfig, SessionError};
use super::{llb, new_id, status};
use crate::plan::Platform;
use crate::progress::Progress;

/// How long the status stream may take to deliver its last messages after the build.
const STATUS_DRAIN: Duration = Duration::from_secs(2);

/// A loader the image's binary needs, checked inside the build on the layers below the image's own.
#[derive(Debug, Clone)]
pub(crate) struct LoaderCheck {
    /// The loader's path (`/lib64/ld-linux-x86-64.so.2`).
    pub(crate) interpreter: String,
    /// The layers below the image's own.
    pub(crate) below: Llb,
    /// The error when the loader is missing.
    pub(crate) missing: String,
}

/// One image's solve: what the session serves, what is solved, and where it goes.
#[derive(Debug)]
pub(crate) struct SolveJob {
    /// The image's name (the session's name, and what progress is reported under).
    pub(crate) name: String,
    /// The stable key the daemon keeps the local sources' last transfer under.
    pub(crate) shared_key: String,
    /// The local sources the session serves.
    pub(crate) inputs: Vec<LocalInput>,
    /// The file an exporter writes through the session, if any.
    pub(crate) export_file: Option<PathBuf>,
    /// The exporters.
    pub(crate) exporters: Vec<ExporterSpec>,
    /// SOURCE_DATE_EPOCH.
    pub(crate) epoch: i64,
    /// The image's LLB.
    pub(crate) definition: Llb,
    /// The image config JSON.
    pub(crate) config: Vec<u8>,
    /// A loader to check first, when `hive:` layers are below.
    pub(crate) loader_check: Option<LoaderCheck>,
}

/// What a solve produced.
#[derive(Debug, Clone)]
pub(crate) struct Solved {
    /// The manifest digest (empty when the exporters name none).
    pub(crate) digest: String,
    /// The config digest.
    pub(crate) config_digest: Option<String>,
    /// The file written through the session, if any.
    pub(crate) file_written: Option<PathBuf>,
    /// File bytes the session sent to the daemon.
    pub(crate) bytes_sent: u64,
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
}

impl Buildkit {
    /// Solves one image: starts its session, runs the gateway build (loader check, solve, result with the config),
    /// streams its status to `progress`, and takes the export.
    pub(crate) async fn solve(
        &self,
        job: SolveJob,
        progress: &Progress,
    ) -> Result<Solved, SolveError> {
        let session = self.start_session(&job).await?;
        let build_ref = new_id();
        // The controller takes the build's SOURCE_DATE_EPOCH from this attribute (the exporters get it too).
        let frontend_attrs = BTreeMap::from([(
            "build-arg:SOURCE_DATE_EPOCH".to_owned(),
            job.epoch.to_string(),
        )]);
        let request = GatewayRequest {
            build_ref: build_ref.clone(),
            session_id: session.id().to_owned(),
            exporters: job.exporters,
            frontend_attrs,
        };
        let status = self.spawn_status(&build_ref, &job.name, progress.clone());
        let (definition, config, loader_check) = (job.definition, job.config, job.loader_check);
        let result = gateway::build(self, request, |gateway| async move {
            if let Some(check) = loader_check {
                let below = gateway.solve(check.below.0).await?;
                if !gateway.exists(&below, &check.interpreter).await? {
                    return Err(FrontendError(check.missing));
                }
            }
            let result = gateway.solve(definition.0).await?;
            let metadata = BTreeMap::from([("containerimage.config".to_owned(), config)]);
            Ok(gateway.return_result(&result, metadata).await?)
        })
        .await;
        // The status stream ends with the build; its last messages (the final steps) are worth a short wait.
        let _ = tokio::time::timeout(STATUS_DRAIN, status).await;
        finish_session(session, result).await
    }

    async fn start_session(&self, job: &SolveJob) -> Result<Session, SolveError> {
        let local_dirs = job
            .inputs
            .iter()
            .map(|input| {
                let dir = LocalDir {
                    root: input.root.clone(),
                    allow: Some(input.include_patterns()),
                };
                (input.name.clone(), dir)
            })
            .collect();
        let config = SessionConfig {
            name: job.name.clone(),
            shared_key: job.shared_key.clone(),
            local_dirs,
            export: job.export_file.clone(),
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
    ) -> tokio::task::JoinHandle<()> {
        let mut control = self.control();
        let request = StatusRequest {
            r#ref: build_ref.to_owned(),
        };
        let image = image.to_owned();
        tokio::spawn(async move {
            let Ok(response) = control.status(request).await else {
                return;
            };
            let mut stream = response.into_inner();
            while let Ok(Some(message)) = stream.message().await {
                progress.status(&image, status::batch(message));
            }
        })
    }
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
    /// Each base's digest and config, or why it could not be resolved.
    pub(crate) bases: BTreeMap<BaseKey, Result<ResolvedImage, FrontendError>>,
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
            let mut last = None;
            for query in &queries {
                let resolved = resolve_once(&gateway, &shared, query, &session_id).await;
                let (Some(loader), Ok(resolved)) = (&query.loader, resolved) else {
                    continue;
                };
                let (solved, found) = has_loader(&gateway, query, resolved, loader).await?;
                let key = (
                    query.reference.clone(),
                    query.platform.clone(),
                    loader.clone(),
                );
                shared
                    .lock()
                    .expect("not poisoned")
                    .loaders
                    .insert(key, found);
                last = Some(solved);
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

/// The base of `query`, resolved on first use.
async fn resolve_once(
    gateway: &gateway::Gateway,
    facts: &Mutex<BaseFacts>,
    query: &BaseQuery,
    session_id: &str,
) -> Result<ResolvedImage, FrontendError> {
    let key = (query.reference.clone(), query.platform.clone());
    let known = facts.lock().expect("not poisoned").bases.get(&key).cloned();
    if let Some(resolved) = known {
        return resolved;
    }
    let platform = llb::platform(&query.platform);
    let resolved = gateway
        .resolve_image_config(&query.reference, &platform, session_id)
        .await
        .map_err(FrontendError::from);
    let mut facts = facts.lock().expect("not poisoned");
    facts.bases.insert(key, resolved.clone());
    resolved
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
        base: Some(PinnedBase {
            reference: query.reference.clone(),
            digest: resolved.digest,
        }),
        layers: vec![Vec::new()],
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
