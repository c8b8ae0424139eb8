#!/usr/bin/env bash
# Runs every test: GGUF reader, WGSL kernels against CPU references, the forward pass
# against llama.cpp's recorded logits and greedy tokens, and the CLI end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch-default-model.sh   # the real model the llama-architecture test runs
# wgpu's Vulkan loader complains when this is unset; point it somewhere harmless.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --workspace --locked "$@"
# The engine must stay free of native-only code: it is what the browser build compiles.
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
if rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  cargo check --locked --target wasm32-unknown-unknown -p hearth-engine -p hearth-text
else
  echo "test.sh: no wasm32-unknown-unknown target available; skipped the browser build check" >&2
fi
