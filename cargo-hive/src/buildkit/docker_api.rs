//! The few Docker Engine API calls cargo hive needs next to Docker's embedded BuildKit, over the unix socket.

use std::path::Path;
use std::time::Duration;

use oci_spec::distribution::Reference;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// `GET path` on the Docker API socket, decoded as JSON.
pub(crate) async fn get_json(
    socket: &Path,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let (status, body) = request(socket, "GET", path, &[], None, timeout).await?;
    if status != 200 {
        return Err(format!("the Docker API answered GET {path} with {status}"));
    }
    serde_json::from_slice(&body)
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

/// One HTTP/1.0 exchange on the Docker API socket, with extra headers and an optional file as the body; returns
/// the status code and the body. HTTP/1.0: the daemon closes the connection after the body, so reading to the end
/// is the whole answer. The body streams from the file, so a large archive is never held in memory.
async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&Path>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket)
            .await
            .map_err(|err| err.to_string())?;
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
        if let Some(file) = body {
            let length = tokio::fs::metadata(file)
                .await
                .map_err(|err| err.to_string())?
                .len();
            request.push_str(&format!(
                "Content-Length: {length}\r\nContent-Type: application/x-tar\r\n"
            ));
        } else if method == "POST" {
            request.push_str("Content-Length: 0\r\n");
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|err| err.to_string())?;
        if let Some(file) = body {
            let mut file = tokio::fs::File::open(file)
                .await
                .map_err(|err| err.to_string())?;
            tokio::io::copy(&mut file, &mut stream)
                .await
                .map_err(|err| err.to_string())?;
        }
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
                "the Docker API did not answer {method} {path} within {} s",
                timeout.as_secs()
            )
        })??;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("the Docker API's answer to {method} {path} is not HTTP"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, response[split + 4..].to_vec()))
}

/// The first `error` of a Docker JSON message stream (load and push report failures in the stream, after a 200).
fn stream_error(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|message| message["error"].as_str().map(str::to_owned))
}

/// Loads an image archive (`docker save` format) into Docker: `POST /images/load`.
pub(crate) async fn load(socket: &Path, archive: &Path) -> Result<(), String> {
    let (status, body) = request(
        socket,
        "POST",
        "/images/load?quiet=1",
        &[],
        Some(archive),
        Duration::from_secs(600),
    )
    .await?;
    if status != 200 {
        return Err(format!(
            "Docker refused the image ({status}): {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    match stream_error(&body) {
        Some(error) => Err(format!("Docker could not load the image: {error}")),
        None => Ok(()),
    }
}

/// Pushes an image of Docker's store: `POST /images/{name}/push?tag=…`, with the registry credentials in
/// `X-Registry-Auth` (base64 JSON; `{}` for anonymous).
pub(crate) async fn push(
    socket: &Path,
    reference: &str,
    username: &str,
    secret: &str,
) -> Result<(), String> {
    let parsed = Reference::try_from(reference)
        .map_err(|err| format!("cannot push `{reference}`: {err}"))?;
    let name = format!("{}/{}", parsed.registry(), parsed.repository());
    let tag = parsed.tag().unwrap_or("latest");
    let auth = registry_auth(username, secret);
    let path = format!("/images/{name}/push?tag={tag}");
    let (status, body) = request(
        socket,
        "POST",
        &path,
        &[("X-Registry-Auth", auth)],
        None,
        Duration::from_secs(600),
    )
    .await?;
    if status != 200 {
        return Err(format!(
            "Docker refused to push {reference} ({status}): {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    match stream_error(&body) {
        Some(error) => Err(format!("failed to push {reference}: {error}")),
        None => Ok(()),
    }
}

/// The `X-Registry-Auth` header: base64url of Docker's `AuthConfig` JSON; `{}` for anonymous access, and a
/// secret without a user name is an identity token (what a credential helper's `<token>` user means).
fn registry_auth(username: &str, secret: &str) -> String {
    use base64::Engine;
    let auth = match (username.is_empty(), secret.is_empty()) {
        (true, true) => serde_json::json!({}),
        (true, false) => serde_json::json!({"identitytoken": secret}),
        (false, _) => serde_json::json!({"username": username, "password": secret}),
    };
    base64::engine::general_purpose::URL_SAFE.encode(auth.to_string())
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

    #[test]
    fn registry_auth_header() {
        use base64::Engine;
        let decode = |header: String| -> serde_json::Value {
            let json = base64::engine::general_purpose::URL_SAFE
                .decode(header)
                .unwrap();
            serde_json::from_slice(&json).unwrap()
        };
        assert_eq!(decode(registry_auth("", "")), serde_json::json!({}));
        assert_eq!(
            decode(registry_auth("me", "pw")),
            serde_json::json!({"username": "me", "password": "pw"})
        );
        // Docker uses an identity token as an OAuth refresh token, never as a password.
        assert_eq!(
            decode(registry_auth("", "tok")),
            serde_json::json!({"identitytoken": "tok"})
        );
    }
}
