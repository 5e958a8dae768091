//! Why the images cannot go where they were asked to.

use super::docker::DockerEndpoint;

/// Why the images cannot go where they were asked to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DestinationError {
    /// An `--output` field is not `KEY=VALUE`.
    #[error("--output `{spec}`: `{field}` is not KEY=VALUE")]
    NotKeyValue {
        /// The spec as given.
        spec: String,
        /// The field.
        field: String,
    },
    /// An `--output` key is given twice.
    #[error("--output `{spec}`: `{key}` is given twice")]
    KeyTwice {
        /// The spec as given.
        spec: String,
        /// The key.
        key: String,
    },
    /// An `--output` without `type=`.
    #[error("--output `{0}` has no type=… (oci, docker, tar, image, registry, moby)")]
    NoType(String),
    /// A tarball exporter without `dest=`.
    #[error("--output `{spec}`: type={kind} writes a tarball and needs dest=PATH")]
    NeedsDest {
        /// The spec as given.
        spec: String,
        /// The exporter type.
        kind: String,
    },
    /// `type=local`.
    #[error(
        "--output `{0}`: type=local is not supported yet; use type=tar,dest=FILE and unpack it"
    )]
    LocalUnsupported(String),
    /// An exporter type we do not know.
    #[error(
        "--output `{spec}`: unknown type `{kind}`; use oci, docker, tar, image, registry or moby"
    )]
    UnknownType {
        /// The spec as given.
        spec: String,
        /// The exporter type.
        kind: String,
    },
    /// Two outputs of a build write files.
    #[error("only one output per build can write a file (oci, docker or tar)")]
    TwoFilesPerBuild,
    /// Two outputs of an image write files.
    #[error(
        "only one output per image can write a file (oci, docker or tar; --load with a standalone buildkitd \
         writes one too)"
    )]
    TwoFilesPerImage,
    /// The default OCI archive on a daemon without the `oci` exporter.
    #[error(
        "this Docker daemon cannot write OCI archives: its BuildKit has only the moby, local and tar exporters. \
         Turn on Docker's containerd image store ({{\"features\":{{\"containerd-snapshotter\":true}}}} in \
         daemon.json), or use --load to load the images into Docker instead"
    )]
    NoOciExporter,
    /// `--push` on a Docker that cannot push from BuildKit.
    #[error(
        "this Docker daemon cannot push from BuildKit without the containerd image store: turn it on \
         ({{\"features\":{{\"containerd-snapshotter\":true}}}} in daemon.json), or use --load and `docker push`"
    )]
    NoPushExporter,
    /// A compression other than gzip where Docker's classic image store takes the layers (the moby exporter):
    /// it keeps them unpacked and pushes them gzip'd.
    #[error(
        "image `{image}` asks for {compression} layers, but this Docker daemon keeps images in its classic store,          which holds layers unpacked and pushes them gzip'd{legacy}: turn on Docker's containerd image store          ({{\"features\":{{\"containerd-snapshotter\":true}}}} in daemon.json), or use `compression = \"gzip\"`"
    )]
    CompressionUnsupported {
        /// The image.
        image: String,
        /// What it asks for.
        compression: hive_build::Compression,
        /// Said of Docker 20.10, whose BuildKit (v0.8) has no zstd at all.
        legacy: &'static str,
    },
    /// A raw `--output type=` the daemon does not have.
    #[error(
        "this Docker daemon has no `{0}` exporter: turn on Docker's containerd image store, or use type=moby / \
         type=tar"
    )]
    NoSuchExporter(String),
    /// `--load` with no Docker answering.
    #[error(
        "--load loads the images into Docker, but no Docker daemon answers at {endpoint}: {detail}"
    )]
    DockerUnreachable {
        /// Where we looked.
        endpoint: DockerEndpoint,
        /// What went wrong there (in the message, so not a `source`: the chain would print it twice).
        detail: crate::docker_api::DockerApiError,
    },
    /// An output that takes one platform, for a multi-platform image.
    #[error(
        "image `{image}` is built for {platforms}, but {output} on Docker without the containerd image store takes \
         one platform: use Docker with the containerd image store or a standalone buildkitd, or build \
         one platform with --platform"
    )]
    OnePlatformStore {
        /// The image's name.
        image: String,
        /// Its platforms, comma-separated.
        platforms: String,
        /// The output, as the user wrote it.
        output: &'static str,
    },
    /// Attestations asked for explicitly that this daemon cannot keep.
    #[error(transparent)]
    Attestations(#[from] super::AttestationsUnsupported),
    /// The archive `--load` goes through could not be made loadable (the cause is in the message, so not a
    /// `source`: the chain would print it twice).
    #[error("cannot prepare the image archive for Docker: {0}")]
    LoadArchive(super::IndexError),
    /// Docker refused a load or a push.
    #[error(transparent)]
    Docker(#[from] crate::docker_api::DockerApiError),
    /// The credentials for a push through Docker could not be read.
    #[error("cannot read the credentials for {reference}: {detail}")]
    Credentials {
        /// The reference pushed.
        reference: String,
        /// Why (in the message, so not a `source`).
        detail: String,
    },
    /// `DOCKER_HOST` names something other than a unix socket.
    #[error(
        "--load with a standalone BuildKit loads the images through Docker's unix socket, but DOCKER_HOST is `{0}`: \
         set it to unix:///path/to/docker.sock"
    )]
    DockerHostNotUnix(String),
}
