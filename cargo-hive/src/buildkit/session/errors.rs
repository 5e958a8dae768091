//! Errors of the session: setting it up and taking its export.

use std::path::PathBuf;

/// A session that could not start, or an export that could not be delivered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// A session name or shared key that gRPC metadata can't carry (visible ASCII only).
    #[error("the session {what} {value:?} is not valid gRPC metadata (visible ASCII only)")]
    InvalidHeader {
        /// Which header.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// A local dir's staged files cannot be served as given (a bug in the caller).
    #[error("the files staged into local dir `{dir}` cannot be served: {source}")]
    Staged {
        /// The local dir's name.
        dir: String,
        /// Why.
        source: super::walk::StagedError,
    },
    /// The daemon refused or never answered the `Session` call.
    #[error("BuildKit did not accept our session: {detail}")]
    Start {
        /// Why.
        detail: String,
    },
    /// The daemon's export stream broke.
    #[error("the export to {path} failed: {detail}")]
    ExportFailed {
        /// The destination.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// [`super::Session::commit_export`] was called while the daemon was still sending.
    #[error("the export to {path} was still being received")]
    ExportIncomplete {
        /// The destination.
        path: PathBuf,
    },
    /// The received archive could not be moved into place.
    #[error("cannot move the export into place at {path}: {source}")]
    ExportRename {
        /// The destination.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A local file was rewritten while the daemon was reading it.
    #[error(
        "{path} changed while it was being sent to BuildKit (a concurrent build, or a linker rewriting it in \
         place?): the image would hold neither the old file nor the new one, so nothing was written; rebuild once \
         the file is stable"
    )]
    ChangedWhileSent {
        /// The file.
        path: PathBuf,
    },
}
