//! Each platform's manifest digest of a pushed image, read back from the registry through `oci-client`: the index
//! (or manifest) by its digest, anonymously first, then with the credentials the Docker CLI would use for that
//! registry (the same resolution the session's Auth service serves BuildKit).

use std::sync::OnceLock;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::index::{
    ACCEPTED, Document, IndexError, PlatformManifest, check_digest, image_manifests, is_index,
    parse, verify,
};
use crate::buildkit::DockerAuth;

/// Each platform's manifest of the image pushed as `reference` (`registry/repo[:tag]`) whose index (or, for a
/// single-platform image, manifest) has `digest`. `platform` names the manifest of a single-platform image, which
/// says nothing about its platform without its config.
pub(crate) async fn index_manifests_from_registry(
    reference: &str,
    digest: &str,
    platform: &str,
) -> Result<Vec<PlatformManifest>, IndexError> {
    let parsed = parse_reference(reference)?;
    let pinned = Reference::with_digest(
        parsed.registry().to_owned(),
        parsed.repository().to_owned(),
        digest.to_owned(),
    );
    check_digest(digest)?;
    let bytes = pull(&pinned, || user_auth(reference)).await?;
    let what = format!("{}@{digest}", parsed.repository());
    verify(&bytes, digest, &what)?;
    let document: Document = parse(&bytes, &what, "image index or manifest")?;
    if is_index(&document.media_type) || !document.manifests.is_empty() {
        return Ok(image_manifests(&document));
    }
    Ok(vec![PlatformManifest {
        platform: platform.to_owned(),
        digest: digest.to_owned(),
    }])
}

/// The manifest bytes of `pinned`: anonymously, then, if the registry wants credentials, with what `credentials`
/// finds (the user's).
async fn pull<F>(pinned: &Reference, credentials: impl FnOnce() -> F) -> Result<Vec<u8>, IndexError>
where
    F: Future<Output = Result<Option<RegistryAuth>, IndexError>>,
{
    let failed = |err: oci_client::errors::OciDistributionError| IndexError::Registry {
        reference: pinned.whole(),
        detail: err.to_string(),
    };
    let anonymous = anonymous_client(pinned)?
        .pull_manifest_raw(pinned, &RegistryAuth::Anonymous, &ACCEPTED)
        .await;
    let error = match anonymous {
        Ok((bytes, _)) => return Ok(bytes.to_vec()),
        Err(error) if needs_credentials(&error) => error,
        Err(error) => return Err(failed(error)),
    };
    let Some(auth) = credentials().await? else {
        return Err(failed(error));
    };
    let (bytes, _) = client(pinned)?
        .pull_manifest_raw(pinned, &auth, &ACCEPTED)
        .await
        .map_err(failed)?;
    Ok(bytes.to_vec())
}

/// The digest the registry holds under `reference` (`registry/repo:tag`) now, by one HEAD request: anonymously,
/// then with the user's credentials if the registry wants them. What a pushed image's up-to-date check compares
/// with the digest it pushed.
pub(crate) async fn tag_digest(reference: &str) -> Result<String, IndexError> {
    let parsed = parse_reference(reference)?;
    let failed = |err: oci_client::errors::OciDistributionError| IndexError::Registry {
        reference: parsed.whole(),
        detail: err.to_string(),
    };
    let anonymous = anonymous_client(&parsed)?
        .fetch_manifest_digest(&parsed, &RegistryAuth::Anonymous)
        .await;
    let error = match anonymous {
        Ok(digest) => return Ok(digest),
        Err(error) if needs_credentials(&error) => error,
        Err(error) => return Err(failed(error)),
    };
    let Some(auth) = user_auth(reference).await? else {
        return Err(failed(error));
    };
    client(&parsed)?
        .fetch_manifest_digest(&parsed, &auth)
        .await
        .map_err(failed)
}

/// `registry/repo[:tag]` as oci-client reads it.
fn parse_reference(reference: &str) -> Result<Reference, IndexError> {
    reference
        .parse()
        .map_err(|err: oci_client::ParseError| IndexError::BadReference {
            reference: reference.to_owned(),
            detail: err.to_string(),
        })
}

/// Whether a registry's refusal asks for credentials (401, or the 403 some registries answer anonymous reads with).
fn needs_credentials(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match error {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => true,
        E::ServerError { code, .. } => *code == 401 || *code == 403,
        E::RegistryError { envelope, .. } => envelope.errors.iter().any(|error| {
            matches!(
                error.code,
                oci_client::errors::OciErrorCode::Unauthorized
                    | oci_client::errors::OciErrorCode::Denied
            )
        }),
        _ => false,
    }
}

/// The user's credentials for the registry of `reference`, as the Docker CLI finds them; `None` when there are
/// none to try.
async fn user_auth(reference: &str) -> Result<Option<RegistryAuth>, IndexError> {
    let host =
        crate::plan::registry_host(reference).map_err(|invalid| IndexError::BadReference {
            reference: reference.to_owned(),
            detail: invalid.reason,
        })?;
    let credentials = DockerAuth::from_env()
        .credentials(&host)
        .await
        .map_err(|source| IndexError::Credentials {
            host: host.clone(),
            source,
        })?;
    Ok(
        match (
            credentials.username.is_empty(),
            credentials.secret.is_empty(),
        ) {
            (false, _) => Some(RegistryAuth::Basic(
                credentials.username,
                credentials.secret,
            )),
            // An identity token is an OAuth refresh token, which this client cannot exchange; nothing else to try.
            (true, _) => None,
        },
    )
}

/// The client for anonymous reads, made once per protocol: making one loads the system's root certificates, which
/// costs more than the read itself. It only ever holds anonymous access (oci-client keeps one per registry).
fn anonymous_client(reference: &Reference) -> Result<Client, IndexError> {
    static HTTP: OnceLock<Client> = OnceLock::new();
    static HTTPS: OnceLock<Client> = OnceLock::new();
    let cell = if is_loopback(reference.resolve_registry()) {
        &HTTP
    } else {
        &HTTPS
    };
    if let Some(client) = cell.get() {
        return Ok(client.clone());
    }
    let client = client(reference)?;
    Ok(cell.get_or_init(|| client).clone())
}

/// A client for the registry of `reference`: plain HTTP for loopback registries, as Docker (127.0.0.0/8 is an
/// insecure registry by default) and BuildKit (`localhost`, `127.0.0.1`) do; HTTPS with the system's roots
/// elsewhere.
fn client(reference: &Reference) -> Result<Client, IndexError> {
    // reqwest's rustls takes the process's provider; ours is ring. Installing it again is refused, harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = reference.resolve_registry();
    let protocol = if is_loopback(registry) {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    Client::try_from(ClientConfig {
        protocol,
        ..ClientConfig::default()
    })
    .map_err(|err| IndexError::Registry {
        reference: reference.whole(),
        detail: err.to_string(),
    })
}

/// Whether a registry host (`host[:port]`) is this machine.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use sha2::{Digest as _, Sha256};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `Basic` of `me:pw`.
    const GOOD: &str = "Basic bWU6cHc=";

    /// A fake registry on a loopback port serving one manifest, `body`, as `app@digest`; with `basic`, only to
    /// requests that carry [`GOOD`] (else 401 with a Basic challenge). Records each request's line and whether it
    /// carried credentials.
    async fn fake_registry(
        body: Vec<u8>,
        media_type: &'static str,
        basic: bool,
    ) -> (String, String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (manifest_path, log) = (format!("/v2/app/manifests/{digest}"), seen.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (body, manifest_path, log) = (body.clone(), manifest_path.clone(), log.clone());
                tokio::spawn(async move {
                    let mut read = Vec::new();
                    loop {
                        let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") else {
                            let mut buf = [0; 4096];
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => read.extend_from_slice(&buf[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&read[..end]).to_string();
                        read.drain(..end + 4);
                        let line = head.lines().next().unwrap_or("").to_owned();
                        let authorized = head.lines().any(|l| {
                            l.to_ascii_lowercase().starts_with("authorization:")
                                && l.ends_with(GOOD)
                        });
                        log.lock()
                            .unwrap()
                            .push(format!("{line} auth={authorized}"));
                        let path = line.split(' ').nth(1).unwrap_or("");
                        let (status, extra, payload) = if basic && !authorized {
                            (
                                "401 Unauthorized",
                                "WWW-Authenticate: Basic realm=\"fake\"\r\n".to_owned(),
                                b"{}".to_vec(),
                            )
                        } else if path == "/v2/" {
                            ("200 OK", String::new(), b"{}".to_vec())
                        } else if path == manifest_path {
                            (
                                "200 OK",
                                format!("Content-Type: {media_type}\r\n"),
                                body.clone(),
                            )
                        } else {
                            ("404 Not Found", String::new(), b"{}".to_vec())
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n",
                            payload.len()
                        );
                        let sent = stream.write_all(answer.as_bytes()).await;
                        if sent.is_err() || stream.write_all(&payload).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("127.0.0.1:{port}/app:1"), digest, seen)
    }

    fn index_body() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aa", "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bb", "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:cc", "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            ],
        }))
        .unwrap()
    }

    fn pinned(reference: &str, digest: &str) -> Reference {
        let parsed: Reference = reference.parse().unwrap();
        Reference::with_digest(
            parsed.registry().to_owned(),
            parsed.repository().to_owned(),
            digest.to_owned(),
        )
    }

    #[tokio::test]
    async fn reads_an_index_anonymously_without_asking_for_credentials() {
        let (reference, digest, seen) = fake_registry(
            index_body(),
            "application/vnd.oci.image.index.v1+json",
            false,
        )
        .await;
        let never = || async { panic!("credentials asked for an open registry") };
        let bytes = pull(&pinned(&reference, &digest), never).await.unwrap();
        assert_eq!(bytes, index_body());
        let platforms = index_manifests_from_registry(&reference, &digest, "linux/amd64")
            .await
            .unwrap();
        let platforms: Vec<(&str, &str)> = platforms
            .iter()
            .map(|m| (m.platform.as_str(), m.digest.as_str()))
            .collect();
        assert_eq!(
            platforms,
            [("linux/amd64", "sha256:aa"), ("linux/arm64", "sha256:bb")]
        );
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|line| line.ends_with("auth=false")),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn falls_back_to_the_users_credentials_when_the_registry_wants_them() {
        let (reference, digest, seen) = fake_registry(
            index_body(),
            "application/vnd.oci.image.index.v1+json",
            true,
        )
        .await;
        let pinned = pinned(&reference, &digest);
        let user = || async { Ok(Some(RegistryAuth::Basic("me".into(), "pw".into()))) };
        assert_eq!(pull(&pinned, user).await.unwrap(), index_body());
        let manifest_reads: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("/manifests/"))
            .cloned()
            .collect();
        assert_eq!(
            manifest_reads.last().map(|l| l.ends_with("auth=true")),
            Some(true),
            "{manifest_reads:?}"
        );
        // No credentials to try: the registry's refusal, in words that name what was asked.
        let none = || async { Ok(None) };
        let err = pull(&pinned, none).await.unwrap_err();
        assert!(
            matches!(&err, IndexError::Registry { reference, .. } if reference.ends_with(&digest)),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_single_platform_manifest_is_its_own_platform() {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:dd", "size": 1},
            "layers": [],
        }))
        .unwrap();
        let (reference, digest, _) = fake_registry(
            manifest,
            "application/vnd.docker.distribution.manifest.v2+json",
            false,
        )
        .await;
        let platforms = index_manifests_from_registry(&reference, &digest, "linux/arm64")
            .await
            .unwrap();
        assert_eq!(
            platforms,
            [PlatformManifest {
                platform: "linux/arm64".into(),
                digest: digest.clone()
            }]
        );
        let err = index_manifests_from_registry(&reference, "sha256:short", "linux/arm64")
            .await
            .unwrap_err();
        assert!(matches!(err, IndexError::BadDigest(_)), "{err}");
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        for loopback in [
            "localhost:5000",
            "localhost",
            "127.0.0.1:5001",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(loopback), "{loopback}");
        }
        for remote in [
            "ghcr.io",
            "index.docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}
