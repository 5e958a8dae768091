//! Linked into `api` only on aarch64, so that only the arm64 image's SBOM lists it.

/// The address that listens on every interface.
pub fn any_address() -> &'static str {
    "0.0.0.0"
}
