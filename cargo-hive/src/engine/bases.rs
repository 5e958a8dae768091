//! One short gateway build before the images: every distinct registry base is resolved once (its digest for the
//! platform and its config), and every distinct (base, loader) pair is checked once, instead of once per image.
//! Twenty images on one base cost one resolve.
//!
//! What a base's tag points to is asked of its registry directly, while cargo builds (one HEAD per base). What
//! the daemon found under that digest (the config for each platform, whether a loader is there) cannot change, so
//! it is kept in `target/hive/.fresh/.bases/` and the daemon is asked again only about digests it has not answered for:
//! when nothing moved, no gateway build runs at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::buildkit::{BaseError, BaseFacts, BaseQuery, Buildkit, ResolvedImage, SolveError};
use crate::config::{ConfigError, Diagnostics};
use crate::errors::HiveError;
use crate::plan::Resolved;

/// What to find out about one base.
pub(crate) type Need = BaseQuery;

/// How long after asking the registries' answers are waited for: past it, the daemon is asked as if no registry had
/// answered (a registry the daemon reaches through a mirror may never answer us).
const HEAD_GRACE: Duration = Duration::from_secs(2);

/// The digest each registry base's reference points to now, asked of the registries at once in the background.
pub(crate) struct Heads {
    task: tokio::task::JoinHandle<BTreeMap<String, String>>,
    asked: tokio::time::Instant,
}

impl Heads {
    /// Starts asking, for each reference, its registry what it points to (a digest reference names its own).
    pub(crate) fn ask(references: BTreeSet<String>) -> Heads {
        let asked = tokio::time::Instant::now();
        let task = tokio::spawn(async move {
            let heads = references.into_iter().map(|reference| async move {
                let digest = match reference.rsplit_once('@') {
                    Some((_, digest)) => Some(digest.to_owned()),
                    None => crate::output::tag_digest(&reference).await.ok(),
                };
                digest.map(|digest| (reference, digest))
            });
            futures::future::join_all(heads)
                .await
                .into_iter()
                .flatten()
                .collect()
        });
        Heads { task, asked }
    }

    /// The digests found, or none when the registries took too long.
    async fn digests(self) -> BTreeMap<String, String> {
        let Heads { mut task, asked } = self;
        match tokio::time::timeout_at(asked + HEAD_GRACE, &mut task).await {
            Ok(Ok(digests)) => digests,
            _ => {
                task.abort();
                BTreeMap::new()
            }
        }
    }
}

/// What the daemon found under one digest, per platform: kept as it answered.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Known {
    platforms: BTreeMap<String, KnownPlatform>,
}

/// One platform of a known digest.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KnownPlatform {
    /// The image config, as the daemon sent it.
    config: String,
    /// Whether each loader asked about is in the image.
    loaders: BTreeMap<String, bool>,
}

/// Where what the daemon found under `digest` is kept.
fn known_path(dir: &Path, digest: &str) -> Option<PathBuf> {
    let (algorithm, hex) = digest.split_once(':')?;
    let plain = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric());
    (plain(algorithm) && plain(hex)).then(|| dir.join(format!("{algorithm}-{hex}.json")))
}

fn read_known(dir: &Path, digest: &str) -> Option<Known> {
    let text = std::fs::read_to_string(known_path(dir, digest)?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Adds to what is kept under `digest` (atomically; failing to keep it only costs the next build a resolve).
fn keep(dir: &Path, digest: &str, platform: &str, config: &[u8], loaders: &[(&str, bool)]) {
    let (Some(path), Ok(config)) = (known_path(dir, digest), std::str::from_utf8(config)) else {
        return;
    };
    let mut known = read_known(dir, digest).unwrap_or_default();
    let entry = known.platforms.entry(platform.to_owned()).or_default();
    entry.config = config.to_owned();
    for (loader, found) in loaders {
        entry.loaders.insert((*loader).to_owned(), *found);
    }
    let text = serde_json::to_string(&known).expect("known bases serialize");
    crate::state::keep(&path, &text);
}

/// The answer kept for `need` under `digest`: the base and, when asked, its loader; `None` if anything is missing.
fn known_answer(dir: &Path, digest: &str, need: &Need) -> Option<(ResolvedImage, Option<bool>)> {
    let known = read_known(dir, digest)?;
    let platform = known.platforms.get(&need.platform.to_string())?;
    let loader = match &need.loader {
        Some(loader) => Some(*platform.loaders.get(loader)?),
        None => None,
    };
    let resolved = ResolvedImage {
        digest: digest.to_owned(),
        config: platform.config.clone().into_bytes(),
    };
    Some((resolved, loader))
}

/// Where the daemon's answers about bases are kept: with the up-to-date records, as state of this checkout's
/// builds (`.bases` cannot be an image's name).
pub(crate) fn known_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("hive").join(".fresh").join(".bases")
}

/// Resolves and checks everything in `needs`: from what is kept for the digests the registries named now, and in
/// one gateway build for the rest (`fresh_only`: ignore what is kept, as `--no-cache` asks).
pub(crate) async fn prepare(
    buildkit: &Buildkit,
    needs: BTreeSet<Need>,
    heads: Heads,
    dir: &Path,
    fresh_only: bool,
) -> Result<BaseFacts, SolveError> {
    let digests = heads.digests().await;
    let mut facts = BaseFacts::default();
    let mut unknown = BTreeSet::new();
    for need in needs {
        let answer = (digests.get(&need.reference))
            .filter(|_| !fresh_only)
            .and_then(|digest| known_answer(dir, digest, &need));
        let Some((resolved, loader)) = answer else {
            unknown.insert(need);
            continue;
        };
        if let (Some(path), Some(found)) = (&need.loader, loader) {
            let key = (need.reference.clone(), need.platform.clone(), path.clone());
            facts.loaders.insert(key, found);
        }
        facts
            .bases
            .insert((need.reference, need.platform), Ok(resolved));
    }
    if unknown.is_empty() {
        return Ok(facts);
    }
    let asked = buildkit.inspect_bases(unknown.clone()).await?;
    keep_answers(dir, &unknown, &asked, &digests);
    facts.bases.extend(asked.bases);
    facts.loaders.extend(asked.loaders);
    Ok(facts)
}

/// Keeps the daemon's answers about the digests the registries named: only when the daemon resolved the same
/// digest (a tag moved in between says nothing about either).
fn keep_answers(
    dir: &Path,
    asked: &BTreeSet<Need>,
    facts: &BaseFacts,
    digests: &BTreeMap<String, String>,
) {
    for need in asked {
        let key = (need.reference.clone(), need.platform.clone());
        let Some(Ok(resolved)) = facts.bases.get(&key) else {
            continue;
        };
        if digests.get(&need.reference) != Some(&resolved.digest) {
            continue;
        }
        let loader = need.loader.as_deref().and_then(|path| {
            let key = (key.0.clone(), key.1.clone(), path.to_owned());
            facts.loaders.get(&key).map(|found| (path, *found))
        });
        let platform = need.platform.to_string();
        keep(
            dir,
            &resolved.digest,
            &platform,
            &resolved.config,
            loader.as_slice(),
        );
    }
}

/// A registry base without one of the platforms an image is built for is the user's mistake, said at the `base`
/// that named it, before anything is built.
pub(crate) fn check_platforms(resolved: &Resolved, facts: &BaseFacts) -> Result<(), HiveError> {
    let mut diags = Diagnostics::default();
    for image in resolved.plan.images.iter().filter(|image| image.selected) {
        for on in &resolved.facts(&image.name).platforms {
            let hive_build::plan::Base::Image { reference } = &on.chain.root else {
                continue;
            };
            let key = (reference.clone(), on.platform.clone());
            let Some(Err(error @ BaseError::MissingPlatform { .. })) = facts.bases.get(&key) else {
                continue;
            };
            // The `base` of the bottom image of the chain names the registry image.
            let bottom = &on.chain.images[0];
            let place = resolved
                .facts(bottom)
                .on(&on.platform)
                .map_or(&on.base_place, |below| &below.base_place);
            diags.push(
                ConfigError::new("base-platform", place, error.to_string(), format!("no {}", on.platform))
                    .help(format!(
                        "build `{}` for the platforms the base has (`platforms`), or use a base with {}",
                        image.name, on.platform
                    )),
            );
        }
    }
    diags.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Platform;

    const DIGEST: &str = "sha256:88849edcc90264b701edabd2775bcb6d28a7d409b831274158d70a941fe6363b";

    fn need(loader: Option<&str>) -> Need {
        Need {
            reference: "localhost:5000/hive/glibc:latest".into(),
            platform: Platform::parse("linux/arm64").unwrap(),
            loader: loader.map(str::to_owned),
        }
    }

    #[test]
    fn only_a_plain_digest_names_a_file() {
        let dir = Path::new("/t");
        assert_eq!(
            known_path(dir, DIGEST).unwrap(),
            dir.join(format!("sha256-{}.json", &DIGEST[7..]))
        );
        for bad in ["", "sha256", "sha256:", ":abc", "sha256:../x", "sha256:a/b"] {
            assert_eq!(known_path(dir, bad), None, "{bad}");
        }
    }

    #[test]
    fn an_answer_is_kept_per_platform_and_loader() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        assert!(known_answer(dir, DIGEST, &need(None)).is_none());
        keep(dir, DIGEST, "linux/arm64", br#"{"os":"linux"}"#, &[]);
        let (resolved, loader) = known_answer(dir, DIGEST, &need(None)).unwrap();
        assert_eq!((resolved.digest.as_str(), loader), (DIGEST, None));
        assert_eq!(resolved.config, br#"{"os":"linux"}"#);
        // A loader never asked about is not known, whatever else is.
        assert!(known_answer(dir, DIGEST, &need(Some("/lib/ld-linux-aarch64.so.1"))).is_none());
        keep(
            dir,
            DIGEST,
            "linux/arm64",
            br#"{"os":"linux"}"#,
            &[("/lib/ld-linux-aarch64.so.1", false)],
        );
        let (_, loader) =
            known_answer(dir, DIGEST, &need(Some("/lib/ld-linux-aarch64.so.1"))).unwrap();
        assert_eq!(loader, Some(false));
        // Another platform of the same digest is another answer.
        let amd64 = Need {
            platform: Platform::parse("linux/amd64").unwrap(),
            ..need(None)
        };
        assert!(known_answer(dir, DIGEST, &amd64).is_none());
        // Another digest knows nothing.
        assert!(known_answer(dir, &DIGEST.replace('8', "9"), &need(None)).is_none());
    }
}
