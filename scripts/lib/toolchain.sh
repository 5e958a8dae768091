# Shared by the project's scripts: make sure cargo, rustfmt and clippy are there (rustup is on the machine).
ensure_toolchain() {
  if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
  if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    # The e2e suite cross-builds for aarch64 (linked with rust-lld, no system linker needed).
    rustup target list --installed 2>/dev/null | grep -qx 'aarch64-unknown-linux-musl' ||
      rustup target add aarch64-unknown-linux-musl
  fi
}
