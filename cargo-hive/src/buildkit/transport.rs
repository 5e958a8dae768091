//! Transports to BuildKit: unix socket, TCP (plain or TLS), and Docker's API socket upgraded to gRPC on `/grpc`.
//! Each ends as one tonic [`Channel`]; nothing above this module knows which transport it rides on.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hive_proto::tonic::Status;
use hive_proto::tonic::transport::{Channel, Endpoint, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::address::Address;
use super::errors::ConnectError;
use super::tls::TlsSettings;

/// Opens a channel to `address`, failing within `timeout`.
pub(crate) async fn connect(
    address: &Address,
    tls: &TlsSettings,
    timeout: Duration,
) -> Result<Channel, ConnectError> {
    let fail = |detail: String| ConnectError::Unreachable {
        address: address.to_string(),
        detail,
    };
    let result = match address {
        Address::Unix(path) => {
            check_socket(address, path)?;
            let path = path.clone();
            endpoint("http://localhost", timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { UnixStream::connect(path).await.map(TokioIo::new) }
                }))
                .await
        }
        Address::Docker(path) => {
            check_socket(address, path)?;
            let path = path.clone();
            endpoint("http://localhost", timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { docker_grpc_upgrade(&path).await.map(TokioIo::new) }
                }))
                .await
        }
        Address::Tcp { host, port } => {
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            if tls.is_enabled() {
                let client = tls.client(host).map_err(|err| ConnectError::Tls {
                    address: address.to_string(),
                    detail: err.to_string(),
                })?;
                // TLS is ours rather than tonic's: its loader refuses client certificates buildctl accepts.
                endpoint(&format!("http://{authority}"), timeout)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let (client, authority) = (client.clone(), authority.clone());
                        async move {
                            let tcp = TcpStream::connect(authority).await?;
                            tcp.set_nodelay(true)?;
                            client.handshake(tcp).await.map(TokioIo::new)
                        }
                    }))
                    .await
            } else {
                endpoint(&format!("http://{authority}"), timeout)
                    .connect()
                    .await
            }
        }
    };
    match result {
        Ok(channel) => Ok(channel),
        Err(err) => {
            let detail = chain(&err);
            if is_tls_failure(&detail) {
                Err(ConnectError::Tls {
                    address: address.to_string(),
                    detail,
                })
            } else if detail.contains("timed out") || detail.contains("deadline has elapsed") {
                Err(ConnectError::Timeout {
                    address: address.to_string(),
                    after: timeout,
                })
            } else {
                Err(fail(detail))
            }
        }
    }
}

fn endpoint(uri: &str, timeout: Duration) -> Endpoint {
    Endpoint::from_shared(uri.to_owned())
        .expect("static URI shapes are valid")
        .connect_timeout(timeout)
        // Keepalive notices a daemon that went away mid-build instead of hanging forever.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
}

fn check_socket(address: &Address, path: &Path) -> Result<(), ConnectError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(()),
        Ok(_) => Err(ConnectError::NotASocket {
            address: address.to_string(),
            path: path.to_path_buf(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(ConnectError::NoSocket {
            address: address.to_string(),
            path: path.to_path_buf(),
        }),
        Err(err) => Err(ConnectError::Unreachable {
            address: address.to_string(),
            detail: format!("cannot access {}: {err}", path.display()),
        }),
    }
}

/// Upgrades a Docker API connection to BuildKit's gRPC: `POST /grpc` with `Upgrade: h2c`, answered by `101`.
async fn docker_grpc_upgrade(path: &PathBuf) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(path).await?;
    stream
        .write_all(b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n")
        .await?;
    // Byte by byte: Docker sends its first HTTP/2 frame in the same read as the 101, and it must stay unread.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the Docker daemon closed the connection during the /grpc upgrade",
            ));
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return Err(std::io::Error::other(
                "the Docker daemon's answer to /grpc is not HTTP",
            ));
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(std::io::Error::other(format!(
            "the Docker daemon refused the BuildKit upgrade on /grpc (`{}`); Docker 18.09+ with BuildKit enabled is \
             needed",
            status.trim()
        )));
    }
    Ok(stream)
}

/// An error and its causes on one line (tonic's own Display says only "transport error").
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// A status in words: its message, then the causes under it (tonic's own Display prints their Debug forms).
pub(crate) fn status_detail(status: &Status) -> String {
    let mut parts = vec![status.message().to_owned()];
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.retain(|part| !part.is_empty());
    parts.join(": ")
}

/// Whether a call failed in the transport (the connection broke, or the peer's bytes were not HTTP/2), rather
/// than with a gRPC status the peer sent: tonic makes the former from an error it keeps as the source.
pub(crate) fn is_transport_failure(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

fn is_tls_failure(detail: &str) -> bool {
    [
        "certificate",
        "Certificate",
        "handshake",
        "tls",
        "TLS",
        "NotValidForName",
        "UnknownIssuer",
    ]
    .iter()
    .any(|needle| detail.contains(needle))
}
