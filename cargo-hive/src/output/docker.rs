//! The Docker daemon behind `--load` and the pushes that go through Docker: BuildKit's own when BuildKit is
//! Docker's, else `DOCKER_HOST` or Docker's default socket. With a standalone buildkitd it is a second daemon, so
//! it is checked right after connecting, before any image is built for it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::docker_manifest::add_docker_manifest;
use super::{After, Destination, DestinationError};
use crate::buildkit::DaemonKind;
use crate::buildkit::DockerAuth;
use crate::docker_api::{self, DockerInfo};
use crate::plan::Platform;

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

/// The Docker daemon that goes with the BuildKit: its own socket when BuildKit is Docker's (`buildkit_docker`),
/// else `DOCKER_HOST`'s (as the environment was read at start) or Docker's default.
pub(crate) fn docker_endpoint(
    buildkit_docker: Option<&Path>,
    docker_host: Option<&str>,
) -> DockerEndpoint {
    endpoint_from(buildkit_docker, docker_host.map(str::to_owned))
}

fn endpoint_from(buildkit_docker: Option<&Path>, docker_host: Option<String>) -> DockerEndpoint {
    if let Some(socket) = buildkit_docker {
        return DockerEndpoint {
            socket: socket.to_path_buf(),
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
    buildkit_docker: Option<&Path>,
    docker_host: Option<&str>,
) -> Result<(), DestinationError> {
    if daemon != DaemonKind::Buildkitd || !destinations.contains(&Destination::Load) {
        return Ok(());
    }
    let endpoint = load_endpoint(buildkit_docker, docker_host.map(str::to_owned))?;
    match DockerInfo::fetch(&endpoint.socket).await {
        Ok(_) => Ok(()),
        Err(detail) => Err(DestinationError::DockerUnreachable { endpoint, detail }),
    }
}

/// Finishes what BuildKit could not on this daemon: loads archives into Docker (deleting them, loaded or not) and
/// pushes from Docker's store with the user's credentials.
pub(crate) async fn finish(steps: &[After], socket: &Path) -> Result<(), DestinationError> {
    for step in steps {
        match step {
            After::DockerLoad(tar) => {
                let loaded = match add_docker_manifest(tar, &Platform::host()) {
                    Ok(_) => docker_api::load(socket, tar).await.map_err(Into::into),
                    Err(err) => Err(DestinationError::LoadArchive(err)),
                };
                let _ = std::fs::remove_file(tar);
                loaded?;
            }
            After::DockerPush(references) => {
                let auth = DockerAuth::from_env();
                for reference in references {
                    let host = crate::plan::registry_host(reference).map_err(|invalid| {
                        DestinationError::Credentials {
                            reference: reference.clone(),
                            detail: invalid.reason,
                        }
                    })?;
                    let credentials = auth.credentials(&host).await.map_err(|err| {
                        DestinationError::Credentials {
                            reference: reference.clone(),
                            detail: err.to_string(),
                        }
                    })?;
                    docker_api::push(
                        socket,
                        reference,
                        &credentials.username,
                        &credentials.secret,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Where `--load` goes: a `DOCKER_HOST` we cannot load through is an error, not a silent fallback to the default.
fn load_endpoint(
    buildkit_docker: Option<&Path>,
    docker_host: Option<String>,
) -> Result<DockerEndpoint, DestinationError> {
    match docker_host {
        Some(host) if !host.is_empty() && !host.starts_with("unix://") => {
            Err(DestinationError::DockerHostNotUnix(host))
        }
        docker_host => Ok(endpoint_from(buildkit_docker, docker_host)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_say_where_they_came_from() {
        let docker = Some(Path::new("/run/d.sock"));
        let standalone = None;
        let host = Some("unix:///tmp/x.sock".to_owned());
        assert_eq!(
            endpoint_from(docker, host.clone()).to_string(),
            "/run/d.sock (the BuildKit address)"
        );
        assert_eq!(
            endpoint_from(standalone, host).to_string(),
            "/tmp/x.sock (DOCKER_HOST=unix:///tmp/x.sock)"
        );
        let default = endpoint_from(standalone, None);
        assert_eq!(
            default.socket,
            PathBuf::from(crate::buildkit::DOCKER_DEFAULT_SOCKET)
        );
        assert!(default.to_string().contains("default socket"), "{default}");
    }

    #[test]
    fn load_needs_a_unix_docker_host() {
        let standalone = None;
        let err = load_endpoint(standalone, Some("tcp://docker:2375".to_owned())).unwrap_err();
        assert!(
            err.to_string()
                .contains("DOCKER_HOST is `tcp://docker:2375`"),
            "{err}"
        );
        let endpoint = load_endpoint(standalone, Some(String::new())).unwrap();
        assert_eq!(
            endpoint.socket,
            PathBuf::from(crate::buildkit::DOCKER_DEFAULT_SOCKET)
        );
    }
}
