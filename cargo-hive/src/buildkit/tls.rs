//! TLS settings for `tcp://` (buildctl's `--tlscacert`, `--tlscert`, `--tlskey`, `--tlsservername`) and the TLS
//! client made of them.
//!
//! The client is rustls with its standard (webpki) verification of the daemon's certificate. Our own client
//! certificate is only sent, never verified here, so one without X.509 v3 extensions (what `openssl x509 -req`
//! makes without `-extfile`) is accepted as buildctl accepts it; rustls' own loading would reject it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// TLS options as given; [`TlsSettings::client`] checks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// CA certificate (PEM) that signed the daemon's certificate.
    pub(crate) ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub(crate) cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub(crate) key: Option<PathBuf>,
    /// The name the daemon's certificate must carry (default: the host of the address).
    pub(crate) server_name: Option<String>,
}

/// Why the TLS options cannot make a client; each names the flag and file at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsConfigError {
    /// A client certificate or key without the CA.
    #[error(
        "--tlscert/--tlskey were given without --tlscacert: give the CA certificate that signed the daemon's \
         certificate"
    )]
    NoCa,
    /// Half of the client identity.
    #[error("{given} was given without {missing}: mutual TLS needs both")]
    HalfIdentity {
        /// The flag given.
        given: &'static str,
        /// The flag missing.
        missing: &'static str,
    },
    /// A file that cannot be read.
    #[error("cannot read {flag} file {}: {source}", path.display())]
    Read {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file without the PEM object the flag needs.
    #[error("{flag} file {} is not a PEM file with {what} (no usable -----BEGIN block)", path.display())]
    NotPem {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// The file parses but its content is unusable.
    #[error("{flag} file {}: {reason}", path.display())]
    Unusable {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The server name is not a DNS name or IP address.
    #[error("`{0}` is not a valid TLS server name (--tlsservername)")]
    ServerName(String),
}

/// A TLS client for one daemon: the configuration and the name its certificate must carry.
#[derive(Clone)]
pub(crate) struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// The TLS handshake over an open TCP connection; errors read as sentences.
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let stream = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|err| match handshake_hint(&err.to_string()) {
                Some(hint) => std::io::Error::other(hint),
                None => err,
            })?;
        // gRPC servers (buildkitd's grpc-go) always offer h2; without it this is some other TLS server.
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(std::io::Error::other(
                "the TLS handshake did not agree on HTTP/2 (ALPN h2): the server is not a gRPC server",
            ));
        }
        Ok(stream)
    }
}

/// What to do about a handshake failure whose rustls wording misleads.
fn handshake_hint(detail: &str) -> Option<&'static str> {
    // webpki takes only X.509 v3 end-entity certificates; Go's TLS (buildkitd, buildctl) takes v1 too.
    detail.contains("UnsupportedCertVersion").then_some(
        "the daemon's certificate (buildkitd's own --tlscert) is an X.509 v1 certificate (made without \
         extensions), which rustls refuses (UnsupportedCertVersion); reissue it as v3 with its names in \
         subjectAltName: `openssl x509 -req ... -extfile <(printf 'subjectAltName=DNS:HOST\\n\
         basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth')`",
    )
}

impl TlsSettings {
    /// Whether any TLS option is set (then `tcp://` speaks TLS).
    pub(crate) fn is_enabled(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// Flag values win over manifest values, option by option.
    pub(crate) fn or(self, fallback: TlsSettings) -> TlsSettings {
        TlsSettings {
            ca: self.ca.or(fallback.ca),
            cert: self.cert.or(fallback.cert),
            key: self.key.or(fallback.key),
            server_name: self.server_name.or(fallback.server_name),
        }
    }

    /// Reads the files and makes the TLS client for a daemon on `host`.
    pub(crate) fn client(&self, host: &str) -> Result<TlsClient, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = self.ca.as_ref().ok_or(TlsConfigError::NoCa)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(ca, "--tlscacert")? {
            roots
                .add(cert)
                .map_err(|err| unusable("--tlscacert", ca, err))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots);
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let identity = identity(cert, key, &provider)?;
                builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                    identity,
                )))
            }
            (Some(_), None) => {
                return Err(TlsConfigError::HalfIdentity {
                    given: "--tlscert",
                    missing: "--tlskey",
                });
            }
            (None, Some(_)) => {
                return Err(TlsConfigError::HalfIdentity {
                    given: "--tlskey",
                    missing: "--tlscert",
                });
            }
            (None, None) => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = self.server_name.clone().unwrap_or_else(|| host.to_owned());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| TlsConfigError::ServerName(name))?;
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

/// Our certificate and key. rustls' loader (`with_client_auth_cert`) parses the certificate with webpki, which
/// refuses v1; we only check that the key belongs to the certificate, then send it as it is.
fn identity(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsConfigError> {
    let chain = certificates(cert, "--tlscert")?;
    let key_pem = read(key, "--tlskey")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsConfigError::NotPem {
        flag: "--tlskey",
        path: key.to_path_buf(),
        what: "a private key",
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|err| unusable("--tlskey", key, err))?;
    let mismatch = || TlsConfigError::Unusable {
        flag: "--tlskey",
        path: key.to_path_buf(),
        reason: format!(
            "the key does not belong to the certificate in {}",
            cert.display()
        ),
    };
    let public_key = signing_key.public_key().map(|spki| spki.as_ref().to_vec());
    let identity = CertifiedKey::new(chain, signing_key);
    match identity.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(mismatch());
        }
        // The certificate does not parse as v3: its DER holds the subject public key info verbatim.
        Err(_) => {
            let der = identity.cert[0].as_ref();
            if let Some(spki) = public_key
                && !der
                    .windows(spki.len())
                    .any(|window| window == spki.as_slice())
            {
                return Err(mismatch());
            }
        }
    }
    Ok(identity)
}

fn certificates(
    path: &Path,
    flag: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(path, flag)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|err| unusable(flag, path, err))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NotPem {
            flag,
            path: path.to_path_buf(),
            what: "a certificate",
        });
    }
    Ok(certs)
}

fn read(path: &Path, flag: &'static str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

fn unusable(flag: &'static str, path: &Path, err: impl std::fmt::Display) -> TlsConfigError {
    TlsConfigError::Unusable {
        flag,
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

/// Whether the first certificate in a PEM file is X.509 v1: its TBSCertificate starts without the explicit `[0]`
/// version field that v2 and v3 carry. `false` when the file does not read as such.
pub(crate) fn is_v1_certificate(path: &Path) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return false;
    };
    let Some(Ok(cert)) = CertificateDer::pem_slice_iter(&pem).next() else {
        return false;
    };
    // Certificate SEQUENCE, then TBSCertificate SEQUENCE, then its first element's tag.
    let skip_header = |der: &[u8]| -> Option<usize> {
        let length = *der.get(1)?;
        Some(if length & 0x80 == 0 {
            2
        } else {
            2 + usize::from(length & 0x7f)
        })
    };
    let der = cert.as_ref();
    let Some(outer) = skip_header(der) else {
        return false;
    };
    let Some(inner) = der.get(outer..).and_then(skip_header) else {
        return false;
    };
    der.get(outer + inner).is_some_and(|tag| *tag != 0xa0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate's first bytes: SEQUENCE (long length), TBSCertificate SEQUENCE, then either the `[0]` version
    /// (v3) or the serial number INTEGER (v1).
    fn pem(tbs_first: &[u8]) -> Vec<u8> {
        use base64::Engine as _;
        let mut der = vec![0x30, 0x82, 0x01, 0x00, 0x30, 0x81, 0xf0];
        der.extend_from_slice(tbs_first);
        der.resize(0x104, 0);
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n").into_bytes()
    }

    #[test]
    fn tells_v1_certificates_by_their_missing_version_field() {
        let dir = tempfile::tempdir().unwrap();
        let v3 = dir.path().join("v3.pem");
        std::fs::write(&v3, pem(&[0xa0, 0x03, 0x02, 0x01, 0x02])).unwrap();
        let v1 = dir.path().join("v1.pem");
        std::fs::write(&v1, pem(&[0x02, 0x01, 0x07])).unwrap();
        assert!(!is_v1_certificate(&v3));
        assert!(is_v1_certificate(&v1));
        assert!(!is_v1_certificate(&dir.path().join("absent.pem")));
    }
}
