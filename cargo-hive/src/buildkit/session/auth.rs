//! `moby.filesync.v1.Auth`: registry credentials for the daemon (pulling a base image, pushing), read the way the
//! Docker CLI reads them: `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`), a per-registry
//! `credHelpers` entry, else the `credsStore`, else the file's own `auths`. Credential helpers are run as
//! `docker-credential-<name> get` with the server address on stdin.
//!
//! Only `Credentials` is served: the token methods answer Unimplemented, on which BuildKit fetches registry tokens
//! itself with the credentials. Secrets are never logged, printed or put in an error: the config file and a
//! helper's answer are read as untyped JSON and checked by hand, because serde's type errors quote the offending
//! value, and a helper's failure output is never quoted. Each helper is asked at most once per registry per
//! process (one `cargo hive build`): every session and the Docker API push share its answer, failures included.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use hive_proto::session::filesync::auth_server::Auth;
use hive_proto::session::filesync::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use hive_proto::tonic::{self, Request, Response, Status};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

/// Docker Hub's key in config files and credential stores.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";
/// How long a credential helper may take (a keychain prompt fits). Asked once per build, so this is the most a
/// helper that never answers can cost.
const HELPER_TIMEOUT: Duration = Duration::from_secs(20);
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

/// Why credentials could not be found. No variant holds any part of a credential: values are named by file (or
/// helper) and key, never quoted.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum AuthError {
    /// The config file exists but can't be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The cause.
        source: Arc<io::Error>,
    },
    /// The config file is not JSON (serde_json's syntax errors hold only a position; we keep just that).
    #[error("{path} is not valid JSON (line {line}, column {column})")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// A value of the config file with the wrong JSON type.
    #[error("`{key}` in {path} must be {expected}, not {found}")]
    WrongType {
        /// The config file.
        path: PathBuf,
        /// Where the value is, e.g. `auths."localhost:5000".password`.
        key: String,
        /// The type Docker expects there.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// An `auth` value that is not base64 of `user:password`.
    #[error("`auths.\"{key}\".auth` in {path} is not base64 of user:password")]
    BadAuth {
        /// The registry's key in `auths`.
        key: String,
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
    /// A credential helper that could not be started.
    #[error("cannot run credential helper docker-credential-{name} for {server}: {source}")]
    HelperSpawn {
        /// The helper's name.
        name: String,
        /// The registry.
        server: String,
        /// The cause.
        source: Arc<io::Error>,
    },
    /// A credential helper that did not answer in time (it was killed).
    #[error(
        "credential helper docker-credential-{name} did not answer for {server} within {} s",
        timeout.as_secs()
    )]
    HelperTimeout {
        /// The helper's name.
        name: String,
        /// The registry.
        server: String,
        /// How long it had.
        timeout: Duration,
    },
    /// A credential helper that failed. Its output is not shown: a half-working helper may print the secret.
    #[error(
        "credential helper docker-credential-{name} failed for {server} ({status}); its output is not shown, \
         as it may hold a credential: run `echo {server} | docker-credential-{name} get` to see it"
    )]
    HelperFailed {
        /// The helper's name.
        name: String,
        /// The registry.
        server: String,
        /// Its exit status.
        status: String,
    },
    /// A credential helper's answer that is not what the protocol says.
    #[error("credential helper docker-credential-{name} answered for {server} with {problem}")]
    HelperAnswer {
        /// The helper's name.
        name: String,
        /// The registry.
        server: String,
        /// What is wrong with it.
        problem: AnswerProblem,
    },
}

/// What is wrong with a credential helper's answer (which must be `{"Username": "...", "Secret": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AnswerProblem {
    /// Not JSON at all.
    #[error("output that is not JSON (line {line}, column {column})")]
    NotJson {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// JSON, but not an object.
    #[error("{found} instead of a JSON object")]
    NotObject {
        /// The type found.
        found: &'static str,
    },
    /// A field with the wrong type.
    #[error("`{key}` as {found}, not a string")]
    WrongType {
        /// `Username` or `Secret`.
        key: &'static str,
        /// The type found.
        found: &'static str,
    },
}

/// One helper's answer for one registry, computed once and awaited by every asker.
type SharedAnswer = Shared<BoxFuture<'static, Result<Credentials, AuthError>>>;

/// Where credentials come from.
#[derive(Debug, Clone)]
pub(crate) struct DockerAuth {
    config: Option<PathBuf>,
    /// `PATH` for finding credential helpers; the process's when `None`.
    helper_path: Option<OsString>,
    helper_timeout: Duration,
    /// Helpers' answers by (helper, server).
    answers: Arc<Mutex<HashMap<(String, String), SharedAnswer>>>,
}

impl DockerAuth {
    /// The Docker CLI's config file for this process's environment. One instance per process, so that a build's
    /// sessions and pushes share what the credential helpers answered.
    pub(crate) fn from_env() -> DockerAuth {
        static SHARED: OnceLock<DockerAuth> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let config = std::env::var_os("DOCKER_CONFIG")
                    .filter(|dir| !dir.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker"))
                    })
                    .map(|dir| dir.join("config.json"));
                DockerAuth::new(config, None)
            })
            .clone()
    }

    fn new(config: Option<PathBuf>, helper_path: Option<OsString>) -> DockerAuth {
        DockerAuth {
            config,
            helper_path,
            helper_timeout: HELPER_TIMEOUT,
            answers: Arc::default(),
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
                    source: Arc::new(source),
                });
            }
        };
        let config = ConfigFile::parse(path, &text)?;
        let server = server_address(host);
        match config.helper(&server, host)? {
            Some(name) => self.helper_answer(name, &server).await,
            None => config.stored(&server),
        }
    }

    /// What helper `name` answers for `server`: asked once, the answer (or failure) kept for every later asker.
    /// The helper runs in a task of its own, so an asker that gives up (BuildKit cancelling its call) does not
    /// make the next one ask again.
    async fn helper_answer(&self, name: &str, server: &str) -> Result<Credentials, AuthError> {
        let answer = {
            let mut answers = self.answers.lock().expect("not poisoned");
            answers
                .entry((name.to_owned(), server.to_owned()))
                .or_insert_with(|| {
                    let task = tokio::spawn(run_helper(
                        name.to_owned(),
                        server.to_owned(),
                        self.helper_path.clone(),
                        self.helper_timeout,
                    ));
                    let (name, server) = (name.to_owned(), server.to_owned());
                    async move {
                        task.await.unwrap_or_else(|_| {
                            Err(AuthError::HelperFailed {
                                name,
                                server,
                                status: "cancelled".to_owned(),
                            })
                        })
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        answer.await
    }
}

/// Runs `docker-credential-<name> get` once, with a bounded wait (the helper is killed after it).
async fn run_helper(
    name: String,
    server: String,
    helper_path: Option<OsString>,
    timeout: Duration,
) -> Result<Credentials, AuthError> {
    let mut command = tokio::process::Command::new(format!("docker-credential-{name}"));
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(path) = &helper_path {
        command.env("PATH", path);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(AuthError::HelperMissing { name, server });
        }
        Err(source) => {
            return Err(AuthError::HelperSpawn {
                name,
                server,
                source: Arc::new(source),
            });
        }
    };
    let stdin = child.stdin.take();
    let exchange = async {
        if let Some(mut stdin) = stdin {
            // A helper that exits without reading is judged by its exit status below.
            let _ = stdin.write_all(server.as_bytes()).await;
        }
        child.wait_with_output().await
    };
    // Dropping the exchange on timeout drops the child, which kills it.
    let output = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => {
            return Err(AuthError::HelperSpawn {
                name,
                server,
                source: Arc::new(source),
            });
        }
        Err(_) => {
            return Err(AuthError::HelperTimeout {
                name,
                server,
                timeout,
            });
        }
    };
    if !output.status.success() {
        // Docker's helpers say this on stdout for a registry they hold nothing for: anonymous access.
        if String::from_utf8_lossy(&output.stdout).contains("credentials not found") {
            return Ok(Credentials::default());
        }
        return Err(AuthError::HelperFailed {
            name,
            server,
            status: output.status.to_string(),
        });
    }
    parse_answer(&output.stdout).map_err(|problem| AuthError::HelperAnswer {
        name,
        server,
        problem,
    })
}

/// A helper's `{"Username": ..., "Secret": ...}`; `<token>` as the user name marks an identity token.
fn parse_answer(stdout: &[u8]) -> Result<Credentials, AnswerProblem> {
    let value: Value = serde_json::from_slice(stdout).map_err(|err| AnswerProblem::NotJson {
        line: err.line(),
        column: err.column(),
    })?;
    let Value::Object(answer) = value else {
        return Err(AnswerProblem::NotObject {
            found: json_type(&value),
        });
    };
    let field = |key: &'static str| match answer.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(AnswerProblem::WrongType {
            key,
            found: json_type(other),
        }),
    };
    let username = field("Username")?;
    let secret = field("Secret")?;
    Ok(if username == TOKEN_USERNAME {
        Credentials {
            username: String::new(),
            secret,
        }
    } else {
        Credentials { username, secret }
    })
}

/// A JSON value's type, as an error message names it (never the value itself).
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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

/// Docker's config file as untyped JSON; the parts we read are checked as they are read.
struct ConfigFile<'a> {
    path: &'a Path,
    root: Map<String, Value>,
}

impl<'a> ConfigFile<'a> {
    fn parse(path: &'a Path, text: &str) -> Result<ConfigFile<'a>, AuthError> {
        let value: Value = serde_json::from_str(text).map_err(|err| AuthError::Syntax {
            path: path.to_owned(),
            line: err.line(),
            column: err.column(),
        })?;
        match value {
            Value::Object(root) => Ok(ConfigFile { path, root }),
            other => Err(AuthError::WrongType {
                path: path.to_owned(),
                key: "(the whole file)".to_owned(),
                expected: "an object",
                found: json_type(&other),
            }),
        }
    }

    fn wrong_type(&self, key: String, expected: &'static str, found: &Value) -> AuthError {
        AuthError::WrongType {
            path: self.path.to_owned(),
            key,
            expected,
            found: json_type(found),
        }
    }

    /// A top-level object (`auths`, `credHelpers`); absent or null is empty.
    fn section(&self, key: &str) -> Result<Option<&Map<String, Value>>, AuthError> {
        match self.root.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(section)) => Ok(Some(section)),
            Some(other) => Err(self.wrong_type(key.to_owned(), "an object", other)),
        }
    }

    /// A string at `key` of `map` (absent or null is `None`); `shown` names it in an error.
    fn string<'m>(
        &self,
        map: &'m Map<String, Value>,
        key: &str,
        shown: impl FnOnce() -> String,
    ) -> Result<Option<&'m str>, AuthError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(shown(), "a string", other)),
        }
    }

    /// The helper configured for a registry: its `credHelpers` entry, else the `credsStore`. An empty name means
    /// the file's own `auths`, as in Docker.
    fn helper(&self, server: &str, host: &str) -> Result<Option<&str>, AuthError> {
        let mut helper = None;
        if let Some(helpers) = self.section("credHelpers")? {
            for key in [server, host] {
                if helper.is_none() {
                    helper = self.string(helpers, key, || format!("credHelpers.\"{key}\""))?;
                }
            }
        }
        if helper.is_none() {
            helper = self.string(&self.root, "credsStore", || "credsStore".to_owned())?;
        }
        Ok(helper.filter(|name| !name.is_empty()))
    }

    /// Credentials stored in the file itself (no helper): an `auths` entry, matched exactly or by host name.
    fn stored(&self, server: &str) -> Result<Credentials, AuthError> {
        let Some(auths) = self.section("auths")? else {
            return Ok(Credentials::default());
        };
        let found = auths.get_key_value(server).or_else(|| {
            auths
                .iter()
                .find(|(key, _)| hostname(key) == hostname(server))
        });
        let Some((key, entry)) = found else {
            return Ok(Credentials::default());
        };
        let at = format!("auths.\"{key}\"");
        let entry = match entry {
            Value::Null => return Ok(Credentials::default()),
            Value::Object(entry) => entry,
            other => return Err(self.wrong_type(at, "an object", other)),
        };
        let field = |name: &str| self.string(entry, name, || format!("{at}.{name}"));
        if let Some(token) = field("identitytoken")?.filter(|token| !token.is_empty()) {
            return Ok(Credentials {
                username: String::new(),
                secret: token.to_owned(),
            });
        }
        if let Some(auth) = field("auth")?.filter(|auth| !auth.is_empty()) {
            return decode_auth(auth).ok_or_else(|| AuthError::BadAuth {
                key: key.clone(),
                path: self.path.to_owned(),
            });
        }
        Ok(Credentials {
            username: field("username")?.unwrap_or_default().to_owned(),
            secret: field("password")?.unwrap_or_default().to_owned(),
        })
    }
}

/// An `auth` value: base64 of `user:password`.
fn decode_auth(auth: &str) -> Option<Credentials> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, secret) = decoded.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        secret: secret.to_owned(),
    })
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

    /// A secret-looking value no message may contain.
    const SECRET: &str = "73195028461937";

    fn auth_with(dir: &Path, config: &str) -> DockerAuth {
        let path = dir.join("config.json");
        fs::write(&path, config).unwrap();
        DockerAuth::new(
            Some(path),
            Some(format!("{}:/usr/bin:/bin", dir.display()).into()),
        )
    }

    /// Writes `docker-credential-<name>` into `dir`.
    fn helper(dir: &Path, name: &str, script: &str) {
        let path = dir.join(format!("docker-credential-{name}"));
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
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
                    "broken.example": {"auth": "!!!"},
                    "null.example": null,
                    "elsewhere.example": 42
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
        // Entries of other registries are not read, so their types don't matter.
        for anonymous in ["unknown.example", "null.example"] {
            assert_eq!(
                auth.credentials(anonymous).await.unwrap(),
                Credentials::default()
            );
        }
        let err = auth.credentials("broken.example").await.unwrap_err();
        assert!(matches!(err, AuthError::BadAuth { .. }), "{err}");
        assert!(!err.to_string().contains("!!!"));
    }

    #[tokio::test]
    async fn missing_or_invalid_config() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DockerAuth::new(Some(dir.path().join("nope.json")), None);
        assert_eq!(
            missing.credentials("docker.io").await.unwrap(),
            Credentials::default()
        );
        let invalid = auth_with(dir.path(), "{not json");
        assert!(matches!(
            invalid.credentials("docker.io").await,
            Err(AuthError::Syntax {
                line: 1,
                column: 2,
                ..
            })
        ));
    }

    /// Every wrongly typed or unparsable value is named by file and key, and never quoted (serde's own errors
    /// quote it: `invalid type: integer `73195028461937``).
    #[tokio::test]
    async fn config_errors_name_the_key_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let entry = r#"auths."reg.example:5001""#;
        let cases = [
            (
                format!(
                    r#"{{"auths": {{"reg.example:5001": {{"username": "u", "password": {SECRET}}}}}}}"#
                ),
                format!(
                    "`{entry}.password` in {} must be a string, not a number",
                    path.display()
                ),
            ),
            (
                format!(r#"{{"auths": {{"reg.example:5001": "{SECRET}"}}}}"#),
                format!(
                    "`{entry}` in {} must be an object, not a string",
                    path.display()
                ),
            ),
            (
                format!(
                    r#"{{"auths": {{"https://reg.example:5001/v1/": {{"auth": ["{SECRET}"]}}}}}}"#
                ),
                "`auths.\"https://reg.example:5001/v1/\".auth` in".to_owned(),
            ),
            (
                format!(
                    r#"{{"auths": {{"reg.example:5001": {{"identitytoken": {{"t": "{SECRET}"}}}}}}}}"#
                ),
                format!("`{entry}.identitytoken`"),
            ),
            (
                format!(r#"{{"auths": {{"reg.example:5001": {{"username": {SECRET}}}}}}}"#),
                format!("`{entry}.username`"),
            ),
            (
                format!(r#"{{"auths": "{SECRET}"}}"#),
                "`auths` in".to_owned(),
            ),
            (
                format!(r#"["{SECRET}"]"#),
                "must be an object, not an array".to_owned(),
            ),
            (
                format!(r#"{{"credHelpers": {{"reg.example:5001": {SECRET}}}}}"#),
                "`credHelpers.\"reg.example:5001\"` in".to_owned(),
            ),
            (
                format!(r#"{{"credsStore": [{SECRET}]}}"#),
                "`credsStore` in".to_owned(),
            ),
            (
                format!(r#"{{"auths": {{"reg.example:5001": {{"password": {SECRET}x}}}}}}"#),
                format!("{} is not valid JSON (line 1, column", path.display()),
            ),
            (
                format!(r#"{{"auths": {{"reg.example:5001": {{"password": "{SECRET}"#),
                "is not valid JSON".to_owned(),
            ),
        ];
        for (config, expected) in cases {
            let auth = auth_with(dir.path(), &config);
            let err = auth.credentials("reg.example:5001").await.unwrap_err();
            let shown = err.to_string();
            assert!(shown.contains(&expected), "{config}: {shown}");
            assert!(!shown.contains(SECRET), "{config}: {shown}");
            assert!(!format!("{err:?}").contains(SECRET), "{config}: {err:?}");
        }
    }

    #[test]
    fn helper_answers_are_checked_by_hand() {
        assert_eq!(
            parse_answer(br#"{"ServerURL": "x", "Username": "u", "Secret": "s"}"#),
            Ok(credentials("u", "s"))
        );
        assert_eq!(
            parse_answer(br#"{"Username": "<token>", "Secret": "id"}"#),
            Ok(credentials("", "id"))
        );
        let wrong = [
            format!(r#"{{"Username": "u", "Secret": {SECRET}}}"#),
            format!(r#"{{"Username": ["{SECRET}"], "Secret": "x"}}"#),
            format!(r#""{SECRET}""#),
            format!(r#"{{"Secret": "{SECRET}""#),
            format!("{SECRET}x"),
        ];
        for answer in wrong {
            let problem = parse_answer(answer.as_bytes()).unwrap_err();
            assert!(!problem.to_string().contains(SECRET), "{answer}: {problem}");
        }
        assert_eq!(
            parse_answer(format!(r#"{{"Secret": {SECRET}}}"#).as_bytes()),
            Err(AnswerProblem::WrongType {
                key: "Secret",
                found: "a number"
            })
        );
    }

    #[tokio::test]
    async fn credential_helpers_and_stores() {
        let dir = tempfile::tempdir().unwrap();
        helper(
            dir.path(),
            "fake",
            &format!(
                r#"#!/bin/sh
[ "$1" = "get" ] || exit 3
read -r server || true
case "$server" in
  registry.example:5000) printf '{{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}}' "$server" ;;
  https://index.docker.io/v1/) printf '{{"ServerURL":"%s","Username":"<token>","Secret":"id-token"}}' "$server" ;;
  broken.example) printf '{{"Secret":"{SECRET}"'; echo "keychain locked {SECRET}" >&2; exit 1 ;;
  numeric.example) printf '{{"Username":"u","Secret":{SECRET}}}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#
            ),
        );
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
        // A failing helper's output may hold the secret: never quoted.
        let err = auth.credentials("broken.example").await.unwrap_err();
        assert!(matches!(err, AuthError::HelperFailed { .. }), "{err}");
        assert!(err.to_string().contains("docker-credential-fake"), "{err}");
        assert!(!err.to_string().contains(SECRET), "{err}");
        let err = auth.credentials("numeric.example").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential helper docker-credential-fake answered for numeric.example with `Secret` as a \
             number, not a string"
        );
        let err = auth.credentials("missing.example").await.unwrap_err();
        assert!(matches!(err, AuthError::HelperMissing { .. }), "{err}");
        // An empty helper name means the file itself for that registry, as in Docker, not the store.
        assert_eq!(
            auth.credentials("plain.example").await.unwrap(),
            credentials("file", "file")
        );
    }

    /// A helper is asked once per registry, whatever the number of askers, at once or later, and a failure is
    /// kept too.
    #[tokio::test]
    async fn each_helper_is_asked_once_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("count");
        helper(
            dir.path(),
            "counting",
            &format!(
                r#"#!/bin/sh
read -r server || true
echo "$server" >> '{}'
case "$server" in
  good.example) printf '{{"Username":"u","Secret":"s"}}' ;;
  *) exit 1 ;;
esac
"#,
                counter.display()
            ),
        );
        let auth = auth_with(dir.path(), r#"{"credsStore": "counting"}"#);
        for _ in 0..2 {
            let asks = (0..4).map(|_| auth.credentials("good.example"));
            for answer in futures::future::join_all(asks).await {
                assert_eq!(answer.unwrap(), credentials("u", "s"));
            }
            // A clone (another session) shares the answers.
            for _ in 0..3 {
                let err = auth.clone().credentials("bad.example").await.unwrap_err();
                assert!(matches!(err, AuthError::HelperFailed { .. }), "{err}");
            }
        }
        let asked = fs::read_to_string(&counter).unwrap();
        assert_eq!(asked, "good.example\nbad.example\n");
    }

    #[tokio::test]
    async fn a_helper_that_never_answers_is_killed_and_asked_once() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("count");
        helper(
            dir.path(),
            "stuck",
            &format!(
                "#!/bin/sh\necho asked >> '{}'\nexec sleep 600\n",
                counter.display()
            ),
        );
        let mut auth = auth_with(dir.path(), r#"{"credHelpers": {"reg.example": "stuck"}}"#);
        auth.helper_timeout = Duration::from_millis(300);
        for _ in 0..3 {
            let err = auth.credentials("reg.example").await.unwrap_err();
            assert!(matches!(err, AuthError::HelperTimeout { .. }), "{err}");
            assert!(err.to_string().contains("docker-credential-stuck"), "{err}");
        }
        assert_eq!(fs::read_to_string(&counter).unwrap(), "asked\n");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?}", credentials("me", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(hostname("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(hostname("localhost:5000"), "localhost:5000");
    }
}
