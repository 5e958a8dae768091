//! `moby.filesync.v1.FileSend/DiffCopy` for the `tar`, `oci` and `docker` exporters, which stream the archive to
//! the client as `BytesMessage` chunks. The archive goes to a temp file beside its destination and is renamed into
//! place only by [`Export::commit`], which the caller runs once the solve succeeded: a failed, cancelled or
//! abandoned export leaves nothing behind (the temp file is removed when dropped).
//!
//! The `local` exporter (fsutil packets on the same method) is not served: its output is a dir, not a file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hive_proto::session::filesync::BytesMessage;
use hive_proto::session::filesync::file_send_server::FileSend;
use hive_proto::tonic::{self, Request, Response, Status, Streaming};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use super::errors::SessionError;

/// One export destination and what has been received for it.
#[derive(Debug)]
pub(crate) struct Export {
    destination: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    Waiting,
    Receiving,
    Received(NamedTempFile),
    Failed(String),
    Committed,
}

impl Export {
    /// An export into `destination` (a file path; its dir must exist).
    pub(crate) fn new(destination: PathBuf) -> Export {
        Export {
            destination,
            state: Mutex::new(State::Waiting),
        }
    }

    /// Moves the received archive into place. `Ok(None)` when the daemon sent nothing.
    pub(crate) async fn commit(&self) -> Result<Option<PathBuf>, SessionError> {
        let taken = std::mem::replace(&mut *self.lock(), State::Committed);
        let temp = match taken {
            State::Received(temp) => temp,
            State::Committed => return Ok(Some(self.destination.clone())),
            State::Waiting => {
                *self.lock() = State::Waiting;
                return Ok(None);
            }
            State::Receiving => {
                *self.lock() = State::Receiving;
                return Err(SessionError::ExportIncomplete {
                    path: self.destination.clone(),
                });
            }
            State::Failed(detail) => {
                *self.lock() = State::Failed(detail.clone());
                return Err(SessionError::ExportFailed {
                    path: self.destination.clone(),
                    detail,
                });
            }
        };
        let destination = self.destination.clone();
        // Temp files are created 0600; an archive is an ordinary output file (0644, as cargo writes binaries).
        let persisted = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::PermissionsExt;
            let _ = temp
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644));
            temp.persist(&destination)
        })
        .await
        .expect("persisting does not panic");
        match persisted {
            Ok(_) => Ok(Some(self.destination.clone())),
            Err(err) => {
                // The temp file comes back in the error and is removed with it.
                *self.lock() = State::Failed(err.error.to_string());
                Err(SessionError::ExportRename {
                    path: self.destination.clone(),
                    source: err.error,
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere can't leave the state half-updated: every update is one assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The FileSend service of one session.
pub(crate) struct FileSendService {
    export: Arc<Export>,
}

impl FileSendService {
    /// Receives into `export`.
    pub(crate) fn new(export: Arc<Export>) -> Self {
        FileSendService { export }
    }
}

#[tonic::async_trait]
impl FileSend for FileSendService {
    type DiffCopyStream = futures::stream::Empty<Result<BytesMessage, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let guard = ReceivingGuard::start(&self.export)?;
        // The state changes before we answer, so it is final by the time the daemon's Solve returns (its
        // exporter waits for our end of the call).
        match receive(&self.export.destination, request.into_inner()).await {
            Ok(temp) => {
                guard.finish(State::Received(temp));
                Ok(Response::new(futures::stream::empty()))
            }
            Err(err) => {
                let detail = err.to_string();
                guard.finish(State::Failed(detail.clone()));
                Err(Status::internal(detail))
            }
        }
    }
}

/// Marks an export as being received; if the call is dropped before it finishes (a cancelled solve resets the
/// stream, and the server drops the handler, temp file included), the export is marked failed.
struct ReceivingGuard<'a> {
    export: &'a Export,
    finished: bool,
}

impl<'a> ReceivingGuard<'a> {
    fn start(export: &'a Export) -> Result<Self, Status> {
        let mut state = export.lock();
        if !matches!(*state, State::Waiting) {
            return Err(Status::failed_precondition(
                "this session takes one exported file",
            ));
        }
        *state = State::Receiving;
        Ok(ReceivingGuard {
            export,
            finished: false,
        })
    }

    fn finish(mut self, state: State) {
        *self.export.lock() = state;
        self.finished = true;
    }
}

impl Drop for ReceivingGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            *self.export.lock() = State::Failed("the daemon cancelled the export".to_owned());
        }
    }
}

const PARTIAL_SUFFIX: &str = ".partial";

/// The start of the temp file's name for `destination_name`: it carries our pid, so that a later build can tell
/// the leftovers of a build that was killed from the files of one still running (see [`partial_owner`]).
fn partial_prefix(destination_name: &str) -> String {
    format!(".{destination_name}.{}.", std::process::id())
}

/// The pid of the build that wrote a partial archive called `file_name`: `.<destination>.<pid>.<random>.partial`.
pub(crate) fn partial_owner(file_name: &str) -> Option<u32> {
    let middle = file_name.strip_prefix('.')?.strip_suffix(PARTIAL_SUFFIX)?;
    let mut parts = middle.rsplitn(3, '.');
    let random = parts.next()?;
    let pid = parts.next()?;
    let destination = parts.next()?;
    let ours = !destination.is_empty()
        && !random.is_empty()
        && random.bytes().all(|byte| byte.is_ascii_alphanumeric());
    ours.then(|| pid.parse().ok()).flatten()
}

/// Why an export stream could not be received.
#[derive(Debug, thiserror::Error)]
enum ReceiveError {
    /// No temp file beside the destination.
    #[error("cannot create a temp file beside {destination}: {detail}")]
    Create {
        destination: String,
        detail: std::io::Error,
    },
    /// The temp file could not be written.
    #[error("cannot write {path}: {detail}")]
    Write {
        path: PathBuf,
        detail: std::io::Error,
    },
    /// The daemon's stream broke.
    #[error("export stream broke: {0}")]
    Stream(String),
}

/// Writes the stream into a temp file beside `destination`, flushed to disk.
async fn receive(
    destination: &Path,
    mut stream: Streaming<BytesMessage>,
) -> Result<NamedTempFile, ReceiveError> {
    let dir = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = destination
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_owned());
    let shown = destination.display().to_string();
    let temp = tokio::task::spawn_blocking(move || {
        let temp = tempfile::Builder::new()
            .prefix(&partial_prefix(&name))
            .suffix(PARTIAL_SUFFIX)
            .tempfile_in(dir)?;
        // Held until the file is closed, even by a SIGKILL: a later build sees the file is in use.
        let _ = rustix::fs::flock(
            temp.as_file(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        );
        Ok::<_, std::io::Error>(temp)
    })
    .await
    .expect("creating a temp file does not panic")
    .map_err(|detail| ReceiveError::Create {
        destination: shown,
        detail,
    })?;
    let write_error = |detail: std::io::Error| ReceiveError::Write {
        path: temp.path().to_path_buf(),
        detail,
    };
    let mut file = tokio::fs::File::from_std(temp.as_file().try_clone().map_err(write_error)?);
    while let Some(message) = stream
        .message()
        .await
        .map_err(|status| ReceiveError::Stream(status.message().to_owned()))?
    {
        file.write_all(&message.data).await.map_err(write_error)?;
    }
    file.flush().await.map_err(write_error)?;
    file.sync_all().await.map_err(write_error)?;
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use crate::buildkit::session::connection::{channel_over, single_connection};

    use hive_proto::session::filesync::file_send_client::FileSendClient;
    use hive_proto::session::filesync::file_send_server::FileSendServer;
    use hive_proto::tonic::transport::Server;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;

    type Client = FileSendClient<tonic::transport::Channel>;

    /// A client of a FileSend server, the connection between them going through a relay task: aborting the
    /// relay breaks the connection as a daemon going away does. Returns the server task too.
    async fn serve(export: Arc<Export>) -> (Client, JoinHandle<()>, JoinHandle<()>) {
        let (client_io, mut relay_a) = tokio::io::duplex(64 * 1024);
        let (mut relay_b, server_io) = tokio::io::duplex(64 * 1024);
        let relay = tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut relay_a, &mut relay_b).await;
        });
        let server = tokio::spawn(async move {
            let _ = Server::builder()
                .serve_with_incoming(
                    FileSendServer::new(FileSendService::new(export)),
                    single_connection(server_io),
                )
                .await;
        });
        let channel = channel_over(client_io).await;
        (FileSendClient::new(channel), server, relay)
    }

    async fn client(export: Arc<Export>) -> Client {
        serve(export).await.0
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_complete_export_is_renamed_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("image.tar");
        let export = Arc::new(Export::new(destination.clone()));
        assert_eq!(export.commit().await.unwrap(), None);
        let mut client = client(export.clone()).await;
        let chunks = [b"hello ".to_vec(), b"world".to_vec()];
        let request = futures::stream::iter(chunks.map(|data| BytesMessage { data }));
        client.diff_copy(request).await.unwrap();
        // Received, not yet in place.
        assert!(!destination.exists());
        assert_eq!(files(dir.path()).len(), 1);
        assert_eq!(export.commit().await.unwrap(), Some(destination.clone()));
        assert_eq!(std::fs::read(&destination).unwrap(), b"hello world");
        assert_eq!(files(dir.path()), ["image.tar"]);
        // One export per session.
        let again = futures::stream::iter([BytesMessage { data: vec![1] }]);
        assert!(client.diff_copy(again).await.is_err());
    }

    #[test]
    fn partial_names_carry_their_writer() {
        let name = format!("{}abc123{PARTIAL_SUFFIX}", partial_prefix("hello.oci.tar"));
        assert_eq!(partial_owner(&name), Some(std::process::id()));
        for foreign in [
            "hello.oci.tar",
            ".hello.oci.tar.abc123.partial",
            ".hello.oci.tar.12x.abc123.partial",
            "..12.abc123.partial",
            ".hello.oci.tar.12.abc123.tmp",
        ] {
            assert_eq!(partial_owner(foreign), None, "{foreign}");
        }
    }

    #[tokio::test]
    async fn a_broken_export_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("image.tar");
        let export = Arc::new(Export::new(destination.clone()));
        let (mut client, _server, relay) = serve(export.clone()).await;
        let (tx, rx) = mpsc::channel(4);
        tx.send(BytesMessage {
            data: vec![7; 1000],
        })
        .await
        .unwrap();
        let call = tokio::spawn(async move { client.diff_copy(ReceiverStream::new(rx)).await });
        // Wait until the partial file exists, then break the connection mid-stream.
        while files(dir.path()).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        relay.abort();
        let _ = call.await;
        drop(tx);
        for _ in 0..200 {
            if matches!(*export.lock(), State::Failed(_)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(matches!(
            export.commit().await,
            Err(SessionError::ExportFailed { .. })
        ));
        assert!(files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn dropping_an_uncommitted_export_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let export = Arc::new(Export::new(dir.path().join("out.tar")));
        let (mut client, server, _relay) = serve(export.clone()).await;
        let request = futures::stream::iter([BytesMessage { data: vec![1; 10] }]);
        client.diff_copy(request).await.unwrap();
        assert_eq!(files(dir.path()).len(), 1);
        server.abort();
        drop(client);
        drop(export);
        // The server task still holds the service until its connection ends; give it a moment.
        for _ in 0..200 {
            if files(dir.path()).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(files(dir.path()).is_empty());
    }
}
