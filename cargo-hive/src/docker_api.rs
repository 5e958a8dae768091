//! The Docker Engine API client, used by `buildkit` to classify Docker's daemon and by `output` for load and push
//! (and by the freshness check to inspect an image), over Docker's unix socket.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

use crate::plan::ImageReference;

/// Why a Docker Engine API call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerApiError {
    /// The socket could not be reached, written or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No full answer in time.
    #[error("the Docker API did not answer {method} {path} within {} s", after.as_secs())]
    Timeout {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// How long we waited.
        after: Duration,
    },
    /// The answer has no HTTP head.
    #[error("the Docker API's answer to {method} {path} is not HTTP")]
    NotHttp {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The request could not be written as HTTP.
    #[error("cannot ask the Docker API for {method} {path}: {source}")]
    Request {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// Why.
        source: http::Error,
    },
    /// The exchange broke off (the connection closed, the body could not be read or sent).
    #[error("the Docker API call {method} {path} failed: {source}")]
    Exchange {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// hyper's error, with its cause.
        source: hyper::Error,
    },
    /// An answer too large to hold.
    #[error("the Docker API's answer to {method} {path} is larger than {limit} bytes")]
    TooLarge {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// The most we read.
        limit: usize,
    },
    /// A GET answered with another status than 200.
    #[error("the Docker API answered GET {path} with {status}")]
    Status {
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// A GET answered with a body that is not JSON.
    #[error("the Docker API's {path} is not JSON: {source}")]
    NotJson {
        /// The request path.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A reference Docker could not be asked to push.
    #[error("cannot push `{reference}`: {detail}")]
    BadReference {
        /// The reference.
        reference: String,
        /// Why it does not parse.
        detail: String,
    },
    /// `POST /images/load` refused.
    #[error("Docker refused the image ({status}): {body}")]
    LoadRefused {
        /// The HTTP status.
        status: u16,
        /// Docker's answer.
        body: String,
    },
    /// The load stream reported an error.
    #[error("Docker could not load the image: {0}")]
    LoadFailed(String),
    /// `POST /images/…/push` refused.
    #[error("Docker refused to push {reference} ({status}): {body}")]
    PushRefused {
        /// The reference pushed.
        reference: String,
        /// The HTTP status.
        status: u16,
        /// Docker's answer.
        body: String,
    },
    /// The push stream reported an error.
    #[error("failed to push {reference}: {error}")]
    PushFailed {
        /// The reference pushed.
        reference: String,
        /// Docker's words.
        error: String,
    },
}

/// How long `/info` and an image inspect may take: they answer at once.
const QUICK: Duration = Duration::from_secs(5);
/// How long a load or a push may take: they move whole images.
const TRANSFER: Duration = Duration::from_secs(600);
/// The most of an answer held in memory: a JSON document, a refusal, one line of a progress stream.
const MAX_BUFFERED: usize = 4 << 20;
/// How much of an archive one read sends.
const CHUNK: usize = 256 << 10;

/// `GET path` on the Docker API socket, decoded as JSON.
pub(crate) async fn get_json(
    socket: &Path,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, DockerApiError> {
    let call = Call::new(Method::GET, path, timeout);
    let body = call
        .run(async {
            let answer = call.send(socket, &[], RequestBody::Empty).await?;
            if answer.status != StatusCode::OK {
                return Err(DockerApiError::Status {
                    path: path.to_owned(),
                    status: answer.status.as_u16(),
                });
            }
            answer.read_capped(&call).await
        })
        .await?;
    serde_json::from_slice(&body).map_err(|source| DockerApiError::NotJson {
        path: path.to_owned(),
        source,
    })
}

/// What doctor needs to know about a Docker daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerInfo {
    /// `ServerVersion`.
    pub(crate) version: String,
    /// Whether images live in containerd's store (then BuildKit can export OCI, docker, image with push).
    pub(crate) containerd_store: bool,
    /// The storage driver (overlay2, overlayfs, ...).
    pub(crate) driver: String,
}

impl DockerInfo {
    /// Reads `/info` from the daemon.
    pub(crate) async fn fetch(socket: &Path) -> Result<DockerInfo, DockerApiError> {
        let info = get_json(socket, "/info", QUICK).await?;
        Ok(DockerInfo::from_json(&info))
    }

    fn from_json(info: &serde_json::Value) -> DockerInfo {
        // With the containerd image store, DriverStatus has ["driver-type", "io.containerd.snapshotter.v1"].
        let containerd_store = info["DriverStatus"].as_array().is_some_and(|pairs| {
            pairs.iter().any(|pair| {
                pair[1]
                    .as_str()
                    .is_some_and(|value| value.starts_with("io.containerd.snapshotter"))
            })
        });
        DockerInfo {
            version: info["ServerVersion"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            containerd_store,
            driver: info["Driver"].as_str().unwrap_or("unknown").to_owned(),
        }
    }
}

/// Loads an image archive (`docker save` format) into Docker: `POST /images/load`.
pub(crate) async fn load(socket: &Path, archive: &Path) -> Result<(), DockerApiError> {
    load_within(socket, archive, TRANSFER).await
}

async fn load_within(
    socket: &Path,
    archive: &Path,
    timeout: Duration,
) -> Result<(), DockerApiError> {
    let call = Call::new(Method::POST, "/images/load?quiet=1", timeout);
    call.run(async {
        let body = RequestBody::file(archive).await?;
        let headers = [(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"))];
        let answer = call.send(socket, &headers, body).await?;
        if answer.status != StatusCode::OK {
            return Err(DockerApiError::LoadRefused {
                status: answer.status.as_u16(),
                body: answer.read_text(&call).await?,
            });
        }
        match answer.stream_error(&call).await? {
            Some(error) => Err(DockerApiError::LoadFailed(error)),
            None => Ok(()),
        }
    })
    .await
}

/// Pushes an image of Docker's store: `POST /images/{name}/push?tag=…`, with the registry credentials in
/// `X-Registry-Auth` (base64 JSON; `{}` for anonymous).
pub(crate) async fn push(
    socket: &Path,
    reference: &str,
    username: &str,
    secret: &str,
) -> Result<(), DockerApiError> {
    push_within(
        socket,
        reference,
        &registry_auth(username, secret),
        TRANSFER,
    )
    .await
}

async fn push_within(
    socket: &Path,
    reference: &str,
    auth: &str,
    timeout: Duration,
) -> Result<(), DockerApiError> {
    let parsed = ImageReference::parse(reference).map_err(|err| DockerApiError::BadReference {
        reference: reference.to_owned(),
        detail: err.to_string(),
    })?;
    let name = format!("{}/{}", parsed.registry(), parsed.repository());
    let tag = parsed.tag().unwrap_or("latest");
    let path = format!("/images/{name}/push?tag={tag}");
    let call = Call::new(Method::POST, &path, timeout);
    // base64url is always a valid header value; the error never shows the credentials.
    let mut auth = HeaderValue::from_str(auth).map_err(|_| DockerApiError::BadReference {
        reference: reference.to_owned(),
        detail: "the registry credentials do not fit in a header".to_owned(),
    })?;
    auth.set_sensitive(true);
    call.run(async {
        let headers = [(HeaderName::from_static("x-registry-auth"), auth)];
        let answer = call.send(socket, &headers, RequestBody::Empty).await?;
        if answer.status != StatusCode::OK {
            return Err(DockerApiError::PushRefused {
                reference: reference.to_owned(),
                status: answer.status.as_u16(),
                body: answer.read_text(&call).await?,
            });
        }
        match answer.stream_error(&call).await? {
            Some(error) => Err(DockerApiError::PushFailed {
                reference: reference.to_owned(),
                error,
            }),
            None => Ok(()),
        }
    })
    .await
}

/// One HTTP/1.1 exchange with the Docker API: what it asks, for the errors, and how long it may take in all.
struct Call<'a> {
    method: Method,
    path: &'a str,
    timeout: Duration,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str, timeout: Duration) -> Call<'a> {
        Call {
            method,
            path,
            timeout,
        }
    }

    /// Runs the whole exchange (connect, send, read) within the call's timeout.
    async fn run<T>(
        &self,
        exchange: impl Future<Output = Result<T, DockerApiError>>,
    ) -> Result<T, DockerApiError> {
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DockerApiError::Timeout {
                method: self.method.to_string(),
                path: self.path.to_owned(),
                after: self.timeout,
            })?
    }

    /// Connects to the socket, sends the request and waits for the answer's head.
    async fn send(
        &self,
        socket: &Path,
        headers: &[(HeaderName, HeaderValue)],
        body: RequestBody,
    ) -> Result<Answer, DockerApiError> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header(HOST, "docker");
        // As Docker's own client: a POST says how long its body is, even when empty; a GET has none.
        if self.method != Method::GET {
            request = request.header(CONTENT_LENGTH, body.len());
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(body)
            .map_err(|source| DockerApiError::Request {
                method: self.method.to_string(),
                path: self.path.to_owned(),
                source,
            })?;
        let stream = UnixStream::connect(socket).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| self.failed(err))?;
        // The connection does the I/O while this task waits on the answer; dropping the call ends it.
        let connection = Connection(tokio::spawn(connection));
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| self.failed(err))?;
        Ok(Answer {
            status: response.status(),
            body: response.into_body(),
            _connection: connection,
        })
    }

    /// A hyper error as ours: an answer that does not parse is not HTTP; anything else broke the exchange.
    fn failed(&self, err: hyper::Error) -> DockerApiError {
        if err.is_parse() {
            DockerApiError::NotHttp {
                method: self.method.to_string(),
                path: self.path.to_owned(),
            }
        } else {
            DockerApiError::Exchange {
                method: self.method.to_string(),
                path: self.path.to_owned(),
                source: err,
            }
        }
    }

    fn too_large(&self) -> DockerApiError {
        DockerApiError::TooLarge {
            method: self.method.to_string(),
            path: self.path.to_owned(),
            limit: MAX_BUFFERED,
        }
    }
}

/// The task driving one connection, aborted with the answer it serves (on a timeout too).
struct Connection(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An answer whose head has arrived and whose body is still on the wire.
struct Answer {
    status: StatusCode,
    body: Incoming,
    _connection: Connection,
}

impl Answer {
    /// The next piece of the body; `None` at its end.
    async fn chunk(&mut self, call: &Call<'_>) -> Result<Option<Bytes>, DockerApiError> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => return Ok(None),
                Some(Err(err)) => return Err(call.failed(err)),
                // Trailers carry nothing Docker's answers need.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body, refused past [`MAX_BUFFERED`].
    async fn read_capped(mut self, call: &Call<'_>) -> Result<Vec<u8>, DockerApiError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk(call).await? {
            if body.len() + chunk.len() > MAX_BUFFERED {
                return Err(call.too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The whole body as text, for a refusal's message.
    async fn read_text(self, call: &Call<'_>) -> Result<String, DockerApiError> {
        let body = self.read_capped(call).await?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }

    /// Reads a JSON message stream to its end (the load or push is done only then), line by line so a long push's
    /// progress is never held whole, and returns its first `error`.
    async fn stream_error(mut self, call: &Call<'_>) -> Result<Option<String>, DockerApiError> {
        let mut lines = StreamLines::default();
        while let Some(chunk) = self.chunk(call).await? {
            if !lines.feed(&chunk) {
                return Err(call.too_large());
            }
        }
        Ok(lines.finish())
    }
}

/// A Docker JSON message stream, split into lines as it arrives; keeps the first `error` it reports (load and
/// push report failures in the stream, after a 200).
#[derive(Default)]
struct StreamLines {
    partial: Vec<u8>,
    error: Option<String>,
}

impl StreamLines {
    /// Takes the next bytes of the stream; false when one line is longer than [`MAX_BUFFERED`].
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while let Some(end) = bytes.iter().position(|&byte| byte == b'\n') {
            self.partial.extend_from_slice(&bytes[..end]);
            self.end_line();
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        self.partial.len() <= MAX_BUFFERED
    }

    /// The stream's first error, once it has ended.
    fn finish(mut self) -> Option<String> {
        self.end_line();
        self.error
    }

    fn end_line(&mut self) {
        if self.error.is_none() {
            self.error = stream_error(&self.partial);
        }
        self.partial.clear();
    }
}

/// The first `error` of a Docker JSON message stream.
fn stream_error(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|message| message["error"].as_str().map(str::to_owned))
}

/// A request's body: nothing, or a file sent in chunks as the connection takes them (an archive can be hundreds of
/// MB, so it is never read whole).
enum RequestBody {
    Empty,
    File {
        file: tokio::fs::File,
        left: u64,
        buffer: Vec<u8>,
    },
}

impl RequestBody {
    async fn file(path: &Path) -> Result<RequestBody, DockerApiError> {
        let file = tokio::fs::File::open(path).await?;
        let left = file.metadata().await?.len();
        Ok(RequestBody::File {
            file,
            left,
            buffer: vec![0; CHUNK],
        })
    }

    fn len(&self) -> u64 {
        match self {
            RequestBody::Empty => 0,
            RequestBody::File { left, .. } => *left,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let RequestBody::File { file, left, buffer } = self.get_mut() else {
            return Poll::Ready(None);
        };
        if *left == 0 {
            return Poll::Ready(None);
        }
        let want = buffer
            .len()
            .min(usize::try_from(*left).unwrap_or(usize::MAX));
        let mut read = ReadBuf::new(&mut buffer[..want]);
        if let Err(err) = ready!(Pin::new(file).poll_read(cx, &mut read)) {
            return Poll::Ready(Some(Err(err)));
        }
        let filled = read.filled();
        if filled.is_empty() {
            // Content-Length promised more: ending early would leave Docker waiting for the rest.
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive shrank while it was sent",
            ))));
        }
        *left -= filled.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(filled)))))
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

/// The `X-Registry-Auth` header: base64url of Docker's `AuthConfig` JSON; `{}` for anonymous access, and a
/// secret without a user name is an identity token (what a credential helper's `<token>` user means).
fn registry_auth(username: &str, secret: &str) -> String {
    use base64::Engine;
    let auth = match (username.is_empty(), secret.is_empty()) {
        (true, true) => serde_json::json!({}),
        (true, false) => serde_json::json!({"identitytoken": secret}),
        (false, _) => serde_json::json!({"username": username, "password": secret}),
    };
    base64::engine::general_purpose::URL_SAFE.encode(auth.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    /// What the fake daemon read: the request's head (lowercased) and its body.
    struct Received {
        head: String,
        body: Vec<u8>,
    }

    /// A fake Docker API on a unix socket in a temp dir: reads one request (head, then `content-length` bytes of
    /// body) and writes `answer`, or nothing at all when it is `None`.
    fn fake_daemon(
        answer: Option<Vec<u8>>,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        tokio::task::JoinHandle<Received>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let served = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut read = Vec::new();
            let split = loop {
                if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                let mut buf = [0; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before the end of the head");
                read.extend_from_slice(&buf[..n]);
            };
            let head = String::from_utf8(read[..split].to_vec())
                .unwrap()
                .to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            let mut body = read[split..].to_vec();
            body.resize(length, 0);
            stream
                .read_exact(&mut body[read.len() - split..])
                .await
                .unwrap();
            match answer {
                // The client may hang up first (the cap test does).
                Some(answer) => drop(stream.write_all(&answer).await),
                None => std::future::pending().await,
            }
            Received { head, body }
        });
        (dir, socket, served)
    }

    fn answer(status: &str, body: &str) -> Option<Vec<u8>> {
        Some(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    /// A chunked answer, as Docker streams its progress: one chunk per piece.
    fn chunked(pieces: &[&str]) -> Option<Vec<u8>> {
        let mut answer = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in pieces {
            answer.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
        }
        answer.push_str("0\r\n\r\n");
        Some(answer.into_bytes())
    }

    #[tokio::test]
    async fn load_streams_the_whole_archive() {
        let (dir, socket, served) =
            fake_daemon(answer("200 OK", "{\"stream\":\"Loaded image\"}\n"));
        // Larger than one chunk and not a multiple of it, so the body takes several reads and a short last one.
        let archive: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("image.tar");
        std::fs::write(&path, &archive).unwrap();
        load(&socket, &path).await.unwrap();
        let received = served.await.unwrap();
        assert!(
            received
                .head
                .starts_with("post /images/load?quiet=1 http/1.1\r\n"),
            "{}",
            received.head
        );
        assert!(received.head.contains("\r\nhost: docker\r\n"));
        assert!(
            received
                .head
                .contains("\r\ncontent-type: application/x-tar\r\n")
        );
        let length = format!("\r\ncontent-length: {}\r\n", archive.len());
        assert!(received.head.contains(&length), "{}", received.head);
        assert!(received.body == archive, "the archive arrived altered");
    }

    #[tokio::test]
    async fn load_reports_a_refusal_and_an_error_in_the_stream() {
        let (dir, socket, _served) = fake_daemon(answer("500 Internal Server Error", "no space\n"));
        let path = dir.path().join("image.tar");
        std::fs::write(&path, b"tar").unwrap();
        let err = load(&socket, &path).await.unwrap_err();
        assert!(
            matches!(&err, DockerApiError::LoadRefused { status: 500, body } if body == "no space"),
            "{err:?}"
        );
        // The error line arrives split over two chunks, after a progress line.
        let (_dir, socket, _served) = fake_daemon(chunked(&[
            "{\"stream\":\"Loading\"}\n{\"errorDetail\":{},\"err",
            "or\":\"invalid tar header\"}\n",
        ]));
        let err = load(&socket, &path).await.unwrap_err();
        assert!(
            matches!(&err, DockerApiError::LoadFailed(error) if error == "invalid tar header"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn push_sends_the_name_tag_and_credentials() {
        let (_dir, socket, served) = fake_daemon(chunked(&[
            "{\"status\":\"Pushing\"}\n",
            "{\"error\":\"denied\"}\n",
        ]));
        let err = push(&socket, "localhost:5000/hive/app:v1", "me", "pw")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DockerApiError::PushFailed { reference, error }
                if reference == "localhost:5000/hive/app:v1" && error == "denied"),
            "{err:?}"
        );
        let received = served.await.unwrap();
        assert!(
            received
                .head
                .starts_with("post /images/localhost:5000/hive/app/push?tag=v1 http/1.1\r\n"),
            "{}",
            received.head
        );
        let auth = format!(
            "\r\nx-registry-auth: {}\r\n",
            registry_auth("me", "pw").to_lowercase()
        );
        assert!(received.head.contains(&auth), "{}", received.head);
        assert!(received.body.is_empty());
    }

    #[tokio::test]
    async fn get_json_maps_status_and_garbage() {
        let (_dir, socket, served) = fake_daemon(answer("404 Not Found", "{}"));
        let err = get_json(&socket, "/images/a:1/json", QUICK)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DockerApiError::Status { path, status: 404 } if path == "/images/a:1/json"),
            "{err:?}"
        );
        let head = served.await.unwrap().head;
        assert!(
            head.starts_with("get /images/a:1/json http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nhost: docker\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        let (_dir, socket, _served) = fake_daemon(Some(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()));
        let err = get_json(&socket, "/info", QUICK).await.unwrap_err();
        assert!(matches!(err, DockerApiError::NotHttp { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_buffered_answer_is_capped() {
        let huge = format!("\"{}\"", "x".repeat(MAX_BUFFERED));
        let (_dir, socket, _served) = fake_daemon(answer("200 OK", &huge));
        let err = get_json(&socket, "/info", QUICK).await.unwrap_err();
        assert!(matches!(err, DockerApiError::TooLarge { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_stalled_daemon_times_out() {
        let (dir, socket, _served) = fake_daemon(None);
        let after = Duration::from_millis(200);
        let err = get_json(&socket, "/info", after).await.unwrap_err();
        assert!(
            matches!(&err, DockerApiError::Timeout { method, path, after: waited }
                if method == "GET" && path == "/info" && *waited == after),
            "{err:?}"
        );
        let (_dir2, socket, _served) = fake_daemon(None);
        let path = dir.path().join("image.tar");
        std::fs::write(&path, b"tar").unwrap();
        let err = load_within(&socket, &path, after).await.unwrap_err();
        assert!(matches!(err, DockerApiError::Timeout { .. }), "{err:?}");
    }

    #[test]
    fn stream_lines_keep_the_first_error_across_pieces() {
        let mut lines = StreamLines::default();
        assert!(lines.feed(b"{\"status\":\"a\"}\n{\"err"));
        assert!(lines.feed(b"or\":\"first\"}\n{\"error\":\"second\"}"));
        assert_eq!(lines.finish().as_deref(), Some("first"));
        let mut lines = StreamLines::default();
        assert!(lines.feed(b"{\"status\":\"ok\"}"));
        assert_eq!(lines.finish(), None);
        // The last line need not end with a newline.
        let mut lines = StreamLines::default();
        assert!(lines.feed(b"{\"error\":\"last\"}"));
        assert_eq!(lines.finish().as_deref(), Some("last"));
        assert!(!StreamLines::default().feed(&vec![b'x'; MAX_BUFFERED + 1]));
    }

    #[test]
    fn detects_the_containerd_image_store() {
        let with = serde_json::json!({"ServerVersion": "26.1.5", "Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]});
        let without = serde_json::json!({"ServerVersion": "20.10.24", "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]});
        assert!(DockerInfo::from_json(&with).containerd_store);
        assert!(!DockerInfo::from_json(&without).containerd_store);
        assert_eq!(DockerInfo::from_json(&without).version, "20.10.24");
    }

    #[test]
    fn registry_auth_header() {
        use base64::Engine;
        let decode = |header: String| -> serde_json::Value {
            let json = base64::engine::general_purpose::URL_SAFE
                .decode(header)
                .unwrap();
            serde_json::from_slice(&json).unwrap()
        };
        assert_eq!(decode(registry_auth("", "")), serde_json::json!({}));
        assert_eq!(
            decode(registry_auth("me", "pw")),
            serde_json::json!({"username": "me", "password": "pw"})
        );
        // Docker uses an identity token as an OAuth refresh token, never as a password.
        assert_eq!(
            decode(registry_auth("", "tok")),
            serde_json::json!({"identitytoken": "tok"})
        );
    }
}
