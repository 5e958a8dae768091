//! Each platform's manifest digest of a pushed image, read back from the registry through `oci-client`: the index
//! (or manifest) by its digest, anonymously first, then with the credentials the Docker CLI would use for that
//! registry (the same resolution the session's Auth service serves BuildKit).

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::index::{
    ACCEPTED, Document, IndexError, PlatformManifest, image_manifests, is_index, parse, verify,
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
    let parsed: Reference =
        reference
            .parse()
            .map_err(|err: oci_client::ParseError| IndexError::BadReference {
                reference: reference.to_owned(),
                detail: err.to_string(),
            })?;
    let pinned = Reference::with_digest(
        parsed.registry().to_owned(),
        parsed.repository().to_owned(),
        digest.to_owned(),
    );
    let bytes = pull(&pinned, reference).await?;
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

/// The manifest bytes of `pinned`: anonymously, then, if the registry wants credentials, with the user's.
async fn pull(pinned: &Reference, reference: &str) -> Result<Vec<u8>, IndexError> {
    let failed = |err: oci_client::errors::OciDistributionError| IndexError::Registry {
        reference: pinned.whole(),
        detail: err.to_string(),
    };
    let anonymous = client(pinned)?
        .pull_manifest_raw(pinned, &RegistryAuth::Anonymous, &ACCEPTED)
        .await;
    let error = match anonymous {
        Ok((bytes, _)) => return Ok(bytes.to_vec()),
        Err(error) if needs_credentials(&error) => error,
        Err(error) => return Err(failed(error)),
    };
    let Some(auth) = user_auth(reference).await? else {
        return Err(failed(error));
    };
    let (bytes, _) = client(pinned)?
        .pull_manifest_raw(pinned, &auth, &ACCEPTED)
        .await
        .map_err(failed)?;
    Ok(bytes.to_vec())
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
