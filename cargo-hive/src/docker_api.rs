//! The Docker Engine API client, used by `buildkit` to classify Docker's daemon and by `output` for load and push
//! (and by the freshness check to inspect an image), over Docker's unix socket.

use std::path::Path;
use std::time::Duration;

use oci_spec::distribution::Reference;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Why a Docker Engine API call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerApiError {
    /// The socket could not be reached, written or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No full answer in time.
    #[error("the Docker API did not answer {method} {path} within {} s", after.as_secs())]
    Timeout {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// How long we waited.
        after: Duration,
    },
    /// The answer has no HTTP head.
    #[error("the Docker API's answer to {method} {path} is not HTTP")]
    NotHttp {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
    },
    /// A GET answered with another status than 200.
    #[error("the Docker API answered GET {path} with {status}")]
    Status {
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// A GET answered with a body that is not JSON.
    #[error("the Docker API's {path} is not JSON: {source}")]
    NotJson {
        /// The request path.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A reference Docker could not be asked to push.
    #[error("cannot push `{reference}`: {detail}")]
    BadReference {
        /// The reference.
        reference: String,
        /// Why it does not parse.
        detail: String,
    },
    /// `POST /images/load` refused.
    #[error("Docker refused the image ({status}): {body}")]
    LoadRefused {
        /// The HTTP status.
        status: u16,
        /// Docker's answer.
        body: String,
    },
    /// The load stream reported an error.
    #[error("Docker could not load the image: {0}")]
    LoadFailed(String),
    /// `POST /images/…/push` refused.
    #[error("Docker refused to push {reference} ({status}): {body}")]
    PushRefused {
        /// The reference pushed.
        reference: String,
        /// The HTTP status.
        status: u16,
        /// Docker's answer.
        body: String,
    },
    /// The push stream reported an error.
    #[error("failed to push {reference}: {error}")]
    PushFailed {
        /// The reference pushed.
        reference: String,
        /// Docker's words.
        error: String,
    },
}

/// `GET path` on the Docker API socket, decoded as JSON.
pub(crate) async fn get_json(
    socket: &Path,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, DockerApiError> {
    let (status, body) = request(socket, "GET", path, &[], None, timeout).await?;
    if status != 200 {
        return Err(DockerApiError::Status {
            path: path.to_owned(),
            status,
        });
    }
    serde_json::from_slice(&body).map_err(|source| DockerApiError::NotJson {
        path: path.to_owned(),
        source,
    })
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
    pub(crate) async fn fetch(socket: &Path) -> Result<DockerInfo, DockerApiError> {
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
) -> Result<(u16, Vec<u8>), DockerApiError> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        let mut request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
        if let Some(file) = body {
            let length = tokio::fs::metadata(file).await?.len();
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
        stream.write_all(request.as_bytes()).await?;
        if let Some(file) = body {
            let mut file = tokio::fs::File::open(file).await?;
            tokio::io::copy(&mut file, &mut stream).await?;
        }
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, DockerApiError>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| DockerApiError::Timeout {
            method: method.to_owned(),
            path: path.to_owned(),
            after: timeout,
        })??;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| DockerApiError::NotHttp {
            method: method.to_owned(),
            path: path.to_owned(),
        })?;
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
pub(crate) async fn load(socket: &Path, archive: &Path) -> Result<(), DockerApiError> {
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
        return Err(DockerApiError::LoadRefused {
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    match stream_error(&body) {
        Some(error) => Err(DockerApiError::LoadFailed(error)),
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
) -> Result<(), DockerApiError> {
    let parsed = Reference::try_from(reference).map_err(|err| DockerApiError::BadReference {
        reference: reference.to_owned(),
        detail: err.to_string(),
    })?;
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
        return Err(DockerApiError::PushRefused {
            reference: reference.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    match stream_error(&body) {
        Some(error) => Err(DockerApiError::PushFailed {
            reference: reference.to_owned(),
            error,
        }),
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
