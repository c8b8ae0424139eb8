#!/usr/bin/env bash
# Builds the hearth CLI (release) and runs it. With no arguments it opens a terminal chat with
# the built-in default model (SmolLM2-135M-Instruct, fetched once into models/):
#   scripts/run.sh
#   scripts/run.sh chat --model path/to/Phi-4-mini-instruct-Q4_K_M.gguf
#   scripts/run.sh bench --model path/to/model.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
scripts/fetch-default-model.sh
cargo build --release --locked -p hearth-cli
if [ $# -eq 0 ]; then
  set -- chat
fi
exec target/release/hearth "$@"
