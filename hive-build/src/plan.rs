//! The JSON of `cargo hive plan --format json`: every image `cargo hive build` would produce, fully resolved, with
//! where each value came from.
//!
//! Stability: fields may be added in a minor release (readers must ignore unknown fields); removing or changing the
//! meaning of a field bumps [`FORMAT_VERSION`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::{Compression, Mode, Network, Port, SecretSource, Sharing};

/// The version of this format, the `format_version` of every [`Plan`].
pub const FORMAT_VERSION: u32 = 1;

/// The resolved plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Always [`FORMAT_VERSION`] for this crate's version of the format.
    pub format_version: u32,
    /// The workspace root (absolute; `[workspace]` when redacted with `HIVE_REDACT=1`).
    pub workspace_root: String,
    /// The cargo profile the binaries are built with (`dev`, `release`, …).
    pub profile: String,
    /// The images, sorted by name.
    pub images: Vec<PlanImage>,
    /// The image graph: one edge per image built on another image of the workspace (`base = "hive:…"`, or a
    /// Dockerfile's `FROM hive-<name>`), sorted.
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// An edge of the image graph: `to` is built on `from`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    /// The base image's name.
    pub from: String,
    /// The name of the image built on it.
    pub to: String,
}

/// What makes an image a variant of another (`api@debug` of `api`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// The image it is a variant of; the variant shares its repository unless it sets `repository`.
    pub image: String,
    /// The variant's name, after the `@`.
    pub name: String,
    /// What was appended to every rendered tag (`tag-suffix`, default `-<variant>`); `None` when the variant sets
    /// `tags` without `tag-suffix`, which are then used as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_suffix: Option<String>,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanImage {
    /// The image's name (the key of its table, or the name a build script gave it).
    pub name: String,
    /// The package the image belongs to.
    pub package: PackageInfo,
    /// Where the image was declared.
    pub declared_in: Origin,
    /// Set when the image is a variant of another (`<image>@<variant>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,
    /// The binary packaged into the image.
    pub binary: Binary,
    /// The repository (registry host, path), without tag.
    pub repository: String,
    /// The rendered tags.
    pub tags: Vec<String>,
    /// `repository:tag` for every tag.
    pub references: Vec<String>,
    /// Whether `cargo hive release` also tags `<major>.<minor>` and `<major>` of the package version, moving them
    /// only forward (`aliases`; origin under `aliases`).
    #[serde(default)]
    pub aliases: bool,
    /// Target platforms, `os/arch[/variant]`.
    pub platforms: Vec<String>,
    /// What the image starts from.
    pub base: Base,
    /// Extra files copied into the image.
    pub files: Vec<PlanFile>,
    /// The image config.
    pub config: ImageConfig,
    /// Whether each platform's image carries an SPDX SBOM made from Cargo's dependency graph (`sbom`; origin
    /// under `sbom`).
    #[serde(default)]
    pub sbom: bool,
    /// How its layers are compressed (`compression`; origin under `compression`).
    #[serde(default)]
    pub compression: Compression,
    /// The compressor's level when one is set (`compression-level`); unset, the compressor's default
    /// ([`Compression::default_level`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u32>,
    /// The build secrets its RUN steps may mount, by id: where each value is read from when the build starts (an
    /// environment variable's name, or a file's path made absolute but `~/` kept), never the value (`secrets`;
    /// origins under `secrets.ID`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Where each value came from, keyed by field name (`base`, `tags`, …) and, for maps, `env.NAME`,
    /// `labels.KEY`, `annotations.KEY`.
    pub origins: BTreeMap<String, Origin>,
    /// Commands run on the base, in order, before the binary and files are added (`run`; origins under
    /// `run[<index>]`). The same on every platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<PlanRunStep>,
    /// Set for a Dockerfile image (`dockerfile`): built from its Dockerfile, whose `FROM` lines are its base
    /// (`base` is then [`Base::Dockerfile`], `run` and `files` are empty, and `config` holds only labels and
    /// annotations: the rest comes from the Dockerfile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<PlanDockerfile>,
    /// Whether the image was selected itself, rather than pulled in as the `hive:` base of a selected image.
    pub selected: bool,
    /// Each platform's Rust target and what the image is made of there, in `platforms` order. A build script runs
    /// once per target triple, so these may differ between platforms; `base`, `files`, `config` and `origins`
    /// above are those of the first platform.
    #[serde(default)]
    pub per_platform: Vec<PlatformPlan>,
}

/// One platform of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformPlan {
    /// The platform, `os/arch[/variant]`.
    pub platform: String,
    /// The Rust target triple its binary is built for.
    pub target: String,
    /// What the image starts from on this platform.
    pub base: Base,
    /// Extra files copied into the image.
    pub files: Vec<PlanFile>,
    /// The image config on this platform.
    pub config: ImageConfig,
    /// Where each value came from (`target`, `base`, …), as in [`PlanImage::origins`].
    pub origins: BTreeMap<String, Origin>,
}

/// One command run on the base, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRunStep {
    /// The argument vector (`["/bin/sh", "-c", "…"]` for the shell form).
    pub args: Vec<String>,
    /// The step's own environment variables (the base's are added at build time).
    pub env: BTreeMap<String, String>,
    /// Working directory, when the step sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// User, when the step sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The network it sees.
    pub network: Network,
    /// Its cache mounts, in the order written.
    pub cache: Vec<PlanCacheMount>,
    /// The ids of the secrets mounted at `/run/secrets/<id>`, sorted.
    pub secrets: Vec<String>,
    /// Secrets exposed as environment variables: variable name → secret id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, String>,
}

/// How a Dockerfile image is built, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDockerfile {
    /// The Dockerfile, an absolute path (under `[workspace]` when redacted; origin under `dockerfile`, and
    /// the image's `base` has the same origin).
    pub dockerfile: String,
    /// The build context, an absolute directory (origin under `context`; the package directory by default).
    pub context: String,
    /// The stage built (`target`), when not the last one (origin under `stage`: `target` is the Rust target's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Build arguments, merged across layers (origins under `build-args.KEY`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// The images of the workspace its `FROM hive-<name>` lines (and `COPY --from=hive-<name>`) name, sorted:
    /// each is built first and given to the Dockerfile as the named context `hive-<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hive_images: Vec<String>,
}

/// A cache mount of a step, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCacheMount {
    /// Where it is mounted.
    pub target: String,
    /// The cache's name on the daemon.
    pub id: String,
    /// How concurrent builds share it.
    pub sharing: Sharing,
}

/// The package an image belongs to, with the fields OCI labels are derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Its `Cargo.toml`, relative to the workspace root.
    pub manifest_path: String,
    /// `package.description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `package.license`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// `package.repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `package.homepage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
}

/// The binary target packaged into an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binary {
    /// The `[[bin]]` target name (`cargo build --bin <target>`).
    pub target: String,
    /// Its absolute path in the image.
    pub path: String,
}

/// What an image starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Base {
    /// An empty file system.
    Scratch,
    /// A registry image, fully qualified (`docker.io/library/debian:12-slim`).
    Image {
        /// The normalized reference.
        reference: String,
    },
    /// Another image of this workspace, built first.
    Hive {
        /// That image's name.
        image: String,
    },
    /// The `FROM` lines of the image's Dockerfile (see [`PlanImage::dockerfile`]).
    Dockerfile,
}

/// A file or directory copied into an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    /// Absolute path on this machine (under `[workspace]` when redacted).
    pub source: String,
    /// Absolute path in the image.
    pub destination: String,
    /// Permission bits for every copied file, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// The OCI image config of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Entrypoint, exec form.
    pub entrypoint: Vec<String>,
    /// Default arguments.
    pub cmd: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// User.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports.
    pub exposed_ports: Vec<Port>,
    /// Config labels, including the `org.opencontainers.image.*` ones derived from the package.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// `cargo hive`'s own default.
    Default,
    /// A `Cargo.toml` table.
    Manifest {
        /// The manifest, relative to the workspace root.
        file: String,
        /// 1-based line of the value.
        line: usize,
        /// 1-based column of the value.
        column: usize,
        /// The table, e.g. `package.metadata.hive.images.api`.
        table: String,
    },
    /// A package's build script, through `hive-build`.
    BuildScript {
        /// The package whose build script it was.
        package: String,
    },
    /// A field of the package's `[package]` table (for the derived OCI labels).
    Package {
        /// The field, e.g. `description`.
        field: String,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Manifest { file, line, .. } => write!(f, "{file}:{line}"),
            Origin::BuildScript { package } => write!(f, "build.rs of {package}"),
            Origin::Package { field } => write!(f, "package.{field}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_base_and_plan_read_back() {
        assert_eq!(
            serde_json::to_string(&Base::Dockerfile).unwrap(),
            r#"{"kind":"dockerfile"}"#
        );
        let dockerfile = PlanDockerfile {
            dockerfile: "/w/Dockerfile".into(),
            context: "/w".into(),
            target: None,
            build_args: BTreeMap::new(),
            hive_images: Vec::new(),
        };
        let json = serde_json::to_string(&dockerfile).unwrap();
        // Unset parts are left out, so plans without them read as before.
        assert_eq!(json, r#"{"dockerfile":"/w/Dockerfile","context":"/w"}"#);
        assert_eq!(
            serde_json::from_str::<PlanDockerfile>(&json).unwrap(),
            dockerfile
        );
    }
}
