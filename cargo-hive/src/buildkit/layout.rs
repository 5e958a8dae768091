//! The LLB and image config of one image for one platform: the base (scratch, or an image pinned to the digest
//! the daemon resolved), then one layer holding the binary and the declared files, copied from `local://` sources
//! with their owner, mode and the build's timestamp; the config merged over the base image's config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hive_proto::pb;
use serde_json::{Map, Value, json};

use super::llb::{DefinitionBuilder, Output, input};
use super::steps::{ExecStep, add_exec};
use crate::plan::{ImageReference, Platform};

/// A file or directory to copy into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyEntry {
    /// Path relative to its local source's root.
    pub(crate) source: String,
    /// Absolute path in the image.
    pub(crate) destination: String,
    /// Permission bits, or `None` to keep the file's own.
    pub(crate) mode: Option<u32>,
}

/// One `local://` source: a directory on this machine and the entries the image takes from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalInput {
    /// The name the session serves it under.
    pub(crate) name: String,
    /// The directory.
    pub(crate) root: PathBuf,
    /// What is copied from it.
    pub(crate) entries: Vec<CopyEntry>,
}

impl LocalInput {
    /// The paths the daemon may ask for (the include patterns).
    pub(crate) fn include_patterns(&self) -> Vec<String> {
        let mut patterns: Vec<String> = self
            .entries
            .iter()
            .map(|entry| entry.source.clone())
            .collect();
        patterns.sort();
        patterns.dedup();
        patterns
    }
}

/// Everything that goes into one image's LLB.
#[derive(Debug, Clone)]
pub(crate) struct ImageLayout {
    /// The platform.
    pub(crate) platform: Platform,
    /// What the layers go on: `None` for scratch.
    pub(crate) base: Option<LayoutBase>,
    /// Our layers, bottom first: one per image of a `hive:` chain, the image itself last. Each layer's local
    /// sources are copied in one file op, so each is one image layer.
    pub(crate) layers: Vec<Vec<LocalInput>>,
    /// The RUN steps of each layer, run before its files are copied (so the binary's layer stays last and small);
    /// a layer without an entry here has none.
    pub(crate) steps: Vec<Vec<ExecStep>>,
    /// A stable key per workspace and image: the daemon keeps the previous transfer under it, so a rebuild sends
    /// only what changed.
    pub(crate) shared_key_hint: String,
    /// SOURCE_DATE_EPOCH, seconds: the time of every file in our layers.
    pub(crate) epoch: i64,
    /// Owner of the copied files.
    pub(crate) uid: u32,
    /// Group of the copied files.
    pub(crate) gid: u32,
}

/// What an image's layers go on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LayoutBase {
    /// A registry image, pinned to the digest resolved for the platform.
    Registry(PinnedBase),
    /// An image built earlier in the same solve (a Dockerfile image's result, as the daemon returned its
    /// definition).
    Built {
        /// What it was solved from.
        definition: Llb,
    },
}

impl ImageLayout {
    /// The registry image the layers go on, if that is what they go on.
    pub(crate) fn registry_base(&self) -> Option<&PinnedBase> {
        match &self.base {
            Some(LayoutBase::Registry(pinned)) => Some(pinned),
            _ => None,
        }
    }
}

/// A base image pinned to a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinnedBase {
    /// As written (normalized) in the plan.
    pub(crate) reference: String,
    /// The manifest digest resolved for the platform.
    pub(crate) digest: String,
}

impl PinnedBase {
    /// `name@digest`, dropping any tag: what the LLB source pulls.
    pub(crate) fn pinned(&self) -> String {
        // Docker 20.10 answers an image of its own store with no digest: then the reference is all there is.
        if self.digest.is_empty() {
            return self.reference.clone();
        }
        match ImageReference::parse(&self.reference) {
            Ok(parsed) => format!(
                "{}/{}@{}",
                parsed.registry(),
                parsed.repository(),
                self.digest
            ),
            // Never from a plan, whose references all parsed: kept as it is, for the daemon to judge.
            Err(_) => self.reference.clone(),
        }
    }
}

/// An LLB definition, ready to solve; opaque outside `buildkit`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Llb(pub(super) pb::Definition);

impl Llb {
    /// What `--no-cache` means to BuildKit for LLB: every op is run again, none is taken from the cache.
    pub(crate) fn ignore_cache(&mut self) {
        for metadata in self.0.metadata.values_mut() {
            metadata.ignore_cache = true;
        }
    }

    /// The marshaled ops, in order (what an up-to-date check hashes).
    pub(crate) fn ops(&self) -> &[Vec<u8>] {
        &self.0.def
    }

    /// Each op's digest and its decoded form, for `--dry-run`.
    pub(crate) fn describe(&self) -> Vec<serde_json::Value> {
        use hive_proto::prost::Message;
        use sha2::Digest;
        self.0
            .def
            .iter()
            .map(|bytes| {
                let op = pb::Op::decode(bytes.as_slice()).expect("we encoded it");
                let digest = hex::encode(sha2::Sha256::digest(bytes));
                json!({"digest": format!("sha256:{digest}"), "op": format!("{op:?}")})
            })
            .collect()
    }
}

/// The LLB definition of the whole image.
pub(crate) fn definition(layout: &ImageLayout) -> Llb {
    Llb(definition_of_layers(layout, layout.layers.len()))
}

/// The LLB of everything below the image's own layer (its base, with any `hive:` layers), or `None` when that is
/// empty (scratch): what the image's binary must be able to run on.
pub(crate) fn base_definition(layout: &ImageLayout) -> Option<Llb> {
    let below = layout.layers.len().saturating_sub(1);
    (layout.base.is_some() || below > 0).then(|| Llb(definition_of_layers(layout, below)))
}

fn definition_of_layers(layout: &ImageLayout, count: usize) -> pb::Definition {
    let platform = super::llb::platform(&layout.platform);
    let mut builder = DefinitionBuilder::default();
    let mut current = base_source(&mut builder, layout, &platform);
    for (index, inputs) in layout.layers.iter().enumerate().take(count) {
        for step in layout.steps.get(index).into_iter().flatten() {
            current = Some(add_exec(&mut builder, current.as_ref(), step, &platform));
        }
        if let Some(output) = add_layer(&mut builder, layout, current.as_ref(), inputs) {
            current = Some(output);
        }
    }
    match current {
        Some(result) => builder.finish(&result),
        // Scratch with nothing in it: an empty file keeps the definition well-formed.
        None => super::llb::file_on_scratch("/.hive-empty", b"", platform.clone()),
    }
}

/// The base: a registry image's source op pinned to its digest, or the ops of an image built in the same solve;
/// `None` for scratch.
fn base_source(
    builder: &mut DefinitionBuilder,
    layout: &ImageLayout,
    platform: &pb::Platform,
) -> Option<Output> {
    let base = match layout.base.as_ref()? {
        LayoutBase::Registry(pinned) => pinned,
        LayoutBase::Built { definition, .. } => return builder.inline(&definition.0),
    };
    let source = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: format!("docker-image://{}", base.pinned()),
            attrs: BTreeMap::new(),
        })),
        platform: Some(platform.clone()),
        constraints: Some(pb::WorkerConstraints::default()),
        inputs: vec![],
    };
    Some(builder.add(
        &source,
        metadata(
            &[("source.image", true)],
            &format!("base {}", base.reference),
        ),
    ))
}

/// The store id our session's content store answers to (the daemon asks for `oci:<id>`).
pub(crate) const PACKED_STORE: &str = "hive";

/// One of our layers packed as a one-layer OCI image that the session serves: what an `oci-layout://` source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedRef {
    /// A name for the progress output (the image the layer belongs to).
    pub(crate) name: String,
    /// The manifest's digest, `sha256:<hex>`.
    pub(crate) manifest_digest: String,
}

/// The image's LLB with our layers packed: `packed[i]` is `layout.layers[i]` as an `oci-layout://` image (`None`
/// for a layer with nothing in it), merged onto what is below it. The daemon neither copies, diffs nor compresses
/// them: it exports the blobs as they are. RUN steps run on the merge of everything below them.
pub(crate) fn packed_definition(layout: &ImageLayout, packed: &[Option<PackedRef>]) -> Llb {
    let platform = super::llb::platform(&layout.platform);
    let mut builder = DefinitionBuilder::default();
    // What is below, as the inputs of one merge not yet added: merges of merges would only add ops.
    let mut below: Vec<Output> = base_source(&mut builder, layout, &platform)
        .into_iter()
        .collect();
    for (index, layer) in packed.iter().enumerate() {
        let steps = layout
            .steps
            .get(index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !steps.is_empty() {
            let mut current = merged(&mut builder, std::mem::take(&mut below));
            for step in steps {
                current = Some(add_exec(&mut builder, current.as_ref(), step, &platform));
            }
            below.extend(current);
        }
        if let Some(layer) = layer {
            below.push(packed_source(&mut builder, layer, &platform));
        }
    }
    match merged(&mut builder, below) {
        Some(result) => Llb(builder.finish(&result)),
        None => Llb(super::llb::file_on_scratch(
            "/.hive-empty",
            b"",
            platform.clone(),
        )),
    }
}

/// A packed layer's `oci-layout://` source (the build's own session serves it: no session id is named).
fn packed_source(
    builder: &mut DefinitionBuilder,
    layer: &PackedRef,
    platform: &pb::Platform,
) -> Output {
    let source = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            // The daemon parses it as `host/path@digest`; only the digest is looked up in our store.
            identifier: format!(
                "oci-layout://{PACKED_STORE}/layer@{}",
                layer.manifest_digest
            ),
            attrs: BTreeMap::from([("oci.store".to_owned(), PACKED_STORE.to_owned())]),
        })),
        platform: Some(platform.clone()),
        constraints: Some(pb::WorkerConstraints::default()),
        inputs: vec![],
    };
    builder.add(
        &source,
        metadata(
            &[("source.ocilayout", true)],
            &format!("layer of {}", layer.name),
        ),
    )
}

/// One output for `inputs`: nothing, the one input, or a merge op stacking them bottom first.
fn merged(builder: &mut DefinitionBuilder, inputs: Vec<Output>) -> Option<Output> {
    if inputs.len() < 2 {
        return inputs.into_iter().next();
    }
    let merge = pb::Op {
        inputs: inputs.iter().map(input).collect(),
        op: Some(pb::op::Op::Merge(pb::MergeOp {
            inputs: (0..inputs.len() as i64)
                .map(|index| pb::MergeInput { input: index })
                .collect(),
        })),
        // A merge is not platform specific (as BuildKit's own client writes it).
        platform: None,
        constraints: Some(pb::WorkerConstraints::default()),
    };
    Some(builder.add(&merge, metadata(&[("mergeop", true)], "stack layers")))
}

/// One file op copying every entry of `inputs` onto `below` (or scratch).
fn add_layer(
    builder: &mut DefinitionBuilder,
    layout: &ImageLayout,
    below: Option<&Output>,
    inputs: &[LocalInput],
) -> Option<Output> {
    use pb::file_action::Action;
    let platform = super::llb::platform(&layout.platform);
    let constraints = Some(pb::WorkerConstraints::default());
    let mut op_inputs: Vec<Output> = below.into_iter().cloned().collect();
    let first_source = op_inputs.len() as i64;
    for local in inputs {
        let hint = format!("{}:{}", layout.shared_key_hint, local.name);
        let (mut source, mut meta) =
            super::llb::local_source(&local.name, &hint, &local.include_patterns(), None);
        source.platform = Some(platform.clone());
        meta.description =
            BTreeMap::from([("llb.customname".to_owned(), format!("load {}", local.name))]);
        op_inputs.push(builder.add(&source, meta));
    }
    let owner = Some(pb::ChownOpt {
        user: Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ById(layout.uid)),
        }),
        group: Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ById(layout.gid)),
        }),
    });
    let timestamp = layout.epoch.saturating_mul(1_000_000_000);
    let total: usize = inputs.iter().map(|local| local.entries.len()).sum();
    if total == 0 {
        return None;
    }
    let mut actions = Vec::new();
    for (index, local) in inputs.iter().enumerate() {
        for entry in &local.entries {
            let position = actions.len() as i64;
            // Each copy applies to the previous action's result; the first to what is below (or scratch: -1).
            let target = match (position, below) {
                (0, Some(_)) => 0,
                (0, None) => -1,
                _ => op_inputs.len() as i64 + position - 1,
            };
            let last = actions.len() + 1 == total;
            actions.push(pb::FileAction {
                input: target,
                secondary_input: first_source + index as i64,
                output: if last { 0 } else { -1 },
                action: Some(Action::Copy(pb::FileActionCopy {
                    src: format!("/{}", entry.source),
                    dest: entry.destination.clone(),
                    owner: owner.clone(),
                    mode: entry.mode.map_or(-1, |mode| mode as i32),
                    follow_symlink: false,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    allow_wildcard: false,
                    allow_empty_wildcard: false,
                    timestamp,
                    ..Default::default()
                })),
            });
        }
    }
    let file = pb::Op {
        inputs: op_inputs.iter().map(input).collect(),
        op: Some(pb::op::Op::File(pb::FileOp { actions })),
        platform: Some(platform.clone()),
        constraints,
    };
    Some(builder.add(
        &file,
        metadata(&[("file.base", true)], "copy binary and files"),
    ))
}

fn metadata(caps: &[(&str, bool)], description: &str) -> pb::OpMetadata {
    pb::OpMetadata {
        caps: caps
            .iter()
            .map(|(cap, on)| ((*cap).to_owned(), *on))
            .collect(),
        description: BTreeMap::from([("llb.customname".to_owned(), description.to_owned())]),
        ..Default::default()
    }
}

/// What cargo hive sets in the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigOverrides {
    /// Entrypoint (exec form); empty keeps the base's.
    pub(crate) entrypoint: Vec<String>,
    /// Cmd; empty keeps the base's unless the entrypoint is set (then, as Docker does, the base's cmd is dropped).
    pub(crate) cmd: Vec<String>,
    /// Environment, merged over the base's by name.
    pub(crate) env: BTreeMap<String, String>,
    /// Working directory.
    pub(crate) workdir: Option<String>,
    /// User.
    pub(crate) user: Option<String>,
    /// Exposed ports as `8080/tcp`.
    pub(crate) exposed_ports: Vec<String>,
    /// Labels, merged over the base's.
    pub(crate) labels: BTreeMap<String, String>,
    /// What each RUN step's layer was created by (its history entry), in order.
    pub(crate) steps: Vec<String>,
}

/// The base's `Env` in order, `overrides` replacing by name, new names appended in order, and a default `PATH`.
pub(super) fn merged_env(
    config: &Map<String, Value>,
    overrides: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = config
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (entry.to_owned(), String::new()),
        })
        .collect();
    for (key, value) in overrides {
        match env.iter_mut().find(|(existing, _)| existing == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    if env.iter().all(|(key, _)| key != "PATH") {
        env.insert(
            0,
            (
                "PATH".to_owned(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ),
        );
    }
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The settings of the definitions over the base's: entrypoint, cmd, workdir, user, ports and labels.
fn apply_overrides(config: &mut Map<String, Value>, overrides: &ConfigOverrides) {
    if !overrides.entrypoint.is_empty() {
        config.insert("Entrypoint".to_owned(), json!(overrides.entrypoint));
        if overrides.cmd.is_empty() {
            config.remove("Cmd");
        }
    }
    if !overrides.cmd.is_empty() {
        config.insert("Cmd".to_owned(), json!(overrides.cmd));
    }
    if let Some(workdir) = &overrides.workdir {
        config.insert("WorkingDir".to_owned(), json!(workdir));
    }
    if let Some(user) = &overrides.user {
        config.insert("User".to_owned(), json!(user));
    }
    if !overrides.exposed_ports.is_empty() {
        let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
        if let Value::Object(ports) = ports {
            for port in &overrides.exposed_ports {
                ports.insert(port.clone(), json!({}));
            }
        }
    }
    if !overrides.labels.is_empty() {
        let labels = config.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        if let Value::Object(labels) = labels {
            for (key, value) in &overrides.labels {
                labels.insert(key.clone(), json!(value));
            }
        }
    }
}

/// The base image's config is not a JSON object.
#[derive(Debug, thiserror::Error)]
#[error("the base image config is not JSON: {0}")]
pub(crate) struct ConfigError(pub(super) serde_json::Error);

/// The image config JSON: `overrides` merged over the base image's config, with `created` and the history entry of
/// our layer at SOURCE_DATE_EPOCH, so the same inputs give the same config bytes.
pub(crate) fn image_config(
    base: Option<&[u8]>,
    platform: &Platform,
    overrides: &ConfigOverrides,
    epoch: i64,
) -> Result<Vec<u8>, ConfigError> {
    let mut image: Map<String, Value> = match base {
        Some(bytes) => serde_json::from_slice(bytes).map_err(ConfigError)?,
        None => Map::new(),
    };
    let created = rfc3339(epoch);
    let platform = super::llb::platform(platform);
    image.insert("architecture".to_owned(), json!(platform.architecture));
    image.insert("os".to_owned(), json!(platform.os));
    if platform.variant.is_empty() {
        image.remove("variant");
    } else {
        image.insert("variant".to_owned(), json!(platform.variant));
    }
    image.insert("created".to_owned(), json!(created));

    let mut config = match image.remove("config") {
        Some(Value::Object(config)) => config,
        _ => Map::new(),
    };
    let env = merged_env(&config, &overrides.env);
    config.insert("Env".to_owned(), json!(env));
    apply_overrides(&mut config, overrides);
    image.insert("config".to_owned(), Value::Object(sorted(config)));

    let mut rootfs = match image.remove("rootfs") {
        Some(Value::Object(rootfs)) => rootfs,
        _ => Map::new(),
    };
    rootfs.insert("type".to_owned(), json!("layers"));
    rootfs.entry("diff_ids").or_insert_with(|| json!([]));
    image.insert("rootfs".to_owned(), Value::Object(rootfs));
    let mut history = match image.remove("history") {
        Some(Value::Array(history)) => history,
        _ => Vec::new(),
    };
    for step in &overrides.steps {
        history.push(json!({"created": created, "created_by": step, "comment": "cargo-hive"}));
    }
    history.push(json!({"created": created, "created_by": "cargo hive: copy binary and files", "comment": "cargo-hive"}));
    image.insert("history".to_owned(), Value::Array(history));
    Ok(serde_json::to_vec(&Value::Object(sorted(image))).expect("JSON values serialize"))
}

/// The comment of an image's newest history entry (ours) that names its content fingerprint: what `--load` finds
/// in Docker's history of an image, so a checkout without records knows an unchanged image is already there.
pub(crate) fn fingerprint_comment(print: &str) -> String {
    format!("cargo-hive fingerprint {print}")
}

/// `config` with its newest history entry commented with `print` (see [`fingerprint_comment`]); everything else
/// as it was.
pub(crate) fn with_fingerprint(config: &[u8], print: &str) -> Result<Vec<u8>, ConfigError> {
    let mut image: Value = serde_json::from_slice(config).map_err(ConfigError)?;
    if let Some(newest) = image
        .get_mut("history")
        .and_then(Value::as_array_mut)
        .and_then(|history| history.last_mut())
        .and_then(Value::as_object_mut)
    {
        newest.insert("comment".to_owned(), json!(fingerprint_comment(print)));
    }
    Ok(serde_json::to_vec(&image).expect("JSON values serialize"))
}

/// A Dockerfile image's config as its frontend made it, with the labels of `ours` (a config we laid out for the
/// image: its labels are the definitions' and cargo hive's) over its own; everything else is the Dockerfile's.
pub(crate) fn labels_over(theirs: &[u8], ours: &[u8]) -> Result<Vec<u8>, ConfigError> {
    let mut image: Map<String, Value> = serde_json::from_slice(theirs).map_err(ConfigError)?;
    let ours: Value = serde_json::from_slice(ours).map_err(ConfigError)?;
    let mut config = match image.remove("config") {
        Some(Value::Object(config)) => config,
        _ => Map::new(),
    };
    let mut labels = match config.remove("Labels") {
        Some(Value::Object(labels)) => labels,
        _ => Map::new(),
    };
    if let Some(Value::Object(added)) = ours.pointer("/config/Labels") {
        labels.extend(added.clone());
    }
    if !labels.is_empty() {
        config.insert("Labels".to_owned(), Value::Object(labels));
    }
    image.insert("config".to_owned(), Value::Object(config));
    Ok(serde_json::to_vec(&Value::Object(sorted(image))).expect("JSON values serialize"))
}

fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    // serde_json's Map is a BTreeMap without `preserve_order`: already sorted; the call documents the intent.
    map.into_iter().collect()
}

/// Seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:00Z`), clamped to the years RFC 3339 can write
/// (0000 to 9999): a commit time can be anything.
pub(crate) fn rfc3339(epoch: i64) -> String {
    const FIRST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    time::OffsetDateTime::from_unix_timestamp(epoch.clamp(FIRST, LAST))
        .expect("a clamped timestamp is in time's range")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a year from 0000 to 9999 formats as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_proto::prost::Message;

    fn layout(base: Option<PinnedBase>) -> ImageLayout {
        ImageLayout {
            platform: Platform::parse("linux/amd64").unwrap(),
            base: base.map(LayoutBase::Registry),
            layers: vec![vec![
                LocalInput {
                    name: "bin".into(),
                    root: "/ws/target/release".into(),
                    entries: vec![CopyEntry {
                        source: "hello".into(),
                        destination: "/app/hello".into(),
                        mode: Some(0o755),
                    }],
                },
                LocalInput {
                    name: "files-0".into(),
                    root: "/ws/hello".into(),
                    entries: vec![CopyEntry {
                        source: "static".into(),
                        destination: "/app/static".into(),
                        mode: None,
                    }],
                },
            ]],
            steps: vec![],
            shared_key_hint: "ws-hello".into(),
            epoch: 1_700_000_000,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn pins_the_base_by_digest() {
        let base = |reference: &str| PinnedBase {
            reference: reference.into(),
            digest: "sha256:abc".into(),
        };
        assert_eq!(
            base("localhost:5000/hive/glibc:latest").pinned(),
            "localhost:5000/hive/glibc@sha256:abc"
        );
        assert_eq!(
            base("localhost:5000/hive/glibc").pinned(),
            "localhost:5000/hive/glibc@sha256:abc"
        );
        let old = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            base(&format!("docker.io/library/debian:12@{old}")).pinned(),
            "docker.io/library/debian@sha256:abc"
        );
        assert_eq!(
            base("debian:12").pinned(),
            "docker.io/library/debian@sha256:abc"
        );
        // Docker 20.10 resolves images of its own store without a digest.
        let unpinned = PinnedBase {
            reference: "localhost:5000/hive/glibc:latest".into(),
            digest: String::new(),
        };
        assert_eq!(unpinned.pinned(), "localhost:5000/hive/glibc:latest");
    }

    #[test]
    fn definition_is_deterministic_and_chains_copies() {
        let base = PinnedBase {
            reference: "localhost:5000/hive/glibc:latest".into(),
            digest: "sha256:abc".into(),
        };
        let a = definition(&layout(Some(base.clone())));
        assert_eq!(a, definition(&layout(Some(base))));
        // base source, two local sources, the file op, the terminal op
        assert_eq!(a.0.def.len(), 5);
        let file = pb::Op::decode(a.0.def[3].as_slice()).unwrap();
        let Some(pb::op::Op::File(file_op)) = file.op else {
            panic!("not a file op")
        };
        let positions: Vec<(i64, i64, i64)> = file_op
            .actions
            .iter()
            .map(|a| (a.input, a.secondary_input, a.output))
            .collect();
        assert_eq!(positions, [(0, 1, -1), (3, 2, 0)]);
        let Some(pb::file_action::Action::Copy(copy)) = &file_op.actions[0].action else {
            panic!()
        };
        assert_eq!(
            (copy.mode, copy.timestamp),
            (0o755, 1_700_000_000_000_000_000)
        );
    }

    #[test]
    fn scratch_copies_start_from_nothing() {
        let definition = definition(&layout(None));
        assert_eq!(definition.0.def.len(), 4);
        let file = pb::Op::decode(definition.0.def[2].as_slice()).unwrap();
        let Some(pb::op::Op::File(file_op)) = file.op else {
            panic!()
        };
        assert_eq!(file_op.actions[0].input, -1);
        assert_eq!(file_op.actions[0].secondary_input, 0);
        assert_eq!(file_op.actions[1].input, 2);
    }

    #[test]
    fn hive_chains_stack_layers_and_the_base_definition_stops_below_the_image() {
        let mut chain = layout(None);
        let lower = vec![LocalInput {
            name: "worker-bin".into(),
            root: "/ws/target/release".into(),
            entries: vec![CopyEntry {
                source: "worker".into(),
                destination: "/w".into(),
                mode: Some(0o755),
            }],
        }];
        chain.layers.insert(0, lower);
        let full = definition(&chain);
        // worker's local source and file op, then the image's two sources and file op, then the terminal op.
        assert_eq!(full.0.def.len(), 6);
        let top = pb::Op::decode(full.0.def[4].as_slice()).unwrap();
        assert_eq!(
            top.inputs.len(),
            3,
            "the lower layer plus two local sources"
        );
        let Some(pb::op::Op::File(file_op)) = top.op else {
            panic!()
        };
        assert_eq!(file_op.actions[0].input, 0, "copies onto the lower layer");
        let below = base_definition(&chain).expect("a lower layer exists");
        assert_eq!(below.0.def.len(), 3);
        assert!(base_definition(&layout(None)).is_none(), "scratch below");
    }

    fn packed(name: &str) -> Option<PackedRef> {
        Some(PackedRef {
            name: name.into(),
            manifest_digest: format!("sha256:{}", name.repeat(64 / name.len())),
        })
    }

    fn ops(llb: &Llb) -> Vec<pb::Op> {
        (llb.0.def.iter())
            .map(|bytes| pb::Op::decode(bytes.as_slice()).unwrap())
            .collect()
    }

    fn source_of(op: &pb::Op) -> Option<&pb::SourceOp> {
        match &op.op {
            Some(pb::op::Op::Source(source)) => Some(source),
            _ => None,
        }
    }

    #[test]
    fn a_packed_layer_on_scratch_is_the_image_itself() {
        let llb = packed_definition(&layout(None), &[packed("a")]);
        let ops = ops(&llb);
        // The oci-layout source, then the terminal op: no copy, no merge.
        assert_eq!(ops.len(), 2);
        let source = source_of(&ops[0]).expect("a source");
        assert_eq!(
            source.identifier,
            format!("oci-layout://hive/layer@sha256:{}", "a".repeat(64))
        );
        assert_eq!(source.attrs["oci.store"], PACKED_STORE);
        assert!(ops[0].platform.is_some());
        let meta = llb
            .0
            .metadata
            .values()
            .find(|m| m.caps.contains_key("source.ocilayout"));
        assert!(
            meta.is_some(),
            "the source asks for the oci-layout capability"
        );
    }

    #[test]
    fn packed_layers_merge_onto_the_base_in_one_op() {
        let base = PinnedBase {
            reference: "localhost:5000/hive/glibc:latest".into(),
            digest: format!("sha256:{}", "b".repeat(64)),
        };
        let mut chain = layout(Some(base));
        chain.layers.insert(0, vec![]);
        let llb = packed_definition(&chain, &[packed("w"), packed("a")]);
        let ops = ops(&llb);
        // base, two layer sources, one merge of all three, terminal.
        assert_eq!(ops.len(), 5);
        let Some(pb::op::Op::Merge(merge)) = &ops[3].op else {
            panic!("a merge: {:?}", ops[3])
        };
        assert_eq!(merge.inputs.len(), 3);
        assert_eq!(ops[3].inputs.len(), 3);
        assert!(ops[3].platform.is_none(), "a merge has no platform");
        let base_source = source_of(&ops[0]).unwrap();
        assert!(base_source.identifier.starts_with("docker-image://"));
        // Deterministic: the same layout and layers give the same bytes.
        assert_eq!(llb, packed_definition(&chain, &[packed("w"), packed("a")]));
    }

    #[test]
    fn steps_run_on_the_merge_below_them() {
        let mut chain = layout(None);
        chain.layers.insert(0, vec![]);
        chain.steps = vec![
            vec![],
            vec![ExecStep {
                args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                no_network: false,
                caches: vec![],
                secrets: vec![],
                secret_env: BTreeMap::new(),
                name: "a run[0]: true".into(),
            }],
        ];
        let llb = packed_definition(&chain, &[packed("w"), packed("a")]);
        let kinds: Vec<&str> = ops(&llb)
            .iter()
            .map(|op| match &op.op {
                Some(pb::op::Op::Source(_)) => "source",
                Some(pb::op::Op::Exec(_)) => "exec",
                Some(pb::op::Op::Merge(_)) => "merge",
                _ => "other",
            })
            .collect();
        // The lower layer alone needs no merge; the step runs on it; the image's layer merges onto the step.
        assert_eq!(kinds, ["source", "exec", "source", "merge", "other"]);
    }

    #[test]
    fn config_merges_over_the_base() {
        let base = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin", "LANG=C"], "Cmd": ["/bin/sh"], "Labels": {"from": "base"}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
            "history": [{"created_by": "base"}]
        }))
        .unwrap();
        let overrides = ConfigOverrides {
            entrypoint: vec!["/app/hello".into()],
            env: BTreeMap::from([
                ("LANG".into(), "C.UTF-8".into()),
                ("RUST_LOG".into(), "info".into()),
            ]),
            user: Some("65534".into()),
            exposed_ports: vec!["8080/tcp".into()],
            labels: BTreeMap::from([("org.opencontainers.image.title".into(), "hello".into())]),
            ..Default::default()
        };
        let bytes = image_config(
            Some(&base),
            &Platform::parse("linux/amd64").unwrap(),
            &overrides,
            0,
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(config["created"], "1970-01-01T00:00:00Z");
        assert_eq!(
            config["config"]["Env"],
            json!(["PATH=/bin", "LANG=C.UTF-8", "RUST_LOG=info"])
        );
        assert_eq!(config["config"]["Entrypoint"], json!(["/app/hello"]));
        assert!(
            config["config"].get("Cmd").is_none(),
            "an entrypoint drops the base's cmd"
        );
        assert_eq!(config["config"]["User"], "65534");
        assert_eq!(config["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(config["config"]["Labels"]["from"], "base");
        assert_eq!(config["rootfs"]["diff_ids"], json!(["sha256:1"]));
        assert_eq!(config["history"].as_array().unwrap().len(), 2);
        // Same inputs, same bytes.
        assert_eq!(
            bytes,
            image_config(
                Some(&base),
                &Platform::parse("linux/amd64").unwrap(),
                &overrides,
                0
            )
            .unwrap()
        );
    }

    /// The fingerprint comments our newest history entry only; the base's entries and every other byte stay.
    #[test]
    fn the_fingerprint_comments_the_newest_history_entry() {
        let base =
            serde_json::to_vec(&json!({"history": [{"created_by": "base", "comment": "theirs"}]}))
                .unwrap();
        let platform = Platform::parse("linux/amd64").unwrap();
        let plain = image_config(Some(&base), &platform, &ConfigOverrides::default(), 0).unwrap();
        let stamped = with_fingerprint(&plain, "abc").unwrap();
        let mut config: Value = serde_json::from_slice(&stamped).unwrap();
        let history = config["history"].as_array().unwrap();
        assert_eq!(history[0]["comment"], "theirs");
        assert_eq!(history[1]["comment"], "cargo-hive fingerprint abc");
        config["history"][1]["comment"] = json!("cargo-hive");
        assert_eq!(serde_json::to_vec(&config).unwrap(), plain);
    }

    #[test]
    fn scratch_config_gets_a_path() {
        let bytes = image_config(
            None,
            &Platform::parse("linux/arm64").unwrap(),
            &ConfigOverrides::default(),
            5,
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert!(
            config["config"]["Env"][0]
                .as_str()
                .unwrap()
                .starts_with("PATH=")
        );
        assert_eq!(config["rootfs"], json!({"type": "layers", "diff_ids": []}));
    }
}
