//! LLB definitions built in Rust. Deterministic: the same ops in the same order give the same bytes and digests
//! (prost encodes `pb`'s maps as `BTreeMap`s, in key order), so BuildKit's cache keys are stable across runs.

use std::collections::BTreeMap;

use hive_proto::pb;
use hive_proto::prost::Message;
use sha2::{Digest, Sha256};

use crate::plan::Platform;

/// One output of an op in a definition under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    digest: String,
    index: i64,
}

/// Collects marshaled ops and their metadata; [`DefinitionBuilder::finish`] adds the terminal op.
#[derive(Debug, Default)]
pub(crate) struct DefinitionBuilder {
    ops: Vec<Vec<u8>>,
    metadata: BTreeMap<String, pb::OpMetadata>,
}

impl DefinitionBuilder {
    /// Adds an op (once, however often it is added) and returns its first output.
    pub(crate) fn add(&mut self, op: &pb::Op, metadata: pb::OpMetadata) -> Output {
        let bytes = op.encode_to_vec();
        let digest = digest_of(&bytes);
        if !self.metadata.contains_key(&digest) {
            self.ops.push(bytes);
            self.metadata.insert(digest.clone(), metadata);
        }
        Output { digest, index: 0 }
    }

    /// Adds every op of a solved `definition` (a frontend's result, as the daemon returned it) with its metadata,
    /// unchanged so its digests and cache keys stay the daemon's, and returns the output its terminal op names;
    /// `None` when it has no terminal op.
    pub(crate) fn inline(&mut self, definition: &pb::Definition) -> Option<Output> {
        let (terminal, ops) = definition.def.split_last()?;
        let result = pb::Op::decode(terminal.as_slice()).ok()?;
        let [input] = &result.inputs[..] else {
            return None;
        };
        if result.op.is_some() {
            return None;
        }
        for bytes in ops {
            let digest = digest_of(bytes);
            if !self.metadata.contains_key(&digest) {
                let metadata = definition.metadata.get(&digest).cloned();
                self.ops.push(bytes.clone());
                self.metadata.insert(digest, metadata.unwrap_or_default());
            }
        }
        Some(Output {
            digest: input.digest.clone(),
            index: input.index,
        })
    }

    /// The definition whose result is `result`.
    pub(crate) fn finish(mut self, result: &Output) -> pb::Definition {
        let terminal = pb::Op {
            inputs: vec![input(result)],
            ..Default::default()
        };
        let bytes = terminal.encode_to_vec();
        let digest = digest_of(&bytes);
        self.ops.push(bytes);
        self.metadata.insert(digest, pb::OpMetadata::default());
        pb::Definition {
            def: self.ops,
            metadata: self.metadata,
            source: None,
        }
    }
}

/// An op input naming `output`.
pub(crate) fn input(output: &Output) -> pb::Input {
    pb::Input {
        digest: output.digest.clone(),
        index: output.index,
    }
}

pub(super) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The plan's platform on the wire: the one conversion of it.
pub(crate) fn platform(platform: &Platform) -> pb::Platform {
    pb::Platform {
        os: platform.os().to_owned(),
        architecture: platform.architecture().to_owned(),
        variant: platform.variant().unwrap_or_default().to_owned(),
        ..Default::default()
    }
}

/// A file made from nothing: `mkfile` on `scratch`. Doctor's live check, and the smallest real solve.
pub(crate) fn file_on_scratch(path: &str, data: &[u8], platform: pb::Platform) -> pb::Definition {
    file_on_scratch_at(path, data, platform, None)
}

/// [`file_on_scratch`] with the file's time set to `epoch` (seconds; `None` leaves it unset): a file whose
/// definition, and so whose cache key and layer, is the same from run to run.
pub(crate) fn file_on_scratch_at(
    path: &str,
    data: &[u8],
    platform: pb::Platform,
    epoch: Option<i64>,
) -> pb::Definition {
    use pb::file_action::Action;
    let mkfile = pb::FileAction {
        input: -1, // scratch
        secondary_input: -1,
        output: 0,
        action: Some(Action::Mkfile(pb::FileActionMkFile {
            path: path.to_owned(),
            mode: 0o644,
            data: data.to_vec(),
            owner: None,
            // Unix nanoseconds; -1 = unset (0 would mean 1970).
            timestamp: epoch.map_or(-1, |epoch| epoch.saturating_mul(1_000_000_000)),
        })),
    };
    let op = pb::Op {
        inputs: vec![],
        op: Some(pb::op::Op::File(pb::FileOp {
            actions: vec![mkfile],
        })),
        platform: Some(platform),
        constraints: Some(pb::WorkerConstraints::default()),
    };
    let mut builder = DefinitionBuilder::default();
    let metadata = pb::OpMetadata {
        caps: BTreeMap::from([("file.base".to_owned(), true)]),
        ..Default::default()
    };
    let file = builder.add(&op, metadata);
    builder.finish(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_digests() {
        let a = file_on_scratch(
            "/x",
            b"data",
            platform(&Platform::parse("linux/amd64").unwrap()),
        );
        let b = file_on_scratch(
            "/x",
            b"data",
            platform(&Platform::parse("linux/amd64").unwrap()),
        );
        assert_eq!(a, b);
        assert_eq!(a.def.len(), 2);
        let c = file_on_scratch(
            "/x",
            b"other",
            platform(&Platform::parse("linux/amd64").unwrap()),
        );
        assert_ne!(
            a.metadata.keys().collect::<Vec<_>>(),
            c.metadata.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_file_at_the_epoch_carries_its_time_in_nanoseconds() {
        let amd64 = platform(&Platform::parse("linux/amd64").unwrap());
        let timestamp = |definition: &pb::Definition| {
            let op = pb::Op::decode(definition.def[0].as_slice()).unwrap();
            let Some(pb::op::Op::File(file)) = op.op else {
                panic!("not a file op")
            };
            let Some(pb::file_action::Action::Mkfile(mkfile)) = &file.actions[0].action else {
                panic!("not a mkfile")
            };
            (mkfile.timestamp, mkfile.mode)
        };
        let at = file_on_scratch_at("/a.json", b"{}", amd64.clone(), Some(1_700_000_000));
        assert_eq!(timestamp(&at), (1_700_000_000_000_000_000, 0o644));
        let unset = file_on_scratch("/a.json", b"{}", amd64);
        assert_eq!(timestamp(&unset), (-1, 0o644));
    }

    #[test]
    fn terminal_op_points_at_the_result() {
        let definition = file_on_scratch(
            "/x",
            b"data",
            platform(&Platform::parse("linux/arm64").unwrap()),
        );
        let terminal = pb::Op::decode(definition.def[1].as_slice()).unwrap();
        let file_digest = digest_of(&definition.def[0]);
        assert_eq!(
            terminal.inputs,
            vec![pb::Input {
                digest: file_digest,
                index: 0
            }]
        );
        assert!(terminal.op.is_none());
    }

    #[test]
    fn an_inlined_definition_keeps_its_ops_and_names_its_result() {
        let platform = platform(&Platform::parse("linux/amd64").unwrap());
        let solved = file_on_scratch("/f", b"x", platform.clone());
        let mut builder = DefinitionBuilder::default();
        let result = builder.inline(&solved).expect("a terminal op");
        let on_top = builder.finish(&result);
        // The same ops, the same digests: the daemon's cache keys for them hold.
        assert_eq!(on_top.def, solved.def);
        assert_eq!(on_top.metadata, solved.metadata);
        let mut empty = DefinitionBuilder::default();
        assert_eq!(empty.inline(&pb::Definition::default()), None);
        let no_terminal = pb::Definition {
            def: solved.def[..1].to_vec(),
            ..Default::default()
        };
        assert_eq!(empty.inline(&no_terminal), None);
    }

    #[test]
    fn adding_an_op_twice_keeps_one_copy() {
        let mut builder = DefinitionBuilder::default();
        let op = pb::Op {
            op: Some(pb::op::Op::File(pb::FileOp::default())),
            ..Default::default()
        };
        let first = builder.add(&op, pb::OpMetadata::default());
        let second = builder.add(&op, pb::OpMetadata::default());
        assert_eq!(first, second);
        assert_eq!(builder.finish(&first).def.len(), 2);
    }
}

// -----------------------------------------------------------------------------------------------------------------
// Local sources and copies: a dir the session serves, and FileOp copies out of it. Each returns an op and its
// metadata for `DefinitionBuilder::add`; the platform is left unset (set `op.platform` where it matters).

/// A `local://<name>` source op: the session's dir `name`, limited to `include_patterns` (none: everything).
/// `shared_key_hint` keys the daemon's snapshot of the dir (with the session's shared key), so a stable hint makes
/// rebuilds incremental. Without `session_id` the daemon reads from the solve's session, which keeps the op (and
/// so the definition's digests) the same from run to run.
pub(crate) fn local_source(
    name: &str,
    shared_key_hint: &str,
    include_patterns: &[String],
    session_id: Option<&str>,
) -> (pb::Op, pb::OpMetadata) {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeMap::from([("source.local".to_owned(), true)]);
    if !shared_key_hint.is_empty() {
        attrs.insert("local.sharedkeyhint".to_owned(), shared_key_hint.to_owned());
        caps.insert("source.local.sharedkeyhint".to_owned(), true);
    }
    if !include_patterns.is_empty() {
        let json = serde_json::to_string(include_patterns).expect("strings serialize");
        attrs.insert("local.includepattern".to_owned(), json);
        caps.insert("source.local.includepatterns".to_owned(), true);
    }
    if let Some(session_id) = session_id {
        attrs.insert("local.session".to_owned(), session_id.to_owned());
        caps.insert("source.local.sessionid".to_owned(), true);
    }
    let op = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: format!("local://{name}"),
            attrs,
        })),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    };
    let metadata = pb::OpMetadata {
        caps,
        ..Default::default()
    };
    (op, metadata)
}

/// How [`copy`] copies. `Default` means: keep the source's owner, mode and times, don't follow a symlink at the
/// source path, copy a dir as a dir.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CopyOptions {
    /// `chown` to uid:gid.
    pub(crate) owner: Option<(u32, u32)>,
    /// `chmod` to this Unix mode.
    pub(crate) mode: Option<u32>,
    /// Set every copied file's times (Unix nanoseconds).
    pub(crate) timestamp: Option<i64>,
    /// Follow a symlink at the source path itself.
    pub(crate) follow_symlink: bool,
    /// Copy a dir's contents rather than the dir.
    pub(crate) dir_copy_contents: bool,
    /// Create missing parents of the destination.
    pub(crate) create_dest_path: bool,
    /// The source path may be a glob.
    pub(crate) allow_wildcard: bool,
}

/// A FileOp copying `src_path` of `from` to `dest_path` on `onto` (`None`: on scratch).
#[cfg(test)]
pub(crate) fn copy(
    onto: Option<&Output>,
    from: &Output,
    src_path: &str,
    dest_path: &str,
    options: &CopyOptions,
) -> (pb::Op, pb::OpMetadata) {
    use pb::file_action::Action;
    let (inputs, base, source) = match onto {
        Some(onto) => (vec![input(onto), input(from)], 0, 1),
        None => (vec![input(from)], -1, 0),
    };
    let id = |id: u32| {
        Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ById(id)),
        })
    };
    let copy = pb::FileActionCopy {
        src: src_path.to_owned(),
        dest: dest_path.to_owned(),
        owner: options.owner.map(|(uid, gid)| pb::ChownOpt {
            user: id(uid),
            group: id(gid),
        }),
        // Zero values are real values here (mode 0 = chmod 000, time 0 = 1970): -1 is "unset".
        mode: options.mode.map_or(-1, |mode| mode as i32),
        follow_symlink: options.follow_symlink,
        dir_copy_contents: options.dir_copy_contents,
        create_dest_path: options.create_dest_path,
        allow_wildcard: options.allow_wildcard,
        timestamp: options.timestamp.unwrap_or(-1),
        ..Default::default()
    };
    let op = pb::Op {
        inputs,
        op: Some(pb::op::Op::File(pb::FileOp {
            actions: vec![pb::FileAction {
                input: base,
                secondary_input: source,
                output: 0,
                action: Some(Action::Copy(copy)),
            }],
        })),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    };
    let metadata = pb::OpMetadata {
        caps: BTreeMap::from([("file.base".to_owned(), true)]),
        ..Default::default()
    };
    (op, metadata)
}

#[cfg(test)]
mod local_tests {
    use super::*;

    #[test]
    fn local_source_attrs() {
        let (op, metadata) = local_source("ctx", "hint", &["bin/app".to_owned()], None);
        let Some(pb::op::Op::Source(source)) = op.op else {
            panic!("not a source op")
        };
        assert_eq!(source.identifier, "local://ctx");
        assert_eq!(
            source.attrs,
            BTreeMap::from([
                (
                    "local.includepattern".to_owned(),
                    r#"["bin/app"]"#.to_owned()
                ),
                ("local.sharedkeyhint".to_owned(), "hint".to_owned()),
            ])
        );
        assert!(metadata.caps["source.local"]);
        let (with_session, _) = local_source("ctx", "", &[], Some("abc"));
        let Some(pb::op::Op::Source(source)) = with_session.op else {
            panic!("not a source op")
        };
        assert_eq!(
            source.attrs,
            BTreeMap::from([("local.session".to_owned(), "abc".to_owned())])
        );
    }

    #[test]
    fn copy_onto_scratch_and_onto_a_base() {
        let mut builder = DefinitionBuilder::default();
        let (source, metadata) = local_source("ctx", "", &[], None);
        let from = builder.add(&source, metadata);
        let (on_scratch, _) = copy(None, &from, "/a", "/b", &CopyOptions::default());
        assert_eq!(on_scratch.inputs, vec![input(&from)]);
        let Some(pb::op::Op::File(file)) = &on_scratch.op else {
            panic!("not a file op")
        };
        assert_eq!(
            (file.actions[0].input, file.actions[0].secondary_input),
            (-1, 0)
        );
        let Some(pb::file_action::Action::Copy(action)) = &file.actions[0].action else {
            panic!("not a copy")
        };
        assert_eq!((action.mode, action.timestamp), (-1, -1));
        assert!(action.owner.is_none());

        let options = CopyOptions {
            owner: Some((1000, 1000)),
            mode: Some(0o755),
            timestamp: Some(0),
            ..Default::default()
        };
        let (onto_base, _) = copy(Some(&from), &from, "/a", "/b", &options);
        assert_eq!(onto_base.inputs.len(), 2);
        let Some(pb::op::Op::File(file)) = &onto_base.op else {
            panic!("not a file op")
        };
        assert_eq!(
            (file.actions[0].input, file.actions[0].secondary_input),
            (0, 1)
        );
        let Some(pb::file_action::Action::Copy(action)) = &file.actions[0].action else {
            panic!("not a copy")
        };
        assert_eq!((action.mode, action.timestamp), (0o755, 0));
        assert!(action.owner.is_some());
    }
}
