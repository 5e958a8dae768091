//! Our layers packed by us: the entries of a layer's local sources as one deterministic tar, compressed as the image
//! asks (gzip, zstd or none), written in one streaming pass that hashes the tar and the blob as they are written, and the one-layer OCI image around it that
//! an `oci-layout://` source hands to BuildKit. The tar holds what BuildKit's FileOp copy would have made of the
//! same entries (owner, mode, SOURCE_DATE_EPOCH, created parents, directory contents, symlinks kept), so the daemon
//! only has to push or export a blob that already exists.
//!
//! Reproducible bytes: entries in the order of a directory walk (each path compared component by component, so a
//! directory comes right before its contents), GNU headers with only the fields we set, gzip from the pure-Rust
//! zlib (level 6 unless set) with a fixed header, zstd from the bundled libzstd (level 3 unless set), single-threaded
//! and without a checksum or content size in its frame (as BuildKit's own zstd layers).
//!
//! Over a base (or our own layers below), the directories a copy creates are left out of the tar: BuildKit's copy
//! keeps a directory that is there (its mode, owner and time), and applying a layer creates missing parents, so
//! writing ours would replace the base's (`/tmp`'s 1777, a home directory's owner).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::GzBuilder;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::layout::{CopyEntry, LocalInput};
use crate::plan::Platform;
use hive_build::Compression as Kind;

/// Reads and writes go through buffers this large: a few system calls per megabyte, and little memory.
const BUFFER: usize = 1 << 20;
/// The gzip header's OS byte: "unknown", the same on every machine (as Go's gzip writes it).
const GZIP_OS_UNKNOWN: u8 = 255;
/// Directories made for a destination's parents, as BuildKit's `MkdirAll` makes them.
const CREATED_DIR_MODE: u32 = 0o755;
/// Permission bits plus setuid, setgid and sticky: what a copy keeps or a mode override sets.
const MODE_BITS: u32 = 0o7777;
/// Symlinks carry no permissions of their own; Linux reports them as 0777.
const SYMLINK_MODE: u32 = 0o777;

/// The OCI media types of the one-layer image.
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// How a packed layer's tar is compressed: the image's `compression` and `compression-level` (`None`: the
/// compressor's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LayerCompression {
    /// gzip, zstd or none.
    pub(crate) kind: Kind,
    /// The level, when one is set.
    pub(crate) level: Option<u32>,
}

impl LayerCompression {
    /// The layer's OCI media type.
    pub(crate) fn media_type(self) -> &'static str {
        match self.kind {
            Kind::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Kind::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Kind::Uncompressed => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// The blob file's extension.
    fn extension(self) -> &'static str {
        match self.kind {
            Kind::Gzip => "tar.gz",
            Kind::Zstd => "tar.zst",
            Kind::Uncompressed => "tar",
        }
    }

    fn level(self) -> u32 {
        (self.level.or(self.kind.default_level())).unwrap_or_default()
    }

    /// The compressing writer over `blob`.
    fn encoder<W: Write>(self, blob: W) -> io::Result<Encoder<W>> {
        Ok(match self.kind {
            Kind::Gzip => Encoder::Gzip(
                GzBuilder::new()
                    .mtime(0)
                    .operating_system(GZIP_OS_UNKNOWN)
                    .write(blob, flate2::Compression::new(self.level())),
            ),
            Kind::Zstd => {
                let level = i32::try_from(self.level()).unwrap_or(3);
                let mut encoder = zstd::stream::write::Encoder::new(blob, level)?;
                // The frame as BuildKit's (Go) zstd writes it for a stream: no checksum, no size up front.
                encoder.include_checksum(false)?;
                encoder.include_contentsize(false)?;
                Encoder::Zstd(encoder)
            }
            Kind::Uncompressed => Encoder::Plain(blob),
        })
    }
}

/// The compressing writer of a layer: gzip, zstd, or the tar as it is.
enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Plain(W),
}

impl<W: Write> Encoder<W> {
    /// Ends the stream (trailer, last frame) and gives the writer back.
    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(gzip) => gzip.finish(),
            Encoder::Zstd(zstd) => zstd.finish(),
            Encoder::Plain(plain) => Ok(plain),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(gzip) => gzip.write(buf),
            Encoder::Zstd(zstd) => zstd.write(buf),
            Encoder::Plain(plain) => plain.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(gzip) => gzip.flush(),
            Encoder::Zstd(zstd) => zstd.flush(),
            Encoder::Plain(plain) => plain.flush(),
        }
    }
}

/// One of our layers, packed: a (compressed) tar written to a file, with its digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedLayer {
    /// `sha256:<hex>` of the compressed blob (the layer's digest).
    pub(crate) digest: String,
    /// `sha256:<hex>` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub(crate) diff_id: String,
    /// Size of the compressed blob.
    pub(crate) size: u64,
    /// Where the blob is.
    pub(crate) path: PathBuf,
    /// The blob's OCI media type.
    pub(crate) media_type: &'static str,
}

/// A one-layer OCI image around a packed layer, for an `oci-layout://` source: the manifest and config blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerImage {
    /// The image manifest's bytes.
    pub(crate) manifest: Vec<u8>,
    /// `sha256:<hex>` of [`LayerImage::manifest`].
    pub(crate) manifest_digest: String,
    /// The image config's bytes.
    pub(crate) config: Vec<u8>,
    /// `sha256:<hex>` of [`LayerImage::config`].
    pub(crate) config_digest: String,
}

/// Why a layer could not be packed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackError {
    /// A source named by the layer is not there.
    #[error("the source {} does not exist", path.display())]
    MissingSource {
        /// The source's path on this machine.
        path: PathBuf,
    },
    /// A source path leaves its local directory.
    #[error("the source `{source_path}` must stay inside {}: `..` is not allowed", root.display())]
    OutsideRoot {
        /// The source as the layer names it.
        source_path: String,
        /// Its local directory.
        root: PathBuf,
    },
    /// A source path goes through a symlink, which BuildKit's transfer would not have followed either.
    #[error("the source {} goes through the symlink {}; name the real path instead", path.display(), link.display())]
    SymlinkInPath {
        /// The source's path on this machine.
        path: PathBuf,
        /// The symlink on the way to it.
        link: PathBuf,
    },
    /// A source is a device, a pipe or a socket.
    #[error("{} is not a file, a directory or a symlink, so it cannot go into an image layer", path.display())]
    UnsupportedType {
        /// The path on this machine.
        path: PathBuf,
    },
    /// A source could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path on this machine.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file's length changed between its tar header and the end of its content.
    #[error(
        "{} changed size while it was packed (it had {expected} bytes when opened); is something still writing it?",
        path.display()
    )]
    SizeChanged {
        /// The file on this machine.
        path: PathBuf,
        /// Its length when it was opened, as its tar header says.
        expected: u64,
    },
    /// A file was written to while it was read (its modification time moved).
    #[error(
        "{} changed while it was being sent to BuildKit (a concurrent build, or a linker rewriting it in place?): \
         the image would hold neither the old file nor the new one, so nothing was written; rebuild once the file \
         is stable",
        path.display()
    )]
    Changed {
        /// The file on this machine.
        path: PathBuf,
    },
    /// A copy would put something below a file or symlink of the same layer, as if it were a directory.
    #[error("cannot copy {} into the image: /{} is a file or symlink in this layer, not a directory", source_path.display(), image_path.display())]
    NotADirectory {
        /// The source on this machine.
        source_path: PathBuf,
        /// The path in the image.
        image_path: PathBuf,
    },
    /// A copy would replace a directory of the same layer with a file or symlink.
    #[error("cannot copy {} to /{} in the image: a directory of this layer is there", source_path.display(), image_path.display())]
    ReplacesDirectory {
        /// The source on this machine.
        source_path: PathBuf,
        /// The path in the image.
        image_path: PathBuf,
    },
    /// The blob could not be written.
    #[error("cannot write the layer blob in {}: {source}", dir.display())]
    Write {
        /// The directory the blob goes to.
        dir: PathBuf,
        /// What the OS (or the archive writer) said.
        source: io::Error,
    },
}

/// Whether the directories a copy creates (parents, and the destination of a directory's contents) go in the tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parents {
    /// Written (0755, the layer's owner, the epoch): the layer is the bottom one, on scratch.
    Written,
    /// Left out: there is something below, whose directories must stay as they are.
    Omitted,
}

/// Packs `inputs` into one layer under `dir` (created if missing; the blob is written to a temp name and renamed
/// to `<dir>/sha256-<hex>.tar.gz` (`.tar.zst`, `.tar`), so a crash leaves no half blob under a digest name).
pub(crate) fn pack_layer(
    inputs: &[LocalInput],
    parents: Parents,
    (uid, gid, epoch): (u32, u32, i64),
    compression: LayerCompression,
    dir: &Path,
) -> Result<PackedLayer, PackError> {
    let tree = Tree::from_inputs(inputs)?;
    let stamp = Stamp {
        uid: u64::from(uid),
        gid: u64::from(gid),
        mtime: u64::try_from(epoch).unwrap_or(0),
    };
    let write_error = |source| PackError::Write {
        dir: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(write_error)?;
    let extension = compression.extension();
    let mut temp = tempfile::Builder::new()
        .prefix(".partial-")
        .suffix(&format!(".{extension}"))
        .tempfile_in(dir)
        .map_err(write_error)?;
    // An uncompressed blob is the tar itself: its digest is the diff id, hashed once.
    let hash_blob = compression.kind != Kind::Uncompressed;
    let blob = Digesting::new(
        BufWriter::with_capacity(BUFFER, temp.as_file_mut()),
        hash_blob,
    );
    let encoder = compression.encoder(blob).map_err(write_error)?;
    let mut archive = tar::Builder::new(BufWriter::with_capacity(
        BUFFER,
        Digesting::new(encoder, true),
    ));
    write_entries(&mut archive, &tree, parents, &stamp, dir)?;
    // `into_inner` ends the archive (two zero blocks); each writer under it is then flushed and finished in turn.
    let tar = archive.into_inner().map_err(write_error)?;
    let tar = tar
        .into_inner()
        .map_err(|error| write_error(error.into_error()))?;
    let (encoder, diff_id, _) = tar.finish();
    let blob = encoder.finish().map_err(write_error)?;
    let (buffered, digest, size) = blob.finish();
    let digest = if hash_blob { digest } else { diff_id.clone() };
    // Flushed, not synced: the blob lives as long as the solve that reads it, and what a crash leaves is stale.
    buffered
        .into_inner()
        .map_err(|error| write_error(error.into_error()))?;
    let hex = digest.trim_start_matches("sha256:");
    let path = dir.join(format!("sha256-{hex}.{extension}"));
    temp.persist(&path)
        .map_err(|error| write_error(error.error))?;
    Ok(PackedLayer {
        digest,
        diff_id,
        size,
        path,
        media_type: compression.media_type(),
    })
}

/// A one-layer OCI image around `layer` for `platform`: the config (`rootfs.diff_ids` = the layer's diff id) and
/// the manifest naming both. Keys sorted and compact, so the same layer always gives the same bytes.
pub(crate) fn layer_image(layer: &PackedLayer, platform: &Platform) -> LayerImage {
    let config = ImageConfig {
        architecture: platform.architecture(),
        config: EmptyObject {},
        os: platform.os(),
        rootfs: RootFs {
            diff_ids: [&layer.diff_id],
            kind: "layers",
        },
        variant: platform.variant(),
    };
    let config = serde_json::to_vec(&config).expect("the config serializes");
    let config_digest = sha256_digest(&config);
    let manifest = Manifest {
        config: Descriptor {
            digest: &config_digest,
            media_type: CONFIG_MEDIA_TYPE,
            size: config.len() as u64,
        },
        layers: [Descriptor {
            digest: &layer.digest,
            media_type: layer.media_type,
            size: layer.size,
        }],
        media_type: MANIFEST_MEDIA_TYPE,
        schema_version: 2,
    };
    let manifest = serde_json::to_vec(&manifest).expect("the manifest serializes");
    LayerImage {
        manifest_digest: sha256_digest(&manifest),
        manifest,
        config_digest,
        config,
    }
}

// Fields in key order: the bytes are sorted whatever serde_json's map features are.
#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    config: EmptyObject,
    os: &'a str,
    rootfs: RootFs<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct RootFs<'a> {
    diff_ids: [&'a str; 1],
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Manifest<'a> {
    config: Descriptor<'a>,
    layers: [Descriptor<'a>; 1],
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
}

#[derive(Serialize)]
struct Descriptor<'a> {
    digest: &'a str,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    size: u64,
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What goes at one path of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A directory with its mode; `created` when the copy made it (a parent, a directory copy's destination)
    /// rather than copied it.
    Dir { mode: u32, created: bool },
    /// A regular file: its content is read from `source` while the tar is written.
    File { source: PathBuf, mode: u32 },
    /// A symlink, target as read.
    Symlink { target: PathBuf },
}

/// The layer's contents, keyed by path in the image without the leading `/`. `Path`'s order compares component
/// by component: a directory walk's order, parents first.
#[derive(Debug)]
struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
}

impl Tree {
    /// Every entry of every input, in order, each later one replacing what an earlier one put at the same path.
    fn from_inputs(inputs: &[LocalInput]) -> Result<Tree, PackError> {
        let mut tree = Tree {
            nodes: BTreeMap::new(),
        };
        for input in inputs {
            for entry in &input.entries {
                tree.add_entry(&input.root, entry)?;
            }
        }
        Ok(tree)
    }

    /// One copy, as BuildKit's FileOp does it with `create_dest_path`, `dir_copy_contents` and no symlink
    /// following.
    fn add_entry(&mut self, root: &Path, entry: &CopyEntry) -> Result<(), PackError> {
        let source = resolve_source(root, &entry.source)?;
        let metadata = lstat(&source)?;
        let (destination, into_directory) = image_path(&entry.destination);
        if metadata.is_dir() {
            // The destination is made like its parents (0755) if missing, or kept as it is: only its contents
            // are copied.
            self.ensure_directories(&destination, &source)?;
            return self.add_contents(&source, &destination, entry.mode);
        }
        let destination = if into_directory || self.is_directory(&destination) {
            let Some(name) = source.file_name() else {
                return Err(PackError::UnsupportedType { path: source });
            };
            destination.join(name)
        } else {
            destination
        };
        if let Some(parent) = destination.parent() {
            self.ensure_directories(parent, &source)?;
        }
        let node = leaf(&source, &metadata, entry.mode)?;
        self.put_leaf(destination, node, &source)
    }

    /// The contents of the directory `source` under `destination`, recursively; subdirectories take `mode` or
    /// their own.
    fn add_contents(
        &mut self,
        source: &Path,
        destination: &Path,
        mode: Option<u32>,
    ) -> Result<(), PackError> {
        let read_error = |error| PackError::Read {
            path: source.to_owned(),
            source: error,
        };
        let mut children = fs::read_dir(source)
            .map_err(read_error)?
            .map(|child| child.map(|child| child.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error)?;
        children.sort();
        for name in children {
            let child_source = source.join(&name);
            let child_destination = destination.join(&name);
            let metadata = lstat(&child_source)?;
            if metadata.is_dir() {
                let own = mode.unwrap_or(metadata.permissions().mode()) & MODE_BITS;
                self.put_directory(child_destination.clone(), own, &child_source)?;
                self.add_contents(&child_source, &child_destination, mode)?;
            } else {
                let node = leaf(&child_source, &metadata, mode)?;
                self.put_leaf(child_destination, node, &child_source)?;
            }
        }
        Ok(())
    }

    fn is_directory(&self, path: &Path) -> bool {
        match self.nodes.get(path) {
            Some(node) => matches!(node, Node::Dir { .. }),
            None => path.as_os_str().is_empty(),
        }
    }

    /// `path` and its parents as directories: kept where they are in this layer, else made 0755.
    fn ensure_directories(&mut self, path: &Path, source: &Path) -> Result<(), PackError> {
        let mut prefix = PathBuf::new();
        for component in path.components() {
            prefix.push(component);
            match self.nodes.get(&prefix) {
                None => {
                    let node = Node::Dir {
                        mode: CREATED_DIR_MODE,
                        created: true,
                    };
                    self.nodes.insert(prefix.clone(), node);
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(PackError::NotADirectory {
                        source_path: source.to_owned(),
                        image_path: prefix,
                    });
                }
            }
        }
        Ok(())
    }

    /// A copied directory: new, or merged into one already there, which takes the copied one's mode and owner.
    fn put_directory(&mut self, path: PathBuf, mode: u32, source: &Path) -> Result<(), PackError> {
        match self.nodes.get_mut(&path) {
            None | Some(Node::Dir { .. }) => {
                let node = Node::Dir {
                    mode,
                    created: false,
                };
                self.nodes.insert(path, node);
                Ok(())
            }
            Some(_) => Err(PackError::NotADirectory {
                source_path: source.to_owned(),
                image_path: path,
            }),
        }
    }

    /// A copied file or symlink, replacing any file or symlink already there.
    fn put_leaf(&mut self, path: PathBuf, node: Node, source: &Path) -> Result<(), PackError> {
        if self.is_directory(&path) {
            return Err(PackError::ReplacesDirectory {
                source_path: source.to_owned(),
                image_path: path,
            });
        }
        self.nodes.insert(path, node);
        Ok(())
    }
}

/// A file or symlink as the layer holds it.
fn leaf(path: &Path, metadata: &fs::Metadata, mode: Option<u32>) -> Result<Node, PackError> {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        // A hardlink is one more regular file: the content is read again for it.
        let mode = mode.unwrap_or(metadata.permissions().mode()) & MODE_BITS;
        Ok(Node::File {
            source: path.to_owned(),
            mode,
        })
    } else if file_type.is_symlink() {
        let target = fs::read_link(path).map_err(|source| PackError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Node::Symlink { target })
    } else {
        Err(PackError::UnsupportedType {
            path: path.to_owned(),
        })
    }
}

fn lstat(path: &Path) -> Result<fs::Metadata, PackError> {
    fs::symlink_metadata(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => PackError::MissingSource {
            path: path.to_owned(),
        },
        _ => PackError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// The source's path on this machine: relative to `root`, never leaving it, and through no symlink (the last
/// component may be one: it is copied as a symlink).
fn resolve_source(root: &Path, source: &str) -> Result<PathBuf, PackError> {
    let parts: Vec<&str> = source
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(PackError::OutsideRoot {
            source_path: source.to_owned(),
            root: root.to_owned(),
        });
    }
    let mut path = root.to_owned();
    for (index, part) in parts.iter().enumerate() {
        path.push(part);
        if index + 1 < parts.len() && lstat(&path)?.file_type().is_symlink() {
            return Err(PackError::SymlinkInPath {
                path: root.join(parts.join("/")),
                link: path,
            });
        }
    }
    Ok(path)
}

/// A destination as a path in the image without the leading `/`, cleaned as Go's `filepath.Join("/", dest)`
/// cleans it, and whether it names a directory to copy into (a trailing `/` or `/.`).
fn image_path(destination: &str) -> (PathBuf, bool) {
    let into_directory =
        destination.is_empty() || destination.ends_with('/') || destination.ends_with("/.");
    let mut parts: Vec<&str> = Vec::new();
    for part in destination.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    (parts.iter().collect(), into_directory)
}

/// What every header of the layer shares.
struct Stamp {
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Stamp {
    /// A GNU header (long names and link targets through `././@LongLink`) with only these fields set: empty user
    /// and group names, device numbers 0.
    fn header(&self, kind: EntryType, mode: u32, size: u64) -> io::Result<Header> {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(self.uid);
        header.set_gid(self.gid);
        header.set_mtime(self.mtime);
        header.set_size(size);
        header.set_device_major(0)?;
        header.set_device_minor(0)?;
        Ok(header)
    }
}

/// Every node of `tree` in order, each file's content streamed from its source.
fn write_entries<W: Write>(
    archive: &mut tar::Builder<W>,
    tree: &Tree,
    parents: Parents,
    stamp: &Stamp,
    dir: &Path,
) -> Result<(), PackError> {
    let write_error = |source| PackError::Write {
        dir: dir.to_owned(),
        source,
    };
    for (path, node) in &tree.nodes {
        match node {
            Node::Dir { created: true, .. } if parents == Parents::Omitted => {}
            Node::Dir { mode, .. } => {
                let mut header = stamp
                    .header(EntryType::Directory, *mode, 0)
                    .map_err(write_error)?;
                let mut name = path.as_os_str().to_owned();
                name.push("/");
                archive
                    .append_data(&mut header, name, io::empty())
                    .map_err(write_error)?;
            }
            Node::Symlink { target } => {
                let mut header = stamp
                    .header(EntryType::Symlink, SYMLINK_MODE, 0)
                    .map_err(write_error)?;
                archive
                    .append_link(&mut header, path, target)
                    .map_err(write_error)?;
            }
            Node::File { source, mode } => {
                write_file(archive, path, source, *mode, stamp, dir)?;
            }
        }
    }
    Ok(())
}

/// One regular file: its header says the length it has when opened, and exactly that many bytes follow.
fn write_file<W: Write>(
    archive: &mut tar::Builder<W>,
    path: &Path,
    source: &Path,
    mode: u32,
    stamp: &Stamp,
    dir: &Path,
) -> Result<(), PackError> {
    let read_error = |error: io::Error| match error.kind() {
        io::ErrorKind::NotFound => PackError::MissingSource {
            path: source.to_owned(),
        },
        _ => PackError::Read {
            path: source.to_owned(),
            source: error,
        },
    };
    let file = File::open(source).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        // Replaced by something else since the layer was listed.
        return Err(PackError::UnsupportedType {
            path: source.to_owned(),
        });
    }
    let expected = metadata.len();
    let mut header = stamp
        .header(EntryType::Regular, mode, expected)
        .map_err(|source| PackError::Write {
            dir: dir.to_owned(),
            source,
        })?;
    let capacity = usize::try_from(expected)
        .unwrap_or(BUFFER)
        .clamp(8 * 1024, BUFFER);
    let opened = file.try_clone().map_err(read_error)?;
    let mut reader = ExactLength::new(BufReader::with_capacity(capacity, file), expected);
    match archive.append_data(&mut header, path, &mut reader) {
        Ok(()) => {
            // Same length is not same content: a write in place moves the modification time.
            let after = opened.metadata().map_err(read_error)?;
            let stamp = |meta: &fs::Metadata| (meta.mtime(), meta.mtime_nsec(), meta.len());
            if stamp(&after) == stamp(&metadata) {
                Ok(())
            } else {
                Err(PackError::Changed {
                    path: source.to_owned(),
                })
            }
        }
        Err(error) => Err(match reader.failure.take() {
            Some(ReadFailure::Io(error)) => read_error(error),
            Some(ReadFailure::SizeChanged) => PackError::SizeChanged {
                path: source.to_owned(),
                expected,
            },
            None => PackError::Write {
                dir: dir.to_owned(),
                source: error,
            },
        }),
    }
}

/// Why an [`ExactLength`] stopped.
#[derive(Debug)]
enum ReadFailure {
    /// The source could not be read.
    Io(io::Error),
    /// The source ended before its length, or went on past it.
    SizeChanged,
}

/// Reads exactly the length a file had when its header was written, and fails (keeping why) when the file ends
/// sooner or goes on longer: a tar entry's content must be as long as its header says.
struct ExactLength<R> {
    inner: R,
    remaining: u64,
    failure: Option<ReadFailure>,
}

impl<R: Read> ExactLength<R> {
    fn new(inner: R, length: u64) -> ExactLength<R> {
        ExactLength {
            inner,
            remaining: length,
            failure: None,
        }
    }

    fn fail(&mut self, failure: ReadFailure) -> io::Result<usize> {
        self.failure = Some(failure);
        Err(io::Error::other(
            "the file's content does not match its header",
        ))
    }
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // At the header's length the file must end: one more byte means it grew.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => self.fail(ReadFailure::SizeChanged),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
                Err(error) => self.fail(ReadFailure::Io(error)),
            };
        }
        let wanted = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.inner.read(&mut buf[..wanted]) {
            Ok(0) => self.fail(ReadFailure::SizeChanged),
            Ok(read) => {
                self.remaining -= read as u64;
                Ok(read)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
            Err(error) => self.fail(ReadFailure::Io(error)),
        }
    }
}

/// A writer that hashes (SHA-256, when asked) and counts what goes through it.
struct Digesting<W> {
    inner: W,
    hasher: Option<Sha256>,
    written: u64,
}

impl<W: Write> Digesting<W> {
    fn new(inner: W, hash: bool) -> Digesting<W> {
        Digesting {
            inner,
            hasher: hash.then(Sha256::new),
            written: 0,
        }
    }

    /// The writer back, with `sha256:<hex>` of everything written and its length.
    fn finish(self) -> (W, String, u64) {
        let digest = (self.hasher)
            .map(|hasher| format!("sha256:{}", hex::encode(hasher.finalize())))
            .unwrap_or_default();
        (self.inner, digest, self.written)
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..written]);
        }
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    use flate2::read::GzDecoder;

    use super::*;

    const EPOCH: i64 = 1_700_000_000;
    const GZIP: LayerCompression = LayerCompression {
        kind: Kind::Gzip,
        level: None,
    };

    fn write(path: &Path, content: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn entry(source: &str, destination: &str, mode: Option<u32>) -> CopyEntry {
        CopyEntry {
            source: source.to_owned(),
            destination: destination.to_owned(),
            mode,
        }
    }

    /// 300 KB that compress badly, like a binary's code.
    fn binary() -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..300_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    const LONG_DIR: &str = "a-directory-name-long-enough-that-with-its-parents-the-path-goes-past-the-hundred-bytes-of-a-tar-name";

    /// A source tree: a binary, a doc file, a config dir with a nested dir and a symlink, a deep file.
    fn sources() -> (tempfile::TempDir, LocalInput) {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("ctx");
        write(&root.join("target/app"), &binary(), 0o644);
        write(&root.join("README.md"), b"read me\n", 0o640);
        write(&root.join("conf/main.toml"), b"port = 80\n", 0o600);
        write(&root.join("conf/nested/deep.txt"), b"deep\n", 0o644);
        fs::set_permissions(root.join("conf/nested"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(root.join("conf"), fs::Permissions::from_mode(0o700)).unwrap();
        symlink("main.toml", root.join("conf/link")).unwrap();
        write(&root.join("data.bin"), b"\x00\x01\x02", 0o644);
        let input = LocalInput {
            name: "context".to_owned(),
            root,
            entries: vec![
                entry("target/app", "/usr/local/bin/app", Some(0o755)),
                entry("README.md", "/usr/share/doc/", None),
                entry("conf", "/etc/app", None),
                entry("data.bin", &format!("/opt/{LONG_DIR}/data.bin"), None),
            ],
        };
        (temp, input)
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        path: String,
        kind: EntryType,
        mode: u32,
        owner: (u64, u64),
        mtime: u64,
        content: Vec<u8>,
        link: Option<String>,
    }

    fn decompress(path: &Path) -> Vec<u8> {
        let mut tar = Vec::new();
        GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        tar
    }

    fn read_back(tar: &[u8]) -> Vec<Seen> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                assert_eq!(header.username_bytes(), Some(&b""[..]));
                assert_eq!(header.groupname_bytes(), Some(&b""[..]));
                assert_eq!(header.device_major().unwrap(), Some(0));
                assert_eq!(header.device_minor().unwrap(), Some(0));
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                Seen {
                    path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                    kind: header.entry_type(),
                    mode: header.mode().unwrap(),
                    owner: (header.uid().unwrap(), header.gid().unwrap()),
                    mtime: header.mtime().unwrap(),
                    content,
                    link: entry
                        .link_name_bytes()
                        .map(|link| String::from_utf8(link.into_owned()).unwrap()),
                }
            })
            .collect()
    }

    fn seen(path: &str, kind: EntryType, mode: u32, content: &[u8]) -> Seen {
        Seen {
            path: path.to_owned(),
            kind,
            mode,
            owner: (1000, 1001),
            mtime: EPOCH as u64,
            content: content.to_vec(),
            link: None,
        }
    }

    fn dir(path: &str, mode: u32) -> Seen {
        seen(path, EntryType::Directory, mode, b"")
    }

    fn file(path: &str, mode: u32, content: &[u8]) -> Seen {
        seen(path, EntryType::Regular, mode, content)
    }

    #[test]
    fn packs_what_the_file_op_would_copy_in_walk_order() {
        let (temp, input) = sources();
        let out = temp.path().join("blobs");
        let layer =
            pack_layer(&[input], Parents::Written, (1000, 1001, EPOCH), GZIP, &out).unwrap();
        let long = format!("opt/{LONG_DIR}/");
        let mut link = seen("etc/app/link", EntryType::Symlink, 0o777, b"");
        link.link = Some("main.toml".to_owned());
        let expected = vec![
            dir("etc/", 0o755),
            // The destination of a directory's contents is made like a parent, not given the source's mode.
            dir("etc/app/", 0o755),
            link,
            file("etc/app/main.toml", 0o600, b"port = 80\n"),
            dir("etc/app/nested/", 0o750),
            file("etc/app/nested/deep.txt", 0o644, b"deep\n"),
            dir("opt/", 0o755),
            dir(&long, 0o755),
            file(&format!("{long}data.bin"), 0o644, b"\x00\x01\x02"),
            dir("usr/", 0o755),
            dir("usr/local/", 0o755),
            dir("usr/local/bin/", 0o755),
            file("usr/local/bin/app", 0o755, &binary()),
            dir("usr/share/", 0o755),
            dir("usr/share/doc/", 0o755),
            file("usr/share/doc/README.md", 0o640, b"read me\n"),
        ];
        assert!(long.len() > 100, "the long path needs the GNU extension");
        assert_eq!(read_back(&decompress(&layer.path)), expected);
    }

    #[test]
    fn zstd_and_uncompressed_blobs_hold_the_same_tar() {
        let (temp, input) = sources();
        let pack = |kind, level, dir: &str| {
            let compression = LayerCompression { kind, level };
            let out = temp.path().join(dir);
            let layer = pack_layer(
                std::slice::from_ref(&input),
                Parents::Written,
                (0, 0, EPOCH),
                compression,
                &out,
            )
            .unwrap();
            let blob = fs::read(&layer.path).unwrap();
            assert_eq!(layer.digest, sha256_digest(&blob), "{kind}");
            assert_eq!(layer.size, blob.len() as u64, "{kind}");
            assert_eq!(layer.media_type, compression.media_type());
            assert_eq!(fs::read_dir(&out).unwrap().count(), 1, "{kind}");
            (layer, blob)
        };
        let (gzip, _) = pack(Kind::Gzip, None, "gzip");
        let tar = decompress(&gzip.path);
        let (zstd, zstd_blob) = pack(Kind::Zstd, None, "zstd");
        assert_eq!(zstd::decode_all(&zstd_blob[..]).unwrap(), tar);
        assert_eq!(zstd.diff_id, gzip.diff_id);
        assert!(zstd.path.to_string_lossy().ends_with(".tar.zst"));
        assert_eq!(
            zstd.media_type,
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        // zstd's magic number, and the same bytes every time.
        assert_eq!(&zstd_blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(pack(Kind::Zstd, None, "zstd-again").0.digest, zstd.digest);
        let (plain, plain_blob) = pack(Kind::Uncompressed, None, "plain");
        assert_eq!(plain_blob, tar);
        assert_eq!(plain.digest, plain.diff_id);
        assert_eq!(plain.diff_id, gzip.diff_id);
        assert_eq!(plain.media_type, "application/vnd.oci.image.layer.v1.tar");
        // A level changes the blob, never the tar.
        let (best, _) = pack(Kind::Zstd, Some(19), "zstd-19");
        assert_eq!(best.diff_id, zstd.diff_id);
        let (fast, _) = pack(Kind::Gzip, Some(1), "gzip-1");
        assert_eq!(decompress(&fast.path), tar);
        assert_ne!(fast.digest, gzip.digest);
        // The one-layer image names the layer's media type.
        let image = layer_image(&zstd, &Platform::parse("linux/amd64").unwrap());
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }

    #[test]
    fn digests_and_size_describe_the_blob() {
        let (temp, input) = sources();
        let out = temp.path().join("blobs");
        let layer = pack_layer(&[input], Parents::Written, (0, 0, EPOCH), GZIP, &out).unwrap();
        let blob = fs::read(&layer.path).unwrap();
        assert_eq!(layer.digest, sha256_digest(&blob));
        assert_eq!(layer.diff_id, sha256_digest(&decompress(&layer.path)));
        assert_eq!(layer.size, blob.len() as u64);
        let hex = layer.digest.strip_prefix("sha256:").unwrap();
        assert_eq!(layer.path, out.join(format!("sha256-{hex}.tar.gz")));
        // Nothing else is left in the directory: the temp file became the blob.
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
        // A fixed gzip header: magic, deflate, no flags, mtime 0, XFL 0 (level 6), OS unknown.
        assert_eq!(&blob[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_the_epoch_matters() {
        let (temp, input) = sources();
        let first = pack_layer(
            std::slice::from_ref(&input),
            Parents::Written,
            (0, 0, EPOCH),
            GZIP,
            &temp.path().join("one"),
        )
        .unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        for path in ["target/app", "README.md", "conf/main.toml", "conf/nested"] {
            File::open(input.root.join(path))
                .unwrap()
                .set_modified(later)
                .unwrap();
        }
        let second = pack_layer(
            std::slice::from_ref(&input),
            Parents::Written,
            (0, 0, EPOCH),
            GZIP,
            &temp.path().join("two"),
        )
        .unwrap();
        assert_eq!(
            (&first.digest, &first.diff_id),
            (&second.digest, &second.diff_id)
        );
        assert_eq!(
            fs::read(&first.path).unwrap(),
            fs::read(&second.path).unwrap()
        );
        let other = pack_layer(
            std::slice::from_ref(&input),
            Parents::Written,
            (0, 0, EPOCH + 1),
            GZIP,
            &temp.path().join("two"),
        )
        .unwrap();
        assert_ne!(other.digest, first.digest);
        assert_ne!(other.diff_id, first.diff_id);
        // Before 1970 clamps to 0, like an epoch of 0.
        let negative = pack_layer(
            std::slice::from_ref(&input),
            Parents::Written,
            (0, 0, -5),
            GZIP,
            &temp.path().join("three"),
        )
        .unwrap();
        let zero = pack_layer(
            &[input],
            Parents::Written,
            (0, 0, 0),
            GZIP,
            &temp.path().join("three"),
        )
        .unwrap();
        assert_eq!(negative.digest, zero.digest);
        assert!(
            read_back(&decompress(&zero.path))
                .iter()
                .all(|entry| entry.mtime == 0)
        );
    }

    /// The tree of `entries` from one input rooted at `root`, as paths and nodes.
    fn tree(root: &Path, entries: Vec<CopyEntry>) -> Result<Vec<(String, Node)>, PackError> {
        let input = LocalInput {
            name: "context".to_owned(),
            root: root.to_owned(),
            entries,
        };
        let tree = Tree::from_inputs(&[input])?;
        Ok(tree
            .nodes
            .into_iter()
            .map(|(path, node)| (path.to_str().unwrap().to_owned(), node))
            .collect())
    }

    #[test]
    fn later_entries_replace_earlier_ones_and_files_go_into_directories() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        write(&root.join("one"), b"1", 0o644);
        write(&root.join("two"), b"2", 0o600);
        write(&root.join("bin/tool"), b"t", 0o755);
        let nodes = tree(
            root,
            vec![
                entry("one", "/srv/file", None),
                entry("two", "/srv/file", None),
                // `/srv` is a directory of this layer: the file goes into it, as BuildKit's copy does.
                entry("one", "/srv", Some(0o4755)),
                // A directory's contents at the root: no entry for `/` itself.
                entry("bin", "/", None),
                entry("./bin//tool", "/usr/../sbin/./", None),
            ],
        );
        let file = |source: &str, mode| Node::File {
            source: root.join(source),
            mode,
        };
        let created = Node::Dir {
            mode: 0o755,
            created: true,
        };
        assert_eq!(
            nodes.unwrap(),
            vec![
                ("sbin".to_owned(), created.clone()),
                ("sbin/tool".to_owned(), file("bin/tool", 0o755)),
                ("srv".to_owned(), created),
                ("srv/file".to_owned(), file("two", 0o600)),
                ("srv/one".to_owned(), file("one", 0o4755)),
                ("tool".to_owned(), file("bin/tool", 0o755)),
            ]
        );
    }

    #[test]
    fn overrides_reach_nested_entries_and_links_are_kept_or_copied() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("ctx");
        write(&root.join("tree/sub/file"), b"f", 0o600);
        fs::set_permissions(root.join("tree/sub"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::hard_link(root.join("tree/sub/file"), root.join("tree/hard")).unwrap();
        let far = format!("/{LONG_DIR}/{LONG_DIR}/target");
        symlink(&far, root.join("tree/far")).unwrap();
        symlink("tree/hard", root.join("alias")).unwrap();
        let input = LocalInput {
            name: "context".to_owned(),
            root,
            entries: vec![
                entry("tree", "/srv/", Some(0o2750)),
                // A symlink source is copied as the symlink (no following), into the directory.
                entry("alias", "/srv", Some(0o600)),
            ],
        };
        let layer = pack_layer(
            &[input],
            Parents::Written,
            (1000, 1001, EPOCH),
            GZIP,
            &temp.path().join("out"),
        )
        .unwrap();
        let link = |path: &str, target: &str| Seen {
            link: Some(target.to_owned()),
            ..seen(path, EntryType::Symlink, 0o777, b"")
        };
        assert_eq!(
            read_back(&decompress(&layer.path)),
            vec![
                dir("srv/", 0o755),
                link("srv/alias", "tree/hard"),
                link("srv/far", &far),
                file("srv/hard", 0o2750, b"f"),
                dir("srv/sub/", 0o2750),
                file("srv/sub/file", 0o2750, b"f"),
            ]
        );
    }

    #[test]
    fn a_directory_copied_again_merges_and_sets_the_modes() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        write(&root.join("a/sub/one"), b"1", 0o644);
        write(&root.join("b/sub/two"), b"2", 0o644);
        fs::set_permissions(root.join("b/sub"), fs::Permissions::from_mode(0o711)).unwrap();
        let nodes = tree(
            root,
            vec![entry("a", "/app", Some(0o700)), entry("b", "/app", None)],
        )
        .unwrap();
        let file = |source: &str, mode| Node::File {
            source: root.join(source),
            mode,
        };
        assert_eq!(
            nodes,
            vec![
                (
                    "app".to_owned(),
                    Node::Dir {
                        mode: 0o755,
                        created: true
                    }
                ),
                (
                    "app/sub".to_owned(),
                    Node::Dir {
                        mode: 0o711,
                        created: false
                    }
                ),
                ("app/sub/one".to_owned(), file("a/sub/one", 0o700)),
                ("app/sub/two".to_owned(), file("b/sub/two", 0o644)),
            ]
        );
    }

    #[test]
    fn conflicts_in_the_layer_are_errors_naming_both_paths() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        write(&root.join("file"), b"f", 0o644);
        write(&root.join("dir/inner"), b"i", 0o644);
        write(&root.join("other/dir"), b"d", 0o644);
        // A file of a copied directory where an earlier entry made a directory.
        let error = tree(
            root,
            vec![entry("dir", "/y/dir", None), entry("other", "/y", None)],
        )
        .unwrap_err();
        assert!(
            matches!(&error, PackError::ReplacesDirectory { image_path, .. } if image_path == Path::new("y/dir")),
            "{error:?}"
        );
        // A directory of a copied directory where an earlier entry put a file.
        let error = tree(
            root,
            vec![entry("other", "/y", None), entry(".", "/y", None)],
        )
        .unwrap_err();
        assert!(
            matches!(&error, PackError::NotADirectory { image_path, .. } if image_path == Path::new("y/dir")),
            "{error:?}"
        );
        // A parent that an earlier entry made a file.
        let error = tree(
            root,
            vec![entry("file", "/x/f", None), entry("file", "/x/f/g", None)],
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot copy {} into the image: /x/f is a file or symlink in this layer, not a directory",
                root.join("file").display()
            )
        );
    }

    #[test]
    fn sources_must_exist_stay_inside_and_be_files_dirs_or_links() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        write(&root.join("real/file"), b"f", 0o644);
        symlink("real", root.join("via")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();

        let error = tree(root, vec![entry("real/missing", "/m", None)]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the source {} does not exist",
                root.join("real/missing").display()
            )
        );
        let error = pack_layer(
            &[LocalInput {
                name: "context".to_owned(),
                root: root.to_owned(),
                entries: vec![entry("gone", "/g", None)],
            }],
            Parents::Written,
            (0, 0, EPOCH),
            GZIP,
            &root.join("out"),
        )
        .unwrap_err();
        assert!(
            matches!(&error, PackError::MissingSource { path } if *path == root.join("gone")),
            "{error:?}"
        );
        let error = tree(root, vec![entry("real/../../etc/passwd", "/p", None)]).unwrap_err();
        assert!(matches!(error, PackError::OutsideRoot { .. }), "{error:?}");
        let error = tree(root, vec![entry("via/file", "/v", None)]).unwrap_err();
        assert!(
            matches!(&error, PackError::SymlinkInPath { link, .. } if *link == root.join("via")),
            "{error:?}"
        );
        let error = tree(root, vec![entry("socket", "/s", None)]).unwrap_err();
        assert!(
            matches!(error, PackError::UnsupportedType { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_file_must_be_as_long_as_its_header_says() {
        let copy = |content: &[u8], length: u64| {
            let mut reader = ExactLength::new(content, length);
            let mut out = Vec::new();
            let result = io::copy(&mut reader, &mut out);
            (result.map_err(|_| ()), reader.failure, out)
        };
        let (result, failure, out) = copy(b"12345", 5);
        assert_eq!((result, out), (Ok(5), b"12345".to_vec()));
        assert!(failure.is_none());
        let (result, failure, _) = copy(b"123", 5);
        assert!(result.is_err() && matches!(failure, Some(ReadFailure::SizeChanged)));
        let (result, failure, out) = copy(b"123456", 5);
        assert!(result.is_err() && matches!(failure, Some(ReadFailure::SizeChanged)));
        assert_eq!(out, b"12345", "never more than the header's length");
    }

    #[test]
    fn a_file_that_grows_while_packed_is_an_error_naming_it() {
        // A kernel file: 0 bytes by its metadata, then content when read, as a file being written would be.
        let temp = tempfile::tempdir().unwrap();
        let input = LocalInput {
            name: "proc".to_owned(),
            root: PathBuf::from("/proc/self"),
            entries: vec![entry("status", "/status", None)],
        };
        let out = temp.path().join("out");
        let error = pack_layer(&[input], Parents::Written, (0, 0, EPOCH), GZIP, &out).unwrap_err();
        assert!(
            matches!(&error, PackError::SizeChanged { path, expected: 0 } if path == Path::new("/proc/self/status")),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("/proc/self/status changed size while it was packed")
        );
        assert_eq!(
            fs::read_dir(&out).unwrap().count(),
            0,
            "no partial blob is left"
        );
    }

    fn packed(digest: &str, diff_id: &str, size: u64) -> PackedLayer {
        PackedLayer {
            digest: digest.to_owned(),
            diff_id: diff_id.to_owned(),
            size,
            path: PathBuf::from("/unused"),
            media_type: GZIP.media_type(),
        }
    }

    #[test]
    fn the_layer_image_is_stable_json() {
        let layer = packed("sha256:aaaa", "sha256:bbbb", 1234);
        let arm = layer_image(&layer, &Platform::parse("linux/arm/v7").unwrap());
        assert_eq!(
            String::from_utf8(arm.config.clone()).unwrap(),
            r#"{"architecture":"arm","config":{},"os":"linux","rootfs":{"diff_ids":["sha256:bbbb"],"type":"layers"},"variant":"v7"}"#
        );
        assert_eq!(arm.config_digest, sha256_digest(&arm.config));
        assert_eq!(
            String::from_utf8(arm.manifest.clone()).unwrap(),
            format!(
                concat!(
                    r#"{{"config":{{"digest":"{}","mediaType":"application/vnd.oci.image.config.v1+json","size":{}}},"#,
                    r#""layers":[{{"digest":"sha256:aaaa","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1234}}],"#,
                    r#""mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
                ),
                arm.config_digest,
                arm.config.len()
            )
        );
        assert_eq!(arm.manifest_digest, sha256_digest(&arm.manifest));
        let amd = layer_image(&layer, &Platform::parse("linux/amd64").unwrap());
        assert_eq!(
            String::from_utf8(amd.config).unwrap(),
            r#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"diff_ids":["sha256:bbbb"],"type":"layers"}}"#
        );
        assert_eq!(
            amd.config_digest,
            "sha256:".to_owned() + &hex::encode(Sha256::digest(
                br#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"diff_ids":["sha256:bbbb"],"type":"layers"}}"#
            ))
        );
        assert_eq!(
            layer_image(&layer, &Platform::parse("linux/arm/v7").unwrap()),
            arm
        );
    }

    #[test]
    fn over_something_below_created_directories_are_left_out() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("ctx");
        write(&root.join("app"), b"app", 0o644);
        write(&root.join("conf/sub/file"), b"c", 0o600);
        let input = LocalInput {
            name: "context".to_owned(),
            root,
            entries: vec![
                entry("app", "/usr/local/bin/app", Some(0o755)),
                entry("conf", "/etc/app", None),
            ],
        };
        let out = temp.path().join("out");
        let layer = pack_layer(&[input], Parents::Omitted, (0, 0, EPOCH), GZIP, &out).unwrap();
        // `/etc/app`, `/usr`, `/usr/local`, `/usr/local/bin` are the base's (or made when the layer is applied);
        // what was copied is all there, a copied directory included.
        let paths: Vec<String> = read_back(&decompress(&layer.path))
            .into_iter()
            .map(|seen| seen.path)
            .collect();
        assert_eq!(
            paths,
            ["etc/app/sub/", "etc/app/sub/file", "usr/local/bin/app"]
        );
    }

    #[test]
    fn entries_come_in_directory_walk_order() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        for name in ["a/b", "a-b", "a.txt", "B"] {
            write(&root.join("src").join(name), b"", 0o644);
        }
        let paths: Vec<String> = tree(root, vec![entry("src", "/", None)])
            .unwrap()
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        // A directory's contents right after it, each directory's entries byte-sorted: not a plain string sort,
        // which would put `a-b` and `a.txt` before `a/`.
        assert_eq!(paths, ["B", "a", "a/b", "a-b", "a.txt"]);
    }
}
