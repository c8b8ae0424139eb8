#!/usr/bin/env bash
# The GPU half of Hearth's benchmarks, in one run on a machine with a real GPU (wgpu on
# Vulkan): `hearth bench` on synthetic Phi-4-mini and Phi-4 Q4_K_M files of the real shapes,
# the decode matvec's lanes per row swept (HEARTH_KERNELS=gpu:LANES), the kernel fusions (RMSNorm
# into the matrix kernels, a decoded token's RoPE into attention) off beside on, decoding one
# step at a time beside queueing the next step before a token is read back, and a per-kernel
# profile.
# Needs no network and no Rust: it runs a release `hearth` built elsewhere (HEARTH, default
# target/release/hearth: `cargo build --release -p hearth-cli`, then carry the binary).
#
#   scripts/gpu-bench.sh                        # everything, ~5 minutes on one H100/H200
#   SHAPES=phi-4-mini SWEEP="16" PROFILE=0 scripts/gpu-bench.sh   # a shorter run
#   SHAPES=model.gguf BENCH_ARGS="--prompt-lens 64" SWEEP_ARGS="--prompt-lens 64" scripts/gpu-bench.sh
#
# Each result is one JSON line (hearth bench --json) tagged with its run; with OUT set they
# are also written to $OUT/gpu-bench.jsonl. If LLAMA_BENCH names llama.cpp's llama-bench
# built for this GPU, it runs on the same files for the side-by-side figure. A carried
# attention_bench (ATTENTION_BENCH) times attention alone at long context.
# Where the machine has no Vulkan loader, .gl/*.deb are unpacked first: fetch them beforehand
# on a machine with Debian's archive (mkdir .gl && cd .gl && apt-get download libvulkan1).
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH=${HEARTH:-target/release/hearth}
SHAPES=${SHAPES:-phi-4-mini phi-4}
SWEEP=${SWEEP:-8 16 32 64}
PROFILE=${PROFILE:-1}
DIR=${DIR:-/tmp/hearth-gpu-bench}
mkdir -p "$DIR"
results=${OUT:+$OUT/gpu-bench.jsonl}
results=${results:-$DIR/gpu-bench.jsonl}
mkdir -p "$(dirname "$results")"
: >"$results"

if ! ldconfig -p | grep -q libvulkan.so.1; then
  if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    echo "gpu-bench: no Vulkan loader (libvulkan.so.1) on this machine and no .gl/*.deb to unpack" >&2
    exit 1
  fi
fi
# NVIDIA's driver files where the container keeps them apart.
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$nv" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then export VK_DRIVER_FILES=$nv; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv,noheader || true

# Runs `hearth bench` with the given arguments and tags its JSON with a label.
bench() {
  local label=$1
  shift
  local line
  line=$("$HEARTH" bench --json "$@" | tail -n 1)
  printf '{"run":"%s","report":%s}\n' "$label" "$line" | tee -a "$results"
}

# A shape's synthetic file (written once), or the GGUF file a SHAPES entry names.
model_of() {
  if [ -f "$1" ]; then echo "$1"; else echo "$DIR/$1-q4_k_m.gguf"; fi
}

for shape in $SHAPES; do
  model=$(model_of "$shape")
  [ -f "$model" ] || "$HEARTH" synth --shape "$shape" --quant q4_k_m --out "$model" >&2
  bench "$shape default" --model "$model" ${BENCH_ARGS:-}
  if [ -n "${LLAMA_BENCH:-}" ]; then
    # llama.cpp on the same file: prefill (pp) and decode (tg) tokens/s, all layers on the GPU.
    "$LLAMA_BENCH" -m "$model" -ngl 99 -p 128,512,2048 -n 32 -o json | tee -a "$DIR/llama-bench-$shape.json" >&2
  fi
done

first=$(model_of "${SHAPES%% *}")
for threads in $SWEEP; do
  HEARTH_KERNELS=gpu:$threads bench "lanes $threads" --model "$first" ${SWEEP_ARGS:---prompt-lens 512 --ctx-lens 128,1024 --decode-tokens 64}
done
# The fusions off, to set beside the sweep's run at the default lanes (16).
HEARTH_FUSION=0 bench "fusion off" --model "$first" ${SWEEP_ARGS:---prompt-lens 512 --ctx-lens 128,1024 --decode-tokens 64}
# Decoding one step at a time (each token read back before the next step is recorded), beside
# the default of queueing the next step first.
HEARTH_QUEUE_AHEAD=0 bench "queue ahead off" --model "$first" ${SWEEP_ARGS:---prompt-lens 512 --ctx-lens 128,1024 --decode-tokens 64}
if [ "$PROFILE" = 1 ]; then
  bench "profile" --model "$first" ${SWEEP_ARGS:---prompt-lens 512 --ctx-lens 128 --decode-tokens 16} --profile
  HEARTH_FUSION=0 bench "profile, fusion off" --model "$first" ${SWEEP_ARGS:---prompt-lens 512 --ctx-lens 128 --decode-tokens 16} --profile
fi
# Attention alone, if its benchmark was carried too (cargo build --release -p hearth-engine
# --example attention_bench): Phi-4-mini's and Phi-4's heads, decode at long context and a
# long prompt; its lines say milliseconds per call and K/V bytes read per second.
ATTENTION_BENCH=${ATTENTION_BENCH:-target/release/examples/attention_bench}
if [ -x "$ATTENTION_BENCH" ]; then
  for heads in "24 8 128" "40 10 128"; do
    HEARTH_CASES=${ATTENTION_CASES:-1@1024,1@4096,1@16384,512@0,2048@0} "$ATTENTION_BENCH" $heads 8 | tee -a "$DIR/attention-bench.txt" >&2
  done
  [ -z "${OUT:-}" ] || cp "$DIR/attention-bench.txt" "$OUT/"
fi
echo "gpu-bench: results in $results" >&2
