#!/usr/bin/env bash
# One device call: GPU tests (AURORA_REQUIRE_GPU=1), aurora-gpu-bench on the three configs, then
# transformers on the same configs (after our process has exited and freed the GPU), then the
# table. Everything comes from a carried folder (binaries built on the dev machine, sm_90a):
#   $CARRY/bin/{gpu_kernels_test,gpu_model_test,aurora-gpu-bench,aurora,aurora-loadgen}
#   $CARRY/lib/extra-libs.tar.xz
#   $CARRY/tests/fixtures/models  $CARRY/config/models  $CARRY/bench/*.py
# Logs go to $OUT. Phases have their own time limits so that a hang costs only its phase.
# Usage: bash gpu_run.sh [phases...]   phases: info tests pdltests sanitize bench ab ncu hf serve
#   (default: info tests bench hf)
# Shared libraries and test fixtures are taken from $CARRY/lib and $CARRY/tests, or from a sibling
# carried folder ($CARRY/../cuda) when this one has none (saves carrying them twice).
# If the GPU tests fail, they run again with AURORA_SAFE_KERNELS=1 (no programmatic dependent launch,
# the first attention kernel); when that passes, the benchmarks run in that mode too, and say so
# (unless NO_SAFE_RETRY=1).
# ab: variants by environment switch (AB_VARIANTS; default: AURORA_PDL=1, AURORA_GEMV_WARPS=8).
# ncu: per-kernel GPU times of one graph-replayed decode step (Nsight Compute; NCU_MODELS, default OLMoE).
# bench: BENCH_ARGS="--profile" adds, per config, the time of every stage of one eager prefill and
#   one eager decode step per batch size (CUDA events between stages).
set -u
CARRY="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-/tmp/aurora-gpu-out}"
mkdir -p "$OUT"
# Shared libraries the device image lacks (Boost.JSON/program_options, simdjson, PCRE2, ICU 72) travel
# as one compressed tarball.
LIBDIR=/tmp/aurora-lib
mkdir -p "$LIBDIR"
LIBTAR="$CARRY/lib/extra-libs.tar.xz"
[ -f "$LIBTAR" ] || LIBTAR="$CARRY/../cuda/lib/extra-libs.tar.xz"
[ -f "$LIBTAR" ] && tar xJf "$LIBTAR" -C "$LIBDIR"
[ -d "$CARRY/tests/fixtures" ] || { [ -d "$CARRY/../cuda/tests/fixtures" ] && ln -sfn "$CARRY/../cuda/tests" "$CARRY/tests"; }
# NCCL (the runtime links it for expert parallelism): the device's CUDA toolkit, else PyTorch's wheel.
NCCL_DIR=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu \
         "$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)"; do
  if [ -n "$d" ] && [ -f "$d/libnccl.so.2" ]; then NCCL_DIR="$d"; break; fi
done
export NCCL_NVLS_ENABLE=0  # never NVLink multicast
export LD_LIBRARY_PATH="$LIBDIR:$CARRY/lib:${NCCL_DIR:+$NCCL_DIR:}/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1
PHASES="${*:-info tests bench hf}"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
has() { [[ " $PHASES " == *" $1 "* ]]; }
cd "$CARRY"

if has info; then
  say "info"
  { date -u; nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem,driver_version --format=csv;
    nvcc --version 2>/dev/null | tail -1; echo "NCCL from: $NCCL_DIR"; ldd bin/aurora-gpu-bench | grep -E "not found|cuda|boost|simdjson|nccl"; } 2>&1 | tee "$OUT/info.log"
fi

run_tests() {  # $1: log suffix
  say "gpu_kernels_test $1"
  AURORA_REQUIRE_GPU=1 timeout "${TEST_TIMEOUT:-90}" bin/gpu_kernels_test --durations yes 2>&1 | tail -60 > "$OUT/gpu_kernels_test$1.log"
  local k=${PIPESTATUS[0]}
  echo "exit $k" >> "$OUT/gpu_kernels_test$1.log"; tail -25 "$OUT/gpu_kernels_test$1.log"
  say "gpu_model_test $1"
  AURORA_REQUIRE_GPU=1 timeout "${TEST_TIMEOUT:-90}" bin/gpu_model_test 2>&1 | tail -80 > "$OUT/gpu_model_test$1.log"
  local m=${PIPESTATUS[0]}
  echo "exit $m" >> "$OUT/gpu_model_test$1.log"; tail -30 "$OUT/gpu_model_test$1.log"
  [ "$k" = 0 ] && [ "$m" = 0 ]
}
if has tests; then
  # NO_SAFE_RETRY=1: report failures but keep the default kernels for the later phases (A/B runs).
  if ! run_tests "" && [ -z "${NO_SAFE_RETRY:-}" ]; then
    say "tests failed: again with AURORA_SAFE_KERNELS=1"
    if AURORA_SAFE_KERNELS=1 run_tests "_safe"; then
      export AURORA_SAFE_KERNELS=1
      say "benchmarks run with AURORA_SAFE_KERNELS=1"
    fi
  fi
fi

if has pdltests; then
  # The GPU tests again under other switch settings (PDLTEST_ENVS: 'VAR=VALUE ...' entries separated
  # by ';'), e.g. programmatic dependent launch modes: early-launched kernels must still read only
  # what is complete.
  IFS=';' read -ra TEST_ENVS <<< "${PDLTEST_ENVS:-AURORA_PDL=1;AURORA_PDL=0}"
  for e in "${TEST_ENVS[@]}"; do
    tag=$(echo "$e" | tr -c 'A-Za-z0-9_\n' '_')
    say "gpu tests with $e"
    env $e AURORA_REQUIRE_GPU=1 timeout "${TEST_TIMEOUT:-90}" bin/gpu_kernels_test 2>&1 | tail -3 | tee "$OUT/gpu_kernels_test_$tag.log"
    env $e AURORA_REQUIRE_GPU=1 timeout "${TEST_TIMEOUT:-90}" bin/gpu_model_test 2>&1 | tail -3 | tee "$OUT/gpu_model_test_$tag.log"
  done
fi

if has bench; then
  rm -f "$OUT/aurora_bench.jsonl"
  for m in OLMoE-1B-7B-0924 Qwen3-30B-A3B Mixtral-8x7B-v0.1; do
    say "aurora-gpu-bench $m"
    timeout "${BENCH_TIMEOUT:-75}" bin/aurora-gpu-bench --config "config/models/$m/config.json" --json "$OUT/aurora_bench.jsonl" \
      ${BENCH_ARGS:-} 2>&1 | tee -a "$OUT/bench.log"
  done
fi

if has ab; then
  # Variants on the same binaries (switches read from the environment): AB_VARIANTS holds
  # "VAR=VALUE[,VAR=VALUE...] MODEL BATCHES" entries separated by ';'. Default: the off-by-default
  # kernel variants.
  AB_VARIANTS="${AB_VARIANTS:-AURORA_PDL=1 Qwen3-30B-A3B 1;AURORA_PDL=1 Mixtral-8x7B-v0.1 1,64;AURORA_GEMV_WARPS=8 Mixtral-8x7B-v0.1 1,64}"
  IFS=';' read -ra VARIANTS <<< "$AB_VARIANTS"
  for v in "${VARIANTS[@]}"; do
    set -- $v
    say "aurora-gpu-bench $2, batches $3, $1"
    env $(echo "$1" | tr ',' ' ') timeout 60 bin/aurora-gpu-bench --config "config/models/$2/config.json" --batches "$3" --prefill-reps 1 \
      2>&1 | grep -E "==|kernels|decode" | sed "s/^/[$1] /" | tee -a "$OUT/ab.log"
  done
fi

if has ncu; then
  # Per-kernel GPU time of one graph-replayed decode step (batch 1): the last kernels in each log.
  NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  for m in ${NCU_MODELS:-OLMoE-1B-7B-0924}; do
    say "ncu ($NCU) aurora-gpu-bench $m batch 1"
    timeout "${NCU_TIMEOUT:-80}" "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      -k "regex:gemv|norm|prologue|attention|route|combine|sample|embedding" --log-file "$OUT/ncu_${m}_b1.csv" \
      bin/aurora-gpu-bench --config "config/models/$m/config.json" --batches 1 --steps 1 --warmup 1 \
      --prefill-reps 0 > "$OUT/ncu_app_$m.log" 2>&1
    echo "ncu exit $?; $(wc -l < "$OUT/ncu_${m}_b1.csv" 2>/dev/null) lines"
  done
fi

if has hf; then
  say "transformers reference"
  rm -f "$OUT/hf_bench.jsonl"
  timeout "${HF_TIMEOUT:-200}" python3 bench/hf_moe_reference.py --json "$OUT/hf_bench.jsonl" --budget-s "${HF_BUDGET:-70}" \
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
# At most a few files come back from a device call: everything but the table goes into one archive.
(cd "$OUT" && tar czf /tmp/aurora-logs.tgz --exclude table.md . && find . -type f ! -name table.md -delete \
  && mv /tmp/aurora-logs.tgz logs.tgz)
say "done"
