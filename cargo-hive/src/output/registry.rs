//! What the registry says, read through `oci-client`: each platform's manifest digest of a pushed image (the index,
//! or manifest, by its digest), a tag's digest, and a repository's tags. Anonymously first, then with the
//! credentials the Docker CLI would use for that registry (the same resolution the session's Auth service serves
//! BuildKit).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use sha2::{Digest as _, Sha256};

use super::index::{
    ACCEPTED, Document, IndexError, PlatformManifest, check_digest, image_manifests, is_index,
    is_manifest, parse, verify,
};
use crate::buildkit::{AuthError, DockerAuth, ExporterSpec};
use crate::plan::ImageReference;

/// Why a repository's tags could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    /// The repository name does not parse, or carries a tag or digest.
    #[error("`{repository}` is not a repository name: {detail}")]
    BadRepository {
        /// What was given.
        repository: String,
        /// Why.
        detail: String,
    },
    /// The registry could not be asked, or refused.
    #[error("cannot list the tags of {repository}: {detail}")]
    Registry {
        /// The repository.
        repository: String,
        /// What went wrong (the client's words; they never hold credentials).
        detail: String,
    },
    /// The credentials for the registry could not be read.
    #[error("cannot read the credentials for {host}: {source}")]
    Credentials {
        /// The registry.
        host: String,
        /// Why.
        source: AuthError,
    },
}

/// Tags asked for per page. A registry may answer fewer than asked (some cap pages), so paging goes on until a page
/// brings no tag not seen yet, which also ends it against a registry that ignores `n` and `last`.
const TAGS_PER_PAGE: usize = 1000;

/// Every tag of `repository` (`host/path`, no tag), through oci-client's tag list (all pages), with the same
/// credentials the rest of this file uses; a repository the registry does not know yet has no tags (empty Vec).
/// Sorted.
pub(crate) async fn list_tags(repository: &str) -> Result<Vec<String>, RegistryError> {
    let parsed = parse_repository(repository)?;
    let failed = |err: oci_client::errors::OciDistributionError| RegistryError::Registry {
        repository: repository.to_owned(),
        detail: err.to_string(),
    };
    let anonymous = anonymous_client(&parsed).map_err(|err| RegistryError::Registry {
        repository: repository.to_owned(),
        detail: err.to_string(),
    })?;
    let error = match all_tags(&anonymous, &parsed, &RegistryAuth::Anonymous).await {
        Ok(tags) => return Ok(tags),
        Err(error) if is_unknown_repository(&error) => return Ok(Vec::new()),
        Err(error) if needs_credentials(&error) => error,
        Err(error) => return Err(failed(error)),
    };
    let host =
        crate::plan::registry_host(repository).map_err(|invalid| RegistryError::BadRepository {
            repository: repository.to_owned(),
            detail: invalid.reason,
        })?;
    let auth = match host_auth(&host).await {
        Ok(Some(auth)) => auth,
        Ok(None) => return Err(failed(error)),
        Err(source) => return Err(RegistryError::Credentials { host, source }),
    };
    let client = client(&parsed).map_err(|err| RegistryError::Registry {
        repository: repository.to_owned(),
        detail: err.to_string(),
    })?;
    match all_tags(&client, &parsed, &auth).await {
        Ok(tags) => Ok(tags),
        Err(error) if is_unknown_repository(&error) => Ok(Vec::new()),
        Err(error) => Err(failed(error)),
    }
}

/// `host/path` as oci-client reads it; a tag or digest is refused rather than ignored.
fn parse_repository(repository: &str) -> Result<Reference, RegistryError> {
    let bad = |detail: String| RegistryError::BadRepository {
        repository: repository.to_owned(),
        detail,
    };
    let last = repository.rsplit('/').next().unwrap_or(repository);
    if repository.contains('@') || (repository.contains('/') && last.contains(':')) {
        return Err(bad("a repository has no tag or digest".to_owned()));
    }
    let parsed = ImageReference::parse(repository).map_err(|err| bad(err.to_string()))?;
    Ok(client_reference(&parsed))
}

/// The tags of every page, sorted. A page after the first that finds the repository gone ends the list.
async fn all_tags(
    client: &Client,
    repository: &Reference,
    auth: &RegistryAuth,
) -> Result<Vec<String>, oci_client::errors::OciDistributionError> {
    let mut tags = BTreeSet::new();
    let mut last: Option<String> = None;
    loop {
        let page = match client
            .list_tags(repository, auth, Some(TAGS_PER_PAGE), last.as_deref())
            .await
        {
            Ok(page) => page,
            Err(error) if last.is_some() && is_unknown_repository(&error) => break,
            Err(error) => return Err(error),
        };
        let before = tags.len();
        // `last` is the previous page's last tag, in the registry's (lexical) order.
        let next = page.tags.last().cloned();
        tags.extend(page.tags);
        match next {
            Some(next) if tags.len() > before => last = Some(next),
            _ => break,
        }
    }
    Ok(tags.into_iter().collect())
}

/// Whether the registry says it has no such repository (distribution's `NAME_UNKNOWN`, or a bare 404).
fn is_unknown_repository(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match error {
        E::ServerError { code, .. } => *code == 404,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|error| matches!(error.code, oci_client::errors::OciErrorCode::NameUnknown)),
        _ => false,
    }
}

/// Each platform's manifest of the image pushed as `reference` (`registry/repo[:tag]`) whose index (or, for a
/// single-platform image, manifest) has `digest`. `platform` names the manifest of a single-platform image, which
/// says nothing about its platform without its config.
pub(crate) async fn index_manifests_from_registry(
    reference: &str,
    digest: &str,
    platform: &str,
) -> Result<Vec<PlatformManifest>, IndexError> {
    let parsed = parse_reference(reference)?;
    let document = pull_document(&parsed, reference, digest).await?;
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

/// The annotation a push records its image's content fingerprint in: on the index, or on the manifest of a
/// one-platform image without attestations (BuildKit refuses index annotations there). Ours, not an
/// `org.opencontainers.image.*` key.
pub(crate) const FINGERPRINT_ANNOTATION: &str = "dev.cargo-hive.fingerprint";

/// Adds the content fingerprint `print` to every exporter that pushes an image, on the index when the result is
/// one (`index`: several platforms, or attestations), else on the manifest. The same inputs give the same
/// annotation, so the pushed image stays byte-identical from build to build.
pub(crate) fn annotate_fingerprint(exporters: &mut [ExporterSpec], print: &str, index: bool) {
    let level = if index {
        "annotation-index"
    } else {
        "annotation-manifest"
    };
    for exporter in exporters.iter_mut().filter(|exporter| exporter.pushes()) {
        exporter.attrs.insert(
            format!("{level}.{FINGERPRINT_ANNOTATION}"),
            print.to_owned(),
        );
    }
}

/// What a registry holds under one reference now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushedImage {
    /// The digest of the index or manifest, computed from the bytes read.
    pub(crate) digest: String,
    /// The content fingerprint it was pushed with, if it carries one.
    pub(crate) fingerprint: Option<String>,
    /// Each platform's manifest (an index's image manifests, or the one manifest as `platform`), sorted.
    pub(crate) platforms: Vec<PlatformManifest>,
    /// The config digest of a single manifest (an index has none of its own).
    pub(crate) config_digest: Option<String>,
}

/// What `reference` (`registry/repo:tag`) names now, by one GET of its manifest (anonymously, then with the user's
/// credentials if the registry wants them). `platform` names the manifest of a plain one-platform image.
pub(crate) async fn pushed_image(
    reference: &str,
    platform: &str,
) -> Result<PushedImage, IndexError> {
    let parsed = parse_reference(reference)?;
    let bytes = pull(&parsed, || user_auth(reference)).await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    pushed_from(&bytes, digest, reference, platform)
}

/// [`PushedImage`] from the bytes of an index or manifest whose digest is `digest`.
fn pushed_from(
    bytes: &[u8],
    digest: String,
    reference: &str,
    platform: &str,
) -> Result<PushedImage, IndexError> {
    let document: Document = parse(bytes, reference, "image index or manifest")?;
    let fingerprint = document.annotations.get(FINGERPRINT_ANNOTATION).cloned();
    if is_index(&document.media_type) || !document.manifests.is_empty() {
        let mut platforms = image_manifests(&document);
        platforms.sort_by(|a, b| a.platform.cmp(&b.platform));
        return Ok(PushedImage {
            digest,
            fingerprint,
            platforms,
            config_digest: None,
        });
    }
    if !is_manifest(&document.media_type) {
        return Err(IndexError::MediaType {
            what: reference.to_owned(),
            media_type: document.media_type,
        });
    }
    Ok(PushedImage {
        platforms: vec![PlatformManifest {
            platform: platform.to_owned(),
            digest: digest.clone(),
        }],
        config_digest: document.config.map(|config| config.digest),
        digest,
        fingerprint,
    })
}

/// What an index in the registry holds: each platform's image manifest and the in-toto predicate types attached
/// to them (one per attestation layer, sorted). Two indexes with the same summary hold the same images with the
/// same kinds of attestations, whatever else (a provenance's build id and times) differs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IndexSummary {
    /// Each platform's image manifest, sorted by platform.
    pub(crate) platforms: Vec<PlatformManifest>,
    /// The predicate types of every attestation layer, sorted.
    pub(crate) attestation_kinds: Vec<String>,
}

/// The summary of the index `digest` in `reference`'s repository (`platform` names the manifest of a plain
/// one-platform image, as for [`index_manifests_from_registry`]).
pub(crate) async fn index_summary(
    reference: &str,
    digest: &str,
    platform: &str,
) -> Result<IndexSummary, IndexError> {
    let parsed = parse_reference(reference)?;
    let document = pull_document(&parsed, reference, digest).await?;
    if !is_index(&document.media_type) && document.manifests.is_empty() {
        return Ok(IndexSummary {
            platforms: vec![PlatformManifest {
                platform: platform.to_owned(),
                digest: digest.to_owned(),
            }],
            attestation_kinds: Vec::new(),
        });
    }
    let mut kinds = Vec::new();
    for entry in &document.manifests {
        if entry
            .annotations
            .get("vnd.docker.reference.type")
            .map(String::as_str)
            != Some("attestation-manifest")
        {
            continue;
        }
        let attestation = pull_document(&parsed, reference, &entry.digest).await?;
        kinds.extend(attestation.layers.iter().map(|layer| {
            layer
                .annotations
                .get("in-toto.io/predicate-type")
                .cloned()
                .unwrap_or_default()
        }));
    }
    kinds.sort();
    let mut platforms = image_manifests(&document);
    platforms.sort_by(|a, b| a.platform.cmp(&b.platform));
    Ok(IndexSummary {
        platforms,
        attestation_kinds: kinds,
    })
}

/// The manifest or index `digest` of `parsed`'s repository, checked against its digest.
async fn pull_document(
    parsed: &Reference,
    reference: &str,
    digest: &str,
) -> Result<Document, IndexError> {
    check_digest(digest)?;
    let pinned = Reference::with_digest(
        parsed.registry().to_owned(),
        parsed.repository().to_owned(),
        digest.to_owned(),
    );
    let bytes = pull(&pinned, || user_auth(reference)).await?;
    let what = format!("{}@{digest}", parsed.repository());
    verify(&bytes, digest, &what)?;
    parse(&bytes, &what, "image index or manifest")
}

/// Points every reference of `references` (`registry/repo:tag`, all in one repository) at the manifest `digest` that
/// repository already holds, byte for byte: a release of images identical to the ones its tags name keeps the index
/// they name, so its digest does not change with each build's provenance.
pub(crate) async fn retag(references: &[String], digest: &str) -> Result<(), IndexError> {
    let Some(first) = references.first() else {
        return Ok(());
    };
    check_digest(digest)?;
    let parsed = parse_reference(first)?;
    let pinned = Reference::with_digest(
        parsed.registry().to_owned(),
        parsed.repository().to_owned(),
        digest.to_owned(),
    );
    let failed = |err: oci_client::errors::OciDistributionError| IndexError::Registry {
        reference: pinned.whole(),
        detail: err.to_string(),
    };
    let auth = user_auth(first).await?.unwrap_or(RegistryAuth::Anonymous);
    let client = client(&parsed)?;
    client
        .auth(&pinned, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(failed)?;
    let (bytes, _) = client
        .pull_manifest_raw(&pinned, &auth, &ACCEPTED)
        .await
        .map_err(failed)?;
    let what = format!("{}@{digest}", parsed.repository());
    verify(&bytes, digest, &what)?;
    let document: Document = parse(&bytes, &what, "image index or manifest")?;
    let content_type =
        http::HeaderValue::from_str(&document.media_type).map_err(|err| IndexError::Registry {
            reference: pinned.whole(),
            detail: err.to_string(),
        })?;
    for reference in references {
        let tagged = parse_reference(reference)?;
        client
            .push_manifest_raw(&tagged, bytes.clone(), content_type.clone())
            .await
            .map_err(failed)?;
    }
    Ok(())
}

/// `registry/repo[:tag]` as oci-client reads it, without its parser (which compiles a large regex on first use).
fn parse_reference(reference: &str) -> Result<Reference, IndexError> {
    let parsed = ImageReference::parse(reference).map_err(|err| IndexError::BadReference {
        reference: reference.to_owned(),
        detail: err.to_string(),
    })?;
    Ok(client_reference(&parsed))
}

/// oci-client's reference for one of ours: the same registry (`docker.io`, which oci-client resolves to
/// `index.docker.io` when it connects), repository, tag and digest that its own parser would give.
fn client_reference(parsed: &ImageReference) -> Reference {
    let (registry, repository) = (parsed.registry().to_owned(), parsed.repository().to_owned());
    match (parsed.tag(), parsed.digest()) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.to_owned(), digest.to_owned())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_owned()),
        // A parsed reference without a digest always has a tag (`latest` at least).
        (tag, None) => {
            Reference::with_tag(registry, repository, tag.unwrap_or("latest").to_owned())
        }
    }
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
    host_auth(&host)
        .await
        .map_err(|source| IndexError::Credentials { host, source })
}

/// The user's credentials for a registry host, as the Docker CLI finds them; `None` when there are none to try.
async fn host_auth(host: &str) -> Result<Option<RegistryAuth>, AuthError> {
    let credentials = DockerAuth::from_env().credentials(host).await?;
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

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `Basic` of `me:pw`.
    const GOOD: &str = "Basic bWU6cHc=";

    #[test]
    fn references_built_from_ours_are_the_ones_oci_client_parses() {
        let hex = "0123456789abcdef".repeat(4);
        let mut texts: Vec<String> = [
            "debian",
            "debian:12-slim",
            "acme/api:1",
            "docker.io/debian",
            "docker.io/library/debian:12",
            "index.docker.io/debian",
            "index.docker.io/acme/api:1",
            "registry-1.docker.io/acme/api:1",
            "localhost/app",
            "localhost:5000/hive/glibc:latest",
            "127.0.0.1:5001/private/app:v1.2.3",
            "ghcr.io/acme/team/api",
            "Example.COM:443/a_b/c.d/e--f:T_1",
            "gcr.io/distroless/cc-debian12",
        ]
        .iter()
        .map(|text| (*text).to_owned())
        .collect();
        for name in ["alpine", "localhost:5000/app", "docker.io/acme/api"] {
            texts.push(format!("{name}@sha256:{hex}"));
            texts.push(format!("{name}:1@sha256:{hex}"));
            texts.push(format!("{name}:1@sha512:{hex}{hex}"));
        }
        for text in &texts {
            let theirs: Reference = text.parse().unwrap();
            let ours = parse_reference(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            assert_eq!(ours.whole(), theirs.whole(), "{text}");
            assert_eq!(ours.resolve_registry(), theirs.resolve_registry(), "{text}");
            assert_eq!(
                (
                    ours.registry(),
                    ours.repository(),
                    ours.tag(),
                    ours.digest()
                ),
                (
                    theirs.registry(),
                    theirs.repository(),
                    theirs.tag(),
                    theirs.digest()
                ),
                "{text}"
            );
        }
        for bad in ["", "Debian:12", "a:b:c", "alpine@sha256:abc", "a//b"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
            assert!(
                matches!(parse_reference(bad), Err(IndexError::BadReference { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn repositories_read_as_oci_client_reads_them() {
        for repository in [
            "localhost:5000/hive/app",
            "ghcr.io/acme/api",
            "acme/api",
            "debian",
        ] {
            let theirs: Reference = repository.parse().unwrap();
            assert_eq!(
                parse_repository(repository).unwrap(),
                theirs,
                "{repository}"
            );
        }
        for bad in ["localhost:5000/app:1", "app@sha256:00", "acme/API", "a//b"] {
            assert!(
                matches!(
                    parse_repository(bad),
                    Err(RegistryError::BadRepository { .. })
                ),
                "{bad}"
            );
        }
    }

    /// What a fake server answers one request: status line, extra headers, body.
    type Answer = (&'static str, String, Vec<u8>);

    /// A fake HTTP/1.1 server on a loopback port; `answer` gets each request's head (request line and headers).
    /// Returns the port.
    async fn fake_server(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let answer = answer.clone();
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
                        let (status, extra, payload) = answer(&head);
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
        port
    }

    /// A fake registry on a loopback port serving one manifest, `body`, as `app@digest`; with `basic`, only to
    /// requests that carry [`GOOD`] (else 401 with a Basic challenge). Records each request's line and whether it
    /// carried credentials.
    async fn fake_registry(
        body: Vec<u8>,
        media_type: &'static str,
        basic: bool,
    ) -> (String, String, Arc<Mutex<Vec<String>>>) {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (manifest_path, log) = (format!("/v2/app/manifests/{digest}"), seen.clone());
        let port = fake_server(move |head| {
            let line = head.lines().next().unwrap_or("").to_owned();
            let authorized = head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("authorization:") && l.ends_with(GOOD));
            log.lock()
                .unwrap()
                .push(format!("{line} auth={authorized}"));
            let path = line.split(' ').nth(1).unwrap_or("");
            if basic && !authorized {
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
            }
        })
        .await;
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

    fn annotated_index() -> Vec<u8> {
        let mut index: serde_json::Value = serde_json::from_slice(&index_body()).unwrap();
        index["annotations"] = serde_json::json!({ FINGERPRINT_ANNOTATION: "f1" });
        serde_json::to_vec(&index).unwrap()
    }

    #[tokio::test]
    async fn a_pushed_index_says_its_digest_fingerprint_and_platforms() {
        let (reference, digest, _) = fake_registry(
            annotated_index(),
            "application/vnd.oci.image.index.v1+json",
            false,
        )
        .await;
        let pinned = reference.replace(":1", &format!("@{digest}"));
        let pushed = pushed_image(&pinned, "linux/amd64").await.unwrap();
        assert_eq!(pushed.digest, digest);
        assert_eq!(pushed.fingerprint.as_deref(), Some("f1"));
        assert_eq!(pushed.config_digest, None);
        let platforms: Vec<(&str, &str)> = (pushed.platforms.iter())
            .map(|m| (m.platform.as_str(), m.digest.as_str()))
            .collect();
        assert_eq!(
            platforms,
            [("linux/amd64", "sha256:aa"), ("linux/arm64", "sha256:bb")]
        );
        // A tag the registry does not hold is an error, never an image.
        assert!(pushed_image(&reference, "linux/amd64").await.is_err());
    }

    #[test]
    fn a_single_manifest_is_its_own_platform_with_its_config() {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:dd", "size": 1},
            "layers": [],
        }))
        .unwrap();
        let pushed = pushed_from(&manifest, "sha256:m".into(), "r", "linux/arm64").unwrap();
        assert_eq!(
            pushed,
            PushedImage {
                digest: "sha256:m".into(),
                fingerprint: None,
                platforms: vec![PlatformManifest {
                    platform: "linux/arm64".into(),
                    digest: "sha256:m".into(),
                }],
                config_digest: Some("sha256:dd".into()),
            }
        );
        let config = br#"{"mediaType": "application/vnd.oci.image.config.v1+json"}"#;
        assert!(matches!(
            pushed_from(config, "sha256:c".into(), "r", "linux/arm64"),
            Err(IndexError::MediaType { .. })
        ));
    }

    #[test]
    fn only_pushing_exporters_carry_the_fingerprint_at_the_level_the_result_has() {
        let exporter = |kind: &str, push: bool| ExporterSpec {
            kind: kind.to_owned(),
            attrs: [("push".to_owned(), push.to_string())].into(),
        };
        let mut exporters = [
            exporter("image", true),
            exporter("image", false),
            exporter("moby", false),
            exporter("oci", false),
        ];
        annotate_fingerprint(&mut exporters, "f1", true);
        let index_key = format!("annotation-index.{FINGERPRINT_ANNOTATION}");
        assert_eq!(exporters[0].attrs[&index_key], "f1");
        for other in &exporters[1..] {
            assert_eq!(other.attrs.len(), 1, "{other:?}");
        }
        let mut single = [exporter("image", true)];
        annotate_fingerprint(&mut single, "f1", false);
        let manifest_key = format!("annotation-manifest.{FINGERPRINT_ANNOTATION}");
        assert_eq!(single[0].attrs[&manifest_key], "f1");
        assert!(!single[0].attrs.contains_key(&index_key));
    }

    /// How a fake registry answers a tag list.
    #[derive(Clone, Copy)]
    enum TagList {
        /// Honours `n` and `last`, but never answers more than this many tags at once.
        Paged(usize),
        /// Every tag in every answer, whatever was asked.
        IgnoresPaging,
        /// 404 with distribution's `NAME_UNKNOWN` error.
        NameUnknown,
        /// 404 without an OCI error body.
        BareNotFound,
        /// 500.
        Broken,
    }

    /// A fake registry whose repository `app` has `tags` (sorted, as registries list them); returns the repository
    /// and the tag-list requests it saw.
    async fn fake_tags(tags: &[&str], how: TagList) -> (String, Arc<Mutex<Vec<String>>>) {
        let mut tags: Vec<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        tags.sort();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let port = fake_server(move |head| {
            let target = head.split(' ').nth(1).unwrap_or("").to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            if path == "/v2/" {
                return ("200 OK", String::new(), b"{}".to_vec());
            }
            log.lock().unwrap().push(target.clone());
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            let json = "Content-Type: application/json\r\n".to_owned();
            let page: Vec<&String> = match how {
                TagList::Paged(cap) => {
                    let n: usize = param("n").map_or(usize::MAX, |n| n.parse().unwrap());
                    let last = param("last");
                    (tags.iter())
                        .filter(|tag| last.as_ref().is_none_or(|last| *tag > last))
                        .take(n.min(cap))
                        .collect()
                }
                TagList::IgnoresPaging => tags.iter().collect(),
                TagList::NameUnknown => {
                    let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
                    return ("404 Not Found", json, body.to_vec());
                }
                TagList::BareNotFound => {
                    return ("404 Not Found", String::new(), b"not found".to_vec());
                }
                TagList::Broken => {
                    return ("500 Internal Server Error", String::new(), b"oops".to_vec());
                }
            };
            let body = serde_json::json!({ "name": "app", "tags": page });
            ("200 OK", json, serde_json::to_vec(&body).unwrap())
        })
        .await;
        (format!("127.0.0.1:{port}/app"), seen)
    }

    const TAGS: [&str; 5] = ["latest", "1.0.0", "v1.1.0", "0.2.0", "0.1.0"];

    #[tokio::test]
    async fn every_page_of_tags_is_read_even_when_the_registry_caps_pages() {
        let (repository, seen) = fake_tags(&TAGS, TagList::Paged(2)).await;
        let tags = list_tags(&repository).await.unwrap();
        assert_eq!(tags, ["0.1.0", "0.2.0", "1.0.0", "latest", "v1.1.0"]);
        let requests = seen.lock().unwrap().clone();
        assert_eq!(
            requests,
            [
                "/v2/app/tags/list?n=1000",
                "/v2/app/tags/list?n=1000&last=0.2.0",
                "/v2/app/tags/list?n=1000&last=latest",
                "/v2/app/tags/list?n=1000&last=v1.1.0",
            ]
        );
    }

    #[tokio::test]
    async fn a_registry_that_ignores_paging_is_asked_twice() {
        // Distribution 2.8 (Debian's registry) answers every tag whatever `n` and `last` say.
        let (repository, seen) = fake_tags(&TAGS, TagList::IgnoresPaging).await;
        assert_eq!(list_tags(&repository).await.unwrap().len(), TAGS.len());
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_repository_the_registry_does_not_know_has_no_tags() {
        for how in [TagList::NameUnknown, TagList::BareNotFound] {
            let (repository, _) = fake_tags(&[], how).await;
            assert_eq!(list_tags(&repository).await.unwrap(), Vec::<String>::new());
        }
        let (repository, _) = fake_tags(&[], TagList::Paged(10)).await;
        assert_eq!(list_tags(&repository).await.unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_failing_registry_and_a_tagged_name_are_errors() {
        let (repository, _) = fake_tags(&TAGS, TagList::Broken).await;
        let err = list_tags(&repository).await.unwrap_err();
        assert!(
            matches!(&err, RegistryError::Registry { repository: named, .. } if *named == repository),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("cannot list the tags of {repository}: ")),
            "{err}"
        );
        for tagged in ["127.0.0.1:5000/app:1", "127.0.0.1:5000/app@sha256:00"] {
            let err = list_tags(tagged).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("`{tagged}` is not a repository name: a repository has no tag or digest")
            );
        }
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
