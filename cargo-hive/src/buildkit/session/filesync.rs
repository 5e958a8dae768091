//! `moby.filesync.v1.FileSync/DiffCopy`: how the daemon reads a local source from us. We list the dir and its staged
//! files (filtered by the patterns the daemon passes as call metadata and by our own allowlist), then send the
//! content of the files the daemon asks for — only those whose stat changed since the snapshot it keeps under the
//! session's shared key.

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hive_proto::fsutil::types::Packet;
use hive_proto::fsutil::types::packet::PacketType;
use hive_proto::session::packet::file_sync_server::FileSync;
use hive_proto::tonic::metadata::MetadataMap;
use hive_proto::tonic::{self, Request, Response, Status, Streaming};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::LocalDir;
use super::patterns::Patterns;
use super::walk::{self, Entry, Filter, StagedTree};

/// Size of the DATA chunks (fsutil's).
const CHUNK: usize = 32 * 1024;
/// Files read at once (fsutil's sender runs four).
const SENDERS: usize = 4;
/// Packets queued towards the daemon.
const QUEUE: usize = 64;

/// What the senders of one session did: bytes sent, and the files that changed while they were being sent.
#[derive(Debug, Default)]
pub(crate) struct SendLog {
    sent: AtomicU64,
    changed: Mutex<Vec<PathBuf>>,
}

impl SendLog {
    /// Bytes of file content sent so far.
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The first file whose content or stat changed while it was being sent, if any.
    pub(crate) fn changed_file(&self) -> Option<PathBuf> {
        self.changed.lock().expect("not poisoned").first().cloned()
    }

    /// Counts `bytes` of content sent (by any of the session's services).
    pub(super) fn add_sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn changed(&self, entry: &Entry) -> Status {
        self.changed
            .lock()
            .expect("not poisoned")
            .push(entry.path.clone());
        Status::failed_precondition(format!(
            "{} changed while it was being sent",
            entry.stat.path
        ))
    }
}

/// The FileSync service of one session.
pub(crate) struct FileSyncService {
    dirs: Arc<BTreeMap<String, LocalDir>>,
    log: Arc<SendLog>,
}

impl FileSyncService {
    /// Serves `dirs` by name, keeping what it sent in `log`.
    pub(crate) fn new(dirs: Arc<BTreeMap<String, LocalDir>>, log: Arc<SendLog>) -> Self {
        FileSyncService { dirs, log }
    }
}

type PacketStream = ReceiverStream<Result<Packet, Status>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let options = CallOptions::from_metadata(request.metadata())?;
        let dir = self.dirs.get(&options.dir_name).ok_or_else(|| {
            Status::not_found(format!("no access allowed to dir {:?}", options.dir_name))
        })?;
        let invalid =
            |err: super::patterns::PatternError| Status::invalid_argument(err.to_string());
        let include = Patterns::new(&options.include).map_err(invalid)?;
        let exclude = Patterns::new(&options.exclude).map_err(invalid)?;
        let allow = dir.allow.as_deref().map(Patterns::literal);
        let staged = StagedTree::new(&dir.staged)
            .map_err(|err| Status::invalid_argument(err.to_string()))?;
        let root = dir.root.clone();
        let follow = options.follow;
        let (tx, rx) = mpsc::channel(QUEUE);
        let log = self.log.clone();
        let inbound = request.into_inner();
        tokio::spawn(async move {
            let listing = tokio::task::spawn_blocking(move || {
                let filter = Filter::new(&root, include, exclude, &follow, allow);
                walk::list_with(&root, &staged, &filter)
            })
            .await;
            let entries = match listing {
                Ok(Ok(entries)) => Arc::new(entries),
                Ok(Err(err)) => {
                    // fsutil's sender reports walk errors in an ERR packet, then fails the call.
                    let message = err.to_string();
                    let _ = tx
                        .send(Ok(packet(
                            PacketType::PacketErr,
                            0,
                            message.clone().into_bytes(),
                        )))
                        .await;
                    let _ = tx.send(Err(Status::internal(message))).await;
                    return;
                }
                Err(join) => {
                    let _ = tx.send(Err(Status::internal(join.to_string()))).await;
                    return;
                }
            };
            if let Err(status) = serve(entries, inbound, tx.clone(), log).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type TarStreamStream = PacketStream;

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented("only diffcopy is served"))
    }
}

/// The listing, then the content of each requested file, until the daemon's FIN.
async fn serve(
    entries: Arc<Vec<Entry>>,
    mut inbound: Streaming<Packet>,
    tx: mpsc::Sender<Result<Packet, Status>>,
    log: Arc<SendLog>,
) -> Result<(), Status> {
    // The listing goes out from a task of its own: the daemon requests files while it is still arriving.
    let mut stats = {
        let entries = entries.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for entry in entries.iter() {
                let mut stat = packet(PacketType::PacketStat, 0, Vec::new());
                stat.stat = Some(entry.stat.clone());
                if tx.send(Ok(stat)).await.is_err() {
                    return;
                }
            }
            // The end of the listing: a STAT without a stat (a default Stat would be an entry with no path).
            let _ = tx
                .send(Ok(packet(PacketType::PacketStat, 0, Vec::new())))
                .await;
        })
    };
    let workers = Arc::new(Semaphore::new(SENDERS));
    let mut requested = vec![false; entries.len()];
    while let Some(received) = inbound.message().await? {
        match PacketType::try_from(received.r#type) {
            Ok(PacketType::PacketReq) => {
                let id = received.id;
                let index = id as usize;
                let valid = entries.get(index).is_some_and(Entry::is_file)
                    && !std::mem::replace(&mut requested[index], true);
                if !valid {
                    return Err(Status::invalid_argument(format!("invalid file id {id}")));
                }
                let permit = workers
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let (entries, tx, log) = (entries.clone(), tx.clone(), log.clone());
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    if let Err(status) = send_file(&entries[index], id, &tx, &log) {
                        let _ = tx.blocking_send(Err(status));
                    }
                });
            }
            Ok(PacketType::PacketFin) => {
                // The daemon says FIN once it has all it asked for; the workers are done by then, but a FIN
                // must never overtake a DATA packet.
                let _all = workers
                    .acquire_many(SENDERS as u32)
                    .await
                    .expect("the semaphore is never closed");
                let _ = (&mut stats).await;
                let _ = tx
                    .send(Ok(packet(PacketType::PacketFin, 0, Vec::new())))
                    .await;
                return Ok(());
            }
            Ok(PacketType::PacketErr) => {
                stats.abort();
                return Err(Status::aborted(format!(
                    "error from receiver: {}",
                    String::from_utf8_lossy(&received.data)
                )));
            }
            _ => {}
        }
    }
    stats.abort();
    Ok(())
}

/// Sends one file as DATA chunks and the empty DATA that ends it (runs on a blocking thread). A file rewritten in
/// place while it is read would reach the image as neither its old nor its new content: its stat must be the
/// listing's before and after, and its content afterwards must hash as the bytes sent, or the call fails and the
/// file is logged as changed.
fn send_file(
    entry: &Entry,
    id: u32,
    tx: &mpsc::Sender<Result<Packet, Status>>,
    log: &SendLog,
) -> Result<(), Status> {
    let failed =
        |err: io::Error| Status::internal(format!("cannot read {}: {err}", entry.stat.path));
    let mut file = File::open(&entry.path).map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    // Another file at the path (a rename over it, a symlink to outside the root) is never read.
    let replaced =
        !metadata.is_file() || metadata.dev() != entry.dev || metadata.ino() != entry.ino;
    if replaced || !same_stat(entry, &metadata) {
        return Err(log.changed(entry));
    }
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(failed(err)),
        };
        hasher.update(&buffer[..read]);
        length += read as u64;
        let chunk = packet(PacketType::PacketData, id, buffer[..read].to_vec());
        if tx.blocking_send(Ok(chunk)).is_err() {
            // The call is gone; its own status says why.
            return Ok(());
        }
        log.add_sent(read);
    }
    let after = file.metadata().map_err(failed)?;
    let unchanged = same_stat(entry, &after)
        && u64::try_from(entry.stat.size) == Ok(length)
        && content_hash(&file).map_err(failed)? == hasher.finalize()[..];
    if !unchanged {
        // No end-of-file DATA: the daemon must not take what it got as the file.
        return Err(log.changed(entry));
    }
    let _ = tx.blocking_send(Ok(packet(PacketType::PacketData, id, Vec::new())));
    Ok(())
}

/// Whether a file's size and modification time are still what the listing said.
fn same_stat(entry: &Entry, metadata: &Metadata) -> bool {
    let mtime = metadata
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(metadata.mtime_nsec());
    u64::try_from(entry.stat.size) == Ok(metadata.len()) && entry.stat.mod_time == mtime
}

/// The SHA-256 of a file's whole content as it is now.
fn content_hash(file: &File) -> io::Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 8 * CHUNK];
    let mut offset = 0;
    loop {
        let read = match file.read_at(&mut buffer, offset) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..read]);
        offset += read as u64;
    }
    Ok(hasher.finalize().to_vec())
}

fn packet(kind: PacketType, id: u32, data: Vec<u8>) -> Packet {
    Packet {
        r#type: kind as i32,
        stat: None,
        id,
        data,
    }
}

/// What the daemon asks for, from the call's metadata (BuildKit's `dir-name`, `include-patterns`,
/// `exclude-patterns`, `followpaths`; the last three repeated, one value per pattern).
#[derive(Debug, Default, PartialEq, Eq)]
struct CallOptions {
    dir_name: String,
    include: Vec<String>,
    exclude: Vec<String>,
    follow: Vec<String>,
}

impl CallOptions {
    fn from_metadata(metadata: &MetadataMap) -> Result<CallOptions, Status> {
        Ok(CallOptions {
            dir_name: values(metadata, "dir-name")?
                .into_iter()
                .next()
                .unwrap_or_default(),
            include: values(metadata, "include-patterns")?,
            exclude: values(metadata, "exclude-patterns")?,
            follow: values(metadata, "followpaths")?,
        })
    }
}

/// All values of `key`. BuildKit query-escapes every value of a key whose values are not all ASCII and says so
/// with `<key>-encoded: 1`.
fn values(metadata: &MetadataMap, key: &str) -> Result<Vec<String>, Status> {
    let encoded = metadata
        .get(format!("{key}-encoded").as_str())
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True"));
    metadata
        .get_all(key)
        .iter()
        .map(|value| {
            let text = value
                .to_str()
                .map_err(|_| Status::invalid_argument(format!("metadata {key} is not ASCII")))?;
            if encoded {
                query_unescape(text).ok_or_else(|| {
                    Status::invalid_argument(format!("metadata {key} is badly escaped"))
                })
            } else {
                Ok(text.to_owned())
            }
        })
        .collect()
}

/// Go's `url.QueryUnescape`.
fn query_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use crate::buildkit::session::connection::{channel_over, single_connection};
    use std::fs;
    use std::os::unix::fs::{FileExt, symlink};

    use hive_proto::session::packet::file_sync_client::FileSyncClient;
    use hive_proto::session::packet::file_sync_server::FileSyncServer;
    use hive_proto::tonic::metadata::MetadataValue;
    use hive_proto::tonic::transport::Server;

    use super::*;

    #[test]
    fn metadata_values_repeat_and_may_be_escaped() {
        let mut metadata = MetadataMap::new();
        metadata.insert("dir-name", MetadataValue::from_static("context"));
        metadata.append("include-patterns", MetadataValue::from_static("bin/app"));
        metadata.append("include-patterns", MetadataValue::from_static("etc"));
        metadata.append(
            "followpaths",
            MetadataValue::from_static("d%C3%A9j%C3%A0+vu"),
        );
        metadata.append("followpaths-encoded", MetadataValue::from_static("1"));
        let options = CallOptions::from_metadata(&metadata).unwrap();
        assert_eq!(
            options,
            CallOptions {
                dir_name: "context".into(),
                include: vec!["bin/app".into(), "etc".into()],
                exclude: vec![],
                follow: vec!["déjà vu".into()],
            }
        );
        assert_eq!(query_unescape("%zz"), None);
        assert_eq!(query_unescape("100%"), None);
    }

    /// Our FileSync service for `root` as dir `context`, over an in-process connection.
    async fn serve_dir(
        root: &std::path::Path,
    ) -> (
        FileSyncClient<hive_proto::tonic::transport::Channel>,
        Arc<SendLog>,
    ) {
        serve_staged(root, BTreeMap::new()).await
    }

    /// [`serve_dir`] with staged files.
    async fn serve_staged(
        root: &std::path::Path,
        staged: BTreeMap<String, PathBuf>,
    ) -> (
        FileSyncClient<hive_proto::tonic::transport::Channel>,
        Arc<SendLog>,
    ) {
        let dirs = BTreeMap::from([(
            "context".to_owned(),
            LocalDir {
                root: root.to_owned(),
                allow: None,
                staged,
            },
        )]);
        let log = Arc::new(SendLog::default());
        let service = FileSyncServer::new(FileSyncService::new(Arc::new(dirs), log.clone()));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(Server::builder().serve_with_incoming(service, single_connection(server_io)));
        (FileSyncClient::new(channel_over(client_io).await), log)
    }

    /// Starts a `DiffCopy` of dir `context` with `metadata` besides its name: the sender of our packets, and the
    /// service's packets.
    async fn start_copy(
        client: &mut FileSyncClient<hive_proto::tonic::transport::Channel>,
        metadata: &[(&'static str, &'static str)],
    ) -> (mpsc::Sender<Packet>, Streaming<Packet>) {
        let (tx, rx) = mpsc::channel(16);
        let mut request = Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("dir-name", MetadataValue::from_static("context"));
        for (key, value) in metadata {
            request
                .metadata_mut()
                .append(*key, MetadataValue::from_static(value));
        }
        (tx, client.diff_copy(request).await.unwrap().into_inner())
    }

    /// A file rewritten in place after its first chunk went out: the sender must not end it as if whole, must
    /// fail the call and must log the file as changed.
    #[tokio::test]
    async fn a_file_rewritten_while_sent_fails_the_transfer() {
        rewritten_while_sent(false).await;
    }

    /// The same check holds for a staged file (a binary the linker rewrites in place).
    #[tokio::test]
    async fn a_staged_file_rewritten_while_sent_fails_the_transfer() {
        rewritten_while_sent(true).await;
    }

    async fn rewritten_while_sent(staged: bool) {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let path = if staged {
            elsewhere.path().join("api")
        } else {
            dir.path().join("app")
        };
        // Far more than the packet queue and the connection's buffers hold: the sender is still reading when the
        // first chunk arrives here.
        fs::write(&path, vec![0u8; 32 * 1024 * 1024]).unwrap();
        let files = if staged {
            BTreeMap::from([("app".to_owned(), path.clone())])
        } else {
            BTreeMap::new()
        };
        let (mut client, log) = serve_staged(dir.path(), files).await;
        let (tx, mut inbound) = start_copy(&mut client, &[]).await;
        while inbound.message().await.unwrap().unwrap().stat.is_some() {}
        tx.send(packet(PacketType::PacketReq, 0, Vec::new()))
            .await
            .unwrap();
        let first = inbound.message().await.unwrap().unwrap();
        assert!(!first.data.is_empty());
        // Same size, new bytes near the end, written through the same inode (as a linker rewriting in place).
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"new", 32 * 1024 * 1024 - 3)
            .unwrap();
        let status = loop {
            match inbound.message().await {
                Ok(Some(packet)) => assert!(!packet.data.is_empty(), "the file was ended as whole"),
                Ok(None) => panic!("the call ended without an error"),
                Err(status) => break status,
            }
        };
        assert!(
            status
                .message()
                .contains("app changed while it was being sent"),
            "{status:?}"
        );
        assert_eq!(log.changed_file(), Some(path));
    }

    /// A staged file is listed with its parents and its content comes from the file on disk.
    #[tokio::test]
    async fn serves_staged_files_from_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Dockerfile"), b"FROM scratch").unwrap();
        let bins = tempfile::tempdir().unwrap();
        fs::write(bins.path().join("api"), b"the binary").unwrap();
        let staged = BTreeMap::from([(
            ".hive/bin/linux/amd64/api".to_owned(),
            bins.path().join("api"),
        )]);
        let (mut client, log) = serve_staged(dir.path(), staged).await;
        let (tx, mut inbound) = start_copy(&mut client, &[]).await;
        let mut listing = Vec::new();
        while let Some(stat) = inbound.message().await.unwrap().unwrap().stat {
            listing.push(stat.path);
        }
        assert_eq!(
            listing,
            [
                ".hive",
                ".hive/bin",
                ".hive/bin/linux",
                ".hive/bin/linux/amd64",
                ".hive/bin/linux/amd64/api",
                "Dockerfile"
            ]
        );
        tx.send(packet(PacketType::PacketReq, 4, Vec::new()))
            .await
            .unwrap();
        let data = inbound.message().await.unwrap().unwrap();
        assert_eq!(
            (data.id, data.data.as_slice()),
            (4, b"the binary".as_slice())
        );
        let end = inbound.message().await.unwrap().unwrap();
        assert!(end.data.is_empty());
        assert_eq!(log.bytes_sent(), 10);
        // The made-up dirs have no content to ask for.
        tx.send(packet(PacketType::PacketReq, 0, Vec::new()))
            .await
            .unwrap();
        let status = inbound.message().await.unwrap_err();
        assert!(status.message().contains("invalid file id 0"), "{status:?}");
    }

    /// Plays the daemon's part in-process: list, request every file, check the content arrives, FIN.
    #[tokio::test]
    async fn serves_a_listing_and_requested_files() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        fs::create_dir(dir.path().join("bin")).unwrap();
        fs::write(dir.path().join("bin/app"), &big).unwrap();
        fs::write(dir.path().join("secret"), b"no").unwrap();
        symlink("bin/app", dir.path().join("link")).unwrap();
        let (mut client, log) = serve_dir(dir.path()).await;
        let (tx, mut inbound) = start_copy(&mut client, &[("exclude-patterns", "secret")]).await;
        let mut listing = Vec::new();
        loop {
            let packet = inbound.message().await.unwrap().unwrap();
            assert_eq!(packet.r#type, PacketType::PacketStat as i32);
            match packet.stat {
                Some(stat) => listing.push(stat),
                None => break,
            }
        }
        let paths: Vec<&str> = listing.iter().map(|stat| stat.path.as_str()).collect();
        assert_eq!(paths, ["bin", "bin/app", "link"]);
        tx.send(packet(PacketType::PacketReq, 1, Vec::new()))
            .await
            .unwrap();
        let mut received = Vec::new();
        loop {
            let packet = inbound.message().await.unwrap().unwrap();
            assert_eq!(packet.r#type, PacketType::PacketData as i32);
            assert_eq!(packet.id, 1);
            if packet.data.is_empty() {
                break;
            }
            assert!(packet.data.len() <= CHUNK);
            received.extend(packet.data);
        }
        assert_eq!(received, big);
        assert_eq!(log.bytes_sent(), big.len() as u64);
        assert_eq!(log.changed_file(), None);
        tx.send(packet(PacketType::PacketFin, 0, Vec::new()))
            .await
            .unwrap();
        let fin = inbound.message().await.unwrap().unwrap();
        assert_eq!(fin.r#type, PacketType::PacketFin as i32);
        drop(tx);
        assert!(inbound.message().await.unwrap().is_none());
    }
}
