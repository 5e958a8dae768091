//! What the build engine reports. BuildKit's own status stream is fed raw through [`super::Progress::status`];
//! durations are measured by the progress side from the injected clock, so the engine only says what happened.

/// A fact about the build, sent by the engine through [`super::Progress::event`].
/// (Internal: the renderers consume `hive_build::progress::Event`, which the tracker makes of these.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EngineEvent {
    /// cargo started compiling the binaries (cargo renders its own progress meanwhile).
    CargoStarted,
    /// cargo exited.
    CargoFinished {
        /// Whether cargo succeeded.
        success: bool,
    },
    /// The solve of an image started.
    ImageStarted {
        /// The image's name.
        image: String,
        /// The image's first reference.
        reference: String,
        /// The platforms built.
        platforms: Vec<String>,
    },
    /// The session has sent `bytes_sent` bytes of local files for `image` so far.
    BytesSent {
        /// The image.
        image: String,
        /// The running total.
        bytes_sent: u64,
    },
    /// An image was built and exported.
    ImageFinished {
        /// The image.
        image: String,
        /// Its digest, when the exporter reported one.
        digest: Option<String>,
        /// Where it went: a path, `loaded` or `pushed`.
        output: String,
    },
    /// An image failed.
    ImageFailed {
        /// The image.
        image: String,
        /// The error, rendered.
        error: String,
    },
    /// A warning the tty renderer must print above its live lines rather than have it overwritten.
    Warning {
        /// The image concerned, if any.
        image: Option<String>,
        /// The message.
        message: String,
    },
    /// The build failed, and why (said once, before [`EngineEvent::BuildFinished`]).
    Failed {
        /// The class of the failure.
        kind: hive_build::progress::ErrorKind,
        /// The error, rendered without its causes.
        message: String,
    },
    /// A stage of the build ended (for tools: only the JSON renderer shows it). The tracker splits an image's
    /// [`hive_build::progress::Phase::Solve`] into the solve and the daemon's export.
    Phase {
        /// The stage.
        phase: hive_build::progress::Phase,
        /// The image, for a stage of one image.
        image: Option<String>,
        /// How long it took.
        duration: std::time::Duration,
    },
    /// All images are done; renderers print a summary.
    BuildFinished {
        /// Whether the engine ended without an error (an interrupt or a connection error fails the build even
        /// when no image did).
        success: bool,
    },
}
