//! One image: its session (the binary and files served to the daemon), its gateway build (base resolved and
//! pinned, LLB solved, config returned), its exporters, and what came out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hive_build::plan::{Base, PlanImage};
use hive_proto::control::StatusRequest;
use sha2::{Digest, Sha256};

use super::fresh;
use crate::output::docker_api;
use crate::buildkit::gateway::{self, BuildRequest};
use crate::buildkit::layout::{
    self as layout, ConfigOverrides, CopyEntry, ImageLayout, LocalInput, PinnedBase,
};
use crate::buildkit::session::{DockerAuth, LocalDir, Session, SessionConfig, SessionError};
use crate::buildkit::{Buildkit, llb};
use crate::compile::Executable;
use crate::buildkit::DaemonKind;
use crate::output::{self, Destination};
use crate::progress::{Event, Progress};

/// What every image build shares.
pub(crate) struct BuildContext {
    /// The connection.
    pub(crate) buildkit: Buildkit,
    /// What the daemon can export.
    pub(crate) daemon: DaemonKind,
    /// Where images go.
    pub(crate) destinations: Vec<Destination>,
    /// SOURCE_DATE_EPOCH.
    pub(crate) epoch: i64,
    /// Cargo's target directory (archives go to `target/hive/`).
    pub(crate) target_dir: PathBuf,
    /// The workspace root (part of the shared keys).
    pub(crate) workspace_root: PathBuf,
    /// `--no-cache`.
    pub(crate) no_cache: bool,
    /// Where progress goes.
    pub(crate) progress: Progress,
    /// Every image of the plan by name (for `hive:` bases).
    pub(crate) images: BTreeMap<String, PlanImage>,
    /// What cargo built, by (package, bin target).
    pub(crate) executables: BTreeMap<(String, String), Executable>,
    /// `git rev-parse HEAD` of the workspace, for the `revision` label.
    pub(crate) revision: Option<String>,
    /// The bases, resolved once for all images.
    pub(crate) prepared: super::bases::Prepared,
}

/// One image of a `hive:` chain: what it adds on top of the one below.
struct ChainLayer {
    planned: PlanImage,
    executable: Executable,
    inputs: Vec<LocalInput>,
}

impl BuildContext {
    fn executable(&self, planned: &PlanImage) -> Result<Executable, String> {
        let key = (planned.package.name.clone(), planned.binary.target.clone());
        self.executables.get(&key).cloned().ok_or_else(|| {
            format!(
                "cargo did not produce the binary `{}` of package `{}` for image `{}`",
                planned.binary.target, planned.package.name, planned.name
            )
        })
    }

    /// The image and its `hive:` bases, bottom first, and the base at the bottom (scratch or a registry image).
    fn chain(&self, planned: &PlanImage) -> Result<(Base, Vec<ChainLayer>), String> {
        let mut layers = Vec::new();
        let mut current = planned.clone();
        loop {
            let executable = self.executable(&current)?;
            let inputs = local_inputs(&current, &executable)?;
            let base = current.base.clone();
            layers.push(ChainLayer {
                planned: current,
                executable,
                inputs,
            });
            match base {
                Base::Hive { image } => {
                    if layers.len() > self.images.len() {
                        return Err(format!(
                            "the `hive:` bases of image `{}` form a cycle",
                            planned.name
                        ));
                    }
                    current = self
                        .images
                        .get(&image)
                        .cloned()
                        .ok_or_else(|| format!("the base `hive:{image}` is not in the plan"))?;
                }
                root => {
                    layers.reverse();
                    return Ok((root, layers));
                }
            }
        }
    }
}

/// A built image.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BuiltImage {
    /// Image name.
    pub(crate) name: String,
    /// Full references.
    pub(crate) references: Vec<String>,
    /// Manifest digest.
    pub(crate) digest: String,
    /// Config digest.
    pub(crate) config_digest: Option<String>,
    /// Where it went (a path, "docker", "registry").
    pub(crate) output: String,
    /// The archive, when one was written.
    pub(crate) archive: Option<PathBuf>,
    /// File bytes our session sent to the daemon.
    pub(crate) bytes_sent: u64,
    /// How long the image took.
    pub(crate) duration: Duration,
}

/// A stable key per workspace and image: the daemon keeps each local source's last transfer under it.
fn shared_key(workspace_root: &Path, image: &str) -> String {
    let digest = Sha256::digest(format!("{}\0{image}", workspace_root.display()).as_bytes());
    format!("{image}-{}", &hex::encode(digest)[..16])
}

/// The local sources of an image: the binary's directory, and one per distinct directory of declared files.
fn local_inputs(planned: &PlanImage, executable: &Executable) -> Result<Vec<LocalInput>, String> {
    let bin_dir = executable
        .path
        .parent()
        .ok_or("the binary has no parent directory")?
        .to_path_buf();
    let bin_name = executable
        .path
        .file_name()
        .ok_or("the binary has no file name")?
        .to_string_lossy()
        .into_owned();
    let mut inputs = vec![LocalInput {
        name: format!("{}-bin", planned.name),
        root: bin_dir,
        entries: vec![CopyEntry {
            source: bin_name,
            destination: planned.binary.path.clone(),
            mode: Some(0o755),
        }],
    }];
    let mut by_dir: BTreeMap<PathBuf, Vec<CopyEntry>> = BTreeMap::new();
    for file in &planned.files {
        let source = Path::new(&file.source);
        let (Some(parent), Some(name)) = (source.parent(), source.file_name()) else {
            return Err(format!("`{}` is not a file or directory path", file.source));
        };
        if !source.exists() {
            return Err(format!(
                "`{}` (for {}) does not exist",
                file.source, file.destination
            ));
        }
        by_dir
            .entry(parent.to_path_buf())
            .or_default()
            .push(CopyEntry {
                source: name.to_string_lossy().into_owned(),
                destination: file.destination.clone(),
                mode: file.mode.map(|mode| mode.0),
            });
    }
    for (index, (root, entries)) in by_dir.into_iter().enumerate() {
        inputs.push(LocalInput {
            name: format!("{}-files-{index}", planned.name),
            root,
            entries,
        });
    }
    Ok(inputs)
}

fn overrides(planned: &PlanImage, epoch: i64, revision: Option<&str>) -> ConfigOverrides {
    let config = &planned.config;
    let mut labels = config.labels.clone();
    // The build's own facts, unless the definitions set them.
    labels
        .entry("org.opencontainers.image.created".to_owned())
        .or_insert_with(|| layout::rfc3339(epoch));
    if let Some(revision) = revision {
        labels
            .entry("org.opencontainers.image.revision".to_owned())
            .or_insert_with(|| revision.to_owned());
    }
    ConfigOverrides {
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        env: config.env.clone(),
        workdir: config.workdir.clone(),
        user: config.user.clone(),
        exposed_ports: config
            .exposed_ports
            .iter()
            .map(ToString::to_string)
            .collect(),
        labels,
    }
}

/// The image's platform as written (`os/arch[/variant]`); the host's when the plan names none.
fn platform_text(planned: &PlanImage) -> String {
    planned
        .platforms
        .first()
        .cloned()
        .unwrap_or_else(|| format!("linux/{}", llb::host_architecture()))
}

fn platform_of(planned: &PlanImage) -> hive_proto::pb::Platform {
    super::bases::platform(&platform_text(planned))
}

/// Explains a dynamically linked binary on a base that cannot run it.
fn loader_error(planned: &PlanImage, interpreter: &str, base: &str) -> String {
    format!(
        "the binary `{}` of image `{}` is dynamically linked (it needs the loader {interpreter}), but {base}: the \
         container would fail at start with \"no such file or directory\". Build a static binary (e.g. \
         `--target x86_64-unknown-linux-musl`), or use a base with glibc (e.g. `base = \
         \"localhost:5000/hive/glibc:latest\"` from scripts/buildkit-up, or a distroless/debian image)",
        planned.binary.target, planned.name
    )
}

/// Builds one image, reporting its progress.
pub(crate) async fn build_image(
    context: &BuildContext,
    planned: &PlanImage,
) -> Result<BuiltImage, String> {
    context.progress.event(Event::ImageStarted {
        image: planned.name.clone(),
        reference: planned.references.first().cloned().unwrap_or_default(),
        platforms: planned.platforms.clone(),
    });
    let result = build_one(context, planned).await;
    match &result {
        Ok(built) => {
            context.progress.event(Event::BytesSent {
                image: built.name.clone(),
                bytes_sent: built.bytes_sent,
            });
            context.progress.event(Event::ImageFinished {
                image: built.name.clone(),
                digest: Some(built.digest.clone()).filter(|digest| !digest.is_empty()),
                output: built.output.clone(),
            });
        }
        Err(error) => context.progress.event(Event::ImageFailed {
            image: planned.name.clone(),
            error: error.clone(),
        }),
    }
    result
}

async fn build_one(context: &BuildContext, planned: &PlanImage) -> Result<BuiltImage, String> {
    let started = Instant::now();
    let (root, chain) = context.chain(planned)?;
    let own = chain
        .last()
        .expect("a chain holds at least the image itself");
    let interpreter = own.executable.interpreter.clone();
    if let (Some(interpreter), Base::Scratch, 1) = (&interpreter, &root, chain.len()) {
        return Err(loader_error(
            planned,
            interpreter,
            "the base is `scratch`, which has no loader",
        ));
    }
    let platform_text = platform_text(planned);
    let resolved_base = match &root {
        Base::Image { reference } => {
            let key = (reference.clone(), platform_text.clone());
            match context.prepared.bases.get(&key) {
                Some(Ok(resolved)) => Some((reference.clone(), resolved.clone())),
                Some(Err(message)) => {
                    return Err(format!(
                        "cannot resolve the base image `{reference}`: {message}"
                    ));
                }
                None => {
                    return Err(format!(
                        "the base image `{reference}` was not resolved (a bug)"
                    ));
                }
            }
        }
        Base::Scratch | Base::Hive { .. } => None,
    };
    // The loader of an image right on a registry base was checked once for all images.
    if let (Some(interpreter), Some((reference, _)), 1) =
        (&interpreter, &resolved_base, chain.len())
    {
        let key = (
            reference.clone(),
            platform_text.clone(),
            interpreter.clone(),
        );
        if context.prepared.loaders.get(&key) == Some(&false) {
            return Err(loader_error(
                planned,
                interpreter,
                &format!("the base `{reference}` has no {interpreter}"),
            ));
        }
    }
    let key = shared_key(&context.workspace_root, &planned.name);
    let archive = output::archive_path(&context.target_dir, &planned.name);
    let load_archive = output::load_archive_path(&context.target_dir, &planned.name);
    let export_plan = output::export_plan(
        &context.destinations,
        &planned.references,
        &planned.config.annotations,
        context.daemon,
        &archive,
        &load_archive,
        context.epoch,
    )
    .map_err(|err| err.to_string())?;
    let exporters = export_plan.exporters.clone();
    let export_file = export_plan.file.clone();
    let epoch = context.epoch;
    let platform = platform_of(planned);
    let (pinned, base_config) = match resolved_base {
        Some((reference, resolved)) => (
            Some(PinnedBase {
                reference,
                digest: resolved.digest,
            }),
            Some(resolved.config),
        ),
        None => (None, None),
    };
    let image_layout = ImageLayout {
        platform: platform.clone(),
        base: pinned,
        layers: chain.iter().map(|layer| layer.inputs.clone()).collect(),
        shared_key_hint: key.clone(),
        epoch,
        uid: 0,
        gid: 0,
    };
    let mut definition = layout::definition(&image_layout);
    if context.no_cache {
        // What `--no-cache` means to BuildKit for LLB: every op is run again, none is taken from the cache.
        for metadata in definition.metadata.values_mut() {
            metadata.ignore_cache = true;
        }
    }
    let mut config = base_config;
    for layer in &chain {
        let overrides = overrides(&layer.planned, epoch, context.revision.as_deref());
        config = Some(layout::image_config(
            config.as_deref(),
            &platform,
            &overrides,
            epoch,
        )?);
    }
    let config = config.expect("a chain has at least one layer");
    let output = describe_outputs(&context.destinations, &archive);

    // Up to date? Then BuildKit has nothing to do for this image.
    let all_inputs: Vec<&LocalInput> = chain.iter().flat_map(|layer| layer.inputs.iter()).collect();
    let record_path = fresh::record_path(&context.target_dir, &planned.name);
    let fingerprint = fresh::fingerprint(&definition, &config, &exporters, &all_inputs)?;
    let docker_socket =
        output::docker_endpoint(context.buildkit.daemon.docker_socket.as_deref()).socket;
    let checkable = !context.no_cache
        && context
            .destinations
            .iter()
            .all(|destination| matches!(destination, Destination::OciArchive | Destination::Load));
    let expected: Vec<fresh::Expected> = (context.destinations.iter())
        .filter_map(|destination| match destination {
            Destination::OciArchive => Some(fresh::Expected::Archive(archive.clone())),
            Destination::Load => planned
                .references
                .first()
                .cloned()
                .map(fresh::Expected::Docker),
            Destination::Push | Destination::Raw { .. } => None,
        })
        .collect();
    if checkable
        && let Some(record) =
            fresh::up_to_date(&record_path, &fingerprint, &expected, Some(&docker_socket)).await
    {
        return Ok(BuiltImage {
            name: planned.name.clone(),
            references: planned.references.clone(),
            digest: record.digest,
            config_digest: record.config_digest,
            output: format!("{output} (fresh)"),
            archive: export_file.filter(|_| {
                record
                    .outputs
                    .iter()
                    .any(|o| matches!(o, fresh::StampedOutput::Archive { .. }))
            }),
            bytes_sent: 0,
            duration: started.elapsed(),
        });
    }
    fresh::forget(&record_path);

    // The docker archive for `--load` goes once Docker has it, and on every other way out (an error, a cancel).
    let _load_archive = export_plan
        .after
        .iter()
        .any(|step| matches!(step, output::After::DockerLoad(_)))
        .then(|| output::RemoveOnDrop(load_archive.clone()));
    if let Some(file) = &export_file
        && let Some(parent) = file.parent()
    {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
    }
    let session = Session::start(
        &context.buildkit,
        SessionConfig {
            name: planned.name.clone(),
            shared_key: key.clone(),
            local_dirs: all_inputs
                .iter()
                .map(|input| {
                    (
                        input.name.clone(),
                        LocalDir {
                            root: input.root.clone(),
                            allow: Some(input.include_patterns()),
                        },
                    )
                })
                .collect(),
            export: export_file.clone(),
        },
    )
    .await
    .map_err(|err| format!("failed to start the BuildKit session: {err}"))?;

    let build_ref = crate::buildkit::new_id();
    // The controller takes the build's SOURCE_DATE_EPOCH from this attribute (the exporters get it too).
    let frontend_attrs = BTreeMap::from([(
        "build-arg:SOURCE_DATE_EPOCH".to_owned(),
        context.epoch.to_string(),
    )]);
    let request = BuildRequest {
        build_ref: build_ref.clone(),
        session_id: session.id().to_owned(),
        exporters: exporters.clone(),
        frontend_attrs,
    };
    // With `hive:` layers below, the loader check needs those layers: the daemon answers it inside this build.
    let loader_below = match (&interpreter, chain.len() > 1) {
        (Some(interpreter), true) => {
            layout::base_definition(&image_layout).map(|below| (interpreter.clone(), below))
        }
        _ => None,
    };
    let base_name = match &planned.base {
        Base::Hive { image } => format!("the base `hive:{image}`"),
        Base::Image { reference } => format!("the base `{reference}`"),
        Base::Scratch => "the base `scratch`".to_owned(),
    };
    let planned_for_errors = planned.clone();
    let status = spawn_status(
        &context.buildkit,
        &build_ref,
        &planned.name,
        context.progress.clone(),
    );
    let result = gateway::build(&context.buildkit, request, |gateway| async move {
        if let Some((interpreter, below)) = loader_below {
            let below = gateway
                .solve(below)
                .await
                .map_err(|status| status.message().to_owned())?;
            let found = gateway
                .exists(&below, &interpreter)
                .await
                .map_err(|status| status.message().to_owned())?;
            if !found {
                return Err(loader_error(
                    &planned_for_errors,
                    &interpreter,
                    &format!("{base_name} has no {interpreter}"),
                ));
            }
        }
        let result = gateway
            .solve(definition)
            .await
            .map_err(|status| status.message().to_owned())?;
        gateway
            .return_result(
                &result,
                BTreeMap::from([("containerimage.config".to_owned(), config)]),
            )
            .await
            .map_err(|status| status.message().to_owned())
    })
    .await;
    // The status stream ends with the build; its last messages (the final steps) are worth a short wait.
    let _ = tokio::time::timeout(Duration::from_secs(2), status).await;
    if let Some(path) = session.changed_file() {
        session.close().await;
        return Err(SessionError::ChangedWhileSent { path }.to_string());
    }
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            session.close().await;
            return Err(err.to_string());
        }
    };
    let mut archive_written = session
        .commit_export()
        .await
        .map_err(|err| err.to_string())?;
    let bytes_sent = session.bytes_sent();
    session.close().await;
    for step in &export_plan.after {
        match step {
            output::After::DockerLoad(tar) => {
                let loaded = docker_api::load(&docker_socket, tar).await;
                let _ = std::fs::remove_file(tar);
                if archive_written.as_deref() == Some(tar.as_path()) {
                    archive_written = None;
                }
                loaded.map_err(|err| err.to_string())?;
            }
            output::After::DockerPush(references) => {
                let auth = DockerAuth::from_env();
                for reference in references {
                    let credentials =
                        auth.credentials(registry_host(reference))
                            .await
                            .map_err(|err| {
                                format!("cannot read the credentials for {reference}: {err}")
                            })?;
                    docker_api::push(
                        &docker_socket,
                        reference,
                        &credentials.username,
                        &credentials.secret,
                    )
                    .await
                    .map_err(|err| err.to_string())?;
                }
            }
        }
    }
    let digest = response
        .exporter_response
        .get("containerimage.digest")
        .cloned()
        .unwrap_or_default();
    let config_digest = response
        .exporter_response
        .get("containerimage.config.digest")
        .cloned();

    if checkable {
        let mut outputs = Vec::new();
        for destination in &context.destinations {
            let recorded = match destination {
                Destination::OciArchive => {
                    archive_written.as_deref().and_then(fresh::archive_record)
                }
                Destination::Load => match planned.references.first() {
                    Some(reference) => {
                        fresh::docker_id(&docker_socket, reference).await.map(|id| {
                            fresh::StampedOutput::Docker {
                                reference: reference.clone(),
                                id,
                            }
                        })
                    }
                    _ => None,
                },
                Destination::Push | Destination::Raw { .. } => None,
            };
            outputs.extend(recorded);
        }
        if outputs.len() == context.destinations.len() {
            let record = fresh::Stamp {
                fingerprint,
                digest: digest.clone(),
                config_digest: config_digest.clone(),
                outputs,
            };
            fresh::save(&record_path, &record);
        }
    }
    Ok(BuiltImage {
        name: planned.name.clone(),
        references: planned.references.clone(),
        digest,
        config_digest,
        output,
        archive: archive_written,
        bytes_sent,
        duration: started.elapsed(),
    })
}

/// The registry host of a normalized reference (`localhost:5000/a/b:1` → `localhost:5000`).
fn registry_host(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => host,
        _ => "docker.io",
    }
}

/// Where an image goes, for people.
fn describe_outputs(destinations: &[Destination], archive: &Path) -> String {
    destinations
        .iter()
        .map(|destination| match destination {
            Destination::OciArchive => archive.display().to_string(),
            Destination::Load => "docker".to_owned(),
            Destination::Push => "registry".to_owned(),
            Destination::Raw { kind, dest, .. } => dest
                .as_ref()
                .map_or_else(|| format!("type={kind}"), |dest| dest.display().to_string()),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn spawn_status(
    buildkit: &Buildkit,
    build_ref: &str,
    image: &str,
    progress: Progress,
) -> tokio::task::JoinHandle<()> {
    let mut control = buildkit.control();
    let request = StatusRequest {
        r#ref: build_ref.to_owned(),
    };
    let image = image.to_owned();
    tokio::spawn(async move {
        let Ok(response) = control.status(request).await else {
            return;
        };
        let mut stream = response.into_inner();
        while let Ok(Some(status)) = stream.message().await {
            progress.status(&image, status);
        }
    })
}

/// `--metadata-file`: every image's references and digests, written atomically.
pub(crate) fn write_metadata(path: &Path, built: &[BuiltImage]) -> Result<(), String> {
    let images: BTreeMap<&str, serde_json::Value> = built
        .iter()
        .map(|image| {
            (
                image.name.as_str(),
                serde_json::json!({
                    "references": image.references,
                    "containerimage.digest": image.digest,
                    "containerimage.config.digest": image.config_digest,
                    "archive": image.archive,
                    "bytes_sent": image.bytes_sent,
                }),
            )
        })
        .collect();
    let text =
        serde_json::to_string_pretty(&serde_json::json!({"format_version": 1, "images": images}))
            .expect("JSON values serialize");
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    std::io::Write::write_all(&mut temp, text.as_bytes())
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    temp.persist(path)
        .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    Ok(())
}

/// `--dry-run`: the LLB of an image as JSON (base not yet pinned: that needs the daemon).
pub(crate) fn dry_run_json(planned: &PlanImage, epoch: i64) -> serde_json::Value {
    use hive_proto::prost::Message;
    let executable = Executable {
        target: planned.binary.target.clone(),
        path: PathBuf::from("/target").join(&planned.binary.target),
        interpreter: None,
        machine: None,
    };
    let inputs = local_inputs(planned, &executable).unwrap_or_default();
    let definition = layout::definition(&ImageLayout {
        layers: vec![inputs],
        platform: platform_of(planned),
        base: match &planned.base {
            Base::Image { reference } => Some(PinnedBase {
                reference: reference.clone(),
                digest: "sha256:<resolved at build>".to_owned(),
            }),
            _ => None,
        },
        shared_key_hint: planned.name.clone(),
        epoch,
        uid: 0,
        gid: 0,
    });
    let ops: Vec<serde_json::Value> = definition
        .def
        .iter()
        .map(|bytes| {
            let op = hive_proto::pb::Op::decode(bytes.as_slice()).expect("we encoded it");
            serde_json::json!({"digest": format!("sha256:{}", hex::encode(Sha256::digest(bytes))), "op": format!("{op:?}")})
        })
        .collect();
    serde_json::json!({"image": planned.name, "references": planned.references, "ops": ops})
}
