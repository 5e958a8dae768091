//! The flags of every command, as clap parses them, and their conversion into the engine's types.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use hive_build::Compression;

use crate::cargo::CargoFlags;
use crate::config::Selection;
use crate::progress::Renderer;

/// Drops the `hive` that cargo passes first when run as `cargo hive …`, so `cargo-hive …` parses the same.
pub(crate) fn normalized_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|arg| arg == "hive") {
        args.remove(1);
    }
    args
}

/// Parses normalized arguments.
pub(crate) fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(args)
}

/// Container images for Rust workspaces, built by your own BuildKit.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-hive",
    bin_name = "cargo hive",
    version,
    propagate_version = true
)]
#[command(arg_required_else_help = true, max_term_width = 110)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes, with cargo's names.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Use verbose output (-vv very verbose)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Do not print cargo-hive's status messages
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Coloring: auto, always, never
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, global = true, value_name = "WHEN")]
    pub(crate) color: ColorWhen,
    /// Path to Cargo.toml
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// Colour when the stream is a terminal (and `CARGO_TERM_COLOR` does not say otherwise).
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// `cargo hive` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check that a BuildKit is reachable and ready, and show what it can do
    Doctor(DoctorArgs),
    /// Show every image `build` would produce, with where each value came from
    Plan(PlanArgs),
    /// Build the workspace's images with BuildKit
    Build(Box<BuildArgs>),
    /// Build and push every selected image for all its platforms, with SBOMs and provenance
    Release(Box<ReleaseArgs>),
}

/// Human or machine-readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Format {
    /// Readable text
    #[default]
    Human,
    /// Versioned JSON on stdout
    Json,
}

/// How to reach BuildKit (`buildctl`'s flag names).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "BuildKit Connection")]
pub(crate) struct ConnectArgs {
    /// BuildKit address: unix://PATH, tcp://HOST:PORT, docker://, docker+unix://PATH [env: BUILDKIT_HOST]
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) addr: Option<String>,
    /// CA certificate for tcp:// with TLS
    #[arg(long, value_name = "PATH")]
    pub(crate) tlscacert: Option<PathBuf>,
    /// Client certificate for mutual TLS
    #[arg(long, value_name = "PATH")]
    pub(crate) tlscert: Option<PathBuf>,
    /// Client key for mutual TLS
    #[arg(long, value_name = "PATH")]
    pub(crate) tlskey: Option<PathBuf>,
    /// Server name to verify the daemon's certificate against
    #[arg(long, value_name = "NAME")]
    pub(crate) tlsservername: Option<String>,
}

impl ConnectArgs {
    /// The flags as BuildKit connection options (the manifest's settings and the environment are added later).
    pub(crate) fn to_options(
        &self,
        env: &crate::buildkit::Environment,
        verbose: bool,
    ) -> crate::buildkit::ConnectOptions {
        let ConnectArgs {
            addr,
            tlscacert,
            tlscert,
            tlskey,
            tlsservername,
        } = self;
        crate::buildkit::ConnectOptions {
            addr: addr.clone(),
            tls: crate::buildkit::TlsSettings {
                ca: tlscacert.clone(),
                cert: tlscert.clone(),
                key: tlskey.clone(),
                server_name: tlsservername.clone(),
            },
            manifest: None,
            env: env.clone(),
            verbose,
        }
    }
}

/// `cargo hive doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// Which packages and images (cargo's selection flags plus `--image`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Package Selection")]
pub(crate) struct SelectionArgs {
    /// Package(s) whose images to select
    #[arg(short, long = "package", value_name = "SPEC")]
    pub(crate) packages: Vec<String>,
    /// Select every package in the workspace
    #[arg(long)]
    pub(crate) workspace: bool,
    /// Exclude packages from the selection (with --workspace)
    #[arg(long, value_name = "SPEC", requires = "workspace")]
    pub(crate) exclude: Vec<String>,
    /// Only these images (by name)
    #[arg(long = "image", value_name = "NAME")]
    pub(crate) images: Vec<String>,
    /// Only these platforms of the selected images (`linux/arm64`, comma-separated)
    #[arg(long = "platform", value_name = "PLATFORM", value_delimiter = ',')]
    pub(crate) platforms: Vec<String>,
}

/// `cargo hive plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    #[command(flatten)]
    pub(crate) features: FeatureArgs,
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

/// Cargo's feature flags, forwarded as they are.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Feature Selection")]
pub(crate) struct FeatureArgs {
    /// Space or comma separated list of features to activate
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub(crate) features: Vec<String>,
    /// Activate all available features
    #[arg(long)]
    pub(crate) all_features: bool,
    /// Do not activate the `default` feature
    #[arg(long)]
    pub(crate) no_default_features: bool,
}

/// Cargo's compilation flags, forwarded as they are.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Compilation Options")]
pub(crate) struct CompileArgs {
    /// Build artifacts in release mode, with optimizations
    #[arg(short, long, conflicts_with = "profile")]
    pub(crate) release: bool,
    /// Build artifacts with the specified profile
    #[arg(long, value_name = "PROFILE-NAME")]
    pub(crate) profile: Option<String>,
    /// Only the platforms built for the target triple(s)
    #[arg(long, value_name = "TRIPLE")]
    pub(crate) target: Vec<String>,
    /// Assert that `Cargo.lock` will remain unchanged
    #[arg(long)]
    pub(crate) locked: bool,
    /// Run without accessing the network
    #[arg(long)]
    pub(crate) offline: bool,
}

impl SelectionArgs {
    /// The engine's selection.
    /// `--target` is cargo's flag, but it selects platforms here: the ones built for that triple.
    pub(crate) fn to_selection(&self, compile: &CompileArgs) -> Selection {
        let SelectionArgs {
            packages,
            workspace,
            exclude,
            images,
            platforms,
        } = self;
        Selection {
            packages: packages.clone(),
            workspace: *workspace,
            exclude: exclude.clone(),
            images: images.clone(),
            platforms: platforms.clone(),
            targets: compile.target.clone(),
        }
    }
}

/// Cargo's flags of both groups, as the engine's [`CargoFlags`]; destructured in full so none is left behind.
pub(crate) fn cargo_flags(features: &FeatureArgs, compile: &CompileArgs) -> CargoFlags {
    let FeatureArgs {
        features,
        all_features,
        no_default_features,
    } = features;
    let CompileArgs {
        release,
        profile,
        // A selection (see `to_selection`): the engine passes each needed triple to cargo itself.
        target: _,
        locked,
        offline,
    } = compile;
    CargoFlags {
        features: features.clone(),
        all_features: *all_features,
        no_default_features: *no_default_features,
        release: *release,
        profile: profile.clone(),
        locked: *locked,
        offline: *offline,
    }
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum ProgressMode {
    /// tty when stderr is a terminal, plain otherwise
    #[default]
    Auto,
    /// Live, redrawn lines
    Tty,
    /// Stable lines for CI logs
    Plain,
    /// One JSON event per line
    Json,
}

impl ProgressMode {
    /// The renderer asked for; `None` for auto, which [`crate::progress::choose`] decides.
    pub(crate) fn requested(self) -> Option<Renderer> {
        match self {
            ProgressMode::Auto => None,
            ProgressMode::Tty => Some(Renderer::Tty),
            ProgressMode::Plain => Some(Renderer::Plain),
            ProgressMode::Json => Some(Renderer::Json),
        }
    }
}

/// `cargo hive build`.
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    #[command(flatten)]
    pub(crate) features: FeatureArgs,
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Images to build at once (default: 32)
    #[arg(short, long, value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Load the images into Docker
    #[arg(long, help_heading = "Output")]
    pub(crate) load: bool,
    /// Push the images to their registries
    #[arg(long, help_heading = "Output")]
    pub(crate) push: bool,
    /// Raw exporter spec, as buildx: type=TYPE[,KEY=VALUE...]
    #[arg(long, value_name = "SPEC", help_heading = "Output")]
    pub(crate) output: Vec<String>,
    /// Progress output: auto, tty, plain, json
    #[arg(long, value_enum, default_value_t, help_heading = "Output")]
    pub(crate) progress: ProgressMode,
    /// Write each image's references and digests to this JSON file
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Do not use BuildKit's cache
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Print the LLB of every image as JSON instead of building
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// SLSA provenance attestation the daemon generates: min, max or false [default: min with --push, else
    /// false]
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Output")]
    pub(crate) provenance: Option<ProvenanceArg>,
    /// Attach an SPDX SBOM from Cargo's dependency graph to every image (also written to target/hive/)
    #[arg(long, help_heading = "Output")]
    pub(crate) sbom: bool,
    /// Layer compression of every image, over the manifests' `compression`: gzip, zstd or uncompressed
    #[arg(long, value_name = "TYPE", value_parser = compression_names(), help_heading = "Output")]
    pub(crate) compression: Option<Compression>,
    /// The compressor's level with --compression: gzip 0-9 (default 6), zstd 1-22 (default 3)
    #[arg(
        long,
        value_name = "N",
        requires = "compression",
        help_heading = "Output"
    )]
    pub(crate) compression_level: Option<u32>,
}

/// `--compression`'s values, as the manifests spell them (clap lists them when another is given).
fn compression_names() -> impl clap::builder::TypedValueParser<Value = Compression> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Compression::NAMES)
        .map(|name| Compression::parse(&name).expect("clap accepts only the listed names"))
}

impl ProvenanceArg {
    /// `--provenance`, given or not, as the engine's flag.
    pub(crate) fn to_flag(arg: Option<ProvenanceArg>) -> crate::engine::ProvenanceFlag {
        use crate::buildkit::ProvenanceMode;
        use crate::engine::ProvenanceFlag;
        match arg {
            None => ProvenanceFlag::Default,
            Some(ProvenanceArg::False) => ProvenanceFlag::Off,
            Some(ProvenanceArg::Min) => ProvenanceFlag::Mode(ProvenanceMode::Min),
            Some(ProvenanceArg::Max) => ProvenanceFlag::Mode(ProvenanceMode::Max),
        }
    }
}

/// `--provenance`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProvenanceArg {
    /// Build timestamps, the frontend and its attributes, the sources
    Min,
    /// Also the build steps
    Max,
    /// None
    False,
}

/// `cargo hive release`.
#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    #[command(flatten)]
    pub(crate) features: FeatureArgs,
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Images to build at once (default: 32)
    #[arg(short, long, value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Progress output: auto, tty, plain, json
    #[arg(long, value_enum, default_value_t, help_heading = "Output")]
    pub(crate) progress: ProgressMode,
    /// Also write the release record (target/hive/release.json) to this file
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Print every reference and whether it would be created, moved or left; build and push nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Release even if the working tree has uncommitted changes
    #[arg(long)]
    pub(crate) allow_dirty: bool,
    /// SLSA provenance attestation the daemon generates: min, max or false [default: min]
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Output")]
    pub(crate) provenance: Option<ProvenanceArg>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Cli, clap::Error> {
        parse(normalized_args(line.split_whitespace().map(OsString::from)))
    }

    #[test]
    fn command_lines() {
        // (command line, parses?)
        let table: &[(&str, bool)] = &[
            ("cargo-hive hive doctor", true),
            ("cargo-hive doctor", true),
            ("cargo-hive doctor --format json --addr unix:///x", true),
            ("cargo-hive doctor --format yaml", false),
            ("cargo-hive -v doctor", true),
            ("cargo-hive doctor -vv --color never", true),
            ("cargo-hive doctor -q -v", false),
            ("cargo-hive plan -p a -p b --image x --format json", true),
            ("cargo-hive plan --exclude a", false),
            ("cargo-hive plan --workspace --exclude a", true),
            ("cargo-hive build --release --profile x", false),
            (
                "cargo-hive build --release --load --jobs 4 --progress plain",
                true,
            ),
            (
                "cargo-hive build --output type=oci,dest=x.tar --metadata-file m.json",
                true,
            ),
            ("cargo-hive release --dry-run --allow-dirty -p api", true),
            (
                "cargo-hive release --profile dist --platform linux/arm64",
                true,
            ),
            ("cargo-hive release --push", false),
            ("cargo-hive build --push --provenance=max", true),
            ("cargo-hive build --push --provenance false", true),
            ("cargo-hive build --provenance=full", false),
            ("cargo-hive build --provenance", false),
            ("cargo-hive build --compression zstd", true),
            (
                "cargo-hive build --compression zstd --compression-level 19",
                true,
            ),
            ("cargo-hive build --compression brotli", false),
            ("cargo-hive build --compression-level 3", false),
            ("cargo-hive frobnicate", false),
        ];
        for (line, ok) in table {
            assert_eq!(parse_str(line).is_ok(), *ok, "{line}");
        }
    }

    #[test]
    fn forwards_every_cargo_flag() {
        let cli = parse_str(
            "cargo-hive build --profile bench --target x86_64-unknown-linux-musl --locked --offline \
             -F a,b --no-default-features",
        )
        .unwrap();
        let Command::Build(build) = cli.command else {
            panic!("not build")
        };
        let flags = cargo_flags(&build.features, &build.compile);
        assert_eq!(
            flags.to_args(),
            [
                "--features",
                "a,b",
                "--no-default-features",
                "--profile",
                "bench",
                "--locked",
                "--offline"
            ]
        );
        assert_eq!(flags.profile_name(), "bench");
        let selection = build.selection.to_selection(&build.compile);
        assert_eq!(selection.targets, ["x86_64-unknown-linux-musl"]);
    }
}
