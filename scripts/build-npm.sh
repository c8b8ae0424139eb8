#!/usr/bin/env bash
# Builds the npm package `hearth-llm` into pkg/: the browser build (scripts/build-web.sh), its
# README and a package.json whose version is the workspace's. The name is ours on the registry
# (`hearth` is someone else's); tests/npm/name.test.mjs holds the docs to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-web.sh
name=hearth-llm
version=$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version/ { print $2; exit }' Cargo.toml)
rm -rf pkg && mkdir -p pkg
cp www/pkg/hearth.js www/pkg/worker.js www/pkg/store.js www/pkg/hearth_wasm.js www/pkg/hearth_wasm_bg.wasm www/pkg/hearth.d.ts pkg/
cp crates/hearth-web/npm/README.md pkg/
cat > pkg/package.json <<JSON
{
  "name": "$name",
  "version": "$version",
  "description": "Private on-device LLM inference in the browser: GGUF models (Phi-4 and more) on WebGPU, cached in IndexedDB",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./hearth.js",
  "module": "./hearth.js",
  "types": "./hearth.d.ts",
  "exports": {
    ".": { "types": "./hearth.d.ts", "default": "./hearth.js" },
    "./worker.js": "./worker.js",
    "./hearth_wasm_bg.wasm": "./hearth_wasm_bg.wasm"
  },
  "files": ["hearth.js", "hearth.d.ts", "worker.js", "store.js", "hearth_wasm.js", "hearth_wasm_bg.wasm", "README.md"],
  "sideEffects": false,
  "keywords": ["llm", "webgpu", "gguf", "phi-4", "wasm", "inference", "private", "offline"],
  "repository": { "type": "git", "url": "$(awk -F'"' '/^repository/ { print $2; exit }' Cargo.toml)" }
}
JSON
echo "build-npm: pkg/ holds $name@$version" >&2
