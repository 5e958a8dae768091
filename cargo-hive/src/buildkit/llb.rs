//! LLB definitions built in Rust. Deterministic: the same ops in the same order give the same bytes and digests
//! (prost encodes `pb`'s maps as `BTreeMap`s, in key order), so BuildKit's cache keys are stable across runs.

use std::collections::BTreeMap;

use hive_proto::pb;
use hive_proto::prost::Message;
use sha2::{Digest, Sha256};

/// One output of an op in a definition under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    digest: String,
    index: i64,
}

impl Output {
    /// The op's digest (`sha256:…`).
    pub(crate) fn digest(&self) -> &str {
        &self.digest
    }
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

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A `linux/<arch>` platform.
pub(crate) fn linux(architecture: &str) -> pb::Platform {
    pb::Platform {
        architecture: architecture.to_owned(),
        os: "linux".to_owned(),
        ..Default::default()
    }
}

/// The architecture of this machine in OCI terms.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// A file made from nothing: `mkfile` on `scratch`. Doctor's live check, and the smallest real solve.
pub(crate) fn file_on_scratch(path: &str, data: &[u8], platform: pb::Platform) -> pb::Definition {
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
            timestamp: -1, // -1 = unset; 0 would mean 1970
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
        let a = file_on_scratch("/x", b"data", linux("amd64"));
        let b = file_on_scratch("/x", b"data", linux("amd64"));
        assert_eq!(a, b);
        assert_eq!(a.def.len(), 2);
        let c = file_on_scratch("/x", b"other", linux("amd64"));
        assert_ne!(
            a.metadata.keys().collect::<Vec<_>>(),
            c.metadata.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn terminal_op_points_at_the_result() {
        let definition = file_on_scratch("/x", b"data", linux("arm64"));
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
