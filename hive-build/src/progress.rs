//! The events of `cargo hive build --progress json`: one [`Record`] per line on stdout, while human messages stay on
//! stderr.
//!
//! A build emits, in order: `cargo-started`/`cargo-finished`, then for each image (images run concurrently, so their
//! events interleave) `image-started`, the BuildKit steps of that image (`vertex-*`), `bytes-sent`, and one of
//! `image-finished`/`image-failed`; a failed build then says why in one `error` event (its `kind`, an [`ErrorKind`],
//! tells failures apart), and `build-finished` comes last. A build that fails before cargo runs (bad input) emits
//! only `error` and `build-finished`. Every step that starts gets exactly one `vertex-started` and at most one of
//! `vertex-cached`, `vertex-completed` or `vertex-errored` (none when the build is interrupted first).
//!
//! `phase` events say how long each stage of the build took (a [`Phase`]), for tools that show where the time
//! goes. Each is sent when its stage ends: those of the whole build (`image` absent) at most once, those of an
//! image (`image` set) at most once per image, between its `image-started` and its `image-finished`. The planning
//! phases (`cargo-metadata`, `build-scripts`, `plan`) ran before progress started and come first, in that order.
//! BuildKit is connected while cargo builds, so `cargo-build` and `connect` end in either order (each timed from
//! when both began); `bases` follows both. A phase that did not run is not sent: `build-scripts` when no build
//! script declares images, `bases` and the images' phases when the build ended before, `solve`, `export` and
//! `finish` for an image found up to date.
//!
//! Stability: fields and event types may be added in a minor release (readers must ignore unknown fields and
//! types); removing or changing the meaning of a field bumps [`FORMAT_VERSION`].
//!
//! ```
//! use hive_build::progress::{Event, Record};
//!
//! let line = r#"{"format_version":1,"type":"bytes-sent","image":"hello","bytes_sent":1024}"#;
//! let record: Record = serde_json::from_str(line).unwrap();
//! assert_eq!(record.event, Event::BytesSent { image: "hello".into(), bytes_sent: 1024 });
//! ```

use serde::{Deserialize, Serialize};

/// The version of this format, the `format_version` of every [`Record`].
pub const FORMAT_VERSION: u32 = 1;

/// One line of `--progress json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`FORMAT_VERSION`] for this crate's version of the format.
    pub format_version: u32,
    /// The event, with its `type` next to `format_version`.
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    /// Wraps an event with the current [`FORMAT_VERSION`].
    pub fn new(event: Event) -> Self {
        Record {
            format_version: FORMAT_VERSION,
            event,
        }
    }
}

/// What happened. Durations are in seconds; `vertex` is the step's number, unique within one build and the same as
/// the `#N` of `--progress plain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// cargo started compiling the binaries.
    CargoStarted {},
    /// cargo exited.
    CargoFinished {
        /// Whether cargo succeeded.
        success: bool,
        /// Wall time of the cargo run.
        duration_secs: f64,
    },
    /// A solve for one image started.
    ImageStarted {
        /// The image's name (as in `cargo hive plan`).
        image: String,
        /// The image's first reference (`repository:tag`).
        reference: String,
        /// The platforms built, `os/arch[/variant]`.
        platforms: Vec<String>,
    },
    /// A BuildKit step of an image started.
    VertexStarted {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
        /// BuildKit's digest of the step.
        digest: String,
        /// BuildKit's name of the step (`[internal] load metadata for …`, `copy /hello /usr/local/bin/hello`, …).
        name: String,
    },
    /// The step's result came from BuildKit's cache.
    VertexCached {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
    },
    /// The step finished.
    VertexCompleted {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
        /// How long the step ran, by the daemon's clock.
        duration_secs: f64,
    },
    /// The step failed (or was cancelled because another step failed).
    VertexErrored {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
        /// BuildKit's error message.
        error: String,
        /// How long the step ran, when the daemon said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_secs: Option<f64>,
    },
    /// One line of a step's output.
    VertexLog {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
        /// Which stream the line was written to.
        stream: LogStream,
        /// The line, without its line terminator (invalid UTF-8 replaced).
        line: String,
    },
    /// Progress of a task within a step (a layer download, the transfer of local files); sent when it changes.
    VertexProgress {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
        /// The task (`transferring hello:`, `sha256:…`).
        id: String,
        /// Units done (bytes for transfers).
        current: u64,
        /// Units in all, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// Whether the task is complete.
        completed: bool,
    },
    /// BuildKit warned about a step.
    VertexWarning {
        /// The image the step belongs to.
        image: String,
        /// The step's number.
        vertex: u32,
        /// The warning's short message.
        message: String,
    },
    /// A warning from cargo-hive itself, about one image or the whole build.
    Warning {
        /// The image concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// The message.
        message: String,
    },
    /// The bytes cargo-hive's session has sent to the daemon for an image so far (file contents of local sources).
    BytesSent {
        /// The image.
        image: String,
        /// Bytes sent so far; only grows.
        bytes_sent: u64,
    },
    /// An image was built and exported.
    ImageFinished {
        /// The image.
        image: String,
        /// The image's digest (`sha256:…`), when the exporter reported one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// Where it went: a path such as `target/hive/hello.oci.tar`, `loaded` or `pushed`.
        output: String,
        /// Wall time from `image-started`.
        duration_secs: f64,
        /// Bytes the session sent for the image in all.
        bytes_sent: u64,
    },
    /// An image failed.
    ImageFailed {
        /// The image.
        image: String,
        /// The error message.
        error: String,
        /// Wall time from `image-started`.
        duration_secs: f64,
    },
    /// Why the build failed, once, before `build-finished`; the same message is printed on stderr.
    Error {
        /// The class of failure, stable across releases: what CI branches on.
        kind: ErrorKind,
        /// The error, rendered (without its causes).
        message: String,
    },
    /// A stage of the build ended: how long it took, for the whole build or for one image.
    Phase {
        /// The stage.
        phase: Phase,
        /// The image, for the stages run per image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// Wall time of the stage (for `export`, the daemon's exporter steps, by its clock).
        duration_secs: f64,
    },
    /// The build is over.
    BuildFinished {
        /// Whether cargo and every image succeeded.
        success: bool,
        /// Images built.
        images_finished: u32,
        /// Images that failed.
        images_failed: u32,
        /// Wall time of the whole build.
        duration_secs: f64,
    },
}

/// A stage of `cargo hive build`, the `phase` of a `phase` event. Stages of the whole build run once, in this
/// order; those of an image run once per image, concurrently with other images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `cargo metadata` read the workspace, and the manifests were parsed.
    CargoMetadata,
    /// The build-script pass (`cargo check`) ran the build scripts that declare images.
    BuildScripts,
    /// The definitions were merged, checked and resolved (git facts, platforms, tags) into the plan.
    Plan,
    /// The installed targets were checked and cargo built the binaries (checked afterwards).
    CargoBuild,
    /// BuildKit was connected and the daemon checked against the outputs (exporters, Docker for `--load`).
    Connect,
    /// The registry bases were resolved, once per base and platform.
    Bases,
    /// An image's LLB, config and fingerprint were laid out.
    Layout,
    /// An image's up-to-date check: its stamp and its outputs.
    Fresh,
    /// An image's solve, without its export: BuildKit's steps, the files sent.
    Solve,
    /// The daemon's exporter steps of an image's solve (writing an archive, storing, pushing).
    Export,
    /// What Docker finishes for an image (a load, a push), its manifests read and its stamp written.
    Finish,
}

impl Phase {
    /// Every phase, in the order the stages run.
    pub const ALL: [Phase; 11] = [
        Phase::CargoMetadata,
        Phase::BuildScripts,
        Phase::Plan,
        Phase::CargoBuild,
        Phase::Connect,
        Phase::Bases,
        Phase::Layout,
        Phase::Fresh,
        Phase::Solve,
        Phase::Export,
        Phase::Finish,
    ];

    /// The phase's name in JSON, `cargo-metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::CargoMetadata => "cargo-metadata",
            Phase::BuildScripts => "build-scripts",
            Phase::Plan => "plan",
            Phase::CargoBuild => "cargo-build",
            Phase::Connect => "connect",
            Phase::Bases => "bases",
            Phase::Layout => "layout",
            Phase::Fresh => "fresh",
            Phase::Solve => "solve",
            Phase::Export => "export",
            Phase::Finish => "finish",
        }
    }

    /// Whether the phase runs once per image (else once per build).
    pub fn per_image(self) -> bool {
        matches!(
            self,
            Phase::Layout | Phase::Fresh | Phase::Solve | Phase::Export | Phase::Finish
        )
    }
}

/// Why a build failed, as the `kind` of an `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The input is wrong: image definitions, flags, package names, environment variables.
    InvalidDefinitions,
    /// The user's cargo failed (`cargo metadata`, build scripts, compiling) or produced no usable binary.
    CargoFailed,
    /// No BuildKit could be reached, or it answered wrongly.
    DaemonUnreachable,
    /// One or more images failed to build (the others were built).
    ImageFailed,
    /// The images could not go where they were asked to (`--load`, `--output`, `--metadata-file`).
    OutputFailed,
    /// A signal (SIGINT, SIGTERM, SIGHUP) cancelled the build.
    Interrupted,
    /// cargo-hive itself could not start its work (e.g. install signal handlers); not expected.
    Internal,
}

/// The stream a log line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error (and anything else BuildKit reports).
    Stderr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_flat_and_tagged() {
        let record = Record::new(Event::ImageFinished {
            image: "hello".into(),
            digest: Some("sha256:abc".into()),
            output: "loaded".into(),
            duration_secs: 1.5,
            bytes_sent: 7,
        });
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"format_version":1,"type":"image-finished","image":"hello","digest":"sha256:abc","output":"loaded","duration_secs":1.5,"bytes_sent":7}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
        let started = serde_json::to_string(&Record::new(Event::CargoStarted {})).unwrap();
        assert_eq!(started, r#"{"format_version":1,"type":"cargo-started"}"#);
        assert_eq!(
            serde_json::from_str::<Record>(&started).unwrap().event,
            Event::CargoStarted {}
        );
    }

    #[test]
    fn error_kinds_are_kebab_case() {
        let record = Record::new(Event::Error {
            kind: ErrorKind::DaemonUnreachable,
            message: "no".into(),
        });
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"format_version":1,"type":"error","kind":"daemon-unreachable","message":"no"}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
    }

    #[test]
    fn phases_are_kebab_case_and_named_in_order() {
        let record = Record::new(Event::Phase {
            phase: Phase::CargoMetadata,
            image: None,
            duration_secs: 0.25,
        });
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"format_version":1,"type":"phase","phase":"cargo-metadata","duration_secs":0.25}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), record);
        let line =
            r#"{"format_version":1,"type":"phase","phase":"solve","image":"a","duration_secs":1}"#;
        assert_eq!(
            serde_json::from_str::<Record>(line).unwrap().event,
            Event::Phase {
                phase: Phase::Solve,
                image: Some("a".into()),
                duration_secs: 1.0
            }
        );
        for phase in Phase::ALL {
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
        }
        let mut sorted = Phase::ALL;
        sorted.sort();
        assert_eq!(sorted, Phase::ALL);
        let per_image: Vec<&str> = (Phase::ALL.iter())
            .filter(|phase| phase.per_image())
            .map(|phase| phase.as_str())
            .collect();
        assert_eq!(per_image, ["layout", "fresh", "solve", "export", "finish"]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let line =
            r#"{"format_version":1,"type":"vertex-cached","image":"a","vertex":3,"new":true}"#;
        let record: Record = serde_json::from_str(line).unwrap();
        assert_eq!(
            record.event,
            Event::VertexCached {
                image: "a".into(),
                vertex: 3
            }
        );
    }
}
