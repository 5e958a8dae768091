//! Connection errors: each a paragraph that names the address and says what to do.

use std::path::PathBuf;
use std::time::Duration;

use super::address::AddressError;

/// Starting BuildKit, shown when nothing answers.
pub(crate) const HOW_TO_START: &str = "start one with `scripts/buildkit-up` (Docker Engine with its embedded \
     BuildKit), run buildkitd, or point cargo hive at a daemon with --addr or BUILDKIT_HOST";

/// Why BuildKit could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The configured address does not parse.
    #[error("the BuildKit address from {origin} is invalid: {reason}")]
    BadAddress {
        /// Where it came from (`--addr`, `BUILDKIT_HOST`, the manifest).
        origin: String,
        /// What is wrong.
        reason: AddressError,
    },
    /// No file at the socket path.
    #[error("no BuildKit at {address}: {} does not exist; is the daemon running? {HOW_TO_START}", path.display())]
    NoSocket {
        /// The address.
        address: String,
        /// The socket path.
        path: PathBuf,
    },
    /// The path exists and is not a socket.
    #[error("cannot connect to {address}: {} is not a socket; check the path", path.display())]
    NotASocket {
        /// The address.
        address: String,
        /// The path.
        path: PathBuf,
    },
    /// TLS options or the TLS handshake failed.
    #[error(
        "TLS to {address} failed: {detail}; check --tlscacert/--tlscert/--tlskey and that --tlsservername matches \
         the name in the daemon's certificate"
    )]
    Tls {
        /// The address.
        address: String,
        /// What failed.
        detail: String,
    },
    /// TLS settings for an address that has no TLS (only `tcp://` has).
    #[error(
        "TLS options ({options}) apply only to tcp:// addresses, but {target}; drop them, or give the daemon's \
         tcp://HOST:PORT address"
    )]
    TlsWithoutTcp {
        /// The options, as flags or manifest keys.
        options: String,
        /// What the address is, and where it came from.
        target: String,
    },
    /// Connection refused, reset, or similar.
    #[error(
        "cannot connect to BuildKit at {address}: {detail}; is the daemon running and listening there?"
    )]
    Unreachable {
        /// The address.
        address: String,
        /// What failed.
        detail: String,
    },
    /// Nothing answered in time.
    #[error(
        "BuildKit at {address} did not answer within {} s: something accepts connections there but does not speak \
         BuildKit's gRPC (wrong port or socket, a proxy, or a hung daemon)",
        after.as_secs_f32()
    )]
    Timeout {
        /// The address.
        address: String,
        /// How long we waited.
        after: Duration,
    },
    /// The peer accepted the connection, but its bytes are not gRPC over HTTP/2.
    #[error(
        "{address} did not answer as BuildKit (it is not a gRPC/HTTP2 server){hint}{}",
        detail.as_ref().map(|detail| format!("; the transport said: {detail}")).unwrap_or_default()
    )]
    NotBuildkit {
        /// The address.
        address: String,
        /// What the address may have meant instead.
        hint: &'static str,
        /// The transport's own words, with `-v`.
        detail: Option<String>,
    },
    /// The daemon answered, but not like BuildKit.
    #[error("{address} answered, but not as BuildKit: {detail}")]
    Protocol {
        /// The address.
        address: String,
        /// What it said.
        detail: String,
    },
    /// Auto-detection found nothing.
    #[error("no BuildKit found; tried:\n{}\n{HOW_TO_START}", tried.iter().map(|line| format!("  - {line}")).collect::<Vec<_>>().join("\n"))]
    NothingReachable {
        /// One line per candidate: address, origin, and why it failed.
        tried: Vec<String>,
    },
}

impl ConnectError {
    /// One short clause for the list of candidates tried.
    pub(crate) fn short(&self) -> String {
        match self {
            ConnectError::BadAddress { reason, .. } => reason.to_string(),
            ConnectError::NoSocket { path, .. } => format!("no socket at {}", path.display()),
            ConnectError::NotASocket { path, .. } => format!("{} is not a socket", path.display()),
            ConnectError::Tls { detail, .. } => format!("TLS failed: {detail}"),
            ConnectError::TlsWithoutTcp { .. } => "TLS options without a tcp:// address".to_owned(),
            ConnectError::Unreachable { detail, .. } => detail.clone(),
            ConnectError::Timeout { after, .. } => {
                format!("no answer within {} s", after.as_secs_f32())
            }
            ConnectError::Protocol { detail, .. } => format!("not BuildKit: {detail}"),
            ConnectError::NotBuildkit { .. } => "not BuildKit (not a gRPC/HTTP2 server)".to_owned(),
            ConnectError::NothingReachable { .. } => "nothing reachable".to_owned(),
        }
    }
}
