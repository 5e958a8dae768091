//! `moby.filesync.v1.Auth`: registry credentials for the daemon (pulling a base image, pushing), read the way the
//! Docker CLI reads them: `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`), a per-registry
//! `credHelpers` entry, else the `credsStore`, else the file's own `auths`. Credential helpers are run as
//! `docker-credential-<name> get` with the server address on stdin.
//!
//! Only `Credentials` is served: the token methods answer Unimplemented, on which BuildKit fetches registry tokens
//! itself with the credentials. Secrets are never logged, printed or put in an error.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use hive_proto::session::filesync::auth_server::Auth;
use hive_proto::session::filesync::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use hive_proto::tonic::{self, Request, Response, Status};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// Docker Hub's key in config files and credential stores.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";
/// How long a credential helper may take (it may prompt a keychain); BuildKit itself waits 60 s.
const HELPER_TIMEOUT: Duration = Duration::from_secs(50);
/// What a helper (and so Docker) uses as the user name of an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// A user name and secret (password or identity token); empty for anonymous access.
#[derive(Default, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The user name; empty with an identity token.
    pub(crate) username: String,
    /// The password or identity token.
    pub(crate) secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field(
                "secret",
                &if self.secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// Why credentials could not be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The config file exists but can't be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The config file is not Docker's JSON.
    #[error("{path} is not a valid Docker config file: {source}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The cause (serde's messages never quote the input).
        source: serde_json::Error,
    },
    /// An `auth` value that is not base64 of `user:password`.
    #[error("the `auth` of {server} in {path} is not base64 of user:password")]
    BadAuth {
        /// The registry.
        server: String,
        /// The config file.
        path: PathBuf,
    },
    /// A configured credential helper that is not on PATH.
    #[error(
        "credential helper docker-credential-{name} (configured for {server}) is not installed"
    )]
    HelperMissing {
        /// The helper's name.
        name: String,
        /// The registry.
        server: String,
    },
    /// A credential helper that failed.
    #[error("credential helper docker-credential-{name} failed for {server}: {detail}")]
    HelperFailed {
        /// The helper's name.
        name: String,
        /// The registry.
        server: String,
        /// What went wrong (its error output, never its answer).
        detail: String,
    },
}

/// Where credentials come from.
#[derive(Debug, Clone)]
pub(crate) struct DockerAuth {
    config: Option<PathBuf>,
    /// `PATH` for finding credential helpers; the process's when `None`.
    helper_path: Option<OsString>,
}

impl DockerAuth {
    /// The Docker CLI's config file for this process's environment.
    pub(crate) fn from_env() -> DockerAuth {
        let config = std::env::var_os("DOCKER_CONFIG")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
            .map(|dir| dir.join("config.json"));
        DockerAuth {
            config,
            helper_path: None,
        }
    }

    /// The credentials for a registry host as BuildKit names it (`docker.io`, `localhost:5000`).
    pub(crate) async fn credentials(&self, host: &str) -> Result<Credentials, AuthError> {
        let Some(path) = &self.config else {
            return Ok(Credentials::default());
        };
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.clone(),
                    source,
                });
            }
        };
        let config: ConfigFile =
            serde_json::from_str(&text).map_err(|source| AuthError::Parse {
                path: path.clone(),
                source,
            })?;
        let server = server_address(host);
        let helper = config
            .cred_helpers
            .get(&server)
            .or_else(|| config.cred_helpers.get(host))
            .or(config.creds_store.as_ref())
            .filter(|name| !name.is_empty());
        match helper {
            Some(name) => self.run_helper(name, &server).await,
            None => config.stored(&server, path),
        }
    }

    async fn run_helper(&self, name: &str, server: &str) -> Result<Credentials, AuthError> {
        let failed = |detail: String| AuthError::HelperFailed {
            name: name.to_owned(),
            server: server.to_owned(),
            detail,
        };
        let mut command = tokio::process::Command::new(format!("docker-credential-{name}"));
        command
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(path) = &self.helper_path {
            command.env("PATH", path);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(AuthError::HelperMissing {
                    name: name.to_owned(),
                    server: server.to_owned(),
                });
            }
            Err(err) => return Err(failed(err.to_string())),
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading is judged by its exit status below.
            let _ = stdin.write_all(server.as_bytes()).await;
        }
        let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| failed(format!("no answer after {} s", HELPER_TIMEOUT.as_secs())))?
            .map_err(|err| failed(err.to_string()))?;
        if !output.status.success() {
            // Helpers report errors on stdout (and some on stderr); neither holds a secret then.
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            if text.contains("credentials not found") {
                return Ok(Credentials::default());
            }
            let first = text
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("");
            return Err(failed(format!(
                "{} ({})",
                first.chars().take(200).collect::<String>(),
                output.status
            )));
        }
        let reply: HelperReply = serde_json::from_slice(&output.stdout)
            .map_err(|err| failed(format!("unreadable answer: {err}")))?;
        Ok(if reply.username == TOKEN_USERNAME {
            Credentials {
                username: String::new(),
                secret: reply.secret,
            }
        } else {
            Credentials {
                username: reply.username,
                secret: reply.secret,
            }
        })
    }
}

/// How the Docker CLI names a registry host in its config: Docker Hub by its legacy v1 URL.
fn server_address(host: &str) -> String {
    match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

/// Docker's `ConvertToHostname`: a config key without scheme and path.
fn hostname(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// The parts of Docker's config file we read.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthEntry { <redacted> }")
    }
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl ConfigFile {
    /// Credentials stored in the file itself (no helper).
    fn stored(&self, server: &str, path: &std::path::Path) -> Result<Credentials, AuthError> {
        let entry = self.auths.get(server).or_else(|| {
            self.auths
                .iter()
                .find(|(key, _)| hostname(key) == hostname(server))
                .map(|(_, entry)| entry)
        });
        let Some(entry) = entry else {
            return Ok(Credentials::default());
        };
        if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Credentials {
                username: String::new(),
                secret: token.clone(),
            });
        }
        if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
            let bad = || AuthError::BadAuth {
                server: server.to_owned(),
                path: path.to_owned(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, secret) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Credentials {
                username: username.to_owned(),
                secret: secret.to_owned(),
            });
        }
        Ok(Credentials {
            username: entry.username.clone().unwrap_or_default(),
            secret: entry.password.clone().unwrap_or_default(),
        })
    }
}

/// The Auth service of one session.
pub(crate) struct AuthService {
    auth: DockerAuth,
}

impl AuthService {
    /// Answers from `auth`.
    pub(crate) fn new(auth: DockerAuth) -> Self {
        AuthService { auth }
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        let credentials = self
            .auth
            .credentials(&host)
            .await
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok(Response::new(CredentialsResponse {
            username: credentials.username,
            secret: credentials.secret,
        }))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("use Credentials"))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("use Credentials"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("use Credentials"))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn auth_with(dir: &Path, config: &str) -> DockerAuth {
        let path = dir.join("config.json");
        fs::write(&path, config).unwrap();
        DockerAuth {
            config: Some(path),
            helper_path: Some(format!("{}:/usr/bin:/bin", dir.display()).into()),
        }
    }

    fn credentials(username: &str, secret: &str) -> Credentials {
        Credentials {
            username: username.into(),
            secret: secret.into(),
        }
    }

    #[tokio::test]
    async fn auths_entries_base64_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth_with(
            dir.path(),
            r#"{
                "auths": {
                    "localhost:5000": {"auth": "dXNlcjpwYTpzcw=="},
                    "https://index.docker.io/v1/": {"username": "hub", "password": "hubpass"},
                    "http://other.example/v2/": {"identitytoken": "tok"},
                    "broken.example": {"auth": "!!!"}
                },
                "HttpHeaders": {"X": "y"}
            }"#,
        );
        assert_eq!(
            auth.credentials("localhost:5000").await.unwrap(),
            credentials("user", "pa:ss")
        );
        for hub in ["docker.io", "registry-1.docker.io"] {
            assert_eq!(
                auth.credentials(hub).await.unwrap(),
                credentials("hub", "hubpass")
            );
        }
        assert_eq!(
            auth.credentials("other.example").await.unwrap(),
            credentials("", "tok")
        );
        assert_eq!(
            auth.credentials("unknown.example").await.unwrap(),
            Credentials::default()
        );
        let err = auth.credentials("broken.example").await.unwrap_err();
        assert!(matches!(err, AuthError::BadAuth { .. }), "{err}");
        assert!(!err.to_string().contains("!!!"));
    }

    #[tokio::test]
    async fn missing_or_invalid_config() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DockerAuth {
            config: Some(dir.path().join("nope.json")),
            helper_path: None,
        };
        assert_eq!(
            missing.credentials("docker.io").await.unwrap(),
            Credentials::default()
        );
        let invalid = auth_with(dir.path(), "{not json");
        assert!(matches!(
            invalid.credentials("docker.io").await,
            Err(AuthError::Parse { .. })
        ));
    }

    #[tokio::test]
    async fn credential_helpers_and_stores() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"#!/bin/sh
[ "$1" = "get" ] || exit 3
read -r server || true
case "$server" in
  registry.example:5000) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"id-token"}' "$server" ;;
  broken.example) echo "keychain locked" >&2; exit 1 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;
        let helper = dir.path().join("docker-credential-fake");
        fs::write(&helper, script).unwrap();
        fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
        let auth = auth_with(
            dir.path(),
            r#"{
                "auths": {"registry.example:5000": {"auth": "ZmlsZTpmaWxl"}, "plain.example": {"auth": "ZmlsZTpmaWxl"}},
                "credsStore": "fake",
                "credHelpers": {"plain.example": "", "missing.example": "absent"}
            }"#,
        );
        // The store wins over the file.
        assert_eq!(
            auth.credentials("registry.example:5000").await.unwrap(),
            credentials("helper-user", "helper-pass")
        );
        assert_eq!(
            auth.credentials("docker.io").await.unwrap(),
            credentials("", "id-token")
        );
        assert_eq!(
            auth.credentials("nothing.example").await.unwrap(),
            Credentials::default()
        );
        let err = auth.credentials("broken.example").await.unwrap_err();
        assert!(err.to_string().contains("keychain locked"), "{err}");
        let err = auth.credentials("missing.example").await.unwrap_err();
        assert!(matches!(err, AuthError::HelperMissing { .. }), "{err}");
        // An empty helper name means the file itself for that registry, as in Docker, not the store.
        assert_eq!(
            auth.credentials("plain.example").await.unwrap(),
            credentials("file", "file")
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?}", credentials("me", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(hostname("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(hostname("localhost:5000"), "localhost:5000");
    }
}
