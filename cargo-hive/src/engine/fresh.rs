//! Up-to-date checks, as cargo's fingerprints: an image whose LLB, config, exporters and input files (by stat, as
//! BuildKit's own file sync decides) are what they were at its last successful build, and whose outputs are still
//! there unchanged, is not sent to BuildKit again. `--no-cache` turns this off; pushes are always rebuilt (the
//! registry's state is not ours to trust).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// The fingerprint of everything that decides an image's content and where it goes.
pub(crate) fn fingerprint(
    definition: &Llb,
    config: &[u8],
    exporters: &[ExporterSpec],
    inputs: &[&LocalInput],
) -> Result<String, JobError> {
    let mut hasher = Sha256::new();
    hasher.update(concat!("cargo-hive ", env!("CARGO_PKG_VERSION"), "\n"));
    for op in definition.ops() {
        hasher.update((op.len() as u64).to_le_bytes());
        hasher.update(op);
    }
    hasher.update((config.len() as u64).to_le_bytes());
    hasher.update(config);
    for exporter in exporters {
        let mut attrs: Vec<_> = exporter.attrs.iter().collect();
        attrs.sort();
        hasher.update(format!("exporter {} {attrs:?}\n", exporter.kind));
    }
    for input in inputs {
        for entry in &input.entries {
            stat_tree(&input.root.join(&entry.source), &mut hasher)?;
        }
    }
    Ok(hex::encode(hasher.finalize()))
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

/// The record of the last build, if its fingerprint matches, it names exactly the outputs this build expects (a
/// record of an archive elsewhere says nothing about the one expected here), and each is still as it left it.
pub(crate) async fn up_to_date(
    path: &Path,
    fingerprint: &str,
    expected: &[Expected],
    docker: Option<&Path>,
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
                Some(socket) => docker_id(socket, reference).await.as_deref() == Some(id.as_str()),
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
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(mut temp) = tempfile::NamedTempFile::new_in(dir) else {
        return;
    };
    let text = serde_json::to_string_pretty(record).expect("records serialize");
    if std::io::Write::write_all(&mut temp, text.as_bytes()).is_ok() {
        let _ = temp.persist(path);
    }
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

/// Docker's id of an image name, if Docker has it.
pub(crate) async fn docker_id(socket: &Path, reference: &str) -> Option<String> {
    let info = docker_api::get_json(
        socket,
        &format!("/images/{reference}/json"),
        std::time::Duration::from_secs(5),
    )
    .await
    .ok()?;
    info["Id"].as_str().map(str::to_owned)
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
        let definition =
            crate::buildkit::layout::definition(&crate::buildkit::layout::ImageLayout {
                platform: crate::plan::Platform::parse("linux/amd64").unwrap(),
                base: None,
                layers: vec![],
                steps: vec![],
                shared_key_hint: String::new(),
                epoch: 0,
                uid: 0,
                gid: 0,
            });
        let exporter = ExporterSpec {
            kind: "oci".into(),
            attrs: [("name".into(), "a".into())].into(),
        };
        let base = fingerprint(
            &definition,
            b"{}",
            std::slice::from_ref(&exporter),
            &[&input],
        )
        .unwrap();
        assert_eq!(
            base,
            fingerprint(
                &definition,
                b"{}",
                std::slice::from_ref(&exporter),
                &[&input]
            )
            .unwrap()
        );
        assert_ne!(
            base,
            fingerprint(
                &definition,
                b"{ }",
                std::slice::from_ref(&exporter),
                &[&input]
            )
            .unwrap()
        );
        let moby = ExporterSpec {
            kind: "moby".into(),
            ..exporter.clone()
        };
        assert_ne!(
            base,
            fingerprint(&definition, b"{}", &[moby], &[&input]).unwrap()
        );
        // A rewritten binary has a new mtime (and usually size): a new fingerprint.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(dir.path().join("app"), b"v2").unwrap();
        assert_ne!(
            base,
            fingerprint(&definition, b"{}", &[exporter], &[&input]).unwrap()
        );
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
            up_to_date(&path, "f", &expected, None).await,
            Some(record.clone())
        );
        assert_eq!(up_to_date(&path, "other", &expected, None).await, None);
        std::fs::write(&archive, b"changed").unwrap();
        assert_eq!(up_to_date(&path, "f", &expected, None).await, None);
        std::fs::remove_file(&archive).unwrap();
        assert_eq!(up_to_date(&path, "f", &expected, None).await, None);
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
            up_to_date(&path, "f", std::slice::from_ref(&here), None).await,
            None
        );
        let both = [Expected::Archive(elsewhere.clone()), here];
        assert_eq!(up_to_date(&path, "f", &both, None).await, None);
        let docker = [Expected::Docker("a:latest".into())];
        assert_eq!(up_to_date(&path, "f", &docker, None).await, None);
        let same = [Expected::Archive(elsewhere)];
        assert_eq!(up_to_date(&path, "f", &same, None).await, Some(record));
    }
}
