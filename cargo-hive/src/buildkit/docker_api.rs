//! The few Docker Engine API calls cargo hive needs next to Docker's embedded BuildKit, over the unix socket.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// `GET path` on the Docker API socket, decoded as JSON.
pub(crate) async fn get_json(
    socket: &Path,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket)
            .await
            .map_err(|err| err.to_string())?;
        // HTTP/1.0: the daemon closes the connection after the body, so reading to the end is the whole answer.
        let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|err| err.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|err| err.to_string())?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            format!(
                "the Docker API did not answer GET {path} within {} s",
                timeout.as_secs()
            )
        })??;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("the Docker API's answer to GET {path} is not HTTP"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "the Docker API answered GET {path} with `{}`",
            status.trim()
        ));
    }
    serde_json::from_slice(&response[split + 4..])
        .map_err(|err| format!("the Docker API's {path} is not JSON: {err}"))
}

/// What doctor needs to know about a Docker daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerInfo {
    /// `ServerVersion`.
    pub(crate) version: String,
    /// Whether images live in containerd's store (then BuildKit can export OCI, docker, image with push).
    pub(crate) containerd_store: bool,
    /// The storage driver (overlay2, overlayfs, ...).
    pub(crate) driver: String,
}

impl DockerInfo {
    /// Reads `/info` from the daemon.
    pub(crate) async fn fetch(socket: &Path) -> Result<DockerInfo, String> {
        let info = get_json(socket, "/info", Duration::from_secs(5)).await?;
        Ok(DockerInfo::from_json(&info))
    }

    fn from_json(info: &serde_json::Value) -> DockerInfo {
        // With the containerd image store, DriverStatus has ["driver-type", "io.containerd.snapshotter.v1"].
        let containerd_store = info["DriverStatus"].as_array().is_some_and(|pairs| {
            pairs.iter().any(|pair| {
                pair[1]
                    .as_str()
                    .is_some_and(|value| value.starts_with("io.containerd.snapshotter"))
            })
        });
        DockerInfo {
            version: info["ServerVersion"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            containerd_store,
            driver: info["Driver"].as_str().unwrap_or("unknown").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_containerd_image_store() {
        let with = serde_json::json!({"ServerVersion": "26.1.5", "Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]});
        let without = serde_json::json!({"ServerVersion": "20.10.24", "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]});
        assert!(DockerInfo::from_json(&with).containerd_store);
        assert!(!DockerInfo::from_json(&without).containerd_store);
        assert_eq!(DockerInfo::from_json(&without).version, "20.10.24");
    }
}
