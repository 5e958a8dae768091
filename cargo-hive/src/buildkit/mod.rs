//! Everything that talks to BuildKit: addresses and their resolution, transports, the probed connection, LLB,
//! solves, and what the connected daemon is (its [`Daemon`] record).

mod address;
mod client;
mod daemon;
mod discovery;
pub(crate) mod dockerfile;
mod errors;
mod gateway;
pub(crate) mod layout;
mod llb;
pub(crate) mod over_dockerfile;
mod pack;
mod packing;
mod session;
mod solve;
mod status;
pub(crate) mod steps;
mod tls;
mod transport;

pub(crate) use address::{DOCKER_DEFAULT_SOCKET, parse as parse_address};
pub(crate) use client::{Attempt, Buildkit, ConnectOptions};
pub(crate) use daemon::{Daemon, DaemonKind, DockerFacts};
pub(crate) use discovery::{Environment, ManifestSettings};
pub(crate) use errors::ConnectError;
pub(crate) use gateway::{ExporterSpec, ResolvedImage};
pub(crate) use layout::ConfigError;
pub(crate) use pack::LayerCompression;
pub(crate) use session::{AuthError, DockerAuth, LocalDir, SecretValues, partial_owner};
pub(crate) use solve::{
    BaseError, BaseFacts, BaseQuery, InTotoAttestation, LateFingerprint, LoaderCheck, LoaderNeed,
    PlatformBuild, PlatformSolve, ProvenanceMode, SolveError, SolveJob, Solved,
};
pub(crate) use tls::TlsSettings;

/// A fresh random id for solves and sessions (BuildKit wants them unique per daemon).
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}
