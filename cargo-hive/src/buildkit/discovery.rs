//! Which BuildKit to talk to: `--addr`, then `BUILDKIT_HOST`, then the workspace manifest's `buildkit` key, then
//! auto-detection (rootless buildkitd, rootful buildkitd, `DOCKER_HOST`, Docker's default socket).
//!
//! Everything read from the process environment is captured once in [`Environment`], so resolution is a pure
//! function that unit tests drive with any environment they like.

use std::fmt;
use std::path::PathBuf;

use super::address::{self, Address, AddressError, DOCKER_DEFAULT_SOCKET};
use super::tls::TlsSettings;

/// The rootful buildkitd socket.
pub(crate) const ROOTFUL_BUILDKIT_SOCKET: &str = "/run/buildkit/buildkitd.sock";

/// What resolution reads from the process environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    /// `BUILDKIT_HOST`.
    pub(crate) buildkit_host: Option<String>,
    /// `DOCKER_HOST`.
    pub(crate) docker_host: Option<String>,
    /// `XDG_RUNTIME_DIR`.
    pub(crate) xdg_runtime_dir: Option<PathBuf>,
    /// The user id (for `/run/user/<uid>` when `XDG_RUNTIME_DIR` is unset).
    pub(crate) uid: u32,
    /// The rootful buildkitd socket (a test hook may move it).
    pub(crate) rootful_socket: PathBuf,
    /// Docker's default socket (a test hook may move it).
    pub(crate) docker_default_socket: PathBuf,
}

impl Environment {
    /// Captures the process environment. `__HIVE_ROOTFUL_BUILDKIT_SOCKET` and `__HIVE_DOCKER_DEFAULT_SOCKET` are
    /// test hooks (like nextest's `__NEXTEST_*`): they move the well-known sockets so tests can see a machine
    /// without them.
    pub(crate) fn from_process() -> Self {
        use std::os::unix::fs::MetadataExt;
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Environment {
            buildkit_host: var("BUILDKIT_HOST"),
            docker_host: var("DOCKER_HOST"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            uid: std::fs::metadata("/proc/self")
                .map(|meta| meta.uid())
                .unwrap_or(0),
            rootful_socket: var("__HIVE_ROOTFUL_BUILDKIT_SOCKET")
                .map_or_else(|| PathBuf::from(ROOTFUL_BUILDKIT_SOCKET), PathBuf::from),
            docker_default_socket: var("__HIVE_DOCKER_DEFAULT_SOCKET")
                .map_or_else(|| PathBuf::from(DOCKER_DEFAULT_SOCKET), PathBuf::from),
        }
    }

    fn rootless_socket(&self) -> PathBuf {
        let runtime_dir = self
            .xdg_runtime_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", self.uid)));
        runtime_dir.join("buildkit").join("buildkitd.sock")
    }
}

/// Connection settings from `[workspace.metadata.hive]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ManifestSettings {
    /// The workspace manifest they came from.
    pub(crate) manifest: PathBuf,
    /// `buildkit = "…"`.
    pub(crate) buildkit: Option<String>,
    /// `tlscacert`, `tlscert`, `tlskey`, `tlsservername` (paths relative to the manifest's directory).
    pub(crate) tls: TlsSettings,
}

/// Why a candidate is on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressSource {
    /// `--addr`.
    Flag,
    /// `BUILDKIT_HOST`.
    Env,
    /// `buildkit` in `[workspace.metadata.hive]`.
    Manifest(PathBuf),
    /// The rootless buildkitd socket.
    AutoRootless,
    /// The rootful buildkitd socket.
    AutoRootful,
    /// `DOCKER_HOST`.
    AutoDockerHost,
    /// Docker's default socket.
    AutoDockerDefault,
}

impl AddressSource {
    /// Whether the user named this address (then nothing else is tried).
    pub(crate) fn is_explicit(&self) -> bool {
        matches!(
            self,
            AddressSource::Flag | AddressSource::Env | AddressSource::Manifest(_)
        )
    }

    /// A short machine-readable name.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            AddressSource::Flag => "flag",
            AddressSource::Env => "env",
            AddressSource::Manifest(_) => "manifest",
            AddressSource::AutoRootless => "rootless-buildkitd",
            AddressSource::AutoRootful => "rootful-buildkitd",
            AddressSource::AutoDockerHost => "docker-host",
            AddressSource::AutoDockerDefault => "docker-default",
        }
    }
}

impl fmt::Display for AddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressSource::Flag => f.write_str("--addr"),
            AddressSource::Env => f.write_str("BUILDKIT_HOST"),
            AddressSource::Manifest(path) => write!(
                f,
                "`buildkit` in [workspace.metadata.hive] of {}",
                path.display()
            ),
            AddressSource::AutoRootless => f.write_str("rootless buildkitd socket"),
            AddressSource::AutoRootful => f.write_str("rootful buildkitd socket"),
            AddressSource::AutoDockerHost => f.write_str("DOCKER_HOST's Docker daemon"),
            AddressSource::AutoDockerDefault => f.write_str("Docker daemon on its default socket"),
        }
    }
}

/// An address to try, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Where to connect, or why the configured string is unusable (auto-detection records and skips those).
    pub(crate) address: Result<Address, AddressError>,
    /// Why it is a candidate.
    pub(crate) origin: AddressSource,
}

/// The candidates in the order they are tried. An explicit address (flag, env, manifest) is the only candidate.
pub(crate) fn candidates(
    flag: Option<&str>,
    manifest: Option<&ManifestSettings>,
    env: &Environment,
) -> Vec<Candidate> {
    let docker_host = env.docker_host.as_deref();
    let explicit = flag
        .map(|addr| (addr.to_owned(), AddressSource::Flag))
        .or_else(|| {
            env.buildkit_host
                .clone()
                .map(|addr| (addr, AddressSource::Env))
        })
        .or_else(|| {
            let settings = manifest?;
            settings
                .buildkit
                .clone()
                .map(|addr| (addr, AddressSource::Manifest(settings.manifest.clone())))
        });
    if let Some((addr, origin)) = explicit {
        return vec![Candidate {
            address: address::parse(&addr, docker_host),
            origin,
        }];
    }
    let mut list = vec![
        Candidate {
            address: Ok(Address::Unix(env.rootless_socket())),
            origin: AddressSource::AutoRootless,
        },
        Candidate {
            address: Ok(Address::Unix(env.rootful_socket.clone())),
            origin: AddressSource::AutoRootful,
        },
    ];
    if let Some(host) = docker_host {
        let address = address::parse(host, None).and_then(|address| match address {
            Address::Unix(path) => Ok(Address::Docker(path)),
            _ => Err(AddressError::Malformed {
                address: host.to_owned(),
                reason: "cargo hive reaches Docker's BuildKit over a unix socket only".to_owned(),
            }),
        });
        list.push(Candidate {
            address,
            origin: AddressSource::AutoDockerHost,
        });
    }
    let default = Address::Docker(env.docker_default_socket.clone());
    if !list
        .iter()
        .any(|candidate| candidate.address.as_ref() == Ok(&default))
    {
        list.push(Candidate {
            address: Ok(default),
            origin: AddressSource::AutoDockerDefault,
        });
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            uid: 1000,
            rootful_socket: ROOTFUL_BUILDKIT_SOCKET.into(),
            docker_default_socket: DOCKER_DEFAULT_SOCKET.into(),
            ..Environment::default()
        }
    }

    fn manifest(addr: &str) -> ManifestSettings {
        ManifestSettings {
            manifest: "/ws/Cargo.toml".into(),
            buildkit: Some(addr.into()),
            ..Default::default()
        }
    }

    fn summary(list: &[Candidate]) -> Vec<String> {
        list.iter()
            .map(|candidate| match &candidate.address {
                Ok(address) => format!("{} {address}", candidate.origin.key()),
                Err(_) => format!("{} invalid", candidate.origin.key()),
            })
            .collect()
    }

    #[test]
    fn flag_beats_env_beats_manifest() {
        let mut env = env();
        env.buildkit_host = Some("tcp://env:1".into());
        let m = manifest("tcp://manifest:1");
        assert_eq!(
            summary(&candidates(Some("tcp://flag:1"), Some(&m), &env)),
            ["flag tcp://flag:1"]
        );
        assert_eq!(
            summary(&candidates(None, Some(&m), &env)),
            ["env tcp://env:1"]
        );
        env.buildkit_host = None;
        assert_eq!(
            summary(&candidates(None, Some(&m), &env)),
            ["manifest tcp://manifest:1"]
        );
    }

    #[test]
    fn auto_detection_order() {
        let env = env();
        assert_eq!(
            summary(&candidates(None, None, &env)),
            [
                "rootless-buildkitd unix:///run/user/1000/buildkit/buildkitd.sock",
                "rootful-buildkitd unix:///run/buildkit/buildkitd.sock",
                "docker-default docker+unix:///var/run/docker.sock",
            ]
        );
    }

    #[test]
    fn auto_detection_with_xdg_and_docker_host() {
        let mut env = env();
        env.xdg_runtime_dir = Some("/tmp/xdg".into());
        env.docker_host = Some("unix:///tmp/docker.sock".into());
        assert_eq!(
            summary(&candidates(None, Some(&ManifestSettings::default()), &env)),
            [
                "rootless-buildkitd unix:///tmp/xdg/buildkit/buildkitd.sock",
                "rootful-buildkitd unix:///run/buildkit/buildkitd.sock",
                "docker-host docker+unix:///tmp/docker.sock",
                "docker-default docker+unix:///var/run/docker.sock",
            ]
        );
    }

    #[test]
    fn docker_host_equal_to_default_is_tried_once_and_tcp_docker_host_is_reported() {
        let mut env = env();
        env.docker_host = Some("unix:///var/run/docker.sock".into());
        assert_eq!(summary(&candidates(None, None, &env)).len(), 3);
        env.docker_host = Some("tcp://10.0.0.1:2375".into());
        let list = candidates(None, None, &env);
        assert_eq!(summary(&list)[2], "docker-host invalid");
        assert_eq!(list.len(), 4);
    }

    #[test]
    fn docker_scheme_follows_docker_host() {
        let mut env = env();
        env.docker_host = Some("unix:///custom/docker.sock".into());
        assert_eq!(
            summary(&candidates(Some("docker://"), None, &env)),
            ["flag docker+unix:///custom/docker.sock"]
        );
    }

    #[test]
    fn invalid_explicit_address_is_kept_for_the_error() {
        let list = candidates(Some("bogus"), None, &env());
        assert_eq!(list.len(), 1);
        assert!(list[0].address.is_err());
    }
}
