//! The BuildKit session: the gRPC services we serve to the daemon while it builds — our local dirs (file sync), a
//! destination for exported archives (file send), the blobs of our `oci-layout://` sources (content), registry
//! credentials (auth), build secrets and a health check — over an
//! HTTP/2 connection tunnelled inside the `Control.Session` call. One session per solve; the same code serves
//! standalone buildkitd and Docker's embedded BuildKit.

mod auth;
mod connection;
mod content;
mod errors;
mod export;
mod filesync;
mod health;
mod patterns;
mod secrets;
mod walk;

pub(crate) use auth::{AuthError, DockerAuth};
pub(crate) use connection::{LocalDir, Session, SessionConfig};
pub(crate) use content::{Blob, ContentBlobs};
pub(crate) use errors::SessionError;
pub(crate) use export::partial_owner;
pub(crate) use secrets::SecretValues;
