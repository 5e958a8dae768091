//! `containerd.services.content.v1.Content`: the blobs of our `oci-layout://` sources. Each layer cargo-hive packs
//! itself (and its one-layer image's config, manifest and index) is served by digest; the daemon asks `Info` for a
//! blob's size, then `Read` once per `ReadAt` of its reader, and only copies or pushes what it gets — no snapshot,
//! diff or compression on its side. A file blob is read with positional reads, one chunk at a time, never whole.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use hive_proto::session::content::content_server::Content;
use hive_proto::session::content::{
    Info, InfoRequest, InfoResponse, ReadContentRequest, ReadContentResponse,
};
use hive_proto::tonic::metadata::MetadataMap;
use hive_proto::tonic::{self, Request, Response, Status};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::filesync::SendLog;

/// The gRPC metadata naming the store a call is for (BuildKit's `session/content`); `oci:<id>` for layouts.
const STORE_HEADER: &str = "buildkit-attachable-store-id";
/// The prefix BuildKit's `oci-layout://` source puts before the store id.
const OCI_STORE_PREFIX: &str = "oci:";
/// Largest `data` of one response: well under the 4 MiB gRPC messages the daemon accepts.
const CHUNK: usize = 1024 * 1024;
/// Responses queued towards the daemon per `Read`: with `CHUNK`, the memory a read of a large file holds.
const QUEUE: usize = 2;

/// The blobs a session's content store serves, by digest (`sha256:<hex>`); filled before or during the solve.
#[derive(Debug, Default)]
pub(crate) struct ContentBlobs {
    blobs: RwLock<BTreeMap<String, Source>>,
}

/// Where a blob's bytes are.
pub(crate) enum Blob {
    /// In memory (configs, manifests: small documents).
    Bytes(Vec<u8>),
    /// A file of `size` bytes (a packed layer), read in chunks as the daemon asks.
    File {
        /// The file.
        path: PathBuf,
        /// Its size: what `Info` answers, checked against the file when a read opens it.
        size: u64,
    },
}

/// Lengths, not bytes: a layer's content has no place in a log.
impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blob::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Blob::File { path, size } => write!(f, "File({}, {size} bytes)", path.display()),
        }
    }
}

impl ContentBlobs {
    /// Serves `blob` as `digest` (replacing what was served under it).
    pub(crate) fn insert(&self, digest: String, blob: Blob) {
        let source = match blob {
            Blob::Bytes(bytes) => Source::Bytes(Arc::new(bytes)),
            Blob::File { path, size } => Source::File { path, size },
        };
        self.blobs
            .write()
            .expect("not poisoned")
            .insert(digest, source);
    }

    fn get(&self, digest: &str) -> Option<Source> {
        self.blobs
            .read()
            .expect("not poisoned")
            .get(digest)
            .cloned()
    }
}

/// A blob as held: shared, so a read needs neither the lock nor a copy of the whole blob.
#[derive(Clone)]
enum Source {
    Bytes(Arc<Vec<u8>>),
    File { path: PathBuf, size: u64 },
}

/// Only sizes, as for [`Blob`].
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Source::File { path, size } => write!(f, "File({}, {size} bytes)", path.display()),
        }
    }
}

impl Source {
    fn size(&self) -> u64 {
        match self {
            Source::Bytes(bytes) => bytes.len() as u64,
            Source::File { size, .. } => *size,
        }
    }
}

/// Why a content call failed; each becomes the gRPC status containerd's client maps back to its own errors.
#[derive(Debug, thiserror::Error)]
enum ContentError {
    /// BuildKit always names the store; a call without it is not from BuildKit's `oci-layout://` source.
    #[error("the request lacks the {STORE_HEADER:?} metadata")]
    MissingStore,
    /// A store other than an OCI layout one (BuildKit's local cache stores are not ours to serve).
    #[error("store {0:?} is not an OCI layout store (`{OCI_STORE_PREFIX}<id>`)")]
    NotOciStore(String),
    /// A digest this session does not serve.
    #[error("content digest {0} not found")]
    NotFound(String),
    /// A negative offset or size.
    #[error("invalid read of {digest}: offset {offset}, size {size}")]
    InvalidRange {
        /// The blob.
        digest: String,
        /// The offset asked for.
        offset: i64,
        /// The size asked for.
        size: i64,
    },
    /// An offset past the end of the blob.
    #[error("offset {offset} is beyond the end of {digest} ({size} bytes)")]
    OutOfRange {
        /// The blob.
        digest: String,
        /// The offset asked for.
        offset: i64,
        /// The blob's size.
        size: u64,
    },
    /// A file blob whose file is not the size it was declared with: it changed after it was packed.
    #[error("{} is {actual} bytes, not the {declared} it was served as", path.display())]
    SizeChanged {
        /// The file.
        path: PathBuf,
        /// The size it was served as.
        declared: u64,
        /// Its size now.
        actual: u64,
    },
    /// A file blob that could not be read.
    #[error("failed to read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<ContentError> for Status {
    fn from(err: ContentError) -> Status {
        let message = err.to_string();
        match err {
            ContentError::MissingStore
            | ContentError::NotOciStore(_)
            | ContentError::InvalidRange { .. } => Status::invalid_argument(message),
            ContentError::NotFound(_) => Status::not_found(message),
            ContentError::OutOfRange { .. } => Status::out_of_range(message),
            ContentError::SizeChanged { .. } => Status::failed_precondition(message),
            ContentError::Read { .. } => Status::internal(message),
        }
    }
}

/// Serves a session's [`ContentBlobs`], counting the bytes it sends in the session's [`SendLog`].
pub(super) struct ContentService {
    blobs: Arc<ContentBlobs>,
    log: Arc<SendLog>,
}

impl ContentService {
    /// Serves `blobs`, counting what it sends in `log`.
    pub(super) fn new(blobs: Arc<ContentBlobs>, log: Arc<SendLog>) -> ContentService {
        ContentService { blobs, log }
    }

    fn find(&self, metadata: &MetadataMap, digest: &str) -> Result<Source, ContentError> {
        check_store(metadata)?;
        self.blobs
            .get(digest)
            .ok_or_else(|| ContentError::NotFound(digest.to_owned()))
    }
}

/// The responses of one `Read`, fed by its sending task.
type ReadStream = ReceiverStream<Result<ReadContentResponse, Status>>;

#[tonic::async_trait]
impl Content for ContentService {
    type ReadStream = ReadStream;

    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let digest = &request.get_ref().digest;
        let source = self.find(request.metadata(), digest)?;
        let size = i64::try_from(source.size()).expect("a blob is smaller than 8 EiB");
        Ok(Response::new(InfoResponse {
            // No timestamps and no labels: nothing the daemon reads, and absent is deterministic.
            info: Some(Info {
                digest: digest.clone(),
                size,
                ..Info::default()
            }),
        }))
    }

    async fn read(
        &self,
        request: Request<ReadContentRequest>,
    ) -> Result<Response<ReadStream>, Status> {
        let source = self.find(request.metadata(), &request.get_ref().digest)?;
        let range = read_range(request.get_ref(), source.size())?;
        let reader = Reader::open(source).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send(reader, range, tx, self.log.clone()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The store header is there and names an OCI layout store.
fn check_store(metadata: &MetadataMap) -> Result<(), ContentError> {
    let value = metadata
        .get(STORE_HEADER)
        .ok_or(ContentError::MissingStore)?;
    let id = value
        .to_str()
        .map_err(|_| ContentError::NotOciStore(String::from_utf8_lossy(value.as_bytes()).into()))?;
    if id.starts_with(OCI_STORE_PREFIX) {
        Ok(())
    } else {
        Err(ContentError::NotOciStore(id.to_owned()))
    }
}

/// The bytes a read covers: from `offset`, `size` bytes or (size 0, or past the end) to the end.
fn read_range(request: &ReadContentRequest, len: u64) -> Result<Range<u64>, ContentError> {
    let ReadContentRequest {
        digest,
        offset,
        size,
    } = request;
    let (Ok(start), Ok(wanted)) = (u64::try_from(*offset), u64::try_from(*size)) else {
        return Err(ContentError::InvalidRange {
            digest: digest.clone(),
            offset: *offset,
            size: *size,
        });
    };
    if start > len {
        return Err(ContentError::OutOfRange {
            digest: digest.clone(),
            offset: *offset,
            size: len,
        });
    }
    let end = match wanted {
        0 => len,
        wanted => start.saturating_add(wanted).min(len),
    };
    Ok(start..end)
}

/// An opened blob.
enum Reader {
    Bytes(Arc<Vec<u8>>),
    File { file: Arc<File>, path: PathBuf },
}

impl Reader {
    /// Opens a file blob (checking its size) off the async threads; bytes need nothing.
    async fn open(source: Source) -> Result<Reader, ContentError> {
        let (path, declared) = match source {
            Source::Bytes(bytes) => return Ok(Reader::Bytes(bytes)),
            Source::File { path, size } => (path, size),
        };
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let file = File::open(&path)?;
                let actual = file.metadata()?.len();
                Ok::<_, io::Error>((file, actual))
            })
            .await
            .expect("opening a file does not panic")
        };
        match opened {
            Ok((file, actual)) if actual == declared => Ok(Reader::File {
                file: Arc::new(file),
                path,
            }),
            Ok((_, actual)) => Err(ContentError::SizeChanged {
                path,
                declared,
                actual,
            }),
            Err(source) => Err(ContentError::Read { path, source }),
        }
    }

    /// The bytes of `range` (at most a chunk).
    async fn chunk(&self, range: Range<u64>) -> Result<Vec<u8>, ContentError> {
        match self {
            Reader::Bytes(bytes) => {
                // The range lies within the blob: `read_range` clamps it to the blob's size.
                Ok(bytes[range.start as usize..range.end as usize].to_vec())
            }
            Reader::File { file, path } => {
                let file = file.clone();
                let len = (range.end - range.start) as usize;
                tokio::task::spawn_blocking(move || {
                    let mut buffer = vec![0; len];
                    file.read_exact_at(&mut buffer, range.start)
                        .map(|()| buffer)
                })
                .await
                .expect("reading a file does not panic")
                .map_err(|source| ContentError::Read {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
}

/// Streams `range` of `reader` in chunks, each with its offset, until done, failed or the daemon hangs up.
async fn send(
    reader: Reader,
    range: Range<u64>,
    tx: mpsc::Sender<Result<ReadContentResponse, Status>>,
    log: Arc<SendLog>,
) {
    let mut at = range.start;
    while at < range.end {
        let end = range.end.min(at + CHUNK as u64);
        let data = match reader.chunk(at..end).await {
            Ok(data) => data,
            Err(err) => {
                let _ = tx.send(Err(err.into())).await;
                return;
            }
        };
        let sent = data.len();
        let response = ReadContentResponse {
            offset: at as i64,
            data,
        };
        if tx.send(Ok(response)).await.is_err() {
            return;
        }
        // Layers are the files sent; the manifests and configs around them (read again on every build of the
        // image) are not.
        if matches!(reader, Reader::File { .. }) {
            log.add_sent(sent);
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use hive_proto::session::content::content_client::ContentClient;
    use hive_proto::session::content::content_server::ContentServer;
    use hive_proto::tonic::Code;
    use hive_proto::tonic::transport::Server;

    use super::*;
    use crate::buildkit::session::connection::{channel_over, single_connection};

    const SMALL: &str = "sha256:small";
    const LARGE: &str = "sha256:large";

    /// Bytes that differ at every offset, so a misplaced chunk shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// A store with `SMALL` in memory and `LARGE` (two chunks and a bit) in a file; the log it counts in.
    fn service(dir: &tempfile::TempDir) -> (ContentService, Arc<SendLog>) {
        let path = dir.path().join("layer.tar.gz");
        let large = pattern(2 * CHUNK + 10);
        std::fs::write(&path, &large).unwrap();
        let blobs = Arc::new(ContentBlobs::default());
        blobs.insert(SMALL.to_owned(), Blob::Bytes(b"hello, layer".to_vec()));
        blobs.insert(
            LARGE.to_owned(),
            Blob::File {
                path,
                size: large.len() as u64,
            },
        );
        let log = Arc::new(SendLog::default());
        (ContentService::new(blobs, log.clone()), log)
    }

    fn with_store<T>(message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(STORE_HEADER, "oci:hive".parse().unwrap());
        request
    }

    fn read_request(digest: &str, offset: i64, size: i64) -> Request<ReadContentRequest> {
        with_store(ReadContentRequest {
            digest: digest.to_owned(),
            offset,
            size,
        })
    }

    /// The responses of a read, as (offset, length) pairs, and the bytes they carry.
    async fn read(
        service: &ContentService,
        request: Request<ReadContentRequest>,
    ) -> Result<(Vec<(i64, usize)>, Vec<u8>), Status> {
        let mut stream = service.read(request).await?.into_inner();
        let (mut pieces, mut bytes) = (Vec::new(), Vec::new());
        while let Some(response) = stream.next().await {
            let response = response?;
            pieces.push((response.offset, response.data.len()));
            bytes.extend_from_slice(&response.data);
        }
        Ok((pieces, bytes))
    }

    /// The status a read fails with.
    async fn read_error(service: &ContentService, request: Request<ReadContentRequest>) -> Status {
        read(service, request).await.unwrap_err()
    }

    #[tokio::test]
    async fn info_gives_the_size_of_known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let (service, _) = service(&dir);
        let info = |digest: &str| {
            service.info(with_store(InfoRequest {
                digest: digest.to_owned(),
            }))
        };
        let small = info(SMALL).await.unwrap().into_inner().info.unwrap();
        assert_eq!((small.digest.as_str(), small.size), (SMALL, 12));
        assert_eq!((small.created_at, small.updated_at), (None, None));
        let large = info(LARGE).await.unwrap().into_inner().info.unwrap();
        assert_eq!(large.size, 2 * CHUNK as i64 + 10);
        let unknown = info("sha256:other").await.unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        assert_eq!(unknown.message(), "content digest sha256:other not found");
    }

    #[tokio::test]
    async fn calls_must_name_an_oci_store() {
        let dir = tempfile::tempdir().unwrap();
        let (service, _) = service(&dir);
        let digest = || InfoRequest {
            digest: SMALL.to_owned(),
        };
        let missing = service.info(Request::new(digest())).await.unwrap_err();
        assert_eq!(missing.code(), Code::InvalidArgument);
        assert_eq!(
            missing.message(),
            "the request lacks the \"buildkit-attachable-store-id\" metadata"
        );
        let mut other = Request::new(digest());
        other
            .metadata_mut()
            .insert(STORE_HEADER, "cache".parse().unwrap());
        let other = service.info(other).await.unwrap_err();
        assert_eq!(other.code(), Code::InvalidArgument);
        let mut read = read_request(SMALL, 0, 0);
        read.metadata_mut().remove(STORE_HEADER);
        let read = read_error(&service, read).await;
        assert_eq!(read.code(), Code::InvalidArgument);
    }

    #[tokio::test]
    async fn reads_bytes_whole_from_an_offset_and_for_a_size() {
        let dir = tempfile::tempdir().unwrap();
        let (service, log) = service(&dir);
        let whole = read(&service, read_request(SMALL, 0, 0)).await.unwrap();
        assert_eq!(whole, (vec![(0, 12)], b"hello, layer".to_vec()));
        let tail = read(&service, read_request(SMALL, 7, 0)).await.unwrap();
        assert_eq!(tail, (vec![(7, 5)], b"layer".to_vec()));
        let middle = read(&service, read_request(SMALL, 2, 3)).await.unwrap();
        assert_eq!(middle, (vec![(2, 3)], b"llo".to_vec()));
        let past_the_end = read(&service, read_request(SMALL, 7, 100)).await.unwrap();
        assert_eq!(past_the_end, (vec![(7, 5)], b"layer".to_vec()));
        let at_the_end = read(&service, read_request(SMALL, 12, 4)).await.unwrap();
        assert_eq!(at_the_end, (vec![], vec![]));
        assert_eq!(
            log.bytes_sent(),
            0,
            "documents are not counted as files sent"
        );
    }

    #[tokio::test]
    async fn refuses_reads_outside_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let (service, log) = service(&dir);
        let beyond = read_error(&service, read_request(SMALL, 13, 0)).await;
        assert_eq!(beyond.code(), Code::OutOfRange);
        assert_eq!(
            beyond.message(),
            "offset 13 is beyond the end of sha256:small (12 bytes)"
        );
        let negative = read_error(&service, read_request(SMALL, -1, 0)).await;
        assert_eq!(negative.code(), Code::InvalidArgument);
        let unknown = read_error(&service, read_request("sha256:other", 0, 0)).await;
        assert_eq!(unknown.code(), Code::NotFound);
        assert_eq!(log.bytes_sent(), 0);
    }

    #[tokio::test]
    async fn reads_files_in_chunks_at_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let (service, log) = service(&dir);
        let expected = pattern(2 * CHUNK + 10);
        let whole = read(&service, read_request(LARGE, 0, 0)).await.unwrap();
        assert_eq!(
            whole.0,
            [(0, CHUNK), (CHUNK as i64, CHUNK), (2 * CHUNK as i64, 10)]
        );
        assert!(whole.1 == expected, "the file's bytes, in order");
        // A ReadAt of the daemon: one chunk's worth, straddling a chunk boundary of the file.
        let offset = CHUNK as i64 - 5;
        let middle = read(&service, read_request(LARGE, offset, 20))
            .await
            .unwrap();
        assert_eq!(middle.0, [(offset, 20)]);
        assert_eq!(middle.1, expected[CHUNK - 5..CHUNK + 15]);
        let tail = read(&service, read_request(LARGE, offset, 0))
            .await
            .unwrap();
        assert_eq!(tail.0, [(offset, CHUNK), (2 * CHUNK as i64 - 5, 15)]);
        assert_eq!(
            log.bytes_sent(),
            expected.len() as u64 + 20 + CHUNK as u64 + 15
        );
    }

    #[tokio::test]
    async fn a_file_that_changed_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (service, _) = service(&dir);
        std::fs::write(dir.path().join("layer.tar.gz"), b"shorter").unwrap();
        let changed = read_error(&service, read_request(LARGE, 0, 0)).await;
        assert_eq!(changed.code(), Code::FailedPrecondition);
        assert!(changed.message().contains("is 7 bytes, not the 2097162"));
        std::fs::remove_file(dir.path().join("layer.tar.gz")).unwrap();
        let gone = read_error(&service, read_request(LARGE, 0, 0)).await;
        assert_eq!(gone.code(), Code::Internal);
        assert!(gone.message().starts_with("failed to read "));
    }

    #[test]
    fn blobs_debug_as_sizes() {
        let blobs = ContentBlobs::default();
        blobs.insert(SMALL.to_owned(), Blob::Bytes(b"secret-ish".to_vec()));
        let shown = format!("{blobs:?}");
        assert!(
            shown.contains(r#""sha256:small": Bytes(10 bytes)"#),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
        let file = Blob::File {
            path: "/t/layer.tar.gz".into(),
            size: 3,
        };
        assert_eq!(format!("{file:?}"), "File(/t/layer.tar.gz, 3 bytes)");
    }

    /// Over a real connection, as BuildKit's client reads: the messages decode and the header travels.
    #[tokio::test]
    async fn serves_over_grpc() {
        let dir = tempfile::tempdir().unwrap();
        let (service, _) = service(&dir);
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(
            Server::builder()
                .serve_with_incoming(ContentServer::new(service), single_connection(theirs)),
        );
        let mut client = ContentClient::new(channel_over(ours).await);
        let info = client
            .info(with_store(InfoRequest {
                digest: LARGE.to_owned(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.info.unwrap().size, 2 * CHUNK as i64 + 10);
        let mut stream = client
            .read(read_request(LARGE, 0, 0))
            .await
            .unwrap()
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(response) = stream.message().await.unwrap() {
            assert_eq!(response.offset, bytes.len() as i64);
            bytes.extend_from_slice(&response.data);
        }
        assert!(
            bytes == pattern(2 * CHUNK + 10),
            "the file's bytes, in order"
        );
        server.abort();
    }
}
