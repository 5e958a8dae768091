//! Where built images go: an OCI archive under `target/hive/` (the default), the Docker image store (`--load`), a
//! registry (`--push`), or a raw exporter spec (`--output type=…`), and which BuildKit exporter serves each on the
//! daemon at hand.

mod attestations;
mod cleanup;
mod docker;
mod docker_manifest;
mod errors;
mod index;
mod load;
mod registry;

pub(crate) use attestations::{
    AttestationAsk, AttestationsUnsupported, Settled, settle_attestations,
};
pub(crate) use cleanup::{
    RemoveDirOnDrop, RemoveOnDrop, load_archive_path, pack_dir_path, remove_stale,
};
pub(crate) use docker::{check_load_target, docker_endpoint, finish};
pub(crate) use errors::DestinationError;
pub(crate) use index::{IndexError, index_manifests_from_archive};
pub(crate) use load::{LoadError, LoadPlatforms, check_multi_platform, load_platforms};
pub(crate) use registry::{
    PushedImage, RegistryError, annotate_fingerprint, index_manifests_from_registry, index_summary,
    list_tags, pushed_image, retag, tag_digest,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::buildkit::{DaemonKind, ExporterSpec, LayerCompression};
use hive_build::Compression;

/// One requested destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// An OCI image layout tarball (the default): `target/hive/<image>.oci.tar`.
    OciArchive,
    /// The Docker image store.
    Load,
    /// The registry named by the image's repository.
    Push,
    /// `--output type=…,k=v`, passed to the exporter.
    Raw {
        /// Exporter type.
        kind: String,
        /// Its attributes, `dest` excepted.
        attrs: BTreeMap<String, String>,
        /// `dest=` for the tarball exporters.
        dest: Option<PathBuf>,
    },
}

/// The destinations the flags ask for; no flag means the OCI archive.
pub(crate) fn destinations(
    load: bool,
    push: bool,
    outputs: &[String],
) -> Result<Vec<Destination>, DestinationError> {
    let mut list = Vec::new();
    if load {
        list.push(Destination::Load);
    }
    if push {
        list.push(Destination::Push);
    }
    for spec in outputs {
        list.push(parse_output(spec)?);
    }
    if list.is_empty() {
        list.push(Destination::OciArchive);
    }
    let tarballs = list
        .iter()
        .filter(|destination| writes_file(destination))
        .count();
    if tarballs > 1 {
        return Err(DestinationError::TwoFilesPerBuild);
    }
    Ok(list)
}

fn writes_file(destination: &Destination) -> bool {
    match destination {
        Destination::OciArchive => true,
        Destination::Raw { dest, .. } => dest.is_some(),
        Destination::Load | Destination::Push => false,
    }
}

/// Parses a buildx-style output spec: `type=oci,dest=out.tar`, `type=image,push=true`, `type=registry`.
pub(crate) fn parse_output(spec: &str) -> Result<Destination, DestinationError> {
    let mut attrs = BTreeMap::new();
    for field in spec
        .split(',')
        .map(str::trim)
        .filter(|field| !field.is_empty())
    {
        let Some((key, value)) = field.split_once('=') else {
            return Err(DestinationError::NotKeyValue {
                spec: spec.to_owned(),
                field: field.to_owned(),
            });
        };
        if attrs
            .insert(key.trim().to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(DestinationError::KeyTwice {
                spec: spec.to_owned(),
                key: key.to_owned(),
            });
        }
    }
    let Some(kind) = attrs.remove("type") else {
        return Err(DestinationError::NoType(spec.to_owned()));
    };
    let dest = attrs.remove("dest").map(PathBuf::from);
    match kind.as_str() {
        "oci" | "docker" | "tar" => {
            if dest.is_none() {
                return Err(DestinationError::NeedsDest {
                    spec: spec.to_owned(),
                    kind,
                });
            }
            Ok(Destination::Raw { kind, attrs, dest })
        }
        "registry" => {
            attrs.insert("push".to_owned(), "true".to_owned());
            Ok(Destination::Raw {
                kind: "image".to_owned(),
                attrs,
                dest: None,
            })
        }
        "image" | "moby" => Ok(Destination::Raw {
            kind,
            attrs,
            dest: None,
        }),
        "local" => Err(DestinationError::LocalUnsupported(spec.to_owned())),
        _ => Err(DestinationError::UnknownType {
            spec: spec.to_owned(),
            kind,
        }),
    }
}

/// The default archive path of an image.
pub(crate) fn archive_path(target_dir: &Path, image: &str) -> PathBuf {
    target_dir.join("hive").join(format!("{image}.oci.tar"))
}

/// The times of an image's files, as its exporters are to make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Times {
    /// SOURCE_DATE_EPOCH, seconds.
    pub(crate) epoch: i64,
    /// Whether a layer may hold files dated at build time (RUN steps write them): the exporter then clamps them to
    /// the epoch. Our own layers are dated at the epoch already, and rewriting costs the daemon a decompress and a
    /// recompress of every layer.
    pub(crate) rewrite: bool,
}

/// Attributes that make every image exporter reproducible (BuildKit ignores attributes it does not know).
fn reproducible(attrs: &mut BTreeMap<String, String>, times: Times) {
    attrs.insert("source-date-epoch".to_owned(), times.epoch.to_string());
    if times.rewrite {
        attrs.insert("rewrite-timestamp".to_owned(), "true".to_owned());
    }
}

/// The moby exporter unpacks into Docker's store, which BuildKit refuses to combine with `rewrite-timestamp`; our
/// own layer's times are set to SOURCE_DATE_EPOCH by the copy itself.
fn reproducible_unpacked(attrs: &mut BTreeMap<String, String>, times: Times) {
    attrs.insert("source-date-epoch".to_owned(), times.epoch.to_string());
}

/// What to do after the solve, for outputs BuildKit cannot finish on this daemon by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum After {
    /// Load this `oci` archive into Docker (a standalone buildkitd has no way into Docker's store), then delete it.
    /// Docker with the containerd image store loads its whole index; any other loads the host's platform, which a
    /// `manifest.json` added before the load names.
    DockerLoad(PathBuf),
    /// Push these references from Docker's store (Docker without the containerd image store cannot push from
    /// BuildKit), as buildx does.
    DockerPush(Vec<String>),
}

/// Every exporter of one image's solve, the file they write, and the steps that finish the outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExportPlan {
    /// The exporters.
    pub(crate) exporters: Vec<ExporterSpec>,
    /// The file written through the session, if any.
    pub(crate) file: Option<PathBuf>,
    /// What runs after the solve.
    pub(crate) after: Vec<After>,
}

/// The export plan of one image for all its destinations on this daemon. `load_archive` is where a standalone
/// buildkitd's `--load` goes before Docker reads it.
pub(crate) fn export_plan(
    destinations: &[Destination],
    references: &[String],
    annotations: &BTreeMap<String, String>,
    daemon: DaemonKind,
    archive: &Path,
    load_archive: &Path,
    times: Times,
) -> Result<ExportPlan, DestinationError> {
    let mut plan = ExportPlan::default();
    let has_moby = |plan: &ExportPlan| {
        plan.exporters
            .iter()
            .any(|exporter| exporter.kind == "moby")
    };
    for destination in destinations {
        let (exporter, file) = match (destination, daemon) {
            (Destination::Load, DaemonKind::Buildkitd) => {
                // `oci`, not `docker`: BuildKit's docker exporter refuses multi-platform results, and an OCI
                // archive with a manifest.json added (`add_docker_manifest`) loads into every Docker.
                let mut attrs = BTreeMap::from([("name".to_owned(), references.join(","))]);
                reproducible(&mut attrs, times);
                plan.after
                    .push(After::DockerLoad(load_archive.to_path_buf()));
                (
                    ExporterSpec {
                        kind: "oci".to_owned(),
                        attrs,
                    },
                    Some(load_archive.to_path_buf()),
                )
            }
            (Destination::Push, daemon) if !daemon.has_image_exporters() => {
                plan.after.push(After::DockerPush(references.to_vec()));
                if has_moby(&plan) {
                    continue;
                }
                exporter(
                    &Destination::Load,
                    references,
                    annotations,
                    daemon,
                    archive,
                    times,
                )?
            }
            (Destination::Load, _) if has_moby(&plan) => continue,
            _ => exporter(destination, references, annotations, daemon, archive, times)?,
        };
        if let Some(file) = file {
            if plan.file.is_some() {
                return Err(DestinationError::TwoFilesPerImage);
            }
            plan.file = Some(file);
        }
        plan.exporters.push(exporter);
    }
    Ok(plan)
}

/// Checks, once right after connecting, that this daemon has an exporter for every destination: a mismatch is
/// one error before any image starts, not one per image.
pub(crate) fn check_exporters(
    destinations: &[Destination],
    daemon: DaemonKind,
) -> Result<(), DestinationError> {
    let any = Path::new("");
    let times = Times {
        epoch: 0,
        rewrite: false,
    };
    export_plan(destinations, &[], &BTreeMap::new(), daemon, any, any, times).map(drop)
}

/// Checks, once right after connecting, that the daemon can keep each image's compression (`images`: name and
/// compression) for these destinations: Docker's classic store (Docker 20.10, or any Docker without the containerd
/// image store) keeps only what it can push gzip'd.
pub(crate) fn check_compression<'a>(
    destinations: &[Destination],
    daemon: DaemonKind,
    images: impl IntoIterator<Item = (&'a str, LayerCompression)>,
) -> Result<(), DestinationError> {
    if daemon.has_image_exporters() || destinations.is_empty() {
        return Ok(());
    }
    let mut images: Vec<(&str, LayerCompression)> = images.into_iter().collect();
    images.sort_by_key(|(name, _)| *name);
    match images
        .into_iter()
        .find(|(_, compression)| compression.kind != Compression::Gzip)
    {
        Some((image, compression)) => Err(DestinationError::CompressionUnsupported {
            image: image.to_owned(),
            compression: compression.kind,
            legacy: if daemon == DaemonKind::DockerLegacy {
                " (and its BuildKit, v0.8, has no zstd)"
            } else {
                ""
            },
        }),
        None => Ok(()),
    }
}

/// Tells every image-making exporter of `plan` the image's compression: `compression`, `compression-level` and
/// `force-compression` for the layers the daemon compresses itself (RUN steps, copies where it takes no packed
/// layers, and the base's, which are recompressed so that the whole image is as asked). gzip at its default level
/// is BuildKit's own default: nothing is added, so nothing is recompressed. A raw `--output` keeps what it says.
pub(crate) fn set_compression(plan: &mut ExportPlan, compression: LayerCompression) {
    if compression == LayerCompression::default() {
        return;
    }
    let mut attrs =
        BTreeMap::from([("compression".to_owned(), compression.kind.name().to_owned())]);
    if let Some(level) = compression.level {
        attrs.insert("compression-level".to_owned(), level.to_string());
    }
    if compression.kind != Compression::Gzip {
        attrs.insert("force-compression".to_owned(), "true".to_owned());
    }
    for exporter in &mut plan.exporters {
        if !matches!(exporter.kind.as_str(), "image" | "oci" | "docker" | "moby") {
            continue;
        }
        for (key, value) in &attrs {
            exporter
                .attrs
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }
}

/// An exporter for one destination of one image, and the file it writes (through the session), if any. The
/// image's `annotations` go on its manifest (`annotation.KEY`) with every exporter that makes an image.
pub(crate) fn exporter(
    destination: &Destination,
    references: &[String],
    annotations: &BTreeMap<String, String>,
    daemon: DaemonKind,
    archive: &Path,
    times: Times,
) -> Result<(ExporterSpec, Option<PathBuf>), DestinationError> {
    let names = references.join(",");
    let mut attrs = BTreeMap::new();
    let (kind, file) = match destination {
        Destination::OciArchive => {
            if !daemon.has_image_exporters() {
                return Err(DestinationError::NoOciExporter);
            }
            attrs.insert("name".to_owned(), names);
            attrs.insert("oci-mediatypes".to_owned(), "true".to_owned());
            reproducible(&mut attrs, times);
            ("oci", Some(archive.to_path_buf()))
        }
        Destination::Load => {
            // A standalone buildkitd loads into Docker through an archive, which `export_plan` sets up.
            assert!(
                daemon.is_docker(),
                "--load on buildkitd goes through export_plan"
            );
            attrs.insert("name".to_owned(), names);
            reproducible_unpacked(&mut attrs, times);
            ("moby", None)
        }
        Destination::Push => {
            if !daemon.has_image_exporters() {
                return Err(DestinationError::NoPushExporter);
            }
            attrs.insert("name".to_owned(), names);
            attrs.insert("push".to_owned(), "true".to_owned());
            attrs.insert("oci-mediatypes".to_owned(), "true".to_owned());
            // Straight to the registry: not also an image in the daemon's own store (`--load` is for that), which
            // costs a cold push of 20 two-platform images about 15%.
            attrs.insert("store".to_owned(), "false".to_owned());
            reproducible(&mut attrs, times);
            ("image", None)
        }
        Destination::Raw {
            kind,
            attrs: raw,
            dest,
        } => {
            if !daemon.has_image_exporters() && matches!(kind.as_str(), "oci" | "docker" | "image")
            {
                return Err(DestinationError::NoSuchExporter(kind.clone()));
            }
            if kind != "tar" && !raw.contains_key("name") {
                attrs.insert("name".to_owned(), names);
            }
            match kind.as_str() {
                "tar" => {}
                "moby" => reproducible_unpacked(&mut attrs, times),
                _ if raw.get("unpack").is_some_and(|value| value == "true") => {
                    reproducible_unpacked(&mut attrs, times)
                }
                _ => reproducible(&mut attrs, times),
            }
            attrs.extend(raw.iter().map(|(key, value)| (key.clone(), value.clone())));
            (kind.as_str(), dest.clone())
        }
    };
    if kind != "tar" {
        for (key, value) in annotations {
            // A raw `--output …,annotation.KEY=…` wins over the definitions.
            attrs
                .entry(format!("annotation.{key}"))
                .or_insert_with(|| value.clone());
        }
    }
    Ok((
        ExporterSpec {
            kind: kind.to_owned(),
            attrs,
        },
        file,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_oci_archive() {
        assert_eq!(
            destinations(false, false, &[]).unwrap(),
            [Destination::OciArchive]
        );
        assert_eq!(
            destinations(true, true, &[]).unwrap(),
            [Destination::Load, Destination::Push]
        );
    }

    #[test]
    fn output_specs() {
        let oci = parse_output("type=oci,dest=out.tar,compression=zstd").unwrap();
        assert_eq!(
            oci,
            Destination::Raw {
                kind: "oci".into(),
                attrs: BTreeMap::from([("compression".into(), "zstd".into())]),
                dest: Some("out.tar".into())
            }
        );
        let Destination::Raw { kind, attrs, .. } = parse_output("type=registry").unwrap() else {
            panic!()
        };
        assert_eq!((kind.as_str(), attrs["push"].as_str()), ("image", "true"));
        for (spec, fragment) in [
            ("dest=x", "has no type"),
            ("type=oci", "needs dest=PATH"),
            ("type=local,dest=x", "not supported yet"),
            ("type=zip", "unknown type `zip`"),
            ("type=oci,dest", "is not KEY=VALUE"),
            ("type=oci,type=tar", "given twice"),
        ] {
            let err = parse_output(spec).unwrap_err();
            assert!(err.to_string().contains(fragment), "{spec}: {err}");
        }
        let err = destinations(
            false,
            false,
            &["type=tar,dest=a".into(), "type=oci,dest=b".into()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("only one output"), "{err}");
    }

    const AT_7: Times = Times {
        epoch: 7,
        rewrite: false,
    };

    #[test]
    fn exporters_follow_the_daemon() {
        let refs = vec![
            "localhost:5000/a:1".to_owned(),
            "localhost:5000/a:latest".to_owned(),
        ];
        let archive = Path::new("/ws/target/hive/a.oci.tar");
        let annotations = BTreeMap::from([("org.example.doc".to_owned(), "https://x".to_owned())]);
        let (oci, file) = exporter(
            &Destination::OciArchive,
            &refs,
            &annotations,
            DaemonKind::DockerContainerd,
            archive,
            AT_7,
        )
        .unwrap();
        assert_eq!(oci.kind, "oci");
        assert_eq!(
            oci.attrs["name"],
            "localhost:5000/a:1,localhost:5000/a:latest"
        );
        assert_eq!(oci.attrs["source-date-epoch"], "7");
        assert!(
            !oci.attrs.contains_key("rewrite-timestamp"),
            "our layers are dated already"
        );
        let (with_steps, _) = exporter(
            &Destination::OciArchive,
            &refs,
            &annotations,
            DaemonKind::DockerContainerd,
            archive,
            Times {
                rewrite: true,
                ..AT_7
            },
        )
        .unwrap();
        assert_eq!(with_steps.attrs["rewrite-timestamp"], "true");
        assert_eq!(oci.attrs["annotation.org.example.doc"], "https://x");
        assert_eq!(file.as_deref(), Some(archive));
        let err = exporter(
            &Destination::OciArchive,
            &refs,
            &annotations,
            DaemonKind::DockerGraphDriver,
            archive,
            AT_7,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("containerd image store")
                && err.to_string().contains("--load"),
            "{err}"
        );
        let (load, _) = exporter(
            &Destination::Load,
            &refs,
            &annotations,
            DaemonKind::DockerGraphDriver,
            archive,
            AT_7,
        )
        .unwrap();
        assert_eq!(load.kind, "moby");
        let (push, file) = exporter(
            &Destination::Push,
            &refs,
            &annotations,
            DaemonKind::Buildkitd,
            archive,
            AT_7,
        )
        .unwrap();
        assert_eq!(
            (push.kind.as_str(), push.attrs["push"].as_str(), file),
            ("image", "true", None)
        );
        assert_eq!(push.attrs["annotation.org.example.doc"], "https://x");
        assert_eq!(push.attrs["store"], "false", "a push is not also stored");
        let tar = Destination::Raw {
            kind: "tar".into(),
            attrs: BTreeMap::new(),
            dest: Some("out.tar".into()),
        };
        let (tar, _) = exporter(
            &tar,
            &refs,
            &annotations,
            DaemonKind::Buildkitd,
            archive,
            AT_7,
        )
        .unwrap();
        assert!(!tar.attrs.contains_key("annotation.org.example.doc"));
    }

    #[test]
    fn compression_goes_to_the_image_exporters_and_a_raw_output_keeps_its_own() {
        let refs = vec!["localhost:5000/a:1".to_owned()];
        let raw = Destination::Raw {
            kind: "oci".into(),
            attrs: BTreeMap::from([("compression".into(), "gzip".into())]),
            dest: Some("x.tar".into()),
        };
        let plan = |compression| {
            let mut plan = export_plan(
                &[Destination::Push, raw.clone()],
                &refs,
                &BTreeMap::new(),
                DaemonKind::DockerContainerd,
                Path::new("/t/a.tar"),
                Path::new("/t/l.tar"),
                AT_7,
            )
            .unwrap();
            set_compression(&mut plan, compression);
            plan.exporters
        };
        let default = plan(LayerCompression::default());
        assert!(
            !default[0].attrs.contains_key("compression"),
            "gzip at its default level is BuildKit's default: {default:?}"
        );
        let zstd = plan(LayerCompression {
            kind: Compression::Zstd,
            level: Some(9),
        });
        let push = &zstd[0].attrs;
        assert_eq!(
            (
                push["compression"].as_str(),
                push["compression-level"].as_str(),
                push["force-compression"].as_str()
            ),
            ("zstd", "9", "true")
        );
        assert_eq!(zstd[1].attrs["compression"], "gzip", "the raw output's own");
        let gzip_9 = plan(LayerCompression {
            kind: Compression::Gzip,
            level: Some(9),
        });
        assert_eq!(gzip_9[0].attrs["compression-level"], "9");
        assert!(!gzip_9[0].attrs.contains_key("force-compression"));
    }

    #[test]
    fn a_classic_docker_store_refuses_other_compressions_before_the_build() {
        let zstd = LayerCompression {
            kind: Compression::Zstd,
            level: None,
        };
        let images = [("b", zstd), ("a", LayerCompression::default())];
        for daemon in [DaemonKind::DockerContainerd, DaemonKind::Buildkitd] {
            check_compression(&[Destination::Load], daemon, images).unwrap();
        }
        let err = check_compression(&[Destination::Load], DaemonKind::DockerLegacy, images)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("image `b` asks for zstd layers")
                && err.contains("v0.8, has no zstd")
                && err.contains("containerd image store"),
            "{err}"
        );
        let plain = [(
            "a",
            LayerCompression {
                kind: Compression::Uncompressed,
                level: None,
            },
        )];
        let err = check_compression(&[Destination::Push], DaemonKind::DockerGraphDriver, plain)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("asks for uncompressed layers") && !err.contains("v0.8"),
            "{err}"
        );
        let gzip = [("a", LayerCompression::default())];
        check_compression(&[Destination::Load], DaemonKind::DockerLegacy, gzip).unwrap();
    }

    #[test]
    fn export_plans_finish_what_the_daemon_cannot() {
        let refs = vec!["localhost:5000/a:1".to_owned()];
        let none = BTreeMap::new();
        let archive = Path::new("/t/hive/a.oci.tar");
        let load_archive = Path::new("/t/hive/.load/a.tar");
        let plan = |destinations: &[Destination], daemon| {
            export_plan(
                destinations,
                &refs,
                &none,
                daemon,
                archive,
                load_archive,
                AT_7,
            )
        };
        // Standalone buildkitd: an OCI archive, loaded into Docker afterwards.
        let load = plan(&[Destination::Load], DaemonKind::Buildkitd).unwrap();
        assert_eq!(load.exporters[0].kind, "oci");
        assert_eq!(load.file.as_deref(), Some(load_archive));
        assert_eq!(load.after, [After::DockerLoad(load_archive.to_path_buf())]);
        // Docker without the containerd store: one moby export, pushed through the Docker API.
        let both = plan(
            &[Destination::Load, Destination::Push],
            DaemonKind::DockerGraphDriver,
        )
        .unwrap();
        let kinds: Vec<&str> = both.exporters.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["moby"]);
        assert_eq!(both.after, [After::DockerPush(refs.clone())]);
        let push = plan(&[Destination::Push], DaemonKind::DockerGraphDriver).unwrap();
        assert_eq!(push.exporters[0].kind, "moby");
        // Docker with the containerd store does it all itself.
        let native = plan(
            &[Destination::Load, Destination::Push],
            DaemonKind::DockerContainerd,
        )
        .unwrap();
        assert!(native.after.is_empty());
        assert_eq!(native.exporters.len(), 2);
        // Two files from one solve cannot be.
        let err = plan(
            &[
                Destination::Load,
                Destination::Raw {
                    kind: "tar".into(),
                    attrs: BTreeMap::new(),
                    dest: Some("x".into()),
                },
            ],
            DaemonKind::Buildkitd,
        )
        .unwrap_err();
        assert!(err.to_string().contains("only one output"), "{err}");
    }
}
