//! `cargo hive release`: every selected image, every platform, pushed under its tags, alias tags moved only
//! forward, with SBOMs and provenance; `target/hive/release.json` says what happened to every reference.

use std::collections::BTreeMap;
use std::io::Write;

use hive_build::metadata::{FORMAT_VERSION, Metadata, TagOutcome};

use super::{BuildRequest, Built, Reporting, build_computed, compute, record};
use crate::errors::{HiveError, exit_codes};
use crate::release::aliases::TagAction;
use crate::release::tags::{self, ImageRelease};
use crate::release::tree;
use crate::term::Term;

/// What `cargo hive release` is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseRequest {
    /// The build: pushing, with the release profile unless `--profile` said otherwise.
    pub(crate) build: BuildRequest,
    /// `--allow-dirty`.
    pub(crate) allow_dirty: bool,
    /// `--dry-run`: say what would happen to every reference; build and write nothing.
    pub(crate) dry_run: bool,
}

/// Runs `cargo hive release`.
pub(crate) async fn run(request: &ReleaseRequest, term: &Term) -> Result<i32, HiveError> {
    let mut reporting = Reporting {
        renderer: request.build.renderer,
        redact: request.build.redact,
        term,
        started: None,
    };
    let result = release(request, &mut reporting, term).await;
    reporting.end(&result).await;
    result
}

async fn release(
    request: &ReleaseRequest,
    reporting: &mut Reporting<'_>,
    term: &Term,
) -> Result<i32, HiveError> {
    let mut computed = compute(&request.build)?;
    let workspace_root = std::path::PathBuf::from(&computed.resolved.plan.workspace_root);
    let state = tree::tree_state(&workspace_root, &computed.target_dir)
        .map_err(crate::release::ReleaseError::from)?;
    if let tree::TreeState::Dirty(paths) = state
        && !request.allow_dirty
    {
        let dirty = tree::TreeError::Dirty(paths);
        if !request.dry_run {
            return Err(crate::release::ReleaseError::from(dirty).into());
        }
        // A dry run says what a release would refuse, and still shows the references.
        term.warning(&dirty.to_string());
    }
    let releases = tags::decide(&computed.resolved.plan).await?;
    if request.dry_run {
        let mut out = std::io::stdout().lock();
        write!(out, "{}", tags::dry_run_text(&releases)).map_err(HiveError::Output)?;
        return Ok(exit_codes::SUCCESS);
    }
    // Each image is pushed under the references its decisions write; one with none left is not built.
    for image in computed.resolved.plan.images.iter_mut() {
        if let Some(release) = releases.iter().find(|release| release.image == image.name) {
            image.references = release.pushed_references();
            if image.references.is_empty() {
                image.selected = false;
            }
        }
    }
    let previous = previous_indexes(&releases).await;
    let mut built = build_computed(&request.build, &computed, None, reporting).await?;
    keep_previous_indexes(&releases, &previous, &mut built, &computed.target_dir).await;
    let record = release_record(&releases, &built);
    let target_dir = &computed.target_dir;
    let release_json = target_dir.join("hive").join("release.json");
    // target/hive/ exists after any build; a release whose images were all left may be the first.
    std::fs::create_dir_all(target_dir.join("hive")).map_err(|source| {
        crate::engine::MetadataError {
            path: release_json.clone(),
            source,
        }
    })?;
    record::write(&release_json, &record)?;
    if let Some(path) = &request.build.metadata_file {
        record::write(path, &record)?;
    }
    say_what_was_pushed(term, &record);
    built.into_result()
}

/// What each image's version tag names in the registry now, where it exists (a re-release of a version).
async fn previous_indexes(releases: &[ImageRelease]) -> BTreeMap<String, String> {
    let lookups = releases.iter().filter_map(|release| {
        let version_tag = release.decisions.first()?;
        matches!(version_tag.action, TagAction::Move).then(|| async move {
            let digest = crate::output::tag_digest(&release.reference(&version_tag.tag)).await;
            (release.image.clone(), digest.ok())
        })
    });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .filter_map(|(image, digest)| Some((image, digest?)))
        .collect()
}

/// A re-release whose platform images are exactly those the version tag names already (the same commit, built
/// again): its tags go back to that index, so the release's digest does not change with each build's provenance
/// (which BuildKit stamps with the build's id and times). Anything that cannot be checked keeps the new index.
async fn keep_previous_indexes(
    releases: &[ImageRelease],
    previous: &BTreeMap<String, String>,
    built: &mut Built,
    target_dir: &std::path::Path,
) {
    for image in built.images.iter_mut() {
        let (Some(old), Some(release)) = (
            previous.get(&image.name),
            releases.iter().find(|release| release.image == image.name),
        ) else {
            continue;
        };
        if *old == image.digest {
            continue;
        }
        let Some(first) = image.references.first() else {
            continue;
        };
        // The same images with the same kinds of attestations (provenance on or off alike): one pull of each index.
        let platform = image.platforms.keys().next().cloned().unwrap_or_default();
        let summaries = futures::future::join(
            crate::output::index_summary(first, old, &platform),
            crate::output::index_summary(first, &image.digest, &platform),
        )
        .await;
        if !matches!(summaries, (Ok(old), Ok(new)) if old == new) {
            continue;
        }
        if crate::output::retag(&release.pushed_references(), old)
            .await
            .is_ok()
        {
            image.digest = old.clone();
            super::fresh::repoint(&super::fresh::record_path(target_dir, &image.name), old);
        }
    }
}

/// The release's record: per image what was built, and what happened to each tag.
fn release_record(releases: &[ImageRelease], built: &Built) -> Metadata {
    let mut images = BTreeMap::new();
    for release in releases {
        let image = built
            .images
            .iter()
            .find(|image| image.name == release.image);
        let failure = built
            .failures
            .iter()
            .find(|(name, _)| *name == release.image);
        let mut metadata = image.map(record::image_metadata).unwrap_or_default();
        metadata.version = Some(release.version.to_string());
        metadata.error = failure.map(|(_, error)| error.clone());
        metadata.tags = release
            .decisions
            .iter()
            .map(|decision| {
                let reason = match &decision.action {
                    TagAction::Leave(reason) => Some(reason.to_string()),
                    TagAction::Create | TagAction::Move => None,
                };
                TagOutcome {
                    reference: release.reference(&decision.tag),
                    action: decision.action.verb().to_owned(),
                    reason,
                    pushed: image.is_some() && decision.pushes(),
                }
            })
            .collect();
        images.insert(release.image.clone(), metadata);
    }
    Metadata {
        format_version: FORMAT_VERSION,
        images,
    }
}

/// One line per image: the references pushed, and for a failed image the ones that were not.
fn say_what_was_pushed(term: &Term, record: &Metadata) {
    for (name, image) in &record.images {
        let (pushed, not): (Vec<&TagOutcome>, Vec<&TagOutcome>) = image
            .tags
            .iter()
            .filter(|tag| tag.action != "left")
            .partition(|tag| tag.pushed);
        let list = |tags: &[&TagOutcome]| {
            tags.iter()
                .map(|tag| tag.reference.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !pushed.is_empty() {
            term.status("Released", &format!("{name}: {}", list(&pushed)));
        }
        if !not.is_empty() {
            term.warning(&format!("{name}: not pushed: {}", list(&not)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::job::BuiltImage;
    use crate::release::aliases::{LeaveReason, TagDecision};

    fn release_of(image: &str, tags: &[(&str, TagAction)]) -> ImageRelease {
        ImageRelease {
            image: image.to_owned(),
            version: semver::Version::new(1, 3, 9),
            repository: format!("localhost:5000/acme/{image}"),
            decisions: tags
                .iter()
                .map(|(tag, action)| TagDecision {
                    tag: (*tag).to_owned(),
                    action: action.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_record_says_what_was_pushed_and_what_was_not() {
        let higher = TagAction::Leave(LeaveReason::HigherRelease {
            tag: "1.4.2".to_owned(),
        });
        let releases = [
            release_of(
                "api",
                &[
                    ("1.3.9", TagAction::Create),
                    ("1.3", TagAction::Move),
                    ("latest", higher.clone()),
                ],
            ),
            release_of(
                "worker",
                &[("1.3.9", TagAction::Create), ("latest", higher)],
            ),
        ];
        let built = Built {
            images: vec![BuiltImage {
                name: "api".to_owned(),
                references: releases[0].pushed_references(),
                digest: "sha256:aa".to_owned(),
                platforms: BTreeMap::from([("linux/amd64".to_owned(), "sha256:bb".to_owned())]),
                config_digest: None,
                sbom: BTreeMap::new(),
                output: "registry".to_owned(),
                archive: None,
                bytes_sent: 0,
                duration: std::time::Duration::ZERO,
            }],
            failures: vec![("worker".to_owned(), "the push failed".to_owned())],
        };
        let record = release_record(&releases, &built);
        let api = &record.images["api"];
        assert_eq!(api.digest, "sha256:aa");
        assert_eq!(api.version.as_deref(), Some("1.3.9"));
        let outcomes: Vec<(&str, &str, bool)> = (api.tags.iter())
            .map(|tag| (tag.reference.as_str(), tag.action.as_str(), tag.pushed))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("localhost:5000/acme/api:1.3.9", "created", true),
                ("localhost:5000/acme/api:1.3", "moved", true),
                ("localhost:5000/acme/api:latest", "left", false),
            ]
        );
        assert_eq!(
            api.tags[2].reason.as_deref(),
            Some("1.4.2 is a higher release")
        );
        let worker = &record.images["worker"];
        assert_eq!(worker.error.as_deref(), Some("the push failed"));
        assert!(worker.tags.iter().all(|tag| !tag.pushed));
        assert_eq!(worker.digest, "");
    }
}
