//! BuildKit addresses: what `--addr`, `BUILDKIT_HOST` and the manifest's `buildkit` key may say.

use std::fmt;
use std::path::PathBuf;

/// Where a BuildKit daemon listens, and how to speak to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// A buildkitd gRPC socket: `unix:///run/buildkit/buildkitd.sock`.
    Unix(PathBuf),
    /// buildkitd on TCP, plain or TLS: `tcp://host:port`.
    Tcp {
        /// Host name or IP literal (brackets stripped for IPv6).
        host: String,
        /// Port.
        port: u16,
    },
    /// Docker's embedded BuildKit over the Docker API socket (HTTP upgrade on `/grpc`).
    Docker(PathBuf),
}

impl Address {
    /// The transport's name as doctor reports it.
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Address::Unix(_) => "unix socket (gRPC)",
            Address::Tcp { .. } => "tcp (gRPC)",
            Address::Docker(_) => "docker API socket (HTTP upgrade to gRPC on /grpc)",
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Address::Docker(path) => write!(f, "docker+unix://{}", path.display()),
        }
    }
}

/// Why an address string is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AddressError {
    /// Nothing given.
    #[error("the BuildKit address is empty")]
    Empty,
    /// No `scheme://`.
    #[error(
        "`{0}` is not a BuildKit address: expected scheme://…, one of unix://PATH, tcp://HOST:PORT, docker://, \
         docker+unix://PATH"
    )]
    NoScheme(String),
    /// A scheme we do not speak.
    #[error(
        "`{address}` uses the unknown scheme `{scheme}://`: cargo hive speaks unix://, tcp://, docker:// \
         and docker+unix://{hint}"
    )]
    UnknownScheme {
        /// The whole address.
        address: String,
        /// The scheme.
        scheme: String,
        /// Extra advice for schemes buildctl knows and we don't.
        hint: String,
    },
    /// Something wrong after the scheme.
    #[error("`{address}` is malformed: {reason}")]
    Malformed {
        /// The whole address.
        address: String,
        /// What is wrong.
        reason: String,
    },
}

/// The Docker API socket used when `docker://` names no path: `DOCKER_HOST` if it is a unix socket, else Docker's
/// default.
pub(crate) fn parse(input: &str, docker_host: Option<&str>) -> Result<Address, AddressError> {
    let address = input.trim();
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    let Some((scheme, rest)) = address.split_once("://") else {
        return Err(AddressError::NoScheme(address.to_owned()));
    };
    let malformed = |reason: &str| AddressError::Malformed {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    match scheme {
        "unix" => Ok(Address::Unix(socket_path(rest).map_err(malformed)?)),
        "docker+unix" => Ok(Address::Docker(socket_path(rest).map_err(malformed)?)),
        "docker" => {
            if !rest.is_empty() {
                return Err(malformed(
                    "docker:// takes no host; use docker+unix:///path/to/docker.sock for another socket",
                ));
            }
            match docker_host {
                Some(host) if !host.trim().is_empty() => match parse(host, None)? {
                    Address::Unix(path) => Ok(Address::Docker(path)),
                    _ => Err(malformed(&format!(
                        "DOCKER_HOST is `{host}`; cargo hive reaches Docker's BuildKit over a unix socket only"
                    ))),
                },
                _ => Ok(Address::Docker(PathBuf::from(DOCKER_DEFAULT_SOCKET))),
            }
        }
        "tcp" => {
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') || rest.contains('?') {
                return Err(malformed("tcp:// takes only HOST:PORT"));
            }
            let (host, port) =
                split_host_port(rest).ok_or_else(|| malformed("expected tcp://HOST:PORT"))?;
            if host.is_empty() {
                return Err(malformed("the host is empty"));
            }
            let port: u16 =
                port.parse().ok().filter(|port| *port != 0).ok_or_else(|| {
                    malformed(&format!("`{port}` is not a port number (1-65535)"))
                })?;
            Ok(Address::Tcp {
                host: host.to_owned(),
                port,
            })
        }
        _ => {
            let hint = match scheme {
                "docker-container" | "podman-container" | "kube-pod" | "ssh" | "npipe"
                | "nerdctl-container" => {
                    "; buildctl knows this scheme, cargo hive does not yet: expose the daemon on a unix or tcp \
                     socket instead"
                }
                "http" | "https" | "grpc" => {
                    "; for a daemon on TCP write tcp://HOST:PORT (TLS is set by --tlscacert)"
                }
                _ => "",
            };
            Err(AddressError::UnknownScheme {
                address: address.to_owned(),
                scheme: scheme.to_owned(),
                hint: hint.to_owned(),
            })
        }
    }
}

/// Docker's default API socket.
pub(crate) const DOCKER_DEFAULT_SOCKET: &str = "/var/run/docker.sock";

fn socket_path(rest: &str) -> Result<PathBuf, &'static str> {
    if rest.is_empty() {
        return Err("the socket path is empty");
    }
    if !rest.starts_with('/') {
        // `unix://relative` is ambiguous (buildctl treats it as relative); absolute paths avoid surprises.
        return Err("the socket path must be absolute (three slashes: unix:///path/to.sock)");
    }
    Ok(PathBuf::from(rest))
}

fn split_host_port(rest: &str) -> Option<(&str, &str)> {
    if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        return Some((host, after.strip_prefix(':')?));
    }
    let (host, port) = rest.rsplit_once(':')?;
    if host.contains(':') {
        return None; // an IPv6 literal needs brackets
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses() {
        let table: &[(&str, Option<&str>, Address)] = &[
            (
                "unix:///run/buildkit/buildkitd.sock",
                None,
                Address::Unix("/run/buildkit/buildkitd.sock".into()),
            ),
            ("  unix:///x.sock ", None, Address::Unix("/x.sock".into())),
            (
                "tcp://127.0.0.1:1234",
                None,
                Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 1234,
                },
            ),
            (
                "tcp://buildkit.local:443/",
                None,
                Address::Tcp {
                    host: "buildkit.local".into(),
                    port: 443,
                },
            ),
            (
                "tcp://[::1]:1234",
                None,
                Address::Tcp {
                    host: "::1".into(),
                    port: 1234,
                },
            ),
            (
                "docker://",
                None,
                Address::Docker(DOCKER_DEFAULT_SOCKET.into()),
            ),
            (
                "docker://",
                Some("unix:///tmp/d.sock"),
                Address::Docker("/tmp/d.sock".into()),
            ),
            (
                "docker://",
                Some(""),
                Address::Docker(DOCKER_DEFAULT_SOCKET.into()),
            ),
            (
                "docker+unix:///var/run/docker.sock",
                None,
                Address::Docker("/var/run/docker.sock".into()),
            ),
        ];
        for (input, docker_host, expected) in table {
            assert_eq!(parse(input, *docker_host).as_ref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn invalid_addresses() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("/run/buildkit/buildkitd.sock", "not a BuildKit address"),
            ("unix://", "socket path is empty"),
            ("unix://relative.sock", "must be absolute"),
            ("tcp://host", "expected tcp://HOST:PORT"),
            ("tcp://:1234", "host is empty"),
            ("tcp://host:port", "not a port number"),
            ("tcp://host:0", "not a port number"),
            ("tcp://host:70000", "not a port number"),
            ("tcp://::1:1234", "expected tcp://HOST:PORT"),
            ("tcp://host:1/path", "only HOST:PORT"),
            ("docker://somehost", "takes no host"),
            ("docker-container://buildkitd", "buildctl knows this scheme"),
            ("http://127.0.0.1:1234", "tcp://HOST:PORT"),
            ("ssh://me@host", "buildctl knows this scheme"),
            ("gopher://x", "unknown scheme `gopher://`"),
        ];
        for (input, fragment) in table {
            let err = parse(input, None).expect_err(input).to_string();
            assert!(err.contains(fragment), "{input}: {err}");
        }
        let err = parse("docker://", Some("tcp://1.2.3.4:2375"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unix socket only"), "{err}");
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "unix:///a.sock",
            "tcp://h:1",
            "tcp://[::1]:2",
            "docker+unix:///d.sock",
        ] {
            let address = parse(input, None).unwrap();
            assert_eq!(parse(&address.to_string(), None).unwrap(), address);
        }
    }
}
