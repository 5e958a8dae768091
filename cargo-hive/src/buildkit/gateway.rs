//! cargo hive as a client-side frontend on BuildKit's gateway API, the way buildx drives every build: a
//! `Control.Solve` with no frontend and no definition, then `LLBBridge` calls on the same connection tagged with the
//! build id — `Ping`, `ResolveImageConfig`, `Solve`, and `Return` of the result with the image config in its
//! metadata. The exporters named in the `Control.Solve` then run on what we returned.

use std::collections::{BTreeMap, HashMap};

use hive_proto::control::{
    Exporter, SolveRequest as ControlSolveRequest, SolveResponse as ControlSolveResponse,
};
use hive_proto::gateway::llb_bridge_client::LlbBridgeClient;
use hive_proto::gateway::{
    Attestation, AttestationKind, Attestations, InTotoSubject, InTotoSubjectKind, PingRequest, Ref,
    RefMap, RefMapDeprecated, ResolveImageConfigRequest, ReturnRequest, SolveRequest,
    StatFileRequest, result::Result as ResultKind,
};
use hive_proto::pb;
use hive_proto::tonic::metadata::MetadataValue;
use hive_proto::tonic::service::Interceptor;
use hive_proto::tonic::service::interceptor::InterceptedService;
use hive_proto::tonic::transport::Channel;
use hive_proto::tonic::{Code, Request, Status};

use super::client::Buildkit;
use super::transport;

/// The metadata key that ties gateway calls to their `Control.Solve`.
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// Adds the build id to every gateway call.
#[derive(Clone)]
pub(crate) struct BuildId(MetadataValue<hive_proto::tonic::metadata::Ascii>);

impl Interceptor for BuildId {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(BUILD_ID_KEY, self.0.clone());
        Ok(request)
    }
}

/// What the daemon's gateway supports, from `Ping`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caps {
    frontend: BTreeMap<String, bool>,
    llb: BTreeMap<String, bool>,
}

impl Caps {
    fn supports(&self, cap: &str) -> bool {
        self.frontend.get(cap).copied().unwrap_or(false)
    }

    /// Whether LLB can take our layers packed: `oci-layout://` sources read from the session (BuildKit v0.11+)
    /// and merge ops (v0.10+). Docker 20.10's BuildKit has neither.
    pub(crate) fn packed_layers(&self) -> bool {
        ["source.ocilayout", "mergeop"]
            .iter()
            .all(|cap| self.llb.get(*cap).copied().unwrap_or(false))
    }

    /// Whether a frontend solved through the gateway can be handed definitions as inputs (`frontend_inputs`, which
    /// named contexts of the form `input:<name>` read).
    pub(crate) fn frontend_inputs(&self) -> bool {
        self.supports("frontend.inputs")
    }

    /// Whether results are returned as `Ref` messages (newer daemons) rather than bare id strings.
    pub(crate) fn ref_messages(&self) -> bool {
        self.supports("proto.refarray")
    }
}

/// A result of a gateway solve: the daemon's id for it, and the definition it was solved from where the daemon
/// says (`Ref.def`: what lets a frontend's result be built on in LLB of ours).
#[derive(Debug, Clone)]
pub(crate) struct ResultRef {
    id: String,
    definition: Option<pb::Definition>,
}

impl ResultRef {
    pub(super) fn of_id(id: String) -> ResultRef {
        ResultRef {
            id,
            definition: None,
        }
    }

    pub(super) fn of_ref(reference: Ref) -> ResultRef {
        // Without its source map: BuildKit v0.13's frontends dereference nil in a returned source map's nested
        // definitions when it is handed back as an input (the daemon crashes), and nothing of ours reads it.
        let definition = reference.def.map(|definition| pb::Definition {
            source: None,
            ..definition
        });
        ResultRef {
            id: reference.id,
            definition,
        }
    }

    /// The definition the result was solved from, when the daemon returned it (BuildKit returns it with `Ref`
    /// messages; a daemon answering bare ids does not).
    pub(crate) fn definition(&self) -> Option<&pb::Definition> {
        self.definition.as_ref()
    }
}

/// An in-toto attestation as the gateway returns it: the predicate is the file at `path` of `result`, and the
/// exporter writes the statement around it, its subject the image it is attached to.
#[derive(Debug, Clone)]
pub(crate) struct AttestationRef {
    /// The statement's `predicateType`.
    pub(crate) predicate_type: String,
    /// The predicate's path in `result`.
    pub(crate) path: String,
    /// The solved file.
    pub(crate) result: ResultRef,
}

/// The frontend side of one build: gateway calls carrying this build's id.
#[derive(Clone)]
pub(crate) struct Gateway {
    client: LlbBridgeClient<InterceptedService<Channel, BuildId>>,
    caps: Caps,
}

/// What a frontend solved through the gateway returned.
#[derive(Debug, Clone)]
pub(crate) struct FrontendResult {
    /// Its result: one, or one per platform id.
    pub(crate) refs: FrontendRefs,
    /// Its metadata: `containerimage.config` (or `containerimage.config/<platform id>` per platform),
    /// `refs.platforms`, and whatever else the frontend adds.
    pub(crate) metadata: BTreeMap<String, Vec<u8>>,
}

/// The result refs of a frontend solve.
#[derive(Debug, Clone)]
pub(crate) enum FrontendRefs {
    /// One result (a frontend asked for one platform).
    Single(ResultRef),
    /// One result per platform id (`linux/arm/v7`), for a multi-platform request.
    ByPlatform(BTreeMap<String, ResultRef>),
}

impl FrontendResult {
    /// The result for `platform_id`: the one result, or the one keyed by that id.
    pub(crate) fn result_for(&self, platform_id: &str) -> Option<&ResultRef> {
        match &self.refs {
            FrontendRefs::Single(only) => Some(only),
            FrontendRefs::ByPlatform(refs) => refs.get(platform_id),
        }
    }

    /// The image config for `platform_id`: keyed by the id when the frontend keyed it, else the one config.
    pub(crate) fn config_for(&self, platform_id: &str) -> Option<&[u8]> {
        (self
            .metadata
            .get(&format!("containerimage.config/{platform_id}")))
        .or_else(|| self.metadata.get("containerimage.config"))
        .map(Vec::as_slice)
    }

    /// The answer of a gateway `Solve`: a ref in any of the wire's forms (a frontend that returns nothing
    /// gives an empty id, as BuildKit does).
    fn from_wire(response: hive_proto::gateway::SolveResponse) -> FrontendResult {
        let result = response.result.unwrap_or_default();
        let refs = match result.result {
            Some(ResultKind::Ref(reference)) => FrontendRefs::Single(ResultRef::of_ref(reference)),
            Some(ResultKind::RefDeprecated(id)) => FrontendRefs::Single(ResultRef::of_id(id)),
            Some(ResultKind::Refs(map)) => FrontendRefs::ByPlatform(
                (map.refs.into_iter())
                    .map(|(key, reference)| (key, ResultRef::of_ref(reference)))
                    .collect(),
            ),
            Some(ResultKind::RefsDeprecated(map)) => FrontendRefs::ByPlatform(
                (map.refs.into_iter())
                    .map(|(key, id)| (key, ResultRef::of_id(id)))
                    .collect(),
            ),
            None => FrontendRefs::Single(ResultRef::of_id(response.r#ref)),
        };
        FrontendResult {
            refs,
            metadata: result.metadata.into_iter().collect(),
        }
    }
}

/// A resolved base image: its digest (to pin the LLB source) and its config JSON.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedImage {
    /// Manifest digest for the requested platform (`sha256:…`).
    pub(crate) digest: String,
    /// The image config JSON.
    pub(crate) config: Vec<u8>,
}

impl Gateway {
    /// What the daemon supports.
    pub(crate) fn caps(&self) -> &Caps {
        &self.caps
    }

    /// Resolves an image reference through the daemon (its local store, mirrors, registry settings and the
    /// session's credentials).
    pub(crate) async fn resolve_image_config(
        &self,
        reference: &str,
        platform: &pb::Platform,
        session_id: &str,
    ) -> Result<ResolvedImage, Status> {
        let request = ResolveImageConfigRequest {
            r#ref: reference.to_owned(),
            platform: Some(platform.clone()),
            resolve_mode: "default".to_owned(),
            log_name: format!("resolve image config for {reference}"),
            session_id: session_id.to_owned(),
            ..Default::default()
        };
        let response = self
            .client
            .clone()
            .resolve_image_config(request)
            .await?
            .into_inner();
        Ok(ResolvedImage {
            digest: response.digest,
            config: response.config,
        })
    }

    /// Solves a definition into a result the build can return.
    pub(crate) async fn solve(&self, definition: pb::Definition) -> Result<ResultRef, Status> {
        let request = SolveRequest {
            definition: Some(definition),
            allow_result_return: true,
            allow_result_array_ref: self.caps.ref_messages(),
            ..Default::default()
        };
        let response = self.client.clone().solve(request).await?.into_inner();
        Ok(match response.result.and_then(|result| result.result) {
            Some(ResultKind::Ref(reference)) => ResultRef::of_ref(reference),
            Some(ResultKind::RefDeprecated(id)) => ResultRef::of_id(id),
            _ => ResultRef::of_id(response.r#ref),
        })
    }

    /// Solves through one of the daemon's frontends (`dockerfile.v0`) with its options and input definitions,
    /// as a frontend of our own would: the daemon runs it inside this build (our session, our progress), and
    /// its result can be returned or used as an input like any other.
    pub(crate) async fn solve_frontend(
        &self,
        frontend: &str,
        opts: BTreeMap<String, String>,
        inputs: BTreeMap<String, pb::Definition>,
    ) -> Result<FrontendResult, Status> {
        let request = SolveRequest {
            frontend: frontend.to_owned(),
            frontend_opt: opts.into_iter().collect(),
            frontend_inputs: inputs.into_iter().collect(),
            allow_result_return: true,
            allow_result_array_ref: self.caps.ref_messages(),
            ..Default::default()
        };
        let response = self.client.clone().solve(request).await?.into_inner();
        Ok(FrontendResult::from_wire(response))
    }

    /// Whether `path` exists in a solved result (the gateway's StatFile).
    pub(crate) async fn exists(&self, result: &ResultRef, path: &str) -> Result<bool, Status> {
        let request = StatFileRequest {
            r#ref: result.id.clone(),
            path: path.to_owned(),
            mount_index: 0,
        };
        match self.client.clone().stat_file(request).await {
            Ok(_) => Ok(true),
            // BuildKit answers a missing path with a plain error naming it ("…: no such file or directory").
            Err(status)
                if status.message().contains("no such file") || status.code() == Code::NotFound =>
            {
                Ok(false)
            }
            Err(status) => Err(status),
        }
    }

    /// Returns the build's result, with metadata for the exporters (`containerimage.config`, ...).
    pub(crate) async fn return_result(
        &self,
        result: &ResultRef,
        metadata: BTreeMap<String, Vec<u8>>,
    ) -> Result<(), Status> {
        let kind = if self.caps.ref_messages() {
            ResultKind::Ref(Ref {
                id: result.id.clone(),
                def: None,
            })
        } else {
            ResultKind::RefDeprecated(result.id.clone())
        };
        self.send_result(kind, metadata, &BTreeMap::new()).await
    }

    /// Returns one result per key (keys are platform ids, and `metadata` names them in `refs.platforms`), so the
    /// exporters write one index, with each platform's `attestations` under the same key.
    pub(crate) async fn return_refs(
        &self,
        refs: &BTreeMap<String, ResultRef>,
        metadata: BTreeMap<String, Vec<u8>>,
        attestations: &BTreeMap<String, Vec<AttestationRef>>,
    ) -> Result<(), Status> {
        let kind = ref_map(refs, self.caps.ref_messages());
        self.send_result(kind, metadata, attestations).await
    }

    async fn send_result(
        &self,
        kind: ResultKind,
        metadata: BTreeMap<String, Vec<u8>>,
        attestations: &BTreeMap<String, Vec<AttestationRef>>,
    ) -> Result<(), Status> {
        let result = hive_proto::gateway::Result {
            result: Some(kind),
            metadata: metadata.into_iter().collect::<HashMap<_, _>>(),
            attestations: wire_attestations(attestations),
        };
        self.client
            .clone()
            .r#return(ReturnRequest {
                result: Some(result),
                error: None,
            })
            .await?;
        Ok(())
    }

    /// Ends a build that produced nothing to export (it only asked questions).
    pub(crate) async fn return_empty(&self) -> Result<(), Status> {
        let result = hive_proto::gateway::Result::default();
        self.client
            .clone()
            .r#return(ReturnRequest {
                result: Some(result),
                error: None,
            })
            .await?;
        Ok(())
    }

    /// Ends the build with an error, so the daemon's `Control.Solve` fails with it instead of waiting.
    pub(crate) async fn return_error(&self, message: &str) -> Result<(), Status> {
        let error = hive_proto::google::rpc::Status {
            code: 2,
            message: message.to_owned(),
            details: vec![],
        };
        self.client
            .clone()
            .r#return(ReturnRequest {
                result: None,
                error: Some(error),
            })
            .await?;
        Ok(())
    }
}

/// The wire form of several results: `Ref` messages where the daemon has `proto.refarray` (BuildKit v0.8 has it
/// already), else the deprecated map of bare ids, which every daemon's `Return` still accepts.
fn ref_map(refs: &BTreeMap<String, ResultRef>, ref_messages: bool) -> ResultKind {
    if ref_messages {
        let refs = refs
            .iter()
            .map(|(key, result)| {
                let message = Ref {
                    id: result.id.clone(),
                    def: None,
                };
                (key.clone(), message)
            })
            .collect();
        ResultKind::Refs(RefMap { refs })
    } else {
        let refs = refs
            .iter()
            .map(|(key, result)| (key.clone(), result.id.clone()))
            .collect();
        ResultKind::RefsDeprecated(RefMapDeprecated { refs })
    }
}

/// The wire form of attestations keyed like the result's refs: in-toto, the predicate a file of a ref, and one
/// subject of kind `Self` (the exporter fills in the image it is attached to: its manifest digest and the
/// exporter's image names).
fn wire_attestations(
    attestations: &BTreeMap<String, Vec<AttestationRef>>,
) -> HashMap<String, Attestations> {
    attestations
        .iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(key, list)| {
            let attestation = list
                .iter()
                .map(|attestation| Attestation {
                    kind: AttestationKind::InToto as i32,
                    metadata: HashMap::new(),
                    r#ref: Some(Ref {
                        id: attestation.result.id.clone(),
                        def: None,
                    }),
                    path: attestation.path.clone(),
                    in_toto_predicate_type: attestation.predicate_type.clone(),
                    in_toto_subjects: vec![InTotoSubject {
                        kind: InTotoSubjectKind::Self_ as i32,
                        digest: Vec::new(),
                        name: String::new(),
                    }],
                })
                .collect();
            (key.clone(), Attestations { attestation })
        })
        .collect()
}

/// One exporter of a solve: its type (`oci`, `moby`, `image`, ...) and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExporterSpec {
    /// The exporter's type.
    pub(crate) kind: String,
    /// Its attributes.
    pub(crate) attrs: BTreeMap<String, String>,
}

impl ExporterSpec {
    /// Whether it pushes an image to a registry (BuildKit's `image` exporter with `push=true`).
    pub(crate) fn pushes(&self) -> bool {
        self.kind == "image" && self.attrs.get("push").is_some_and(|push| push == "true")
    }

    fn wire(&self) -> Exporter {
        Exporter {
            r#type: self.kind.clone(),
            attrs: self.attrs.clone().into_iter().collect(),
        }
    }
}

/// Everything the `Control.Solve` of a gateway build carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewayRequest {
    /// The build's id (also the id of its status stream).
    pub(crate) build_ref: String,
    /// The session the daemon calls back on.
    pub(crate) session_id: String,
    /// Where the result goes.
    pub(crate) exporters: Vec<ExporterSpec>,
    /// Frontend attributes (`build-arg:SOURCE_DATE_EPOCH`, ...).
    pub(crate) frontend_attrs: BTreeMap<String, String>,
}

/// Why our frontend function (or one of its gateway calls) failed: a message that becomes the build's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FrontendError(pub(crate) String);

impl From<Status> for FrontendError {
    fn from(status: Status) -> FrontendError {
        FrontendError(status.message().to_owned())
    }
}

/// An error of a gateway build: the frontend's own, or the daemon's answer to the solve.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// Our frontend function failed (already returned to the daemon as the build's error).
    #[error(transparent)]
    Frontend(FrontendError),
    /// The daemon failed the build (a step, an exporter, a push).
    #[error("{}", .0.message())]
    Solve(Status),
    /// The connection broke while the build ran (the daemon went away, or something between cut it).
    #[error(
        "the connection to BuildKit at {address} was lost while the image was building: the daemon closed it or \
         went away (restarted, crashed, or a proxy between cut it){}",
        detail.as_ref().map(|detail| format!("; the transport said: {detail}")).unwrap_or_default()
    )]
    ConnectionLost {
        /// The daemon's address.
        address: String,
        /// The transport's own words, with `-v`.
        detail: Option<String>,
    },
}

/// Runs one gateway build: starts the `Control.Solve`, runs `frontend` against the gateway, and waits for the
/// exporters. `frontend` must end with [`Gateway::return_result`]; when it fails, its error is returned to the
/// daemon so the solve ends at once.
pub(crate) async fn build<F, Fut>(
    buildkit: &Buildkit,
    request: GatewayRequest,
    frontend: F,
) -> Result<ControlSolveResponse, BuildError>
where
    F: FnOnce(Gateway) -> Fut,
    Fut: Future<Output = Result<(), FrontendError>>,
{
    let build_id = MetadataValue::try_from(request.build_ref.as_str()).map_err(|_| {
        BuildError::Frontend(FrontendError(format!(
            "build id {:?} is not ASCII",
            request.build_ref
        )))
    })?;
    let single = match request.exporters.as_slice() {
        [only] => Some(only),
        _ => None,
    };
    let solve_request = ControlSolveRequest {
        r#ref: request.build_ref.clone(),
        session: request.session_id.clone(),
        // One exporter goes in the original fields, which every BuildKit knows (the list is v0.13+); several need
        // the list.
        exporter_deprecated: single
            .map(|exporter| exporter.kind.clone())
            .unwrap_or_default(),
        exporter_attrs_deprecated: single
            .map(|exporter| exporter.attrs.clone().into_iter().collect())
            .unwrap_or_default(),
        exporters: if single.is_some() {
            Vec::new()
        } else {
            request.exporters.iter().map(ExporterSpec::wire).collect()
        },
        frontend_attrs: request.frontend_attrs.clone().into_iter().collect(),
        ..Default::default()
    };
    let mut control = buildkit.control();
    let solve = tokio::spawn(async move {
        control
            .solve(solve_request)
            .await
            .map(|response| response.into_inner())
    });

    let client = LlbBridgeClient::with_interceptor(buildkit.channel(), BuildId(build_id))
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    // The daemon registers the build when the Control.Solve arrives; Ping waits for that registration.
    let frontend_result = async {
        let pong = client
            .clone()
            .ping(PingRequest {})
            .await
            .map_err(FrontendError::from)?
            .into_inner();
        let enabled = |caps: &[hive_proto::gateway::ApiCap]| {
            (caps.iter())
                .map(|cap| (cap.id.clone(), cap.enabled))
                .collect()
        };
        let caps = Caps {
            frontend: enabled(&pong.frontend_api_caps),
            llb: enabled(&pong.llb_caps),
        };
        let gateway = Gateway {
            client: client.clone(),
            caps,
        };
        let outcome = frontend(gateway.clone()).await;
        if let Err(message) = &outcome {
            // Best effort: the solve reports the error either way.
            let _ = gateway.return_error(&message.0).await;
        }
        outcome
    }
    .await;

    let solved = solve.await.map_err(|err| {
        BuildError::Frontend(FrontendError(format!("the solve task failed: {err}")))
    })?;
    match (frontend_result, solved) {
        // The frontend's calls fail too then, with the transport's words only: the lost connection is the news.
        (_, Err(status)) if transport::is_transport_failure(&status) => {
            Err(BuildError::ConnectionLost {
                address: buildkit.address.to_string(),
                detail: buildkit.verbose.then(|| transport::status_detail(&status)),
            })
        }
        (Err(message), _) => Err(BuildError::Frontend(message)),
        (Ok(()), Err(status)) => Err(BuildError::Solve(status)),
        (Ok(()), Ok(response)) => Ok(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attestations_are_in_toto_files_about_their_own_image() {
        let spdx = AttestationRef {
            predicate_type: "https://spdx.dev/Document".to_owned(),
            path: "/sbom.spdx.json".to_owned(),
            result: ResultRef::of_id("r1".into()),
        };
        let attestations = BTreeMap::from([
            ("linux/arm64".to_owned(), vec![spdx]),
            ("linux/amd64".to_owned(), vec![]),
        ]);
        let wire = wire_attestations(&attestations);
        // A platform without attestations is not named at all.
        assert_eq!(wire.keys().collect::<Vec<_>>(), ["linux/arm64"]);
        let [only] = wire["linux/arm64"].attestation.as_slice() else {
            panic!("one attestation expected")
        };
        assert_eq!(only.kind, AttestationKind::InToto as i32);
        assert_eq!(only.in_toto_predicate_type, "https://spdx.dev/Document");
        assert_eq!(only.path, "/sbom.spdx.json");
        assert_eq!(only.r#ref.as_ref().map(|r| r.id.as_str()), Some("r1"));
        assert_eq!(
            only.in_toto_subjects,
            [InTotoSubject {
                kind: InTotoSubjectKind::Self_ as i32,
                digest: vec![],
                name: String::new(),
            }]
        );
    }

    #[test]
    fn a_frontend_result_in_any_wire_form() {
        use hive_proto::gateway::SolveResponse;
        let metadata = HashMap::from([
            ("containerimage.config".to_owned(), b"{\"one\":1}".to_vec()),
            ("refs.platforms".to_owned(), b"{}".to_vec()),
        ]);
        let single = |kind| SolveResponse {
            r#ref: String::new(),
            result: Some(hive_proto::gateway::Result {
                result: Some(kind),
                metadata: metadata.clone(),
                attestations: HashMap::new(),
            }),
        };
        for kind in [
            ResultKind::Ref(Ref {
                id: "r".into(),
                def: None,
            }),
            ResultKind::RefDeprecated("r".into()),
        ] {
            let result = FrontendResult::from_wire(single(kind));
            // One result answers for whatever platform it was asked for.
            assert_eq!(
                result.result_for("linux/arm64").map(|r| r.id.as_str()),
                Some("r")
            );
            assert_eq!(
                result.config_for("linux/arm64"),
                Some(b"{\"one\":1}".as_slice())
            );
            assert_eq!(result.metadata.len(), 2);
        }
        let keyed = SolveResponse {
            r#ref: String::new(),
            result: Some(hive_proto::gateway::Result {
                result: Some(ResultKind::RefsDeprecated(RefMapDeprecated {
                    refs: HashMap::from([("linux/amd64".to_owned(), "a".to_owned())]),
                })),
                metadata: HashMap::from([(
                    "containerimage.config/linux/amd64".to_owned(),
                    b"{}".to_vec(),
                )]),
                attestations: HashMap::new(),
            }),
        };
        let result = FrontendResult::from_wire(keyed);
        assert_eq!(
            result.result_for("linux/amd64").map(|r| r.id.as_str()),
            Some("a")
        );
        assert!(result.result_for("linux/arm64").is_none());
        assert_eq!(result.config_for("linux/amd64"), Some(b"{}".as_slice()));
        assert_eq!(result.config_for("linux/arm64"), None);
        // An old daemon's answer without a result message: the bare id.
        let bare = FrontendResult::from_wire(SolveResponse {
            r#ref: "old".into(),
            result: None,
        });
        assert_eq!(
            bare.result_for("linux/amd64").map(|r| r.id.as_str()),
            Some("old")
        );
    }

    #[test]
    fn several_results_use_the_form_the_daemon_has() {
        let refs = BTreeMap::from([
            ("linux/amd64".to_owned(), ResultRef::of_id("a".into())),
            ("linux/arm64".to_owned(), ResultRef::of_id("b".into())),
        ]);
        let ResultKind::Refs(map) = ref_map(&refs, true) else {
            panic!("Ref messages expected")
        };
        assert_eq!(map.refs["linux/arm64"].id, "b");
        assert_eq!(map.refs.len(), 2);
        let ResultKind::RefsDeprecated(map) = ref_map(&refs, false) else {
            panic!("the deprecated map expected")
        };
        assert_eq!(
            map.refs,
            HashMap::from([
                ("linux/amd64".to_owned(), "a".to_owned()),
                ("linux/arm64".to_owned(), "b".to_owned())
            ])
        );
    }
}
