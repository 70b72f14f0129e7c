#!/usr/bin/env bash
# One device call: GPU tests (AURORA_REQUIRE_GPU=1), aurora-gpu-bench on the three configs, then
# transformers on the same configs (after our process has exited and freed the GPU), then the
# table. Everything comes from a carried folder (binaries built on the dev machine, sm_90a):
#   $CARRY/bin/{gpu_kernels_test,gpu_model_test,aurora-gpu-bench,aurora,aurora-loadgen}
#   $CARRY/lib/extra-libs.tar.xz
#   $CARRY/tests/fixtures/models  $CARRY/config/models  $CARRY/bench/*.py
# Logs go to $OUT. Phases have their own time limits so that a hang costs only its phase.
# Usage: bash gpu_run.sh [phases...]   phases: info tests sanitize bench hf serve (default: all but serve)
set -u
CARRY="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-/tmp/aurora-gpu-out}"
mkdir -p "$OUT"
# Shared libraries the device image lacks (Boost.JSON/program_options, simdjson, PCRE2, ICU 72) travel
# as one compressed tarball.
LIBDIR=/tmp/aurora-lib
mkdir -p "$LIBDIR"
[ -f "$CARRY/lib/extra-libs.tar.xz" ] && tar xJf "$CARRY/lib/extra-libs.tar.xz" -C "$LIBDIR"
export LD_LIBRARY_PATH="$LIBDIR:$CARRY/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
PHASES="${*:-info tests bench hf}"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
has() { [[ " $PHASES " == *" $1 "* ]]; }
cd "$CARRY"

if has info; then
  say "info"
  { date -u; nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem,driver_version --format=csv;
    nvcc --version 2>/dev/null | tail -1; ldd bin/aurora-gpu-bench | grep -E "not found|cuda|boost|simdjson"; } 2>&1 | tee "$OUT/info.log"
fi

if has tests; then
  say "gpu_kernels_test"
  AURORA_REQUIRE_GPU=1 timeout 150 bin/gpu_kernels_test --durations yes 2>&1 | tail -60 > "$OUT/gpu_kernels_test.log"
  echo "exit ${PIPESTATUS[0]}" >> "$OUT/gpu_kernels_test.log"; tail -25 "$OUT/gpu_kernels_test.log"
  say "gpu_model_test"
  AURORA_REQUIRE_GPU=1 timeout 150 bin/gpu_model_test 2>&1 | tail -80 > "$OUT/gpu_model_test.log"
  echo "exit ${PIPESTATUS[0]}" >> "$OUT/gpu_model_test.log"; tail -40 "$OUT/gpu_model_test.log"
fi


if has bench; then
  rm -f "$OUT/aurora_bench.jsonl"
  for m in OLMoE-1B-7B-0924 Qwen3-30B-A3B Mixtral-8x7B-v0.1; do
    say "aurora-gpu-bench $m"
    timeout 120 bin/aurora-gpu-bench --config "config/models/$m/config.json" --json "$OUT/aurora_bench.jsonl" \
      ${BENCH_ARGS:-} 2>&1 | tee -a "$OUT/bench.log"
  done
fi

if has hf; then
  say "transformers reference"
  rm -f "$OUT/hf_bench.jsonl"
  timeout "${HF_TIMEOUT:-240}" python3 bench/hf_moe_reference.py --json "$OUT/hf_bench.jsonl" --budget-s "${HF_BUDGET:-70}" \
    --configs config/models/OLMoE-1B-7B-0924 config/models/Qwen3-30B-A3B config/models/Mixtral-8x7B-v0.1 2>&1 \
    | grep -v Warning | tee "$OUT/hf.log"
fi

if has sanitize; then
  say "compute-sanitizer memcheck (kernel tests without the large sampling case)"
  timeout 120 compute-sanitizer --tool memcheck --print-limit 20 bin/gpu_kernels_test "~[sampling]" 2>&1 | tail -30 > "$OUT/memcheck.log"
  tail -8 "$OUT/memcheck.log"
fi

if has serve && [ -x bin/aurora ]; then
  say "aurora serve --random-weights Mixtral + aurora-loadgen"
  bash bench/gpu_serve_e2e.sh "$OUT" 2>&1 | tee "$OUT/serve_e2e.log"
fi

say "table"
python3 bench/gpu_report.py "$OUT/aurora_bench.jsonl" "$OUT/hf_bench.jsonl" | tee "$OUT/table.md"
say "done"
