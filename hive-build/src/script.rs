//! The build-script side: declare images or change declared ones, then [`Images::emit`] them for `cargo hive`.
//!
//! A build script runs before its crate compiles, so it cannot package its own binary: it only declares, and
//! `cargo hive` packages. [`Images::emit`] writes the declarations as JSON into `OUT_DIR` and tells cargo the file's
//! path with `cargo::rustc-env=HIVE_BUILD_IMAGES=…`; `cargo hive` reads that from cargo's `build-script-executed`
//! message, so a file left over from an earlier run that no longer emits is never read.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schema::{Compression, FileSpec, ImageDef, Mode, Port};

/// The version of [`BuildScriptOutput`]'s format.
pub const OUTPUT_FORMAT_VERSION: u32 = 1;
/// The file [`Images::emit`] writes into `OUT_DIR`.
pub const OUTPUT_FILE: &str = "hive-images.json";
/// The `rustc-env` variable that carries the output file's path in cargo's `build-script-executed` message.
pub const OUTPUT_ENV: &str = "HIVE_BUILD_IMAGES";
/// The largest output file `cargo hive` reads (8 MiB): far above any real set of declarations, it bounds what a
/// wrong path (`/dev/zero`, a huge file) can cost. [`Images::write_to`] refuses to write more.
pub const OUTPUT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// What a build script emitted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BuildScriptOutput {
    /// [`OUTPUT_FORMAT_VERSION`] of the `hive-build` that wrote it.
    pub format_version: u32,
    /// The target triple the build script ran for (cargo's `TARGET`): its declarations apply to the platforms
    /// built for that triple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Declarations and changes, in call order.
    pub images: Vec<BuildScriptImage>,
}

/// One declaration or change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildScriptImage {
    /// The image's name.
    pub name: String,
    /// Whether the image is new or declared in `Cargo.toml`.
    pub action: Action,
    /// The values the build script set; they win over the manifest's.
    pub image: ImageDef,
}

/// Whether a build script declares an image or changes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new image, not in `Cargo.toml`; it still inherits the workspace and package defaults.
    Declare,
    /// Changes to an image of the same package's `[package.metadata.hive.images]`.
    Modify,
}

/// An image definition being built up: a name and the values set so far.
///
/// Methods take and return the image, so they chain: `Image::new("api").base("scratch").env("RUST_LOG", "info")`.
/// Lists set here replace the manifest's list (`tag` starts a new list rather than appending to the manifest's
/// tags); maps (`env`, `label`, `annotation`) merge key by key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Image {
    name: String,
    def: ImageDef,
}

impl Image {
    /// An image with nothing set yet.
    pub fn new(name: impl Into<String>) -> Image {
        Image {
            name: name.into(),
            def: ImageDef::default(),
        }
    }

    /// The image's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The values set so far.
    pub fn definition(&self) -> &ImageDef {
        &self.def
    }

    /// The binary target to package.
    pub fn bin(mut self, bin: impl Into<String>) -> Image {
        self.def.bin = Some(bin.into());
        self
    }

    /// `scratch`, an image reference, or `hive:<image>`.
    pub fn base(mut self, base: impl Into<String>) -> Image {
        self.def.base = Some(base.into());
        self
    }

    /// The entrypoint, exec form.
    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Image {
        self.def.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Default arguments to the entrypoint.
    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Image {
        self.def.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Image {
        self.def.env.insert(name.into(), value.into());
        self
    }

    /// The working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Image {
        self.def.workdir = Some(dir.into());
        self
    }

    /// The user the entrypoint runs as.
    pub fn user(mut self, user: impl Into<String>) -> Image {
        self.def.user = Some(user.into());
        self
    }

    /// Adds an exposed port (`8080`, `Port::udp(53)`).
    pub fn expose(mut self, port: impl Into<Port>) -> Image {
        self.def
            .expose
            .get_or_insert_with(Vec::new)
            .push(port.into());
        self
    }

    /// Sets one label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Image {
        self.def.labels.insert(key.into(), value.into());
        self
    }

    /// Sets one annotation.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Image {
        self.def.annotations.insert(key.into(), value.into());
        self
    }

    /// Adds a file or directory of the package (path relative to the package) at `dst` in the image.
    pub fn file(self, src: impl Into<String>, dst: impl Into<String>) -> Image {
        self.push_file(FileSpec {
            src: src.into(),
            dst: dst.into(),
            mode: None,
        })
    }

    /// Adds a file or directory with these permission bits (`0o755`).
    pub fn file_with_mode(
        self,
        src: impl Into<String>,
        dst: impl Into<String>,
        mode: u32,
    ) -> Image {
        self.push_file(FileSpec {
            src: src.into(),
            dst: dst.into(),
            mode: Some(Mode(mode)),
        })
    }

    fn push_file(mut self, file: FileSpec) -> Image {
        self.def.files.get_or_insert_with(Vec::new).push(file);
        self
    }

    /// Adds a tag template (`{version}`, `{git.short_sha}`, …).
    pub fn tag(mut self, tag: impl Into<String>) -> Image {
        self.def.tags.get_or_insert_with(Vec::new).push(tag.into());
        self
    }

    /// Adds a platform (`linux/arm64`).
    pub fn platform(mut self, platform: impl Into<String>) -> Image {
        self.def
            .platforms
            .get_or_insert_with(Vec::new)
            .push(platform.into());
        self
    }

    /// The Rust target triple to build `platform` for (`"linux/arm64"`, `"aarch64-unknown-linux-musl"`).
    pub fn target(mut self, platform: impl Into<String>, triple: impl Into<String>) -> Image {
        self.def.targets.insert(platform.into(), triple.into());
        self
    }

    /// The full repository name (`ghcr.io/acme/api`).
    pub fn repository(mut self, repository: impl Into<String>) -> Image {
        self.def.repository = Some(repository.into());
        self
    }

    /// Whether `cargo hive release` also tags `<major>.<minor>` and `<major>`, moving them only forward.
    pub fn aliases(mut self, aliases: bool) -> Image {
        self.def.aliases = Some(aliases);
        self
    }

    /// Whether every platform's image carries an SPDX SBOM made from Cargo's dependency graph.
    pub fn sbom(mut self, sbom: bool) -> Image {
        self.def.sbom = Some(sbom);
        self
    }

    /// How the image's layers are compressed, and at which level (`None`: the compressor's default).
    pub fn compression(mut self, compression: Compression, level: Option<u32>) -> Image {
        self.def.compression = Some(compression);
        self.def.compression_level = level;
        self
    }
}

/// The images a build script declares or changes; [`Images::emit`] hands them to `cargo hive`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "nothing reaches cargo hive until `emit` is called"]
pub struct Images {
    output: BuildScriptOutput,
}

/// Starts the images of this build script.
pub fn images() -> Images {
    Images::default()
}

impl Images {
    /// Declares a new image (one not in `Cargo.toml`).
    pub fn declare(mut self, image: Image) -> Images {
        self.output.images.push(BuildScriptImage {
            name: image.name,
            action: Action::Declare,
            image: image.def,
        });
        self
    }

    /// Changes an image declared in this package's `[package.metadata.hive.images]`.
    pub fn modify(
        mut self,
        name: impl Into<String>,
        change: impl FnOnce(Image) -> Image,
    ) -> Images {
        let image = change(Image::new(name));
        self.output.images.push(BuildScriptImage {
            name: image.name,
            action: Action::Modify,
            image: image.def,
        });
        self
    }

    /// What will be written.
    pub fn output(&self) -> &BuildScriptOutput {
        &self.output
    }

    /// Writes the images into `OUT_DIR` and tells cargo where. Call it once, last, from `build.rs`.
    ///
    /// # Panics
    /// Outside a build script (no `OUT_DIR`), or when the file cannot be written: a build script's way of failing.
    pub fn emit(self) {
        let out_dir = std::env::var_os("OUT_DIR").expect(
            "hive_build::Images::emit must be called from a build script (OUT_DIR is not set)",
        );
        let mut this = self;
        this.output.target = std::env::var("TARGET").ok();
        match this.write_to(Path::new(&out_dir)) {
            Ok(path) => println!("cargo::rustc-env={OUTPUT_ENV}={}", path.display()),
            Err(err) => panic!(
                "hive-build failed to write its images into {}: {err}",
                out_dir.display()
            ),
        }
    }

    /// Writes the images as [`OUTPUT_FILE`] into `dir` (atomically: a temporary file, then a rename) and returns the
    /// file's path. [`Images::emit`] does this with `OUT_DIR`. Fails, writing nothing, when the JSON would be larger
    /// than [`OUTPUT_MAX_BYTES`].
    pub fn write_to(mut self, dir: &Path) -> std::io::Result<PathBuf> {
        self.output.format_version = OUTPUT_FORMAT_VERSION;
        let path = dir.join(OUTPUT_FILE);
        let temp = dir.join(format!(".{OUTPUT_FILE}.{}", std::process::id()));
        let json = serde_json::to_vec_pretty(&self.output).map_err(std::io::Error::other)?;
        if json.len() as u64 > OUTPUT_MAX_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the images take {} bytes as JSON, more than cargo hive reads ({OUTPUT_MAX_BYTES})",
                    json.len()
                ),
            ));
        }
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_chains_and_round_trips() {
        let images = images()
            .declare(
                Image::new("worker")
                    .bin("worker")
                    .base("scratch")
                    .expose(8080)
                    .expose(Port::udp(53))
                    .aliases(true)
                    .sbom(false)
                    .compression(Compression::Zstd, Some(19)),
            )
            .modify("api", |image| {
                image.env("RUST_LOG", "info").tag("{version}").tag("edge")
            });
        let dir = std::env::temp_dir().join(format!("hive-build-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let expected = images.output().clone();
        let path = images.write_to(&dir).unwrap();
        let read: BuildScriptOutput =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read.format_version, OUTPUT_FORMAT_VERSION);
        assert_eq!(read.images, expected.images);
        assert_eq!(read.images[0].action, Action::Declare);
        assert_eq!(read.images[0].image.aliases, Some(true));
        assert_eq!(read.images[0].image.sbom, Some(false));
        assert_eq!(
            (
                read.images[0].image.compression,
                read.images[0].image.compression_level
            ),
            (Some(Compression::Zstd), Some(19))
        );
        assert_eq!(
            read.images[1].image.tags.as_deref(),
            Some(&["{version}".to_owned(), "edge".to_owned()][..])
        );
    }

    #[test]
    fn output_larger_than_cargo_hive_reads_is_refused() {
        let huge = "x".repeat(OUTPUT_MAX_BYTES as usize);
        let images = images().declare(Image::new("big").label("blob", huge));
        let dir = std::env::temp_dir().join(format!("hive-build-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let result = images.write_to(&dir);
        let left = std::fs::read_dir(&dir).unwrap().count();
        std::fs::remove_dir_all(&dir).unwrap();
        let err = result.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("more than cargo hive reads"),
            "{err}"
        );
        assert_eq!(left, 0, "nothing is written");
    }
}
