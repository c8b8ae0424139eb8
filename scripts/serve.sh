#!/usr/bin/env bash
# Builds the browser package and serves the demo on http://127.0.0.1:$PORT (default 8080),
# with the built-in SmolLM2 model so the page works with no other download.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-default-model.sh
scripts/build-web.sh
exec node scripts/serve.mjs
