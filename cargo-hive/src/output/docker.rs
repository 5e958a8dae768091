//! The Docker daemon behind `--load` and the pushes that go through Docker: BuildKit's own when BuildKit is
//! Docker's, else `DOCKER_HOST` or Docker's default socket. With a standalone buildkitd it is a second daemon, so
//! it is checked right after connecting, before any image is built for it.

use std::fmt;
use std::path::PathBuf;

use crate::buildkit::Address;
use super::docker_api::DockerInfo;

use super::{DaemonKind, Destination};

/// A Docker API socket and where its address came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerEndpoint {
    /// The unix socket.
    pub(crate) socket: PathBuf,
    origin: EndpointSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EndpointSource {
    /// The `docker+unix://` BuildKit address.
    Buildkit,
    /// `DOCKER_HOST`, as set.
    DockerHost(String),
    /// Neither: Docker's default.
    Default,
}

impl fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let socket = self.socket.display();
        match &self.origin {
            EndpointSource::Buildkit => write!(f, "{socket} (the BuildKit address)"),
            EndpointSource::DockerHost(value) => write!(f, "{socket} (DOCKER_HOST={value})"),
            EndpointSource::Default => write!(
                f,
                "{socket} (Docker's default socket; set DOCKER_HOST to use another)"
            ),
        }
    }
}

/// Why the images cannot go where they were asked to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DestinationError {
    /// `--load` with no Docker answering.
    #[error(
        "--load loads the images into Docker, but no Docker daemon answers at {endpoint}: {detail}"
    )]
    DockerUnreachable {
        /// Where we looked.
        endpoint: DockerEndpoint,
        /// What went wrong there (in the message, so not a `source`: the chain would print it twice).
        detail: super::docker_api::DockerApiError,
    },
    /// `DOCKER_HOST` names something other than a unix socket.
    #[error(
        "--load with a standalone BuildKit loads the images through Docker's unix socket, but DOCKER_HOST is `{0}`: \
         set it to unix:///path/to/docker.sock"
    )]
    DockerHostNotUnix(String),
}

/// The Docker daemon that goes with the BuildKit at `address`.
pub(crate) fn docker_endpoint(address: &Address) -> DockerEndpoint {
    endpoint_from(address, std::env::var("DOCKER_HOST").ok())
}

fn endpoint_from(address: &Address, docker_host: Option<String>) -> DockerEndpoint {
    if let Address::Docker(socket) = address {
        return DockerEndpoint {
            socket: socket.clone(),
            origin: EndpointSource::Buildkit,
        };
    }
    match docker_host {
        Some(host) if host.starts_with("unix://") => DockerEndpoint {
            socket: PathBuf::from(&host["unix://".len()..]),
            origin: EndpointSource::DockerHost(host),
        },
        _ => DockerEndpoint {
            socket: PathBuf::from(crate::buildkit::DOCKER_DEFAULT_SOCKET),
            origin: EndpointSource::Default,
        },
    }
}

/// Checks that the Docker daemon `--load` needs answers, when Docker is not the BuildKit itself.
pub(crate) async fn check_load_target(
    destinations: &[Destination],
    daemon: DaemonKind,
    address: &Address,
) -> Result<(), DestinationError> {
    if daemon != DaemonKind::Buildkitd || !destinations.contains(&Destination::Load) {
        return Ok(());
    }
    let endpoint = load_endpoint(address, std::env::var("DOCKER_HOST").ok())?;
    match DockerInfo::fetch(&endpoint.socket).await {
        Ok(_) => Ok(()),
        Err(detail) => Err(DestinationError::DockerUnreachable { endpoint, detail }),
    }
}

/// Where `--load` goes: a `DOCKER_HOST` we cannot load through is an error, not a silent fallback to the default.
fn load_endpoint(
    address: &Address,
    docker_host: Option<String>,
) -> Result<DockerEndpoint, DestinationError> {
    match docker_host {
        Some(host) if !host.is_empty() && !host.starts_with("unix://") => {
            Err(DestinationError::DockerHostNotUnix(host))
        }
        docker_host => Ok(endpoint_from(address, docker_host)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_say_where_they_came_from() {
        let docker = Address::Docker("/run/d.sock".into());
        let standalone = Address::Unix("/run/buildkit/buildkitd.sock".into());
        let host = Some("unix:///tmp/x.sock".to_owned());
        assert_eq!(
            endpoint_from(&docker, host.clone()).to_string(),
            "/run/d.sock (the BuildKit address)"
        );
        assert_eq!(
            endpoint_from(&standalone, host).to_string(),
            "/tmp/x.sock (DOCKER_HOST=unix:///tmp/x.sock)"
        );
        let default = endpoint_from(&standalone, None);
        assert_eq!(
            default.socket,
            PathBuf::from(crate::buildkit::DOCKER_DEFAULT_SOCKET)
        );
        assert!(default.to_string().contains("default socket"), "{default}");
    }

    #[test]
    fn load_needs_a_unix_docker_host() {
        let standalone = Address::Tcp {
            host: "buildkit".into(),
            port: 1234,
        };
        let err = load_endpoint(&standalone, Some("tcp://docker:2375".to_owned())).unwrap_err();
        assert!(
            err.to_string()
                .contains("DOCKER_HOST is `tcp://docker:2375`"),
            "{err}"
        );
        let endpoint = load_endpoint(&standalone, Some(String::new())).unwrap();
        assert_eq!(
            endpoint.socket,
            PathBuf::from(crate::buildkit::DOCKER_DEFAULT_SOCKET)
        );
    }
}
