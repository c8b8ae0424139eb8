#!/usr/bin/env bash
# Builds the browser package into www/pkg/: the engine compiled to wasm32 (release),
# wasm-bindgen's glue, wasm-opt, and the JS API (hearth.js, worker.js, store.js, hearth.d.ts).
# Installs what a fresh machine lacks: the wasm32 target, wasm-bindgen-cli at the exact
# version in Cargo.lock, and npm dev dependencies (binaryen's wasm-opt).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=www/pkg

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "build-web: installing wasm-bindgen-cli $want (found: ${have:-none})" >&2
  # Not --locked: one of its locked dependency versions is missing from the registry mirror.
  cargo install -q wasm-bindgen-cli --version "$want"
fi
if [ ! -x node_modules/.bin/wasm-opt ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

cargo build --locked --release --target wasm32-unknown-unknown -p hearth-web
rm -rf "$OUT" && mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name hearth_wasm --no-typescript \
  target/wasm32-unknown-unknown/release/hearth_web.wasm
# npm's binaryen, never Debian's (its old wasm-opt breaks wasm-bindgen's output).
node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/hearth_wasm_bg.wasm" -o "$OUT/hearth_wasm_bg.wasm"
cp crates/hearth-web/js/*.js crates/hearth-web/js/*.d.ts "$OUT/"
# The demo's service worker caches by build: name this one by its files' contents.
build=$(cat www/index.html www/app.js www/app.css www/markdown.js www/conversations.js www/sw.js "$OUT"/* | sha256sum | cut -c1-16)
echo "self.HEARTH_BUILD = '$build';" > www/version.js
echo "build-web: $(du -h "$OUT/hearth_wasm_bg.wasm" | cut -f1) wasm in $OUT/ (entry: $OUT/hearth.js)" >&2
