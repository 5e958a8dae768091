//! One session: an HTTP/2 connection tunnelled inside the `Control.Session` call's `BytesMessage` stream, on which
//! we are the gRPC *server* and the daemon the client. Two pump tasks bridge the call and an in-memory duplex
//! pipe; tonic's server serves the other end of the pipe.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use hive_proto::control::BytesMessage;
use hive_proto::health::health_server::HealthServer;
use hive_proto::session::content::content_server::ContentServer;
use hive_proto::session::filesync::auth_server::AuthServer;
use hive_proto::session::filesync::file_send_server::FileSendServer;
use hive_proto::session::packet::file_sync_server::FileSyncServer;
use hive_proto::session::secrets::secrets_server::SecretsServer;
use hive_proto::tonic::body::Body;
use hive_proto::tonic::metadata::{MetadataMap, MetadataValue};
use hive_proto::tonic::transport::Server;
use hive_proto::tonic::{Request, Status, Streaming};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::auth::{AuthService, DockerAuth};
use super::content::{ContentBlobs, ContentService};
use super::errors::SessionError;
use super::export::{Export, FileSendService};
use super::filesync::{FileSyncService, SendLog};
use super::health::HealthService;
use super::secrets::{SecretValues, SecretsService};
use super::walk::StagedTree;
use crate::buildkit::{Buildkit, new_id};

/// Bytes buffered in the in-memory pipe each way.
const TUNNEL_BUFFER: usize = 1024 * 1024;
/// Largest `BytesMessage` we send (well under gRPC's 4 MiB default limit on the daemon's side).
const TUNNEL_CHUNK: usize = 256 * 1024;
/// `BytesMessage`s queued towards the daemon.
const TUNNEL_QUEUE: usize = 16;
/// HTTP/2 receive windows of our server: exports stream in without waiting for window updates.
const RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;
/// How long the daemon has to accept the session.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Session::close`] waits for the daemon to end the session.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a session serves.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionConfig {
    /// Shown in the daemon's session list (`x-docker-expose-session-name`).
    pub(crate) name: String,
    /// Keys the daemon's snapshots of our local dirs (with each source's shared-key hint): keep it stable per
    /// workspace so that a rebuild only re-sends what changed.
    pub(crate) shared_key: String,
    /// Local dirs by the name local sources use (`local://<name>`).
    pub(crate) local_dirs: BTreeMap<String, LocalDir>,
    /// Where a `tar`/`oci`/`docker` export goes (one per session), or `None` to refuse exports.
    pub(crate) export: Option<PathBuf>,
    /// The build secrets this solve's steps may mount, by id; any other id is answered `NotFound`.
    pub(crate) secrets: SecretValues,
    /// The blobs of this solve's `oci-layout://` sources (store id `oci:<id>`), by digest; may grow during the solve.
    pub(crate) content: Arc<ContentBlobs>,
}

/// A local dir the daemon may read.
#[derive(Debug, Clone)]
pub(crate) struct LocalDir {
    /// The dir.
    pub(crate) root: PathBuf,
    /// If set, only these relative paths (and what is below them) are ever listed, whatever the daemon asks.
    pub(crate) allow: Option<Vec<String>>,
    /// Files served as if they were in the dir, by relative path (`.hive/bin/linux/amd64/api`), with the dirs
    /// they need; they obey the daemon's patterns and the allowlist like the dir's own files, and shadow an entry
    /// of the dir at the same path.
    pub(crate) staged: BTreeMap<String, PathBuf>,
}

/// A live session. Dropping it ends it abruptly; [`Session::close`] ends it cleanly.
#[derive(Debug)]
pub(crate) struct Session {
    id: String,
    log: Arc<SendLog>,
    export: Option<Arc<Export>>,
    /// Serves the tunnel; never ends by itself.
    server: JoinHandle<()>,
    /// Our bytes to the daemon; aborting it half-closes the call.
    outbound: JoinHandle<()>,
    /// The call and the daemon's bytes to us; ends when the daemon ends the session.
    inbound: JoinHandle<()>,
}

impl Session {
    /// Opens a session on `buildkit`'s connection and waits until the daemon has accepted it.
    pub(crate) async fn start(
        buildkit: &Buildkit,
        config: SessionConfig,
    ) -> Result<Session, SessionError> {
        for (name, dir) in &config.local_dirs {
            StagedTree::new(&dir.staged).map_err(|source| SessionError::Staged {
                dir: name.clone(),
                source,
            })?;
        }
        let id = new_id();
        let log = Arc::new(SendLog::default());
        let export = config.export.map(|path| Arc::new(Export::new(path)));
        let services = Services::new(
            config.local_dirs,
            log.clone(),
            export.clone(),
            config.secrets,
            config.content,
        );
        let metadata = session_metadata(&id, &config.name, &config.shared_key, &services)?;

        let (ours, theirs) = tokio::io::duplex(TUNNEL_BUFFER);
        let (reader, writer) = tokio::io::split(ours);
        let (tx, rx) = mpsc::channel(TUNNEL_QUEUE);
        let mut request = Request::new(ReceiverStream::new(rx));
        *request.metadata_mut() = metadata;
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let mut control = buildkit.control();
        let inbound = tokio::spawn(async move {
            match control.session(request).await {
                Ok(response) => {
                    let _ = accepted_tx.send(Ok(()));
                    pump_in(response.into_inner(), writer).await;
                }
                Err(status) => {
                    let _ = accepted_tx.send(Err(status));
                }
            }
        });
        let session = Session {
            id,
            log,
            export,
            server: tokio::spawn(serve(services, theirs)),
            outbound: tokio::spawn(pump_out(reader, tx)),
            inbound,
        };
        // From here on an error drops `session`, which stops its tasks.
        match tokio::time::timeout(START_TIMEOUT, accepted_rx).await {
            Ok(Ok(Ok(()))) => Ok(session),
            Ok(Ok(Err(status))) => Err(SessionError::Start {
                detail: status.message().to_owned(),
            }),
            Ok(Err(_)) => Err(SessionError::Start {
                detail: "the session call ended early".to_owned(),
            }),
            Err(_) => Err(SessionError::Start {
                detail: format!("no answer within {} s", START_TIMEOUT.as_secs()),
            }),
        }
    }

    /// The session id, for `SolveRequest.session`.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Bytes of file content sent to the daemon so far (local sources and content-store blobs).
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.log.bytes_sent()
    }

    /// A local file that changed while it was being sent: the image would hold neither its old nor its new
    /// content, so it must not be exported.
    pub(crate) fn changed_file(&self) -> Option<PathBuf> {
        self.log.changed_file()
    }

    /// Moves the exported archive into place; call it once the solve has succeeded. `Ok(None)` when the session
    /// takes no export or the daemon sent none.
    pub(crate) async fn commit_export(&self) -> Result<Option<PathBuf>, SessionError> {
        match &self.export {
            Some(export) => export.commit().await,
            None => Ok(None),
        }
    }

    /// Ends the session: half-closes our side of the call, on which the daemon ends it (in well under a
    /// millisecond). An uncommitted export is removed.
    pub(crate) async fn close(mut self) {
        self.outbound.abort();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut self.inbound).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.outbound.abort();
        self.inbound.abort();
        self.server.abort();
    }
}

/// The session headers, as gRPC metadata on the `Session` call.
fn session_metadata(
    id: &str,
    name: &str,
    shared_key: &str,
    services: &Services,
) -> Result<MetadataMap, SessionError> {
    let value = |what: &'static str, value: &str| {
        MetadataValue::try_from(value).map_err(|_| SessionError::InvalidHeader {
            what,
            value: value.to_owned(),
        })
    };
    let mut metadata = MetadataMap::new();
    metadata.insert("x-docker-expose-session-uuid", value("id", id)?);
    metadata.insert("x-docker-expose-session-name", value("name", name)?);
    metadata.insert(
        "x-docker-expose-session-sharedkey",
        value("shared key", shared_key)?,
    );
    for method in services.methods() {
        metadata.append(
            "x-docker-expose-session-grpc-method",
            MetadataValue::from_static(method),
        );
    }
    Ok(metadata)
}

/// One connection as the stream of connections tonic's server takes. The server returns when that stream ends,
/// detaching the connection: a pending tail keeps it (and so the session) alive.
pub(super) fn single_connection(
    io: DuplexStream,
) -> impl futures::Stream<Item = Result<DuplexStream, io::Error>> {
    futures::stream::iter([Ok(io)]).chain(futures::stream::pending())
}

/// A client channel over one in-process connection (the tests' end of a `single_connection`).
#[cfg(test)]
pub(super) async fn channel_over(io: DuplexStream) -> hive_proto::tonic::transport::Channel {
    let mut io = Some(io);
    hive_proto::tonic::transport::Endpoint::from_static("http://session")
        .connect_with_connector(tower::service_fn(move |_| {
            let io = io.take();
            async move {
                io.map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| io::Error::other("one connection only"))
            }
        }))
        .await
        .expect("an in-process connection opens")
}

/// Serves the tunnel's end until aborted.
async fn serve(services: Services, io: DuplexStream) {
    let incoming = single_connection(io);
    let _ = Server::builder()
        .initial_stream_window_size(RECEIVE_WINDOW)
        .initial_connection_window_size(RECEIVE_WINDOW)
        .serve_with_incoming(services, incoming)
        .await;
}

/// Our server's bytes → `BytesMessage`s on the call. Ends (dropping the sender, which half-closes the call) when
/// the pipe closes.
async fn pump_out(mut reader: ReadHalf<DuplexStream>, tx: mpsc::Sender<BytesMessage>) {
    let mut buffer = vec![0; TUNNEL_CHUNK];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                let message = BytesMessage {
                    data: buffer[..read].to_vec(),
                };
                if tx.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The call's `BytesMessage`s → our server, until the daemon ends the session.
async fn pump_in(mut inbound: Streaming<BytesMessage>, mut writer: WriteHalf<DuplexStream>) {
    while let Ok(Some(message)) = inbound.message().await {
        if writer.write_all(&message.data).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

/// The services of a session, routed by gRPC service name (tonic's own router needs a feature we don't build).
#[derive(Clone)]
struct Services {
    file_sync: Option<FileSyncServer<FileSyncService>>,
    file_send: Option<FileSendServer<FileSendService>>,
    auth: AuthServer<AuthService>,
    secrets: SecretsServer<SecretsService>,
    content: ContentServer<ContentService>,
    health: HealthServer<HealthService>,
}

impl Services {
    fn new(
        dirs: BTreeMap<String, LocalDir>,
        log: Arc<SendLog>,
        export: Option<Arc<Export>>,
        secrets: SecretValues,
        content: Arc<ContentBlobs>,
    ) -> Services {
        let file_sync = (!dirs.is_empty())
            .then(|| FileSyncServer::new(FileSyncService::new(Arc::new(dirs), log.clone())));
        Services {
            file_sync,
            file_send: export.map(|export| FileSendServer::new(FileSendService::new(export))),
            auth: AuthServer::new(AuthService::new(DockerAuth::from_env())),
            secrets: SecretsServer::new(SecretsService::new(secrets)),
            content: ContentServer::new(ContentService::new(content, log)),
            health: HealthServer::new(HealthService),
        }
    }

    /// The methods we announce; the daemon only calls announced ones (for file sync and export it says "not
    /// supported by the client" otherwise, which is the clearest error for a session without them).
    fn methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.file_sync.is_some() {
            methods.push("/moby.filesync.v1.FileSync/DiffCopy");
        }
        if self.file_send.is_some() {
            methods.push("/moby.filesync.v1.FileSend/DiffCopy");
        }
        methods.extend([
            "/moby.filesync.v1.Auth/Credentials",
            "/moby.filesync.v1.Auth/FetchToken",
            "/moby.filesync.v1.Auth/GetTokenAuthority",
            "/moby.filesync.v1.Auth/VerifyTokenAuthority",
            // Always announced: a step asking for an undeclared id then gets our `NotFound`, not "unsupported".
            "/moby.buildkit.secrets.v1.Secrets/GetSecret",
            // Always announced: an empty store answers `NotFound`, which names the missing digest.
            "/containerd.services.content.v1.Content/Info",
            "/containerd.services.content.v1.Content/Read",
            "/grpc.health.v1.Health/Check",
        ]);
        methods
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static>>;

impl tower::Service<http::Request<Body>> for Services {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> ResponseFuture {
        let service = request.uri().path().split('/').nth(1).unwrap_or_default();
        match service {
            "moby.filesync.v1.FileSync" => {
                if let Some(file_sync) = &mut self.file_sync {
                    return file_sync.call(request);
                }
            }
            "moby.filesync.v1.FileSend" => {
                if let Some(file_send) = &mut self.file_send {
                    return file_send.call(request);
                }
            }
            "moby.filesync.v1.Auth" => return self.auth.call(request),
            "moby.buildkit.secrets.v1.Secrets" => return self.secrets.call(request),
            "containerd.services.content.v1.Content" => return self.content.call(request),
            "grpc.health.v1.Health" => return self.health.call(request),
            _ => {}
        }
        let unimplemented = Status::unimplemented(format!(
            "{} is not served by this session",
            request.uri().path()
        ));
        Box::pin(async move { Ok(unimplemented.into_http()) })
    }
}

#[cfg(test)]
mod tests {
    use hive_proto::session::content::InfoRequest;
    use hive_proto::session::content::content_client::ContentClient;

    use super::*;
    use crate::buildkit::session::content::Blob;

    /// The content store is announced and routed in every session, even one that serves no dirs.
    #[tokio::test]
    async fn every_session_serves_its_content_store() {
        let content = Arc::new(ContentBlobs::default());
        content.insert("sha256:config".to_owned(), Blob::Bytes(b"{}".to_vec()));
        let services = Services::new(
            BTreeMap::new(),
            Arc::new(SendLog::default()),
            None,
            SecretValues::default(),
            content,
        );
        let methods = services.methods();
        for method in [
            "/containerd.services.content.v1.Content/Info",
            "/containerd.services.content.v1.Content/Read",
        ] {
            assert!(methods.contains(&method), "{method} is announced");
        }
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve(services, theirs));
        let mut client = ContentClient::new(channel_over(ours).await);
        let mut request = Request::new(InfoRequest {
            digest: "sha256:config".to_owned(),
        });
        request.metadata_mut().insert(
            "buildkit-attachable-store-id",
            MetadataValue::from_static("oci:hive"),
        );
        let info = client.info(request).await.unwrap().into_inner().info;
        assert_eq!(info.map(|info| info.size), Some(2));
        server.abort();
    }
}
