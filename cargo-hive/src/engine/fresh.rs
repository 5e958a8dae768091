//! Up-to-date checks, as cargo's fingerprints: an image whose LLB, config, exporters and input files (by stat, as
//! BuildKit's own file sync decides) are what they were at its last successful build, and whose outputs are still
//! there unchanged, is not sent to BuildKit again. `--no-cache` turns this off; a pushed image is checked against
//! what the registry holds under each of its tags now. Without a record (a fresh CI checkout), an image is still
//! found up to date by its content fingerprint ([`FileView::Content`]), which it carries itself: in its newest
//! history entry's comment (what Docker's history of it shows, [`DockerImage`]) and, pushed, as the
//! `dev.cargo-hive.fingerprint` annotation (see `output::annotate_fingerprint`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::errors::JobError;
use crate::buildkit::ExporterSpec;
use crate::buildkit::layout::{Llb, LocalInput};
use crate::docker_api;

/// What a successful build left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    /// The inputs' fingerprint.
    pub(crate) fingerprint: String,
    /// The manifest digest.
    pub(crate) digest: String,
    /// The config digest.
    pub(crate) config_digest: Option<String>,
    /// Each platform's manifest digest, as `--metadata-file` reports them.
    #[serde(default)]
    pub(crate) platforms: BTreeMap<String, String>,
    /// Every output, as it was right after the build.
    pub(crate) outputs: Vec<StampedOutput>,
}

/// One output that can be checked without BuildKit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum StampedOutput {
    /// An archive file.
    Archive {
        /// Its path.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// Its modification time, nanoseconds.
        mtime_ns: i64,
    },
    /// An image in Docker's store.
    Docker {
        /// The name it was loaded as.
        reference: String,
        /// Docker's image id for it.
        id: String,
    },
    /// An image pushed to a registry under every one of its references.
    Registry {
        /// The references pushed.
        references: Vec<String>,
        /// The manifest (or index) digest pushed.
        digest: String,
    },
}

/// An output this build will write, which a record must name to stand for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// An archive at this path.
    Archive(PathBuf),
    /// An image in Docker's store under this name.
    Docker(String),
    /// An image in a registry under these references.
    Registry(Vec<String>),
}

impl StampedOutput {
    /// The output this record is about.
    fn expected(&self) -> Expected {
        match self {
            StampedOutput::Archive { path, .. } => Expected::Archive(path.clone()),
            StampedOutput::Docker { reference, .. } => Expected::Docker(reference.clone()),
            StampedOutput::Registry { references, .. } => Expected::Registry(references.clone()),
        }
    }
}

/// Where an image's record lives.
pub(crate) fn record_path(target_dir: &Path, image: &str) -> PathBuf {
    target_dir
        .join("hive")
        .join(".fresh")
        .join(format!("{image}.json"))
}

/// How a fingerprint sees the input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileView {
    /// By stat data and absolute path, as BuildKit's file sync decides what to send again: cheap, but only
    /// meaningful on the machine (and checkout) that recorded it.
    Stat,
    /// By content, mode and path relative to each input's root: the same on every checkout of the same sources, so
    /// it can be recorded with the pushed image itself and checked from a fresh CI checkout.
    Content,
}

/// The fingerprint of everything that decides an image's content and where it goes.
pub(crate) fn fingerprint(
    definition: &Llb,
    config: &[u8],
    exporters: &[ExporterSpec],
    inputs: &[&LocalInput],
    view: FileView,
) -> Result<String, JobError> {
    let mut hasher = Sha256::new();
    hasher.update(match view {
        FileView::Stat => concat!("cargo-hive ", env!("CARGO_PKG_VERSION"), "\n"),
        FileView::Content => concat!("cargo-hive content ", env!("CARGO_PKG_VERSION"), "\n"),
    });
    for op in definition.ops() {
        hasher.update((op.len() as u64).to_le_bytes());
        hasher.update(op);
    }
    hasher.update((config.len() as u64).to_le_bytes());
    hasher.update(config);
    for exporter in exporters {
        hasher.update(exporter_line(exporter) + "\n");
    }
    for input in inputs {
        for entry in &input.entries {
            match view {
                FileView::Stat => stat_tree(&input.root.join(&entry.source), &mut hasher)?,
                FileView::Content => {
                    content_tree(&input.root, Path::new(&entry.source), &mut hasher)?
                }
            }
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// An exporter as a fingerprint sees it: its kind and its attributes in order.
pub(crate) fn exporter_line(exporter: &ExporterSpec) -> String {
    let mut attrs: Vec<_> = exporter.attrs.iter().collect();
    attrs.sort();
    format!("exporter {} {attrs:?}", exporter.kind)
}

/// Hashes the stat data of a file or of a directory's whole tree, in a stable order.
fn stat_tree(path: &Path, hasher: &mut Sha256) -> Result<(), JobError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|detail| JobError::Unreadable {
        path: path.to_path_buf(),
        detail,
    })?;
    hasher.update(format!(
        "{}\0{}\0{}\0{}\0{}\0{}\n",
        path.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.mode(),
        meta.ino()
    ));
    if meta.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|detail| JobError::Unreadable {
                path: path.to_path_buf(),
                detail,
            })?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        children.sort();
        for child in children {
            stat_tree(&child, hasher)?;
        }
    }
    Ok(())
}

/// Hashes what a copy of `relative` (below `root`) puts in an image: each entry's path relative to `root`, its
/// type and permission bits, and a file's bytes or a symlink's target; a directory's entries in name order. Times
/// and owners are left out: our layers set both (SOURCE_DATE_EPOCH, the layout's uid and gid).
fn content_tree(root: &Path, relative: &Path, hasher: &mut Sha256) -> Result<(), JobError> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(relative);
    let unreadable = |detail| JobError::Unreadable {
        path: path.clone(),
        detail,
    };
    let meta = std::fs::symlink_metadata(&path).map_err(unreadable)?;
    let kind = if meta.is_dir() {
        "dir"
    } else if meta.is_symlink() {
        "link"
    } else if meta.is_file() {
        "file"
    } else {
        "other"
    };
    let name = relative.as_os_str().as_encoded_bytes();
    hasher.update((name.len() as u64).to_le_bytes());
    hasher.update(name);
    hasher.update(format!(
        "\0{kind}\0{:o}\0",
        meta.permissions().mode() & 0o7777
    ));
    if meta.is_symlink() {
        let target = std::fs::read_link(&path).map_err(unreadable)?;
        let target = target.as_os_str().as_encoded_bytes();
        hasher.update((target.len() as u64).to_le_bytes());
        hasher.update(target);
    } else if meta.is_file() {
        let mut file = std::fs::File::open(&path).map_err(unreadable)?;
        let mut content = Sha256::new();
        let copied = std::io::copy(&mut file, &mut content).map_err(unreadable)?;
        hasher.update(copied.to_le_bytes());
        hasher.update(content.finalize());
    } else if meta.is_dir() {
        let mut children: Vec<std::ffi::OsString> = std::fs::read_dir(&path)
            .map_err(unreadable)?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        children.sort();
        for child in children {
            content_tree(root, &relative.join(child), hasher)?;
        }
    }
    Ok(())
}

/// The record of the last build, if its fingerprint matches, it names exactly the outputs this build expects (a
/// record of an archive elsewhere says nothing about the one expected here), and each is still as it left it.
pub(crate) async fn up_to_date(
    path: &Path,
    fingerprint: &str,
    expected: &[Expected],
    docker: Option<&Path>,
    prefetched: Option<&DockerImages>,
) -> Option<Stamp> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    let record: Stamp = serde_json::from_str(&text).ok()?;
    let recorded: Vec<Expected> = record.outputs.iter().map(StampedOutput::expected).collect();
    if record.fingerprint != fingerprint || recorded.is_empty() || recorded != expected {
        return None;
    }
    for output in &record.outputs {
        let intact = match output {
            StampedOutput::Archive {
                path,
                len,
                mtime_ns,
            } => std::fs::metadata(path)
                .is_ok_and(|meta| meta.len() == *len && mtime(&meta) == *mtime_ns),
            StampedOutput::Docker { reference, id } => match docker {
                Some(socket) => DockerImages::get(prefetched, socket, reference)
                    .await
                    .is_some_and(|image| image.id == *id),
                None => false,
            },
            StampedOutput::Registry { references, digest } => pushed(references, digest).await,
        };
        if !intact {
            return None;
        }
    }
    Some(record)
}

/// An image in Docker's store, as the newest entry of its history tells: enough for both `--load` checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerImage {
    /// Docker's id of the image (what a record of it keeps).
    pub(crate) id: String,
    /// The comment of its newest history entry: our content fingerprint, when cargo hive built it.
    pub(crate) comment: String,
}

/// Docker's images under the `--load` references, asked while cargo builds and BuildKit connects, so the
/// up-to-date checks need no round trip of their own. Asked of the socket Docker is expected at; a check against
/// another socket asks again.
#[derive(Clone)]
pub(crate) struct DockerImages {
    socket: PathBuf,
    images: Shared<BoxFuture<'static, ImagesByReference>>,
}

/// Docker's images by reference (`None`: Docker has no such image).
type ImagesByReference = Arc<BTreeMap<String, Option<DockerImage>>>;

impl DockerImages {
    /// Starts asking the Docker at `socket` about `references` (on the runtime, at once).
    pub(crate) fn prefetch(socket: PathBuf, references: Vec<String>) -> DockerImages {
        let of = socket.clone();
        let task = tokio::spawn(async move {
            let images = references
                .iter()
                .map(|reference| docker_image(&of, reference));
            let images = futures::future::join_all(images).await;
            references
                .into_iter()
                .zip(images)
                .collect::<BTreeMap<_, _>>()
        });
        let images = async move { Arc::new(task.await.unwrap_or_default()) }
            .boxed()
            .shared();
        DockerImages { socket, images }
    }

    /// The image under `reference` in the Docker at `socket`: as prefetched when it was asked of that socket,
    /// else asked now.
    pub(crate) async fn get(
        prefetched: Option<&DockerImages>,
        socket: &Path,
        reference: &str,
    ) -> Option<DockerImage> {
        if let Some(images) = prefetched.filter(|images| images.socket == socket)
            && let Some(image) = images.images.clone().await.get(reference)
        {
            return image.clone();
        }
        docker_image(socket, reference).await
    }
}

/// Whether the registry holds `digest` under every reference now (one HEAD each, at once): someone else's push,
/// a deleted tag or an unreachable registry all mean "build again".
async fn pushed(references: &[String], digest: &str) -> bool {
    let heads = references
        .iter()
        .map(|reference| crate::output::tag_digest(reference));
    futures::future::join_all(heads)
        .await
        .iter()
        .all(|held| held.as_deref().is_ok_and(|held| held == digest))
}

/// Records a successful build (atomically; a failure to record only costs the next build its shortcut).
pub(crate) fn save(path: &Path, record: &Stamp) {
    let text = serde_json::to_string_pretty(record).expect("records serialize");
    crate::state::keep(path, &text);
}

/// After a release pointed an image's tags back at the index they named before (the same images), the record
/// names that index, so the next build finds the registry as it left it.
pub(crate) fn repoint(path: &Path, digest: &str) {
    let Some(mut record) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Stamp>(&text).ok())
    else {
        return;
    };
    record.digest = digest.to_owned();
    for output in &mut record.outputs {
        if let StampedOutput::Registry { digest: pushed, .. } = output {
            *pushed = digest.to_owned();
        }
    }
    save(path, &record);
}

/// Forgets a record (before a build that may change the outputs).
pub(crate) fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// An archive's record.
pub(crate) fn archive_record(path: &Path) -> Option<StampedOutput> {
    let meta = std::fs::metadata(path).ok()?;
    Some(StampedOutput::Archive {
        path: path.to_path_buf(),
        len: meta.len(),
        mtime_ns: mtime(&meta),
    })
}

/// The image under a name in Docker, if Docker has it, from the newest entry of its history: its id, which is the
/// image's own (the classic store's image id, the containerd store's manifest or index digest), as `docker
/// inspect` says it, and its comment. The history costs the daemon about half of what an inspect does (no sizes,
/// no tags of the containerd store's images), and a no-op `--load` asks once per image.
pub(crate) async fn docker_image(socket: &Path, reference: &str) -> Option<DockerImage> {
    let history = docker_api::get_json(
        socket,
        &format!("/images/{reference}/history"),
        std::time::Duration::from_secs(5),
    )
    .await
    .ok()?;
    let newest = &history[0];
    let id = (newest["Id"].as_str()).filter(|id| id.starts_with("sha256:"))?;
    Some(DockerImage {
        id: id.to_owned(),
        comment: newest["Comment"].as_str().unwrap_or_default().to_owned(),
    })
}

fn mtime(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::layout::CopyEntry;

    #[tokio::test]
    async fn prefetched_docker_images_answer_only_for_the_socket_they_were_asked_of() {
        let dir = tempfile::tempdir().unwrap();
        let asked = dir.path().join("docker.sock");
        let image = DockerImage {
            id: "sha256:1".to_owned(),
            comment: "cargo-hive fingerprint 1".to_owned(),
        };
        let images = BTreeMap::from([("api:1".to_owned(), Some(image.clone()))]);
        let prefetched = DockerImages {
            socket: asked.clone(),
            images: async move { Arc::new(images) }.boxed().shared(),
        };
        // No Docker listens at either socket: an answer can only come from the prefetch.
        let get = |socket: PathBuf, reference: &'static str| {
            let prefetched = prefetched.clone();
            async move { DockerImages::get(Some(&prefetched), &socket, reference).await }
        };
        assert_eq!(get(asked.clone(), "api:1").await, Some(image));
        assert_eq!(get(dir.path().join("other.sock"), "api:1").await, None);
        assert_eq!(
            get(asked, "web:1").await,
            None,
            "not prefetched: asked, and no Docker answers"
        );
    }

    fn input(root: &Path) -> LocalInput {
        LocalInput {
            name: "x-bin".into(),
            root: root.to_path_buf(),
            entries: vec![CopyEntry {
                source: "app".into(),
                destination: "/app".into(),
                mode: None,
            }],
        }
    }

    #[test]
    fn fingerprint_follows_inputs_config_and_exporters() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app"), b"v1").unwrap();
        let input = input(dir.path());
        let definition = empty_definition();
        let exporter = ExporterSpec {
            kind: "oci".into(),
            attrs: [("name".into(), "a".into())].into(),
        };
        let base = fingerprint(
            &definition,
            b"{}",
            std::slice::from_ref(&exporter),
            &[&input],
            FileView::Stat,
        )
        .unwrap();
        assert_eq!(
            base,
            fingerprint(
                &definition,
                b"{}",
                std::slice::from_ref(&exporter),
                &[&input],
                FileView::Stat,
            )
            .unwrap()
        );
        assert_ne!(
            base,
            fingerprint(
                &definition,
                b"{ }",
                std::slice::from_ref(&exporter),
                &[&input],
                FileView::Stat,
            )
            .unwrap()
        );
        let moby = ExporterSpec {
            kind: "moby".into(),
            ..exporter.clone()
        };
        assert_ne!(
            base,
            fingerprint(&definition, b"{}", &[moby], &[&input], FileView::Stat).unwrap()
        );
        // A rewritten binary has a new mtime (and usually size): a new fingerprint.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(dir.path().join("app"), b"v2").unwrap();
        assert_ne!(
            base,
            fingerprint(&definition, b"{}", &[exporter], &[&input], FileView::Stat).unwrap()
        );
    }

    fn empty_definition() -> Llb {
        crate::buildkit::layout::definition(&crate::buildkit::layout::ImageLayout {
            platform: crate::plan::Platform::parse("linux/amd64").unwrap(),
            base: None,
            layers: vec![],
            steps: vec![],
            shared_key_hint: String::new(),
            epoch: 0,
            uid: 0,
            gid: 0,
        })
    }

    fn content_print(input: &LocalInput) -> String {
        fingerprint(&empty_definition(), b"{}", &[], &[input], FileView::Content).unwrap()
    }

    /// The content fingerprint is the same for the same files in another checkout, whatever their times, and
    /// follows every byte, mode bit, name, symlink target and file of a directory the image gets.
    #[test]
    fn content_fingerprint_follows_content_not_place_or_time() {
        use std::os::unix::fs::PermissionsExt;
        let write_tree = |root: &Path| {
            std::fs::write(root.join("app"), b"v1").unwrap();
            std::fs::create_dir_all(root.join("conf/sub")).unwrap();
            std::fs::write(root.join("conf/a.toml"), b"a").unwrap();
            std::fs::write(root.join("conf/sub/b.toml"), b"b").unwrap();
            std::os::unix::fs::symlink("a.toml", root.join("conf/link")).unwrap();
        };
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_tree(one.path());
        std::thread::sleep(std::time::Duration::from_millis(10));
        write_tree(two.path());
        let input = |root: &Path| LocalInput {
            entries: vec![
                CopyEntry {
                    source: "app".into(),
                    destination: "/app".into(),
                    mode: None,
                },
                CopyEntry {
                    source: "conf".into(),
                    destination: "/etc/conf".into(),
                    mode: None,
                },
            ],
            ..self::input(root)
        };
        let (here, there) = (input(one.path()), input(two.path()));
        let base = content_print(&here);
        assert_eq!(base, content_print(&there), "another checkout, other times");
        assert_ne!(
            base,
            fingerprint(&empty_definition(), b"{}", &[], &[&there], FileView::Stat).unwrap(),
            "not the stat fingerprint"
        );
        let root = two.path();
        let changes: [(&str, &dyn Fn()); 6] = [
            ("same size, other bytes", &|| {
                std::fs::write(root.join("app"), b"v2").unwrap()
            }),
            ("a file deep in a directory", &|| {
                std::fs::write(root.join("conf/sub/b.toml"), b"B").unwrap()
            }),
            ("a mode bit", &|| {
                let mode = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(root.join("conf/a.toml"), mode).unwrap()
            }),
            ("a symlink's target", &|| {
                std::fs::remove_file(root.join("conf/link")).unwrap();
                std::os::unix::fs::symlink("sub/b.toml", root.join("conf/link")).unwrap()
            }),
            ("a new file", &|| {
                std::fs::write(root.join("conf/new"), b"").unwrap()
            }),
            ("a renamed file", &|| {
                std::fs::rename(root.join("conf/new"), root.join("conf/renamed")).unwrap()
            }),
        ];
        let mut seen = vec![base];
        for (what, change) in changes {
            change();
            let print = content_print(&there);
            assert!(
                !seen.contains(&print),
                "{what} left the fingerprint as it was"
            );
            seen.push(print);
        }
    }

    #[tokio::test]
    async fn a_record_holds_only_while_its_outputs_are_intact() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.oci.tar");
        std::fs::write(&archive, b"tar").unwrap();
        let record = Stamp {
            platforms: BTreeMap::new(),
            fingerprint: "f".into(),
            digest: "sha256:1".into(),
            config_digest: None,
            outputs: vec![archive_record(&archive).unwrap()],
        };
        let path = record_path(dir.path(), "a");
        save(&path, &record);
        let expected = [Expected::Archive(archive.clone())];
        assert_eq!(
            up_to_date(&path, "f", &expected, None, None).await,
            Some(record.clone())
        );
        assert_eq!(
            up_to_date(&path, "other", &expected, None, None).await,
            None
        );
        std::fs::write(&archive, b"changed").unwrap();
        assert_eq!(up_to_date(&path, "f", &expected, None, None).await, None);
        std::fs::remove_file(&archive).unwrap();
        assert_eq!(up_to_date(&path, "f", &expected, None, None).await, None);
        forget(&path);
        assert!(!path.exists());
    }

    /// An intact archive elsewhere, or other outputs, do not make the expected output fresh.
    #[tokio::test]
    async fn a_record_only_stands_for_the_outputs_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere.oci.tar");
        std::fs::write(&elsewhere, b"tar").unwrap();
        let record = Stamp {
            platforms: BTreeMap::new(),
            fingerprint: "f".into(),
            digest: "sha256:1".into(),
            config_digest: None,
            outputs: vec![archive_record(&elsewhere).unwrap()],
        };
        let path = record_path(dir.path(), "a");
        save(&path, &record);
        let here = Expected::Archive(dir.path().join("a.oci.tar"));
        assert_eq!(
            up_to_date(&path, "f", std::slice::from_ref(&here), None, None).await,
            None
        );
        let both = [Expected::Archive(elsewhere.clone()), here];
        assert_eq!(up_to_date(&path, "f", &both, None, None).await, None);
        let docker = [Expected::Docker("a:latest".into())];
        assert_eq!(up_to_date(&path, "f", &docker, None, None).await, None);
        let same = [Expected::Archive(elsewhere)];
        assert_eq!(
            up_to_date(&path, "f", &same, None, None).await,
            Some(record)
        );
    }
}
