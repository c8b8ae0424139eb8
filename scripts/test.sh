#!/usr/bin/env bash
# Runs every test: GGUF reader, WGSL kernels against CPU references, the forward pass
# against llama.cpp's recorded logits and greedy tokens, the CLI end to end, then the
# browser build in headless Chromium (JS API, IndexedDB cache, downloads with faults).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch-default-model.sh   # the real model the llama-architecture test runs
scripts/fetch-gemma3.sh          # the real model the gemma3 test runs
# wgpu's Vulkan loader complains when this is unset; point it somewhere harmless.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Style first, as it fails fastest: rustfmt at 100 columns (rustfmt.toml), clippy without a
# warning.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all --check
cargo fmt --check --manifest-path fuzz/Cargo.toml
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "$@"
# A short fuzzing pass over what a model file controls, from the seeds (a real run:
# scripts/fuzz.sh 600).
FUZZ_KEEP=0 scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
# The browser: build the wasm package (www/pkg) and the npm package (pkg/), then drive them
# in headless Chromium: the JS API and cache, the demo page, and a Vite app using the package.
scripts/build-npm.sh
cargo clippy -p hearth-web --target wasm32-unknown-unknown --locked -- -D warnings
node --test --test-concurrency=1 tests/browser/ tests/npm/
