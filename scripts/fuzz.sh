#!/usr/bin/env bash
# Fuzzes what a model file controls: the GGUF reader, the tokenizer builder, the chat template.
#   scripts/fuzz.sh [seconds per target, default 60] [target ...]
# The seeds in fuzz/seeds/<target> (real headers and templates; for the tokenizer, 25 small
# inputs the fuzzer found that reach nine tenths of what its whole corpus reached) and
# fuzz/regressions/<target> (inputs that once failed, each fixed and covered by a test) are
# committed; what a run finds grows the local
# corpus in fuzz/corpus/<target>, which git ignores (`cargo fuzz cmin` shrinks it; an input
# worth keeping for everyone goes to seeds/). A crash leaves its input in
# fuzz/artifacts/<target> and fails the run.
# cargo fuzz needs a nightly compiler for its sanitizer flags; without a nightly toolchain the
# stable one is used with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf_header tokenizer chat_template)

if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi

cd fuzz
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target" "regressions/$target" "../target/fuzz-logs"
  log="../target/fuzz-logs/$target.log"
  echo "fuzz: $target for ${seconds}s"
  # Built first, so that a target that does not compile is reported as such, not as a crash.
  if ! cargo "${toolchain[@]}" fuzz build --release "$target" >"$log" 2>&1; then
    tail -n 30 "$log"
    echo "fuzz: $target does not build (log: target/fuzz-logs/$target.log)"
    exit 1
  fi
  # -rss_limit_mb: an input that makes the parser allocate what a header merely claims fails.
  status=0
  # libFuzzer adds what it finds to the first folder: the local corpus, or with FUZZ_KEEP=0 (the
  # short pass in scripts/test.sh) a scratch folder, so a test run leaves the checkout clean.
  inputs=("corpus/$target" "seeds/$target" "regressions/$target")
  if [ "${FUZZ_KEEP:-1}" = 0 ]; then found=$(mktemp -d); inputs=("$found" "${inputs[@]}"); fi
  cargo "${toolchain[@]}" fuzz run --release "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  if [ "${FUZZ_KEEP:-1}" = 0 ]; then rm -rf "$found"; fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ?ERROR)|panicked at' "$log" || true
  if [ "$status" -ne 0 ]; then
    grep -v "^\s*\[" "$log" | tail -30
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target"
    exit 1
  fi
done
