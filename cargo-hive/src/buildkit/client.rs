//! One connection to BuildKit, whatever the transport: found by resolution, proven by a probe, then shared by
//! everything that talks to the daemon (Info, ListWorkers, Solve, Status, Session, the gateway).

use std::time::{Duration, Instant};

use hive_proto::control::ListWorkersRequest;
use hive_proto::control::control_client::ControlClient;
use hive_proto::control::types::WorkerRecord;
use hive_proto::tonic::transport::Channel;
use hive_proto::tonic::{Code, Status};

use super::address::Address;
use super::daemon::Daemon;
use super::discovery::{AddressSource, Candidate, Environment, ManifestSettings, candidates};
use super::errors::ConnectError;
use super::tls::TlsSettings;
use super::transport;

/// How long an explicitly named daemon gets to connect and answer the probe.
const EXPLICIT_TIMEOUT: Duration = Duration::from_secs(6);
/// How long each auto-detected candidate gets.
const AUTO_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages BuildKit sends (definitions, status batches) can exceed tonic's 4 MiB default.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What the caller knows about where BuildKit is.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectOptions {
    /// `--addr`.
    pub(crate) addr: Option<String>,
    /// TLS flags (they win over the manifest's, option by option).
    pub(crate) tls: TlsSettings,
    /// `[workspace.metadata.hive]` connection keys, if a workspace was found.
    pub(crate) manifest: Option<ManifestSettings>,
    /// The process environment.
    pub(crate) env: Environment,
    /// `-v`: errors keep the transport's own wording after the plain one.
    pub(crate) verbose: bool,
}

impl ConnectOptions {
    /// The Docker socket of an explicit `docker+unix://` address, known before connecting (auto-detection finds
    /// out only by connecting).
    pub(crate) fn explicit_docker_socket(&self) -> Option<std::path::PathBuf> {
        let candidates = candidates(self.addr.as_deref(), self.manifest.as_ref(), &self.env);
        match &candidates[..] {
            [only] if only.origin.is_explicit() => match &only.address {
                Ok(Address::Docker(socket)) => Some(socket.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Checks that TLS settings can apply to the address they come with; TLS exists only on `tcp://`. Settings
    /// given with the address they contradict (flags on this command line, or the manifest's keys beside its own
    /// `buildkit`) are an error; manifest keys overridden by an address from elsewhere are a warning, returned.
    pub(crate) fn check_tls(&self) -> Result<Vec<String>, ConnectError> {
        let flags = tls_keys(&self.tls, |key| format!("--{key}"));
        let manifest_keys = self
            .manifest
            .as_ref()
            .map(|manifest| tls_keys(&manifest.tls, |key| format!("`{key}`")))
            .unwrap_or_default();
        if flags.is_empty() && manifest_keys.is_empty() {
            return Ok(Vec::new());
        }
        let list = candidates(self.addr.as_deref(), self.manifest.as_ref(), &self.env);
        let explicit = list
            .into_iter()
            .find(|candidate| candidate.origin.is_explicit());
        let target = match &explicit {
            // A bad address is reported by itself when connecting.
            Some(Candidate {
                address: Ok(Address::Tcp { .. }) | Err(_),
                ..
            }) => return Ok(Vec::new()),
            Some(Candidate {
                address: Ok(address),
                origin,
            }) => format!(
                "the BuildKit address `{address}` (from {origin}) is {}, which has no TLS",
                match address {
                    Address::Docker(_) => "Docker's API socket",
                    _ => "a unix socket",
                }
            ),
            None => "no BuildKit address is set, and auto-detection finds only local sockets, which have no TLS"
                .to_owned(),
        };
        let from_manifest = matches!(
            &explicit,
            Some(Candidate {
                origin: AddressSource::Manifest(_),
                ..
            })
        );
        let in_manifest = format!(
            "{} in [workspace.metadata.hive] of {}",
            manifest_keys.join(", "),
            self.manifest
                .as_ref()
                .map(|settings| settings.manifest.display().to_string())
                .unwrap_or_default()
        );
        if !flags.is_empty() || from_manifest {
            let options = if flags.is_empty() {
                in_manifest
            } else {
                flags.join(", ")
            };
            return Err(ConnectError::TlsWithoutTcp { options, target });
        }
        Ok(vec![format!(
            "TLS settings {in_manifest} are ignored: {target}"
        )])
    }
}

/// The TLS keys set, in buildctl's order, each named by `name`.
fn tls_keys(tls: &TlsSettings, name: impl Fn(&str) -> String) -> Vec<String> {
    [
        ("tlscacert", tls.ca.is_some()),
        ("tlscert", tls.cert.is_some()),
        ("tlskey", tls.key.is_some()),
        ("tlsservername", tls.server_name.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(key, _)| name(key))
    .collect()
}

/// Why a candidate did not answer, in short (the full error goes with the explicit address only).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AttemptError(pub(crate) String);

/// One candidate tried, and how it went.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The address as written (or as configured, when it did not parse).
    pub(crate) address: String,
    /// Why it was tried.
    pub(crate) origin: AddressSource,
    /// How long connect + probe took, or why it failed.
    pub(crate) outcome: Result<Duration, AttemptError>,
}

/// A live, probed connection to BuildKit.
#[derive(Debug, Clone)]
pub(crate) struct Buildkit {
    channel: Channel,
    /// Where it is.
    pub(crate) address: Address,
    /// Why this one was chosen.
    pub(crate) origin: AddressSource,
    /// Every candidate tried, in order, the winner last.
    pub(crate) attempts: Vec<Attempt>,
    /// The daemon's workers, from the probe (see [`Buildkit::workers`]).
    pub(super) workers: Vec<WorkerRecord>,
    /// What the daemon is and can do.
    pub(crate) daemon: Daemon,
    /// `-v`: errors keep the transport's own wording.
    pub(crate) verbose: bool,
}

impl Buildkit {
    /// Resolves the address (flag, env, manifest, auto-detection), connects and probes.
    pub(crate) async fn connect(options: &ConnectOptions) -> Result<Buildkit, ConnectError> {
        options.check_tls()?;
        let tls = options.tls.clone().or(options
            .manifest
            .as_ref()
            .map(|manifest| manifest.tls.clone())
            .unwrap_or_default());
        let list = candidates(
            options.addr.as_deref(),
            options.manifest.as_ref(),
            &options.env,
        );
        let mut attempts = Vec::new();
        for Candidate { address, origin } in list {
            let explicit = origin.is_explicit();
            let address = match address {
                Ok(address) => address,
                Err(source) if explicit => {
                    return Err(ConnectError::BadAddress {
                        origin: origin.to_string(),
                        reason: source,
                    });
                }
                Err(source) => {
                    attempts.push(Attempt {
                        address: String::new(),
                        origin,
                        outcome: Err(AttemptError(source.to_string())),
                    });
                    continue;
                }
            };
            let timeout = if explicit {
                EXPLICIT_TIMEOUT
            } else {
                AUTO_TIMEOUT
            };
            let started = Instant::now();
            match probe(&address, &tls, timeout, options.verbose).await {
                Ok((channel, workers, daemon)) => {
                    attempts.push(Attempt {
                        address: address.to_string(),
                        origin: origin.clone(),
                        outcome: Ok(started.elapsed()),
                    });
                    return Ok(Buildkit {
                        channel,
                        daemon,
                        address,
                        origin,
                        attempts,
                        workers,
                        verbose: options.verbose,
                    });
                }
                Err(err) if explicit => return Err(err),
                Err(err) => attempts.push(Attempt {
                    address: address.to_string(),
                    origin,
                    outcome: Err(AttemptError(err.short())),
                }),
            }
        }
        Err(ConnectError::NothingReachable {
            tried: attempts
                .iter()
                .map(|attempt| {
                    let reason = attempt
                        .outcome
                        .as_ref()
                        .err()
                        .map(|err| err.0.as_str())
                        .unwrap_or("ok");
                    let address = if attempt.address.is_empty() {
                        "(invalid)"
                    } else {
                        attempt.address.as_str()
                    };
                    format!("{address} ({}): {reason}", attempt.origin)
                })
                .collect(),
        })
    }

    /// The Control API client on this connection.
    pub(crate) fn control(&self) -> ControlClient<Channel> {
        control_client(&self.channel)
    }

    /// The daemon's workers, from the probe.
    pub(crate) fn workers(&self) -> Vec<super::daemon::Worker> {
        self.workers
            .iter()
            .map(super::daemon::Worker::from_wire)
            .collect()
    }

    /// The underlying channel, for other services on the same connection (the gateway).
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

fn control_client(channel: &Channel) -> ControlClient<Channel> {
    ControlClient::new(channel.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Connects and asks for the worker list: the cheapest call every BuildKit version answers.
async fn probe(
    address: &Address,
    tls: &TlsSettings,
    timeout: Duration,
    verbose: bool,
) -> Result<(Channel, Vec<WorkerRecord>, Daemon), ConnectError> {
    let deadline = Instant::now() + timeout;
    let channel = tokio::time::timeout(timeout, transport::connect(address, tls, timeout))
        .await
        .map_err(|_| ConnectError::Timeout {
            address: address.to_string(),
            after: timeout,
        })??;
    let mut control = ControlClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE);
    let remaining = deadline.saturating_duration_since(Instant::now());
    // What the daemon is, asked meanwhile; dropped at once if it does not answer as BuildKit.
    let mut examined = {
        let (control, address) = (control_client(&channel), address.clone());
        AbortOnDrop(tokio::spawn(async move {
            Daemon::examine(control, &address).await
        }))
    };
    let listed = tokio::time::timeout(
        remaining,
        control.list_workers(ListWorkersRequest::default()),
    )
    .await;
    let workers = match listed {
        Err(_) => {
            return Err(ConnectError::Timeout {
                address: address.to_string(),
                after: timeout,
            });
        }
        Ok(Err(status)) => return Err(probe_error(address, tls, &status, verbose)),
        Ok(Ok(response)) => response.into_inner().record,
    };
    let daemon = match (&mut examined.0).await {
        Ok(daemon) => daemon,
        // Not aborted yet, so it panicked: as if it had run here.
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    Ok((channel, workers, daemon))
}

/// A task aborted when its handle is dropped (a probe that fails leaves nothing running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why the probe's call failed, in words. The connection is up by then, so a failure of the transport itself (not a
/// gRPC status the peer sent) means the peer does not speak gRPC over HTTP/2.
fn probe_error(
    address: &Address,
    tls: &TlsSettings,
    status: &Status,
    verbose: bool,
) -> ConnectError {
    let detail = transport::status_detail(status);
    let address_text = address.to_string();
    if detail.contains("certificate") || detail.contains("tls") {
        return ConnectError::Tls {
            address: address_text,
            detail,
        };
    }
    if tls.is_enabled()
        && (detail.contains("connection closed") || transport::is_transport_failure(status))
    {
        // With TLS 1.3 a server that refuses the client's certificate (or its absence) hangs up after the
        // handshake, which agreed on HTTP/2 already: the peer does speak gRPC.
        let hint = match &tls.cert {
            None => "the daemon closed the connection right after the handshake; it may require a client \
                     certificate (--tlscert and --tlskey)"
                .to_owned(),
            Some(cert) if super::tls::is_v1_certificate(cert) => format!(
                "the daemon closed the connection right after the handshake; it may not accept the --tlscert \
                 file {}, an X.509 v1 certificate (no extensions): reissue it as v3 with `openssl x509 -req ... \
                 -extfile <(printf 'basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\n\
                 extendedKeyUsage=clientAuth')`",
                cert.display()
            ),
            Some(_) => "the daemon closed the connection right after the handshake; it may not accept this \
                        client certificate"
                .to_owned(),
        };
        return ConnectError::Tls {
            address: address_text,
            detail: hint,
        };
    }
    if transport::is_transport_failure(status) {
        return ConnectError::NotBuildkit {
            address: address_text,
            hint: match address {
                Address::Unix(_) => "; for Docker's API socket write docker+unix://PATH",
                Address::Tcp { .. } if !tls.is_enabled() => {
                    "; if the daemon speaks TLS, give --tlscacert"
                }
                _ => "",
            },
            detail: verbose.then_some(detail),
        };
    }
    if matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled
    ) {
        ConnectError::Unreachable {
            address: address_text,
            detail,
        }
    } else {
        ConnectError::Protocol {
            address: address_text,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn options(
        addr: Option<&str>,
        flag_ca: bool,
        manifest_addr: Option<&str>,
        manifest_ca: bool,
    ) -> ConnectOptions {
        let ca = |set: bool| set.then(|| PathBuf::from("/ca.pem"));
        ConnectOptions {
            addr: addr.map(str::to_owned),
            tls: TlsSettings {
                ca: ca(flag_ca),
                ..Default::default()
            },
            manifest: Some(ManifestSettings {
                manifest: PathBuf::from("/ws/Cargo.toml"),
                buildkit: manifest_addr.map(str::to_owned),
                tls: TlsSettings {
                    ca: ca(manifest_ca),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }
    }

    /// (flag address, TLS flag, manifest address, manifest TLS key, error/warning/ok).
    type Row = (
        Option<&'static str>,
        bool,
        Option<&'static str>,
        bool,
        &'static str,
    );

    #[test]
    fn tls_settings_apply_only_to_tcp() {
        let unix = Some("unix:///b.sock");
        let tcp = Some("tcp://b:1234");
        let table: &[Row] = &[
            (unix, false, None, false, "ok"),
            (tcp, true, None, false, "ok"),
            (unix, true, None, false, "error"),
            (Some("docker://"), true, tcp, true, "error"),
            (None, true, None, false, "error"),
            (None, false, unix, true, "error"),
            (None, false, tcp, true, "ok"),
            (unix, false, tcp, true, "warning"),
            (None, false, None, true, "warning"),
            // A bad address is the connection's error to report, not this check's.
            (Some("bogus"), true, None, false, "ok"),
        ];
        for (addr, flag_ca, manifest_addr, manifest_ca, expected) in table {
            let outcome = match options(*addr, *flag_ca, *manifest_addr, *manifest_ca).check_tls() {
                Err(ConnectError::TlsWithoutTcp { .. }) => "error",
                Err(other) => panic!("{other}"),
                Ok(warnings) if warnings.is_empty() => "ok",
                Ok(_) => "warning",
            };
            assert_eq!(
                outcome, *expected,
                "{addr:?} {flag_ca} {manifest_addr:?} {manifest_ca}"
            );
        }
    }
}
