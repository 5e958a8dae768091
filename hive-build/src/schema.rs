//! The image definition: the keys of `[package.metadata.hive.images.<name>]`, of the defaults tables, and of what a
//! build script declares. Every field is optional because a definition is one layer of several (workspace → package →
//! image → build.rs) that `cargo hive` merges: maps merge key by key, lists and single values replace.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One layer of an image definition. In `Cargo.toml` the same keys are spelled the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDef {
    /// The binary target to package (default: the package's only `[[bin]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<String>,
    /// `scratch`, an image reference (`debian:12-slim`, `gcr.io/distroless/cc-debian12@sha256:…`) or
    /// `hive:<image>` for another image of this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The image's entrypoint, exec form (default: `["/usr/local/bin/<bin>"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Environment variables; merged key by key across layers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (an absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// User (and group) the entrypoint runs as: `name`, `uid`, `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports the image documents as listening: `8080` (TCP) or `"53/udp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Vec<Port>>,
    /// Image config labels; merged key by key across layers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations; merged key by key across layers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra files or directories from the package, copied into the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileSpec>>,
    /// Tag templates (default: `["{version}", "latest"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Target platforms, `os/arch[/variant]` (default: `["linux/amd64"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
    /// The Rust target triple of a platform, overriding the default (`linux/arm64` →
    /// `aarch64-unknown-linux-gnu`); merged key by key across layers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, String>,
    /// The full repository name, overriding `<registry>/<image name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Whether `cargo hive release` also tags `<major>.<minor>` and `<major>` (moved only forward; none for a
    /// pre-release). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<bool>,
    /// Whether every platform's image carries an SPDX SBOM made from Cargo's dependency graph. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<bool>,
    /// Commands run on the base, in order, before the binary and files are added (each its own layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Vec<RunStep>>,
    /// Build secrets the image's RUN steps may mount, by id; merged id by id across layers. Only where each value
    /// comes from is written here, never the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSource>,
    /// A Dockerfile, relative to the package directory: the image is built from it (its `FROM` lines are the
    /// base) instead of from `base`, `run` and `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The Dockerfile's build context, a directory relative to the package directory (default: the package
    /// directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The Dockerfile stage to build (default: the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The Dockerfile's build arguments (`ARG`); merged key by key across layers.
    #[serde(
        default,
        rename = "build-args",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub build_args: BTreeMap<String, String>,
    /// How the image's layers are compressed: `gzip` (the default), `zstd` or `uncompressed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// The compressor's level: gzip 0 to 9 (default 6), zstd 1 to 22 (default 3).
    #[serde(
        default,
        rename = "compression-level",
        skip_serializing_if = "Option::is_none"
    )]
    pub compression_level: Option<u32>,
}

/// One command run on the base: a string is the shell form (`/bin/sh -c`), a table says more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RunStepRepr")]
pub struct RunStep {
    /// What to run.
    pub command: RunCommand,
    /// Environment variables for this command only, over the base's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (an absolute path; default: the base's, else `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// User the command runs as (default: the base's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The network the command sees (default: the daemon's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Cache mounts: directories kept by the daemon between builds, never part of the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<CacheMount>,
    /// Build secrets mounted at `/run/secrets/<id>` while the command runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Build secrets exposed as environment variables while the command runs: variable name → secret id.
    #[serde(
        default,
        rename = "secret-env",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub secret_env: BTreeMap<String, String>,
}

impl RunStep {
    /// A shell-form step with nothing else set.
    pub fn shell(command: impl Into<String>) -> RunStep {
        RunStep {
            command: RunCommand::Shell(command.into()),
            env: BTreeMap::new(),
            workdir: None,
            user: None,
            network: None,
            cache: Vec::new(),
            secrets: Vec::new(),
            secret_env: BTreeMap::new(),
        }
    }
}

/// How a step is read: a plain string or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum RunStepRepr {
    Shell(String),
    Table(RunStepTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunStepTable {
    command: RunCommand,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    network: Option<Network>,
    #[serde(default)]
    cache: Vec<CacheMount>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default, rename = "secret-env")]
    secret_env: BTreeMap<String, String>,
}

impl From<RunStepRepr> for RunStep {
    fn from(repr: RunStepRepr) -> RunStep {
        match repr {
            RunStepRepr::Shell(command) => RunStep::shell(command),
            RunStepRepr::Table(table) => RunStep {
                command: table.command,
                env: table.env,
                workdir: table.workdir,
                user: table.user,
                network: table.network,
                cache: table.cache,
                secrets: table.secrets,
                secret_env: table.secret_env,
            },
        }
    }
}

/// A step's command: a string for the shell form, a list for the exec form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunCommand {
    /// Run by `/bin/sh -c`.
    Shell(String),
    /// Run as it is, argv[0] looked up in the step's `PATH`.
    Exec(Vec<String>),
}

impl RunCommand {
    /// The argument vector the container runs.
    pub fn args(&self) -> Vec<String> {
        match self {
            RunCommand::Shell(command) => vec!["/bin/sh".into(), "-c".into(), command.clone()],
            RunCommand::Exec(args) => args.clone(),
        }
    }
}

/// The network a step sees.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The daemon's default network.
    #[default]
    Default,
    /// No network at all.
    None,
}

impl Network {
    /// The names a manifest may use.
    pub const NAMES: &[&str] = &["default", "none"];

    /// Reads a name of [`Network::NAMES`].
    pub fn parse(name: &str) -> Option<Network> {
        match name {
            "default" => Some(Network::Default),
            "none" => Some(Network::None),
            _ => None,
        }
    }
}

/// A cache mount of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheMount {
    /// Where it is mounted (an absolute path).
    pub target: String,
    /// The cache's name on the daemon (default: derived from the workspace root and `target`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How concurrent builds share it (default: shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
}

/// How concurrent builds share a cache mount (BuildKit's modes).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Every build uses it at once.
    #[default]
    Shared,
    /// A build that finds it in use gets a new one.
    Private,
    /// A build waits until the one using it is done.
    Locked,
}

impl Sharing {
    /// The names a manifest may use.
    pub const NAMES: &[&str] = &["shared", "private", "locked"];

    /// Reads a name of [`Sharing::NAMES`].
    pub fn parse(name: &str) -> Option<Sharing> {
        match name {
            "shared" => Some(Sharing::Shared),
            "private" => Some(Sharing::Private),
            "locked" => Some(Sharing::Locked),
            _ => None,
        }
    }
}

/// How an image's layers are compressed (BuildKit's exporter `compression` values, and the media type of each
/// layer: `tar+gzip`, `tar+zstd`, `tar`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip: what every registry and runtime reads.
    #[default]
    Gzip,
    /// zstd: smaller and faster to unpack; needs containerd 1.5+ or Docker 23+ to run, BuildKit 0.10+ to build.
    Zstd,
    /// Plain tar: no compression work at all, the most bytes.
    Uncompressed,
}

impl Compression {
    /// The names a manifest (and `--compression`) may use.
    pub const NAMES: &[&str] = &["gzip", "zstd", "uncompressed"];

    /// Reads a name of [`Compression::NAMES`].
    pub fn parse(name: &str) -> Option<Compression> {
        match name {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "uncompressed" => Some(Compression::Uncompressed),
            _ => None,
        }
    }

    /// Its name, as written in a manifest and in BuildKit's `compression` attribute.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Uncompressed => "uncompressed",
        }
    }

    /// The levels it takes (`None`: it takes none): gzip's 0 to 9, zstd's 1 to 22.
    pub fn levels(self) -> Option<std::ops::RangeInclusive<u32>> {
        match self {
            Compression::Gzip => Some(0..=9),
            Compression::Zstd => Some(1..=22),
            Compression::Uncompressed => None,
        }
    }

    /// The level used when none is set: `gzip -6` and `zstd -3`, as the command-line tools and BuildKit do.
    pub fn default_level(self) -> Option<u32> {
        match self {
            Compression::Gzip => Some(6),
            Compression::Zstd => Some(3),
            Compression::Uncompressed => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a build secret's value is read from when a build starts: `{ env = "NPM_TOKEN" }` or
/// `{ file = "~/.netrc" }`. Serialized the same way; the value itself never appears anywhere in the plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable of the `cargo hive` process, by name.
    Env(String),
    /// A file: `~/` is the user's home directory; a relative path is relative to the directory of the manifest
    /// that declares it (in the plan, already made absolute).
    File(String),
}

impl SecretSource {
    /// `env` or `file`: the key the source is written with.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretSource::Env(_) => "env",
            SecretSource::File(_) => "file",
        }
    }

    /// The variable's name or the file's path, as written.
    pub fn name(&self) -> &str {
        match self {
            SecretSource::Env(name) | SecretSource::File(name) => name,
        }
    }
}

impl fmt::Display for SecretSource {
    /// `env NPM_TOKEN`, `file ~/.netrc`: the source, never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// The keys of one `secrets` entry: exactly one of them.
pub const SECRET_KEYS: &[&str] = &["env", "file"];

/// A file or directory of the package copied into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path relative to the package directory (the one holding its `Cargo.toml`).
    pub src: String,
    /// Absolute destination path in the image.
    pub dst: String,
    /// Permission bits for every copied file (default: the source's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// Unix permission bits. Serialized as an octal string (`"0755"`); read from an integer (`0o755` in TOML) or a
/// string of octal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(pub u32);

impl Mode {
    /// The largest mode accepted: permission bits plus setuid, setgid and sticky.
    pub const MAX: u32 = 0o7777;

    /// Parses octal digits (`"755"`, `"0755"`, `"0o755"`).
    pub fn parse_octal(text: &str) -> Option<Mode> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u32::from_str_radix(digits, 8)
            .ok()
            .filter(|mode| *mode <= Mode::MAX)
            .map(Mode)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file mode: an integer up to 0o7777 or a string of octal digits")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Mode, E> {
                u32::try_from(value)
                    .ok()
                    .filter(|mode| *mode <= Mode::MAX)
                    .map(Mode)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Mode, E> {
                u64::try_from(value)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
                    .and_then(|value| self.visit_u64(value))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Mode, E> {
                Mode::parse_octal(value)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(value), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The transport protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP, the default.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// An exposed port: `8080/tcp`. Serialized as that string; read from an integer (TCP) or such a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// The port number, 1 to 65535.
    pub number: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

impl Port {
    /// A TCP port.
    pub fn tcp(number: u16) -> Port {
        Port {
            number,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP port.
    pub fn udp(number: u16) -> Port {
        Port {
            number,
            protocol: Protocol::Udp,
        }
    }
}

impl From<u16> for Port {
    fn from(number: u16) -> Port {
        Port::tcp(number)
    }
}

/// Why a port could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError(String);

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortError {}

impl FromStr for Port {
    type Err = PortError;

    fn from_str(text: &str) -> Result<Port, PortError> {
        let (number, protocol) = match text.split_once('/') {
            Some((number, "tcp")) => (number, Protocol::Tcp),
            Some((number, "udp")) => (number, Protocol::Udp),
            Some((number, "sctp")) => (number, Protocol::Sctp),
            Some((_, other)) => {
                return Err(PortError(format!(
                    "unknown protocol `{other}`: expected tcp, udp or sctp"
                )));
            }
            None => (text, Protocol::Tcp),
        };
        match number.parse::<u16>() {
            Ok(0) | Err(_) => Err(PortError(format!(
                "`{number}` is not a port number (1 to 65535)"
            ))),
            Ok(number) => Ok(Port { number, protocol }),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.protocol.as_str())
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port: an integer from 1 to 65535 or a string like \"53/udp\"")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Port, E> {
                u16::try_from(value)
                    .ok()
                    .filter(|number| *number != 0)
                    .map(Port::tcp)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Port, E> {
                u64::try_from(value)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
                    .and_then(|value| self.visit_u64(value))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Port, E> {
                value.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Where a key may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `[workspace.metadata.hive]`.
    Workspace,
    /// `[package.metadata.hive]`.
    Package,
    /// `[package.metadata.hive.images.<name>]` (and a build script's images).
    Image,
}

/// A key of the schema: its name, the scopes it is allowed in, and a one-line description.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key as written in `Cargo.toml`.
    pub name: &'static str,
    /// Where it may appear.
    pub scopes: &'static [Scope],
    /// What it means, for documentation and `help:` lines.
    pub doc: &'static str,
}

const ALL: &[Scope] = &[Scope::Workspace, Scope::Package, Scope::Image];
const DEFAULTS: &[Scope] = &[Scope::Workspace, Scope::Package];
const WORKSPACE: &[Scope] = &[Scope::Workspace];
const PACKAGE: &[Scope] = &[Scope::Package];
const IMAGE: &[Scope] = &[Scope::Image];

/// Every key of the schema, in documentation order. The keys allowed in [`Scope::Image`] are exactly the fields of
/// [`ImageDef`].
pub const KEYS: &[Key] = &[
    Key {
        name: "bin",
        scopes: IMAGE,
        doc: "the binary target to package",
    },
    Key {
        name: "base",
        scopes: ALL,
        doc: "`scratch`, an image reference, or `hive:<image>`",
    },
    Key {
        name: "entrypoint",
        scopes: ALL,
        doc: "the entrypoint, exec form",
    },
    Key {
        name: "cmd",
        scopes: ALL,
        doc: "default arguments to the entrypoint",
    },
    Key {
        name: "env",
        scopes: ALL,
        doc: "environment variables (merged)",
    },
    Key {
        name: "workdir",
        scopes: ALL,
        doc: "working directory",
    },
    Key {
        name: "user",
        scopes: ALL,
        doc: "user the entrypoint runs as",
    },
    Key {
        name: "expose",
        scopes: ALL,
        doc: "exposed ports",
    },
    Key {
        name: "labels",
        scopes: ALL,
        doc: "image config labels (merged)",
    },
    Key {
        name: "annotations",
        scopes: ALL,
        doc: "manifest annotations (merged)",
    },
    Key {
        name: "files",
        scopes: ALL,
        doc: "extra files copied into the image",
    },
    Key {
        name: "tags",
        scopes: ALL,
        doc: "tag templates",
    },
    Key {
        name: "platforms",
        scopes: ALL,
        doc: "target platforms",
    },
    Key {
        name: "targets",
        scopes: ALL,
        doc: "Rust target triple per platform (merged)",
    },
    Key {
        name: "repository",
        scopes: IMAGE,
        doc: "the full repository name",
    },
    Key {
        name: "aliases",
        scopes: ALL,
        doc: "`release` also tags `<major>.<minor>` and `<major>`, moved only forward",
    },
    Key {
        name: "sbom",
        scopes: ALL,
        doc: "attach an SPDX SBOM made from Cargo's dependency graph",
    },
    Key {
        name: "run",
        scopes: ALL,
        doc: "commands run on the base before the binary is added",
    },
    Key {
        name: "secrets",
        scopes: ALL,
        doc: "build secrets for RUN steps, by id, read from `env` or `file` (merged)",
    },
    Key {
        name: "dockerfile",
        scopes: IMAGE,
        doc: "build the image from this Dockerfile (relative to the package directory)",
    },
    Key {
        name: "context",
        scopes: IMAGE,
        doc: "the Dockerfile's build context (default: the package directory)",
    },
    Key {
        name: "target",
        scopes: IMAGE,
        doc: "the Dockerfile stage to build",
    },
    Key {
        name: "build-args",
        scopes: ALL,
        doc: "the Dockerfile's build arguments (merged)",
    },
    Key {
        name: "compression",
        scopes: ALL,
        doc: "layer compression: `gzip` (default), `zstd` or `uncompressed`",
    },
    Key {
        name: "compression-level",
        scopes: ALL,
        doc: "the compressor's level: gzip 0 to 9 (default 6), zstd 1 to 22 (default 3)",
    },
    Key {
        name: "registry",
        scopes: DEFAULTS,
        doc: "prefix of default repository names",
    },
    Key {
        name: "images",
        scopes: PACKAGE,
        doc: "the package's images, one table per image",
    },
    Key {
        name: "buildkit",
        scopes: WORKSPACE,
        doc: "BuildKit address",
    },
    Key {
        name: "tlscacert",
        scopes: WORKSPACE,
        doc: "CA certificate for BuildKit over TLS",
    },
    Key {
        name: "tlscert",
        scopes: WORKSPACE,
        doc: "client certificate for BuildKit over TLS",
    },
    Key {
        name: "tlskey",
        scopes: WORKSPACE,
        doc: "client key for BuildKit over TLS",
    },
    Key {
        name: "tlsservername",
        scopes: WORKSPACE,
        doc: "server name BuildKit's certificate is checked against",
    },
];

/// The keys of one `files` entry.
pub const FILE_KEYS: &[&str] = &["src", "dst", "mode"];

/// The keys of one `run` table.
pub const RUN_KEYS: &[&str] = &[
    "command",
    "env",
    "workdir",
    "user",
    "network",
    "cache",
    "secrets",
    "secret-env",
];

/// The keys of one `cache` entry of a `run` table.
pub const CACHE_KEYS: &[&str] = &["target", "id", "sharing"];

/// Looks a key up by name.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Where a binary is put in the image: `/usr/local/bin/<bin>`.
pub fn binary_path(bin: &str) -> String {
    format!("/usr/local/bin/{bin}")
}

/// Defaults `cargo hive` applies when no layer sets a value.
pub mod defaults {
    /// The base image: distroless with glibc and libgcc, what a default (gnu) Rust binary needs.
    pub const BASE: &str = "gcr.io/distroless/cc-debian12";
    /// Tag templates: the package version, and `latest` as `docker build`, buildx and ko give.
    pub const TAGS: &[&str] = &["{version}", "latest"];
    /// Platforms, as ko.
    pub const PLATFORMS: &[&str] = &["linux/amd64"];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_and_print() {
        assert_eq!("8080".parse::<Port>().unwrap(), Port::tcp(8080));
        assert_eq!("53/udp".parse::<Port>().unwrap(), Port::udp(53));
        assert_eq!(Port::udp(53).to_string(), "53/udp");
        assert!("0".parse::<Port>().is_err());
        assert!("70000".parse::<Port>().is_err());
        assert!("80/icmp".parse::<Port>().is_err());
        let ports: Vec<Port> = serde_json::from_str(r#"[80, "53/udp", "9000/sctp"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&ports).unwrap(),
            r#"["80/tcp","53/udp","9000/sctp"]"#
        );
        assert!(serde_json::from_str::<Port>("0").is_err());
    }

    #[test]
    fn modes_read_and_print() {
        assert_eq!(Mode::parse_octal("755"), Some(Mode(0o755)));
        assert_eq!(Mode::parse_octal("0o644"), Some(Mode(0o644)));
        assert_eq!(Mode::parse_octal("0644"), Some(Mode(0o644)));
        assert_eq!(Mode::parse_octal("8"), None);
        assert_eq!(Mode::parse_octal("17777"), None);
        assert_eq!(Mode(0o755).to_string(), "0755");
        assert_eq!(serde_json::from_str::<Mode>("493").unwrap(), Mode(0o755));
        assert_eq!(
            serde_json::from_str::<Mode>("\"0755\"").unwrap(),
            Mode(0o755)
        );
    }

    #[test]
    fn run_steps_read_from_strings_and_tables() {
        let steps: Vec<RunStep> = serde_json::from_str(
            r#"["echo hi", {"command": ["touch", "/x"], "network": "none",
                "cache": [{"target": "/c", "sharing": "locked"}], "secrets": ["t"]}]"#,
        )
        .unwrap();
        assert_eq!(steps[0], RunStep::shell("echo hi"));
        assert_eq!(steps[0].command.args(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(steps[1].command.args(), ["touch", "/x"]);
        assert_eq!(steps[1].network, Some(Network::None));
        assert_eq!(steps[1].cache[0].sharing, Some(Sharing::Locked));
        assert_eq!(steps[1].secrets, ["t"]);
        let again: Vec<RunStep> =
            serde_json::from_str(&serde_json::to_string(&steps).unwrap()).unwrap();
        assert_eq!(again, steps);
        assert!(serde_json::from_str::<RunStep>(r#"{"command": "x", "nope": 1}"#).is_err());
    }

    #[test]
    fn secret_sources_are_one_keyed_tables() {
        let sources: BTreeMap<String, SecretSource> =
            serde_json::from_str(r#"{"a": {"env": "A"}, "b": {"file": "~/.netrc"}}"#).unwrap();
        assert_eq!(sources["a"], SecretSource::Env("A".into()));
        assert_eq!(sources["b"].to_string(), "file ~/.netrc");
        assert_eq!(
            serde_json::to_string(&sources).unwrap(),
            r#"{"a":{"env":"A"},"b":{"file":"~/.netrc"}}"#
        );
        assert!(serde_json::from_str::<SecretSource>(r#"{"env": "A", "file": "b"}"#).is_err());
        assert!(serde_json::from_str::<SecretSource>(r#"{"value": "A"}"#).is_err());
    }

    #[test]
    fn compressions_read_and_print() {
        for name in Compression::NAMES {
            let compression = Compression::parse(name).unwrap();
            assert_eq!(compression.to_string(), *name);
            let json = serde_json::to_string(&compression).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
        assert_eq!(Compression::parse("gz"), None);
        assert_eq!(Compression::Gzip.levels(), Some(0..=9));
        assert_eq!(Compression::Zstd.default_level(), Some(3));
        assert_eq!(Compression::Uncompressed.levels(), None);
    }

    #[test]
    fn image_keys_are_the_fields_of_image_def() {
        let full = ImageDef {
            bin: Some(String::new()),
            base: Some(String::new()),
            entrypoint: Some(vec![]),
            cmd: Some(vec![]),
            env: [(String::new(), String::new())].into(),
            workdir: Some(String::new()),
            user: Some(String::new()),
            expose: Some(vec![]),
            labels: [(String::new(), String::new())].into(),
            annotations: [(String::new(), String::new())].into(),
            files: Some(vec![]),
            tags: Some(vec![]),
            platforms: Some(vec![]),
            targets: [(String::new(), String::new())].into(),
            repository: Some(String::new()),
            aliases: Some(false),
            sbom: Some(false),
            run: Some(vec![]),
            secrets: [(String::new(), SecretSource::Env(String::new()))].into(),
            dockerfile: Some(String::new()),
            context: Some(String::new()),
            target: Some(String::new()),
            build_args: [(String::new(), String::new())].into(),
            compression: Some(Compression::Zstd),
            compression_level: Some(3),
        };
        let serde_json::Value::Object(fields) = serde_json::to_value(&full).unwrap() else {
            unreachable!()
        };
        let mut fields: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut keys: Vec<&str> = KEYS
            .iter()
            .filter(|key| key.scopes.contains(&Scope::Image))
            .map(|key| key.name)
            .collect();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }
}
