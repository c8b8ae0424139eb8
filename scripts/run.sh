#!/usr/bin/env bash
# Builds the hearth CLI (release) and runs it. With no arguments it generates greedily from a
# bundled test model, which proves the whole path from file to GPU to tokens:
#   scripts/run.sh
#   scripts/run.sh inspect --model path/to/Phi-4-mini-instruct-Q4_K_M.gguf
#   scripts/run.sh bench --model path/to/model.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo build --release --locked -p hearth-cli
if [ $# -eq 0 ]; then
  set -- generate --model tests/fixtures/tiny-q4_k_m.gguf --tokens 1,2,3,4,5 --max-tokens 16
fi
exec target/release/hearth "$@"
