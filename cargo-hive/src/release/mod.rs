//! What `cargo hive release` decides before it builds: the tree is clean, which tags move, and the record it leaves.

pub(crate) mod aliases;
pub(crate) mod tags;
pub(crate) mod tree;

/// Why a release could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReleaseError {
    /// The working tree has uncommitted changes (or git could not say).
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    /// A package's version is not semver (cargo requires it, so this is a build script's or a tool's doing).
    #[error("image `{image}`: its package's version `{version}` is not a semantic version")]
    Version {
        /// The image.
        image: String,
        /// The version as written.
        version: String,
        /// Why it does not parse.
        #[source]
        source: semver::Error,
    },
    /// The registry's tag list could not be read, so no alias tag can be moved safely.
    #[error("could not list the tags of {repository} (needed to move alias tags only forward)")]
    Tags {
        /// The repository.
        repository: String,
        /// Why.
        #[source]
        source: Box<crate::output::RegistryError>,
    },
}
