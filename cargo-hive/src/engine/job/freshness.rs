//! Whether an image needs its solve: its record of the last build here (stat fingerprints, as cargo's), else —
//! a checkout without records — the image already where it goes, found by its content fingerprint: in Docker's
//! history of the image (our history entry's comment, `--load`) or on the pushed index or manifest (the
//! `dev.cargo-hive.fingerprint` annotation, `--push`). And the record a solve leaves for the next build.

use std::collections::BTreeMap;
use std::time::Duration;

use hive_build::plan::PlanImage;
use sha2::{Digest, Sha256};

use super::{BuildContext, BuiltImage, Outputs, Part};
use crate::buildkit::layout::{self, ImageLayout, LocalInput};
use crate::buildkit::{
    DaemonKind, ExporterSpec, InTotoAttestation, LateFingerprint, PlatformBuild, ProvenanceMode,
    Solved,
};
use crate::engine::errors::JobError;
use crate::engine::fresh;
use crate::output::{self, Destination};
use crate::plan::Platform;

/// What the up-to-date check found.
pub(super) struct Freshness {
    /// The image as it already is, when nothing needs building.
    pub(super) fresh: Option<BuiltImage>,
    /// The content fingerprint a push records on the image (`None` when not pushing).
    pub(super) annotation: Option<String>,
}

/// The image as it already is, if it is up to date: by its record, else in Docker or the registry it goes to.
/// When it is not, each platform's solve gets its content fingerprint for the comment of our history entry in its
/// config, so the image carries it wherever it goes: every output of the same sources is the same image.
pub(super) async fn check(
    context: &BuildContext,
    planned: &PlanImage,
    outputs: &Outputs,
    parts: &mut [Part],
    fingerprint: Option<&str>,
    platforms: &[Platform],
) -> Result<Freshness, JobError> {
    let nothing = Freshness {
        fresh: None,
        annotation: None,
    };
    let Some(print) = fingerprint else {
        return Ok(nothing);
    };
    if let Some(built) = by_record(context, planned, outputs, print).await {
        return Ok(Freshness {
            fresh: Some(built),
            ..nothing
        });
    }
    if !content_checked(context, parts) {
        fingerprint_beside_the_solve(context, parts);
        return Ok(nothing);
    }
    // Reads every input file whole: the runtime moves this worker's other tasks elsewhere meanwhile.
    let Some(prints) = tokio::task::block_in_place(|| content_prints(context, parts))? else {
        return Ok(nothing);
    };
    fingerprint_known(parts, &prints);
    if let Some(built) = in_docker(context, planned, outputs, print, parts, &prints).await {
        return Ok(Freshness {
            fresh: Some(built),
            ..nothing
        });
    }
    let Some(annotation) = annotation(context, parts, &prints, outputs) else {
        return Ok(nothing);
    };
    let fresh = in_registry(context, planned, outputs, print, &annotation, platforms).await;
    Ok(Freshness {
        fresh,
        annotation: Some(annotation),
    })
}

/// What the image is made of, for its record: one platform's fingerprint as it always was, several hashed
/// together in the plan's order; attestations (the daemon's provenance, the platforms' own) are part of it. `None`
/// for a Dockerfile image, which has none.
pub(super) fn fingerprint(
    parts: &[Part],
    exporters: &[ExporterSpec],
    provenance: Option<ProvenanceMode>,
) -> Result<Option<String>, JobError> {
    let mut prints = Vec::new();
    for part in parts {
        let PlatformBuild::Layers {
            definition, config, ..
        } = &part.solve.build
        else {
            return Ok(None);
        };
        let inputs: Vec<&LocalInput> = part.inputs.iter().collect();
        let view = fresh::FileView::Stat;
        prints.push(fresh::fingerprint(
            definition, config, exporters, &inputs, view,
        )?);
        prints.extend(part.solve.attestations.iter().map(attestation_print));
    }
    if let Some(mode) = provenance {
        prints.push(format!("provenance {}", mode.as_str()));
    }
    match &prints[..] {
        [one] => Ok(Some(one.clone())),
        _ => Ok(Some(hex::encode(Sha256::digest(
            prints.join("\n").as_bytes(),
        )))),
    }
}

/// Whether the content fingerprints are needed before the solve: to look for the image in Docker or the
/// registry without a record, or for the annotation a push carries. Otherwise they are computed beside the solve.
fn content_checked(context: &BuildContext, parts: &[Part]) -> bool {
    context.destinations.contains(&Destination::Push) || docker_checkable(context, parts)
}

/// Whether Docker can tell that it has the image: a `--load`-only build of one platform without attestations (one
/// manifest) into Docker's containerd store, whose image id is the manifest digest a solve reports (a classic
/// store's is the config's).
fn docker_checkable(context: &BuildContext, parts: &[Part]) -> bool {
    checkable(context)
        && context.destinations == [Destination::Load]
        && context.buildkit.daemon.kind == DaemonKind::DockerContainerd
        && !exported_as_index(context, parts)
}

/// Each platform's content fingerprint ([`fresh::FileView::Content`]); `None` when a platform is not our layers (a
/// Dockerfile's).
fn content_prints(context: &BuildContext, parts: &[Part]) -> Result<Option<Vec<String>>, JobError> {
    let mut prints = Vec::with_capacity(parts.len());
    for part in parts {
        let PlatformBuild::Layers { config, layout, .. } = &part.solve.build else {
            return Ok(None);
        };
        prints.push(content_print(
            layout,
            config,
            &part.inputs,
            packed(context),
        )?);
    }
    Ok(Some(prints))
}

/// Whether the daemon takes our packed layers (the same files are other layer bytes when it copies them: BuildKit
/// before v0.11).
fn packed(context: &BuildContext) -> bool {
    context.buildkit.daemon.info_rpc
}

/// One platform's content fingerprint: its LLB laid out again without the shared key hint (the one part of it that
/// names the checkout), its config, its input files by content, and whether its layers are packed. No exporter is
/// part of it: the image is the same wherever it goes.
fn content_print(
    layout: &ImageLayout,
    config: &[u8],
    inputs: &[LocalInput],
    packed: bool,
) -> Result<String, JobError> {
    let placeless = layout::definition(&ImageLayout {
        shared_key_hint: String::new(),
        ..layout.clone()
    });
    let inputs: Vec<&LocalInput> = inputs.iter().collect();
    let print = fresh::fingerprint(&placeless, config, &[], &inputs, fresh::FileView::Content)?;
    let layers = if packed { "packed" } else { "copied" };
    Ok(hex::encode(Sha256::digest(format!(
        "{print}\nlayers {layers}"
    ))))
}

/// Starts each platform's content fingerprint on a blocking thread, for its config to take when the solve
/// returns the result.
fn fingerprint_beside_the_solve(context: &BuildContext, parts: &mut [Part]) {
    let packed = packed(context);
    for part in parts {
        let PlatformBuild::Layers {
            config,
            layout,
            fingerprint,
            ..
        } = &mut part.solve.build
        else {
            continue;
        };
        let (layout, config, inputs) = ((**layout).clone(), config.clone(), part.inputs.clone());
        let task =
            tokio::task::spawn_blocking(move || content_print(&layout, &config, &inputs, packed));
        *fingerprint = Some(LateFingerprint::new(async move {
            task.await
                .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()))
        }));
    }
}

/// Each platform's content fingerprint, known now, for its config to take when the solve returns the result.
fn fingerprint_known(parts: &mut [Part], prints: &[String]) {
    for (part, print) in parts.iter_mut().zip(prints) {
        if let PlatformBuild::Layers { fingerprint, .. } = &mut part.solve.build {
            *fingerprint = Some(LateFingerprint::known(print.clone()));
        }
    }
}

/// The content fingerprint a push records on the image (and a build without a record looks for in the registry):
/// the platforms' content fingerprints, their attestations, the provenance, and the pushing exporters (the pushed
/// index is theirs alone). `None` when nothing is pushed through BuildKit's image exporter.
fn annotation(
    context: &BuildContext,
    parts: &[Part],
    prints: &[String],
    outputs: &Outputs,
) -> Option<String> {
    let pushing: Vec<&ExporterSpec> = (outputs.plan.exporters.iter())
        .filter(|exporter| exporter.pushes())
        .collect();
    if pushing.is_empty() || !context.destinations.contains(&Destination::Push) {
        return None;
    }
    let mut lines = Vec::new();
    for (part, print) in parts.iter().zip(prints) {
        lines.push(format!("platform {print}"));
        lines.extend(part.solve.attestations.iter().map(attestation_print));
    }
    lines.extend(pushing.into_iter().map(fresh::exporter_line));
    if let Some(mode) = context.provenance {
        lines.push(format!("provenance {}", mode.as_str()));
    }
    Some(hex::encode(Sha256::digest(lines.join("\n"))))
}

/// Whether the exported result is an index (several platforms, or attestations) rather than one manifest.
pub(super) fn exported_as_index(context: &BuildContext, parts: &[Part]) -> bool {
    parts.len() > 1
        || context.provenance.is_some()
        || (context.attestations_kept
            && parts.iter().any(|part| !part.solve.attestations.is_empty()))
}

/// An attestation's part of the fingerprint: its predicate type, path and content.
fn attestation_print(attestation: &InTotoAttestation) -> String {
    let mut hasher = Sha256::new();
    for field in [
        attestation.predicate_type.as_bytes(),
        attestation.path.as_bytes(),
        &attestation.content,
    ] {
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field);
    }
    format!("attestation {}", hex::encode(hasher.finalize()))
}

/// Whether the stamp of outputs that can be checked (archives, Docker's store, registries) still holds.
pub(super) fn checkable(context: &BuildContext) -> bool {
    !context.no_cache
        && context.destinations.iter().all(|destination| {
            matches!(
                destination,
                Destination::OciArchive | Destination::Load | Destination::Push
            )
        })
}

/// The image as its last build left it, when nothing it is made of changed and its outputs are intact.
async fn by_record(
    context: &BuildContext,
    planned: &PlanImage,
    outputs: &Outputs,
    fingerprint: &str,
) -> Option<BuiltImage> {
    if !checkable(context) {
        return None;
    }
    let expected: Vec<fresh::Expected> = (context.destinations.iter())
        .filter_map(|destination| match destination {
            Destination::OciArchive => Some(fresh::Expected::Archive(outputs.archive.clone())),
            Destination::Load => planned
                .references
                .first()
                .cloned()
                .map(fresh::Expected::Docker),
            Destination::Push => Some(fresh::Expected::Registry(planned.references.clone())),
            Destination::Raw { .. } => None,
        })
        .collect();
    let stamp = fresh::up_to_date(
        &outputs.stamp,
        fingerprint,
        &expected,
        Some(&context.docker_socket),
        context.docker_images.as_ref(),
    )
    .await?;
    let archived =
        (stamp.outputs.iter()).any(|o| matches!(o, fresh::StampedOutput::Archive { .. }));
    Some(fresh_built(planned, outputs, stamp, archived))
}

/// A build without a record that holds, that Docker can answer for ([`docker_checkable`]): the image is up to
/// date when Docker's image under its name carries this platform's content fingerprint in its newest history entry
/// (asked while cargo built). Then a record is saved for the next build, as after a solve.
async fn in_docker(
    context: &BuildContext,
    planned: &PlanImage,
    outputs: &Outputs,
    fingerprint: &str,
    parts: &[Part],
    prints: &[String],
) -> Option<BuiltImage> {
    let ([part], [print]) = (parts, prints) else {
        return None;
    };
    if !docker_checkable(context, parts) {
        return None;
    }
    let reference = planned.references.first()?;
    let image = fresh::DockerImages::get(
        context.docker_images.as_ref(),
        &context.docker_socket,
        reference,
    )
    .await?;
    if image.comment != layout::fingerprint_comment(print) {
        return None;
    }
    let stamp = fresh::Stamp {
        fingerprint: fingerprint.to_owned(),
        digest: image.id.clone(),
        config_digest: None,
        platforms: BTreeMap::from([(part.solve.platform.to_string(), image.id.clone())]),
        outputs: vec![fresh::StampedOutput::Docker {
            reference: reference.clone(),
            id: image.id,
        }],
    };
    fresh::save(&outputs.stamp, &stamp);
    Some(fresh_built(planned, outputs, stamp, false))
}

/// A push-only build without a record that holds: the image is up to date when every reference names the same
/// index (or manifest) in the registry, pushed with this content fingerprint and with the platforms built (one GET
/// each, at once). Then a record is saved for the next build, as after a solve.
async fn in_registry(
    context: &BuildContext,
    planned: &PlanImage,
    outputs: &Outputs,
    fingerprint: &str,
    annotation: &str,
    platforms: &[Platform],
) -> Option<BuiltImage> {
    if !checkable(context) || context.destinations != [Destination::Push] {
        return None;
    }
    let only = platforms.first()?.to_string();
    let reads = (planned.references.iter()).map(|reference| output::pushed_image(reference, &only));
    let pushed: Vec<output::PushedImage> = (futures::future::join_all(reads).await)
        .into_iter()
        .collect::<Result<_, _>>()
        .ok()?;
    let first = pushed.first()?;
    let mut built: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    built.sort();
    let held: Vec<&str> = (first.platforms.iter())
        .map(|manifest| manifest.platform.as_str())
        .collect();
    let same = (pushed.iter()).all(|image| {
        image.digest == first.digest && image.fingerprint.as_deref() == Some(annotation)
    });
    if !same || held != built {
        return None;
    }
    let manifests: BTreeMap<String, String> = (first.platforms.iter())
        .map(|manifest| (manifest.platform.clone(), manifest.digest.clone()))
        .collect();
    let stamp = fresh::Stamp {
        fingerprint: fingerprint.to_owned(),
        digest: first.digest.clone(),
        config_digest: first.config_digest.clone(),
        platforms: manifests,
        outputs: vec![fresh::StampedOutput::Registry {
            references: planned.references.clone(),
            digest: first.digest.clone(),
        }],
    };
    fresh::save(&outputs.stamp, &stamp);
    Some(fresh_built(planned, outputs, stamp, false))
}

/// What a fresh image reports: what its stamp says, nothing sent.
fn fresh_built(
    planned: &PlanImage,
    outputs: &Outputs,
    stamp: fresh::Stamp,
    archived: bool,
) -> BuiltImage {
    BuiltImage {
        name: planned.name.clone(),
        references: planned.references.clone(),
        platforms: stamp.platforms,
        digest: stamp.digest,
        config_digest: stamp.config_digest,
        output: format!("{} (fresh)", outputs.description),
        archive: outputs.plan.file.clone().filter(|_| archived),
        bytes_sent: 0,
        duration: Duration::ZERO,
        sbom: BTreeMap::new(),
    }
}

/// Records what this build left behind, for the next build's up-to-date check; only when every output can be
/// recorded.
pub(super) async fn save_stamp(
    context: &BuildContext,
    planned: &PlanImage,
    outputs: &Outputs,
    fingerprint: String,
    solved: &Solved,
    platforms: &BTreeMap<String, String>,
) {
    if !checkable(context) {
        return;
    }
    let mut recorded = Vec::new();
    for destination in &context.destinations {
        let output = match destination {
            Destination::OciArchive => solved
                .file_written
                .as_deref()
                .and_then(fresh::archive_record),
            Destination::Load => match planned.references.first() {
                Some(reference) => fresh::docker_image(&context.docker_socket, reference)
                    .await
                    .map(|image| fresh::StampedOutput::Docker {
                        reference: reference.clone(),
                        id: image.id,
                    }),
                None => None,
            },
            // What the registry holds is only known for a digest BuildKit's push named.
            Destination::Push => (!solved.digest.is_empty()
                && solved.digest.starts_with("sha256:"))
            .then(|| fresh::StampedOutput::Registry {
                references: planned.references.clone(),
                digest: solved.digest.clone(),
            }),
            Destination::Raw { .. } => None,
        };
        recorded.extend(output);
    }
    if recorded.len() == context.destinations.len() {
        let stamp = fresh::Stamp {
            fingerprint,
            digest: solved.digest.clone(),
            config_digest: solved.config_digest.clone(),
            platforms: platforms.clone(),
            outputs: recorded,
        };
        fresh::save(&outputs.stamp, &stamp);
    }
}
