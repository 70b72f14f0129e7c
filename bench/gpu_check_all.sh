#!/usr/bin/env bash
# One device call (nvidia-h200-x2; on nvidia-h200 the two multi-GPU tests are left out) that checks and measures everything GPU-side of main, from a
# carried folder laid out as gpu_run.sh expects ($CARRY/bin.tar.xz holding bin/ with
# gpu_kernels_test, gpu_model_test, multi_gpu_test, online_gpu_test, aurora-gpu-bench, aurora,
# aurora-loadgen; $CARRY/bench, config/models, lib, tests/fixtures):
#   1. every GPU test with AURORA_REQUIRE_GPU=1 (kernels, model, multi-GPU, online migration);
#   2. aurora-gpu-bench on the three configs with --profile (stage times of one eager prefill and of
#      one eager decode step per batch size);
#   3. the same benchmark with the runner sized like a server (--max-context 16384), batch 1 and 16,
#      to compare with (2): attention grids follow the step's contexts, not max_context;
#   4. the end-to-end Mixtral serve + aurora-loadgen run.
# Usage: bash bench/gpu_check_all.sh  (from the carried folder; logs under $OUT)
set -u
C="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$C/bin.tar.xz" ] && tar xJf "$C/bin.tar.xz" -C "$C"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=WARN  # never NVLink multicast
OUT="${OUT:-/tmp/aurora-gpu-out}"
mkdir -p "$OUT"
NO_SAFE_RETRY=1 bash "$C/bench/gpu_run.sh" info tests
export LD_LIBRARY_PATH="/tmp/aurora-lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# The multi-GPU tests need two GPUs; on a one-GPU machine they are left out (and say so).
if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
  for t in multi_gpu_test online_gpu_test; do
    echo "== $t"
    AURORA_REQUIRE_GPU=1 timeout 150 "$C/bin/$t" 2>&1 | tail -4 | tee "$OUT/$t.log"
  done
else
  echo "== multi_gpu_test, online_gpu_test: left out (one GPU)"
fi
NO_SAFE_RETRY=1 BENCH_ARGS="--profile" bash "$C/bench/gpu_run.sh" bench
for m in OLMoE-1B-7B-0924 Qwen3-30B-A3B Mixtral-8x7B-v0.1; do
  echo "== $m, runner sized for 16384 tokens of context"
  timeout 75 "$C/bin/aurora-gpu-bench" --config "$C/config/models/$m/config.json" --batches 1,16 --prefill-reps 2 \
    --max-context 16384 2>&1 | grep -E "==|sized|prefill|decode" | tee -a "$OUT/max_context.log"
done
E2E_RATE=4 E2E_PROMPTS=160 bash "$C/bench/gpu_run.sh" serve
echo "== done"
