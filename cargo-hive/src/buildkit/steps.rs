//! RUN steps as LLB: each step one ExecOp on what is below it (the base, or the step before), with the base's
//! environment, working directory and user unless the step sets its own, its cache mounts and its secret mounts.
//! BuildKit adds nothing to an ExecOp's environment, so `PATH` comes from the base's config (or Docker's default).

use std::collections::BTreeMap;

use hive_build::plan::PlanRunStep;
use hive_build::{Network, Sharing};
use hive_proto::pb;
use serde_json::{Map, Value};

use super::layout::ConfigError;
use super::llb::{DefinitionBuilder, Output, input};

/// One step, ready to become an ExecOp: everything the container sees, resolved against the base's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecStep {
    /// The argument vector.
    pub(crate) args: Vec<String>,
    /// `KEY=VALUE`, the base's order with the step's values replacing by name.
    pub(crate) env: Vec<String>,
    /// Working directory.
    pub(crate) cwd: String,
    /// User (empty: root).
    pub(crate) user: String,
    /// Whether the step runs with no network.
    pub(crate) no_network: bool,
    /// Cache mounts.
    pub(crate) caches: Vec<CacheMountSpec>,
    /// Secret ids, mounted at `/run/secrets/<id>`.
    pub(crate) secrets: Vec<String>,
    /// The vertex name in progress and errors: `<image> run[<index>]: <command>`.
    pub(crate) name: String,
}

/// A cache mount of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheMountSpec {
    /// Where it is mounted.
    pub(crate) target: String,
    /// The cache's name on the daemon.
    pub(crate) id: String,
    /// How concurrent builds share it.
    pub(crate) sharing: Sharing,
}

/// The prefix of every step's vertex name: `<image> run[<index>]: `; what [`step_of_vertex`] reads back.
fn name_prefix(image: &str, index: usize) -> String {
    format!("{image} run[{index}]: ")
}

/// Which image and step a vertex name is, when it is a step's.
pub(crate) fn step_of_vertex(name: &str) -> Option<(&str, usize)> {
    let (head, _) = name.split_once("]: ")?;
    let (image, index) = head.rsplit_once(" run[")?;
    Some((image, index.parse().ok()?))
}

/// The image's steps resolved against the config of what is below them (`None`: scratch).
pub(crate) fn exec_steps(
    image: &str,
    steps: &[PlanRunStep],
    below: Option<&[u8]>,
) -> Result<Vec<ExecStep>, ConfigError> {
    let config: Map<String, Value> = match below {
        Some(bytes) => {
            let image: Map<String, Value> = serde_json::from_slice(bytes).map_err(ConfigError)?;
            match image.get("config") {
                Some(Value::Object(config)) => config.clone(),
                _ => Map::new(),
            }
        }
        None => Map::new(),
    };
    let text = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (base_cwd, base_user) = (text("WorkingDir"), text("User"));
    Ok(steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let shown = match &step.args[..] {
                [shell, dash_c, command] if shell == "/bin/sh" && dash_c == "-c" => command.clone(),
                args => args.join(" "),
            };
            ExecStep {
                args: step.args.clone(),
                env: super::layout::merged_env(&config, &step.env),
                cwd: (step.workdir.clone()).unwrap_or_else(|| {
                    Some(base_cwd.clone())
                        .filter(|cwd| !cwd.is_empty())
                        .unwrap_or_else(|| "/".to_owned())
                }),
                user: step.user.clone().unwrap_or_else(|| base_user.clone()),
                no_network: step.network == Network::None,
                caches: (step.cache.iter())
                    .map(|mount| CacheMountSpec {
                        target: mount.target.clone(),
                        id: mount.id.clone(),
                        sharing: mount.sharing,
                    })
                    .collect(),
                secrets: step.secrets.clone(),
                name: format!("{}{shown}", name_prefix(image, index)),
            }
        })
        .collect())
}

/// One ExecOp running `step` on `below` (scratch when `None`); its root file system is the op's output.
pub(crate) fn add_exec(
    builder: &mut DefinitionBuilder,
    below: Option<&Output>,
    step: &ExecStep,
    platform: &pb::Platform,
) -> Output {
    let mut mounts = vec![pb::Mount {
        input: if below.is_some() { 0 } else { -1 },
        dest: "/".to_owned(),
        output: 0,
        mount_type: pb::MountType::Bind as i32,
        ..Default::default()
    }];
    let mut extra: Vec<pb::Mount> = (step.caches.iter())
        .map(|cache| pb::Mount {
            input: -1,
            dest: cache.target.clone(),
            // -1: the mount has no output of the op; a cache is never part of the image.
            output: -1,
            mount_type: pb::MountType::Cache as i32,
            cache_opt: Some(pb::CacheOpt {
                id: cache.id.clone(),
                sharing: match cache.sharing {
                    Sharing::Shared => pb::CacheSharingOpt::Shared,
                    Sharing::Private => pb::CacheSharingOpt::Private,
                    Sharing::Locked => pb::CacheSharingOpt::Locked,
                } as i32,
            }),
            ..Default::default()
        })
        .chain(step.secrets.iter().map(|id| pb::Mount {
            input: -1,
            dest: format!("/run/secrets/{id}"),
            output: -1,
            mount_type: pb::MountType::Secret as i32,
            secret_opt: Some(pb::SecretOpt {
                id: id.clone(),
                uid: 0,
                gid: 0,
                mode: 0o400,
                optional: false,
            }),
            ..Default::default()
        }))
        .collect();
    // Mounted in order: a parent before what is under it, as buildctl's client orders them.
    extra.sort_by(|a, b| a.dest.cmp(&b.dest));
    mounts.extend(extra);
    let exec = pb::ExecOp {
        meta: Some(pb::Meta {
            args: step.args.clone(),
            env: step.env.clone(),
            cwd: step.cwd.clone(),
            user: step.user.clone(),
            ..Default::default()
        }),
        mounts,
        network: if step.no_network {
            pb::NetMode::None
        } else {
            pb::NetMode::Unset
        } as i32,
        security: pb::SecurityMode::Sandbox as i32,
        ..Default::default()
    };
    let op = pb::Op {
        inputs: below.into_iter().map(input).collect(),
        op: Some(pb::op::Op::Exec(exec)),
        platform: Some(platform.clone()),
        constraints: Some(pb::WorkerConstraints::default()),
    };
    builder.add(&op, metadata(step))
}

fn metadata(step: &ExecStep) -> pb::OpMetadata {
    let mut caps = BTreeMap::from([
        ("exec.meta.base".to_owned(), true),
        ("exec.mount.bind".to_owned(), true),
    ]);
    if !step.caches.is_empty() {
        caps.insert("exec.mount.cache".to_owned(), true);
        caps.insert("exec.mount.cache.sharing".to_owned(), true);
    }
    if !step.secrets.is_empty() {
        caps.insert("exec.mount.secret".to_owned(), true);
    }
    if step.no_network {
        caps.insert("exec.meta.network".to_owned(), true);
    }
    pb::OpMetadata {
        caps,
        description: BTreeMap::from([("llb.customname".to_owned(), step.name.clone())]),
        ..Default::default()
    }
}
