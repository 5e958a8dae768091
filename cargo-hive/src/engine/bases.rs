//! One short gateway build before the images: every distinct registry base is resolved once (its digest for the
//! platform and its config), and every distinct (base, loader) pair is checked once, instead of once per image.
//! Twenty images on one base cost one resolve.

use std::collections::{BTreeMap, BTreeSet};

use hive_proto::pb;

use crate::buildkit::Buildkit;
use crate::buildkit::gateway::{self, BuildRequest, ResolvedImage};
use crate::buildkit::layout::{ImageLayout, PinnedBase, base_definition};
use crate::buildkit::session::{Session, SessionConfig};

/// A registry base for one platform (`os/arch[/variant]`).
pub(crate) type BaseKey = (String, String);

/// What the images need to know about their bases.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// Each base's digest and config, or why it could not be resolved.
    pub(crate) bases: BTreeMap<BaseKey, Result<ResolvedImage, String>>,
    /// Whether a base has a loader (`(base, platform, loader path)`).
    pub(crate) loaders: BTreeMap<(String, String, String), bool>,
}

/// What to find out about one base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Need {
    /// The base reference.
    pub(crate) reference: String,
    /// Its platform.
    pub(crate) platform: String,
    /// A loader an image on it needs, if any.
    pub(crate) loader: Option<String>,
}

/// `os/arch[/variant]` as an LLB platform.
pub(crate) fn platform(text: &str) -> pb::Platform {
    let mut parts = text.split('/');
    pb::Platform {
        os: parts.next().unwrap_or("linux").to_owned(),
        architecture: parts.next().unwrap_or_default().to_owned(),
        variant: parts.next().unwrap_or_default().to_owned(),
        ..Default::default()
    }
}

/// Resolves and checks everything in `needs` in one gateway build.
pub(crate) async fn prepare(
    buildkit: &Buildkit,
    needs: BTreeSet<Need>,
) -> Result<Prepared, String> {
    if needs.is_empty() {
        return Ok(Prepared::default());
    }
    // A session for the registry credentials of private bases; nothing local is served.
    let session = Session::start(
        buildkit,
        SessionConfig {
            name: "prepare".to_owned(),
            ..Default::default()
        },
    )
    .await
    .map_err(|err| format!("failed to start the BuildKit session: {err}"))?;
    let session_id = session.id().to_owned();
    let request = BuildRequest {
        build_ref: crate::buildkit::new_id(),
        session_id: session_id.clone(),
        ..Default::default()
    };
    let prepared = std::sync::Arc::new(std::sync::Mutex::new(Prepared::default()));
    let shared = prepared.clone();
    let result = gateway::build(buildkit, request, |gateway| async move {
        let mut last = None;
        for need in &needs {
            let key = (need.reference.clone(), need.platform.clone());
            let known = shared
                .lock()
                .expect("not poisoned")
                .bases
                .get(&key)
                .cloned();
            let resolved = match known {
                Some(resolved) => resolved,
                None => {
                    let resolved = gateway
                        .resolve_image_config(
                            &need.reference,
                            &platform(&need.platform),
                            &session_id,
                        )
                        .await
                        .map_err(|status| status.message().to_owned());
                    shared
                        .lock()
                        .expect("not poisoned")
                        .bases
                        .insert(key, resolved.clone());
                    resolved
                }
            };
            let (Some(loader), Ok(resolved)) = (&need.loader, resolved) else {
                continue;
            };
            let layout = ImageLayout {
                platform: platform(&need.platform),
                base: Some(PinnedBase {
                    reference: need.reference.clone(),
                    digest: resolved.digest,
                }),
                layers: vec![Vec::new()],
                shared_key_hint: String::new(),
                epoch: 0,
                uid: 0,
                gid: 0,
            };
            let below = base_definition(&layout).expect("a registry base is below");
            let solved = gateway
                .solve(below)
                .await
                .map_err(|status| status.message().to_owned())?;
            let found = gateway
                .exists(&solved, loader)
                .await
                .map_err(|status| status.message().to_owned())?;
            shared.lock().expect("not poisoned").loaders.insert(
                (
                    need.reference.clone(),
                    need.platform.clone(),
                    loader.clone(),
                ),
                found,
            );
            last = Some(solved);
        }
        match last {
            Some(solved) => gateway.return_result(&solved, BTreeMap::new()).await,
            None => gateway.return_empty().await,
        }
        .map_err(|status| status.message().to_owned())
    })
    .await;
    session.close().await;
    result.map_err(|err| err.to_string())?;
    let prepared = std::mem::take(&mut *prepared.lock().expect("not poisoned"));
    Ok(prepared)
}
