//! What the connected daemon is and what it can do, found once at connect: `doctor` shows it, the outputs choose
//! their exporters by it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hive_proto::control::InfoRequest;
use hive_proto::control::control_client::ControlClient;
use hive_proto::control::types::WorkerRecord;
use hive_proto::tonic::transport::Channel;
use hive_proto::tonic::{Code, Request};

use super::address::Address;
use super::errors::ConnectError;
use crate::docker_api::DockerInfo;

/// One of the daemon's workers, as doctor shows it.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    /// Its id.
    pub(crate) id: String,
    /// The platforms it builds for, `os/arch[/variant]`.
    pub(crate) platforms: Vec<String>,
    /// Its labels.
    pub(crate) labels: BTreeMap<String, String>,
}

impl Worker {
    pub(super) fn from_wire(record: &WorkerRecord) -> Worker {
        Worker {
            id: record.id.clone(),
            platforms: record.platforms.iter().map(platform_text).collect(),
            labels: record
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A wire platform as text, `os/arch[/variant]`.
fn platform_text(platform: &hive_proto::pb::Platform) -> String {
    let mut text = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        text.push('/');
        text.push_str(&platform.variant);
    }
    text
}

/// How long the daemon gets to answer `Info`.
const INFO_TIMEOUT: Duration = Duration::from_secs(6);

/// Which kind of daemon serves BuildKit, as far as exporting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DaemonKind {
    /// A standalone buildkitd: image, oci, docker, local, tar.
    Buildkitd,
    /// Docker with the containerd image store: everything, plus moby.
    DockerContainerd,
    /// Docker with a graph driver: moby, local, tar only (also when its `/info` could not be read).
    DockerGraphDriver,
    /// Docker whose BuildKit predates the `Info` rpc (Docker 20.10, BuildKit v0.8): a graph driver, so moby,
    /// local and tar only.
    DockerLegacy,
}

impl DaemonKind {
    /// Whether the image-making exporters (`image`, `oci`, `docker`) exist here.
    pub(crate) fn has_image_exporters(self) -> bool {
        matches!(self, DaemonKind::Buildkitd | DaemonKind::DockerContainerd)
    }

    /// Whether BuildKit is Docker's embedded one (`moby` exports straight into its store).
    pub(crate) fn is_docker(self) -> bool {
        !matches!(self, DaemonKind::Buildkitd)
    }
}

/// What Docker's `/info` said, when BuildKit is Docker's.
#[derive(Debug, Clone)]
pub(crate) enum DockerFacts {
    /// Its version and storage.
    Known(DockerInfo),
    /// `/info` failed; the words of the failure.
    Unreadable(String),
}

/// The daemon behind a connection, computed once at connect.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// What kind of daemon it is.
    pub(crate) kind: DaemonKind,
    /// Its BuildKit version, when it says.
    pub(crate) version: Option<String>,
    /// Why there is no version, when there is none.
    pub(crate) version_note: Option<String>,
    /// Docker's own facts (`/info`); `None` for a standalone buildkitd.
    pub(crate) docker: Option<DockerFacts>,
    /// Docker's API socket when BuildKit is Docker's (then `--load` and pushes through Docker go there).
    pub(crate) docker_socket: Option<PathBuf>,
    /// Whether its BuildKit has the `Info` rpc (v0.11+, the release that made attestations).
    pub(crate) info_rpc: bool,
}

impl Daemon {
    /// Asks the daemon at `address`, connected as `control`, what it is.
    pub(super) async fn examine(control: ControlClient<Channel>, address: &Address) -> Daemon {
        let docker_socket = match address {
            Address::Docker(socket) => Some(socket.clone()),
            Address::Unix(_) | Address::Tcp { .. } => None,
        };
        // BuildKit's Info and Docker's /info are independent questions: asked at once.
        let docker = async {
            match &docker_socket {
                Some(socket) => Some(match DockerInfo::fetch(socket).await {
                    Ok(info) => DockerFacts::Known(info),
                    Err(err) => DockerFacts::Unreadable(err.to_string()),
                }),
                None => None,
            }
        };
        let (version, docker) = tokio::join!(version(control, address), docker);
        let (version, info_rpc, version_note) = match version {
            Ok(Some(version)) => (Some(version), true, None),
            Ok(None) => (
                None,
                false,
                Some(
                    "this BuildKit has no Info rpc (older than v0.11, e.g. Docker 20.10)"
                        .to_owned(),
                ),
            ),
            Err(err) => (None, true, Some(err.to_string())),
        };
        Daemon {
            kind: classify(docker.as_ref(), info_rpc),
            version,
            version_note,
            docker,
            docker_socket,
            info_rpc,
        }
    }

    /// The exporters this daemon serves. Docker's BuildKit without the containerd image store has only moby,
    /// local and tar (`image`, `oci` and `docker` answer "exporter could not be found").
    pub(crate) fn exporters(&self) -> Vec<&'static str> {
        match self.kind {
            DaemonKind::Buildkitd => vec!["image", "oci", "docker", "local", "tar"],
            DaemonKind::DockerContainerd => vec!["image", "oci", "docker", "moby", "local", "tar"],
            DaemonKind::DockerGraphDriver | DaemonKind::DockerLegacy => {
                vec!["moby", "local", "tar"]
            }
        }
    }
}

/// The kind, from Docker's `/info` (none for a standalone buildkitd) and whether BuildKit has the `Info` rpc.
fn classify(docker: Option<&DockerFacts>, info_rpc: bool) -> DaemonKind {
    match docker {
        None => DaemonKind::Buildkitd,
        Some(DockerFacts::Known(info)) if info.containerd_store => DaemonKind::DockerContainerd,
        Some(_) if !info_rpc => DaemonKind::DockerLegacy,
        Some(_) => DaemonKind::DockerGraphDriver,
    }
}

/// The daemon's BuildKit version, or `None` for daemons without the `Info` rpc (BuildKit < v0.11, Docker 20.10).
async fn version(
    mut control: ControlClient<Channel>,
    address: &Address,
) -> Result<Option<String>, ConnectError> {
    let request = Request::new(InfoRequest {});
    match tokio::time::timeout(INFO_TIMEOUT, control.info(request)).await {
        Err(_) => Err(ConnectError::Timeout {
            address: address.to_string(),
            after: INFO_TIMEOUT,
        }),
        Ok(Err(status)) if status.code() == Code::Unimplemented => Ok(None),
        Ok(Err(status)) => Err(ConnectError::Protocol {
            address: address.to_string(),
            detail: format!("Info failed: {}", status.message()),
        }),
        Ok(Ok(response)) => Ok(response
            .into_inner()
            .buildkit_version
            .map(|version| version.version)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(containerd_store: bool) -> DockerFacts {
        DockerFacts::Known(DockerInfo {
            version: "26.1.5".to_owned(),
            containerd_store,
            driver: "overlayfs".to_owned(),
        })
    }

    #[test]
    fn the_kind_follows_docker_and_the_info_rpc() {
        assert_eq!(classify(None, true), DaemonKind::Buildkitd);
        assert_eq!(
            classify(Some(&docker(true)), true),
            DaemonKind::DockerContainerd
        );
        assert_eq!(
            classify(Some(&docker(false)), true),
            DaemonKind::DockerGraphDriver
        );
        assert_eq!(
            classify(Some(&docker(false)), false),
            DaemonKind::DockerLegacy
        );
        // A Docker whose /info failed is taken at its most limited.
        assert_eq!(
            classify(Some(&DockerFacts::Unreadable("refused".to_owned())), true),
            DaemonKind::DockerGraphDriver
        );
        assert!(!DaemonKind::DockerLegacy.has_image_exporters());
        assert!(DaemonKind::DockerLegacy.is_docker());
    }
}
