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
    /// Secrets as environment variables: name → secret id.
    pub(crate) secret_env: BTreeMap<String, String>,
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
                secret_env: step.secret_env.clone(),
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
        // The value is the daemon's to set in the process's environment: never in the op, the config or history.
        secretenv: (step.secret_env.iter())
            .map(|(name, id)| pb::SecretEnv {
                id: id.clone(),
                name: name.clone(),
                optional: false,
            })
            .collect(),
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
    if !step.secret_env.is_empty() {
        caps.insert("exec.secretenv".to_owned(), true);
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

#[cfg(test)]
mod tests {
    use hive_build::plan::PlanCacheMount;
    use hive_proto::prost::Message;

    use super::*;
    use crate::buildkit::layout::{ImageLayout, LayoutBase, PinnedBase, definition};
    use crate::plan::Platform;

    fn planned(args: &[&str]) -> PlanRunStep {
        PlanRunStep {
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            env: BTreeMap::new(),
            workdir: None,
            user: None,
            network: Network::Default,
            cache: Vec::new(),
            secrets: Vec::new(),
            secret_env: BTreeMap::new(),
        }
    }

    fn exec_of(bytes: &[u8]) -> Option<pb::ExecOp> {
        match pb::Op::decode(bytes).unwrap().op {
            Some(pb::op::Op::Exec(exec)) => Some(exec),
            _ => None,
        }
    }

    #[test]
    fn steps_take_the_base_environment_directory_and_user_unless_they_set_their_own() {
        let base = br#"{"config": {"Env": ["PATH=/opt/bin", "LANG=C"], "WorkingDir": "/srv", "User": "app"}}"#;
        let mut own = planned(&["/bin/sh", "-c", "make"]);
        own.env = BTreeMap::from([("LANG".to_owned(), "C.UTF-8".to_owned())]);
        own.workdir = Some("/build".to_owned());
        own.user = Some("root".to_owned());
        let steps = exec_steps("api", &[planned(&["true"]), own], Some(base)).unwrap();
        assert_eq!(steps[0].env, ["PATH=/opt/bin", "LANG=C"]);
        assert_eq!(
            (steps[0].cwd.as_str(), steps[0].user.as_str()),
            ("/srv", "app")
        );
        assert_eq!(steps[1].env, ["PATH=/opt/bin", "LANG=C.UTF-8"]);
        assert_eq!(
            (steps[1].cwd.as_str(), steps[1].user.as_str()),
            ("/build", "root")
        );
        assert_eq!(steps[1].name, "api run[1]: make");
        assert_eq!(step_of_vertex(&steps[1].name), Some(("api", 1)));
        // BuildKit adds no PATH: on a base without one (or scratch), Docker's default.
        let bare = exec_steps("api", &[planned(&["true"])], None).unwrap();
        assert!(
            bare[0].env[0].starts_with("PATH=/usr/local/sbin:"),
            "{:?}",
            bare[0].env
        );
        assert_eq!((bare[0].cwd.as_str(), bare[0].user.as_str()), ("/", ""));
        assert_eq!(step_of_vertex("copy binary and files"), None);
    }

    #[test]
    fn steps_are_exec_ops_on_the_base_before_the_file_layer() {
        let mut step = planned(&["/bin/sh", "-c", "apt-get update"]);
        step.network = Network::None;
        step.secrets = vec!["token".to_owned()];
        step.secret_env = BTreeMap::from([("NPM_TOKEN".to_owned(), "npm".to_owned())]);
        step.cache = vec![
            PlanCacheMount {
                target: "/var/lib/apt".to_owned(),
                id: "lists".to_owned(),
                sharing: Sharing::Locked,
            },
            PlanCacheMount {
                target: "/var/cache/apt".to_owned(),
                id: "hive-1".to_owned(),
                sharing: Sharing::Shared,
            },
        ];
        let steps = exec_steps("api", &[step, planned(&["true"])], None).unwrap();
        let layout = ImageLayout {
            platform: Platform::parse("linux/amd64").unwrap(),
            base: Some(LayoutBase::Registry(PinnedBase {
                reference: "localhost:5000/hive/glibc:latest".into(),
                digest: "sha256:abc".into(),
            })),
            layers: vec![vec![crate::buildkit::layout::LocalInput {
                name: "bin".into(),
                root: "/ws/target".into(),
                entries: vec![crate::buildkit::layout::CopyEntry {
                    source: "api".into(),
                    destination: "/usr/local/bin/api".into(),
                    mode: None,
                }],
            }]],
            steps: vec![steps],
            shared_key_hint: String::new(),
            epoch: 0,
            uid: 0,
            gid: 0,
        };
        let llb = definition(&layout);
        assert_eq!(llb, definition(&layout), "not deterministic");
        let ops = llb.ops();
        // The base, two steps, the local source, the copy onto the last step, the terminal op.
        assert_eq!(ops.len(), 6);
        let copy = pb::Op::decode(ops[4].as_slice()).unwrap();
        assert!(matches!(copy.op, Some(pb::op::Op::File(_))));
        assert_eq!(copy.inputs[0].digest, super::super::llb::digest_of(&ops[2]));
        let first = exec_of(&ops[1]).expect("the first step follows the base");
        let second = exec_of(&ops[2]).expect("the second step follows the first");
        let second_op = pb::Op::decode(ops[2].as_slice()).unwrap();
        assert_eq!(
            second_op.inputs[0].digest,
            super::super::llb::digest_of(&ops[1])
        );
        assert_eq!(first.network, pb::NetMode::None as i32);
        assert_eq!(second.network, pb::NetMode::Unset as i32);
        let secret_env: Vec<(&str, &str)> = (first.secretenv.iter())
            .map(|env| (env.name.as_str(), env.id.as_str()))
            .collect();
        assert_eq!(secret_env, [("NPM_TOKEN", "npm")]);
        assert!(second.secretenv.is_empty());
        let meta = pb::OpMetadata::clone(&llb.0.metadata[&super::super::llb::digest_of(&ops[1])]);
        assert_eq!(meta.caps.get("exec.secretenv"), Some(&true));
        let mounts: Vec<(&str, i32, i64, i64)> = (first.mounts.iter())
            .map(|mount| {
                (
                    mount.dest.as_str(),
                    mount.mount_type,
                    mount.input,
                    mount.output,
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("/", pb::MountType::Bind as i32, 0, 0),
                ("/run/secrets/token", pb::MountType::Secret as i32, -1, -1),
                ("/var/cache/apt", pb::MountType::Cache as i32, -1, -1),
                ("/var/lib/apt", pb::MountType::Cache as i32, -1, -1),
            ]
        );
        let cache = first.mounts[3].cache_opt.clone().unwrap();
        assert_eq!(
            (cache.id.as_str(), cache.sharing),
            ("lists", pb::CacheSharingOpt::Locked as i32)
        );
        let secret = first.mounts[1].secret_opt.clone().unwrap();
        assert_eq!(
            (secret.id.as_str(), secret.mode, secret.optional),
            ("token", 0o400, false)
        );
        let meta = first.meta.unwrap();
        assert_eq!(meta.args, ["/bin/sh", "-c", "apt-get update"]);
    }
}
