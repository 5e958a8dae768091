//! Which references a release pushes: every image's tags (with its alias tags when `aliases = true`), each decided
//! against the tags its repository has now, so a floating tag only ever moves forward.

use std::collections::{BTreeMap, BTreeSet};

use hive_build::plan::{Plan, PlanImage};

use super::ReleaseError;
use super::aliases::{self, TagDecision};

/// One image's release: its version and what happens to each of its tags.
#[derive(Debug, Clone)]
pub(crate) struct ImageRelease {
    /// The image's name.
    pub(crate) image: String,
    /// Its package's version.
    pub(crate) version: semver::Version,
    /// The repository (registry host and path) its tags are in.
    pub(crate) repository: String,
    /// Every tag, in the image's order, alias tags last.
    pub(crate) decisions: Vec<TagDecision>,
}

impl ImageRelease {
    /// The full reference of a tag.
    pub(crate) fn reference(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repository)
    }

    /// The references the release writes: every created or moved tag.
    pub(crate) fn pushed_references(&self) -> Vec<String> {
        self.decisions
            .iter()
            .filter(|decision| decision.pushes())
            .map(|decision| self.reference(&decision.tag))
            .collect()
    }
}

/// Decides every selected image's tags, reading each repository's tag list once (concurrently).
pub(crate) async fn decide(plan: &Plan) -> Result<Vec<ImageRelease>, ReleaseError> {
    let selected: Vec<&PlanImage> = plan.images.iter().filter(|image| image.selected).collect();
    let repositories: BTreeSet<&str> = selected
        .iter()
        .map(|image| image.repository.as_str())
        .collect();
    let lists = futures::future::join_all(repositories.iter().map(|repository| async move {
        let tags = crate::output::list_tags(repository).await;
        (repository.to_string(), tags)
    }))
    .await;
    let mut existing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (repository, tags) in lists {
        let tags = tags.map_err(|source| ReleaseError::Tags {
            repository: repository.clone(),
            source: Box::new(source),
        })?;
        existing.insert(repository, tags);
    }
    selected
        .into_iter()
        .map(|image| {
            let version = semver::Version::parse(&image.package.version).map_err(|source| {
                ReleaseError::Version {
                    image: image.name.clone(),
                    version: image.package.version.clone(),
                    source,
                }
            })?;
            let tags = aliases::release_tags(&image.tags, &version, image.aliases);
            let decisions = aliases::decide(&version, &tags, &existing[&image.repository]);
            Ok(ImageRelease {
                image: image.name.clone(),
                version,
                repository: image.repository.clone(),
                decisions,
            })
        })
        .collect()
}

/// The text of `release --dry-run`: per image, every reference and what the release would do with it.
pub(crate) fn dry_run_text(releases: &[ImageRelease]) -> String {
    let mut text = String::new();
    for release in releases {
        text.push_str(&format!("{} {}\n", release.image, release.version));
        let width = release
            .decisions
            .iter()
            .map(|decision| release.reference(&decision.tag).len())
            .max()
            .unwrap_or(0);
        for decision in &release.decisions {
            text.push_str(&format!(
                "  {:width$}  would be {}\n",
                release.reference(&decision.tag),
                decision.action,
            ));
        }
    }
    text
}
