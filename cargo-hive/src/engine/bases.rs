//! One short gateway build before the images: every distinct registry base is resolved once (its digest for the
//! platform and its config), and every distinct (base, loader) pair is checked once, instead of once per image.
//! Twenty images on one base cost one resolve.

use std::collections::BTreeSet;

use crate::buildkit::{BaseFacts, BaseQuery, Buildkit, SolveError};

/// What to find out about one base.
pub(crate) type Need = BaseQuery;

/// Resolves and checks everything in `needs` in one gateway build.
pub(crate) async fn prepare(
    buildkit: &Buildkit,
    needs: BTreeSet<Need>,
) -> Result<BaseFacts, SolveError> {
    buildkit.inspect_bases(needs).await
}
