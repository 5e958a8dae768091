//! In-process peers for the failure and TLS cases: a listener that accepts and never answers, a TLS server with
//! a certificate for the wrong name, and a TLS (optionally mutual) front for the real daemon's gRPC endpoint, so
//! `tcp://` with TLS is tested against the real BuildKit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::runtime::Runtime;

/// The runtime the fakes run on, in the background while a test waits for the binary.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime starts")
    })
}

/// A CA, a server certificate for one name, and a client certificate, written as PEM files into a directory.
#[derive(Debug)]
pub struct Pki {
    /// CA certificate.
    pub ca: PathBuf,
    /// CA key (to sign more certificates with `openssl`).
    pub ca_key: PathBuf,
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate (signed by the CA).
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

impl Pki {
    /// Makes the files in `dir`; the server certificate is valid for `server_name` only.
    pub fn generate(dir: &Path, server_name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hive test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(server_name);
        let (client_cert, client_key) = leaf("hive-client");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            ca_key: write("ca-key.pem", &ca_key_pem),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server-key.pem", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client-key.pem", &client_key),
        }
    }

    fn server_config(&self, require_client_cert: bool) -> rustls::ServerConfig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.server_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&self.server_key).unwrap();
        let builder = rustls::ServerConfig::builder();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }
}

impl Pki {
    /// A TLS 1.3 server configuration that behaves as Go's TLS does for buildkitd where rustls is stricter: it
    /// serves the server certificate file even when that is X.509 v1, and with `client` = (certificate DER, its
    /// SubjectPublicKeyInfo DER) requires exactly that client certificate, v1 or not, and checks the handshake
    /// signature with that key.
    pub fn go_like_server_config(
        &self,
        client: Option<(Vec<u8>, Vec<u8>)>,
    ) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.server_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::from_pem_file(&self.server_key).unwrap())
            .unwrap();
        // `with_single_cert` parses the certificate with webpki, which refuses v1.
        let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(
            rustls::sign::CertifiedKey::new(certs, key),
        ));
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap();
        let builder = match client {
            Some((cert, spki)) => builder.with_client_cert_verifier(Arc::new(PinnedClient {
                cert,
                spki,
                algorithms: provider.signature_verification_algorithms,
            })),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }
}

/// Accepts one client certificate, compared byte for byte, whatever its X.509 version.
#[derive(Debug)]
struct PinnedClient {
    cert: Vec<u8>,
    spki: Vec<u8>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for PinnedClient {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(rustls::server::danger::ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the expected client certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &rustls::pki_types::SubjectPublicKeyInfoDer::from(self.spki.as_slice()),
            dss,
            &self.algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A unix socket that accepts connections and never says anything.
pub fn silent_unix_socket(path: &Path) {
    let listener = runtime()
        .block_on(async { UnixListener::bind(path) })
        .unwrap();
    runtime().spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
}

/// A TCP port on 127.0.0.1 that accepts connections and never says anything.
pub fn silent_tcp_port() -> u16 {
    let listener = runtime()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime().spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}

/// A TCP port on 127.0.0.1 that accepts connections, reads what the client sends first, answers `reply` (an HTTP/1.1
/// response, random bytes: anything but HTTP/2) and keeps the connection open.
pub fn junk_tcp_port(reply: &'static [u8]) -> u16 {
    let listener = runtime()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime().spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 1024];
                let _ = stream.read(&mut first).await;
                let _ = stream.write_all(reply).await;
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
            });
        }
    });
    port
}

/// Plain TCP on 127.0.0.1 in front of Docker's embedded BuildKit (each connection upgraded on `/grpc`) that cuts
/// every connection, and stops listening, once `cut_after` bytes have gone from the client to the daemon: a daemon
/// that goes away mid-build.
pub fn cutting_front_for_docker(docker_socket: &Path, cut_after: u64) -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = runtime()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let docker_socket = docker_socket.to_path_buf();
    let sent = Arc::new(AtomicU64::new(0));
    let (cut, _) = tokio::sync::broadcast::channel::<()>(1);
    runtime().spawn(async move {
        let mut cut_seen = cut.subscribe();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = cut_seen.recv() => return, // dropping the listener: later connects are refused
            };
            let Ok((tcp, _)) = accepted else { return };
            let Ok(docker) = upgrade(&docker_socket).await else {
                continue;
            };
            let (sent, cut, mut cut_seen) = (sent.clone(), cut.clone(), cut.subscribe());
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = tcp.into_split();
                let (mut daemon_read, mut daemon_write) = docker.into_split();
                let upstream = async {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let read = client_read.read(&mut buffer).await.unwrap_or(0);
                        if read == 0 || daemon_write.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                        if sent.fetch_add(read as u64, Ordering::SeqCst) + read as u64 >= cut_after
                        {
                            let _ = cut.send(());
                            return;
                        }
                    }
                };
                let downstream = tokio::io::copy(&mut daemon_read, &mut client_write);
                // Whichever ends first, both halves of both streams are dropped: the connection is gone.
                tokio::select! {
                    () = upstream => {}
                    _ = downstream => {}
                    _ = cut_seen.recv() => {}
                }
            });
        }
    });
    port
}

/// TLS on 127.0.0.1 in front of Docker's embedded BuildKit: each connection is upgraded on the Docker socket's
/// `/grpc` and spliced to the TLS stream, so the client speaks plain BuildKit gRPC over TLS to the real daemon.
pub fn tls_front_for_docker(pki: &Pki, docker_socket: &Path, require_client_cert: bool) -> u16 {
    tls_front_with_config(pki.server_config(require_client_cert), docker_socket)
}

/// [`tls_front_for_docker`] with a server configuration of the test's own.
pub fn tls_front_with_config(config: rustls::ServerConfig, docker_socket: &Path) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = runtime()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let docker_socket = docker_socket.to_path_buf();
    runtime().spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let docker_socket = docker_socket.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut docker) = upgrade(&docker_socket).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut docker).await;
            });
        }
    });
    port
}

async fn upgrade(socket: &Path) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket).await?;
    stream
        .write_all(
            b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        )
        .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(stream)
}
