//! TLS settings for `tcp://` (buildctl's `--tlscacert`, `--tlscert`, `--tlskey`, `--tlsservername`).

use std::path::{Path, PathBuf};

use hive_proto::tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// TLS options as given; [`TlsSettings::client_config`] checks them.
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

    /// Reads the files and builds tonic's TLS config; errors are sentences naming the file and the fix.
    pub(crate) fn client_config(&self, host: &str) -> Result<ClientTlsConfig, String> {
        let mut config = ClientTlsConfig::new()
            .domain_name(self.server_name.clone().unwrap_or_else(|| host.to_owned()));
        match &self.ca {
            Some(ca) => {
                config = config.ca_certificate(Certificate::from_pem(read_pem(ca, "--tlscacert")?))
            }
            None => {
                return Err("--tlscert/--tlskey were given without --tlscacert: give the CA certificate that \
                            signed the daemon's certificate"
                    .to_owned());
            }
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(
                    read_pem(cert, "--tlscert")?,
                    read_pem(key, "--tlskey")?,
                ));
            }
            (Some(_), None) => {
                return Err(
                    "--tlscert was given without --tlskey: mutual TLS needs both".to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "--tlskey was given without --tlscert: mutual TLS needs both".to_owned(),
                );
            }
            (None, None) => {}
        }
        Ok(config)
    }
}

fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|err| format!("cannot read {flag} file {}: {err}", path.display()))?;
    if !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(format!(
            "{flag} file {} is not a PEM file (no -----BEGIN line)",
            path.display()
        ));
    }
    Ok(bytes)
}
