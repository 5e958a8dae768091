//! The SBOMs of a build: which images want one (`--sbom`, `sbom = true`, every image of a release), cargo's resolve
//! loaded once for their triples, and per image and platform a document written under `target/hive/` and attached
//! as an in-toto attestation when the daemon keeps attestations.

use std::path::{Path, PathBuf};

use hive_build::plan::PlanImage;

use crate::buildkit::InTotoAttestation;
use crate::buildkit::layout::PinnedBase;
use crate::cargo::Cargo;
use crate::plan::{PlatformFacts, Resolved};
use crate::sbom::{self, BaseImage, DependencyGraphs, SbomError, SbomSubject};

/// Where the attestation's file sits in its in-toto layer.
const ATTESTATION_PATH: &str = "/sbom.spdx.json";

/// Which images get an SBOM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SbomAsk {
    /// `--sbom`: every image, asked for explicitly.
    pub(crate) flag: bool,
    /// Every image, on by default (a release): a daemon that cannot keep attestations gets a warning, not an error.
    pub(crate) by_default: bool,
}

impl SbomAsk {
    /// Whether `image` gets an SBOM.
    pub(crate) fn wants(self, image: &PlanImage) -> bool {
        self.flag || self.by_default || image.sbom
    }

    /// Whether an SBOM was asked for explicitly (`--sbom`, or `sbom = true` on a selected image).
    pub(crate) fn explicit(self, resolved: &Resolved) -> bool {
        self.flag || selected(resolved).any(|image| image.sbom)
    }

    /// Whether any selected image gets one.
    pub(crate) fn any(self, resolved: &Resolved) -> bool {
        selected(resolved).any(|image| self.wants(image))
    }
}

fn selected(resolved: &Resolved) -> impl Iterator<Item = &PlanImage> {
    resolved.plan.images.iter().filter(|image| image.selected)
}

/// The SBOM maker of one build.
#[derive(Debug)]
pub(crate) struct Sboms {
    ask: SbomAsk,
    graphs: DependencyGraphs,
    target_dir: PathBuf,
    epoch: i64,
}

/// One platform's SBOM: the file written and the attestation that carries it.
#[derive(Debug, Clone)]
pub(crate) struct PlatformSbom {
    /// `target/hive/<image>/<os>-<arch>.spdx.json`.
    pub(crate) path: PathBuf,
    /// The document as an in-toto attestation.
    pub(crate) attestation: InTotoAttestation,
}

impl Sboms {
    /// Loads cargo's resolve for the triples of the images that want an SBOM; `None` when none does.
    pub(crate) fn load(
        ask: SbomAsk,
        cargo: &Cargo,
        resolved: &Resolved,
        cwd: &Path,
        target_dir: &Path,
        epoch: i64,
    ) -> Result<Option<Sboms>, SbomError> {
        let mut triples: Vec<String> = selected(resolved)
            .filter(|image| ask.wants(image))
            .flat_map(|image| resolved.facts(&image.name).platforms.iter())
            .map(|on| on.triple.clone())
            .collect();
        if triples.is_empty() {
            return Ok(None);
        }
        triples.sort();
        triples.dedup();
        Ok(Some(Sboms {
            ask,
            graphs: DependencyGraphs::load(cargo, &triples, cwd)?,
            target_dir: target_dir.to_path_buf(),
            epoch,
        }))
    }

    /// The SBOM of `image` on one platform, written to its file; `None` when the image wants none.
    pub(crate) fn make(
        &self,
        image: &PlanImage,
        on: &PlatformFacts,
        base: Option<&PinnedBase>,
    ) -> Result<Option<PlatformSbom>, SbomError> {
        if !self.ask.wants(image) {
            return Ok(None);
        }
        let subject = SbomSubject {
            image: &image.name,
            reference: image.references.first().map_or("", String::as_str),
            package: &image.package.name,
            manifest_path: &image.package.manifest_path,
            binary: &image.binary.target,
            platform: &on.platform,
            triple: &on.triple,
            base: base.map(|base| BaseImage {
                reference: &base.reference,
                digest: &base.digest,
            }),
            epoch: self.epoch,
        };
        let content = self.graphs.document(&subject)?;
        let path = sbom::sbom_path(&self.target_dir, &image.name, &on.platform);
        sbom::write_document(&path, &content)?;
        Ok(Some(PlatformSbom {
            path,
            attestation: InTotoAttestation {
                predicate_type: sbom::SPDX_PREDICATE_TYPE.to_owned(),
                path: ATTESTATION_PATH.to_owned(),
                content,
            },
        }))
    }
}
