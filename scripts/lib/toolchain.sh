# shellcheck shell=bash
# Shared by the project's scripts: make sure cargo, rustfmt, clippy and the cross targets are there (rustup is on the
# machine). The system side of cross builds (aarch64 linker, qemu for running arm64 images) is root's and lives in
# scripts/buildkit-up.

# The targets the e2e suite builds for: linux/arm64 on glibc (linked by Debian's aarch64-linux-gnu-gcc) and both
# architectures on musl (linked with rust-lld, no system linker needed).
HIVE_RUST_TARGETS=(aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

ensure_toolchain() {
  if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
  command -v rustup >/dev/null 2>&1 || return 0
  local components targets missing=()
  components=$(rustup component list --installed 2>/dev/null)
  grep -q '^rustfmt' <<<"$components" || rustup component add rustfmt
  grep -q '^clippy' <<<"$components" || rustup component add clippy
  # One listing for all targets keeps a re-run fast; one `rustup target add` for the missing ones.
  targets=$(rustup target list --installed 2>/dev/null)
  for target in "${HIVE_RUST_TARGETS[@]}"; do
    grep -qx "$target" <<<"$targets" || missing+=("$target")
  done
  [ ${#missing[@]} -eq 0 ] || rustup target add "${missing[@]}"
}
