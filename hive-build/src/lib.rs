//! `hive-build`: the image-definition schema shared by `Cargo.toml` metadata and `build.rs`, and the JSON contract
//! of `cargo hive plan`.
//!
//! Keep this crate light: it runs in users' build scripts (serde and serde_json only).
//!
//! # In a build script
//!
//! ```no_run
//! // build.rs
//! let target = std::env::var("TARGET").unwrap_or_default();
//! let base = if target.contains("musl") { "scratch" } else { "gcr.io/distroless/cc-debian12" };
//! hive_build::images()
//!     // Change an image declared in [package.metadata.hive.images.api]:
//!     .modify("api", |image| image.base(base).env("BUILT_FOR", target.clone()))
//!     // Declare one that Cargo.toml does not mention:
//!     .declare(hive_build::Image::new("api-debug").bin("api").base("debian:12-slim").tag("{version}-debug"))
//!     .emit();
//! ```
//!
//! Values a build script sets win over the manifest's (maps merge key by key, lists replace), and `cargo hive plan`
//! shows `build.rs of <package>` as their origin.

pub mod metadata;
pub mod plan;
pub mod progress;
pub mod schema;
mod script;
pub mod spdx;

pub use schema::{
    CacheMount, Compression, FileSpec, ImageDef, Mode, Network, Port, Protocol, RunCommand,
    RunStep, SecretSource, Sharing,
};
pub use script::{
    Action, BuildScriptImage, BuildScriptOutput, Image, Images, OUTPUT_ENV, OUTPUT_FILE,
    OUTPUT_FORMAT_VERSION, OUTPUT_MAX_BYTES, images,
};
