//! The BuildKit wire API used by cargo-hive.
//!
//! Everything else in the workspace depends on this crate only, never on the generated crate directly, so the
//! source of the protocol types can change in one place. The bulk comes from `bollard-buildkit-proto` (BuildKit
//! v0.29 protos, deterministic map encoding, server stubs for the session services). What it lacks is generated
//! here from `proto/*.proto` by `build.rs` with the pure-Rust `protox` (no `protoc`): containerd's content service,
//! which the daemon calls on the session to read `oci-layout://` sources.

pub use bollard_buildkit_proto::{fsutil, google, health, pb};
pub use prost;
pub use tonic;

/// The BuildKit Control API, the gateway (`LLBBridge`) and the API capability types.
pub mod control {
    pub use bollard_buildkit_proto::moby::buildkit::v1::*;
}

/// The gateway API (`moby.buildkit.v1.frontend.LLBBridge`): how a client acts as its own frontend.
pub mod gateway {
    pub use bollard_buildkit_proto::moby::buildkit::v1::apicaps::ApiCap;
    pub use bollard_buildkit_proto::moby::buildkit::v1::frontend::*;
}

/// Session services the client serves to the daemon: file sync, file send, auth, secrets, ssh forwarding.
pub mod session {
    /// `moby.filesync.v1`: FileSync and FileSend over `BytesMessage`, and Auth.
    pub mod filesync {
        pub use bollard_buildkit_proto::moby::filesync::v1::*;
    }
    /// The same FileSync/FileSend methods typed for fsutil `Packet`s (local sources and the `local` exporter).
    pub mod packet {
        pub use bollard_buildkit_proto::moby::filesync::packet::*;
    }
    /// `moby.buildkit.secrets.v1`: build secrets.
    pub mod secrets {
        pub use bollard_buildkit_proto::moby::buildkit::secrets::v1::*;
    }
    /// `moby.sshforward.v1`: SSH agent forwarding.
    pub mod sshforward {
        pub use bollard_buildkit_proto::moby::sshforward::v1::*;
    }
    /// `containerd.services.content.v1`: the blobs of `oci-layout://` sources (`Info` and `Read` only).
    #[allow(missing_docs, unreachable_pub)]
    pub mod content {
        tonic::include_proto!("containerd.services.content.v1");
    }
}
