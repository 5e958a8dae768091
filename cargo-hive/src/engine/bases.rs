//! One short gateway build before the images: every distinct registry base is resolved once (its digest for the
//! platform and its config), and every distinct (base, loader) pair is checked once, instead of once per image.
//! Twenty images on one base cost one resolve.

use std::collections::BTreeSet;

use crate::buildkit::{BaseError, BaseFacts, BaseQuery, Buildkit, SolveError};
use crate::config::{ConfigError, Diagnostics};
use crate::errors::HiveError;
use crate::plan::Resolved;

/// What to find out about one base.
pub(crate) type Need = BaseQuery;

/// Resolves and checks everything in `needs` in one gateway build.
pub(crate) async fn prepare(
    buildkit: &Buildkit,
    needs: BTreeSet<Need>,
) -> Result<BaseFacts, SolveError> {
    buildkit.inspect_bases(needs).await
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
