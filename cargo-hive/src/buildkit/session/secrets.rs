//! `moby.buildkit.secrets.v1.Secrets/GetSecret`: the values of the build secrets a solve's RUN steps mount, read
//! before the build starts and served only to the session of that solve. A value never reaches a log, an error or
//! a `Debug` print: what is shown of it is its id.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hive_proto::session::secrets::secrets_server::Secrets;
use hive_proto::session::secrets::{GetSecretRequest, GetSecretResponse};
use hive_proto::tonic::{self, Request, Response, Status};
use zeroize::Zeroizing;

/// The values of one solve's build secrets, by id; wiped from memory when the last clone is dropped.
#[derive(Clone, Default)]
pub(crate) struct SecretValues(Arc<BTreeMap<String, Zeroizing<Vec<u8>>>>);

impl SecretValues {
    /// Values by id, as read from their sources.
    pub(crate) fn new(values: BTreeMap<String, Zeroizing<Vec<u8>>>) -> SecretValues {
        SecretValues(Arc::new(values))
    }

    /// The ids served, sorted.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    fn get(&self, id: &str) -> Option<&[u8]> {
        self.0.get(id).map(|value| value.as_slice())
    }
}

/// Ids only: a value must not reach a log through `{:?}`.
impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValues")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Serves a solve's secrets; an id it was not given is `NotFound`, which BuildKit reports as a missing secret.
pub(crate) struct SecretsService {
    values: SecretValues,
}

impl SecretsService {
    pub(crate) fn new(values: SecretValues) -> SecretsService {
        SecretsService { values }
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        match self.values.get(id) {
            // The response's buffer is handed to tonic, which drops it unwiped; the copy we keep is wiped.
            Some(value) => Ok(Response::new(GetSecretResponse {
                data: value.to_vec(),
            })),
            None => Err(Status::not_found(format!(
                "secret `{id}` is not declared for this image"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use hive_proto::session::secrets::secrets_client::SecretsClient;
    use hive_proto::session::secrets::secrets_server::SecretsServer;
    use hive_proto::tonic::Code;
    use hive_proto::tonic::transport::Server;

    use super::*;
    use crate::buildkit::session::connection::{channel_over, single_connection};

    fn values() -> SecretValues {
        SecretValues::new(
            [
                ("netrc".to_owned(), Zeroizing::new(b"machine x".to_vec())),
                ("token".to_owned(), Zeroizing::new(b"s3cr3t-value".to_vec())),
            ]
            .into(),
        )
    }

    #[test]
    fn debug_shows_ids_never_values() {
        let shown = format!("{:?}", values());
        assert_eq!(shown, r#"SecretValues { ids: ["netrc", "token"], .. }"#);
        assert!(!shown.contains("s3cr3t"));
    }

    #[tokio::test]
    async fn serves_declared_ids_and_not_found_for_others() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(Server::builder().serve_with_incoming(
            SecretsServer::new(SecretsService::new(values())),
            single_connection(theirs),
        ));
        let mut client = SecretsClient::new(channel_over(ours).await);
        let ask = |id: &str| GetSecretRequest {
            id: id.to_owned(),
            annotations: Default::default(),
        };
        let answer = client.get_secret(ask("token")).await.unwrap();
        assert_eq!(answer.into_inner().data, b"s3cr3t-value");
        let missing = client.get_secret(ask("other")).await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(
            missing.message(),
            "secret `other` is not declared for this image"
        );
        server.abort();
    }
}
