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
